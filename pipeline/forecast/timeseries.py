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

logger = logging.getLogger(__name__)


def mackey_glass(n_steps: int, tau: float = 17.0, beta: float = 0.2, gamma: float = 0.1, n: float = 10.0,
                 dt: float = 0.1, x0: float = 1.2, seed: int | None = None, discard: int = 500,
                 sample_interval: float = 1.0) -> np.ndarray:
    """Sample the Mackey-Glass delay differential equation (Mackey & Glass 1977).

        dx/dt = beta * x(t - tau) / (1 + x(t - tau)^n) - gamma * x(t)

    With the defaults (tau = 17) the series is chaotic, the usual ESN benchmark. We
    integrate with classical Runge-Kutta 4 on a grid of step ``dt``, keeping every grid
    value as the history buffer: the delayed term at ``t - tau`` and ``t - tau + dt`` is a
    grid value, at the half step it is cubic (4-point Lagrange) interpolation, so the
    scheme stays 4th order. The series is one value every ``sample_interval`` time units.

    Args:
        n_steps: Number of samples returned (>= 1).
        tau, beta, gamma, n: Delay and coefficients of the equation.
        dt: Integration step; ``tau`` and ``sample_interval`` must be multiples of it.
        x0: Initial value; the history on [-tau, 0] is ``x0`` (constant) when ``seed`` is
            None, else ``x0 + 0.2 * (uniform - 0.5)`` drawn from ``seed`` (as ReservoirPy).
        seed: None for the constant history, or an integer.
        discard: Samples dropped at the start (transient from the initial history).
        sample_interval: Time between two returned samples.

    Returns:
        ``(n_steps,)`` float64 array; values lie in about [0.2, 1.4] for the defaults.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"Argument `n_steps` must be an integer >= 1. Received: n_steps={n_steps!r}")
    if isinstance(discard, bool) or not isinstance(discard, (int, np.integer)) or discard < 0:
        raise ValueError(f"Argument `discard` must be an integer >= 0. Received: discard={discard!r}")
    if not dt > 0:
        raise ValueError(f"Argument `dt` must be > 0. Received: dt={dt!r}")
    delay_steps = int(round(tau / dt))
    substeps = int(round(sample_interval / dt))
    if delay_steps < 2 or abs(delay_steps * dt - tau) > 1e-9 * max(tau, 1.0):
        raise ValueError(f"Argument `tau` must be a multiple of dt={dt!r} and >= 2*dt. Received: tau={tau!r}")
    if substeps < 1 or abs(substeps * dt - sample_interval) > 1e-9 * max(sample_interval, 1.0):
        raise ValueError(f"Argument `sample_interval` must be a positive multiple of dt={dt!r}. "
                         f"Received: sample_interval={sample_interval!r}")

    # Grid values x(t_k); the first delay_steps + 1 hold the history on [-tau, 0].
    grid_steps = (discard + n_steps - 1) * substeps
    values = np.empty(delay_steps + 1 + grid_steps)
    history = np.full(delay_steps + 1, float(x0))
    if seed is not None:
        history += 0.2 * (np.random.default_rng(seed).random(delay_steps + 1) - 0.5)
        history[-1] = x0
    values[: delay_steps + 1] = history
    grid = values.tolist()  # Python floats: much faster than numpy scalars in this loop

    def rate(current: float, delayed: float) -> float:
        return beta * delayed / (1.0 + delayed ** n) - gamma * current

    for step in range(delay_steps, delay_steps + grid_steps):
        current = grid[step]
        delayed_start = grid[step - delay_steps]          # x(t - tau)
        delayed_end = grid[step - delay_steps + 1]        # x(t - tau + dt)
        before = grid[step - delay_steps - 1] if step > delay_steps else delayed_start
        after = grid[step - delay_steps + 2]
        delayed_middle = (-before + 9.0 * delayed_start + 9.0 * delayed_end - after) / 16.0
        k1 = rate(current, delayed_start)
        k2 = rate(current + 0.5 * dt * k1, delayed_middle)
        k3 = rate(current + 0.5 * dt * k2, delayed_middle)
        k4 = rate(current + dt * k3, delayed_end)
        grid[step + 1] = current + dt * (k1 + 2.0 * k2 + 2.0 * k3 + k4) / 6.0
    samples = np.asarray(grid[delay_steps::substeps], dtype=np.float64)
    return samples[discard: discard + n_steps]


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


def nrmse(y_true, y_pred) -> float:
    """Normalised root-mean-square error: ``RMSE(y_true, y_pred) / std(y_true)``.

    The standard deviation is the population one (ddof = 0) of ``y_true`` over all its
    values; 0 means perfect, 1 is no better than predicting the mean of ``y_true``.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"nrmse needs equal, non-empty shapes. Received: {y_true.shape} and {y_pred.shape}")
    spread = float(np.std(y_true))
    if spread == 0.0:
        raise ValueError("nrmse is undefined for a constant y_true (standard deviation 0)")
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)) / spread)


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
