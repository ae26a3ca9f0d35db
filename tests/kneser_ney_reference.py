"""The pure-Python Kneser-Ney model that ``pipeline.language_model.ngram`` replaced: the reference.

``pipeline/language_model/ngram.py`` as it was before its counts moved into NumPy arrays (commit
41f71ba): ``Counter`` passes over n-gram tuples and a per-gram loop for scoring, the equations of
that module's docstring written out one n-gram at a time. Kept only to check the array
implementation against it (``tests/language_model/test_ngram_reference.py``, to 1e-9) and to
time it (``benchmarks/ngram_speed.py``); nothing in ``pipeline/`` imports it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import numbers
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter

from pipeline.errors import PipelineError

logger = logging.getLogger(__name__)

MODIFIED = "modified"
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


@dataclass(frozen=True)
class ContextCounts:
    """What one order knows about each context ``h`` it has seen (missing: unseen context).

    Attributes:
        totals: ``c_k(h .)``, the summed counts of the n-grams ``h w``.
        followers: ``N1+(h .)``, the number of distinct words ``w`` after ``h``.
        ones: ``N1(h .)``, those with ``c_k(h w) = 1`` (absent: 0).
        twos: ``N2(h .)``, those with ``c_k(h w) = 2`` (absent: 0);
            ``N3+(h .) = followers - ones - twos``.
    """

    totals: dict
    followers: dict
    ones: dict
    twos: dict

    @classmethod
    def from_counts(cls, counts: dict) -> ContextCounts:
        """Tally the contexts of one order's ``{n-gram: count}`` (C-level ``Counter`` passes)."""
        contexts = list(map(_CONTEXT_OF, counts))
        values = list(counts.values())
        followers = Counter(contexts)
        ones = Counter(compress(contexts, map((1).__eq__, values)))
        twos = Counter(compress(contexts, map((2).__eq__, values)))
        totals = dict(followers)  # one per follower, plus count - 1 for counts above 1
        for context, count in compress(zip(contexts, values), map((1).__lt__, values)):
            totals[context] += count - 1
        return cls(totals, followers, ones, twos)

    def backoff_weight(self, context: tuple, discounts: tuple[float, float, float]) -> float:
        """``gamma_k(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c_k(h .)``; 0 for an unseen ``h``."""
        total = self.totals.get(context)
        if total is None:
            return 0.0
        followers, ones, twos = self.followers[context], self.ones.get(context, 0), self.twos.get(context, 0)
        discount_1, discount_2, discount_3 = discounts
        if discount_1 == discount_2 == discount_3:  # fixed discount: D N1+(h .) / c(h .), as plain KN writes it
            return discount_1 * followers / total
        return (discount_1 * ones + discount_2 * twos + discount_3 * (followers - ones - twos)) / total


_CONTEXT_OF = itemgetter(slice(None, -1))  # an n-gram's context: all but its last word
_SUFFIX_OF = itemgetter(slice(1, None))  # an n-gram without its first word


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pause the cycle collector while building millions of n-gram tuples (they form no cycles; its
    full collections re-scan every tuple: 1.5x fitting, 2x scoring time). State restored on exit."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ReferenceKneserNeyModel:
    """Interpolated Kneser-Ney n-gram model of any order, modified or fixed discounts.

    Args:
        order: ``N >= 1``, the n-gram length; the context is the last ``N - 1`` tokens.
            3 is the classic baseline; 4 or 5 help on large corpora.
        discount: ``"modified"`` (default): three discounts ``D1, D2, D3+`` per order estimated
            from that order's count-of-counts (Chen & Goodman's best method); or a float in
            ``(0, 1]``: one fixed discount at every order (plain interpolated Kneser-Ney; 0.75 is
            the usual choice, close to Ney's estimate ``n1 / (n1 + 2 n2)``).
        bos_token: sentence start ``<s>``, used as padding on the left, never predicted.
        eos_token: sentence end ``</s>``, predicted after the last word.
        unk_token: replaces every word outside the vocabulary.
        pad_token: excluded from the predicted vocabulary if the caller's vocabulary has it;
            ``None``: no pad token.

    Attributes (after ``fit``), index ``k - 1`` for order ``k``:
        vocabulary: the predicted words ``V`` (``<unk>`` and ``</s>`` included, ``<s>`` not).
        counts: ``{k-gram tuple: c_k}``, raw counts for order ``N``, continuation counts below.
        count_of_counts: ``(n1, n2, n3, n4)`` per order.
        discounts: ``(D1, D2, D3+)`` per order (three equal values for a fixed discount).
        contexts: a :class:`ContextCounts` per order: ``c_k(h .)``, ``N1+(h .)``, ``N1(h .)``,
            ``N2(h .)`` of every context seen at that order.

    Example:
        >>> model = ReferenceKneserNeyModel(order=3).fit([["今日", "は", "晴れ"], ["今日", "は", "雨"]])
        >>> round(model.probability("は", ("<s>", "今日")), 3)
        0.789
        >>> model.perplexity([["今日", "は", "雨"]]) < model.perplexity([["雨", "は", "今日"]])
        True
        >>> model.discounts  # D1, D2, D3+ per order 1, 2, 3: mostly fallbacks on two sentences
        [(0.6666666666666667, 1.0, 1.5), (0.5, 1.0, 1.5), (0.5, 1.0, 1.5)]
    """

    def __init__(
        self,
        order: int = 3,
        discount: str | float = MODIFIED,
        *,
        bos_token: Hashable = "<s>",
        eos_token: Hashable = "</s>",
        unk_token: Hashable = "<unk>",
        pad_token: Hashable | None = None,
    ):
        if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 1:
            raise PipelineError(f"order must be an integer >= 1 (3: trigram), got {order!r}")
        if discount != MODIFIED and (
            isinstance(discount, bool) or not isinstance(discount, numbers.Real) or not 0 < discount <= 1
        ):
            raise PipelineError(
                f"discount must be {MODIFIED!r} or a number in (0, 1], got {discount!r}; 0.75 is the usual fixed value"
            )
        special = [bos_token, eos_token, unk_token] + ([] if pad_token is None else [pad_token])
        if len(set(special)) < len(special):
            raise ValueError(
                f"bos_token={bos_token!r}, eos_token={eos_token!r}, unk_token={unk_token!r} and "
                f"pad_token={pad_token!r} must all differ"
            )
        self.order = int(order)
        self.discount = discount if discount == MODIFIED else float(discount)
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.unk_token = unk_token
        self.pad_token = pad_token
        self.vocabulary: frozenset = frozenset()
        self.counts: list[dict] = []
        self.count_of_counts: list[tuple[int, int, int, int]] = []
        self.discounts: list[tuple[float, float, float]] = []
        self.contexts: list[ContextCounts] = []

    # ----------------------------------------------------------------------------- training
    def fit(self, sequences: Iterable[Sequence[Hashable]], vocabulary: Iterable[Hashable] | None = None):
        """Count n-grams and continuation counts, estimate discounts, precompute every context.

        Args:
            sequences: training sentences as token lists, without ``<s>``/``</s>``.
            vocabulary: the known words, shared with the neural model; others become ``<unk>``.
                ``None``: every word of the training sentences. ``<unk>`` and ``</s>`` are
                always added, ``<s>`` and the pad token always removed.

        Returns:
            ``self``.
        """
        sequences = [list(sentence) for sentence in sequences]
        if not sequences:
            raise PipelineError(
                "the n-gram model got no training sentences; check the training split is not empty"
            )
        if vocabulary is None:
            vocabulary = {token for sentence in sequences for token in sentence}
        known = frozenset(vocabulary) - {self.bos_token, self.pad_token}
        self.vocabulary = known | {self.unk_token, self.eos_token}

        with _without_cyclic_gc():
            # Highest order: raw counts of the N-gram ending at every predicted position.
            top_counts: Counter = Counter()
            for sentence in sequences:
                padded = self._pad(sentence)
                top_counts.update(zip(*(padded[start:] for start in range(self.order))))
            # Lower orders: c_k(g) = N1+(. g), the number of distinct (k+1)-grams x g. Every k-gram
            # ending at a predicted position has a left neighbour (the N - 1 <s> pads), so this
            # covers all of them.
            self.counts = [top_counts]
            for _ in range(self.order - 1):
                self.counts.insert(0, Counter(map(_SUFFIX_OF, self.counts[0])))

            self.count_of_counts, self.discounts, self.contexts = [], [], []
            for k, counts in enumerate(self.counts, start=1):
                frequency = Counter(counts.values())
                count_of_counts = (frequency[1], frequency[2], frequency[3], frequency[4])
                if self.discount == MODIFIED:
                    discounts = modified_discounts(count_of_counts)
                else:
                    discounts = (self.discount,) * 3
                self.count_of_counts.append(count_of_counts)
                self.discounts.append(discounts)
                self.contexts.append(ContextCounts.from_counts(counts))
                logger.debug("order %d: %d n-grams, %d contexts, n1..n4 = %s, discounts D1, D2, D3+ = %s",
                             k, len(counts), len(self.contexts[-1].totals), count_of_counts, discounts)
        self._uniform = 1.0 / len(self.vocabulary)
        # What _gram_probability needs per order, order 1 first: D_k(c) at index min(c, 3), and
        # a memo {context: (c_k(h .), gamma_k(h))} filled as contexts are scored.
        self._levels = [
            (counts.get, contexts, discounts, (0.0, *discounts), {})
            for counts, contexts, discounts in zip(self.counts, self.contexts, self.discounts)
        ]

        logger.info(
            "Kneser-Ney %d-gram model (%s discounts): %d sentences, %s n-gram types per order, vocabulary %d",
            self.order, "modified" if self.discount == MODIFIED else f"fixed {self.discount}",
            len(sequences), [len(counts) for counts in self.counts], len(self.vocabulary),
        )
        return self

    def _map(self, token: Hashable) -> Hashable:
        """The token itself if known, else ``<unk>``."""
        return token if token in self.vocabulary else self.unk_token

    def _map_context(self, token: Hashable) -> Hashable:
        return token if token == self.bos_token else self._map(token)

    def _pad(self, sentence: Sequence[Hashable]) -> list:
        vocabulary, unk_token = self.vocabulary, self.unk_token
        return [
            *([self.bos_token] * (self.order - 1)),
            *(token if token in vocabulary else unk_token for token in sentence),
            self.eos_token,
        ]

    # ----------------------------------------------------------------------------- scoring
    def _gram_probability(self, gram: tuple) -> float:
        """``P_N(gram[-1] | gram[:-1])`` for an already mapped N-gram, from order 1 upwards."""
        probability = self._uniform
        start = self.order
        for count_of, contexts, discounts, discount_of_count, memo in self._levels:
            start -= 1
            kgram = gram[start:]
            context = kgram[:-1]
            statistics = memo.get(context)
            if statistics is None:
                total = contexts.totals.get(context)
                if total is None:
                    # unseen context: P_k = P_{k-1}. Every longer context is unseen too (if x h
                    # had been seen at order k + 1, h would have a continuation count at order k).
                    break
                statistics = memo[context] = (total, contexts.backoff_weight(context, discounts))
            total, backoff_weight = statistics
            count = count_of(kgram, 0)
            probability = (count - discount_of_count[count if count < 3 else 3]) / total + backoff_weight * probability
        return probability

    def probability(self, word: Hashable, context: Sequence[Hashable]) -> float:
        """``P(word | context)``; unknown words (and context words) count as ``<unk>``.

        Args:
            word: the predicted token (``</s>`` allowed, ``<s>`` and the pad token have
                probability 0).
            context: the previous tokens; only the last ``N - 1`` are used, ``<s>``-padded on
                the left if shorter (``()`` is the start of a sentence).

        Returns:
            The probability, > 0 for every word of the vocabulary.
        """
        if not self.vocabulary:
            raise RuntimeError("call fit() before probability()")
        if word == self.bos_token or (self.pad_token is not None and word == self.pad_token):
            return 0.0
        history = [self.bos_token] * (self.order - 1) + [self._map_context(token) for token in context]
        gram = (*history[len(history) - (self.order - 1):], self._map(word))
        return self._gram_probability(gram)

    def cross_entropy(self, sequences: Iterable[Sequence[Hashable]]) -> tuple[float, int]:
        """Summed ``-ln P`` over every predicted token (``w1 .. wn </s>``) and their count.

        Args:
            sequences: sentences as token lists, without ``<s>``/``</s>``.

        Returns:
            ``(cross_entropy_sum_in_nats, token_count)``, to combine across files or to pass to
            ``pipeline.language_model.data.perplexity``.
        """
        if not self.vocabulary:
            raise RuntimeError("call fit() before cross_entropy()")
        cross_entropy_sum = 0.0
        token_count = 0
        cache: dict[tuple, float] = {}  # -ln P per distinct N-gram
        with _without_cyclic_gc():
            for sentence in sequences:
                padded = self._pad(sentence)
                for gram in zip(*(padded[start:] for start in range(self.order))):
                    negative_log = cache.get(gram)
                    if negative_log is None:
                        negative_log = cache[gram] = -math.log(self._gram_probability(gram))
                    cross_entropy_sum += negative_log
                    token_count += 1
        return cross_entropy_sum, token_count

    def perplexity(self, sequences: Iterable[Sequence[Hashable]]) -> float:
        """``exp(mean -ln P)`` over every predicted token, ``</s>`` included.

        Args:
            sequences: sentences as token lists, without ``<s>``/``</s>``.

        Returns:
            The perplexity; a uniform model over ``|V|`` words would score ``|V|``.
        """
        cross_entropy_sum, token_count = self.cross_entropy(sequences)
        if token_count == 0:
            raise PipelineError("perplexity needs at least one sentence; the evaluation text is empty")
        return math.exp(cross_entropy_sum / token_count)
