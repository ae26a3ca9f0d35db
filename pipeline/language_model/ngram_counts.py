"""The counts of a fitted :class:`pipeline.language_model.ngram.KneserNeyModel` and what they give per context.

The model keeps its counts in NumPy arrays indexed by k-gram id (:class:`GramIndex`: one sorted int64 key per
k-gram); :class:`GramCounts` and :class:`ContextCounts` show them as ``{k-gram tuple: value}`` mappings for
tests and inspection, :func:`backoff_weights` is the interpolation weight of every context at once, and
:func:`modified_discounts` the discounts an order's count-of-counts give.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def backoff_weights(totals: np.ndarray, followers: np.ndarray, ones: np.ndarray, twos: np.ndarray,
                    discounts: tuple[float, float, float]) -> np.ndarray:
    """``gamma_k(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c_k(h .)`` per context, 0 where unseen.

    Args:
        totals, followers, ones, twos: ``c_k(h .)``, ``N1+(h .)``, ``N1(h .)``, ``N2(h .)``, int arrays
            ``(contexts,)``.
        discounts: ``(D1, D2, D3+)`` of the order.

    Returns:
        float64 ``(contexts,)``. Three equal discounts give ``D N1+(h .) / c(h .)``, as plain KN writes it.
    """
    discount_1, discount_2, discount_3 = discounts
    if discount_1 == discount_2 == discount_3:
        taken = discount_1 * followers
    else:
        taken = discount_1 * ones + discount_2 * twos + discount_3 * (followers - ones - twos)
    weights = np.zeros(len(totals))
    np.divide(taken, totals, out=weights, where=totals > 0)
    return weights


class GramIndex:
    """Token <-> id and k-gram tuple <-> k-gram id, over the sorted key tables of one fitted model.

    ``tables[k]`` holds the sorted int64 keys of the k-grams seen in training (``tables[0] = [0]``:
    the empty gram); the id of a k-gram is its index there.
    """

    def __init__(self, tokens: list, tables: list[np.ndarray]):
        self.tokens = tokens  # id -> token, tokens[0] = <s>
        self.ids = {token: index for index, token in enumerate(tokens)}
        self.base = len(tokens)
        self.tables = tables

    def encode(self, gram: tuple) -> int:
        """The id of a k-gram tuple of (mapped) tokens; -1 if training never had it."""
        gram_id = 0
        for k, token in enumerate(gram, start=1):
            token_id = self.ids.get(token)
            if token_id is None:
                return -1
            key = gram_id * self.base + token_id
            table = self.tables[k]
            gram_id = int(np.searchsorted(table, key))
            if gram_id == len(table) or table[gram_id] != key:
                return -1
        return gram_id

    def decode(self, gram_id: int, k: int) -> tuple:
        """The k-gram tuple of id ``gram_id``."""
        gram = []
        for order in range(k, 0, -1):
            gram_id, token_id = divmod(int(self.tables[order][gram_id]), self.base)
            gram.append(self.tokens[token_id])
        return tuple(reversed(gram))


class GramCounts(Mapping):
    """A read-only ``{k-gram tuple: count}`` view of one count array indexed by k-gram id.

    Only the non-zero entries are keys (as the ``Counter`` it replaces), so ``view[gram]`` raises
    ``KeyError`` and ``view.get(gram, 0)`` gives 0 for a k-gram that was never counted. Iterating
    decodes every tuple: meant for tests and inspection, not for the hot path.
    """

    def __init__(self, values: np.ndarray, index: GramIndex, k: int):
        self.values, self.index, self.k = values, index, k

    def __getitem__(self, gram: tuple) -> int:
        gram_id = self.index.encode(tuple(gram)) if len(gram) == self.k else -1
        if gram_id < 0 or self.values[gram_id] == 0:
            raise KeyError(gram)
        return int(self.values[gram_id])

    def __iter__(self) -> Iterator[tuple]:
        return (self.index.decode(gram_id, self.k) for gram_id in np.flatnonzero(self.values))

    def __len__(self) -> int:
        return int(np.count_nonzero(self.values))


@dataclass(frozen=True)
class ContextCounts:
    """What one order ``k`` knows about each context ``h`` it has seen (a k - 1-gram; missing: unseen).

    Attributes, ``{context tuple: value}`` views (:class:`GramCounts`) of int arrays ``(contexts,)``:
        totals: ``c_k(h .)``, the summed counts of the n-grams ``h w``.
        followers: ``N1+(h .)``, the number of distinct words ``w`` after ``h``.
        ones: ``N1(h .)``, those with ``c_k(h w) = 1`` (absent: 0).
        twos: ``N2(h .)``, those with ``c_k(h w) = 2`` (absent: 0);
            ``N3+(h .) = followers - ones - twos``.
    """

    totals: GramCounts
    followers: GramCounts
    ones: GramCounts
    twos: GramCounts

    def backoff_weight(self, context: tuple, discounts: tuple[float, float, float]) -> float:
        """``gamma_k(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c_k(h .)``; 0 for an unseen ``h``."""
        total = self.totals.get(context)
        if total is None:
            return 0.0
        columns = [np.array([view.get(context, 0)]) for view in (self.totals, self.followers, self.ones, self.twos)]
        return float(backoff_weights(*columns, discounts)[0])


# KenLM's ``--discount_fallback`` defaults: used for a discount that the count-of-counts cannot
# estimate (tiny corpora). Each lies in (0, r] for the count r it discounts.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def modified_discounts(count_of_counts: Sequence[int]) -> tuple[float, float, float]:
    """The three discounts ``(D1, D2, D3+)`` of one order from its count-of-counts (C&G eq. 26).

    Args:
        count_of_counts: ``(n1, n2, n3, n4)``, the number of n-grams of that order seen exactly
            1, 2, 3 and 4 times (continuation counts below the highest order).

    Returns:
        ``D_r = r - (r + 1) Y n_{r+1} / n_r`` with ``Y = n1 / (n1 + 2 n2)``, for ``r = 1, 2, 3``.
        ``D_r`` is replaced by ``FALLBACK_DISCOUNTS[r - 1]`` unless ``n1``, ``n2``, ``n_r`` and
        ``n_{r+1}`` are all > 0 and ``0 < D_r <= r``.

    Example:
        >>> [round(discount, 4) for discount in modified_discounts((10, 4, 2, 1))]  # Y = 5/9: 5/9, 7/6, 17/9
        [0.5556, 1.1667, 1.8889]
        >>> modified_discounts((5, 0, 0, 0))  # every n-gram seen once: nothing to estimate
        (0.5, 1.0, 1.5)
    """
    n1, n2, n3, n4 = count_of_counts
    n = (None, n1, n2, n3, n4)
    discounts = []
    for r in (1, 2, 3):
        if n1 > 0 and n2 > 0 and n[r] > 0 and n[r + 1] > 0:
            y = n1 / (n1 + 2 * n2)
            estimate = r - (r + 1) * y * n[r + 1] / n[r]
            if 0 < estimate <= r:
                discounts.append(estimate)
                continue
        discounts.append(FALLBACK_DISCOUNTS[r - 1])
    return tuple(discounts)
