"""Tests of the spiking (LIF) reservoir: spikes against NumPy, the analytic firing rate, Dale's law.

Its reload in a fresh process is in test_reload.py.
"""

import math

import numpy as np
import pytest
from helpers import SMALL_LIQUID as SMALL
from helpers import input_spikes

from pipeline.layers.lsm import SpikingReservoir, SpikingReservoirCell, run_reservoir


def numpy_liquid(inputs, weights, *, dt, membrane_time_constant, synaptic_time_constant, filter_time_constant,
                 refractory_period, rest_potential, threshold, reset_potential):
    """The LIF update of ``SpikingReservoirCell`` over (batch, time, features) in float64: (spikes, traces)."""
    batch, units = inputs.shape[0], weights["bias"].shape[0]
    potential, current, refractory, trace, spikes = (np.zeros((batch, units)) for _ in range(5))
    all_spikes, all_traces = [], []
    for step in range(inputs.shape[1]):
        current = math.exp(-dt / synaptic_time_constant) * current + inputs[:, step] @ weights["input_kernel"] \
            + spikes @ weights["recurrent_kernel"]
        active = refractory == 0
        integrated = potential + dt / membrane_time_constant * (-potential + current + weights["bias"])
        potential = np.where(active, integrated, reset_potential - rest_potential)
        fired = active & (potential >= threshold - rest_potential)
        spikes = fired.astype(np.float64)
        potential = np.where(fired, reset_potential - rest_potential, potential)
        refractory = np.where(fired, round(refractory_period / dt), np.maximum(refractory - 1, 0))
        trace = math.exp(-dt / filter_time_constant) * trace + spikes
        all_spikes.append(spikes)
        all_traces.append(trace)
    return np.stack(all_spikes, axis=1), np.stack(all_traces, axis=1)


def test_spikes_and_traces_match_numpy_exactly():
    inputs = input_spikes((2, 120, 3))
    spiking = SpikingReservoir(**SMALL, return_sequences=True, return_spikes=True, dtype="float64")
    spikes = run_reservoir(spiking, inputs)
    traces = run_reservoir(SpikingReservoir(**SMALL, return_sequences=True, dtype="float64"), inputs)
    weights = {weight.name: np.asarray(weight.numpy()) for weight in spiking.weights}
    options = {key: SMALL[key] for key in ("dt", "membrane_time_constant", "synaptic_time_constant",
                                          "filter_time_constant", "refractory_period", "rest_potential",
                                          "threshold", "reset_potential")}
    expected_spikes, expected_traces = numpy_liquid(inputs, weights, **options)
    assert expected_spikes.sum() > 20  # the comparison covers spikes, resets and refractory periods
    assert expected_spikes[:, :, np.any(weights["input_kernel"], axis=0) == 0].sum() > 0  # recurrent-only spikes
    np.testing.assert_array_equal(spikes, expected_spikes)
    np.testing.assert_allclose(traces, expected_traces, rtol=1e-12, atol=1e-12)


def constant_drive_spikes(drive, *, dt, steps, refractory_period=2.0, membrane_time_constant=30.0):
    """Spike train ``(steps,)`` of one neuron with R·I = ``drive`` (mV) and no input (rest 0, θ 15, reset 13.5)."""
    layer = SpikingReservoir(1, excitatory_fraction=1.0, background_current=drive, background_spread=0.0,
                             dt=dt, membrane_time_constant=membrane_time_constant,
                             refractory_period=refractory_period, return_sequences=True, return_spikes=True,
                             dtype="float64")
    return run_reservoir(layer, np.zeros((1, steps, 1)))[0, :, 0]


def test_constant_current_fires_at_the_analytic_rate():
    drive, dt, tau, refractory, threshold, reset = 22.0, 0.01, 30.0, 2.0, 15.0, 13.5
    spike_steps = np.flatnonzero(constant_drive_spikes(drive, dt=dt, steps=7500))
    intervals = np.diff(spike_steps)
    # Euler: v - RI shrinks by (1 - dt/τ) per step, so reset → θ takes a whole number of steps.
    integration = math.log((drive - reset) / (drive - threshold)) / -math.log(1 - dt / tau)
    assert 0.05 < integration % 1 < 0.95  # far from a rounding tie
    assert len(intervals) >= 4 and np.all(intervals == round(refractory / dt) + math.ceil(integration))
    first = math.log(drive / (drive - threshold)) / -math.log(1 - dt / tau)  # from rest, v = 0
    assert spike_steps[0] == math.ceil(first) - 1
    # Continuous time: period = t_ref + τ ln((RI - (v_reset - v_rest)) / (RI - (θ - v_rest))).
    analytic_period = refractory + tau * math.log((drive - reset) / (drive - threshold))
    assert abs(intervals[0] * dt - analytic_period) < 2 * dt


def test_never_fires_during_the_refractory_period():
    # A drive so strong that the neuron fires on the first step it is allowed to.
    spikes = constant_drive_spikes(1e4, dt=0.1, steps=400, refractory_period=2.0)
    intervals = np.diff(np.flatnonzero(spikes))
    assert len(intervals) > 10 and np.all(intervals == 21)  # 20 refractory steps (2 ms), then a spike


def test_no_input_gives_no_spikes():
    layer = SpikingReservoir(60, seed=1, return_sequences=True, return_spikes=True)
    assert run_reservoir(layer, np.zeros((2, 300, 3), "float32")).sum() == 0
    assert run_reservoir(SpikingReservoir(60, seed=1), np.zeros((2, 300, 3), "float32")).sum() == 0


def test_shapes_weights_and_dales_law():
    layer = SpikingReservoir(100, connectivity=0.2, input_connectivity=0.5, seed=4, return_sequences=True)
    assert layer(np.zeros((2, 7, 3), "float32")).shape == (2, 7, 100)
    assert SpikingReservoir(100, seed=4)(np.zeros((2, 7, 3), "float32")).shape == (2, 100)
    weights = {weight.name: np.asarray(weight.numpy()) for weight in layer.weights}
    assert sorted(weights) == ["bias", "input_kernel", "neuron_sign", "recurrent_kernel"]
    assert len(layer.trainable_weights) == 0
    sign, recurrent = weights["neuron_sign"], weights["recurrent_kernel"]
    assert np.sum(sign > 0) == 80 and np.sum(sign < 0) == 20
    assert np.all(recurrent[sign > 0] >= 0) and np.all(recurrent[sign < 0] <= 0)  # row i: synapses from i
    assert np.all(np.diag(recurrent) == 0)
    assert abs(np.mean(recurrent != 0) - 0.2 * 99 / 100) < 0.02
    assert np.all(weights["input_kernel"] >= 0) and abs(np.mean(weights["input_kernel"] > 0) - 0.5) < 0.1
    excitatory, inhibitory = recurrent[sign > 0], recurrent[sign < 0]
    ratio = -inhibitory[inhibitory != 0].mean() / excitatory[excitatory != 0].mean()
    assert abs(ratio - 4.0) < 0.3


@pytest.mark.parametrize("arguments, name", [
    (dict(dt=0.0), "dt"), (dict(membrane_time_constant=0.5, dt=1.0), "membrane_time_constant"),
    (dict(reset_potential=15.0), "reset_potential"), (dict(threshold=-1.0), "threshold"),
    (dict(excitatory_fraction=0.0), "excitatory_fraction"), (dict(connectivity=1.5), "connectivity"),
    (dict(refractory_period=-1.0), "refractory_period"), (dict(return_spikes=1), "return_spikes"),
    (dict(seed=-1), "seed"),
])
def test_invalid_arguments_name_the_argument(arguments, name):
    with pytest.raises(ValueError, match=rf"`{name}`"):
        SpikingReservoirCell(4, **arguments)


def test_config_round_trip_gives_the_same_outputs():
    layer = SpikingReservoir(**SMALL, return_sequences=True)
    clone = SpikingReservoir.from_config(layer.get_config())
    inputs = input_spikes((1, 40, 3)).astype("float32")
    np.testing.assert_array_equal(run_reservoir(layer, inputs), run_reservoir(clone, inputs))
