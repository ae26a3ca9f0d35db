"""The tied AdaptiveSoftmax (``tie_weights=True``): one embedding for the input ids and every output row."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.layers.adaptive_softmax import AdaptiveSoftmax

V, DIM = 50, 16
CUTOFFS = [10, 25]


def tied_layer(cutoffs=CUTOFFS, seed=0, **options) -> AdaptiveSoftmax:
    layer = AdaptiveSoftmax(V, cutoffs, tie_weights=True, embedding_dim=DIM, **options)
    layer.build((None, None))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.7, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


def hidden_states(seed=1, shape=(3, 7)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(*shape, DIM)).astype(np.float32)


def numpy_log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def numpy_tied_adaptive(layer: AdaptiveSoftmax, hidden: np.ndarray) -> np.ndarray:
    """The definition in float64: head words h·E_w + b_w, cluster entries h·k_i + b_i, cluster i
    (h P_i)·(E_w P_i) + b_w."""
    weights = [w.astype(np.float64) for w in layer.get_weights()]
    embeddings, cluster_kernel, head_bias, tails = weights[0], weights[1], weights[2], weights[3:]
    first = layer.cutoffs[0] if layer.cutoffs else V
    head = numpy_log_softmax(hidden @ np.concatenate([embeddings[:first].T, cluster_kernel], axis=1) + head_bias)
    parts = [head[..., :first]]
    for i, (start, end) in enumerate(layer.cluster_bounds()):
        projection, bias = tails[2 * i: 2 * i + 2]
        logits = (hidden @ projection) @ (embeddings[start:end] @ projection).T + bias
        parts.append(head[..., first + i: first + i + 1] + numpy_log_softmax(logits))
    return np.concatenate(parts, axis=-1)


def test_weights_are_the_embedding_the_cluster_entries_and_the_projections_without_tail_kernels():
    layer = AdaptiveSoftmax(V, CUTOFFS, projection_factor=2, tie_weights=True, embedding_dim=DIM)
    layer.build((None, None))
    shapes = [(w.path.split("/")[-1], tuple(w.shape)) for w in layer.weights]
    assert shapes == [("embeddings", (V, DIM)), ("head_kernel", (DIM, 2)), ("head_bias", (12,)),
                      ("tail_1_projection", (DIM, 8)), ("tail_1_bias", (15,)),
                      ("tail_2_projection", (DIM, 4)), ("tail_2_bias", (25,))]


@pytest.mark.parametrize("cutoffs", [[], [10], [10, 25]])
def test_tied_log_probabilities_match_the_numpy_definition_and_sum_to_one(cutoffs):
    layer = tied_layer(cutoffs)
    hidden = hidden_states()
    log_probs = keras.ops.convert_to_numpy(layer(hidden))
    np.testing.assert_allclose(log_probs, numpy_tied_adaptive(layer, hidden.astype(np.float64)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.exp(log_probs.astype(np.float64)).sum(-1), 1.0, atol=1e-5)


def test_called_on_ids_it_embeds_them_and_masks_padding():
    layer = tied_layer()
    ids = np.array([[3, 12, 40, 0]], dtype=np.int32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(ids)), layer.get_weights()[0][ids])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.compute_mask(ids)), [[True, True, True, False]])


@pytest.mark.parametrize("graph", [False, True])
def test_tied_target_path_equals_the_full_distribution_and_trains_the_embedding(graph):
    layer = tied_layer()
    hidden = tf.constant(hidden_states())
    targets = np.random.default_rng(2).integers(0, V, size=(3, 7)).astype(np.int32)
    targets[0, :4] = [1, 9, 10, 49]  # head word and cluster edges
    call = tf.function(lambda h, t: layer([h, t])) if graph else (lambda h, t: layer([h, t]))
    with tf.GradientTape(persistent=True) as tape:
        picked = call(hidden, targets)
        full = tf.gather(layer(hidden), targets, batch_dims=2)
        picked_sum, full_sum = tf.reduce_sum(picked), tf.reduce_sum(full)
    np.testing.assert_allclose(picked.numpy(), full.numpy(), rtol=1e-5, atol=1e-5)
    embedding_gradient = tf.convert_to_tensor(tape.gradient(picked_sum, layer.embeddings.value)).numpy()
    np.testing.assert_allclose(embedding_gradient,
                               tf.convert_to_tensor(tape.gradient(full_sum, layer.embeddings.value)).numpy(),
                               rtol=1e-4, atol=1e-5)
    # every output row reaches the embedding: head words and the words of both clusters
    assert all(np.abs(embedding_gradient[start:end]).sum() > 0 for start, end in [(0, 10), (10, 25), (25, 50)])


def test_a_tied_model_round_trips_through_a_keras_file_in_safe_mode(tmp_path):
    tokens = keras.Input((None,), dtype="int32")
    tied = AdaptiveSoftmax(V, CUTOFFS, seed=1, tie_weights=True, embedding_dim=DIM, name="embedding")
    x = keras.layers.LSTM(DIM, return_sequences=True)(tied(tokens))
    model = keras.Model(tokens, tied(x))
    ids = np.random.default_rng(0).integers(1, V, size=(2, 6))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    assert loaded.get_layer("embedding").get_config()["tie_weights"] is True


def test_mixed_bfloat16_tied_still_gives_a_float32_distribution():
    layer = AdaptiveSoftmax(V, CUTOFFS, dtype="mixed_bfloat16", seed=0, tie_weights=True, embedding_dim=DIM)
    log_probs = layer(layer(np.array([[1, 20, 40]], dtype=np.int32)))
    assert keras.backend.standardize_dtype(log_probs.dtype) == "float32"
    np.testing.assert_allclose(np.exp(keras.ops.convert_to_numpy(log_probs)).sum(-1), 1.0, atol=1e-2)


def test_tied_needs_the_embedding_size():
    with pytest.raises(ValueError, match="embedding_dim"):
        AdaptiveSoftmax(V, CUTOFFS, tie_weights=True)
