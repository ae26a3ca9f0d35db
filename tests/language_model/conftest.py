"""Language-model runs trained once per module by the real ``train`` stage on the shipped KNB corpus.

The corpus is vectorized once per session into pytest's temporary folder (the same folder
``tests/language_model/test_generate.py`` uses, so that module finds the stages up to date).
"""

from pathlib import Path

import pytest
from helpers import knb_config
from lm_helpers import train_recording_warnings

from pipeline.stages import run_stage


@pytest.fixture(scope="module")
def lm_work_dir(tmp_path_factory) -> Path:
    """prepare -> tokenize -> vectorize of generator_small.toml, once per session (shared with test_generate)."""
    work_dir = tmp_path_factory.getbasetemp() / "generator-work"
    run_stage("vectorize", knb_config("generator_small", work_dir,
                                            tmp_path_factory.getbasetemp() / "generator-unused-models"))
    return work_dir


@pytest.fixture(scope="module")
def sentence_run(lm_work_dir, tmp_path_factory):
    """generator_small.toml trained (full BPTT over sentences, plateau schedule); its config and warnings."""
    config = knb_config("generator_small", lm_work_dir, tmp_path_factory.mktemp("generator-models"))
    return config, train_recording_warnings(config)


@pytest.fixture(scope="module")
def tbptt_run(lm_work_dir, tmp_path_factory):
    """generator_tbptt.toml trained (stateful stream, truncated BPTT, step schedule); its config and warnings."""
    config = knb_config("generator_tbptt", lm_work_dir, tmp_path_factory.mktemp("generator-models"))
    return config, train_recording_warnings(config)


@pytest.fixture(scope="module")
def adaptive_run(lm_work_dir, tmp_path_factory):
    """generator_small.toml with an adaptive softmax, a weight-dropped LSTM and every AWD-LSTM regulariser."""
    config = knb_config("generator_small", lm_work_dir, tmp_path_factory.mktemp("generator-models"),
                        'run_name="generator_adaptive"', 'model.output="adaptive"', "model.tie_weights=false",
                        "model.cutoffs=[60, 200]", "model.embedding_dropout=0.1", "model.input_dropout=0.2",
                        "model.output_dropout=0.2", "model.activation_regularization=1.0",
                        "model.temporal_activation_regularization=1.0",
                        'model.layers=[{type="weight_drop_lstm", units=24, weight_drop=0.3}]')
    return config, train_recording_warnings(config)
