"""Tests of the Hopfield network: Hebbian weights, energy descent, fixed points, recall, 2-cycles, capacity."""

import numpy as np
import pytest

from pipeline.layers.hopfield import (
    HopfieldNetwork,
    corrupt,
    measure_capacity,
    overlap,
    random_patterns,
)


def test_hebbian_weights_are_the_outer_product_rule():
    patterns = np.array([[1, -1, 1, 1], [-1, -1, 1, -1]], dtype=float)
    network = HopfieldNetwork(4).store(patterns)
    expected = sum(np.outer(pattern, pattern) for pattern in patterns) / 4  # W = (1/N) Σ ξ ξᵀ
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(network.weights, expected)
    state = patterns[0]
    assert network.energy(state) == pytest.approx(-0.5 * state @ expected @ state)
    np.testing.assert_allclose(network.energy(patterns), [network.energy(p) for p in patterns])


@pytest.mark.parametrize("rule", ["hebbian", "projection"])
def test_energy_never_increases_under_asynchronous_updates(rule):
    """ΔE = -(s_i' - s_i) h_i ≤ 0 for each single-unit update, over many seeds, loads and start states."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        units = int(rng.integers(8, 40))
        patterns = random_patterns(int(rng.integers(1, units // 2)), units, rng)
        network = HopfieldNetwork(units).store(patterns, rule)
        state = rng.choice([-1.0, 1.0], size=units)
        energies = [network.energy(state)]
        for _ in range(5):
            for unit in rng.permutation(units):  # one unit at a time, the energy after each update
                field = network.weights[unit] @ state
                state[unit] = 1.0 if field > 0 else -1.0 if field < 0 else state[unit]
                energies.append(network.energy(state))
        assert np.all(np.diff(energies) <= 1e-9), (seed, np.diff(energies).max())
        states = network.recall(rng.choice([-1.0, 1.0], size=units), rng=rng)  # and sweep by sweep
        assert np.all(np.diff([network.energy(s) for s in states]) <= 1e-9)


def test_stored_patterns_are_fixed_points_at_low_load():
    rng = np.random.default_rng(0)
    patterns = random_patterns(5, 200, rng)  # α = 0.025
    network = HopfieldNetwork(200).store(patterns)
    np.testing.assert_array_equal(network.step_synchronous(patterns), patterns)
    np.testing.assert_array_equal(network.sweep_asynchronous(patterns, rng), patterns)
    assert len(network.recall(patterns[2], rng=rng)) == 1  # nothing changes: only the cue


def test_recall_from_a_half_corrupted_cue():
    rng = np.random.default_rng(1)
    patterns = random_patterns(6, 200, rng)
    network = HopfieldNetwork(200).store(patterns)
    for index, pattern in enumerate(patterns):
        cue = corrupt(pattern, 0.5, rng, half=True)  # the lecture's 'T': half of the image noise
        assert 0.3 < overlap(cue, pattern) < 0.7
        states = network.recall(cue, rng=rng)
        assert overlap(states[-1], pattern) == 1.0, index
    noisy = corrupt(patterns[0], 0.3, rng)
    np.testing.assert_array_equal(network.recall(noisy, "synchronous")[-1], patterns[0])


def test_overlap_with_many_patterns():
    patterns = np.array([[1, 1, -1, -1], [1, -1, 1, -1]], dtype=float)
    np.testing.assert_allclose(overlap(patterns[0], patterns), [1.0, 0.0])
    np.testing.assert_allclose(overlap(-patterns[0], patterns[0]), -1.0)


def test_synchronous_updates_can_two_cycle_where_asynchronous_ones_settle():
    """ξ = (1, -1): W_12 = -1/2. From (1, 1) all units flip together: (1, 1) -> (-1, -1) -> (1, 1)."""
    network = HopfieldNetwork(2).store(np.array([[1.0, -1.0]]))
    start = np.array([1.0, 1.0])
    states = network.recall(start, "synchronous", max_steps=10)
    assert len(states) == 3
    np.testing.assert_array_equal(states[1], [-1.0, -1.0])
    np.testing.assert_array_equal(states[2], start)
    final = network.recall(start, "asynchronous", rng=np.random.default_rng(0))[-1]
    assert abs(overlap(final, np.array([1.0, -1.0]))) == 1.0  # a stored pattern or its mirror image


def test_capacity_is_near_0138():
    result = measure_capacity(100, np.round(np.arange(0.06, 0.25, 0.01), 2), np.random.default_rng(0), trials=8)
    assert 0.10 <= result.capacity <= 0.18, result
    assert result.bits_correct[0] > 0.995 and result.bits_correct[-1] < 0.95  # near-perfect, then collapse


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="units"):
        HopfieldNetwork(0)
    with pytest.raises(ValueError, match="-1 and \\+1"):
        HopfieldNetwork(2).store(np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="rule"):
        HopfieldNetwork(2).store(np.array([[1.0, -1.0]]), rule="storkey")
    with pytest.raises(ValueError, match="rng"):
        HopfieldNetwork(2).recall(np.array([1.0, -1.0]))
