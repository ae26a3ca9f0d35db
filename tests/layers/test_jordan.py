"""Tests of the Jordan (output-to-hidden) layers: both modes against NumPy loops, and against keras.layers.Dense."""

import keras
import numpy as np
import pytest

from pipeline.layers.jordan import Jordan, JordanCell, JordanHidden, decayed_sum

TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def numpy_jordan(inputs, weights, targets=None, state_decay=0.0, output_activation="linear", feedback="output",
                 state=None):
    """The loop of the module docstring: s_t = μ s_{t-1} + y_{t-1}, h_t = tanh(x W + s R + b), y_t = g(h V + c).

    ``targets`` given: y_{t-1} is the true output (teacher forcing); else the loop's own y_{t-1}
    (or one_hot(argmax o_{t-1}) with feedback "argmax").
    """
    kernel, recurrent_kernel, bias, output_kernel, output_bias = (np.asarray(w, np.float64) for w in weights)
    g = {"linear": lambda a: a, "softmax": softmax, "tanh": np.tanh}[output_activation]
    state = np.zeros((inputs.shape[0], output_kernel.shape[1])) if state is None else state
    outputs = []
    for t in range(inputs.shape[1]):
        hidden = np.tanh(inputs[:, t] @ kernel + state @ recurrent_kernel + bias)
        logits = hidden @ output_kernel + output_bias
        outputs.append(g(logits))
        if targets is not None:
            fed_back = targets[:, t]
        elif feedback == "argmax":
            fed_back = np.eye(logits.shape[1])[logits.argmax(axis=1)]
        else:
            fed_back = outputs[-1]
        state = state_decay * state + fed_back
    return np.stack(outputs, axis=1)


def random_array(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def built_layer(inputs, units=6, output_units=4, **arguments):
    layer = Jordan(units, output_units, **arguments)
    layer(inputs)
    rng = np.random.default_rng(7)
    layer.set_weights([rng.uniform(-0.6, 0.6, size=w.shape).astype("float32") for w in layer.get_weights()])
    return layer


def test_shapes_and_weights():
    inputs = random_array((2, 5, 3))
    layer = Jordan(6, 4)
    assert layer(inputs).shape == (2, 5, 4)
    assert layer(inputs, targets=random_array((2, 5, 4))).shape == (2, 5, 4)
    assert [w.name for w in layer.weights] == ["kernel", "recurrent_kernel", "bias", "output_kernel", "output_bias"]
    assert [tuple(w.shape) for w in layer.weights] == [(3, 6), (4, 6), (6,), (6, 4), (4,)]
    assert Jordan(6, 4, return_sequences=False)(inputs).shape == (2, 4)
    output, state = Jordan(6, 4, return_state=True, return_sequences=False)(inputs)
    assert output.shape == state.shape == (2, 4)
    assert len(Jordan(6, 4, use_bias=False)(inputs).shape) == 3


@pytest.mark.parametrize("state_decay", [0.0, 0.6])
@pytest.mark.parametrize("output_activation", ["linear", "softmax", "tanh"])
def test_teacher_forcing_against_numpy(state_decay, output_activation):
    inputs, targets = random_array((3, 7, 5), 1), random_array((3, 7, 4), 2)
    layer = built_layer(inputs, state_decay=state_decay, output_activation=output_activation)
    expected = numpy_jordan(inputs, layer.get_weights(), targets, state_decay, output_activation)
    np.testing.assert_allclose(layer(inputs, targets=targets), expected, **TOLERANCE)
    initial = random_array((3, 4), 3)
    expected = numpy_jordan(inputs, layer.get_weights(), targets, state_decay, output_activation, state=initial)
    np.testing.assert_allclose(layer(inputs, targets=targets, initial_state=[initial]), expected, **TOLERANCE)


@pytest.mark.parametrize("state_decay", [0.0, 0.6])
@pytest.mark.parametrize("feedback, output_activation", [("output", "linear"), ("output", "softmax"),
                                                         ("argmax", "softmax")])
def test_free_running_against_numpy(state_decay, feedback, output_activation):
    inputs = random_array((3, 7, 5), 4)
    layer = built_layer(inputs, state_decay=state_decay, feedback=feedback, output_activation=output_activation)
    expected = numpy_jordan(inputs, layer.get_weights(), None, state_decay, output_activation, feedback)
    np.testing.assert_allclose(layer(inputs), expected, **TOLERANCE)
    np.testing.assert_allclose(Jordan.from_config(layer.get_config())(inputs).shape, expected.shape)


def test_teacher_forcing_with_its_own_outputs_is_free_running():
    """Fed its own free-running outputs as targets, the parallel form reproduces the loop exactly."""
    inputs = random_array((2, 9, 3), 5)
    layer = built_layer(inputs, state_decay=0.3, output_activation="tanh")
    free = np.asarray(layer(inputs))
    np.testing.assert_allclose(layer(inputs, targets=free), free, **TOLERANCE)
    # and the true targets change the outputs from step 1 on, never step 0
    forced = np.asarray(layer(inputs, targets=random_array((2, 9, 4), 6)))
    np.testing.assert_allclose(forced[:, 0], free[:, 0], **TOLERANCE)
    assert not np.allclose(forced[:, 1:], free[:, 1:])


def test_decayed_sum_is_the_linear_recurrence():
    sequence = random_array((2, 6, 3), 8)
    state, expected = np.zeros((2, 3)), []
    for t in range(6):
        state = 0.7 * state + sequence[:, t]
        expected.append(state)
    np.testing.assert_allclose(decayed_sum(sequence, 0.7), np.stack(expected, 1), **TOLERANCE)
    assert decayed_sum(sequence, 0.0) is sequence


def test_teacher_forced_training_and_reload(tmp_path):
    """Trains on (inputs, targets) in a functional model; the .keras file reloads with the same numbers."""
    keras.utils.set_random_seed(0)
    inputs, targets = random_array((16, 6, 3), 9), np.tanh(random_array((16, 6, 2), 10))
    sequence, target_input = keras.Input((None, 3)), keras.Input((None, 2))
    layer = Jordan(8, 2, output_activation="tanh", state_decay=0.2, name="jordan")
    model = keras.Model([sequence, target_input], layer(sequence, targets=target_input))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    history = model.fit([inputs, targets], targets, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "jordan.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict([inputs, targets], verbose=0),
                               model.predict([inputs, targets], verbose=0), **TOLERANCE)
    generator = keras.Model(sequence, layer(sequence))  # the same weights, free running
    expected = numpy_jordan(inputs, layer.get_weights(), None, 0.2, "tanh")
    np.testing.assert_allclose(generator.predict(inputs, verbose=0), expected, **TOLERANCE)


def test_mask_at_the_end_leaves_the_real_steps_alone():
    inputs, targets = random_array((2, 6, 3), 11), random_array((2, 6, 4), 12)
    layer = built_layer(inputs, state_decay=0.5)
    mask = np.array([[True] * 6, [True] * 4 + [False] * 2])
    forced = np.asarray(layer(inputs, targets=targets, mask=mask))
    free = np.asarray(layer(inputs, mask=mask))
    short = numpy_jordan(inputs[1:, :4], layer.get_weights(), targets[1:, :4], 0.5)
    np.testing.assert_allclose(forced[1:, :4], short, **TOLERANCE)
    np.testing.assert_allclose(free[1:, :4], numpy_jordan(inputs[1:, :4], layer.get_weights(), None, 0.5),
                               **TOLERANCE)


@pytest.mark.parametrize("arguments, fragment", [
    (dict(units=0, output_units=2), "units=0"),
    (dict(units=2, output_units=2, output_activation="relu6"), "output_activation='relu6'"),
    (dict(units=2, output_units=2, feedback="sample"), "feedback='sample'"),
    (dict(units=2, output_units=2, state_decay=1.0), "state_decay=1.0"),
    (dict(units=2, output_units=2, activation="gelu"), "activation='gelu'"),
])
def test_invalid_arguments_name_the_argument(arguments, fragment):
    with pytest.raises(ValueError, match=fragment):
        JordanCell(**arguments)


def test_teacher_forcing_rejects_go_backwards():
    inputs = random_array((1, 3, 2))
    with pytest.raises(ValueError, match="go_backwards"):
        Jordan(2, 2, go_backwards=True)(inputs, targets=random_array((1, 3, 2)))


# ------------------------------------------------------------------ JordanHidden (the language-model kind)
@pytest.mark.parametrize("state_decay", [0.0, 0.5])
def test_hidden_against_numpy(state_decay):
    inputs = random_array((3, 6, 5), 13)
    layer = JordanHidden(4, state_decay=state_decay, activation="softsign")
    layer(inputs)
    recurrent_kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    state, expected = np.zeros((3, 5)), []
    for t in range(6):
        state = state_decay * state + inputs[:, t]
        preactivation = state @ recurrent_kernel + bias
        expected.append(preactivation / (1 + np.abs(preactivation)))
    np.testing.assert_allclose(layer(inputs), np.stack(expected, 1), **TOLERANCE)


def test_hidden_without_decay_is_a_dense_layer():
    inputs = random_array((2, 5, 3), 14)
    layer, dense = JordanHidden(4), keras.layers.Dense(4, activation="tanh")
    layer(inputs), dense(inputs)
    dense.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(inputs), dense(inputs), **TOLERANCE)


def test_hidden_last_step_follows_the_mask_and_reloads():
    ids = np.array([[3, 4, 5, 0], [6, 7, 0, 0]])
    embedded = keras.layers.Embedding(8, 3, mask_zero=True)
    token_ids = keras.Input((None,), dtype="int32")
    hidden = JordanHidden(4, state_decay=0.4, return_sequences=False)
    model = keras.Model(token_ids, hidden(embedded(token_ids)))
    every_step = JordanHidden.from_config({**hidden.get_config(), "return_sequences": True})
    every_step(embedded(ids))
    every_step.set_weights(hidden.get_weights())
    sequences = np.asarray(every_step(embedded(ids), mask=ids != 0))
    np.testing.assert_allclose(model(ids), sequences[[0, 1], [2, 1]], **TOLERANCE)
