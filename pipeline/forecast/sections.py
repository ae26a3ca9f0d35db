"""The config section of the forecasting task: ``[forecast]``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.sections import check, fraction, one_of


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
        one_of("forecast.method", self.method, ("reservoir", "windowed"))
        check(self.method == "windowed" or self.kind == "esn", "forecast.kind", self.kind,
               "\"esn\" with method = \"reservoir\" (other kinds need method = \"windowed\")")
        one_of("forecast.series", self.series, ("mackey_glass", "csv", "dataset"))
        one_of("forecast.dataset", self.dataset, ("co2", "sunspots", "elnino", "nile"))
        if self.series == "csv":
            check(bool(self.csv_path), "forecast.csv_path", self.csv_path, "a CSV file when series = \"csv\"")
            check(bool(self.column), "forecast.column", self.column, "a column name when series = \"csv\"")
        for key in ("n_steps", "units", "train_length"):
            check(getattr(self, key) >= 1, f"forecast.{key}", getattr(self, key), ">= 1")
        for key in ("test_length", "generative_steps"):
            check(getattr(self, key) >= 2, f"forecast.{key}", getattr(self, key), ">= 2")
        check(self.tau > 0, "forecast.tau", self.tau, "> 0")
        fraction("forecast.leak_rate", self.leak_rate, low_open=True, high_open=False)
        check(self.spectral_radius > 0, "forecast.spectral_radius", self.spectral_radius, "> 0")
        fraction("forecast.connectivity", self.connectivity, low_open=True, high_open=False)
        fraction("forecast.input_connectivity", self.input_connectivity, low_open=True, high_open=False)
        check(self.ridge >= 0, "forecast.ridge", self.ridge, ">= 0")
        check(0 <= self.washout < self.train_length, "forecast.washout", self.washout, "in [0, train_length)")
        for key in ("window", "horizon", "season", "epochs", "batch_size"):
            check(getattr(self, key) >= 1, f"forecast.{key}", getattr(self, key), ">= 1")
        fraction("forecast.train_fraction", self.train_fraction, low_open=True)
        fraction("forecast.validation_fraction", self.validation_fraction, low_open=True)
        check(self.train_fraction + self.validation_fraction < 1, "forecast.validation_fraction",
               self.validation_fraction, "< 1 - train_fraction (a test part must remain)")
        check(self.learning_rate > 0, "forecast.learning_rate", self.learning_rate, "> 0")
        check(self.patience >= 0, "forecast.patience", self.patience, ">= 0")
        check(self.clipnorm >= 0, "forecast.clipnorm", self.clipnorm, ">= 0")
