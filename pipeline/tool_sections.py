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
    """``pipeline forecast``: an Echo State Network predicting a time series (``pipeline.forecast.timeseries``)."""

    series: str = "mackey_glass"  # mackey_glass (generated) | csv (a column of a CSV file)
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

    def validate(self) -> None:
        _one_of("forecast.series", self.series, ("mackey_glass", "csv"))
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
