"""Real time series that ship inside an installed package (``statsmodels.datasets``): nothing is downloaded.

Each loader returns one ``(n,)`` float64 array in time order with no missing values:

* ``co2``: Mauna Loa atmospheric CO2 (ppm), weekly 1958-03 .. 2001-12 with 59 missing weeks.
  We take the **monthly mean** of the weekly values (526 months); the few months without any
  observation are filled by linear interpolation in time. Season 12.
* ``sunspots``: yearly mean sunspot number 1700 .. 2008 (309 values). The solar cycle is
  about 11 years, so season 11.
* ``elnino``: monthly sea-surface temperature (°C) of the El Niño region, 1950 .. 2010, the
  table's rows (years) read month by month (732 values). Season 12.
* ``nile``: yearly flow of the Nile at Aswan, 1871 .. 1970 (100 values). No season.

statsmodels is imported on first use only (it is slow to import and only forecasting needs it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import nearest
from pipeline.errors import PipelineError

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@dataclass(frozen=True)
class DatasetInfo:
    """What a shipped series is: its description, the unit of its values and its natural season length."""

    description: str
    unit: str
    season: int  # the seasonal-naive period that fits it (1: no seasonality)


DATASETS = {
    "co2": DatasetInfo("Mauna Loa CO2, monthly mean of weekly values 1958-2001", "ppm", 12),
    "sunspots": DatasetInfo("yearly sunspot number 1700-2008", "sunspots", 11),
    "elnino": DatasetInfo("El Nino sea-surface temperature, monthly 1950-2010", "degC", 12),
    "nile": DatasetInfo("yearly Nile flow at Aswan 1871-1970", "1e8 m^3", 1),
}


def load_dataset(name: str) -> np.ndarray:
    """Load the shipped series ``name`` (a key of :data:`DATASETS`) as a ``(n,)`` float64 array.

    Raises:
        PipelineError: ``name`` is not a known data set, or statsmodels is not installed.
    """
    if name not in DATASETS:
        hint = nearest(name, DATASETS) or f" (one of: {', '.join(DATASETS)})"
        raise PipelineError(f"config key 'forecast.dataset' = {name!r} is not a shipped data set{hint}")
    try:
        from statsmodels import datasets
    except ImportError:  # pragma: no cover - statsmodels is in install_requires
        raise PipelineError("forecast.series = \"dataset\" needs statsmodels: pip install statsmodels") from None
    if name == "co2":
        weekly = datasets.co2.load_pandas().data["co2"]
        monthly = weekly.resample("MS").mean()  # NaN weeks are skipped; an all-NaN month stays NaN
        values = monthly.interpolate(method="time").to_numpy()
    elif name == "sunspots":
        values = datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    elif name == "elnino":
        table = datasets.elnino.load_pandas().data.sort_values("YEAR")
        values = table[list(MONTHS)].to_numpy().reshape(-1)  # year by year, January to December
    else:
        values = datasets.nile.load_pandas().data["volume"].to_numpy()
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):  # a data-file change upstream; not a user error
        raise ValueError(f"data set {name!r} still has {int(np.sum(~np.isfinite(values)))} missing values")
    return values
