"""The config sections of the lecture tools that are not stages (``pipeline diagnose``, ``pipeline forecast``, ...).

The same shape as :mod:`pipeline.sections`: one typed, frozen dataclass per config table,
each field with a default and a comment, ``validate()`` raising a one-line
:class:`PipelineError` that names the key. :mod:`pipeline.config` assembles them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.sections import _check, _fraction, _one_of


@dataclass(frozen=True)
class DiagnoseConfig:
    """``pipeline diagnose gradients``: the norm of dL/dh_t over time on a long-memory task."""

    architectures: tuple[str, ...] = ("elman", "simple_rnn", "lstm", "gru")
    timesteps: int = 100  # sequence length; the target depends on the first memory_steps inputs only
    features: int = 8
    units: int = 32
    batch_size: int = 32
    memory_steps: int = 3
    train_steps: int = 20  # SGD steps before measuring again (0: only at initialisation)
    learning_rate: float = 0.05
    clipnorm: float = 1.0  # also measure after training with global-norm clipping; 0: off

    def validate(self) -> None:
        _check(len(self.architectures) >= 1, "diagnose.architectures", self.architectures, "a non-empty list")
        for key in ("timesteps", "features", "units", "batch_size", "memory_steps"):
            _check(getattr(self, key) >= 1, f"diagnose.{key}", getattr(self, key), ">= 1")
        _check(self.memory_steps <= self.timesteps, "diagnose.memory_steps", self.memory_steps, "<= timesteps")
        _check(self.train_steps >= 0, "diagnose.train_steps", self.train_steps, ">= 0")
        _check(self.learning_rate > 0, "diagnose.learning_rate", self.learning_rate, "> 0")
        _check(self.clipnorm >= 0, "diagnose.clipnorm", self.clipnorm, ">= 0")


@dataclass(frozen=True)
class ForecastConfig:
    """``pipeline forecast``: predict a time series with an ESN (``method = "reservoir"``,
    ``pipeline.forecast.timeseries``) or any registry kind over sliding windows (``method = "windowed"``,
    ``pipeline.forecast.windowed``)."""

    method: str = "reservoir"  # reservoir (ESN over the whole series, ridge, free run) | windowed (any kind)
    kind: str = "esn"  # windowed: a registry kind (lstm, gru, simple_rnn, elman, esn, ...); reservoir: esn
    series: str = "mackey_glass"  # mackey_glass (generated) | csv (a column of a CSV file) | dataset (shipped)
    dataset: str = "co2"  # series = "dataset": co2 | sunspots | elnino | nile (pipeline.forecast.datasets)
    csv_path: str = ""
    column: str = ""
    n_steps: int = 4000  # mackey_glass: length of the generated series
    tau: float = 17.0  # mackey_glass: delay; 17 gives the classic mildly chaotic series
    units: int = 500
    leak_rate: float = 0.3  # α: x(n) = (1 - α) x(n-1) + α x̃(n)
    spectral_radius: float = 1.25
    input_scaling: float = 1.0
    connectivity: float = 0.1
    input_connectivity: float = 1.0
    bias_scaling: float = 1.0
    ridge: float = 1e-6  # β of W_out = Y Xᵀ (X Xᵀ + βI)⁻¹
    washout: int = 100  # initial states dropped before fitting the readout
    train_length: int = 2000
    test_length: int = 500
    generative_steps: int = 500  # free-running steps, the prediction fed back as input
    # method = "windowed" (the keys above from units to ridge also configure kind = "esn")
    window: int = 24  # past values per forecast (two years of monthly data)
    horizon: int = 12  # steps of the recursive multi-step forecast, each prediction fed back
    season: int = 12  # seasonal-naive baseline period: 12 monthly, 11 for yearly sunspots (solar cycle)
    difference: bool = False  # model first differences, not levels: needed for trending series (CO2)
    train_fraction: float = 0.7  # first part, in time order; scaling statistics come from it only
    validation_fraction: float = 0.15  # next part, for early stopping; the rest is the test part
    epochs: int = 200  # upper bound; early stopping usually ends sooner
    batch_size: int = 32
    learning_rate: float = 3e-3  # Adam; small data, small model: a bit above Keras' 1e-3 converges faster
    patience: int = 20  # early stopping: epochs without a better validation loss (best weights restored); 0: off
    clipnorm: float = 1.0  # global gradient-norm clipping; 0: off

    def validate(self) -> None:
        _one_of("forecast.method", self.method, ("reservoir", "windowed"))
        _check(self.method == "windowed" or self.kind == "esn", "forecast.kind", self.kind,
               "\"esn\" with method = \"reservoir\" (other kinds need method = \"windowed\")")
        _one_of("forecast.series", self.series, ("mackey_glass", "csv", "dataset"))
        _one_of("forecast.dataset", self.dataset, ("co2", "sunspots", "elnino", "nile"))
        if self.series == "csv":
            _check(bool(self.csv_path), "forecast.csv_path", self.csv_path, "a CSV file when series = \"csv\"")
            _check(bool(self.column), "forecast.column", self.column, "a column name when series = \"csv\"")
        for key in ("n_steps", "units", "train_length"):
            _check(getattr(self, key) >= 1, f"forecast.{key}", getattr(self, key), ">= 1")
        for key in ("test_length", "generative_steps"):
            _check(getattr(self, key) >= 2, f"forecast.{key}", getattr(self, key), ">= 2")
        _check(self.tau > 0, "forecast.tau", self.tau, "> 0")
        _fraction("forecast.leak_rate", self.leak_rate, low_open=True, high_open=False)
        _check(self.spectral_radius > 0, "forecast.spectral_radius", self.spectral_radius, "> 0")
        _fraction("forecast.connectivity", self.connectivity, low_open=True, high_open=False)
        _fraction("forecast.input_connectivity", self.input_connectivity, low_open=True, high_open=False)
        _check(self.ridge >= 0, "forecast.ridge", self.ridge, ">= 0")
        _check(0 <= self.washout < self.train_length, "forecast.washout", self.washout, "in [0, train_length)")
        for key in ("window", "horizon", "season", "epochs", "batch_size"):
            _check(getattr(self, key) >= 1, f"forecast.{key}", getattr(self, key), ">= 1")
        _fraction("forecast.train_fraction", self.train_fraction, low_open=True)
        _fraction("forecast.validation_fraction", self.validation_fraction, low_open=True)
        _check(self.train_fraction + self.validation_fraction < 1, "forecast.validation_fraction",
               self.validation_fraction, "< 1 - train_fraction (a test part must remain)")
        _check(self.learning_rate > 0, "forecast.learning_rate", self.learning_rate, "> 0")
        _check(self.patience >= 0, "forecast.patience", self.patience, ">= 0")
        _check(self.clipnorm >= 0, "forecast.clipnorm", self.clipnorm, ">= 0")


@dataclass(frozen=True)
class ReadingConfig:
    """``model.task = "reading"``: the sentence -> katakana reading encoder–decoder (``pipeline.seq2seq``).

    The encoder is ``[[model.layers]]`` over ``model.char_dim`` character embeddings; the additive
    score's size is ``model.attention_units``; ``train.max_length`` caps the training sentences' characters.
    """

    attention: str = "additive"  # none (one fixed vector C, Sutskever et al. 2014) | additive | multiplicative
    decoder: str = "lstm"  # lstm | gru
    decoder_units: int = 128
    beam_size: int = 4  # evaluate and `pipeline read`; 1 = greedy
    length_penalty: float = 0.6  # beam score = log p / length ** length_penalty; 0: raw log p (favours short)
    examples: tuple[str, ...] = ()  # sentences `pipeline run` reads aloud after evaluating

    def validate(self) -> None:
        _one_of("reading.attention", self.attention, ("none", "additive", "multiplicative"))
        _one_of("reading.decoder", self.decoder, ("lstm", "gru"))
        _check(self.decoder_units >= 1, "reading.decoder_units", self.decoder_units, ">= 1")
        _check(self.beam_size >= 1, "reading.beam_size", self.beam_size, ">= 1")
        _check(0 <= self.length_penalty <= 2, "reading.length_penalty", self.length_penalty, "in [0, 2]")


@dataclass(frozen=True)
class HopfieldConfig:
    """``pipeline hopfield``: store glyphs in a Hopfield network, recall one from a corrupted cue (lecture 001)."""

    characters: str = "カナ"  # one glyph each; Hebb's rule needs glyphs that overlap little (README)
    cue_character: str = ""  # the glyph to corrupt and recall; "" = the first of characters
    glyph_size: int = 24  # glyphs are glyph_size x glyph_size pixels: N = glyph_size² units
    stroke_width: float = 0.06  # outline added to the strokes, a fraction of the glyph box (more ink, less overlap)
    rule: str = "hebbian"  # hebbian (W = 1/N Σ ξξᵀ) | projection (W = X X⁺, recalls correlated glyphs too)
    corruption: str = "half"  # half: the lower half replaced by noise (the lecture's 'T') | random
    noise_fraction: float = 0.3  # corruption = "random": share of pixels set to random ±1
    update: str = "asynchronous"  # asynchronous (energy never rises) | synchronous (may 2-cycle)
    max_steps: int = 10  # sweeps (or synchronous steps) at most
    capacity_units: int = 100  # --capacity: N for the random-pattern measurement
    capacity_max_load: float = 0.25  # --capacity: loads α = P/N tried from capacity_load_step up to this
    capacity_load_step: float = 0.01
    capacity_trials: int = 10  # --capacity: independent networks per load
    capacity_threshold: float = 0.99  # --capacity: share of bits still correct after relaxing from a stored pattern

    def validate(self) -> None:
        _check(len(self.characters) >= 1, "hopfield.characters", self.characters, "one or more characters")
        _check(len(set(self.characters)) == len(self.characters), "hopfield.characters", self.characters,
               "characters without repeats")
        _check(self.cue_character == "" or (len(self.cue_character) == 1 and self.cue_character in self.characters),
               "hopfield.cue_character", self.cue_character, "\"\" or one of hopfield.characters")
        _check(4 <= self.glyph_size <= 64, "hopfield.glyph_size", self.glyph_size, "in [4, 64]")
        _check(0 <= self.stroke_width <= 0.5, "hopfield.stroke_width", self.stroke_width, "in [0, 0.5]")
        _one_of("hopfield.rule", self.rule, ("hebbian", "projection"))
        _one_of("hopfield.corruption", self.corruption, ("half", "random"))
        _fraction("hopfield.noise_fraction", self.noise_fraction, high_open=False)
        _one_of("hopfield.update", self.update, ("asynchronous", "synchronous"))
        _check(self.max_steps >= 1, "hopfield.max_steps", self.max_steps, ">= 1")
        _check(self.capacity_units >= 10, "hopfield.capacity_units", self.capacity_units, ">= 10")
        _check(0 < self.capacity_load_step <= self.capacity_max_load <= 1, "hopfield.capacity_max_load",
               self.capacity_max_load, "in [capacity_load_step, 1]")
        _check(self.capacity_trials >= 1, "hopfield.capacity_trials", self.capacity_trials, ">= 1")
        _fraction("hopfield.capacity_threshold", self.capacity_threshold, low_open=True, high_open=False)


@dataclass(frozen=True)
class LsmConfig:
    """``pipeline lsm``: a Liquid State Machine beside an ESN of the same size (``pipeline.spiking.compare``).

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
            _check(getattr(self, key) >= 1, f"lsm.{key}", getattr(self, key), ">= 1")
        _check(self.classes >= 2, "lsm.classes", self.classes, ">= 2")
        _check(self.test_length >= 2, "lsm.test_length", self.test_length, ">= 2")
        _check(0 <= self.washout < self.train_length, "lsm.washout", self.washout, "in [0, train_length)")
        for key in ("excitatory_fraction", "connectivity", "input_connectivity"):
            _fraction(f"lsm.{key}", getattr(self, key), low_open=True, high_open=False)
        _fraction("lsm.validation_fraction", self.validation_fraction, low_open=True)
        for key in ("esn_pattern_leak_rate", "esn_series_leak_rate"):
            _fraction(f"lsm.{key}", getattr(self, key), low_open=True, high_open=False)
        for key in ("input_scaling", "dt", "synaptic_time_constant", "filter_time_constant", "pattern_duration",
                    "pattern_rate", "tau", "sample_interval", "max_rate", "esn_spectral_radius",
                    "esn_input_scaling"):
            _check(getattr(self, key) > 0, f"lsm.{key}", getattr(self, key), "> 0")
        for key in ("recurrent_weight", "inhibitory_strength", "background_spread", "refractory_period", "jitter"):
            _check(getattr(self, key) >= 0, f"lsm.{key}", getattr(self, key), ">= 0")
        _check(self.membrane_time_constant > self.dt, "lsm.membrane_time_constant", self.membrane_time_constant,
               "> dt (the Euler step)")
        _check(self.pattern_duration >= self.readout_points * self.dt, "lsm.pattern_duration",
               self.pattern_duration, "at least readout_points * dt")
        _check(len(self.ridges) >= 1 and all(value >= 0 for value in self.ridges), "lsm.ridges", self.ridges,
               "a non-empty list of numbers >= 0")
        _check(self.train_patterns * self.validation_fraction >= 1, "lsm.train_patterns", self.train_patterns,
               "large enough that validation_fraction of it is at least 1 pattern")
