"""Tests of the AWD-LSTM regularisers: masks against their definitions, the LSTM against NumPy and keras.layers.LSTM."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.layers.regularization import ActivationRegularization, EmbeddingDropout, LockedDropout
from pipeline.layers.weight_drop import WeightDropLSTM, WeightDropLSTMCell

TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def random_inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def sigmoid(values):
    return 1 / (1 + np.exp(-values))


def numpy_lstm(inputs, kernel, recurrent_kernel, bias, recurrent_kernel_mask=None):
    """keras.layers.LSTM's loop (gates i, f, c, o) with one DropConnect mask on U for every step; all h_t."""
    if recurrent_kernel_mask is not None:
        recurrent_kernel = recurrent_kernel * recurrent_kernel_mask
    units = recurrent_kernel.shape[0]
    output = carry = np.zeros((inputs.shape[0], units))
    outputs = []
    for t in range(inputs.shape[1]):
        z = inputs[:, t] @ kernel + output @ recurrent_kernel + bias
        z_input, z_forget, z_candidate, z_output = np.split(z, 4, axis=-1)
        carry = sigmoid(z_forget) * carry + sigmoid(z_input) * np.tanh(z_candidate)
        output = sigmoid(z_output) * np.tanh(carry)
        outputs.append(output)
    return np.stack(outputs, axis=1)


def twin_lstms(units, inputs, **arguments):
    """A WeightDropLSTM and a keras.layers.LSTM built on ``inputs``, the LSTM with the other's weights."""
    ours = WeightDropLSTM(units, bias_initializer="random_normal", **arguments)
    arguments.pop("recurrent_dropconnect", None)
    arguments.pop("seed", None)
    theirs = keras.layers.LSTM(units, **arguments)
    ours(inputs)
    theirs(inputs)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


# LockedDropout

def test_locked_dropout_reuses_one_scaled_mask_over_time_and_draws_one_per_row():
    inputs = random_inputs((8, 6, 32))
    outputs = np.asarray(LockedDropout(0.5, seed=3)(inputs, training=True))
    factors = outputs / inputs  # the mask itself: inputs have no zeros
    np.testing.assert_allclose(np.unique(np.round(factors, 5)), [0.0, 2.0])
    np.testing.assert_allclose(factors, np.broadcast_to(factors[:, :1], factors.shape), **TOLERANCE)
    assert len({row.tobytes() for row in (factors[:, 0] > 0)}) == 8  # each row its own mask


def test_locked_dropout_preserves_the_mean_and_drops_the_rate():
    outputs = np.asarray(LockedDropout(0.3, seed=0)(np.ones((64, 3, 256), "float32"), training=True))
    assert abs(outputs.mean() - 1.0) < 0.03
    assert abs((outputs == 0).mean() - 0.3) < 0.02


def test_locked_dropout_is_identity_at_inference_and_at_rate_zero_and_keeps_the_mask():
    inputs = random_inputs((3, 4, 5))
    np.testing.assert_array_equal(LockedDropout(0.5, seed=0)(inputs, training=False), inputs)
    np.testing.assert_array_equal(LockedDropout(0.0, seed=0)(inputs, training=True), inputs)
    ids = np.array([[1, 2, 0], [3, 0, 0]])
    embedded = keras.layers.Embedding(4, 5, mask_zero=True)(ids)
    np.testing.assert_array_equal(LockedDropout(0.5)(embedded, training=True)._keras_mask, ids != 0)


def test_locked_dropout_is_reproducible_with_a_seed_and_fresh_per_call():
    inputs = np.ones((4, 3, 16), "float32")
    layer = LockedDropout(0.5, seed=7)
    first = np.asarray(layer(inputs, training=True))
    np.testing.assert_array_equal(LockedDropout(0.5, seed=7)(inputs, training=True), first)
    assert not np.array_equal(layer(inputs, training=True), first)


# EmbeddingDropout

def word_factors(layer, token_ids, seed=0):
    """What the layer multiplies each token's embedding by, one factor per (row, position)."""
    embedded = np.abs(random_inputs(token_ids.shape + (3,), seed=seed)) + 0.5
    outputs = np.asarray(layer([embedded, token_ids], training=True))
    factors = outputs / embedded
    np.testing.assert_allclose(factors, np.broadcast_to(factors[..., :1], factors.shape), **TOLERANCE)
    return factors[..., 0]


@pytest.mark.parametrize("per_sequence", [False, True])
def test_embedding_dropout_drops_every_occurrence_of_a_word_type_together(per_sequence):
    token_ids = np.random.default_rng(1).integers(0, 6, size=(8, 30))
    layer = EmbeddingDropout(0.5, vocabulary_size=6, per_sequence=per_sequence, seed=2)
    factors = word_factors(layer, token_ids)
    np.testing.assert_allclose(np.unique(np.round(factors, 5)), [0.0, 2.0])
    row_masks = np.full((8, 6), np.nan)  # row_masks[r, w]: the factor of word w in row r
    for row in range(8):
        for word in np.unique(token_ids[row]):
            occurrences = factors[row, token_ids[row] == word]
            np.testing.assert_allclose(occurrences, occurrences[0])
            row_masks[row, word] = occurrences[0]
    same_across_rows = np.all(np.nanmax(row_masks, axis=0) == np.nanmin(row_masks, axis=0))
    assert same_across_rows != per_sequence  # AWD-LSTM: one mask per batch; Gal & Ghahramani: per row


def test_embedding_dropout_scales_by_the_kept_fraction_and_keeps_the_mean():
    token_ids = np.arange(4000).reshape((40, 100)) % 2000
    factors = word_factors(EmbeddingDropout(0.25, vocabulary_size=2000, seed=0), token_ids)
    np.testing.assert_allclose(np.unique(np.round(factors, 5)), [0.0, round(1 / 0.75, 5)])
    assert abs(factors.mean() - 1.0) < 0.05


def test_embedding_dropout_is_identity_at_inference_and_keeps_the_padding_mask():
    token_ids = np.array([[1, 2, 1, 0], [3, 3, 0, 0]])
    embedded = keras.layers.Embedding(4, 5, mask_zero=True)(token_ids)
    for training, rate in ((False, 0.5), (True, 0.0)):
        layer = EmbeddingDropout(rate, vocabulary_size=4, seed=0)
        np.testing.assert_array_equal(layer([embedded, token_ids], training=training), embedded)
    dropped = EmbeddingDropout(0.5, vocabulary_size=4, seed=0)([embedded, token_ids], training=True)
    np.testing.assert_array_equal(dropped._keras_mask, token_ids != 0)
    layer = EmbeddingDropout(0.5, vocabulary_size=4)
    assert layer.compute_mask([embedded, token_ids], [None, None]) is None
    with pytest.raises(ValueError, match=r"inputs=\[embedded, token_ids\]"):
        layer(embedded)


# WeightDropLSTM

def test_equals_keras_lstm_at_rate_zero_and_at_inference_with_mask_and_state():
    inputs = random_inputs((3, 6, 4))
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], dtype=bool)
    for rate, training in ((0.0, True), (0.5, False)):
        ours, theirs = twin_lstms(5, inputs, recurrent_dropconnect=rate, seed=0,
                                  return_sequences=True, return_state=True)
        assert [weight.name for weight in ours.weights] == ["kernel", "recurrent_kernel", "bias"]
        for mine, reference in zip(ours(inputs, mask=mask, training=training), theirs(inputs, mask=mask)):
            np.testing.assert_allclose(mine, reference, **TOLERANCE)
    np.testing.assert_allclose(ours(inputs)[0], numpy_lstm(inputs, *ours.get_weights()), **TOLERANCE)


def test_unit_forget_bias_and_bidirectional_go_backwards_match_keras():
    inputs = random_inputs((2, 5, 3))
    layer = WeightDropLSTM(2)
    layer(inputs)
    np.testing.assert_array_equal(layer.get_weights()[2], [0, 0, 1, 1, 0, 0, 0, 0])
    mask = np.array([[1] * 5, [1] * 3 + [0] * 2], dtype=bool)
    ours = keras.layers.Bidirectional(WeightDropLSTM(4, recurrent_dropconnect=0.3, return_sequences=True))
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))
    ours(inputs)
    theirs(inputs)
    theirs.set_weights(ours.get_weights())
    assert isinstance(ours.backward_layer, WeightDropLSTM) and ours.backward_layer.go_backwards
    np.testing.assert_allclose(ours(inputs, mask=mask), theirs(inputs, mask=mask), **TOLERANCE)


def test_equals_keras_lstm_when_stateful_across_two_calls():
    first, second = random_inputs((2, 4, 3), seed=1), random_inputs((2, 5, 3), seed=2)
    ours, theirs = twin_lstms(4, first, recurrent_dropconnect=0.5, stateful=True)
    ours.reset_state()
    theirs.reset_state()
    for chunk in (first, second):
        np.testing.assert_allclose(ours(chunk), theirs(chunk), **TOLERANCE)
    whole = numpy_lstm(np.concatenate([first, second], axis=1), *ours.get_weights())
    np.testing.assert_allclose(ours.states[0], whole[:, -1], **TOLERANCE)


def test_given_mask_matches_numpy_reference_in_training_and_inference():
    inputs = random_inputs((3, 7, 4))
    layer = WeightDropLSTM(5, recurrent_dropconnect=0.4, seed=1, return_sequences=True,
                           bias_initializer="random_normal")
    layer(inputs)
    given_mask = (np.random.default_rng(2).random((5, 20)) > 0.4) / 0.6
    expected = numpy_lstm(inputs, *layer.get_weights(), recurrent_kernel_mask=given_mask)
    for training in (True, False):
        outputs = layer(inputs, training=training, recurrent_kernel_mask=given_mask.astype("float32"))
        np.testing.assert_allclose(outputs, expected, **TOLERANCE)


def test_training_draws_one_mask_per_call_reused_at_every_step():
    inputs = random_inputs((3, 8, 4))

    def seeded_layer():
        layer = WeightDropLSTM(5, recurrent_dropconnect=0.5, seed=11, return_sequences=True)
        layer(inputs)
        return layer

    # Same seed, same generator state: the twin's draws are the masks the training calls use.
    layer, twin = seeded_layer(), seeded_layer()
    twin.set_weights(layer.get_weights())
    weights = layer.get_weights()
    masks = [np.asarray(twin.sample_recurrent_kernel_mask()) for _ in range(2)]
    for mask in masks:
        assert mask.shape == (5, 20)
        np.testing.assert_allclose(np.unique(mask), [0.0, 2.0])
    assert not np.array_equal(masks[0], masks[1])
    outputs = [np.asarray(layer(inputs, training=True)) for _ in range(2)]
    for output, mask in zip(outputs, masks):
        # NumPy applies the one mask at every step; a per-step mask would not match.
        np.testing.assert_allclose(output, numpy_lstm(inputs, *weights, recurrent_kernel_mask=mask),
                                   **TOLERANCE)
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3
    assert np.abs(outputs[0] - layer(inputs, training=False)).max() > 1e-3


def test_dropped_recurrent_weights_get_no_gradient():
    inputs = tf.constant(random_inputs((2, 5, 3)))
    layer = WeightDropLSTM(4, recurrent_dropconnect=0.5, return_sequences=True)
    layer(inputs)
    given_mask = ((np.random.default_rng(0).random((4, 16)) > 0.5) * 2.0).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(inputs, training=True, recurrent_kernel_mask=given_mask)))
    gradient = np.asarray(tape.gradient(loss, layer.cell.recurrent_kernel.value))
    assert np.all(gradient[given_mask == 0] == 0)
    assert np.all(gradient[given_mask > 0] != 0)


def test_standalone_cell_matches_lstm_cell_and_refuses_dropconnect_without_the_layer():
    inputs = random_inputs((2, 5, 3))
    ours = keras.layers.RNN(WeightDropLSTMCell(4, recurrent_dropconnect=0.5))
    theirs = keras.layers.RNN(keras.layers.LSTMCell(4))
    ours(inputs)
    theirs(inputs)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(inputs), theirs(inputs), **TOLERANCE)
    with pytest.raises(ValueError, match="inside the WeightDropLSTM layer"):
        ours(inputs, training=True)


# ActivationRegularization

def numpy_penalties(hidden, mask):
    """AR = mean of h^2 over real steps; TAR = mean of (h_t - h_{t-1})^2 over pairs of real steps."""
    weight = mask.astype("float64")
    activation = (weight[..., None] * hidden**2).sum() / (weight.sum() * hidden.shape[-1])
    pairs = weight[:, 1:] * weight[:, :-1]
    changes = (pairs[..., None] * (hidden[:, 1:] - hidden[:, :-1]) ** 2).sum()
    return activation, changes / (pairs.sum() * hidden.shape[-1])


def test_activation_regularization_adds_the_masked_penalties_in_training_only():
    hidden = random_inputs((3, 6, 4))
    mask = np.array([[1] * 6, [1] * 3 + [0] * 3, [1, 0, 1, 1, 0, 0]], dtype=bool)  # a hole too
    activation, temporal = numpy_penalties(hidden, mask)
    layer = ActivationRegularization(alpha=2.0, beta=0.5)
    np.testing.assert_array_equal(layer(hidden, mask=mask, training=True), hidden)
    np.testing.assert_allclose([float(loss) for loss in layer.losses], [2.0 * activation, 0.5 * temporal],
                               rtol=1e-5)
    activation_all, temporal_all = numpy_penalties(hidden, np.ones((3, 6), bool))
    layer(hidden, training=True)
    np.testing.assert_allclose([float(loss) for loss in layer.losses],
                               [2.0 * activation_all, 0.5 * temporal_all], rtol=1e-5)
    layer(hidden, mask=mask, training=False)
    assert layer.losses == []
    only_tar = ActivationRegularization(beta=1.0)
    only_tar(hidden, mask=mask, training=True)
    np.testing.assert_allclose([float(loss) for loss in only_tar.losses], [temporal], rtol=1e-5)
    nothing = ActivationRegularization()
    nothing(hidden, training=True)
    assert nothing.losses == []


# A toy AWD-LSTM: every layer, masking, fit and saving

def awd_lstm(vocabulary_size=12, timesteps=7):
    ids = keras.Input((timesteps,), dtype="int32")
    embedded = keras.layers.Embedding(vocabulary_size, 8, mask_zero=True)(ids)
    embedded = EmbeddingDropout(0.1, vocabulary_size=vocabulary_size, seed=1)([embedded, ids])
    embedded = LockedDropout(0.2, seed=2)(embedded)
    hidden = WeightDropLSTM(6, recurrent_dropconnect=0.5, seed=3, return_sequences=True)(embedded)
    hidden = ActivationRegularization(beta=1.0)(hidden)
    hidden = LockedDropout(0.3, seed=4)(hidden)
    hidden = ActivationRegularization(alpha=2.0)(hidden)
    return keras.Model(ids, keras.layers.Dense(vocabulary_size)(hidden))


def test_toy_awd_lstm_fits_in_graph_mode_and_reloads_from_a_keras_file(tmp_path):
    token_ids = np.random.default_rng(0).integers(1, 12, size=(16, 7))
    token_ids[::3, 5:] = 0  # padded rows
    targets = np.roll(token_ids, -1, axis=1)
    model = awd_lstm()
    model(token_ids, training=True)
    assert len(model.losses) == 2  # AR and TAR reach the model's loss
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [weight.copy() for weight in model.get_weights()]
    history = model.fit(token_ids, targets, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(not np.array_equal(old, new) for old, new in zip(before, model.get_weights()))
    expected = model.predict(token_ids, verbose=0)
    np.testing.assert_allclose(model.predict(token_ids, verbose=0), expected)  # inference is deterministic
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(token_ids, verbose=0), expected, **TOLERANCE)


# Configuration and arguments

@pytest.mark.parametrize(
    "layer",
    [
        LockedDropout(0.25, seed=3, name="locked"),
        EmbeddingDropout(0.1, vocabulary_size=50, per_sequence=True, seed=4),
        ActivationRegularization(alpha=2.0, beta=1.0),
        WeightDropLSTMCell(3, recurrent_dropconnect=0.5, unit_forget_bias=False, seed=1),
        WeightDropLSTM(7, recurrent_dropconnect=0.5, recurrent_initializer="glorot_uniform", seed=5,
                       return_sequences=True, go_backwards=True, stateful=False, name="weight_drop"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    assert "cell" not in config
    assert type(layer).from_config(config).get_config() == config


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LockedDropout(1.0), "rate=1.0"),
        (lambda: LockedDropout(-0.1), "rate=-0.1"),
        (lambda: LockedDropout(0.5, seed=1.5), "seed=1.5"),
        (lambda: EmbeddingDropout(True, vocabulary_size=5), "rate=True"),
        (lambda: EmbeddingDropout(0.1, vocabulary_size=0), "vocabulary_size=0"),
        (lambda: WeightDropLSTM(4, recurrent_dropconnect=1.0), "recurrent_dropconnect=1.0"),
        (lambda: WeightDropLSTM(0), "units=0"),
        (lambda: WeightDropLSTMCell(2.5), "units=2.5"),
        (lambda: ActivationRegularization(alpha=-1.0), "alpha=-1.0"),
        (lambda: ActivationRegularization(beta=float("inf")), "beta=inf"),
    ],
)
def test_invalid_arguments_name_the_argument_and_value(build, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        build()
