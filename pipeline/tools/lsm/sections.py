"""The config section of ``pipeline lsm``: ``[lsm]``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.sections import check, fraction


@dataclass(frozen=True)
class LsmConfig:
    """``pipeline lsm``: a Liquid State Machine beside an ESN of the same size (``pipeline.tools.lsm.compare``).

    Times are in ms, potentials and currents (R·I) in mV above rest; the liquid's keys are the
    arguments of ``pipeline.layers.lsm.SpikingReservoir``.
    """

    units: int = 200  # neurons in the liquid and units in the ESN
    excitatory_fraction: float = 0.8  # Dale's law: 80% excitatory, 20% inhibitory neurons
    connectivity: float = 0.1  # probability of a synapse (LSM); fraction of non-zero W (ESN)
    recurrent_weight: float = 2.0  # mean jump of R·I per excitatory spike
    inhibitory_strength: float = 4.0  # inhibitory / excitatory weight: 4 balances 80/20
    input_scaling: float = 30.0  # mean jump of R·I per input spike
    input_connectivity: float = 0.1  # fraction of input synapses
    background_current: float = 13.5  # R·I_b, below threshold (15): silent without input
    background_spread: float = 1.0
    dt: float = 1.0  # Euler step; one time step of both reservoirs on the pattern task
    membrane_time_constant: float = 30.0  # τ_m (Maass et al. 2002)
    synaptic_time_constant: float = 10.0  # τ_s; 3 ms lost ~7 points of accuracy on the pattern task
    filter_time_constant: float = 30.0  # τ_f of the filtered spike trains the readout sees
    refractory_period: float = 2.0
    esn_pattern_leak_rate: float = 0.05  # ESN α on 1 ms steps (a memory of ~20 steps)
    esn_series_leak_rate: float = 0.3  # ESN α on Mackey-Glass, one step per value (as [forecast])
    esn_spectral_radius: float = 1.0
    esn_input_scaling: float = 1.0
    ridges: tuple[float, ...] = (1e-6, 1e-4, 1e-2, 1.0, 100.0, 1e4)  # β tried per reservoir
    validation_fraction: float = 0.25  # tail of the training data that picks β
    classes: int = 8  # spike-pattern task: templates
    pattern_channels: int = 4  # input spike trains per pattern
    pattern_duration: float = 200.0
    pattern_rate: float = 20.0  # Hz, the same for every template: only timing differs
    jitter: float = 16.0  # std of the spike-time jitter
    train_patterns: int = 300
    test_patterns: int = 300
    readout_points: int = 1  # states read at this many evenly spaced times (1: the end; counts then carry nothing)
    tau: float = 17.0  # Mackey-Glass delay
    sample_interval: float = 3.0  # time between Mackey-Glass values (1 makes persistence hard to beat)
    train_length: int = 1000  # Mackey-Glass values for the readout
    test_length: int = 500
    washout: int = 100
    rate_channels: int = 20  # rate coding: input neurons with Gaussian tuning curves
    max_rate: float = 400.0  # Hz at a neuron's preferred value
    steps_per_value: int = 20  # Euler steps each Mackey-Glass value is presented for

    def validate(self) -> None:
        for key in ("units", "classes", "pattern_channels", "train_patterns", "test_patterns", "readout_points",
                    "train_length", "rate_channels", "steps_per_value"):
            check(getattr(self, key) >= 1, f"lsm.{key}", getattr(self, key), ">= 1")
        check(self.classes >= 2, "lsm.classes", self.classes, ">= 2")
        check(self.test_length >= 2, "lsm.test_length", self.test_length, ">= 2")
        check(0 <= self.washout < self.train_length, "lsm.washout", self.washout, "in [0, train_length)")
        for key in ("excitatory_fraction", "connectivity", "input_connectivity"):
            fraction(f"lsm.{key}", getattr(self, key), low_open=True, high_open=False)
        fraction("lsm.validation_fraction", self.validation_fraction, low_open=True)
        for key in ("esn_pattern_leak_rate", "esn_series_leak_rate"):
            fraction(f"lsm.{key}", getattr(self, key), low_open=True, high_open=False)
        for key in ("input_scaling", "dt", "synaptic_time_constant", "filter_time_constant", "pattern_duration",
                    "pattern_rate", "tau", "sample_interval", "max_rate", "esn_spectral_radius",
                    "esn_input_scaling"):
            check(getattr(self, key) > 0, f"lsm.{key}", getattr(self, key), "> 0")
        for key in ("recurrent_weight", "inhibitory_strength", "background_spread", "refractory_period", "jitter"):
            check(getattr(self, key) >= 0, f"lsm.{key}", getattr(self, key), ">= 0")
        check(self.membrane_time_constant > self.dt, "lsm.membrane_time_constant", self.membrane_time_constant,
               "> dt (the Euler step)")
        check(self.pattern_duration >= self.readout_points * self.dt, "lsm.pattern_duration",
               self.pattern_duration, "at least readout_points * dt")
        check(len(self.ridges) >= 1 and all(value >= 0 for value in self.ridges), "lsm.ridges", self.ridges,
               "a non-empty list of numbers >= 0")
        check(self.train_patterns * self.validation_fraction >= 1, "lsm.train_patterns", self.train_patterns,
               "large enough that validation_fraction of it is at least 1 pattern")
