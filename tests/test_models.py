"""Tests of pipeline.models: the layer registry, masked pooling and the classifier builder (real Keras)."""

import keras
import numpy as np
import pytest

from pipeline.config import ModelConfig
from pipeline.errors import PipelineError
from pipeline.models import (
    RECURRENT_LAYERS,
    MaskedGlobalPooling,
    build_classifier,
    check_layer_spec,
    trainable_parameters,
)

KERAS_KINDS = ["lstm", "gru", "simple_rnn", "bilstm", "bigru"]
VOCABULARY, DIMENSION, CLASSES = 20, 8, 3


def embedding_matrix(seed: int = 0) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(0.0, 0.5, size=(VOCABULARY, DIMENSION)).astype(np.float32)
    matrix[0] = 0.0
    return matrix


def classifier(layers, pooling="last", seed=0, **settings) -> keras.Model:
    model_settings = ModelConfig(layers=tuple(layers), pooling=pooling, **settings)
    return build_classifier(model_settings, embedding_matrix(), CLASSES, seed)


def token_ids(batch: int = 5, timesteps: int = 6, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, VOCABULARY, size=(batch, timesteps)).astype(np.int32)


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


# --- masked pooling ---------------------------------------------------------------------------------


POOLING_INPUTS = np.array([
    [[1.0, -2.0], [3.0, -4.0], [100.0, 100.0], [100.0, 100.0]],
    [[-5.0, -1.0], [-7.0, -3.0], [-6.0, -2.0], [100.0, 100.0]],
    [[-1.0, -2.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
], dtype=np.float32)
POOLING_MASK = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], dtype=bool)


def test_masked_mean_pooling_ignores_padding():
    pooled = np.asarray(MaskedGlobalPooling("mean")(POOLING_INPUTS, mask=POOLING_MASK))
    expected = np.array([[2.0, -3.0], [-6.0, -2.0], [-1.0, -2.0]], dtype=np.float32)
    np.testing.assert_allclose(pooled, expected, atol=1e-6)
    reference = (POOLING_INPUTS * POOLING_MASK[..., None]).sum(1) / POOLING_MASK.sum(1, keepdims=True)
    np.testing.assert_allclose(pooled, reference, atol=1e-6)


def test_masked_max_pooling_ignores_padding_even_when_it_would_dominate():
    pooled = np.asarray(MaskedGlobalPooling("max")(POOLING_INPUTS, mask=POOLING_MASK))
    # Row 3: all real values negative, zero padding must not win.
    expected = np.array([[3.0, -2.0], [-5.0, -1.0], [-1.0, -2.0]], dtype=np.float32)
    np.testing.assert_allclose(pooled, expected, atol=1e-6)
    reference = np.where(POOLING_MASK[..., None], POOLING_INPUTS, -np.inf).max(axis=1)
    np.testing.assert_allclose(pooled, reference, atol=1e-6)


def test_pooling_without_a_mask_uses_every_step():
    np.testing.assert_allclose(MaskedGlobalPooling("mean")(POOLING_INPUTS), POOLING_INPUTS.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(MaskedGlobalPooling("max")(POOLING_INPUTS), POOLING_INPUTS.max(axis=1), atol=1e-6)


def test_pooling_config_and_bad_mode():
    layer = MaskedGlobalPooling("max", name="pool")
    restored = MaskedGlobalPooling.from_config(layer.get_config())
    assert restored.mode == "max" and restored.name == "pool"
    assert layer.compute_output_shape((None, 7, 5)) == (None, 5)
    with pytest.raises(ValueError, match="mode"):
        MaskedGlobalPooling("sum")


def test_pooling_receives_the_embedding_mask_in_a_model():
    # Embedding(mask_zero) -> pooling: ids 0 are padding; an identity embedding shows the pooled values.
    ids = keras.Input(shape=(None,), dtype="int32")
    embed = keras.layers.Embedding(4, 1, mask_zero=True)
    outputs = MaskedGlobalPooling("max")(embed(ids))
    model = keras.Model(ids, outputs)
    embed.set_weights([np.array([[50.0], [-1.0], [-2.0], [-3.0]], dtype=np.float32)])
    pooled = np.asarray(model(np.array([[2, 3, 0, 0], [3, 1, 2, 0]], dtype=np.int32)))
    np.testing.assert_allclose(pooled, [[-2.0], [-1.0]], atol=1e-6)


# --- classifier structure ---------------------------------------------------------------------------


def recurrent_layers(model):
    return [layer for layer in model.layers if layer.name.startswith("recurrent_")]


def returns_sequences(layer) -> bool:
    if isinstance(layer, keras.layers.Bidirectional):
        return layer.forward_layer.return_sequences and layer.backward_layer.return_sequences
    return layer.return_sequences


@pytest.mark.parametrize("kind", ["lstm", "bigru"])
def test_return_sequences_on_all_but_the_last_layer(kind):
    model = classifier([{"type": kind, "units": 4}] * 3, pooling="last")
    assert [layer.name for layer in recurrent_layers(model)] == ["recurrent_0", "recurrent_1", "recurrent_2"]
    assert [returns_sequences(layer) for layer in recurrent_layers(model)] == [True, True, False]


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_return_sequences_on_every_layer_when_pooling(pooling):
    model = classifier([{"type": "gru", "units": 4}, {"type": "bilstm", "units": 3}], pooling=pooling)
    assert [returns_sequences(layer) for layer in recurrent_layers(model)] == [True, True]
    assert isinstance(model.get_layer(f"{pooling}_pooling"), MaskedGlobalPooling)


def test_embedding_weights_equal_the_given_matrix():
    model = classifier([{"type": "lstm", "units": 4}])
    embedding = model.get_layer("embedding")
    assert embedding.mask_zero
    np.testing.assert_array_equal(embedding.get_weights()[0], embedding_matrix())
    assert embedding.trainable
    frozen = classifier([{"type": "lstm", "units": 4}], trainable_embeddings=False)
    assert not frozen.get_layer("embedding").trainable
    assert trainable_parameters(frozen) == trainable_parameters(model) - VOCABULARY * DIMENSION


def test_layer_options_reach_the_keras_layers():
    model = classifier([{"type": "lstm", "units": 5, "dropout": 0.25, "recurrent_dropout": 0.1}])
    layer = model.get_layer("recurrent_0")
    assert isinstance(layer, keras.layers.LSTM)
    assert (layer.units, layer.dropout, layer.recurrent_dropout) == (5, 0.25, 0.1)


def test_trainable_parameters_of_a_simple_rnn_by_hand():
    # SimpleRNN(4) on 8 inputs: 8*4 + 4*4 + 4 = 52; Dense(3): 4*3 + 3 = 15; embedding 20*8 = 160.
    model = classifier([{"type": "simple_rnn", "units": 4}])
    assert trainable_parameters(model) == 52 + 15 + 160


def test_dense_head_and_ridge_readout():
    model = classifier([{"type": "gru", "units": 4}], dense_units=6, dense_dropout=0.5)
    assert model.get_layer("dense").units == 6
    assert model.get_layer("dense_dropout").rate == 0.5
    ridge = classifier([{"type": "gru", "units": 4}], readout="ridge")
    assert ridge.get_layer("readout").units == CLASSES
    probabilities = np.asarray(ridge(token_ids(), training=False))
    np.testing.assert_allclose(probabilities.sum(axis=1), np.ones(5), atol=1e-5)


def test_uniform_initializer_range_and_seeded_kernels():
    model = classifier([{"type": "lstm", "units": 4}], initializer="uniform", init_scale=0.05)
    kernel = model.get_layer("recurrent_0").cell.kernel.numpy()
    assert np.abs(kernel).max() <= 0.05 and np.abs(kernel).max() > 0.01
    same = classifier([{"type": "lstm", "units": 4}], initializer="uniform", init_scale=0.05)
    np.testing.assert_array_equal(same.get_layer("recurrent_0").cell.kernel.numpy(), kernel)
    other = classifier([{"type": "lstm", "units": 4}], initializer="uniform", init_scale=0.05, seed=1)
    assert not np.array_equal(other.get_layer("recurrent_0").cell.kernel.numpy(), kernel)


# --- masking ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, pooling", [
    ("lstm", "last"), ("gru", "last"), ("simple_rnn", "last"), ("bilstm", "last"), ("bigru", "last"),
    ("lstm", "mean"), ("bilstm", "max"),
])
def test_padding_does_not_change_the_prediction(kind, pooling):
    model = classifier([{"type": kind, "units": 4}, {"type": kind, "units": 3}], pooling=pooling)
    unpadded = np.array([[3, 4, 5]], dtype=np.int32)
    padded = np.array([[3, 4, 5, 0, 0]], dtype=np.int32)
    expected = np.asarray(model(unpadded, training=False))
    np.testing.assert_allclose(np.asarray(model(padded, training=False)), expected, atol=1e-6)
    # In a batch with a longer sentence (padding to the batch's longest, as SequenceBatches does).
    batch = np.array([[3, 4, 5, 0, 0, 0], [7, 8, 9, 10, 11, 12]], dtype=np.int32)
    np.testing.assert_allclose(np.asarray(model(batch, training=False))[0], expected[0], atol=1e-6)
    # The padding really is masked: a different real token changes the prediction.
    changed = np.asarray(model(np.array([[3, 4, 6]], dtype=np.int32), training=False))
    assert np.abs(changed - expected).max() > 1e-6


def test_a_pooled_classifier_survives_a_keras_file_round_trip(tmp_path):
    model = classifier([{"type": "bilstm", "units": 4}], pooling="mean")
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.get_layer("mean_pooling"), MaskedGlobalPooling)
    ids = np.array([[3, 4, 5, 0], [6, 7, 8, 9]], dtype=np.int32)
    np.testing.assert_allclose(np.asarray(restored(ids)), np.asarray(model(ids)), atol=1e-6)
