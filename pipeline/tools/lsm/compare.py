"""``pipeline lsm``: a Liquid State Machine beside an Echo State Network with the same number of units.

Two tasks, both read out by ridge regression (``pipeline.layers.esn.RidgeAccumulator``), the
ridge β chosen per reservoir on a held-out tail of the training data:

1. Jittered spike patterns (``tasks.jittered_patterns``): classify which of ``classes``
   spike-time templates an input was jittered from. Both reservoirs read the same binned
   spike trains, one time step per ``dt`` ms; the readout sees the state at
   ``readout_points`` evenly spaced times of the pattern (filtered spike trains for the LSM,
   the tanh states for the ESN), so ``readout_points * units`` features each.
2. Mackey-Glass one step ahead: predict ``x(t + 1)`` from what came up to ``x(t)``. The LSM
   gets ``x`` rate coded (``tasks.rate_code``, ``steps_per_value`` steps per value) and is read
   at the end of each value's window; the ESN gets ``x`` itself, one step per value (its
   usual input). The persistence baseline predicts ``x(t + 1) = x(t)``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pipeline import seeds

logger = logging.getLogger(__name__)

LIQUID_KEYS = ("units", "excitatory_fraction", "connectivity", "recurrent_weight", "inhibitory_strength",
               "input_scaling", "input_connectivity", "background_current", "background_spread", "dt",
               "membrane_time_constant", "synaptic_time_constant", "filter_time_constant", "refractory_period")


def _liquid(settings: Any, seed: int, **options):
    from pipeline.layers.lsm import SpikingReservoir

    return SpikingReservoir(**{key: getattr(settings, key) for key in LIQUID_KEYS},
                            seed=seeds.child_seed(seed, "lsm.liquid"), return_sequences=True, **options)


def _esn(settings: Any, seed: int, leak_rate: float):
    from pipeline.layers.esn import Reservoir

    return Reservoir(settings.units, leak_rate=leak_rate, spectral_radius=settings.esn_spectral_radius,
                     input_scaling=settings.esn_input_scaling, connectivity=settings.connectivity,
                     seed=seeds.child_seed(seed, "lsm.esn"), return_sequences=True)


def _readout_times(timesteps: int, points: int) -> list[int]:
    return [int(round(timesteps * (point + 1) / points)) - 1 for point in range(points)]


def _accuracy(targets: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean(np.argmax(scores, axis=1) == np.argmax(targets, axis=1)))


def _negative_nrmse(targets: np.ndarray, predictions: np.ndarray) -> float:
    from pipeline.series import nrmse

    return -nrmse(targets, predictions)


def _fit_and_predict(train_features, train_targets, test_features, settings, score) -> tuple[np.ndarray, float]:
    from pipeline.layers.esn import RidgeAccumulator
    from pipeline.tools.lsm.tasks import choose_ridge

    ridge = choose_ridge(train_features, train_targets, tuple(settings.ridges), settings.validation_fraction, score)
    accumulator = RidgeAccumulator(ridge)
    accumulator.update(train_features, train_targets)
    weights, bias = accumulator.solve()
    return test_features @ weights + bias, ridge


def classify_patterns(settings: Any, seed: int) -> dict[str, Any]:
    """Task 1: test accuracy of the LSM and ESN readouts (and the chance level) on jittered spike patterns."""
    from pipeline.layers.lsm import run_reservoir
    from pipeline.tools.lsm.tasks import jittered_patterns

    count = settings.train_patterns + settings.test_patterns
    spikes, labels = jittered_patterns(
        seeds.rng(seed, "lsm.patterns"), classes=settings.classes, channels=settings.pattern_channels,
        duration=settings.pattern_duration, rate=settings.pattern_rate, jitter=settings.jitter, count=count,
        dt=settings.dt)
    targets = np.eye(settings.classes)[labels]
    times = _readout_times(spikes.shape[1], settings.readout_points)
    majority = np.argmax(np.bincount(labels[: settings.train_patterns], minlength=settings.classes))
    metrics: dict[str, Any] = {"majority_class_accuracy": float(np.mean(labels[settings.train_patterns:] == majority))}
    # Spike counts per channel and readout window: what a readout blind to timing within a window sees.
    edges = [0] + [time + 1 for time in times]
    counts = np.concatenate([spikes[:, start:stop].sum(axis=1) for start, stop in zip(edges, edges[1:])], axis=1)
    train, test = slice(0, settings.train_patterns), slice(settings.train_patterns, count)
    scores, _ = _fit_and_predict(counts[train], targets[train], counts[test], settings, _accuracy)
    metrics["spike_count_accuracy"] = _accuracy(targets[test], scores)
    reservoirs = (("lsm", _liquid(settings, seed)), ("esn", _esn(settings, seed, settings.esn_pattern_leak_rate)))
    for name, layer in reservoirs:
        states = run_reservoir(layer, spikes)
        features = states[:, times].reshape(count, -1)
        scores, ridge = _fit_and_predict(features[train], targets[train], features[test], settings, _accuracy)
        metrics[f"{name}_accuracy"] = _accuracy(targets[test], scores)
        metrics[f"{name}_pattern_ridge"] = ridge
        logger.info("spike patterns: %s accuracy %.3f (ridge %g)", name, metrics[f"{name}_accuracy"], ridge)
    # One test pattern through a spike-emitting copy of the same liquid, for the raster plot.
    example = spikes[settings.train_patterns: settings.train_patterns + 1]
    spiking = _liquid(settings, seed, return_spikes=True)
    raster = run_reservoir(spiking, example)[0]
    metrics["lsm_mean_rate_hz"] = float(raster.mean() * 1000.0 / settings.dt)  # over neurons and that pattern
    return {"metrics": metrics, "raster": {"input": example[0], "spikes": raster, "dt": settings.dt,
                                           "label": int(labels[settings.train_patterns]),
                                           "excitatory": np.asarray(spiking.cell.neuron_sign) > 0}}


def forecast_mackey_glass(settings: Any, seed: int) -> dict[str, float]:
    """Task 2: one-step NRMSE of the LSM (rate coded input), the ESN (analog input) and persistence."""
    from pipeline.layers.lsm import run_reservoir
    from pipeline.series import mackey_glass, nrmse
    from pipeline.tools.lsm.tasks import rate_code

    train, test, washout = settings.train_length, settings.test_length, settings.washout
    series = mackey_glass(train + test + 1, tau=settings.tau, sample_interval=settings.sample_interval)
    inputs, next_values = series[:-1], series[1:]
    spikes = rate_code(inputs, seeds.rng(seed, "lsm.rate_code"), channels=settings.rate_channels,
                       max_rate=settings.max_rate, steps_per_value=settings.steps_per_value, dt=settings.dt,
                       low=float(series.min()), high=float(series.max()))
    liquid = run_reservoir(_liquid(settings, seed), spikes[None])[0]
    states = {"lsm": liquid[settings.steps_per_value - 1:: settings.steps_per_value],
              "esn": run_reservoir(_esn(settings, seed, settings.esn_series_leak_rate), inputs.reshape(1, -1, 1))[0]}
    target = next_values[train:]
    metrics = {"persistence_nrmse": nrmse(target, inputs[train:])}
    for name, features in states.items():
        prediction, ridge = _fit_and_predict(features[washout:train], next_values[washout:train, None],
                                             features[train:], settings, _negative_nrmse)
        metrics[f"{name}_nrmse"] = nrmse(target, prediction[:, 0])
        metrics[f"{name}_series_ridge"] = ridge
        logger.info("Mackey-Glass: %s one-step NRMSE %.4f (ridge %g)", name, metrics[f"{name}_nrmse"], ridge)
    return metrics


def compare(settings: Any, seed: int) -> dict[str, Any]:
    """Both tasks; ``{"patterns": {...}, "mackey_glass": {...}}`` metrics and the raster of one test pattern."""
    patterns = classify_patterns(settings, seed)
    return {"metrics": {"patterns": patterns["metrics"], "mackey_glass": forecast_mackey_glass(settings, seed)},
            "raster": patterns["raster"]}
