"""The shipped real series load offline from statsmodels' package files, complete and in time order."""

import typing

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.forecast.datasets import DATASETS, load_dataset
from pipeline.forecast.sections import ForecastConfig


@pytest.mark.parametrize("name, length, low, high", [
    ("co2", 526, 310, 375),        # monthly means 1958-03 .. 2001-12, ppm
    ("sunspots", 309, -1, 200),    # yearly 1700 .. 2008
    ("elnino", 732, 18, 30),       # monthly 1950 .. 2010, degrees C
    ("nile", 100, 400, 1400),      # yearly 1871 .. 1970
])
def test_dataset_loads_without_missing_values(name, length, low, high):
    values = load_dataset(name)
    assert values.shape == (length,) and values.dtype == np.float64
    assert np.all(np.isfinite(values)) and low < values.min() and values.max() < high


def test_co2_is_the_monthly_mean_and_fills_empty_months():
    from statsmodels import datasets

    weekly = datasets.co2.load_pandas().data["co2"]
    values = load_dataset("co2")
    # 1958-03 has observations: its value is their plain mean (missing weeks skipped)
    assert values[0] == pytest.approx(weekly["1958-03"].mean())
    assert np.all(np.diff(values[::12]) > 0)  # March to March, CO2 only rises


def test_elnino_reads_the_table_row_by_row():
    values = load_dataset("elnino")
    assert values[0] == pytest.approx(23.11) and values[1] == pytest.approx(24.20)  # 1950 Jan, Feb
    assert values[12] == pytest.approx(24.19)  # 1951 Jan


def test_unknown_dataset_names_the_key_and_a_suggestion():
    with pytest.raises(PipelineError, match=r"'forecast.dataset' = 'co3'.*did you mean 'co2'"):
        load_dataset("co3")


def test_config_accepts_exactly_the_shipped_names():
    for name in DATASETS:
        ForecastConfig(series="dataset", dataset=name).validate()
    with pytest.raises(PipelineError, match="forecast.dataset"):
        ForecastConfig(series="dataset", dataset="airline").validate()
    assert typing.get_type_hints(ForecastConfig)["dataset"] is str
