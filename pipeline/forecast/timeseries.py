"""Time-series forecasting with an Echo State Network: Mackey-Glass data, CSV input, NRMSE, plots.

``forecast`` trains the ridge readout of a ``pipeline.layers.esn.Reservoir`` to predict one
step ahead, then measures it on held-out data in two modes: one step ahead (the true value
is the next input) and generative (its own prediction is fed back as the next input).
Keras is imported inside ``forecast`` only, so reading data stays light.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.series import mackey_glass, nrmse  # noqa: F401  (re-exported: the forecast task's API)

logger = logging.getLogger(__name__)


def read_series_csv(path: str | os.PathLike, column: str, *, min_values: int = 2) -> np.ndarray:
    """Read one numeric column of a CSV file (header row, comma separated; UTF-8).

    Raises:
        PipelineError: one line naming the file (and column or line) and the fix, when the
            file is missing, the column is missing, a value is not numeric, or there are
            fewer than ``min_values`` values.

    Returns:
        ``(n,)`` float64 array in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"series file {path} not found: set forecast.csv_path to an existing CSV file")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise PipelineError(f"series file {path} is empty: it needs a header row and one value per line")
        header = [name.strip() for name in header]
        if column not in header:
            raise PipelineError(f"column {column!r} not in {path}; available columns: {', '.join(header)} "
                                f"(set the column name in the config)")
        index = header.index(column)
        values = []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            cell = row[index].strip() if index < len(row) else ""
            try:
                values.append(float(cell))
            except ValueError:
                raise PipelineError(f"{path}:{reader.line_num}: value {cell!r} in column {column!r} is not a "
                                    f"number; fix or remove that line") from None
    if len(values) < min_values or not np.all(np.isfinite(values)):
        problem = "contains NaN or inf" if len(values) >= min_values else f"has {len(values)} values"
        raise PipelineError(f"column {column!r} of {path} {problem}; it needs at least {min_values} finite "
                            f"values (add data or shorten train/test lengths)")
    return np.asarray(values, dtype=np.float64)


def forecast(series, *, units: int = 500, leak_rate: float = 0.3, spectral_radius: float = 1.25,
             input_scaling: float = 1.0, connectivity: float = 0.1, input_connectivity: float = 1.0,
             bias_scaling: float = 1.0, ridge: float = 1e-6, washout: int = 100, train_length: int = 2000,
             test_length: int = 500, generative_steps: int = 500, seed: int = 0,
             dtype: str = "float64", jit_compile: bool = True) -> dict[str, Any]:
    """Train an ESN to predict ``series[t + 1]`` from ``series[t]`` and measure it.

    The readout is ridge regression on ``[1; u(n); x(n)]`` (bias unregularised), fitted on
    the first ``T = train_length`` one-step pairs after dropping ``washout`` states. Then,
    from the last training state:

    * one-step: inputs ``series[T : T + test_length]`` predict ``series[T + 1 : ...]``;
    * generative: the first input is ``series[T]``, every later input is the previous
      prediction; ``generative_steps`` predictions are compared with ``series[T + 1 : ...]``.

    Args:
        series: 1-D values (``(n,)`` or ``(n, 1)``), ``n >= train_length + max(test_length,
            generative_steps) + 1``.
        units ... seed: Reservoir hyperparameters (see ``ReservoirCell``), ``ridge`` β,
            ``washout`` states dropped, segment lengths and the reservoir seed.
        dtype: Reservoir float type; float64 as ReservoirPy, so the two compare like for
            like (float32 gave the same NRMSE to 3 digits on Mackey-Glass and runs faster).
        jit_compile: Run the reservoir as one XLA-compiled loop (faster on long series;
            compiling costs a fraction of a second).

    Returns:
        ``{"metrics": {"train_nrmse", "one_step_nrmse", "generative_nrmse"} (floats),
        "one_step_target", "one_step_prediction", "generative_target",
        "generative_prediction" (float64 arrays), "readout_weights" ((1 + units,)),
        "readout_bias" (float), "hyperparameters" (dict)}``.
    """
    import keras  # heavy; only forecasting needs it

    from pipeline.layers.esn import Reservoir, RidgeAccumulator

    values = np.asarray(series, dtype=np.float64).reshape(-1)
    # test_length and generative_steps >= 2: an NRMSE needs a spread of targets.
    for name, value, minimum in (("train_length", train_length, 1), ("test_length", test_length, 2),
                                 ("generative_steps", generative_steps, 2), ("washout", washout, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"Argument `{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    if washout >= train_length:
        raise ValueError(f"Argument `washout`={washout} must be smaller than train_length={train_length}")
    needed = train_length + max(test_length, generative_steps) + 1
    if values.size < needed:
        raise PipelineError(f"the series has {values.size} values but train_length + max(test_length, "
                            f"generative_steps) + 1 = {needed} are needed; shorten them or add data")

    reservoir = Reservoir(units, leak_rate=leak_rate, spectral_radius=spectral_radius,
                          input_scaling=input_scaling, connectivity=connectivity,
                          input_connectivity=input_connectivity, bias_scaling=bias_scaling, seed=seed,
                          return_sequences=True, dtype=dtype)
    sequence_input = keras.Input((None, 1), dtype=dtype)
    state_model = keras.Model(sequence_input, reservoir(sequence_input))
    state_model.jit_compile = jit_compile

    # One run over training and test inputs: the test states continue the training ones.
    # Training: u = series[0:T], targets series[1:T+1]; readout features [u; x].
    inputs = values[: train_length + test_length]
    states = np.asarray(state_model.predict_on_batch(inputs.reshape(1, -1, 1).astype(dtype))[0], np.float64)
    features = np.column_stack([inputs, states])
    accumulator = RidgeAccumulator(ridge)
    accumulator.update(features[washout:train_length], values[washout + 1: train_length + 1])
    weights, bias = accumulator.solve()
    weights, bias = weights[:, 0], float(bias[0])
    train_prediction = features[washout:train_length] @ weights + bias
    # One step ahead on the test part.
    one_step_prediction = features[train_length:] @ weights + bias
    last_state = states[train_length - 1: train_length]

    # Generative: feed each prediction back as the next input (one step per call).
    cell = reservoir.cell
    readout_input, readout_state = weights[0], weights[1:].astype(dtype)
    state = keras.ops.convert_to_tensor(last_state, dtype=dtype)
    current = values[train_length]
    generative_prediction = np.empty(generative_steps)
    for step in range(generative_steps):
        state, _ = cell(keras.ops.convert_to_tensor([[current]], dtype=dtype), [state])
        current = float(keras.ops.convert_to_numpy(state)[0] @ readout_state) + readout_input * current + bias
        generative_prediction[step] = current

    one_step_target = values[train_length + 1: train_length + test_length + 1]
    generative_target = values[train_length + 1: train_length + generative_steps + 1]
    metrics = {"train_nrmse": nrmse(values[washout + 1: train_length + 1], train_prediction),
               "one_step_nrmse": nrmse(one_step_target, one_step_prediction),
               "generative_nrmse": nrmse(generative_target, generative_prediction)}
    logger.info("ESN forecast: %s", ", ".join(f"{key}={value:.4g}" for key, value in metrics.items()))
    hyperparameters = {"units": units, "leak_rate": leak_rate, "spectral_radius": spectral_radius,
                       "input_scaling": input_scaling, "connectivity": connectivity,
                       "input_connectivity": input_connectivity, "bias_scaling": bias_scaling, "ridge": ridge,
                       "washout": washout, "train_length": train_length, "test_length": test_length,
                       "generative_steps": generative_steps, "seed": seed, "dtype": dtype}
    return {"metrics": metrics, "one_step_target": one_step_target, "one_step_prediction": one_step_prediction,
            "generative_target": generative_target, "generative_prediction": generative_prediction,
            "readout_weights": weights, "readout_bias": bias, "hyperparameters": hyperparameters}
