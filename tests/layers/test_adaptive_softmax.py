"""AdaptiveSoftmax, untied and tied, against its definition in NumPy, the full softmax, and Keras' saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.layers.adaptive_softmax import AdaptiveSoftmax, default_cutoffs

V, DIM = 50, 16
CUTOFFS = [10, 25]


def layer_with_random_weights(cutoffs=CUTOFFS, vocabulary_size=V, seed=0, **options) -> AdaptiveSoftmax:
    layer = AdaptiveSoftmax(vocabulary_size, cutoffs, **options)
    layer.build((None, None, DIM))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.7, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


def hidden_states(seed=1, shape=(3, 7)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(*shape, DIM)).astype(np.float32)


def numpy_log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def numpy_adaptive(layer: AdaptiveSoftmax, hidden: np.ndarray) -> np.ndarray:
    """The definition in float64: head log-softmax, plus cluster entry + tail log-softmax."""
    weights = [w.astype(np.float64) for w in layer.get_weights()]
    head_kernel, head_bias, tails = weights[0], weights[1], weights[2:]
    head = numpy_log_softmax(hidden @ head_kernel + head_bias)
    first = layer.cutoffs[0] if layer.cutoffs else V
    parts = [head[..., :first]]
    for i in range(len(layer.cutoffs)):
        projection, kernel, bias = tails[3 * i: 3 * i + 3]
        parts.append(head[..., first + i: first + i + 1] + numpy_log_softmax(hidden @ projection @ kernel + bias))
    return np.concatenate(parts, axis=-1)


def test_default_cutoffs_follow_the_vocabulary_size():
    assert default_cutoffs(1000) == []
    assert default_cutoffs(2400) == []  # a 400-word cluster is not worth a head entry
    assert default_cutoffs(3000) == [2000]
    assert default_cutoffs(12880) == [2000, 10000]
    assert default_cutoffs(22000) == [2000, 10000]
    assert default_cutoffs(10500) == [2000]
    assert default_cutoffs(300000) == [2000, 10000, 50000]
    assert default_cutoffs(400000) == [2000, 10000, 50000, 250000]


def test_log_probabilities_match_the_numpy_definition():
    layer = layer_with_random_weights()
    hidden = hidden_states()
    expected = numpy_adaptive(layer, hidden.astype(np.float64))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(hidden)), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cutoffs", [[], [10], [10, 25], [1, 2, 49]])
def test_probabilities_sum_to_one_over_the_whole_vocabulary(cutoffs):
    layer = layer_with_random_weights(cutoffs)
    probabilities = np.exp(keras.ops.convert_to_numpy(layer(hidden_states())).astype(np.float64))
    assert probabilities.shape == (3, 7, V)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    assert (probabilities > 0).all()


def test_without_cutoffs_it_is_a_dense_log_softmax():
    layer = layer_with_random_weights([])
    hidden = hidden_states()
    kernel, bias = layer.get_weights()
    expected = numpy_log_softmax(hidden.astype(np.float64) @ kernel + bias)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(hidden)), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cutoffs", [[], [10, 25]])
@pytest.mark.parametrize("graph", [False, True])
def test_target_path_equals_the_full_distribution_at_the_targets(cutoffs, graph):
    layer = layer_with_random_weights(cutoffs)
    hidden = hidden_states()
    targets = np.random.default_rng(2).integers(0, V, size=(3, 7)).astype(np.int32)
    targets[0, :4] = [0, 9, 10, 49]  # cluster edges
    call = tf.function(lambda h, t: layer([h, t])) if graph else (lambda h, t: layer([h, t]))
    picked = keras.ops.convert_to_numpy(call(hidden, targets))
    full = keras.ops.convert_to_numpy(layer(hidden))
    assert picked.shape == (3, 7)
    np.testing.assert_allclose(picked, np.take_along_axis(full, targets[..., None], -1)[..., 0], rtol=1e-5, atol=1e-5)


def test_target_path_when_no_target_falls_in_a_cluster():
    layer = layer_with_random_weights()
    hidden = hidden_states()
    targets = np.full((3, 7), 4, np.int32)
    picked = keras.ops.convert_to_numpy(layer([hidden, targets]))
    np.testing.assert_allclose(picked, keras.ops.convert_to_numpy(layer(hidden))[..., 4], rtol=1e-5, atol=1e-5)


def test_target_path_gradients_equal_those_of_the_full_distribution():
    layer = layer_with_random_weights()
    hidden = tf.constant(hidden_states())
    targets = np.random.default_rng(3).integers(0, V, size=(3, 7)).astype(np.int32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(hidden)
        picked = tf.reduce_sum(layer([hidden, targets]))
        full = tf.reduce_sum(tf.gather(layer(hidden), targets, batch_dims=2))
    for source in [hidden, *layer.trainable_weights]:
        expected = tf.convert_to_tensor(tape.gradient(full, source))
        np.testing.assert_allclose(tf.convert_to_tensor(tape.gradient(picked, source)).numpy(), expected.numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_cluster_projections_shrink_by_the_projection_factor():
    layer = AdaptiveSoftmax(V, CUTOFFS, projection_factor=2)
    layer.build((None, None, DIM))
    shapes = {w.path.split("/")[-1]: tuple(w.shape) for w in layer.weights}
    assert shapes["head_kernel"] == (DIM, 10 + 2)
    assert shapes["tail_1_projection"] == (DIM, 8) and shapes["tail_1_kernel"] == (8, 15)
    assert shapes["tail_2_projection"] == (DIM, 4) and shapes["tail_2_kernel"] == (4, 25)
    full_softmax = DIM * V + V
    assert layer.count_params() < full_softmax


def test_training_on_the_target_path_lowers_the_negative_log_likelihood():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(64, 5, DIM)).astype(np.float32)
    targets = np.argmax(hidden @ rng.normal(size=(DIM, V)), axis=-1).astype(np.int32)  # linear in the input
    h_in = keras.Input((None, DIM))
    t_in = keras.Input((None,), dtype="int32")
    adaptive = AdaptiveSoftmax(V, CUTOFFS, seed=0)
    model = keras.Model([h_in, t_in], adaptive([h_in, t_in]))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=lambda y_true, y_pred: -y_pred)
    before = float(-np.mean(model.predict([hidden, targets], verbose=0)))
    model.fit([hidden, targets], targets, epochs=30, batch_size=16, verbose=0)
    after = float(-np.mean(model.predict([hidden, targets], verbose=0)))
    assert after < 0.5 * before


def test_the_seed_fixes_the_initial_weights():
    first, second = (AdaptiveSoftmax(V, CUTOFFS, seed=5) for _ in range(2))
    other = AdaptiveSoftmax(V, CUTOFFS, seed=6)
    for layer in (first, second, other):
        layer.build((None, DIM))
    np.testing.assert_array_equal(first.get_weights()[0], second.get_weights()[0])
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


def test_a_model_round_trips_through_a_keras_file_in_safe_mode(tmp_path):
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(V, DIM, mask_zero=True)(tokens)
    x = keras.layers.LSTM(DIM, return_sequences=True)(x)
    model = keras.Model(tokens, AdaptiveSoftmax(V, CUTOFFS, projection_factor=2, seed=1, name="adaptive")(x))
    ids = np.random.default_rng(0).integers(1, V, size=(2, 6))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    assert loaded.get_layer("adaptive").get_config()["cutoffs"] == CUTOFFS


def test_mixed_bfloat16_still_gives_a_float32_distribution():
    layer = AdaptiveSoftmax(V, CUTOFFS, dtype="mixed_bfloat16", seed=0)
    log_probs = layer(hidden_states())
    assert keras.backend.standardize_dtype(log_probs.dtype) == "float32"
    np.testing.assert_allclose(np.exp(keras.ops.convert_to_numpy(log_probs)).sum(-1), 1.0, atol=1e-4)


def test_the_mask_of_the_hidden_states_passes_through():
    layer = AdaptiveSoftmax(V, CUTOFFS)
    mask = np.array([[True, False]])
    assert layer.compute_mask(None, mask) is mask
    assert layer.compute_mask(None, [mask, None]) is mask


@pytest.mark.parametrize("arguments, message", [
    ((V, [0, 10]), "cutoffs"), ((V, [10, 10]), "cutoffs"), ((V, [60]), "cutoffs"),
    ((0, []), "vocabulary_size"), ((V, [10], 0), "projection_factor"),
])
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveSoftmax(*arguments)


# ------------------------------------------------------------------ tied (tie_weights=True): one embedding for the
# input ids and every output row
def tied_layer(cutoffs=CUTOFFS, seed=0, **options) -> AdaptiveSoftmax:
    layer = AdaptiveSoftmax(V, cutoffs, tie_weights=True, embedding_dim=DIM, **options)
    layer.build((None, None))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.7, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


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
