"""A Hopfield network (Hopfield 1982): associative memory of binary ±1 patterns (lecture 001).

Not a Keras layer: it is not trained by gradient descent. Its weights are written in one step
by Hebb's rule and its state then relaxes, one unit at a time, to the nearest stored memory.

Storage of ``P`` patterns ``ξ^μ ∈ {-1, +1}^N`` (Hebb's rule, no self-connections)::

    W = (1/N) Σ_μ ξ^μ ξ^μᵀ,   W_ii = 0          W: (N, N), symmetric

Local field and update of unit ``i`` (a tie ``h_i = 0`` keeps ``s_i``)::

    h_i = Σ_j W_ij s_j,   s_i ← sign(h_i)

*Asynchronous* updates change one unit at a time (a sweep visits all N units in a fresh random
order); *synchronous* updates set every unit at once from the same ``h = W s``.

Energy::

    E(s) = -½ sᵀ W s

Under an asynchronous update of unit ``i`` from ``s_i`` to ``s_i'``, since ``W`` is symmetric with
a zero diagonal, ``ΔE = -(s_i' - s_i) h_i ≤ 0``: the energy never increases, so the state ends in
a fixed point (a local minimum of E). Synchronous updates have no such guarantee; they can
oscillate between two states (a 2-cycle).

Capacity: with ``P = α N`` random patterns, recall stays nearly perfect up to ``α_c ≈ 0.138``
(Amit, Gutfreund & Sompolinsky 1985) and collapses beyond it; :func:`measure_capacity` measures
that limit for a finite N.

Example::

    network = HopfieldNetwork(100)
    network.store(patterns)                      # (P, 100) of ±1
    states = network.recall(noisy_cue, rng=rng)  # states[0] is the cue, states[-1] a fixed point
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ASYNCHRONOUS, SYNCHRONOUS = "asynchronous", "synchronous"
UPDATE_MODES = (ASYNCHRONOUS, SYNCHRONOUS)
HEBBIAN, PROJECTION = "hebbian", "projection"
STORAGE_RULES = (HEBBIAN, PROJECTION)


def _as_spins(array: np.ndarray, what: str) -> np.ndarray:
    spins = np.asarray(array)
    if not np.isin(spins, (-1, 1)).all():
        raise ValueError(f"{what} must hold only -1 and +1; got values {np.unique(spins)[:5].tolist()}")
    return spins.astype(np.float64)


def overlap(states: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """``m = (1/N) ξ · s`` in [-1, 1]: 1 is the pattern itself, -1 its inverse.

    ``states`` ``(..., N)``; ``patterns`` ``(N,)`` gives shape ``(...)``, ``(P, N)`` gives ``(..., P)``.
    """
    patterns = np.asarray(patterns, np.float64)
    return np.asarray(states, np.float64) @ patterns.T / patterns.shape[-1]


class HopfieldNetwork:
    """N binary units with symmetric Hebbian weights; see the module docstring for the equations.

    Args:
        units: N, the number of ±1 units.

    Attributes:
        weights: ``(N, N)`` float64, symmetric, zero diagonal; all zero until :meth:`store`.
    """

    def __init__(self, units: int) -> None:
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"units must be a positive integer; got {units!r}")
        self.units = int(units)
        self.weights = np.zeros((self.units, self.units))

    def store(self, patterns: np.ndarray, rule: str = HEBBIAN) -> HopfieldNetwork:
        """Write ``patterns`` ``(P, N)`` of ±1 into W (replacing it), then set ``W_ii = 0``.

        ``rule = "hebbian"``: ``W = (1/N) Σ ξ ξᵀ`` (Hopfield 1982); good for nearly uncorrelated
        patterns. ``rule = "projection"``: ``W = X X⁺``, ``X = Ξᵀ`` ``(N, P)``, the projector onto
        the span of the patterns (Personnaz et al. 1985), so that ``W ξ = ξ`` even for correlated
        patterns such as glyphs that share a white background. Both are symmetric, so the energy
        argument holds for either.
        """
        patterns = _as_spins(np.atleast_2d(patterns), "patterns")
        if patterns.shape[1] != self.units:
            raise ValueError(f"patterns have {patterns.shape[1]} units; the network has {self.units}")
        if rule == HEBBIAN:
            self.weights = patterns.T @ patterns / self.units
        elif rule == PROJECTION:
            projector = patterns.T @ np.linalg.pinv(patterns.T)
            self.weights = (projector + projector.T) / 2  # symmetric up to rounding; make it exact
        else:
            raise ValueError(f"rule must be one of {STORAGE_RULES}; got {rule!r}")
        np.fill_diagonal(self.weights, 0.0)
        return self

    def energy(self, states: np.ndarray) -> np.ndarray:
        """``E = -½ sᵀ W s`` for a state ``(N,)`` (a float) or a batch ``(B, N)`` (shape ``(B,)``)."""
        states = np.asarray(states, np.float64)
        return -0.5 * np.einsum("...i,ij,...j->...", states, self.weights, states)

    def sweep_asynchronous(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One asynchronous sweep: each unit once, in a random order, ``s_i ← sign(h_i)`` (tie: keep).

        ``states``: ``(N,)`` or ``(B, N)``; a batch is B independent networks that share the order.
        Returns a new array; the input is not changed.
        """
        states = np.array(states, np.float64)
        batch = np.atleast_2d(states)  # a view: updating it updates ``states``
        for unit in rng.permutation(self.units):
            field = batch @ self.weights[:, unit]
            batch[:, unit] = np.where(field > 0, 1.0, np.where(field < 0, -1.0, batch[:, unit]))
        return states

    def step_synchronous(self, states: np.ndarray) -> np.ndarray:
        """All units at once from the same field: ``s ← sign(W s)`` (tie: keep); ``(N,)`` or ``(B, N)``."""
        states = np.asarray(states, np.float64)
        field = states @ self.weights  # W is symmetric: (W s)ᵀ = sᵀ W
        return np.where(field > 0, 1.0, np.where(field < 0, -1.0, states))

    def recall(self, cue: np.ndarray, mode: str = ASYNCHRONOUS, max_steps: int = 20,
               rng: np.random.Generator | None = None) -> list[np.ndarray]:
        """Relax ``cue`` ``(N,)``; the list of states, the cue first, one per sweep (or synchronous step).

        Stops at a fixed point (a step that changes nothing is not appended), after ``max_steps``,
        or, synchronously, at a 2-cycle (the new state equals the one two steps back).
        ``rng`` orders the asynchronous sweeps.
        """
        if mode not in UPDATE_MODES:
            raise ValueError(f"mode must be one of {UPDATE_MODES}; got {mode!r}")
        if mode == ASYNCHRONOUS and rng is None:
            raise ValueError("asynchronous recall needs rng, a numpy Generator that orders the updates")
        states = [_as_spins(cue, "cue")]
        for _ in range(max_steps):
            following = (self.sweep_asynchronous(states[-1], rng) if mode == ASYNCHRONOUS
                         else self.step_synchronous(states[-1]))
            if np.array_equal(following, states[-1]):
                break
            states.append(following)
            if len(states) >= 3 and np.array_equal(following, states[-3]):
                break  # synchronous 2-cycle: s(t+2) = s(t)
        return states

    def relax(self, states: np.ndarray, rng: np.random.Generator, max_sweeps: int = 50) -> np.ndarray:
        """Asynchronous sweeps over a batch ``(B, N)`` until no unit changes (or ``max_sweeps``)."""
        states = np.array(states, np.float64)
        for _ in range(max_sweeps):
            following = self.sweep_asynchronous(states, rng)
            if np.array_equal(following, states):
                break
            states = following
        return states


def random_patterns(count: int, units: int, rng: np.random.Generator) -> np.ndarray:
    """``(count, units)`` independent, unbiased ±1 patterns."""
    return rng.choice(np.array([-1.0, 1.0]), size=(count, units))


def corrupt(pattern: np.ndarray, fraction: float, rng: np.random.Generator, half: bool = False) -> np.ndarray:
    """A noisy cue: ``fraction`` of the units (or, with ``half``, the second half) set to random ±1.

    ``half=True`` is the lecture's 'T' example: the lower half of an image replaced by noise.
    """
    cue = np.array(pattern, np.float64)
    if half:
        chosen = np.arange(cue.size // 2, cue.size)
    else:
        chosen = rng.choice(cue.size, size=int(round(fraction * cue.size)), replace=False)
    cue[chosen] = rng.choice(np.array([-1.0, 1.0]), size=chosen.size)
    return cue


@dataclass(frozen=True)
class CapacityResult:
    """Recall quality by load ``α = P/N`` and the largest load that still meets the criterion."""

    units: int
    loads: tuple[float, ...]  # α = P/N tried
    bits_correct: tuple[float, ...]  # mean share of bits equal to the stored pattern after relaxing
    threshold: float  # the criterion on bits_correct
    capacity: float  # the largest α below which every tried load meets the criterion (0 if none)

    def to_dict(self) -> dict:
        return {"units": self.units, "loads": list(self.loads), "bits_correct": list(self.bits_correct),
                "threshold": self.threshold, "capacity": self.capacity}


def _relax_networks(weights: np.ndarray, states: np.ndarray, rng: np.random.Generator,
                    max_sweeps: int) -> np.ndarray:
    """Asynchronous sweeps of T networks at once: weights ``(T, N, N)``, states ``(T, B, N)``, to a fixed point."""
    states = np.array(states, np.float64)
    for _ in range(max_sweeps):
        changed = False
        for unit in rng.permutation(weights.shape[-1]):
            field = np.einsum("tbn,tn->tb", states, weights[:, :, unit])
            updated = np.where(field > 0, 1.0, np.where(field < 0, -1.0, states[:, :, unit]))
            changed |= bool((updated != states[:, :, unit]).any())
            states[:, :, unit] = updated
        if not changed:
            break
    return states


def measure_capacity(units: int, loads, rng: np.random.Generator, trials: int = 10,
                     threshold: float = 0.99, max_sweeps: int = 30) -> CapacityResult:
    """Store ``P = round(α N)`` random patterns for each load α, start at every stored pattern, relax.

    The score of a load is the mean share of bits that still equal the stored pattern after
    asynchronous relaxation, over all P patterns of ``trials`` independent networks (relaxed
    together as one batch). The capacity is the largest α such that it and every smaller tried
    load score at least ``threshold``; at 99 % and N of 100-200 it lands near the theoretical
    ``α_c ≈ 0.138`` (a little below: at α_c about 1.5 % of the bits are wrong).
    """
    loads = tuple(float(load) for load in loads)
    scores = []
    for load in loads:
        count = max(1, int(round(load * units)))
        patterns = rng.choice(np.array([-1.0, 1.0]), size=(trials, count, units))
        weights = np.einsum("tpi,tpj->tij", patterns, patterns) / units
        weights[:, np.arange(units), np.arange(units)] = 0.0
        final = _relax_networks(weights, patterns, rng, max_sweeps)
        scores.append(float(np.mean(final == patterns)))
    capacity = 0.0
    for load, score in sorted(zip(loads, scores)):
        if score < threshold:
            break
        capacity = load
    return CapacityResult(units, loads, tuple(scores), threshold, capacity)
