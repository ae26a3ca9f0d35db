"""Tests of pipeline.models: the layer registry and its checks, through classifiers built from it (real Keras)."""

import numpy as np
import pytest
from helpers import CLASSES, classifier, token_ids

from pipeline.errors import PipelineError
from pipeline.models import RECURRENT_LAYERS, check_layer_spec

KERAS_KINDS = ["lstm", "gru", "simple_rnn", "bilstm", "bigru"]


# --- registry ---------------------------------------------------------------------------------------


def test_registry_holds_the_keras_kinds():
    assert set(KERAS_KINDS) <= set(RECURRENT_LAYERS)


@pytest.mark.parametrize("kind", KERAS_KINDS)
def test_each_kind_builds_a_classifier_that_predicts_probabilities(kind):
    model = classifier([{"type": kind, "units": 4}])
    probabilities = np.asarray(model(token_ids(), training=False))
    assert probabilities.shape == (5, CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), np.ones(5), atol=1e-5)
    assert (probabilities > 0).all()
    expected_width = 8 if kind.startswith("bi") else 4
    assert model.get_layer("recurrent_0").output.shape == (None, expected_width)


def test_predict_on_a_batch_of_another_length():
    model = classifier([{"type": "gru", "units": 4}, {"type": "lstm", "units": 3}], pooling="mean")
    assert model.predict(token_ids(batch=2, timesteps=11), verbose=0).shape == (2, CLASSES)


@pytest.mark.parametrize("spec, message", [
    ({"type": "lstn"}, r"'model.layers\[2\].type' = 'lstn' is not a layer kind \(did you mean 'lstm'\?\)"),
    ({"type": "bi_gru"}, r"did you mean 'bigru'"),
    ({"type": "transformer_xl_huge"}, r"is not a layer kind \(one of: .*bilstm.*\)"),
    ({"units": 4}, r"'model.layers\[2\].type' = None is not a layer kind"),
    ({"type": "lstm", "unit": 4}, r"unknown config key 'model.layers\[2\].unit' \(did you mean 'units'\?\)"),
    ({"type": "gru", "dropuot": 0.1}, r"did you mean 'dropout'"),
    ({"type": "lstm", "zzzz": 1}, r"valid keys for lstm: dropout, recurrent_dropout, units"),
    ({"type": "lstm", "units": "8"}, r"'model.layers\[2\].units' = '8' is invalid: it must be int"),
    ({"type": "lstm", "units": True}, r"'model.layers\[2\].units' = True is invalid"),
    ({"type": "lstm", "units": 0}, r"'model.layers\[2\].units' = 0 is invalid: it must be >= 1"),
    ({"type": "lstm", "dropout": 1.5}, r"'model.layers\[2\].dropout' = 1.5 is invalid: it must be in \[0, 1\)"),
    ({"type": "gru", "recurrent_dropout": 1}, r"'model.layers\[2\].recurrent_dropout' = 1.0 is invalid"),
    ({"type": "gru", "dropout": "0.1"}, r"'model.layers\[2\].dropout' = '0.1' is invalid: it must be float"),
])
def test_bad_layer_specs_are_pipeline_errors(spec, message):
    with pytest.raises(PipelineError, match=message):
        check_layer_spec(spec, 2)


def test_good_layer_spec_gives_the_builder_and_options():
    builder, options = check_layer_spec({"type": "bilstm", "units": 16, "dropout": 0}, 0)
    assert builder is RECURRENT_LAYERS["bilstm"]
    assert options == {"units": 16, "dropout": 0.0} and isinstance(options["dropout"], float)


def test_bad_layer_spec_fails_the_build():
    with pytest.raises(PipelineError, match="did you mean 'lstm'"):
        classifier([{"type": "lstm", "units": 4}, {"type": "lstn", "units": 4}])
