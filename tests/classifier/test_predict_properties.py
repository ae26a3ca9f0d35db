"""Property-based tests (Hypothesis) of pipeline.classifier.predict: ``classify`` takes arbitrary Unicode
(``text_strategies``: emoji, control characters, 100,000-character lines, mixed scripts, half-width kana)
without crashing and answers every line: a label, or an error for that line alone.

The run is a real run folder with an untrained GRU (``helpers.write_classifier_run``), reloaded as
``pipeline classify`` does, with the real GiNZA tokenizer: what it takes and answers does not depend on
the weights, and no training keeps this module at a few seconds.
"""

import numpy as np
import pytest
from helpers import write_classifier_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from text_strategies import lines

from pipeline.classifier.predict import classify
from pipeline.runs import Run, load_run
from pipeline.text.corpora import normalize

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    return load_run(write_classifier_run(tmp_path_factory.mktemp("predict-properties") / "run"))


@PROPERTY
@given(texts=st.lists(lines, min_size=1, max_size=6))
def test_classify_answers_every_line(run, texts):
    results = classify(run, texts)
    assert len(results) == len(texts)
    for text, result in zip(texts, results):
        assert result["text"] == text
        if normalize(text):
            assert "error" not in result or result["error"] is None, result
            assert result["label"] in run.labels and 0.0 <= result["probability"] <= 1.0
            assert np.isclose(sum(result["probabilities"].values()), 1.0, atol=1e-4)
        else:
            assert result["error"] == "empty text; nothing to classify"
