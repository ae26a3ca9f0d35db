"""Tests of ``pipeline.language_model.model``: the network, tied embeddings, conditioning and the loss.

Tiny models whose weights are set by hand, checked to exact numbers against a NumPy forward pass.
"""


import keras
import numpy as np
import pytest
from lm_helpers import (
    model_settings,
    numpy_mean_cross_entropy,
    numpy_simple_rnn_generator,
    random_matrix,
    set_random_weights,
    softmax,
)

from pipeline.errors import PipelineError
from pipeline.language_model.evaluate import reset_states
from pipeline.language_model.model import (
    ConcatLabel,
    TargetNegativeLogLikelihood,
    TiedEmbedding,
    TokenCrossEntropy,
    build_generator,
    build_generator_pair,
    check_generator,
)
from pipeline.models import trainable_parameters


# ------------------------------------------------------------------ build_generator
@pytest.mark.parametrize("tie_weights", [False, True], ids=["untied", "tied"])
def test_build_generator_gives_a_next_token_distribution_per_step(tie_weights):
    vocabulary, dimension = 11, 4
    model = build_generator(model_settings({"type": "lstm", "units": 6}, tie_weights=tie_weights),
                            random_matrix(vocabulary, dimension, 0), seed=1)
    token_ids = np.array([[2, 5, 6, 7, 0], [2, 8, 0, 0, 0]], dtype=np.int32)
    probabilities = np.asarray(model(token_ids))
    assert probabilities.shape == (2, 5, vocabulary)
    assert (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    # any batch size and any number of steps
    assert np.asarray(model(np.array([[2]], dtype=np.int32))).shape == (1, 1, vocabulary)


def test_build_generator_starts_from_the_embedding_matrix():
    matrix = random_matrix(9, 4, 2)
    model = build_generator(model_settings(), matrix, seed=0)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], matrix)


def test_lstm_parameter_counts_by_hand_untied_tied_and_projected():
    vocabulary, dimension = 50, 8

    def lstm(inputs, units):
        return 4 * (inputs * units + units * units + units)

    untied = build_generator(model_settings({"type": "lstm", "units": 8}), random_matrix(vocabulary, dimension, 0), 0)
    assert trainable_parameters(untied) == vocabulary * dimension + lstm(8, 8) + 8 * vocabulary + vocabulary

    tied = build_generator(model_settings({"type": "lstm", "units": 8}, tie_weights=True),
                           random_matrix(vocabulary, dimension, 0), 0)
    # one (V, d) matrix used twice, plus the output bias; no (units, V) output kernel
    assert trainable_parameters(tied) == vocabulary * dimension + vocabulary + lstm(8, 8)
    assert [tuple(w.shape) for w in tied.weights].count((vocabulary, dimension)) == 1
    assert not any(layer.name == "projection" for layer in tied.layers)

    projected = build_generator(model_settings({"type": "lstm", "units": 12}, tie_weights=True),
                                random_matrix(vocabulary, dimension, 0), 0)
    # units != embedding dim: a Dense projection (12 -> 8) before the tied output
    assert projected.get_layer("projection").get_weights()[0].shape == (12, dimension)
    assert trainable_parameters(projected) == (vocabulary * dimension + vocabulary + lstm(8, 12)
                                               + 12 * dimension + dimension)
    assert [tuple(w.shape) for w in projected.weights].count((vocabulary, dimension)) == 1


@pytest.mark.parametrize("units", [4, 7], ids=["same-size", "projection"])
def test_tied_logits_equal_h_times_embedding_transposed_plus_bias(units):
    vocabulary, dimension = 10, 4
    model = build_generator(model_settings({"type": "simple_rnn", "units": units}, tie_weights=True),
                            random_matrix(vocabulary, dimension, 0), 0)
    set_random_weights(model, seed=units)  # the output bias too, so it is checked
    token_ids = np.array([[2, 5, 9, 4], [2, 7, 6, 8]], dtype=np.int32)
    expected = numpy_simple_rnn_generator(model, token_ids, tied=True)
    np.testing.assert_allclose(np.asarray(model(token_ids)), expected, rtol=1e-5, atol=1e-6)


def test_tied_embedding_is_one_matrix_for_input_and_output():
    vocabulary, dimension = 10, 4
    model = build_generator(model_settings({"type": "simple_rnn", "units": 4}, tie_weights=True),
                            random_matrix(vocabulary, dimension, 0), 0)
    set_random_weights(model, seed=3)
    token_ids = np.array([[2, 5, 9]], dtype=np.int32)
    before = np.asarray(model(token_ids))
    # change one row of E that the input never reads: only the output side can see it
    layer = model.get_layer("embedding")
    matrix, bias = layer.get_weights()
    matrix[8] += 1.0
    layer.set_weights([matrix, bias])
    after = np.asarray(model(token_ids))
    assert not np.allclose(before[..., 8], after[..., 8])
    np.testing.assert_allclose(after, numpy_simple_rnn_generator(model, token_ids, tied=True), rtol=1e-5, atol=1e-6)


def test_untied_output_against_numpy():
    model = build_generator(model_settings({"type": "simple_rnn", "units": 5}), random_matrix(12, 4, 0), 0)
    set_random_weights(model, seed=4)
    token_ids = np.array([[2, 11, 4, 6], [2, 3, 5, 10]], dtype=np.int32)
    np.testing.assert_allclose(np.asarray(model(token_ids)), numpy_simple_rnn_generator(model, token_ids, tied=False),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tie_weights, conditioning", [(True, "none"), (True, "concat"), (False, "initial_state")])
def test_generator_survives_a_keras_file_round_trip(tmp_path, tie_weights, conditioning):
    model = build_generator(model_settings({"type": "lstm", "units": 5}, tie_weights=tie_weights,
                                           conditioning=conditioning), random_matrix(10, 4, 0), 0, num_labels=2)
    set_random_weights(model, seed=13)
    inputs = np.array([[2, 5, 7, 0]], dtype=np.int32)
    if conditioning != "none":
        inputs = (inputs, np.array([1], dtype=np.int32))
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(restored(inputs)), np.asarray(model(inputs)))


# ------------------------------------------------------------------ TiedEmbedding
def test_tied_embedding_masks_padding_id_zero():
    layer = TiedEmbedding(6, 3)
    token_ids = np.array([[2, 4, 0, 0], [5, 0, 0, 0]], dtype=np.int32)
    vectors = np.asarray(layer(token_ids))
    assert vectors.shape == (2, 4, 3)
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(token_ids)), token_ids != 0)
    np.testing.assert_array_equal(vectors[0, 1], np.asarray(layer.embeddings)[4])
    # the float call (logits) passes the mask it was given through
    mask = token_ids != 0
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(vectors, mask)), mask)


def test_tied_embedding_logits_and_config_round_trip():
    layer = TiedEmbedding(6, 3, name="tied")
    layer.build((None, None))
    matrix, bias = random_matrix(6, 3, 1), np.arange(6, dtype=np.float32) / 10
    layer.set_weights([matrix, bias])
    hidden = random_matrix(4, 3, 2).reshape(2, 2, 3)
    np.testing.assert_allclose(np.asarray(layer(hidden)), hidden @ matrix.T + bias, rtol=1e-6, atol=1e-6)
    assert layer.compute_output_shape((2, 2, 3)) == (2, 2, 6)
    assert layer.compute_output_shape((2, 5)) == (2, 5, 3)
    clone = TiedEmbedding.from_config(layer.get_config())
    assert (clone.input_dim, clone.output_dim, clone.name) == (6, 3, "tied")


def test_trailing_padding_does_not_change_the_predictions():
    model = build_generator(model_settings({"type": "lstm", "units": 6}, tie_weights=True),
                            random_matrix(10, 6, 0), 0)
    short = np.asarray(model(np.array([[2, 5, 7]], dtype=np.int32)))
    padded = np.asarray(model(np.array([[2, 5, 7, 0, 0]], dtype=np.int32)))
    np.testing.assert_allclose(padded[:, :3], short, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ conditioning
def test_concat_label_shape_values_and_mask():
    layer = ConcatLabel()
    sequence = random_matrix(6, 4, 0).reshape(2, 3, 4)
    label_vector = random_matrix(2, 5, 1)
    result = np.asarray(layer([sequence, label_vector]))
    assert result.shape == (2, 3, 9)
    np.testing.assert_array_equal(result[..., :4], sequence)
    for step in range(3):
        np.testing.assert_array_equal(result[:, step, 4:], label_vector)
    assert layer.compute_output_shape([(None, None, 4), (None, 5)]) == (None, None, 9)
    mask = np.array([[True, True, False], [True, False, False]])
    np.testing.assert_array_equal(np.asarray(layer.compute_mask([sequence, label_vector], [mask, None])), mask)
    assert layer.compute_mask([sequence, label_vector], None) is None


@pytest.mark.parametrize("conditioning", ["concat", "initial_state"])
def test_conditioned_generator_depends_on_the_label(conditioning):
    model = build_generator(model_settings({"type": "lstm", "units": 6}, conditioning=conditioning),
                            random_matrix(10, 4, 0), 0, num_labels=3)
    assert [tuple(i.shape) for i in model.inputs] == [(None, None), (None,)]
    token_ids = np.array([[2, 5, 7, 4]] * 3, dtype=np.int32)
    probabilities = np.asarray(model((token_ids, np.array([0, 1, 2], dtype=np.int32))))
    assert probabilities.shape == (3, 4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    for first, second in ((0, 1), (0, 2), (1, 2)):
        assert np.abs(probabilities[first] - probabilities[second]).max() > 1e-4
    # the same label gives the same prediction whatever else is in the batch
    alone = np.asarray(model((token_ids[:1], np.array([2], dtype=np.int32))))
    np.testing.assert_allclose(alone[0], probabilities[2], rtol=1e-5, atol=1e-6)


def test_concat_conditioning_appends_a_learned_label_vector():
    model = build_generator(model_settings({"type": "lstm", "units": 6}, conditioning="concat"),
                            random_matrix(10, 4, 0), 0, num_labels=3)
    label_table = model.get_layer("label_embedding").get_weights()[0]
    assert label_table.shape == (3, 32)
    # the recurrent layer reads embedding (4) + label vector (32) per step
    assert model.get_layer("recurrent_0").get_weights()[0].shape == (4 + 32, 4 * 6)


@pytest.mark.parametrize("kind, states", [("lstm", 2), ("gru", 1)])
def test_initial_state_conditioning_feeds_the_label_embedding_as_initial_state(kind, states):
    model = build_generator(model_settings({"type": kind, "units": 5}, conditioning="initial_state"),
                            random_matrix(10, 4, 0), 0, num_labels=3)
    set_random_weights(model, seed=7)
    token_ids = np.array([[2, 5, 7, 4], [2, 9, 0, 0]], dtype=np.int32)
    labels = np.array([2, 0], dtype=np.int32)
    tables = [model.get_layer(f"label_state_{i}").get_weights()[0] for i in range(states)]
    assert all(table.shape == (3, 5) for table in tables)
    assert not any(layer.name == f"label_state_{states}" for layer in model.layers)
    # by hand: the first recurrent layer started from the label's rows, then the output layer
    vectors = model.get_layer("embedding")(token_ids)
    recurrent = model.get_layer("recurrent_0")
    initial = [table[labels] for table in tables]
    hidden = recurrent(vectors, initial_state=initial, mask=token_ids != 0)
    expected = np.asarray(model.get_layer("probabilities")(hidden))
    probabilities = np.asarray(model((token_ids, labels)))
    np.testing.assert_allclose(probabilities[0], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities[1, :2], expected[1, :2], rtol=1e-5, atol=1e-6)
    # and not from zeros
    from_zeros = np.asarray(model.get_layer("probabilities")(recurrent(vectors, mask=token_ids != 0)))
    assert np.abs(from_zeros[0] - probabilities[0]).max() > 1e-4


def test_initial_state_first_output_by_hand_with_zero_inputs():
    """With a zero embedding and zero kernels an LSTM keeps a constant cell: h1 = o * tanh(f * c0)."""
    model = build_generator(model_settings({"type": "lstm", "units": 3}, conditioning="initial_state"),
                            np.zeros((6, 2), np.float32), 0, num_labels=2)
    recurrent = model.get_layer("recurrent_0")
    kernel, recurrent_kernel, bias = recurrent.get_weights()
    recurrent.set_weights([np.zeros_like(kernel), np.zeros_like(recurrent_kernel), np.zeros_like(bias)])
    cell_rows = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]], np.float32)
    model.get_layer("label_state_1").set_weights([cell_rows])
    output = model.get_layer("probabilities")
    kernel_out, bias_out = output.get_weights()
    output.set_weights([np.eye(3, 6, dtype=np.float32) * 4, np.zeros_like(bias_out)])
    probabilities = np.asarray(model((np.array([[2], [2]], np.int32), np.array([0, 1], np.int32))))
    # all gates are sigmoid(0) = 0.5 and the candidate tanh(0) = 0: c1 = 0.5 c0, h1 = 0.5 tanh(c1)
    hidden = 0.5 * np.tanh(0.5 * cell_rows.astype(np.float64))
    expected = softmax(hidden @ (np.eye(3, 6) * 4))
    np.testing.assert_allclose(probabilities[:, 0], expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ check_generator
@pytest.mark.parametrize("kind", ["bilstm", "bigru"])
def test_check_generator_rejects_bidirectional_layers(kind):
    settings = model_settings({"type": "lstm", "units": 4}, {"type": kind, "units": 4})
    with pytest.raises(PipelineError) as error:
        check_generator(settings, "sentences")
    message = str(error.value)
    assert "model.layers[1].type" in message and kind in message and "\n" not in message


@pytest.mark.parametrize("conditioning", ["concat", "initial_state"])
def test_check_generator_rejects_conditioning_with_tbptt(conditioning):
    with pytest.raises(PipelineError) as error:
        check_generator(model_settings(conditioning=conditioning), "tbptt")
    assert "model.conditioning" in str(error.value) and "tbptt" in str(error.value)


def test_check_generator_accepts_left_to_right_models():
    for kind in ("lstm", "gru", "simple_rnn", "elman"):
        check_generator(model_settings({"type": kind, "units": 4}), "tbptt")
    check_generator(model_settings(conditioning="concat"), "sentences")


# ------------------------------------------------------------------ TokenCrossEntropy
def test_token_cross_entropy_in_a_model_is_the_masked_mean():
    model = build_generator(model_settings({"type": "lstm", "units": 5}), random_matrix(9, 4, 0), 0)
    set_random_weights(model, seed=5)
    inputs = np.array([[2, 5, 6, 7, 0], [2, 8, 0, 0, 0], [2, 4, 5, 6, 7]], dtype=np.int32)
    targets = np.array([[5, 6, 7, 3, 0], [8, 3, 0, 0, 0], [4, 5, 6, 7, 8]], dtype=np.int32)
    model.compile(loss=TokenCrossEntropy(), optimizer="sgd")
    loss = model.evaluate(inputs, targets, batch_size=len(inputs), verbose=0)
    probabilities = model.predict(inputs, verbose=0)
    assert loss == pytest.approx(numpy_mean_cross_entropy(probabilities, targets), rel=1e-5)


def test_token_cross_entropy_called_on_values_excludes_padding_targets():
    rng = np.random.default_rng(0)
    probabilities = softmax(rng.normal(size=(3, 4, 6))).astype(np.float32)
    targets = np.array([[1, 2, 3, 0], [4, 0, 0, 0], [5, 1, 2, 3]], dtype=np.int32)
    per_token = np.asarray(TokenCrossEntropy().call(targets, probabilities))
    chosen = -np.log(np.take_along_axis(probabilities.astype(np.float64), targets[..., None], -1)[..., 0])
    np.testing.assert_allclose(per_token, np.where(targets != 0, chosen, 0.0), rtol=1e-5, atol=1e-6)


def test_token_cross_entropy_sum_over_time_is_the_window_sum_averaged_over_the_batch():
    rng = np.random.default_rng(1)
    probabilities = softmax(rng.normal(size=(4, 5, 7))).astype(np.float32)
    targets = rng.integers(0, 7, size=(4, 5)).astype(np.int32)  # a stream: 0 is a word here
    chosen = -np.log(np.take_along_axis(probabilities.astype(np.float64), targets[..., None], -1)[..., 0])
    summed = float(TokenCrossEntropy(pad_id=None, sum_over_time=True)(targets, probabilities))
    assert summed == pytest.approx(chosen.sum(axis=1).mean(), rel=1e-5)
    mean = float(TokenCrossEntropy(pad_id=None)(targets, probabilities))
    assert mean == pytest.approx(chosen.mean(), rel=1e-5)


def test_token_cross_entropy_sum_over_time_in_a_stateful_model():
    model = build_generator(model_settings({"type": "lstm", "units": 5}), random_matrix(9, 4, 0), 0,
                            stateful=True, batch_size=2)
    set_random_weights(model, seed=6)
    inputs = np.array([[4, 5, 6, 7], [8, 2, 3, 4]], dtype=np.int32)
    targets = np.array([[5, 6, 7, 8], [2, 3, 4, 5]], dtype=np.int32)
    model.compile(loss=TokenCrossEntropy(pad_id=None, sum_over_time=True), optimizer="sgd")
    loss = model.evaluate(inputs, targets, batch_size=2, verbose=0)
    reset_states(model)
    probabilities = np.asarray(model(inputs), dtype=np.float64)
    chosen = -np.log(np.take_along_axis(probabilities, targets[..., None], -1)[..., 0])
    assert loss == pytest.approx(chosen.sum(axis=1).mean(), rel=1e-5)


def test_token_cross_entropy_sum_over_time_with_padding_sums_each_sentence_and_averages_over_the_batch():
    """regime = "sentences" with loss = "sum_over_time": a padded row's window is its real tokens."""
    model = build_generator(model_settings({"type": "lstm", "units": 5}), random_matrix(9, 4, 0), 0)
    set_random_weights(model, seed=5)
    inputs = np.array([[2, 5, 6, 7, 0], [2, 8, 0, 0, 0], [2, 4, 5, 6, 7]], dtype=np.int32)
    targets = np.array([[5, 6, 7, 3, 0], [8, 3, 0, 0, 0], [4, 5, 6, 7, 8]], dtype=np.int32)
    model.compile(loss=TokenCrossEntropy(sum_over_time=True), optimizer="sgd")
    loss = model.evaluate(inputs, targets, batch_size=len(inputs), verbose=0)
    probabilities = np.asarray(model.predict(inputs, verbose=0), dtype=np.float64)
    chosen = -np.log(np.take_along_axis(probabilities, targets[..., None], -1)[..., 0])
    per_sentence_sum = np.where(targets != 0, chosen, 0.0).sum(axis=1)
    assert loss == pytest.approx(per_sentence_sum.mean(), rel=1e-5)


def test_token_cross_entropy_config_round_trip():
    loss = TokenCrossEntropy(pad_id=None, sum_over_time=True)
    clone = TokenCrossEntropy.from_config(loss.get_config())
    assert (clone.pad_id, clone.sum_over_time, clone.name) == (None, True, "token_cross_entropy")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, TokenCrossEntropy) and restored.sum_over_time


# ------------------------------------------------------------------ adaptive softmax and AWD-LSTM regularisers
AWD = dict(embedding_dropout=0.2, input_dropout=0.3, hidden_dropout=0.3, output_dropout=0.3,
           activation_regularization=2.0, temporal_activation_regularization=1.0)


def test_adaptive_generator_pair_gives_a_distribution_and_its_target_log_probabilities():
    vocabulary = 30
    settings = model_settings({"type": "lstm", "units": 6}, {"type": "gru", "units": 5}, output="adaptive",
                              cutoffs=(8, 20), **AWD)
    inference, training = build_generator_pair(settings, random_matrix(vocabulary, 4, 0), seed=1)
    assert [layer.name for layer in inference.layers if "dropout" in layer.name] == [
        "embedding_dropout", "input_dropout", "hidden_dropout_0", "output_dropout"]
    token_ids = np.array([[2, 5, 9, 25, 0], [2, 29, 0, 0, 0]], dtype=np.int32)
    targets = np.array([[5, 9, 25, 3, 0], [29, 3, 0, 0, 0]], dtype=np.int32)
    probabilities = np.asarray(inference(token_ids))
    assert probabilities.shape == (2, 5, vocabulary)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    # the training twin shares every weight; at inference the dropouts are off, so it scores the same
    assert {id(w) for w in inference.weights} == {id(w) for w in training.weights}
    picked = np.asarray(training([token_ids, targets]))
    np.testing.assert_allclose(picked, np.log(np.take_along_axis(probabilities, targets[..., None], -1)[..., 0]),
                               rtol=1e-4, atol=1e-5)


def test_regularisers_act_in_training_only_and_add_the_ar_tar_losses():
    settings = model_settings({"type": "lstm", "units": 6}, **AWD)
    plain = build_generator(model_settings({"type": "lstm", "units": 6}), random_matrix(12, 4, 0), seed=1)
    regularised = build_generator(settings, random_matrix(12, 4, 0), seed=1)
    regularised.set_weights(plain.get_weights())
    token_ids = np.array([[2, 5, 9, 11, 3]], dtype=np.int32)
    np.testing.assert_allclose(np.asarray(regularised(token_ids)), np.asarray(plain(token_ids)), rtol=1e-6)
    assert not np.allclose(np.asarray(regularised(token_ids, training=True)), np.asarray(plain(token_ids)))
    regularised(token_ids, training=True)
    assert len(regularised.losses) == 2 and all(float(loss) > 0 for loss in regularised.losses)


def test_adaptive_generator_survives_a_keras_file_round_trip(tmp_path):
    settings = model_settings({"type": "weight_drop_lstm", "units": 6, "weight_drop": 0.5}, output="adaptive",
                              cutoffs=(6,), **AWD)
    model = build_generator(settings, random_matrix(14, 4, 0), seed=2)
    set_random_weights(model, seed=5)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    token_ids = np.array([[2, 5, 13, 0]], dtype=np.int32)
    np.testing.assert_array_equal(np.asarray(restored(token_ids)), np.asarray(model(token_ids)))


def test_target_negative_log_likelihood_is_the_mean_over_real_tokens():
    log_probabilities = np.log(np.array([[0.5, 0.25, 0.9], [0.125, 0.3, 0.3]], dtype=np.float32))
    targets = np.array([[4, 7, 0], [5, 0, 0]], dtype=np.int32)
    value = float(TargetNegativeLogLikelihood()(targets, log_probabilities))
    assert value == pytest.approx(-(np.log(0.5) + np.log(0.25) + np.log(0.125)) / 3, rel=1e-6)
    summed = float(TargetNegativeLogLikelihood(sum_over_time=True)(targets, log_probabilities))
    assert summed == pytest.approx(-(np.log(0.5) + np.log(0.25) + np.log(0.125)) / 2, rel=1e-6)


@pytest.mark.parametrize("last_units", [4, 6])
def test_tied_adaptive_generator_embeds_and_scores_with_one_matrix(last_units):
    vocabulary, dimension = 30, 4
    matrix = random_matrix(vocabulary, dimension, 0)
    layers = ({"type": "lstm", "units": 6}, {"type": "lstm", "units": last_units})
    settings = model_settings(*layers, output="adaptive", cutoffs=(8, 20), tie_weights=True, **AWD)
    inference, training = build_generator_pair(settings, matrix, seed=1)
    from pipeline.layers.adaptive_softmax import AdaptiveSoftmax

    tied = inference.get_layer("embedding")
    assert isinstance(tied, AdaptiveSoftmax) and tied.tie_weights
    np.testing.assert_array_equal(tied.get_weights()[0], matrix)  # starts from the vectors
    assert ("projection" in [layer.name for layer in inference.layers]) == (last_units != dimension)
    untied = build_generator(model_settings(*layers, output="adaptive", cutoffs=(8, 20), **AWD), matrix, seed=1)
    # no tail output matrices: the tails score from the embedding rows through their projections
    assert trainable_parameters(inference) < trainable_parameters(untied)
    token_ids = np.array([[2, 5, 9, 25, 0], [2, 29, 0, 0, 0]], dtype=np.int32)
    targets = np.array([[5, 9, 25, 3, 0], [29, 3, 0, 0, 0]], dtype=np.int32)
    probabilities = np.asarray(inference(token_ids))
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    picked = np.asarray(training([token_ids, targets]))
    np.testing.assert_allclose(picked, np.log(np.take_along_axis(probabilities, targets[..., None], -1)[..., 0]),
                               rtol=1e-4, atol=1e-5)


def test_tied_adaptive_generator_needs_a_trainable_embedding():
    with pytest.raises(PipelineError, match="model.trainable_embeddings"):
        model_settings(output="adaptive", tie_weights=True, trainable_embeddings=False).validate()
