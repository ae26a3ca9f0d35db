"""Spike-train data for the Liquid State Machine: jittered spike patterns and rate (population) coding.

Everything here is NumPy and draws from a generator passed in, so one config ``seed`` split
per consumer (``pipeline.seeds``) makes every data set reproducible.
"""

from __future__ import annotations

import numpy as np


def jittered_patterns(rng: np.random.Generator, *, classes: int, channels: int, duration: float, rate: float,
                      jitter: float, count: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """A classification task where only spike timing tells the classes apart (Maass et al. 2002, §4).

    Each class has a template: on every input channel, ``round(rate * duration / 1000)`` spike
    times drawn uniformly on ``[0, duration)`` ms (the same count for every channel and class).
    An example of class c moves every spike of c's template by an independent Gaussian jitter
    N(0, ``jitter``²) ms (kept inside the window) and bins it on the grid of step ``dt``. Spike
    counts are then the same for all classes (up to two spikes sharing a bin), so a classifier
    must use when the spikes come.

    Args:
        rng: The generator to draw templates, labels and jitter from.
        classes, channels: Number of classes and of input spike trains.
        duration: Length of a pattern (ms); ``round(duration / dt)`` time steps.
        rate: Firing rate of each template channel (Hz).
        jitter: Standard deviation of the spike-time jitter (ms).
        count: Number of examples, labels balanced (``count`` mod ``classes`` extra go to the first ones).
        dt: Time step (ms).

    Returns:
        ``(spikes (count, timesteps, channels) float32 in {0, 1}, labels (count,) int64)``.
    """
    steps = int(round(duration / dt))
    spike_count = int(round(rate * duration / 1000.0))
    templates = [[np.sort(rng.uniform(0.0, duration, size=spike_count)) for _ in range(channels)]
                 for _ in range(classes)]
    labels = rng.permutation(np.arange(count) % classes)
    spikes = np.zeros((count, steps, channels), dtype=np.float32)
    for example, label in enumerate(labels):
        for channel, times in enumerate(templates[label]):
            moved = np.clip(times + rng.normal(0.0, jitter, size=times.size), 0.0, duration - 1e-9)
            spikes[example, np.minimum((moved / dt).astype(int), steps - 1), channel] = 1.0
    return spikes, labels.astype(np.int64)


def rate_code(values: np.ndarray, rng: np.random.Generator, *, channels: int, max_rate: float,
              steps_per_value: int, dt: float, low: float, high: float) -> np.ndarray:
    """Encode a series as Poisson spike trains of a population with Gaussian tuning curves.

    Input neuron k prefers the value ``c_k`` (``channels`` points evenly spaced on [low, high])
    and fires at ``r_k(x) = max_rate · exp(-(x - c_k)² / (2 σ²))`` Hz, σ the spacing of the
    ``c_k``. Each value is held for ``steps_per_value`` steps of ``dt`` ms; in each step
    neuron k spikes with probability ``min(1, r_k · dt / 1000)`` (Bernoulli approximation of Poisson).

    Returns:
        ``(len(values) * steps_per_value, channels)`` float32 spikes in {0, 1}.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    centres = np.linspace(low, high, channels)
    width = (high - low) / max(channels - 1, 1)
    rates = max_rate * np.exp(-((values[:, None] - centres[None, :]) ** 2) / (2.0 * width ** 2))
    probability = np.minimum(1.0, np.repeat(rates, steps_per_value, axis=0) * dt / 1000.0)
    return (rng.random(probability.shape) < probability).astype(np.float32)


def ridge_classifier_accuracy(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                              test_labels: np.ndarray, ridge: float) -> float:
    """Fit a ridge readout to one-hot labels (``RidgeAccumulator``) and return the test accuracy of its arg-max."""
    from pipeline.layers.esn import RidgeAccumulator

    classes = int(max(train_labels.max(), test_labels.max())) + 1
    accumulator = RidgeAccumulator(ridge)
    accumulator.update(train_features, np.eye(classes)[train_labels])
    weights, bias = accumulator.solve()
    predictions = np.argmax(test_features @ weights + bias, axis=1)
    return float(np.mean(predictions == test_labels))


def choose_ridge(train_features: np.ndarray, train_targets: np.ndarray, ridges: tuple[float, ...],
                 validation_fraction: float, score) -> float:
    """Pick the ridge β with the best ``score(targets, predictions)`` (higher is better) on a held-out tail.

    The readout is fitted on the first ``1 - validation_fraction`` of the rows and scored on
    the rest, once per β; each reservoir gets its own β, so neither is compared with a
    regularisation tuned for the other.
    """
    from pipeline.layers.esn import RidgeAccumulator

    split = int(round(len(train_features) * (1.0 - validation_fraction)))
    best_ridge, best_score = ridges[0], -np.inf
    for ridge in ridges:
        accumulator = RidgeAccumulator(ridge)
        accumulator.update(train_features[:split], train_targets[:split])
        weights, bias = accumulator.solve()
        value = score(train_targets[split:], train_features[split:] @ weights + bias)
        if value > best_score:
            best_ridge, best_score = ridge, value
    return best_ridge
