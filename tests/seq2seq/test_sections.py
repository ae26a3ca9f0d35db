"""Tests of pipeline.seq2seq.sections: the [reading] section's checks name the key (other sections: test_config.py)."""

import pytest

from pipeline.config import from_dict
from pipeline.errors import PipelineError


def test_reading_defaults_and_task():
    config = from_dict({"model": {"task": "reading"}})
    assert config.reading.attention == "additive" and config.reading.beam_size >= 1


@pytest.mark.parametrize("key, value", [("attention", "dot"), ("decoder", "rnn"), ("decoder_units", 0),
                                        ("beam_size", 0), ("length_penalty", -0.5)])
def test_invalid_reading_values_name_the_key(key, value):
    with pytest.raises(PipelineError, match=f"reading.{key}"):
        from_dict({"model": {"task": "reading"}, "reading": {key: value}})
