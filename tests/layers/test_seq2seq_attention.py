"""Tests of pipeline.layers.seq2seq_attention: DecoderAttention against NumPy and Keras' built-ins,
SentenceVector and RepeatOverTime, masking and saving."""

import keras
import numpy as np
import pytest

from pipeline.layers.seq2seq_attention import DecoderAttention, RepeatOverTime, SentenceVector

RNG = np.random.default_rng(0)
QUERIES = RNG.normal(size=(2, 3, 4)).astype(np.float32)  # (batch, target_steps, query_features)
VALUES = RNG.normal(size=(2, 5, 4)).astype(np.float32)  # (batch, source_steps, value_features)
VALUE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)


def random_layer(score: str, units: int = 6, seed: int = 1) -> DecoderAttention:
    layer = DecoderAttention(score, units)
    layer.build([QUERIES.shape, VALUES.shape])
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.7, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


def numpy_attention(layer: DecoderAttention, queries, values, mask):
    """The definitions in float64, one (t, j) pair at a time."""
    weights = [w.astype(np.float64) for w in layer.get_weights()]
    batch, target_steps, source_steps = queries.shape[0], queries.shape[1], values.shape[1]
    scores = np.zeros((batch, target_steps, source_steps))
    for b in range(batch):
        for t in range(target_steps):
            for j in range(source_steps):
                if layer.score == "additive":
                    query_kernel, value_kernel, bias, score_vector = weights
                    scores[b, t, j] = score_vector @ np.tanh(queries[b, t] @ query_kernel + values[b, j] @ value_kernel
                                                             + bias)
                else:
                    scores[b, t, j] = queries[b, t] @ weights[0] @ values[b, j]
    mask = np.ones(scores.shape, bool) if mask is None else np.broadcast_to(mask[:, None, :], scores.shape)
    exponentials = np.where(mask, np.exp(scores - np.where(mask, scores, -np.inf).max(-1, keepdims=True)), 0.0)
    alpha = exponentials / exponentials.sum(-1, keepdims=True)
    return alpha @ values, alpha


def test_weights_have_the_documented_names_and_shapes():
    additive, multiplicative = DecoderAttention("additive", 6), DecoderAttention("multiplicative")
    additive.build([(None, None, 4), (None, None, 3)])
    multiplicative.build([(None, None, 4), (None, None, 3)])
    assert [(w.name, tuple(w.shape)) for w in additive.weights] == [
        ("query_kernel", (4, 6)), ("value_kernel", (3, 6)), ("bias", (6,)), ("score_vector", (6,))]
    assert [(w.name, tuple(w.shape)) for w in multiplicative.weights] == [("kernel", (4, 3))]


@pytest.mark.parametrize("score", ["additive", "multiplicative"])
@pytest.mark.parametrize("mask", [VALUE_MASK, None], ids=["masked", "unmasked"])
def test_random_weights_match_the_numpy_definition(score, mask):
    layer = random_layer(score)
    context, alpha = layer([QUERIES, VALUES], mask=None if mask is None else [None, mask])
    expected_context, expected_alpha = numpy_attention(layer, QUERIES, VALUES, mask)
    np.testing.assert_allclose(np.asarray(alpha), expected_alpha, atol=1e-5)
    np.testing.assert_allclose(np.asarray(context), expected_context, atol=1e-5)
    if mask is not None:
        assert np.all(np.asarray(alpha)[0, :, 3:] == 0.0)
    np.testing.assert_allclose(np.asarray(alpha).sum(-1), 1.0, atol=1e-6)


def test_multiplicative_with_identity_kernel_is_keras_dot_product_attention():
    layer = DecoderAttention("multiplicative")
    layer.build([QUERIES.shape, VALUES.shape])
    layer.set_weights([np.eye(4, dtype=np.float32)])
    context, alpha = layer([QUERIES, VALUES], mask=[None, VALUE_MASK])
    keras_context, keras_alpha = keras.layers.Attention(score_mode="dot")(
        [QUERIES, VALUES], mask=[None, VALUE_MASK], return_attention_scores=True)
    np.testing.assert_allclose(np.asarray(context), np.asarray(keras_context), atol=1e-5)
    np.testing.assert_allclose(np.asarray(alpha), np.asarray(keras_alpha), atol=1e-5)


def test_additive_with_identity_projections_is_keras_additive_attention():
    """Keras' AdditiveAttention scores sum(scale * tanh(q + k)): ours with W_q = W_k = I, b = 0, v = scale."""
    layer = DecoderAttention("additive", units=4)
    layer.build([QUERIES.shape, VALUES.shape])
    scale = np.linspace(0.5, 1.5, 4).astype(np.float32)
    layer.set_weights([np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32), np.zeros(4, np.float32), scale])
    builtin = keras.layers.AdditiveAttention()
    builtin.build([QUERIES.shape, VALUES.shape])
    builtin.set_weights([scale])
    context, alpha = layer([QUERIES, VALUES], mask=[None, VALUE_MASK])
    keras_context, keras_alpha = builtin([QUERIES, VALUES], mask=[None, VALUE_MASK], return_attention_scores=True)
    np.testing.assert_allclose(np.asarray(context), np.asarray(keras_context), atol=1e-5)
    np.testing.assert_allclose(np.asarray(alpha), np.asarray(keras_alpha), atol=1e-5)


def test_constructor_checks_name_the_argument():
    with pytest.raises(ValueError, match="score"):
        DecoderAttention("dot")
    with pytest.raises(ValueError, match="units"):
        DecoderAttention("additive", 0)
    with pytest.raises(ValueError, match="directions"):
        SentenceVector(3)


def test_sentence_vector_reads_the_final_states_off_the_sequence():
    sequence = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    forward = np.asarray(SentenceVector(1)(sequence, mask=mask))
    np.testing.assert_array_equal(forward, sequence[[0, 1], [1, 3]])
    both = np.asarray(SentenceVector(2)(sequence, mask=mask))  # forward half at the end, backward half at step 0
    np.testing.assert_array_equal(both[:, :3], sequence[[0, 1], [1, 3], :3])
    np.testing.assert_array_equal(both[:, 3:], sequence[:, 0, 3:])
    np.testing.assert_array_equal(np.asarray(SentenceVector(1)(sequence)), sequence[:, -1])


def test_sentence_vector_equals_keras_final_state_of_a_masked_bidirectional_lstm():
    ids = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    embedded = keras.layers.Embedding(6, 3, mask_zero=True)
    sequence_layer = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True, seed=1))
    inputs = embedded(ids)
    sequences = sequence_layer(inputs)
    final_layer = keras.layers.Bidirectional(keras.layers.LSTM(4, seed=1))
    final_layer(inputs)
    final_layer.set_weights(sequence_layer.get_weights())
    expected = np.asarray(final_layer(inputs))
    got = np.asarray(SentenceVector(2)(sequences, mask=ids != 0))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_repeat_over_time_and_saving(tmp_path):
    source = keras.Input((None,), dtype="int32")
    encoded = keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True))(
        keras.layers.Embedding(7, 4, mask_zero=True)(source))
    sentence = SentenceVector(2)(encoded)
    context, _ = DecoderAttention("additive", 5)([encoded, encoded])
    repeated = RepeatOverTime()([sentence, encoded])
    model = keras.Model(source, keras.layers.Concatenate()([context, repeated]))
    ids = np.array([[1, 2, 3, 0], [4, 5, 6, 2]])
    output = np.asarray(model(ids))
    assert output.shape == (2, 4, 12)
    np.testing.assert_allclose(output[:, 1, 6:], np.asarray(SentenceVector(2)(np.asarray(
        model.layers[2](model.layers[1](ids))), mask=ids != 0)), atol=1e-6)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(reloaded(ids)), output, atol=1e-6)
