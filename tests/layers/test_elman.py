"""Tests of the Elman cell and layer: numbers against NumPy and identity with keras.layers.SimpleRNN."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.layers.elman import ACTIVATIONS, Elman, ElmanCell

TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def numpy_elman(inputs, kernel, recurrent_kernel, bias, activation="tanh", state=None):
    """The six-line loop: h_t = phi(x_t @ W_in + h_{t-1} @ W_rec + b); returns all h_t."""
    phi = {"tanh": np.tanh, "softsign": lambda a: a / (1 + np.abs(a)),
           "relu": lambda a: np.maximum(a, 0), "sigmoid": lambda a: 1 / (1 + np.exp(-a))}[activation]
    state = np.zeros((inputs.shape[0], kernel.shape[1])) if state is None else state
    outputs = []
    for t in range(inputs.shape[1]):
        state = phi(inputs[:, t] @ kernel + state @ recurrent_kernel + bias)
        outputs.append(state)
    return np.stack(outputs, axis=1)


def random_inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def twin_layers(units, inputs, **arguments):
    """An Elman and a SimpleRNN built on ``inputs`` with the Elman's weights copied over."""
    elman = Elman(units, **arguments)
    simple = keras.layers.SimpleRNN(units, **arguments)
    elman(inputs)
    simple(inputs)
    simple.set_weights(elman.get_weights())
    return elman, simple


def test_shapes_and_weight_counts():
    inputs = random_inputs((2, 5, 3))
    layer = Elman(4)
    assert layer(inputs).shape == (2, 4)
    assert [weight.shape for weight in layer.weights] == [(3, 4), (4, 4), (4,)]
    assert [weight.name for weight in layer.weights] == ["kernel", "recurrent_kernel", "bias"]
    assert layer.count_params() == 3 * 4 + 4 * 4 + 4
    assert Elman(4, return_sequences=True)(inputs).shape == (2, 5, 4)
    output, state = Elman(4, return_state=True)(inputs)
    np.testing.assert_array_equal(output, state)
    no_bias = Elman(4, use_bias=False)
    no_bias(inputs)
    assert len(no_bias.trainable_weights) == 2
    regularized = Elman(4, kernel_regularizer="l2", recurrent_regularizer="l2", bias_regularizer="l1")
    regularized(inputs)
    assert len(regularized.losses) == 3


def test_fixed_numbers_with_constant_weights():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    arguments = dict(
        kernel_initializer=keras.initializers.Constant(0.01),
        recurrent_initializer=keras.initializers.Constant(0.02),
        bias_initializer=keras.initializers.Constant(0.03),
    )
    expected = np.array([[0.405432] * 4, [0.73605347] * 4])  # the numbers Keras's own test pins
    for unroll in (False, True):
        output = Elman(4, unroll=unroll, **arguments)(sequence)
        np.testing.assert_allclose(output, expected, **TOLERANCE)
    reference = numpy_elman(sequence, np.full((4, 4), 0.01), np.full((4, 4), 0.02), np.full(4, 0.03))
    np.testing.assert_allclose(output, reference[:, -1], **TOLERANCE)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_each_activation_against_numpy_with_random_weights(activation):
    inputs = random_inputs((3, 6, 5), seed=1)
    layer = Elman(4, activation=activation, return_sequences=True,
                  bias_initializer=keras.initializers.RandomNormal(seed=3))
    output = layer(inputs)
    np.testing.assert_allclose(output, numpy_elman(inputs, *layer.get_weights(), activation=activation), **TOLERANCE)


def test_identity_with_simple_rnn_forward_and_state():
    inputs = random_inputs((3, 7, 5))
    elman, simple = twin_layers(6, inputs, return_sequences=True, return_state=True,
                                bias_initializer="random_normal")
    for ours, theirs in zip(elman(inputs), simple(inputs)):
        np.testing.assert_allclose(ours, theirs, **TOLERANCE)
    initial_state = random_inputs((3, 6), seed=2)
    np.testing.assert_allclose(elman(inputs, initial_state=[initial_state])[0],
                               simple(inputs, initial_state=[initial_state])[0], **TOLERANCE)


def test_identity_with_simple_rnn_under_explicit_mask_and_mask_zero_embedding():
    inputs = random_inputs((3, 6, 4))
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], dtype=bool)
    elman, simple = twin_layers(5, inputs, return_sequences=True)
    np.testing.assert_allclose(elman(inputs, mask=mask), simple(inputs, mask=mask), **TOLERANCE)

    token_ids = np.array([[3, 5, 2, 7, 1], [4, 2, 6, 0, 0], [9, 0, 0, 0, 0]], dtype="int32")
    models = []
    for recurrent in (Elman(5), keras.layers.SimpleRNN(5)):
        ids = keras.Input((5,), dtype="int32")
        embedded = keras.layers.Embedding(10, 4, mask_zero=True)(ids)
        models.append(keras.Model(ids, recurrent(embedded)))
    models[1].set_weights(models[0].get_weights())
    ours, theirs = models[0].predict(token_ids, verbose=0), models[1].predict(token_ids, verbose=0)
    np.testing.assert_allclose(ours, theirs, **TOLERANCE)
    # The padded row equals the unpadded sequence alone: masking keeps the state.
    np.testing.assert_allclose(ours[1], models[0].predict(token_ids[1:2, :3], verbose=0)[0], **TOLERANCE)


def test_identity_with_simple_rnn_going_backwards():
    inputs = random_inputs((2, 6, 3))
    elman, simple = twin_layers(4, inputs, go_backwards=True, return_sequences=True)
    np.testing.assert_allclose(elman(inputs), simple(inputs), **TOLERANCE)
    reversed_reference = numpy_elman(inputs[:, ::-1], *elman.get_weights())
    np.testing.assert_allclose(elman(inputs), reversed_reference, **TOLERANCE)


def test_identity_with_simple_rnn_when_stateful_across_two_calls():
    first, second = random_inputs((2, 4, 3), seed=1), random_inputs((2, 5, 3), seed=2)
    elman, simple = twin_layers(4, first, stateful=True)
    elman.reset_state()
    simple.reset_state()
    for chunk in (first, second):
        np.testing.assert_allclose(elman(chunk), simple(chunk), **TOLERANCE)
    whole = numpy_elman(np.concatenate([first, second], axis=1), *elman.get_weights())
    np.testing.assert_allclose(elman.states[0], whole[:, -1], **TOLERANCE)
    elman.reset_state()
    np.testing.assert_allclose(elman(first), whole[:, 3], **TOLERANCE)


def test_identity_with_simple_rnn_gradients_of_weights_and_inputs():
    inputs = tf.constant(random_inputs((3, 6, 4)))
    elman, simple = twin_layers(5, inputs, return_sequences=True, bias_initializer="random_normal")
    readout = tf.constant(random_inputs((3, 6, 5), seed=7))
    gradients = []
    for layer in (elman, simple):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs) * readout)
        gradients.append(tape.gradient(loss, layer.trainable_weights + [inputs]))
    assert len(gradients[0]) == 4
    for ours, theirs in zip(*gradients):
        np.testing.assert_allclose(ours, theirs, **TOLERANCE)


def test_dropout_off_in_inference_on_in_training_and_reproducible_with_seed():
    inputs = random_inputs((4, 6, 5))
    plain = Elman(8, return_sequences=True)
    plain(inputs)

    def dropping(seed):
        layer = Elman(8, dropout=0.3, recurrent_dropout=0.4, seed=seed, return_sequences=True)
        layer(inputs)
        layer.set_weights(plain.get_weights())
        return layer

    layer = dropping(seed=11)
    np.testing.assert_array_equal(layer(inputs, training=False), plain(inputs))
    trained = layer(inputs, training=True)
    assert np.abs(trained - plain(inputs)).max() > 1e-3
    np.testing.assert_array_equal(dropping(seed=11)(inputs, training=True), trained)
    assert np.abs(dropping(seed=12)(inputs, training=True) - trained).max() > 1e-3
    assert np.abs(layer(inputs, training=True) - trained).max() > 1e-3  # a fresh mask per call
    # Same mask semantics as Keras: one input and one recurrent mask per call, drawn in that order.
    simple = keras.layers.SimpleRNN(8, dropout=0.3, recurrent_dropout=0.4, seed=11, return_sequences=True)
    simple.build(inputs.shape)  # not called: SimpleRNN draws (unused) masks even in inference
    simple.set_weights(plain.get_weights())
    np.testing.assert_allclose(dropping(seed=11)(inputs, training=True), simple(inputs, training=True), **TOLERANCE)


def test_dropout_trains_in_fit():
    inputs, targets = random_inputs((8, 5, 3)), random_inputs((8, 1), seed=1)
    model = keras.Sequential([keras.Input((5, 3)), Elman(4, dropout=0.2, recurrent_dropout=0.2, seed=0),
                              keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(inputs, targets, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_standalone_cell_stacks_and_refuses_dropout_without_the_layer():
    inputs = random_inputs((2, 5, 3))
    ours = keras.layers.RNN([ElmanCell(4), ElmanCell(2)])
    theirs = keras.layers.RNN([keras.layers.SimpleRNNCell(4), keras.layers.SimpleRNNCell(2)])
    ours(inputs)
    theirs(inputs)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(inputs), theirs(inputs), **TOLERANCE)
    with pytest.raises(ValueError, match="inside the Elman layer"):
        keras.layers.RNN(ElmanCell(4, dropout=0.5))(inputs, training=True)


def test_stacked_model_matches_stacked_simple_rnn():
    inputs = random_inputs((3, 6, 4))
    models = []
    for recurrent in (Elman, keras.layers.SimpleRNN):
        models.append(keras.Sequential([
            keras.Input((6, 4)), recurrent(5, return_sequences=True), recurrent(3), keras.layers.Dense(2),
        ]))
    models[1].set_weights(models[0].get_weights())
    np.testing.assert_allclose(models[0](inputs), models[1](inputs), **TOLERANCE)


def test_bidirectional_matches_bidirectional_simple_rnn():
    inputs = random_inputs((3, 6, 4))
    mask = np.array([[1] * 6, [1] * 3 + [0] * 3, [1] * 5 + [0]], dtype=bool)
    ours = keras.layers.Bidirectional(Elman(5, return_sequences=True))
    theirs = keras.layers.Bidirectional(keras.layers.SimpleRNN(5, return_sequences=True))
    ours(inputs)
    theirs(inputs)
    theirs.set_weights(ours.get_weights())
    assert isinstance(ours.backward_layer, Elman) and ours.backward_layer.go_backwards
    np.testing.assert_allclose(ours(inputs, mask=mask), theirs(inputs, mask=mask), **TOLERANCE)


def test_get_config_round_trip():
    layer = Elman(
        7, activation="softsign", use_bias=False, kernel_regularizer="l2",
        recurrent_constraint="non_neg", dropout=0.25, recurrent_dropout=0.125, seed=5,
        return_sequences=True, go_backwards=True, unroll=True, name="elman_round_trip",
    )
    config = layer.get_config()
    assert "cell" not in config
    assert config["units"] == 7 and config["activation"] == "softsign" and config["seed"] == 5
    rebuilt = Elman.from_config(config)
    assert rebuilt.get_config() == config
    cell = ElmanCell(3, activation="relu", dropout=0.5, seed=1)
    assert ElmanCell.from_config(cell.get_config()).get_config() == cell.get_config()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(units=0), "units=0"),
        (dict(units=-3), "units=-3"),
        (dict(units=2.5), "units=2.5"),
        (dict(units=True), "units=True"),
        (dict(units=4, activation="gelu"), "activation='gelu'"),
        (dict(units=4, dropout=1.0), "dropout=1.0"),
        (dict(units=4, recurrent_dropout=-0.1), "recurrent_dropout=-0.1"),
        (dict(units=4, seed="zero"), "seed='zero'"),
    ],
)
def test_invalid_arguments_name_the_argument_and_value(arguments, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        Elman(**arguments)
