"""Tests of the NumPy BPTT reference: hand-computed cases and Keras autodiff on Elman + Dense."""

import math
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.layers.elman import ACTIVATIONS, Elman
from pipeline.tools.bptt.reference import ElmanWeights, bptt, forward

FLOAT64 = dict(atol=1e-9, rtol=1e-7)


def scalar_weights(kernel, recurrent_kernel, bias, output_kernel, output_bias):
    return ElmanWeights(*(np.array(value, dtype=float).reshape(shape) for value, shape in (
        (kernel, (1, 1)), (recurrent_kernel, (1, 1)), (bias, (1,)), (output_kernel, (1, 1)), (output_bias, (1,)),
    )))


# T = 2, one unit, relu with positive pre-activations (phi' = 1), so every number is exact:
# x = (1, 2), W_in = W_rec = 0.5, b = 0, V = 2, c = 0, z = (0, 1).
# a1 = 0.5, h1 = 0.5, y1 = 1; a2 = 2 * 0.5 + 0.5 * 0.5 = 1.25, h2 = 1.25, y2 = 2.5.
# e1 = 1, e2 = 1.5; delta2 = e2 V = 3; delta1 = delta2 W_rec + e1 V = 1.5 + 2 = 3.5.
RELU_CASE = dict(inputs=np.array([[[1.0], [2.0]]]), weights=scalar_weights(0.5, 0.5, 0.0, 2.0, 0.0))


def test_tiny_relu_case_by_hand_full_sequence_loss():
    result = bptt(RELU_CASE["inputs"], np.array([[[0.0], [1.0]]]), RELU_CASE["weights"], activation="relu")
    assert result.loss == pytest.approx(0.5 * (1.0**2 + 1.5**2))
    gradients = result.gradients
    assert gradients.kernel.item() == pytest.approx(1 * 3.5 + 2 * 3.0)  # x1 d1 + x2 d2 = 9.5
    assert gradients.recurrent_kernel.item() == pytest.approx(0 * 3.5 + 0.5 * 3.0)  # h0 d1 + h1 d2 = 1.5
    assert gradients.bias.item() == pytest.approx(6.5)
    assert gradients.output_kernel.item() == pytest.approx(0.5 * 1.0 + 1.25 * 1.5)  # 2.375
    assert gradients.output_bias.item() == pytest.approx(2.5)
    np.testing.assert_allclose(result.hidden_gradients.ravel(), [3.5, 3.0])  # dL/dh1, dL/dh2
    np.testing.assert_allclose(result.input_gradients.ravel(), [0.5 * 3.5, 0.5 * 3.0])
    assert result.initial_state_gradient.item() == pytest.approx(0.5 * 3.5)


def test_tiny_relu_case_by_hand_many_to_one():
    # Only l2: e2 = 1.5, delta2 = 3, delta1 = delta2 W_rec = 1.5.
    result = bptt(RELU_CASE["inputs"], np.array([[1.0]]), RELU_CASE["weights"], activation="relu", loss_steps="last")
    assert result.loss == pytest.approx(0.5 * 1.5**2)
    gradients = result.gradients
    assert gradients.kernel.item() == pytest.approx(1 * 1.5 + 2 * 3.0)
    assert gradients.recurrent_kernel.item() == pytest.approx(0.5 * 3.0)
    assert gradients.bias.item() == pytest.approx(4.5)
    assert gradients.output_kernel.item() == pytest.approx(1.25 * 1.5)
    assert gradients.output_bias.item() == pytest.approx(1.5)


def test_tiny_relu_case_by_hand_truncated_to_one_step():
    # k = 1: l2's error stops at step 2, so delta1 = e1 V = 2 (not 3.5); V and c are unchanged.
    result = bptt(RELU_CASE["inputs"], np.array([[[0.0], [1.0]]]), RELU_CASE["weights"],
                  activation="relu", truncation=1)
    gradients = result.gradients
    assert gradients.kernel.item() == pytest.approx(1 * 2.0 + 2 * 3.0)
    assert gradients.recurrent_kernel.item() == pytest.approx(0 * 2.0 + 0.5 * 3.0)
    assert gradients.bias.item() == pytest.approx(5.0)
    assert gradients.output_kernel.item() == pytest.approx(2.375)
    assert gradients.output_bias.item() == pytest.approx(2.5)
    np.testing.assert_allclose(result.hidden_gradients.ravel(), [2.0, 3.0])


def test_tiny_tanh_case_by_scalar_chain_rule():
    x1, x2, w, u, b, v, c, z1, z2 = 0.3, -0.7, 0.8, -0.4, 0.1, 1.5, -0.2, 0.25, -0.5
    h1 = math.tanh(w * x1 + b)
    h2 = math.tanh(w * x2 + u * h1 + b)
    e1, e2 = v * h1 + c - z1, v * h2 + c - z2
    delta2 = e2 * v * (1 - h2**2)
    delta1 = (delta2 * u + e1 * v) * (1 - h1**2)
    result = bptt(np.array([[[x1], [x2]]]), np.array([[[z1], [z2]]]), scalar_weights(w, u, b, v, c))
    gradients = result.gradients
    assert result.loss == pytest.approx(0.5 * (e1**2 + e2**2))
    assert gradients.kernel.item() == pytest.approx(x1 * delta1 + x2 * delta2)
    assert gradients.recurrent_kernel.item() == pytest.approx(h1 * delta2)
    assert gradients.bias.item() == pytest.approx(delta1 + delta2)
    assert gradients.output_kernel.item() == pytest.approx(h1 * e1 + h2 * e2)
    assert gradients.output_bias.item() == pytest.approx(e1 + e2)


def keras_gradients(inputs, targets, weights, *, activation, loss, loss_steps, initial_state):
    """Autodiff of the same loss through Elman + Dense, float64."""
    elman = Elman(weights.recurrent_kernel.shape[0], activation=activation, dtype="float64",
                  return_sequences=loss_steps == "all")
    head = keras.layers.Dense(weights.output_kernel.shape[1], dtype="float64")
    inputs = tf.constant(inputs)
    initial_state = tf.constant(initial_state)
    head(elman(inputs))
    elman.set_weights(weights.as_list()[:3])
    head.set_weights(weights.as_list()[3:])
    with tf.GradientTape() as tape:
        tape.watch([inputs, initial_state])
        outputs = head(elman(inputs, initial_state=[initial_state]))
        if loss == "squared_error":
            value = 0.5 * tf.reduce_sum(tf.square(outputs - targets))
        else:
            value = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, outputs))
    sources = elman.trainable_weights + head.trainable_weights + [inputs, initial_state]
    return float(value), [gradient.numpy() for gradient in tape.gradient(value, sources)]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(("loss", "loss_steps"), [
    ("squared_error", "all"), ("squared_error", "last"),
    ("softmax_cross_entropy", "all"), ("softmax_cross_entropy", "last"),
])
def test_gradients_equal_keras_autodiff_float64(activation, loss, loss_steps):
    rng = np.random.default_rng(zlib.crc32(f"{activation} {loss} {loss_steps}".encode()))
    batch, timesteps, features, units, outputs = 3, 5, 4, 6, 3
    weights = ElmanWeights(
        rng.normal(0, 0.5, (features, units)), rng.normal(0, 0.4, (units, units)), rng.normal(0, 0.2, units),
        rng.normal(0, 0.5, (units, outputs)), rng.normal(0, 0.2, outputs),
    )
    inputs = rng.normal(size=(batch, timesteps, features))
    initial_state = rng.normal(0, 0.3, (batch, units))
    target_shape = (batch, timesteps) if loss_steps == "all" else (batch,)
    if loss == "squared_error":
        targets = rng.normal(size=target_shape + (outputs,))
    else:
        targets = rng.integers(0, outputs, size=target_shape)
    result = bptt(inputs, targets, weights, activation=activation, loss=loss, loss_steps=loss_steps,
                  initial_state=initial_state)
    value, expected = keras_gradients(inputs, targets, weights, activation=activation, loss=loss,
                                      loss_steps=loss_steps, initial_state=initial_state)
    assert result.loss == pytest.approx(value, rel=1e-10)
    ours = result.gradients.as_list() + [result.input_gradients, result.initial_state_gradient]
    for name, our_gradient, keras_gradient in zip(
        ["kernel", "recurrent_kernel", "bias", "output_kernel", "output_bias", "inputs", "initial_state"],
        ours, expected,
    ):
        np.testing.assert_allclose(our_gradient, keras_gradient, err_msg=name, **FLOAT64)


def random_problem(seed=0, timesteps=6):
    rng = np.random.default_rng(seed)
    weights = ElmanWeights(rng.normal(0, 0.6, (3, 4)), rng.normal(0, 0.6, (4, 4)), rng.normal(0, 0.2, 4),
                           rng.normal(0, 0.6, (4, 2)), rng.normal(0, 0.2, 2))
    return rng.normal(size=(2, timesteps, 3)), rng.normal(size=(2, timesteps, 2)), weights


@pytest.mark.parametrize("loss_steps", ["all", "last"])
def test_truncation_at_least_the_length_equals_full(loss_steps):
    inputs, targets, weights = random_problem()
    if loss_steps == "last":
        targets = targets[:, -1]
    full = bptt(inputs, targets, weights, loss_steps=loss_steps)
    for truncation in (6, 9):
        truncated = bptt(inputs, targets, weights, loss_steps=loss_steps, truncation=truncation)
        for ours, reference in zip(truncated.gradients.as_list(), full.gradients.as_list()):
            np.testing.assert_allclose(ours, reference, **FLOAT64)
        np.testing.assert_allclose(truncated.initial_state_gradient, full.initial_state_gradient, **FLOAT64)
        np.testing.assert_allclose(truncated.hidden_gradients, full.hidden_gradients, **FLOAT64)


def test_shorter_truncation_differs_and_equals_autodiff_with_the_state_frozen_k_steps_back():
    inputs, targets, weights = random_problem(seed=1)
    truncation, timesteps = 2, inputs.shape[1]
    full = bptt(inputs, targets, weights)
    truncated = bptt(inputs, targets, weights, truncation=truncation)
    assert not np.allclose(truncated.gradients.kernel, full.gradients.kernel)
    assert not np.allclose(truncated.gradients.recurrent_kernel, full.gradients.recurrent_kernel)
    np.testing.assert_allclose(truncated.gradients.output_kernel, full.gradients.output_kernel, **FLOAT64)
    # Independent construction: loss term l_s sees only steps s-k+1..s, started from the
    # constant state h_{s-k}; Keras autodiff on each window, summed over s.
    states = forward(inputs, weights).states
    expected = [np.zeros_like(weight) for weight in weights.as_list()]
    for step in range(timesteps):
        start = max(0, step - truncation + 1)
        _, window_gradients = keras_gradients(
            inputs[:, start:step + 1], targets[:, step], weights, activation="tanh",
            loss="squared_error", loss_steps="last", initial_state=states[:, start],
        )
        expected = [total + gradient for total, gradient in zip(expected, window_gradients[:5])]
    for ours, reference in zip(truncated.gradients.as_list(), expected):
        np.testing.assert_allclose(ours, reference, **FLOAT64)


def test_float32_keras_layer_agrees_to_1e4():
    inputs, targets, weights = random_problem(seed=2)
    elman = Elman(4, return_sequences=True)
    head = keras.layers.Dense(2)
    head(elman(inputs.astype("float32")))
    elman.set_weights([w.astype("float32") for w in weights.as_list()[:3]])
    head.set_weights([w.astype("float32") for w in weights.as_list()[3:]])
    with tf.GradientTape() as tape:
        loss = 0.5 * tf.reduce_sum(tf.square(head(elman(inputs.astype("float32"))) - targets.astype("float32")))
    keras_gradients32 = tape.gradient(loss, elman.trainable_weights + head.trainable_weights)
    for ours, reference in zip(bptt(inputs, targets, weights).gradients.as_list(), keras_gradients32):
        np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=1e-4)


def test_invalid_arguments():
    inputs, targets, weights = random_problem()
    with pytest.raises(ValueError, match="truncation=0"):
        bptt(inputs, targets, weights, truncation=0)
    with pytest.raises(ValueError, match="loss='hinge'"):
        bptt(inputs, targets, weights, loss="hinge")
    with pytest.raises(ValueError, match="loss_steps='first'"):
        bptt(inputs, targets, weights, loss_steps="first")
    with pytest.raises(ValueError, match="activation='gelu'"):
        bptt(inputs, targets, weights, activation="gelu")
