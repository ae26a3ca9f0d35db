"""Tests of the ESN reservoir (cell + layer) and the ridge readout: numbers against NumPy and ReservoirPy."""

import keras
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.layers.esn import Reservoir, ReservoirCell, RidgeAccumulator, fit_ridge_readout

TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def numpy_reservoir(inputs, input_kernel, recurrent_kernel, bias, leak_rate, state=None):
    """x̃ = tanh(u W_inᵀ + b + x Wᵀ); x = (1 - α) x + α x̃ over (batch, time, features); all x."""
    state = np.zeros((inputs.shape[0], recurrent_kernel.shape[0])) if state is None else state
    outputs = []
    for t in range(inputs.shape[1]):
        candidate = np.tanh(inputs[:, t] @ input_kernel + bias + state @ recurrent_kernel)
        state = (1 - leak_rate) * state + leak_rate * candidate
        outputs.append(state)
    return np.stack(outputs, axis=1)


def random_inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def built_weights(units, input_dim, **arguments):
    layer = Reservoir(units, **arguments)
    layer(np.zeros((1, 2, input_dim), "float32"))
    return {weight.name: np.asarray(weight.numpy()) for weight in layer.weights}


def test_shapes_and_weight_counts():
    inputs = random_inputs((2, 5, 3))
    layer = Reservoir(8, seed=1)
    assert layer(inputs).shape == (2, 8)
    assert [weight.name for weight in layer.weights] == ["input_kernel", "bias", "recurrent_kernel"]
    assert [weight.shape for weight in layer.weights] == [(3, 8), (8,), (8, 8)]
    assert len(layer.trainable_weights) == 0 and len(layer.non_trainable_weights) == 3
    assert layer.count_params() == 3 * 8 + 8 + 8 * 8
    assert Reservoir(8, return_sequences=True)(inputs).shape == (2, 5, 8)
    output, state = Reservoir(8, return_state=True)(inputs)
    np.testing.assert_array_equal(output, state)


@pytest.mark.parametrize("spectral_radius", [0.5, 1.25])
def test_spectral_radius_of_built_matrix(spectral_radius):
    recurrent = built_weights(200, 1, spectral_radius=spectral_radius, seed=3)["recurrent_kernel"]
    radius = np.max(np.abs(np.linalg.eigvals(recurrent.astype(np.float64))))
    assert abs(radius - spectral_radius) < 1e-5


def test_connectivity_and_scalings_are_respected():
    units, input_dim = 100, 4
    weights = built_weights(units, input_dim, connectivity=0.05, input_connectivity=0.5, input_scaling=0.3,
                            bias_scaling=0.2, seed=0)
    assert np.count_nonzero(weights["recurrent_kernel"]) == round(0.05 * units * units)
    assert np.count_nonzero(weights["input_kernel"]) == round(0.5 * units * input_dim)
    np.testing.assert_allclose(np.unique(weights["input_kernel"]), [-0.3, 0.0, 0.3], rtol=1e-6)
    np.testing.assert_allclose(np.unique(weights["bias"]), [-0.2, 0.2], rtol=1e-6)
    assert np.count_nonzero(built_weights(10, 1, bias_scaling=0.0)["bias"]) == 0


def test_same_seed_same_matrices_different_seed_different():
    first, again, other = (built_weights(30, 2, seed=seed) for seed in (5, 5, 6))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name]), name


@pytest.mark.parametrize("leak_rate", [0.3, 1.0])
def test_random_weights_match_numpy_loop(leak_rate):
    inputs = random_inputs((2, 6, 3))
    layer = Reservoir(7, leak_rate=leak_rate, spectral_radius=1.1, input_scaling=0.5, seed=2,
                      return_sequences=True)
    outputs = np.asarray(layer(inputs))
    weights = {weight.name: weight.numpy().astype(np.float64) for weight in layer.weights}
    expected = numpy_reservoir(inputs.astype(np.float64), weights["input_kernel"], weights["recurrent_kernel"],
                               weights["bias"], leak_rate)
    np.testing.assert_allclose(outputs, expected, **TOLERANCE)


def test_fixed_weights_give_fixed_numbers():
    # As Keras' SimpleRNN test: constant weights, a fixed input, numbers from a NumPy loop.
    inputs = np.arange(12, dtype="float32").reshape(1, 4, 3) / 10
    layer = Reservoir(2, leak_rate=0.5, connectivity=1.0, return_sequences=True)
    layer(inputs)
    layer.set_weights([np.full((3, 2), 0.01), np.full((2,), 0.03), np.full((2, 2), 0.02)])
    outputs = np.asarray(layer(inputs))[0, :, 0]
    state = 0.0
    for step in range(4):  # both units are equal; α = 0.5
        state = 0.5 * state + 0.5 * np.tanh(0.01 * inputs[0, step].sum() + 0.03 + 2 * 0.02 * state)
        assert abs(outputs[step] - state) < 1e-6
    np.testing.assert_allclose(outputs, [0.01649401, 0.02956396, 0.0408496, 0.05120283], atol=1e-6)


def test_leak_rate_one_is_plain_tanh_esn():
    inputs = random_inputs((1, 5, 2))
    layer = Reservoir(6, leak_rate=1.0, seed=4, return_sequences=True)
    outputs = np.asarray(layer(inputs))
    kernel, bias, recurrent = (weight.numpy() for weight in layer.weights)
    state = np.zeros((1, 6), "float32")
    for t in range(5):
        state = np.tanh(inputs[:, t] @ kernel + bias + state @ recurrent)
        np.testing.assert_allclose(outputs[:, t], state, **TOLERANCE)


def test_masking_go_backwards_and_stateful():
    inputs = random_inputs((2, 6, 3))
    arguments = dict(units=5, leak_rate=0.4, seed=9)
    full = np.asarray(Reservoir(**arguments)(inputs))
    # A masked tail keeps the state reached at the last unmasked step.
    mask = np.array([[True] * 4 + [False] * 2] * 2)
    np.testing.assert_allclose(Reservoir(**arguments)(inputs, mask=mask), Reservoir(**arguments)(inputs[:, :4]),
                               **TOLERANCE)
    np.testing.assert_allclose(Reservoir(**arguments, go_backwards=True)(inputs),
                               Reservoir(**arguments)(inputs[:, ::-1]), **TOLERANCE)
    stateful = Reservoir(**arguments, stateful=True)
    stateful(inputs[:, :3])
    np.testing.assert_allclose(stateful(inputs[:, 3:]), full, **TOLERANCE)
    stateful.reset_state()
    np.testing.assert_allclose(stateful(inputs[:, :3]), Reservoir(**arguments)(inputs[:, :3]), **TOLERANCE)


def test_cell_alone_inside_keras_rnn_matches_layer():
    inputs = random_inputs((2, 5, 3))
    arguments = dict(leak_rate=0.2, spectral_radius=0.8, seed=1)
    expected = Reservoir(4, return_sequences=True, **arguments)(inputs)
    rnn = keras.layers.RNN(ReservoirCell(4, **arguments), return_sequences=True)
    np.testing.assert_allclose(rnn(inputs), expected, **TOLERANCE)


def test_get_config_round_trip():
    arguments = dict(units=6, leak_rate=0.25, spectral_radius=1.1, input_scaling=0.4, connectivity=0.3,
                     input_connectivity=0.5, bias_scaling=0.1, seed=8)
    cell = ReservoirCell(**arguments)
    assert {key: cell.get_config()[key] for key in arguments} == arguments
    assert ReservoirCell.from_config(cell.get_config()).get_config() == cell.get_config()
    layer = Reservoir(**arguments, return_sequences=True, go_backwards=True)
    config = layer.get_config()
    assert {key: config[key] for key in arguments} == arguments and "cell" not in config
    clone = Reservoir.from_config(config)
    assert clone.get_config() == config
    inputs = random_inputs((1, 4, 2))
    np.testing.assert_array_equal(clone(inputs), layer(inputs))


@pytest.mark.parametrize("name, value", [
    ("units", 0), ("units", 2.5), ("leak_rate", 0.0), ("leak_rate", 1.5), ("spectral_radius", -1.0),
    ("spectral_radius", float("nan")), ("input_scaling", 0.0), ("connectivity", 0.0), ("connectivity", 1.2),
    ("input_connectivity", -0.1), ("bias_scaling", -1.0), ("seed", -1), ("seed", "a"), ("leak_rate", True),
])
def test_invalid_arguments_name_argument_and_value(name, value):
    arguments = {"units": 4, name: value}
    with pytest.raises(ValueError, match=rf"`{name}`.*{name}="):
        Reservoir(**arguments)


def test_connectivity_too_low_for_units_is_an_error():
    with pytest.raises(ValueError, match="connectivity"):
        Reservoir(3, connectivity=0.01)(np.zeros((1, 2, 1), "float32"))


# ----------------------------------------------------------------------------- ridge readout


def regression_problem(samples=200, features=5, outputs=2, seed=0):
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(samples, features)) + 3.0  # off-centre: the bias matters
    true_weights, true_bias = rng.normal(size=(features, outputs)), rng.normal(size=outputs)
    targets = states @ true_weights + true_bias + 0.1 * rng.normal(size=(samples, outputs))
    return states, targets, true_weights, true_bias


def closed_form(states, targets, ridge, fit_bias=True, sample_weight=None):
    """W_out = Y Xᵀ (X Xᵀ + β D)⁻¹ on the design [1; s] with D = diag(0, 1, ..., 1), explicitly."""
    design = np.column_stack([np.ones(len(states)), states]) if fit_bias else states
    weights = np.ones(len(states)) if sample_weight is None else sample_weight
    penalty = np.eye(design.shape[1])
    if fit_bias:
        penalty[0, 0] = 0.0
    gram = design.T @ (design * weights[:, None])
    output_weights = (targets.T * weights) @ design @ np.linalg.inv(gram + ridge * penalty)
    return (output_weights[:, 1:].T, output_weights[:, 0]) if fit_bias else (output_weights.T, np.zeros(2))


@pytest.mark.parametrize("fit_bias", [True, False])
def test_ridge_batches_equal_all_at_once_and_closed_form(fit_bias):
    states, targets, _, _ = regression_problem()
    all_at_once = RidgeAccumulator(0.5, fit_bias=fit_bias)
    all_at_once.update(states, targets)
    batched = RidgeAccumulator(0.5, fit_bias=fit_bias)
    for start in range(0, 200, 37):
        batched.update(states[start:start + 37], targets[start:start + 37])
    for solved, expected in zip(batched.solve(), all_at_once.solve()):
        np.testing.assert_allclose(solved, expected, rtol=1e-10, atol=1e-10)
    for solved, expected in zip(batched.solve(), closed_form(states, targets, 0.5, fit_bias)):
        np.testing.assert_allclose(solved, expected, rtol=1e-8, atol=1e-8)


def test_ridge_zero_equals_least_squares_and_recovers_a_linear_map():
    states, targets, true_weights, true_bias = regression_problem()
    accumulator = RidgeAccumulator(0.0)
    accumulator.update(states, targets)
    weights, bias = accumulator.solve()
    solution = np.linalg.lstsq(np.column_stack([np.ones(200), states]), targets, rcond=None)[0]
    np.testing.assert_allclose(bias, solution[0], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(weights, solution[1:], rtol=1e-8, atol=1e-8)
    exact = RidgeAccumulator(1e-10)
    exact.update(states, states @ true_weights + true_bias)
    weights, bias = exact.solve()
    np.testing.assert_allclose(weights, true_weights, atol=1e-6)
    np.testing.assert_allclose(bias, true_bias, atol=1e-6)


def test_ridge_sample_weights_equal_repeated_rows():
    states, targets, _, _ = regression_problem(samples=30)
    counts = np.random.default_rng(1).integers(0, 4, size=30)
    weighted = RidgeAccumulator(0.1)
    weighted.update(states, targets, sample_weight=counts.astype(float))
    repeated = RidgeAccumulator(0.1)
    repeated.update(np.repeat(states, counts, axis=0), np.repeat(targets, counts, axis=0))
    for first, second in zip(weighted.solve(), repeated.solve()):
        np.testing.assert_allclose(first, second, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(weighted.solve()[0], closed_form(states, targets, 0.1, True, counts * 1.0)[0],
                               rtol=1e-8, atol=1e-8)


def test_ridge_errors():
    with pytest.raises(ValueError, match="ridge"):
        RidgeAccumulator(-1.0)
    with pytest.raises(ValueError, match="before any update"):
        RidgeAccumulator(1.0).solve()
    accumulator = RidgeAccumulator(1.0)
    with pytest.raises(ValueError, match="same n"):
        accumulator.update(np.zeros((3, 2)), np.zeros((4, 1)))
    singular = RidgeAccumulator(0.0)
    singular.update(np.ones((5, 2)), np.ones((5, 1)))
    with pytest.raises(PipelineError, match="ridge"):
        singular.solve()


def test_fit_ridge_readout_on_a_tiny_classifier():
    rng = np.random.default_rng(0)
    time_axis = np.arange(30)
    frequencies = np.where(rng.random(40) < 0.5, 0.1, 0.4)   # class 0: slow, class 1: fast sine
    sequences = np.sin(frequencies[:, None] * time_axis + rng.uniform(0, 6, (40, 1)))[..., None]
    labels = (frequencies > 0.2).astype(int)
    one_hot = np.eye(2)[labels]
    inputs = keras.Input((30, 1))
    reservoir = Reservoir(40, leak_rate=0.5, spectral_radius=0.9, seed=0)
    readout = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, readout(reservoir(inputs)))
    batches = [(sequences[i:i + 16].astype("float32"), one_hot[i:i + 16]) for i in range(0, 40, 16)]
    kernel, bias = fit_ridge_readout(model, readout, batches, ridge=1e-3)
    # Same numbers as the accumulator on the reservoir's last states.
    features = np.asarray(reservoir(sequences.astype("float32")), np.float64)
    accumulator = RidgeAccumulator(1e-3)
    accumulator.update(features, one_hot)
    expected_kernel, expected_bias = accumulator.solve()
    np.testing.assert_allclose(kernel, expected_kernel, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(readout.get_weights()[1], expected_bias, rtol=1e-4, atol=1e-4)
    assert np.mean(np.argmax(model.predict_on_batch(sequences.astype("float32")), axis=1) == labels) == 1.0


def test_fit_ridge_readout_per_time_step_with_washout_and_weights():
    series = np.sin(0.3 * np.arange(41))[None, :, None]
    inputs = keras.Input((None, 1))
    readout = keras.layers.Dense(1)
    states = Reservoir(20, leak_rate=0.5, seed=1, return_sequences=True)(inputs)
    model = keras.Model(inputs, readout(states))
    sample_weights = np.ones((1, 40))
    sample_weights[0, -5:] = 0.0
    fit_ridge_readout(model, readout, [(series[:, :-1], series[:, 1:], sample_weights)], ridge=1e-8, washout=10)
    features = np.asarray(keras.Model(inputs, states).predict_on_batch(series[:, :-1]), np.float64)[0]
    accumulator = RidgeAccumulator(1e-8)
    accumulator.update(features[10:35], series[0, 11:36])
    np.testing.assert_allclose(readout.get_weights()[0], accumulator.solve()[0], rtol=1e-3, atol=1e-3)
    with pytest.raises(TypeError, match="Dense"):
        fit_ridge_readout(model, model.layers[1], [], ridge=1.0)


# ----------------------------------------------------------------------------- ReservoirPy


def test_same_matrices_give_reservoirpy_states_and_readout():
    """With ReservoirPy's own W, W_in and bias loaded, our layer and ridge reproduce it.

    Matched conventions of reservoirpy 0.4.2 (nodes/reservoir.py, nodes/ridge.py):
    x[t+1] = (1 - lr) x[t] + lr tanh(W x[t] + Win u[t+1] + bias), so the leak is applied
    after tanh as ours; W is rescaled by its exact spectral radius; the bias is a separate
    vector (our bias column of W_in); Ridge(fit_bias=True) centres the data, i.e. the bias
    is not regularised, as ours.
    """
    from reservoirpy.mat_gen import bernoulli
    from reservoirpy.nodes import Reservoir as ReservoirPyReservoir
    from reservoirpy.nodes import Ridge

    from pipeline.forecast.timeseries import mackey_glass

    series = mackey_glass(700)[:, None]
    reference = ReservoirPyReservoir(50, lr=0.3, sr=1.25, input_scaling=1.0, rc_connectivity=0.1,
                                     input_connectivity=1.0, bias=bernoulli,
                                     seed=0)
    reference_states = reference.run(series)
    ours = Reservoir(50, leak_rate=0.3, return_sequences=True, dtype="float64")
    ours(series[None, :2])
    ours.set_weights([np.asarray(reference.Win).T, np.ravel(reference.bias), reference.W.toarray().T])
    states = np.asarray(ours(series[None]))[0]
    np.testing.assert_allclose(states, reference_states, rtol=0, atol=1e-12)
    features = np.column_stack([series, states])
    readout = Ridge(ridge=1e-6).fit(features[100:600], series[101:601])
    accumulator = RidgeAccumulator(1e-6)
    accumulator.update(features[100:600], series[101:601])
    weights, bias = accumulator.solve()
    np.testing.assert_allclose(features[600:-1] @ weights + bias, readout.run(features[600:-1]), atol=1e-8)
