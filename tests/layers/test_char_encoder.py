"""Tests of pipeline.layers.char_encoder: numpy references for both modes, masking, saving."""

import keras
import numpy as np
import pytest

from pipeline.layers.char_encoder import CharacterEncoder

BUCKETS, CHAR_DIM = 30, 4
# (batch 2, timesteps 3, chars 5): tokens of 2, 5 and 1 characters, then one of 3 and a padding token.
CHAR_IDS = np.array([
    [[3, 7, 0, 0, 0], [1, 30, 12, 5, 9], [4, 0, 0, 0, 0]],
    [[8, 8, 2, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
], dtype=np.int32)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_cnn(layer, ids):
    """Embed (padding = 0), 'same' convolutions with tanh, max over the token's real characters."""
    table = layer.char_embedding.get_weights()[0]
    vectors = []
    for chars in ids.reshape(-1, ids.shape[-1]):
        real = chars > 0
        x = table[chars] * real[:, None]
        features = []
        for convolution in layer.convolutions:
            kernel, bias = convolution.get_weights()  # (width, char_dim, filters), (filters,)
            width = kernel.shape[0]
            left = (width - 1) // 2  # Keras/TensorFlow 'same': the extra zero goes to the right
            padded = np.concatenate([np.zeros((left, x.shape[1])), x, np.zeros((width - 1 - left, x.shape[1]))])
            out = np.stack([np.tanh(sum(padded[t + k] @ kernel[k] for k in range(width)) + bias)
                            for t in range(len(x))])
            features.append(out)
        features = np.concatenate(features, axis=1)
        vectors.append(features[real].max(axis=0) if real.any() else np.zeros(features.shape[1]))
    return np.array(vectors).reshape(*ids.shape[:2], -1)


def lstm_final_state(x, kernel, recurrent_kernel, bias):
    """Keras LSTM (gates i, f, c, o; sigmoid gates, tanh cell): the last h over the rows of ``x``."""
    units = recurrent_kernel.shape[0]
    h, c = np.zeros(units), np.zeros(units)
    for step in x:
        z = step @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = sigmoid(z[:units]), sigmoid(z[units:2 * units]), np.tanh(z[2 * units:3 * units]), \
            sigmoid(z[3 * units:])
        c = f * c + i * g
        h = o * np.tanh(c)
    return h


def reference_bilstm(layer, ids):
    """LSTM over the token's real characters forwards and backwards; the final states, concatenated."""
    table = layer.char_embedding.get_weights()[0]
    weights = layer.recurrent.get_weights()
    forward, backward = weights[:3], weights[3:]
    vectors = []
    for chars in ids.reshape(-1, ids.shape[-1]):
        x = table[chars[chars > 0]]
        if not len(x):
            vectors.append(np.zeros(layer.units))
            continue
        vectors.append(np.concatenate([lstm_final_state(x, *forward), lstm_final_state(x[::-1], *backward)]))
    return np.array(vectors).reshape(*ids.shape[:2], -1)


@pytest.mark.parametrize("mode, reference", [("cnn", reference_cnn), ("bilstm", reference_bilstm)])
def test_the_layer_matches_its_numpy_reference(mode, reference):
    layer = CharacterEncoder(mode, buckets=BUCKETS, char_dim=CHAR_DIM, units=6, seed=1)
    output = np.asarray(layer(CHAR_IDS))
    assert output.shape == (2, 3, 6)
    np.testing.assert_allclose(output, reference(layer, CHAR_IDS), atol=1e-5)
    np.testing.assert_array_equal(output[1, 1:], 0.0)  # padding tokens give the zero vector
    assert np.abs(output[0]).min(axis=1).max() > 0


def test_cnn_splits_units_between_widths_and_counts_weights():
    layer = CharacterEncoder("cnn", buckets=BUCKETS, char_dim=CHAR_DIM, units=7, widths=(1, 2, 3), seed=0)
    layer.build((None, None, 5))
    assert [convolution.filters for convolution in layer.convolutions] == [3, 2, 2]
    # embedding 31*4, conv w: w*4*f + f
    assert layer.count_params() == 31 * 4 + (1 * 4 * 3 + 3) + (2 * 4 * 2 + 2) + (3 * 4 * 2 + 2)


def test_the_mask_marks_tokens_with_characters():
    mask = CharacterEncoder("cnn", buckets=BUCKETS, char_dim=CHAR_DIM, units=4).compute_mask(CHAR_IDS)
    np.testing.assert_array_equal(np.asarray(mask), [[True, True, True], [True, False, False]])


@pytest.mark.parametrize("mode", ["cnn", "bilstm"])
def test_padding_characters_and_tokens_do_not_change_a_token_vector(mode):
    layer = CharacterEncoder(mode, buckets=BUCKETS, char_dim=CHAR_DIM, units=4, seed=2)
    alone = np.asarray(layer(CHAR_IDS[:1, :1, :2]))  # the token [3, 7] with no padding at all
    np.testing.assert_allclose(np.asarray(layer(CHAR_IDS))[0, 0], alone[0, 0], atol=1e-6)
    # another character changes it
    changed = np.asarray(layer(np.array([[[3, 8]]], dtype=np.int32)))
    assert np.abs(changed - alone).max() > 1e-6


@pytest.mark.parametrize("mode", ["cnn", "bilstm"])
def test_keras_file_round_trip_in_safe_mode(tmp_path, mode):
    inputs = keras.Input(shape=(None, 5), dtype="int32", name="char_ids")
    model = keras.Model(inputs, CharacterEncoder(mode, buckets=BUCKETS, char_dim=CHAR_DIM, units=6, seed=3)(inputs))
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(restored(CHAR_IDS)), np.asarray(model(CHAR_IDS)), atol=1e-6)
    layer = restored.layers[-1]
    assert (layer.mode, layer.buckets, layer.units, layer.widths) == (mode, BUCKETS, 6, (2, 3))


def test_seeded_initialisation_is_reproducible():
    first = CharacterEncoder("cnn", buckets=BUCKETS, char_dim=CHAR_DIM, units=4, seed=5)
    again = CharacterEncoder("cnn", buckets=BUCKETS, char_dim=CHAR_DIM, units=4, seed=5)
    np.testing.assert_array_equal(np.asarray(first(CHAR_IDS)), np.asarray(again(CHAR_IDS)))


@pytest.mark.parametrize("arguments, name", [
    ({"mode": "gru"}, "mode"), ({"buckets": 0}, "buckets"), ({"char_dim": -1}, "char_dim"),
    ({"units": 0}, "units"), ({"mode": "bilstm", "units": 5}, "units"), ({"units": 1, "widths": (2, 3)}, "units"),
    ({"widths": (0,)}, "widths"), ({"seed": "x"}, "seed"),
])
def test_bad_arguments_name_the_argument(arguments, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        CharacterEncoder(**arguments)
