"""Tests of pipeline.seeds: one config seed, an independent and stable child seed per consumer."""

import numpy as np

from pipeline import seeds

CONSUMERS = ["split", "batches", "unknown_vectors", "init", "dropout", "sampling"]


def test_child_seeds_are_pinned():
    # sha256("42:split")[:4] little-endian; a change here would silently change every split and model.
    assert seeds.child_seed(42, "split") == 3803330150
    assert seeds.child_seed(42, "batches") == 1270241597
    assert seeds.child_seed(7, "split") == 2988238183


def test_child_seeds_are_stable_distinct_and_32_bit():
    first = [seeds.child_seed(42, name) for name in CONSUMERS]
    again = [seeds.child_seed(42, name) for name in CONSUMERS]
    assert first == again
    assert len(set(first)) == len(CONSUMERS)
    assert all(0 <= value < 2**32 for value in first)
    assert [seeds.child_seed(43, name) for name in CONSUMERS] != first


def test_adding_a_consumer_does_not_change_the_others():
    before = seeds.child_seed(5, "split")
    seeds.child_seed(5, "a_new_consumer")
    assert seeds.child_seed(5, "split") == before


def test_rng_streams_are_reproducible_and_independent():
    np.testing.assert_array_equal(seeds.rng(1, "split").random(5), seeds.rng(1, "split").random(5))
    assert not np.array_equal(seeds.rng(1, "split").random(5), seeds.rng(1, "batches").random(5))
    np.testing.assert_array_equal(
        seeds.rng(1, "split").random(5), np.random.default_rng(seeds.child_seed(1, "split")).random(5)
    )
