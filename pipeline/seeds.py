"""One ``seed`` in the config, split per consumer, so consumers never share a random stream.

``child_seed(seed, "split")`` and ``child_seed(seed, "batches")`` are independent and
stable: adding a new consumer never changes the numbers an existing one draws.
"""

from __future__ import annotations

import hashlib

import numpy as np


def child_seed(seed: int, consumer: str) -> int:
    """A 32-bit seed derived from ``seed`` and the consumer's name."""
    digest = hashlib.sha256(f"{seed}:{consumer}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def rng(seed: int, consumer: str) -> np.random.Generator:
    """A NumPy generator of its own for ``consumer``."""
    return np.random.default_rng(child_seed(seed, consumer))
