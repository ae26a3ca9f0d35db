"""Tests of the LSM data: jittered spike patterns, rate coding and the per-reservoir choice of ridge."""

import numpy as np

from pipeline.tools.lsm.tasks import choose_ridge, jittered_patterns, rate_code, ridge_classifier_accuracy


def patterns(seed=0, jitter=2.0, count=40):
    return jittered_patterns(np.random.default_rng(seed), classes=4, channels=3, duration=100.0, rate=50.0,
                             jitter=jitter, count=count, dt=1.0)


def test_patterns_are_seeded_balanced_and_carry_no_count_information():
    spikes, labels = patterns()
    again_spikes, again_labels = patterns()
    np.testing.assert_array_equal(spikes, again_spikes)
    np.testing.assert_array_equal(labels, again_labels)
    assert spikes.shape == (40, 100, 3) and spikes.dtype == np.float32 and set(np.unique(spikes)) <= {0.0, 1.0}
    assert np.all(np.bincount(labels) == 10)
    counts = spikes.sum(axis=1)  # (examples, channels): 5 spikes each, fewer only when two share a bin
    assert np.all(counts <= 5) and np.mean(counts == 5) > 0.8
    assert not np.array_equal(patterns(seed=1)[0], spikes)


def test_jitter_moves_spikes_and_zero_jitter_repeats_the_template():
    spikes, labels = patterns(jitter=0.0)
    first = np.flatnonzero(labels == labels[0])
    assert all(np.array_equal(spikes[first[0]], spikes[index]) for index in first)
    jittered, jittered_labels = patterns(jitter=5.0)
    same = np.flatnonzero(jittered_labels == jittered_labels[0])
    assert not np.array_equal(jittered[same[0]], jittered[same[1]])


def test_rate_code_follows_the_tuning_curves():
    values = np.array([0.0, 1.0])
    spikes = rate_code(values, np.random.default_rng(0), channels=5, max_rate=500.0, steps_per_value=4000,
                       dt=1.0, low=0.0, high=1.0)
    assert spikes.shape == (8000, 5)
    rates = spikes.reshape(2, 4000, 5).mean(axis=1) * 1000.0  # Hz
    width = 0.25
    expected = 500.0 * np.exp(-(values[:, None] - np.linspace(0, 1, 5)) ** 2 / (2 * width ** 2))
    np.testing.assert_allclose(rates, expected, atol=15.0)


def test_ridge_readouts():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3))
    labels = np.argmax(features, axis=1)
    assert ridge_classifier_accuracy(features[:150], labels[:150], features[150:], labels[150:], 1e-3) > 0.8
    targets = features @ np.array([[1.0], [2.0], [-1.0]])
    score = lambda true, predicted: -float(np.mean((true - predicted) ** 2))  # noqa: E731
    assert choose_ridge(features, targets, (1e-6, 1e4), 0.25, score) == 1e-6
