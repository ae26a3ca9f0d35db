"""Liquid State Machine reservoir: leaky integrate-and-fire neurons with exponential synapses (cell + layer).

Like the ESN (``pipeline.layers.esn``) only a linear readout is trained; the "liquid" is a
fixed random recurrent network, here of spiking neurons (Maass, Natschläger & Markram
2002). Its matrices are drawn once from a seed, stored as non-trainable Keras weights,
and so saved and reloaded bit for bit. The readout sees low-pass-filtered spike trains
and is the ESN's ridge regression (``pipeline.layers.esn.RidgeAccumulator``).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from pipeline.layers.cell_layer import CellArgumentsConfig, PrecomputedDrive
from pipeline.layers.esn import _check_count, _check_number


def spiking_matrices(units: int, input_dim: int, *, excitatory_fraction: float, connectivity: float,
                     recurrent_weight: float, inhibitory_strength: float, input_scaling: float,
                     input_connectivity: float, background_current: float, background_spread: float,
                     seed: int) -> dict[str, np.ndarray]:
    """Draw the liquid's matrices in float64, Keras (row vector) orientation: ``spikes @ kernel``.

    ``SeedSequence(seed).spawn(4)`` gives one child generator each for the neuron types,
    the recurrent weights, the input weights and the background currents.

    Returns:
        ``{"input_kernel": (input_dim, units), "bias": (units,), "recurrent_kernel": (units, units),
        "neuron_sign": (units,)}``. ``neuron_sign`` is +1 for the ``round(excitatory_fraction *
        units)`` excitatory neurons (a random subset), -1 for the inhibitory ones. Dale's law:
        ``recurrent_kernel[i, j]`` (synapse i → j) has the sign of neuron i; each ordered pair
        i ≠ j is connected with probability ``connectivity`` with magnitude
        ``recurrent_weight * U(0.5, 1.5)``, times ``inhibitory_strength`` when i is inhibitory.
        Input synapses are excitatory: a fraction ``input_connectivity`` of them is
        ``input_scaling * U(0.5, 1.5)``, the rest 0. ``bias`` is the background current
        R·I_b of each neuron, ``background_current + background_spread * (U(0, 1) - 0.5)``.
    """
    type_rng, recurrent_rng, input_rng, bias_rng = (np.random.default_rng(child) for child in
                                                    np.random.SeedSequence(seed).spawn(4))
    excitatory = np.zeros(units, dtype=bool)
    excitatory[type_rng.permutation(units)[: int(round(excitatory_fraction * units))]] = True
    neuron_sign = np.where(excitatory, 1.0, -1.0)
    connected = recurrent_rng.random((units, units)) < connectivity
    np.fill_diagonal(connected, False)
    magnitude = recurrent_rng.uniform(0.5, 1.5, size=(units, units)) * recurrent_weight
    presynaptic_scale = np.where(excitatory, 1.0, -inhibitory_strength)[:, None]
    recurrent = np.where(connected, magnitude * presynaptic_scale, 0.0)
    input_connected = input_rng.random((input_dim, units)) < input_connectivity
    input_kernel = np.where(input_connected, input_rng.uniform(0.5, 1.5, size=(input_dim, units)) * input_scaling,
                            0.0)
    bias = background_current + background_spread * (bias_rng.random(units) - 0.5)
    return {"input_kernel": input_kernel, "bias": bias, "recurrent_kernel": recurrent, "neuron_sign": neuron_sign}


@keras.saving.register_keras_serializable(package="pipeline")
class SpikingReservoirCell(keras.layers.Layer):
    """One Euler step ``dt`` of a network of leaky integrate-and-fire (LIF) neurons.

    Each neuron has a membrane potential v, a synaptic current I (both expressed in mV:
    R·I, R the membrane resistance), a refractory counter r (steps left) and a filtered
    spike trace y. With u(n) the input at step n (spike indicators or any current
    increments), z(n) ∈ {0, 1} the spikes and row vectors as in Keras:

        I(n) = e^(-dt/τ_s) I(n-1) + u(n) W_in + z(n-1) W               exponential synapses,
                                                                       recurrent delay dt
        v'   = v(n-1) + dt/τ_m (-(v(n-1) - v_rest) + I(n) + I_b)       if r(n-1) = 0,
               v_reset                                                 if refractory
        z(n) = [v' ≥ θ and r(n-1) = 0];    v(n) = v_reset where z(n) = 1, v' elsewhere
        r(n) = round(t_ref/dt) where z(n) = 1, max(r(n-1) - 1, 0) elsewhere
        y(n) = e^(-dt/τ_f) y(n-1) + z(n)                              low-pass filtered spikes

    τ_m dv/dt = -(v - v_rest) + R I(t) is the LIF membrane; after a spike the neuron is held
    at v_reset for t_ref. With a constant drive R·I > θ - v_rest it fires with period
    t_ref + τ_m ln((R I - (v_reset - v_rest)) / (R I - (θ - v_rest))) (continuous time; the
    Euler step rounds the integration part up to whole steps of the discrete decay 1 - dt/τ_m).
    The weights (see ``spiking_matrices``) are fixed and non-trainable. The state v is stored
    relative to v_rest, so the zero initial state is a network at rest.

    Args:
        units: Number of neurons.
        excitatory_fraction: Fraction of excitatory neurons, in (0, 1]; 0.8 as in cortex.
        connectivity: Probability of a synapse between two neurons, in (0, 1].
        recurrent_weight: Mean jump (mV) of R·I caused by one excitatory spike, >= 0.
        inhibitory_strength: Inhibitory over excitatory weight magnitude, >= 0 (4 balances 80/20).
        input_scaling: Mean jump (mV) of R·I caused by one input spike, > 0.
        input_connectivity: Fraction of non-zero input synapses, in (0, 1].
        background_current: Mean constant drive R·I_b (mV); below θ - v_rest the network is
            silent without input.
        background_spread: Width of the uniform spread of I_b over neurons (mV), >= 0.
        dt: Euler step (ms), > 0.
        membrane_time_constant: τ_m (ms), > dt.
        synaptic_time_constant: τ_s (ms), > 0.
        filter_time_constant: τ_f (ms) of the readout trace y, > 0.
        refractory_period: t_ref (ms), >= 0, rounded to whole steps of dt.
        rest_potential, threshold, reset_potential: v_rest, θ, v_reset (mV); v_rest <= v_reset < θ.
        return_spikes: Output the spikes z(n) instead of the trace y(n).
        seed: Non-negative integer; the matrices depend on it and on the input size only.

    Call arguments:
        inputs: ``(batch, features)``, one time step.
        states: ``[v - v_rest, I, r, y, z]``, five ``(batch, units)`` tensors.

    Returns:
        ``(y(n) or z(n), new_states)``, the output ``(batch, units)``.
    """

    def __init__(self, units: int, excitatory_fraction: float = 0.8, connectivity: float = 0.1,
                 recurrent_weight: float = 2.0, inhibitory_strength: float = 4.0, input_scaling: float = 10.0,
                 input_connectivity: float = 0.3, background_current: float = 13.5,
                 background_spread: float = 1.0, dt: float = 1.0, membrane_time_constant: float = 30.0,
                 synaptic_time_constant: float = 3.0, filter_time_constant: float = 30.0,
                 refractory_period: float = 2.0, rest_potential: float = 0.0, threshold: float = 15.0,
                 reset_potential: float = 13.5, return_spikes: bool = False, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_count("units", units, minimum=1)
        self.excitatory_fraction = _check_number("excitatory_fraction", excitatory_fraction, low=0.0, high=1.0)
        self.connectivity = _check_number("connectivity", connectivity, low=0.0, high=1.0)
        self.recurrent_weight = _check_number("recurrent_weight", recurrent_weight, low=0.0, low_open=False)
        self.inhibitory_strength = _check_number("inhibitory_strength", inhibitory_strength, low=0.0,
                                                 low_open=False)
        self.input_scaling = _check_number("input_scaling", input_scaling, low=0.0)
        self.input_connectivity = _check_number("input_connectivity", input_connectivity, low=0.0, high=1.0)
        self.background_current = _check_number("background_current", background_current, low=-np.inf)
        self.background_spread = _check_number("background_spread", background_spread, low=0.0, low_open=False)
        self.dt = _check_number("dt", dt, low=0.0)
        self.membrane_time_constant = _check_number("membrane_time_constant", membrane_time_constant, low=self.dt)
        self.synaptic_time_constant = _check_number("synaptic_time_constant", synaptic_time_constant, low=0.0)
        self.filter_time_constant = _check_number("filter_time_constant", filter_time_constant, low=0.0)
        self.refractory_period = _check_number("refractory_period", refractory_period, low=0.0, low_open=False)
        self.rest_potential = _check_number("rest_potential", rest_potential, low=-np.inf)
        self.threshold = _check_number("threshold", threshold, low=self.rest_potential)
        self.reset_potential = _check_number("reset_potential", reset_potential, low=self.rest_potential,
                                             low_open=False, high=self.threshold, high_open=True)
        if not isinstance(return_spikes, bool):
            raise ValueError(f"Argument `return_spikes` must be a bool. Received: return_spikes={return_spikes!r}")
        self.return_spikes = return_spikes
        self.seed = _check_count("seed", seed, minimum=0)
        self.state_size = [self.units] * 5
        self.output_size = self.units
        self.refractory_steps = int(round(self.refractory_period / self.dt))
        self.synaptic_decay = math.exp(-self.dt / self.synaptic_time_constant)
        self.filter_decay = math.exp(-self.dt / self.filter_time_constant)
        self._drive_precomputed = False  # set by `SpikingReservoir`: inputs are then u W_in already

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"SpikingReservoirCell needs a known feature dimension. Received: {input_shape}")
        matrices = spiking_matrices(
            self.units, int(input_dim), excitatory_fraction=self.excitatory_fraction,
            connectivity=self.connectivity, recurrent_weight=self.recurrent_weight,
            inhibitory_strength=self.inhibitory_strength, input_scaling=self.input_scaling,
            input_connectivity=self.input_connectivity, background_current=self.background_current,
            background_spread=self.background_spread, seed=self.seed)
        for name, matrix in matrices.items():
            weight = self.add_weight(shape=matrix.shape, initializer="zeros", trainable=False, name=name)
            weight.assign(matrix.astype(weight.dtype))
            setattr(self, name, weight)
        self.built = True

    def project_inputs(self, inputs):
        """``u W_in`` for inputs ``(..., features)``: the synaptic current jumps ``(..., units)``."""
        return keras.ops.matmul(inputs, self.input_kernel)

    def call(self, inputs, states, training=None):
        potential, current, refractory, trace, spikes = states
        drive = inputs if self._drive_precomputed else self.project_inputs(inputs)
        current = self.synaptic_decay * current + drive + keras.ops.matmul(spikes, self.recurrent_kernel)
        threshold = self.threshold - self.rest_potential
        reset = keras.ops.full_like(potential, self.reset_potential - self.rest_potential)
        active = refractory < 0.5  # the counter holds whole numbers; 0 means not refractory
        integrated = potential + (self.dt / self.membrane_time_constant) * (-potential + current + self.bias)
        potential = keras.ops.where(active, integrated, reset)
        fired = keras.ops.logical_and(active, potential >= threshold)
        spikes = keras.ops.cast(fired, potential.dtype)
        potential = keras.ops.where(fired, reset, potential)
        refractory = keras.ops.where(fired, keras.ops.full_like(refractory, self.refractory_steps),
                                     keras.ops.maximum(refractory - 1.0, 0.0))
        trace = self.filter_decay * trace + spikes
        return (spikes if self.return_spikes else trace), [potential, current, refractory, trace, spikes]

    def get_config(self):
        return {**super().get_config(), **{name: getattr(self, name) for name in _CELL_ARGUMENTS}}


_CELL_ARGUMENTS = ("units", "excitatory_fraction", "connectivity", "recurrent_weight", "inhibitory_strength",
                   "input_scaling", "input_connectivity", "background_current", "background_spread", "dt",
                   "membrane_time_constant", "synaptic_time_constant", "filter_time_constant",
                   "refractory_period", "rest_potential", "threshold", "reset_potential", "return_spikes", "seed")


@keras.saving.register_keras_serializable(package="pipeline")
class SpikingReservoir(PrecomputedDrive, CellArgumentsConfig, keras.layers.RNN):
    """A Liquid State Machine's liquid over a sequence: ``keras.layers.RNN`` with a ``SpikingReservoirCell``.

    One time step of the sequence is one Euler step ``dt`` (ms). The input currents
    ``u(n) W_in`` are computed for all steps in one matrix product before the loop. Run it
    compiled on CPU (``predict_on_batch`` with ``model.jit_compile = True``): eagerly the
    loop steps in Python.

    Args:
        units ... seed: as in ``SpikingReservoirCell``.
        return_sequences, return_state, go_backwards, stateful, unroll: as in ``keras.layers.RNN``
            (the returned state is the list of the cell's five states).
        **kwargs: Base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        sequences: ``(batch, timesteps, features)``, e.g. input spike trains (1 = a spike in that step).
        initial_state: Optional five ``(batch, units)`` tensors; zeros (at rest) by default.
        mask: Optional ``(batch, timesteps)`` boolean; masked steps keep the state.

    Returns:
        ``(batch, timesteps, units)`` filtered spike trains (or spikes with ``return_spikes``)
        when ``return_sequences``, else the last step ``(batch, units)``.

    Example:
        >>> spikes_in = keras.Input((None, 4))
        >>> traces = SpikingReservoir(200, seed=0, return_sequences=True)(spikes_in)
    """

    cell_arguments = _CELL_ARGUMENTS

    def __init__(self, units: int, excitatory_fraction: float = 0.8, connectivity: float = 0.1,
                 recurrent_weight: float = 2.0, inhibitory_strength: float = 4.0, input_scaling: float = 10.0,
                 input_connectivity: float = 0.3, background_current: float = 13.5,
                 background_spread: float = 1.0, dt: float = 1.0, membrane_time_constant: float = 30.0,
                 synaptic_time_constant: float = 3.0, filter_time_constant: float = 30.0,
                 refractory_period: float = 2.0, rest_potential: float = 0.0, threshold: float = 15.0,
                 reset_potential: float = 13.5, return_spikes: bool = False, seed: int = 0,
                 return_sequences: bool = False, return_state: bool = False, go_backwards: bool = False,
                 stateful: bool = False, unroll: bool = False, **kwargs):
        arguments = dict(locals())
        cell = SpikingReservoirCell(**{name: arguments[name] for name in _CELL_ARGUMENTS},
                                    dtype=kwargs.get("dtype"), name="spiking_reservoir_cell")
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)


def run_reservoir(layer: Any, sequences: np.ndarray, *, jit_compile: bool = True) -> np.ndarray:
    """All outputs of a ``return_sequences`` reservoir layer over ``(batch, timesteps, features)``, compiled.

    Returns a float64 ``(batch, timesteps, units)`` array.
    """
    sequence_input = keras.Input(sequences.shape[1:], dtype=layer.dtype)
    model = keras.Model(sequence_input, layer(sequence_input))
    model.jit_compile = jit_compile
    return np.asarray(model.predict_on_batch(sequences.astype(layer.dtype)), dtype=np.float64)
