"""Tests of pipeline.layers.attention: AttentionPooling against NumPy, its masking, Keras' Softmax and saving."""

import keras
import numpy as np
import pytest

from pipeline.layers.attention import AttentionPooling

FEATURES, UNITS = 3, 4
INPUTS = (np.arange(2 * 4 * FEATURES, dtype=np.float32).reshape(2, 4, FEATURES) - 10.0) / 10.0
MASK = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)


def constant_layer(**options) -> AttentionPooling:
    """Kernel 0.1, bias 0, context 0.2 everywhere: numbers a few lines of NumPy reproduce."""
    return AttentionPooling(UNITS, kernel_initializer=keras.initializers.Constant(0.1),
                            context_initializer=keras.initializers.Constant(0.2), **options)


def random_layer(seed: int = 0, **options) -> AttentionPooling:
    layer = AttentionPooling(UNITS, **options)
    layer.build((None, None, FEATURES))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.8, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


def numpy_attention(layer: AttentionPooling, inputs: np.ndarray, mask: np.ndarray | None):
    """The definition in float64: u = tanh(h W + b), score = u v, softmax over the real steps, sum alpha h."""
    kernel, bias, context = (w.astype(np.float64) for w in layer.get_weights())
    scores = np.tanh(inputs.astype(np.float64) @ kernel + bias) @ context
    mask = np.ones(scores.shape, bool) if mask is None else mask
    exponentials = np.where(mask, np.exp(scores - np.where(mask, scores, -np.inf).max(axis=1, keepdims=True)), 0.0)
    alpha = exponentials / exponentials.sum(axis=1, keepdims=True)
    return (alpha[..., None] * inputs).sum(axis=1), alpha


def test_weights_have_the_documented_names_and_shapes():
    layer = AttentionPooling(UNITS)
    layer.build((None, None, FEATURES))
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [
        ("kernel", (FEATURES, UNITS)), ("bias", (UNITS,)), ("context", (UNITS,))]


def test_exact_numbers_with_constant_weights():
    layer = constant_layer(return_attention=True)
    pooled, alpha = layer(INPUTS, mask=MASK)
    # score_t = 4 * 0.2 * tanh(0.1 * sum(h_t)); softmax over steps 0, 1 (row 0) and 0..3 (row 1)
    expected_alpha = np.array([[0.4828979, 0.5171021, 0.0, 0.0], [0.2247599, 0.2412156, 0.2583012, 0.2757233]])
    expected_pooled = np.array([[-0.8448694, -0.7448694, -0.6448694], [0.6754964, 0.7754964, 0.8754964]])
    np.testing.assert_allclose(np.asarray(alpha), expected_alpha, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pooled), expected_pooled, atol=1e-6)
    reference_pooled, reference_alpha = numpy_attention(layer, INPUTS, MASK)
    np.testing.assert_allclose(reference_alpha, expected_alpha, atol=1e-6)
    np.testing.assert_allclose(reference_pooled, expected_pooled, atol=1e-6)


@pytest.mark.parametrize("mask", [MASK, None], ids=["masked", "unmasked"])
def test_random_weights_match_the_numpy_definition(mask):
    layer = random_layer(return_attention=True)
    inputs = np.random.default_rng(3).normal(size=(5, 7, FEATURES)).astype(np.float32)
    mask = None if mask is None else np.random.default_rng(4).random((5, 7)) < 0.7
    if mask is not None:
        mask[:, 0] = True
    pooled, alpha = layer(inputs, mask=mask)
    reference_pooled, reference_alpha = numpy_attention(layer, inputs, mask)
    np.testing.assert_allclose(np.asarray(alpha), reference_alpha, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pooled), reference_pooled, atol=1e-5)


def test_padding_gets_zero_weight_and_does_not_change_the_output():
    layer = random_layer(return_attention=True)
    pooled, alpha = (np.asarray(t) for t in layer(INPUTS, mask=MASK))
    assert np.all(alpha[~MASK] == 0.0)
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, atol=1e-6)
    alone_pooled, alone_alpha = (np.asarray(t) for t in layer(INPUTS[:1, :2]))
    np.testing.assert_allclose(pooled[0], alone_pooled[0], atol=1e-6)
    np.testing.assert_allclose(alpha[0, :2], alone_alpha[0], atol=1e-6)
    # Whatever sits in the padded steps, it is ignored.
    noisy = INPUTS.copy()
    noisy[0, 2:] = 1e3
    np.testing.assert_allclose(np.asarray(layer(noisy, mask=MASK)[0]), pooled, atol=1e-6)


def test_a_fully_masked_row_gives_zeros_not_nan():
    mask = MASK.copy()
    mask[0] = False
    pooled, alpha = (np.asarray(t) for t in random_layer(return_attention=True)(INPUTS, mask=mask))
    assert np.all(np.isfinite(pooled)) and np.all(np.isfinite(alpha))
    np.testing.assert_array_equal(alpha[0], 0.0)
    np.testing.assert_array_equal(pooled[0], 0.0)
    np.testing.assert_allclose(alpha[1].sum(), 1.0, atol=1e-6)


def test_masked_softmax_equals_keras_softmax_with_the_mask():
    layer = random_layer(return_attention=True)
    inputs = np.random.default_rng(5).normal(size=(4, 6, FEATURES)).astype(np.float32)
    mask = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0] * 6], dtype=bool)
    kernel, bias, context = layer.get_weights()
    scores = np.tanh(inputs @ kernel + bias) @ context
    expected = np.asarray(keras.layers.Softmax()(scores, mask=mask))
    np.testing.assert_allclose(np.asarray(layer(inputs, mask=mask)[1]), expected, atol=1e-6)


def test_without_return_attention_only_the_pooled_output():
    layer = random_layer()
    pooled = layer(INPUTS, mask=MASK)
    assert tuple(pooled.shape) == (2, FEATURES)
    assert layer.compute_output_shape((None, 4, FEATURES)) == (None, FEATURES)
    both = random_layer(return_attention=True).compute_output_shape((None, 4, FEATURES))
    assert both == [(None, FEATURES), (None, 4)]


def attention_model(return_attention: bool) -> keras.Model:
    ids = keras.Input(shape=(None,), dtype="int32")
    hidden = keras.layers.GRU(5, return_sequences=True, seed=0)(keras.layers.Embedding(12, 4, mask_zero=True)(ids))
    pooling = AttentionPooling(6, return_attention=return_attention, name="attention_pooling")(hidden)
    pooled = pooling[0] if return_attention else pooling
    return keras.Model(ids, keras.layers.Dense(3, activation="softmax")(pooled))


def test_a_model_receives_the_embedding_mask():
    model = attention_model(return_attention=True)
    layer = model.get_layer("attention_pooling")
    explainer = keras.Model(model.inputs, [model.outputs[0], layer.output[1]])
    batch = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]], "int32")
    probabilities, alpha = (np.asarray(t) for t in explainer.predict_on_batch(batch))
    np.testing.assert_array_equal(alpha[0, 3:], 0.0)
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, atol=1e-6)
    alone = np.asarray(explainer.predict_on_batch(np.array([[3, 4, 5]], "int32"))[0])
    np.testing.assert_allclose(probabilities[:1], alone, atol=1e-6)


@pytest.mark.parametrize("return_attention", [True, False])
def test_a_model_round_trips_through_a_keras_file_in_safe_mode(tmp_path, return_attention):
    model = attention_model(return_attention)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    layer = loaded.get_layer("attention_pooling")
    assert isinstance(layer, AttentionPooling)
    assert (layer.units, layer.return_attention) == (6, return_attention)
    ids = np.array([[3, 4, 5, 0], [6, 7, 8, 9]], dtype=np.int32)
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(model(ids)), atol=1e-6)


def test_config_round_trip_keeps_the_initializers():
    layer = AttentionPooling(7, return_attention=True, kernel_initializer=keras.initializers.GlorotUniform(seed=3),
                             name="pool")
    restored = AttentionPooling.from_config(layer.get_config())
    assert (restored.units, restored.return_attention, restored.name) == (7, True, "pool")
    restored.build((None, None, FEATURES))
    layer.build((None, None, FEATURES))
    np.testing.assert_array_equal(restored.kernel.numpy(), layer.kernel.numpy())


@pytest.mark.parametrize("options, argument", [({"units": 0}, "units"), ({"units": 2.5}, "units"),
                                               ({"units": True}, "units"),
                                               ({"return_attention": "yes"}, "return_attention")])
def test_bad_arguments_name_the_argument(options, argument):
    with pytest.raises(ValueError, match=f"Argument `{argument}`"):
        AttentionPooling(**options)


def test_inputs_must_be_three_dimensional():
    with pytest.raises(ValueError, match="timesteps"):
        AttentionPooling(3)(np.ones((2, 4), "float32"))
