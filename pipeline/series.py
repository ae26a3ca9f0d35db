"""Time series every task may use: the Mackey-Glass benchmark series and NRMSE.

Shared by ``pipeline forecast`` (:mod:`pipeline.forecast`) and the spiking reservoir's comparison
(:mod:`pipeline.tools.lsm`), so that neither task folder imports the other.
"""

from __future__ import annotations

import numpy as np


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
