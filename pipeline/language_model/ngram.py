"""An interpolated Kneser-Ney trigram language model: the count-based baseline for perplexity.

Plain interpolated Kneser-Ney with one fixed absolute discount ``D`` (default 0.75) at every
order, as in Chen & Goodman (1998), "An empirical study of smoothing techniques for language
modeling", section 2.7 / eq. 17 (not the *modified* variant with three discounts D1, D2, D3+).
For a context ``(u, v)`` and a word ``w``::

    P3(w | u v) = max(c(u v w) - D, 0) / c(u v .)   +   D * N1+(u v .) / c(u v .) * P2(w | v)
    P2(w | v)   = max(N1+(. v w) - D, 0) / N1+(. v .) + D * N1+(v .)_kn / N1+(. v .) * P1(w)
    P1(w)       = max(N1+(. w) - D, 0) / N1+(. .)   +   D * N1+(. .)_types / N1+(. .) * 1 / |V|

* ``c`` are raw trigram counts; lower orders use *continuation counts* ``N1+(. v w)`` (the
  number of distinct words seen before ``v w``), so a word that only follows one fixed word
  ("Francisco") gets little unigram mass.
* ``N1+(u v .)``, ``N1+(v .)_kn``, ``N1+(. .)_types``: the number of distinct words with a
  non-zero count after that context, i.e. how many counts were discounted; their discount mass
  goes to the lower order.
* The unigram level is interpolated with the uniform distribution over the vocabulary ``V``,
  so a word never seen in training (e.g. ``<unk>``) still gets probability > 0.
* An unseen context falls back to the next lower order entirely.

With ``0 < D <= 1`` each level sums to 1 over ``V``, so the model is a proper distribution.

Sentences are padded as ``<s> <s> w1 .. wn </s>``; the predicted tokens are ``w1 .. wn </s>``,
exactly those the neural model predicts from ``<s> w1 .. wn`` (see
``pipeline.language_model.data.teacher_forcing_pairs``), so the two perplexities are comparable. ``<s>`` is
never predicted and has no probability. Words outside the caller's vocabulary become ``<unk>``.

Tokens may be strings or ids (any hashable): for ids pass e.g. ``bos_token=2, eos_token=3,
unk_token=1, pad_token=0, vocabulary=range(vocab_size)``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

from pipeline.errors import PipelineError

logger = logging.getLogger(__name__)


class KneserNeyTrigramModel:
    """Interpolated Kneser-Ney trigram model with a fixed discount (Chen & Goodman 1998).

    Args:
        discount: the absolute discount ``D`` in ``(0, 1]``, the same at every order;
            0.75 is the usual fixed choice (close to Ney's estimate ``n1 / (n1 + 2 n2)``).
        bos_token: sentence start ``<s>``, used as padding on the left, never predicted.
        eos_token: sentence end ``</s>``, predicted after the last word.
        unk_token: replaces every word outside the vocabulary.
        pad_token: excluded from the predicted vocabulary if the caller's vocabulary has it.

    Example:
        >>> model = KneserNeyTrigramModel().fit([["今日", "は", "晴れ"], ["今日", "は", "雨"]])
        >>> round(model.probability("は", ("<s>", "今日")), 3)
        0.76
        >>> model.perplexity([["今日", "は", "雨"]]) < model.perplexity([["雨", "は", "今日"]])
        True
    """

    def __init__(
        self,
        discount: float = 0.75,
        *,
        bos_token: Hashable = "<s>",
        eos_token: Hashable = "</s>",
        unk_token: Hashable = "<unk>",
        pad_token: Hashable = "<pad>",
    ):
        if not (isinstance(discount, (int, float)) and 0 < discount <= 1):
            raise PipelineError(f"discount must be in (0, 1], got {discount!r}; 0.75 is the usual value")
        if len({bos_token, eos_token, unk_token, pad_token}) < 4:
            raise ValueError(
                f"bos_token={bos_token!r}, eos_token={eos_token!r}, unk_token={unk_token!r} and "
                f"pad_token={pad_token!r} must all differ"
            )
        self.discount = float(discount)
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.unk_token = unk_token
        self.pad_token = pad_token
        self.vocabulary: frozenset = frozenset()

    # ----------------------------------------------------------------------------- training
    def fit(self, sequences: Iterable[Sequence[Hashable]], vocabulary: Iterable[Hashable] | None = None):
        """Count trigrams and continuation counts of the training sentences.

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

        # Raw trigram counts c(u v w) over every predicted position.
        self.trigram_counts: Counter = Counter()
        for sentence in sequences:
            padded = self._pad(sentence)
            self.trigram_counts.update(zip(padded, padded[1:], padded[2:]))

        # Trigram context totals c(u v .) and number of distinct followers N1+(u v .).
        self.trigram_context_total: Counter = Counter()
        self.trigram_context_types: Counter = Counter()
        # Continuation count N1+(. v w): distinct u seen before (v, w).
        self.bigram_continuation: Counter = Counter()
        for (u, v, w), count in self.trigram_counts.items():
            self.trigram_context_total[(u, v)] += count
            self.trigram_context_types[(u, v)] += 1
            self.bigram_continuation[(v, w)] += 1

        # Bigram context totals N1+(. v .) and followers N1+(v .); continuation N1+(. w).
        self.bigram_context_total: Counter = Counter()
        self.bigram_context_types: Counter = Counter()
        self.unigram_continuation: Counter = Counter()
        for (v, w), count in self.bigram_continuation.items():
            self.bigram_context_total[v] += count
            self.bigram_context_types[v] += 1
            self.unigram_continuation[w] += 1
        self.unigram_total = sum(self.unigram_continuation.values())
        self.unigram_types = len(self.unigram_continuation)

        logger.info(
            "Kneser-Ney trigram model: %d sentences, %d trigram types, %d bigram types, vocabulary %d",
            len(sequences), len(self.trigram_counts), len(self.bigram_continuation), len(self.vocabulary),
        )
        return self

    def _map(self, token: Hashable) -> Hashable:
        """The token itself if known, else ``<unk>``."""
        return token if token in self.vocabulary else self.unk_token

    def _pad(self, sentence: Sequence[Hashable]) -> list:
        return [self.bos_token, self.bos_token, *(self._map(token) for token in sentence), self.eos_token]

    # ----------------------------------------------------------------------------- scoring
    def _unigram(self, word: Hashable) -> float:
        uniform = 1.0 / len(self.vocabulary)
        if self.unigram_total == 0:
            return uniform
        discounted = max(self.unigram_continuation.get(word, 0) - self.discount, 0.0) / self.unigram_total
        backoff_weight = self.discount * self.unigram_types / self.unigram_total
        return discounted + backoff_weight * uniform

    def _bigram(self, word: Hashable, previous: Hashable) -> float:
        total = self.bigram_context_total.get(previous, 0)
        if total == 0:
            return self._unigram(word)
        discounted = max(self.bigram_continuation.get((previous, word), 0) - self.discount, 0.0) / total
        backoff_weight = self.discount * self.bigram_context_types[previous] / total
        return discounted + backoff_weight * self._unigram(word)

    def probability(self, word: Hashable, context: Sequence[Hashable]) -> float:
        """``P(word | context)``; unknown words (and context words) count as ``<unk>``.

        Args:
            word: the predicted token (``</s>`` allowed, ``<s>`` has probability 0).
            context: the previous tokens; only the last two are used, ``<s>``-padded on the
                left if shorter (``()`` is the start of a sentence).

        Returns:
            The probability, > 0 for every word of the vocabulary.
        """
        if not self.vocabulary:
            raise RuntimeError("call fit() before probability()")
        if word == self.bos_token or word == self.pad_token:
            return 0.0
        word = self._map(word)
        history = [self.bos_token, self.bos_token, *(self._map_context(token) for token in context)]
        u, v = history[-2], history[-1]
        total = self.trigram_context_total.get((u, v), 0)
        if total == 0:
            return self._bigram(word, v)
        discounted = max(self.trigram_counts.get((u, v, word), 0) - self.discount, 0.0) / total
        backoff_weight = self.discount * self.trigram_context_types[(u, v)] / total
        return discounted + backoff_weight * self._bigram(word, v)

    def _map_context(self, token: Hashable) -> Hashable:
        return token if token == self.bos_token else self._map(token)

    def cross_entropy(self, sequences: Iterable[Sequence[Hashable]]) -> tuple[float, int]:
        """Summed ``-ln P`` over every predicted token (``w1 .. wn </s>``) and their count.

        Args:
            sequences: sentences as token lists, without ``<s>``/``</s>``.

        Returns:
            ``(cross_entropy_sum_in_nats, token_count)``, to combine across files or to pass to
            ``pipeline.language_model.data.perplexity``.
        """
        cross_entropy_sum = 0.0
        token_count = 0
        cache: dict[tuple, float] = {}  # -ln P per distinct trigram
        for sentence in sequences:
            padded = self._pad(sentence)
            for u, v, w in zip(padded, padded[1:], padded[2:]):
                key = (u, v, w)
                if key not in cache:
                    cache[key] = -math.log(self.probability(w, (u, v)))
                cross_entropy_sum += cache[key]
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
