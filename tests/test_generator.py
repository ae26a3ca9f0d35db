"""Tests of ``pipeline.generator``: recurrent language models built, trained and scored.

Layer and loss tests use tiny models whose weights are set by hand and check exact numbers
against a NumPy forward pass. The stage tests run the real ``train`` and ``evaluate`` stages on
the shipped KNB corpus (GiNZA tokens, a 400-word vocabulary, a 16-24 unit LSTM, two epochs):
the corpus is vectorized once per session into pytest's temporary folder (the same folder
``tests/test_generate.py`` uses, so the second module finds the stages up to date).
"""

import json
import math
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from pipeline import config as config_module
from pipeline.classify import load_run
from pipeline.config import ModelConfig, TrainConfig
from pipeline.errors import PipelineError
from pipeline.generator import (
    ConcatLabel,
    LanguageModelBatches,
    ResetStates,
    TiedEmbedding,
    TokenCrossEntropy,
    build_generator,
    check_generator,
    reset_states,
    sentence_perplexity,
    stream_perplexity,
)
from pipeline.lm_data import teacher_forcing_pairs, token_stream
from pipeline.models import trainable_parameters
from pipeline.paths import Paths, RunPaths
from pipeline.stages import run_stage
from pipeline.train import schedule_callbacks
from pipeline.vectors import EncodedSplits

REPOSITORY = Path(__file__).resolve().parents[1]
CONFIGS = REPOSITORY / "tests" / "configs"
BOS, EOS = 2, 3  # ids of <s> and </s> in the hand-made vocabularies below (0 pad, 1 unk)


# ------------------------------------------------------------------ helpers
def model_settings(*layers: dict, **options) -> ModelConfig:
    return ModelConfig(task="generator", layers=tuple(layers) or ({"type": "lstm", "units": 6},), **options)


def random_matrix(rows: int, columns: int, seed: int, scale: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-scale, scale, size=(rows, columns)).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def set_random_weights(model: keras.Model, seed: int, scale: float = 0.5) -> None:
    """Every weight of ``model`` uniform in ±scale (biases included), from one seed."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-scale, scale, size=w.shape).astype(np.float32) for w in model.get_weights()])


def numpy_simple_rnn_generator(model: keras.Model, token_ids: np.ndarray, tied: bool) -> np.ndarray:
    """The forward pass of a one-layer ``simple_rnn`` generator in NumPy (float64).

    ``x_t = E[id_t]``, ``h_t = tanh(x_t W + h_{t-1} U + b)``, then either
    ``softmax(h_t W_out + b_out)`` or, tied, ``softmax((h_t P + p) Eᵀ + b_E)``.
    """
    embedding_weights = model.get_layer("embedding").get_weights()
    matrix = embedding_weights[0].astype(np.float64)
    kernel, recurrent_kernel, bias = (w.astype(np.float64) for w in model.get_layer("recurrent_0").get_weights())
    inputs = matrix[token_ids]
    hidden = np.zeros((token_ids.shape[0], kernel.shape[1]))
    outputs = []
    for step in range(token_ids.shape[1]):
        hidden = np.tanh(inputs[:, step] @ kernel + hidden @ recurrent_kernel + bias)
        outputs.append(hidden)
    states = np.stack(outputs, axis=1)
    if tied:
        if any(layer.name == "projection" for layer in model.layers):
            projection_kernel, projection_bias = model.get_layer("projection").get_weights()
            states = states @ projection_kernel + projection_bias
        return softmax(states @ matrix.T + embedding_weights[1])
    output_kernel, output_bias = model.get_layer("probabilities").get_weights()
    return softmax(states @ output_kernel + output_bias)


def numpy_mean_cross_entropy(probabilities: np.ndarray, targets: np.ndarray, pad_id: int | None = 0) -> float:
    chosen = np.take_along_axis(np.asarray(probabilities, np.float64), targets[..., None], axis=-1)[..., 0]
    mask = np.ones_like(targets, dtype=bool) if pad_id is None else targets != pad_id
    return float(-np.log(chosen[mask]).mean())


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


# ------------------------------------------------------------------ sentence_perplexity
SENTENCES = [np.array(s, dtype=np.int32) for s in ([5, 6, 7], [8], [9, 10, 11, 4, 5, 6, 7], [4, 4], [11, 10, 9, 8, 7])]


def test_sentence_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    vocabulary = 12
    model = build_generator(model_settings({"type": "simple_rnn", "units": 3}), random_matrix(vocabulary, 4, 0), 0)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])  # softmax(0) = 1/V everywhere
    value = sentence_perplexity(model, SENTENCES, None, BOS, EOS, max_length=10, batch_size=2)
    assert value == pytest.approx(vocabulary, rel=1e-5)


@pytest.mark.parametrize("max_length", [10, 4], ids=["whole-sentences", "cut-at-4"])
def test_sentence_perplexity_by_hand(max_length):
    model = build_generator(model_settings({"type": "simple_rnn", "units": 3}), random_matrix(12, 4, 0), 0)
    set_random_weights(model, seed=11, scale=1.0)
    cross_entropy, count = 0.0, 0
    for sentence in SENTENCES:  # one sentence at a time: no padding at all in the reference
        inputs, targets = teacher_forcing_pairs([sentence], BOS, EOS, max_length=min(max_length, len(sentence) + 1))
        probabilities = numpy_simple_rnn_generator(model, inputs, tied=False)
        chosen = np.take_along_axis(probabilities, targets[..., None], -1)[..., 0]
        cross_entropy -= np.log(chosen).sum()
        count += targets.size
    expected = math.exp(cross_entropy / count)
    assert count == sum(min(len(s) + 1, max_length) for s in SENTENCES)
    value = sentence_perplexity(model, SENTENCES, None, BOS, EOS, max_length=max_length, batch_size=2)
    assert value == pytest.approx(expected, rel=1e-5)


def test_sentence_perplexity_of_a_conditioned_model_uses_the_labels():
    model = build_generator(model_settings({"type": "lstm", "units": 4}, conditioning="concat"),
                            random_matrix(12, 4, 0), 0, num_labels=2)
    set_random_weights(model, seed=12, scale=1.0)
    labels = np.array([0, 1, 0, 1, 1], dtype=np.int32)
    value = sentence_perplexity(model, SENTENCES, labels, BOS, EOS, max_length=10, batch_size=2)
    cross_entropy, count = 0.0, 0
    for sentence, label in zip(SENTENCES, labels):
        inputs, targets = teacher_forcing_pairs([sentence], BOS, EOS)
        probabilities = np.asarray(model((inputs, np.array([label], np.int32))), dtype=np.float64)
        cross_entropy -= np.log(np.take_along_axis(probabilities, targets[..., None], -1)[..., 0]).sum()
        count += targets.size
    assert value == pytest.approx(math.exp(cross_entropy / count), rel=1e-5)
    flipped = sentence_perplexity(model, SENTENCES, 1 - labels, BOS, EOS, max_length=10, batch_size=2)
    assert flipped != pytest.approx(value, rel=1e-4)


# ------------------------------------------------------------------ LanguageModelBatches
def test_language_model_batches_shift_by_one_and_pad_in_order():
    batches = LanguageModelBatches([[5, 6, 7], [8], [9, 10]], np.array([0, 1, 0]), batch_size=2, max_length=10,
                                   bos_id=BOS, eos_id=EOS)
    assert len(batches) == 2
    inputs, targets = batches[0]
    np.testing.assert_array_equal(inputs, [[2, 5, 6, 7], [2, 8, 0, 0]])
    np.testing.assert_array_equal(targets, [[5, 6, 7, 3], [8, 3, 0, 0]])
    inputs, targets = batches[1]
    np.testing.assert_array_equal(inputs, [[2, 9, 10]])
    np.testing.assert_array_equal(targets, [[9, 10, 3]])


def test_language_model_batches_cut_long_sentences_and_drop_their_end():
    inputs, targets = LanguageModelBatches([[5, 6, 7, 8, 9], [4]], None, batch_size=2, max_length=3,
                                           bos_id=BOS, eos_id=EOS)[0]
    np.testing.assert_array_equal(inputs, [[2, 5, 6], [2, 4, 0]])
    np.testing.assert_array_equal(targets, [[5, 6, 7], [4, 3, 0]])


def test_language_model_batches_with_labels_for_conditioned_models():
    (inputs, labels), targets = LanguageModelBatches([[5, 6], [8]], np.array([1, 0], np.int32), batch_size=2,
                                                     max_length=10, bos_id=BOS, eos_id=EOS, conditioned=True)[0]
    np.testing.assert_array_equal(labels, [1, 0])
    np.testing.assert_array_equal(inputs, [[2, 5, 6], [2, 8, 0]])
    np.testing.assert_array_equal(targets, [[5, 6, 3], [8, 3, 0]])


def test_shuffled_language_model_batches_cover_every_sentence_once():
    rng = np.random.default_rng(0)
    sentences = [list(rng.integers(4, 30, size=rng.integers(1, 9))) for _ in range(23)]
    batches = LanguageModelBatches(sentences, np.arange(23), batch_size=4, max_length=50, bos_id=BOS, eos_id=EOS,
                                   rng=np.random.default_rng(1), conditioned=True)
    seen = []
    for index in range(len(batches)):
        (inputs, labels), targets = batches[index]
        assert inputs.shape == targets.shape
        real = targets != 0
        assert (inputs[:, 0] == BOS).all()
        # the target at t is the input at t + 1 wherever both are real tokens
        both = real[:, :-1] & (inputs[:, 1:] != 0)
        np.testing.assert_array_equal(targets[:, :-1][both], inputs[:, 1:][both])
        for row, label in enumerate(labels):
            sentence = list(targets[row][real[row]])
            assert sentence == [*sentences[label], EOS]
            seen.append(int(label))
    assert sorted(seen) == list(range(23))


# ------------------------------------------------------------------ stateful models
def test_reset_states_zeroes_the_state_of_stateful_layers():
    model = build_generator(model_settings({"type": "lstm", "units": 4}, {"type": "gru", "units": 3}),
                            random_matrix(9, 4, 0), 0, stateful=True, batch_size=2)
    set_random_weights(model, seed=8)
    token_ids = np.array([[2, 5, 6], [2, 7, 8]], dtype=np.int32)
    first = np.asarray(model(token_ids))
    layers = [model.get_layer("recurrent_0"), model.get_layer("recurrent_1")]
    assert all(np.abs(np.asarray(state)).sum() > 0 for layer in layers for state in layer.states)
    second = np.asarray(model(token_ids))
    assert np.abs(first - second).max() > 1e-4  # the state carried over
    reset_states(model)
    assert all(np.abs(np.asarray(state)).sum() == 0 for layer in layers for state in layer.states)
    np.testing.assert_allclose(np.asarray(model(token_ids)), first, rtol=1e-5, atol=1e-6)


def test_reset_states_callback_resets_at_each_epoch_begin():
    model = build_generator(model_settings({"type": "lstm", "units": 4}), random_matrix(9, 4, 0), 0,
                            stateful=True, batch_size=2)
    set_random_weights(model, seed=9)
    model(np.array([[2, 5, 6], [2, 7, 8]], dtype=np.int32))
    callback = ResetStates()
    callback.set_model(model)
    callback.on_epoch_begin(0)
    assert all(np.abs(np.asarray(state)).sum() == 0 for state in model.get_layer("recurrent_0").states)


def test_stream_perplexity_carries_the_state_and_resets_it():
    vocabulary = 9
    model = build_generator(model_settings({"type": "lstm", "units": 4}), random_matrix(vocabulary, 4, 0), 0,
                            stateful=True, batch_size=2)
    set_random_weights(model, seed=10)
    stream = np.random.default_rng(3).integers(2, vocabulary, size=2 * (3 * 5) + 2).astype(np.int32)
    value = stream_perplexity(model, stream, batch_size=2, bptt_steps=5)
    assert all(np.abs(np.asarray(state)).sum() == 0 for state in model.get_layer("recurrent_0").states)
    # reference: one pass over each whole track (state carried), 15 predicted tokens per track
    tracks = stream[: 2 * (len(stream) // 2)].reshape(2, -1)
    probabilities = np.asarray(model(tracks[:, :15]), dtype=np.float64)
    reset_states(model)
    chosen = np.take_along_axis(probabilities, tracks[:, 1:16, None], -1)[..., 0]
    assert value == pytest.approx(math.exp(-np.log(chosen).mean()), rel=1e-5)


# ------------------------------------------------------------------ learning-rate schedules
def test_step_decay_keeps_the_rate_for_decay_start_epochs_then_halves_it():
    settings = TrainConfig(learning_rate=1.0, lr_schedule="step", decay_start=4, decay_factor=0.5)
    (scheduler,) = schedule_callbacks(settings, "val_perplexity")
    assert isinstance(scheduler, keras.callbacks.LearningRateScheduler)
    rates = [scheduler.schedule(epoch, 1.0) for epoch in range(8)]
    assert rates == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125, 0.0625], rel=1e-12)


def test_zaremba_config_schedule_is_four_epochs_at_one_then_halved():
    config = config_module.load(REPOSITORY / "configs" / "zaremba_small.toml")
    (scheduler,) = schedule_callbacks(config.train, "val_perplexity")
    rates = [scheduler.schedule(epoch, config.train.learning_rate) for epoch in range(config.train.epochs)]
    assert rates == pytest.approx([1.0] * 4 + [0.5 ** k for k in range(1, 10)], rel=1e-12)


def test_step_decay_sets_the_optimizer_rate_during_fit():
    settings = TrainConfig(learning_rate=1.0, lr_schedule="step", decay_start=2, decay_factor=0.5, optimizer="sgd")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    history = model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=5, verbose=0,
                        callbacks=schedule_callbacks(settings, "loss"))
    assert history.history["learning_rate"] == pytest.approx([1.0, 1.0, 0.5, 0.25, 0.125])


def test_plateau_schedule_watches_the_monitor_and_multiplies_by_the_factor():
    settings = TrainConfig(lr_schedule="plateau", decay_factor=0.5, plateau_patience=1, learning_rate=0.02)
    (callback,) = schedule_callbacks(settings, "val_perplexity")
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.monitor, callback.factor, callback.patience) == ("val_perplexity", 0.5, 1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate([50.0, 40.0, 41.0, 39.0, 39.5]):
        callback.on_epoch_end(epoch, {"val_perplexity": value})
        rates.append(float(model.optimizer.learning_rate))
    # worse than the best for plateau_patience = 1 epoch: halve
    assert rates == pytest.approx([0.02, 0.02, 0.01, 0.01, 0.005])


def test_constant_schedule_adds_no_callback():
    assert schedule_callbacks(TrainConfig(), "val_perplexity") == []


# ------------------------------------------------------------------ the train and evaluate stages
def generator_config(name: str, work_dir: Path, models_dir: Path, *overrides: str):
    """tests/configs/<name>.toml with the corpus found from any cwd and artifacts in tmp folders."""
    return config_module.load(CONFIGS / f"{name}.toml", [
        f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"',
        f'work_dir="{work_dir}"',
        f'models_dir="{models_dir}"',
        *overrides,
    ])


@pytest.fixture(scope="module")
def lm_work_dir(tmp_path_factory) -> Path:
    """prepare -> tokenize -> vectorize of generator_small.toml, once per session (shared with test_generate)."""
    work_dir = tmp_path_factory.getbasetemp() / "generator-work"
    run_stage("vectorize", generator_config("generator_small", work_dir,
                                            tmp_path_factory.getbasetemp() / "generator-unused-models"))
    return work_dir


def train_recording_warnings(config) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_stage("train", config)
    return [str(warning.message) for warning in caught]


@pytest.fixture(scope="module")
def sentence_run(lm_work_dir, tmp_path_factory):
    """generator_small.toml trained (full BPTT over sentences, plateau schedule); its config and warnings."""
    config = generator_config("generator_small", lm_work_dir, tmp_path_factory.mktemp("generator-models"))
    return config, train_recording_warnings(config)


@pytest.fixture(scope="module")
def tbptt_run(lm_work_dir, tmp_path_factory):
    """generator_tbptt.toml trained (stateful stream, truncated BPTT, step schedule); its config and warnings."""
    config = generator_config("generator_tbptt", lm_work_dir, tmp_path_factory.mktemp("generator-models"))
    return config, train_recording_warnings(config)


def history_of(config) -> pd.DataFrame:
    return pd.read_csv(RunPaths(Paths.from_config(config).run).history)


@pytest.mark.parametrize("run", ["sentence_run", "tbptt_run"])
def test_train_stage_writes_history_with_perplexity_columns(run, request):
    config, caught = request.getfixturevalue(run)
    history = history_of(config)
    assert len(history) == config.train.epochs
    assert {"epoch", "loss", "perplexity", "val_loss", "val_perplexity"} <= set(history.columns)
    for column in ("perplexity", "val_perplexity"):
        assert np.isfinite(history[column]).all() and (history[column] > 1).all()
    # validation perplexity is exp of the validation mean cross-entropy, and below uniform guessing
    vocabulary = len(json.loads((Paths.from_config(config).run / "vocab.json").read_text(encoding="utf-8"))["tokens"])
    assert (history["val_perplexity"] < vocabulary).all()
    # the monitored value existed every epoch: no "metric ... not available" warnings from callbacks
    assert not [message for message in caught if "available" in message], caught


def test_sentence_training_learns(sentence_run):
    history = history_of(sentence_run[0])
    assert history["val_perplexity"].iloc[-1] < history["val_perplexity"].iloc[0]


def test_plateau_schedule_is_wired_into_generator_training(sentence_run):
    config, caught = sentence_run
    history = history_of(config)
    assert "learning_rate" in history.columns  # ReduceLROnPlateau ran (it logs the rate)
    assert history["learning_rate"].iloc[0] == pytest.approx(config.train.learning_rate)


def test_tbptt_step_schedule_and_summed_loss(tbptt_run):
    config, _ = tbptt_run
    history = history_of(config)
    # decay_start = 1: epoch 1 at 1.0, then halved every epoch
    assert history["learning_rate"].tolist() == pytest.approx([1.0, 0.5])
    # the loss is summed over each 20-step window: 20 times the mean cross-entropy, ln(perplexity)
    assert history["loss"].iloc[-1] == pytest.approx(config.train.bptt_steps * math.log(history["perplexity"].iloc[-1]),
                                                     rel=0.05)


def test_tbptt_run_saves_a_stateless_model_with_the_trained_weights(tbptt_run):
    config, _ = tbptt_run
    run = load_run(Paths.from_config(config).run)
    assert not any(getattr(layer, "stateful", False) for layer in run.model.layers)
    assert tuple(run.model.inputs[0].shape) == (None, None)
    for batch in (np.array([[3, 5, 6]], np.int32), np.array([[3, 5], [3, 7]], np.int32)):
        probabilities = np.asarray(run.model(batch))
        assert probabilities.shape == (*batch.shape, len(run.vocab))
        np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    # the saved weights are those trained: the last epoch's validation stream perplexity comes back
    splits = EncodedSplits.load(Paths.from_config(config).ids)
    stateful = build_generator(config.model, np.zeros((len(run.vocab), 16), np.float32), 0, stateful=True,
                               batch_size=config.train.batch_size)
    stateful.set_weights(run.model.get_weights())
    stream = token_stream(splits.sequences["validation"], run.vocab.index["</s>"])
    value = stream_perplexity(stateful, stream, config.train.batch_size, config.train.bptt_steps)
    assert value == pytest.approx(history_of(config)["val_perplexity"].iloc[-1], rel=1e-4)


def test_sentence_run_folder_reloads_a_tied_model(sentence_run):
    config, _ = sentence_run
    run = load_run(Paths.from_config(config).run)
    assert run.config == config and run.config.model.tie_weights
    assert isinstance(run.model.get_layer("embedding"), TiedEmbedding)
    assert run.vocab.tokens[:4] == ["<pad>", "<unk>", "<s>", "</s>"]


def test_evaluate_writes_perplexities_and_a_kneser_ney_baseline(sentence_run):
    config, _ = sentence_run
    result = run_stage("evaluate", config)
    paths = Paths.from_config(config)
    metrics = json.loads(RunPaths(paths.run).metrics.read_text(encoding="utf-8"))
    assert result["perplexity"] == metrics["perplexity"]
    assert set(metrics["perplexity"]) == {"train", "validation", "test"}
    vocabulary = len(load_run(paths.run).vocab)
    for split, value in metrics["perplexity"].items():
        assert 1 < value < vocabulary, split
        assert metrics["tokens"][split] > 0
    baseline = metrics["baselines"]["kneser_ney_trigram"]["perplexity"]
    assert math.isfinite(baseline) and 1 < baseline < vocabulary
    assert (RunPaths(paths.run).plots / "training_curves.png").is_file()
    # the saved checkpoint is the best epoch: its validation perplexity is the history's minimum
    assert metrics["perplexity"]["validation"] == pytest.approx(history_of(config)["val_perplexity"].min(), rel=1e-4)
    # and the test perplexity is the one sentence_perplexity gives for the reloaded model
    run = load_run(paths.run)
    splits = EncodedSplits.load(paths.ids)
    direct = sentence_perplexity(run.model, splits.sequences["test"], None, run.vocab.index["<s>"],
                                 run.vocab.index["</s>"], config.train.max_length)
    assert metrics["perplexity"]["test"] == pytest.approx(direct, rel=1e-5)


def test_evaluate_tbptt_run_adds_the_stream_perplexity(tbptt_run):
    config, _ = tbptt_run
    metrics = run_stage("evaluate", config)
    assert set(metrics["perplexity"]) == {"train", "validation", "test"}
    assert 1 < metrics["stream_perplexity_test"] < len(load_run(Paths.from_config(config).run).vocab)
    assert "kneser_ney_trigram" in metrics["baselines"]


def test_train_rejects_conditioning_on_an_unlabelled_or_streamed_corpus(lm_work_dir, tmp_path):
    config = generator_config("generator_tbptt", lm_work_dir, tmp_path / "models", 'model.conditioning="concat"')
    with pytest.raises(PipelineError, match="model.conditioning"):
        run_stage("train", config)
    assert not (tmp_path / "models" / config.run_name).exists()
