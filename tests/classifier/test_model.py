"""Tests of pipeline.classifier.model: the classifier's structure, weights, heads and masking (real Keras)."""

import keras
import numpy as np
import pytest
from helpers import CLASSES, DIMENSION, VOCABULARY, classifier, embedding_matrix, token_ids

from pipeline.layers.attention import AttentionPooling
from pipeline.layers.pooling import MaskedGlobalPooling
from pipeline.models import trainable_parameters

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
    ("lstm", "mean"), ("bilstm", "max"), ("gru", "attention"), ("bilstm", "attention"),
    ("bigru", "attention+mean+max"),
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


def test_embedding_dropout_drops_whole_words_in_training_only(tmp_path):
    plain = classifier([{"type": "gru", "units": 4}], pooling="mean")
    model = classifier([{"type": "gru", "units": 4}], pooling="mean", embedding_dropout=0.5)
    layer = model.get_layer("embedding_dropout")
    assert (layer.rate, layer.vocabulary_size, layer.per_sequence) == (0.5, VOCABULARY, True)
    ids = token_ids()
    for ours, theirs in zip(model.get_weights(), plain.get_weights(), strict=True):  # the same seeded weights
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(np.asarray(model(ids)), np.asarray(plain(ids)), atol=1e-6)  # inference: no-op
    dropped = keras.Model(model.input, layer.output)(ids, training=True)
    rows = np.abs(np.asarray(dropped)).sum(axis=-1) == 0  # (batch, timesteps): a zeroed word vector
    assert rows.any() and not rows.all()
    for sentence, zeroed in zip(ids, rows):  # each word is dropped everywhere in its sentence or nowhere
        for word in set(sentence.tolist()):
            assert len(set(zeroed[sentence == word].tolist())) == 1
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(restored(ids)), np.asarray(model(ids)), atol=1e-6)


def test_a_pooled_classifier_survives_a_keras_file_round_trip(tmp_path):
    model = classifier([{"type": "bilstm", "units": 4}], pooling="mean")
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.get_layer("mean_pooling"), MaskedGlobalPooling)
    ids = np.array([[3, 4, 5, 0], [6, 7, 8, 9]], dtype=np.int32)
    np.testing.assert_allclose(np.asarray(restored(ids)), np.asarray(model(ids)), atol=1e-6)


def test_attention_pooling_keeps_its_weights_in_the_graph_and_round_trips(tmp_path):
    model = classifier([{"type": "bilstm", "units": 4}], pooling="attention", attention_units=5)
    layer = model.get_layer("attention_pooling")
    assert isinstance(layer, AttentionPooling) and layer.units == 5 and layer.return_attention
    assert returns_sequences(model.get_layer("recurrent_0"))
    assert [w.shape for w in layer.get_weights()] == [(8, 5), (5,), (5,)]  # kernel (2 x 4 units, 5), bias, context
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    ids = np.array([[3, 4, 5, 0], [6, 7, 8, 9]], dtype=np.int32)
    np.testing.assert_allclose(np.asarray(restored(ids)), np.asarray(model(ids)), atol=1e-6)
    weights = keras.Model(restored.inputs, restored.get_layer("attention_pooling").output[1]).predict_on_batch(ids)
    np.testing.assert_array_equal(weights[0, 3], 0.0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    same = classifier([{"type": "bilstm", "units": 4}], pooling="attention", attention_units=5)
    np.testing.assert_array_equal(same.get_layer("attention_pooling").get_weights()[2], layer.get_weights()[2])


def test_combined_pooling_concatenates_attention_mean_and_max_of_the_unmasked_steps(tmp_path):
    """``model.pooling = "attention+mean+max"`` against numpy: the attention's weighted sum, the mean and the max
    of the BiLSTM's states over the real tokens, concatenated in that order; no attention weights in the graph
    (explained by occlusion), and the same numbers after a .keras round trip."""
    from pipeline.classifier.explain import attention_layer

    model = classifier([{"type": "bilstm", "units": 4}], pooling="attention+mean+max", attention_units=5)
    assert attention_layer(model) is None and not model.get_layer("attention_pooling").return_attention
    ids = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2]], dtype=np.int32)
    states, pooled = (np.asarray(output) for output in keras.Model(
        model.input, [model.get_layer("recurrent_0").output, model.get_layer("pooled").output])(ids))
    kernel, bias, context = model.get_layer("attention_pooling").get_weights()
    assert pooled.shape == (2, 3 * 8)
    for row, length in enumerate((3, 5)):
        h = states[row, :length].astype(np.float64)  # (length, 8): the real tokens' states
        scores = np.tanh(h @ kernel + bias) @ context
        alpha = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        expected = np.concatenate([alpha @ h, h.mean(axis=0), h.max(axis=0)])
        np.testing.assert_allclose(pooled[row], expected, atol=1e-5)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(restored(ids)), np.asarray(model(ids)), atol=1e-6)
    reordered = classifier([{"type": "bilstm", "units": 4}], pooling="max+attention", attention_units=5)
    states, pooled = (np.asarray(output) for output in keras.Model(
        reordered.input, [reordered.get_layer("recurrent_0").output, reordered.get_layer("pooled").output])(ids))
    assert pooled.shape == (2, 2 * 8)  # in the order written: the max first
    np.testing.assert_allclose(pooled[0, :8], states[0, :3].max(axis=0), atol=1e-6)
