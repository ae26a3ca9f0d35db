"""Interpolated modified Kneser-Ney n-gram language model of any order: the count-based baseline.

The neural language models are judged against this model's perplexity, so it is the strong
variant: interpolated Kneser-Ney with *modified* discounts (three per order), as in Chen &
Goodman (1998), "An empirical study of smoothing techniques for language modeling", section 3,
eq. 19-26, the best of the smoothing methods they compared. ``discount=0.75`` (any float) gives
the plain interpolated Kneser-Ney with one fixed discount at every order (their eq. 17).

For an order ``N`` model, a word ``w`` and its history, let ``h_k`` be the last ``k - 1`` words
of the history (``h_1`` is empty). Each order ``k = N .. 1`` interpolates with the order below::

    P_k(w | h_k) = (c_k(h_k w) - D_k(c_k(h_k w))) / c_k(h_k .)  +  gamma_k(h_k) * P_{k-1}(w | h_{k-1})
    gamma_k(h_k) = (D_k,1 N1(h_k .) + D_k,2 N2(h_k .) + D_k,3+ N3+(h_k .)) / c_k(h_k .)
    P_0(w)       = 1 / |V|

* ``c_N`` are raw n-gram counts. Lower orders use *continuation counts*
  ``c_k(g) = N1+(. g)``, the number of distinct words seen before the k-gram ``g`` (a word that
  only ever follows one fixed word, like "Francisco", gets little mass where the higher order
  could not predict it, which is the only time the lower order matters).
* ``c_k(h .) = sum_w c_k(h w)``; ``N1(h .)``, ``N2(h .)``, ``N3+(h .)``: the number of words ``w``
  with ``c_k(h w)`` equal to 1, 2, and 3 or more. ``D_k(0) = 0``, ``D_k(1) = D_k,1``,
  ``D_k(2) = D_k,2``, ``D_k(c >= 3) = D_k,3+``; ``gamma_k`` collects what the discounts took.
* An unseen context (``c_k(h_k .) = 0``) falls back entirely to the lower order:
  ``P_k(w | h_k) = P_{k-1}(w | h_{k-1})``.
* The unigram level is interpolated with the uniform distribution over the vocabulary ``V``,
  so a word never seen in training (e.g. ``<unk>``) still gets probability > 0.

The discounts of order ``k`` come from its count-of-counts ``n_r``, the number of k-grams with
``c_k = r`` (Chen & Goodman eq. 26)::

    Y = n1 / (n1 + 2 n2),  D_k,1 = 1 - 2 Y n2 / n1,  D_k,2 = 2 - 3 Y n3 / n2,  D_k,3+ = 3 - 4 Y n4 / n3

On tiny corpora some ``n_r`` are 0 and the estimate is undefined (a division by zero) or
degenerate (``n_{r+1} = 0`` gives the largest discount ``D_r = r``, which takes away all the
mass of every r-count n-gram). A discount is used only when ``n1``, ``n2`` and the two counts it
is computed from are > 0 and it lies in ``(0, r]``; otherwise that discount takes KenLM's
fallback value ``D1 = 0.5``, ``D2 = 1``, ``D3+ = 1.5`` (its ``--discount_fallback`` default).
See :func:`pipeline.language_model.ngram_counts.modified_discounts`; the debug log lists every order's
``n1 .. n4`` and discounts.

With ``0 < D_k(c) <= c`` each order sums to 1 over ``V`` (the discounted counts sum to
``1 - gamma_k``), so the model is a proper distribution.

Sentences are padded as ``<s> .. <s> w1 .. wn </s>`` with ``N - 1`` ``<s>``; the predicted
tokens are ``w1 .. wn </s>``, exactly those the neural model predicts from ``<s> w1 .. wn`` (see
``pipeline.language_model.data.teacher_forcing_pairs``), so the two perplexities are comparable. ``<s>`` is
never predicted and has no probability. Words outside the caller's vocabulary become ``<unk>``.
Lower-order n-grams that begin with ``<s>`` get continuation counts like the others (KenLM keeps
raw counts there; that scored 0.05-0.4 % worse on Aozora characters).

Everything lives in NumPy arrays, never in n-gram tuples (the pure-Python ``Counter`` version before, kept
as ``tests/kneser_ney_reference.py``, fitted and scored several times slower; see
``benchmarks/ngram_speed.py``). Tokens become ids, ``<s>`` = 0 and the vocabulary 1 .. |V|, and the training
sentences one padded id stream (:mod:`pipeline.language_model.ngram_stream`). A k-gram is one int64 key,
``id(its first k - 1 words) * (|V| + 1) + id(last word)``, the id of a k-gram being its index in the sorted
unique keys of order ``k`` (``np.unique``): a trie stored as one sorted array per order, whose keys never
overflow (``|order k - 1 grams| * (|V| + 1)`` stays far below 2**63). Each order's table holds every k-gram
of the stream, also those ending on a ``<s>`` pad (``<s> <s>`` is a context at order 3, never a predicted
gram); per k-gram it stores ``c_k``; per context (a k - 1-gram id) ``c_k(h .)``, ``N1+``, ``N1``, ``N2`` and
``gamma_k`` by ``np.bincount``. The continuation count ``c_k(g)`` is a bincount of the suffix ids of the
distinct (k + 1)-grams. Scoring a text looks its grams up with ``np.searchsorted``, order by order, and
computes the log-probability of every predicted token at once (``token_log_probabilities``); ``probability``
is the same computation on one n-gram.

Tokens may be strings or ids (any hashable): for ids pass e.g. ``bos_token=2, eos_token=3,
unk_token=1, pad_token=0, vocabulary=range(vocab_size)``.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Hashable, Iterable, Sequence
from itertools import chain

import numpy as np

from pipeline.errors import PipelineError
from pipeline.language_model.ngram_counts import (
    ContextCounts,
    GramCounts,
    GramIndex,
    backoff_weights,
    modified_discounts,
)
from pipeline.language_model.ngram_stream import BOS_ID, IdStream, gram_keys, id_stream

logger = logging.getLogger(__name__)

MODIFIED = "modified"


class KneserNeyModel:
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
        counts: ``{k-gram tuple: c_k}`` views (:class:`GramCounts`), raw counts for order ``N``,
            continuation counts below.
        count_of_counts: ``(n1, n2, n3, n4)`` per order.
        discounts: ``(D1, D2, D3+)`` per order (three equal values for a fixed discount).
        contexts: a :class:`ContextCounts` per order: ``c_k(h .)``, ``N1+(h .)``, ``N1(h .)``,
            ``N2(h .)`` of every context seen at that order.

    Example:
        >>> model = KneserNeyModel(order=3).fit([["今日", "は", "晴れ"], ["今日", "は", "雨"]])
        >>> round(model.probability("は", ("<s>", "今日")), 3)
        0.789
        >>> model.perplexity([["今日", "は", "雨"]]) < model.perplexity([["雨", "は", "今日"]])
        True
        >>> model.discounts  # D1, D2, D3+ per order 1, 2, 3: mostly fallbacks on two sentences
        [(0.6666666666666667, 1.0, 1.5), (0.5, 1.0, 1.5), (0.5, 1.0, 1.5)]
        >>> model.token_log_probabilities([["今日", "は"]]).round(3)  # ln P of 今日, は, </s>
        array([-0.237, -0.237, -2.701])
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
        self.counts: list[GramCounts] = []
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
        sequences = sequences if isinstance(sequences, list) else list(sequences)
        if not sequences:
            raise PipelineError(
                "the n-gram model got no training sentences; check the training split is not empty"
            )
        if vocabulary is None:
            vocabulary = set(chain.from_iterable(sequences))
        known = frozenset(vocabulary) - {self.bos_token, self.pad_token}
        self.vocabulary = known | {self.unk_token, self.eos_token}
        try:  # ids in a reproducible order where the tokens can be sorted (the results do not depend on it)
            words = sorted(self.vocabulary)
        except TypeError:
            words = list(self.vocabulary)
        self._index = GramIndex([self.bos_token, *words], [np.zeros(1, dtype=np.int64)])
        self._unk_id = self._index.ids[self.unk_token]
        self._eos_id = self._index.ids[self.eos_token]

        # Every k-gram of the stream (k <= N) gets an id: its index in the sorted unique keys of order k.
        stream = self._stream(sequences)
        gram_ids = [np.zeros(len(stream.ids), dtype=np.int64)]  # order 0: the empty gram, id 0 everywhere
        for k in range(1, self.order + 1):
            keys, valid = gram_keys(stream, gram_ids[-1], k, self._index)
            table, inverse = np.unique(keys, return_inverse=True)
            self._index.tables.append(table)
            ids_k = np.full(len(stream.ids), -1, dtype=np.int64)
            ids_k[valid] = inverse.reshape(-1)
            gram_ids.append(ids_k)

        # Highest order: raw counts of the N-grams ending at predicted positions. Lower orders:
        # c_k(g) = N1+(. g), the number of distinct (k+1)-grams x g. Every k-gram ending at a
        # predicted position has a left neighbour (the N - 1 <s> pads), so this covers all of them.
        tables = self._index.tables
        predicted_ids = [ids_k[stream.predicted] for ids_k in gram_ids]
        counts = [np.bincount(predicted_ids[self.order], minlength=len(tables[self.order]))]
        for k in range(self.order - 1, 0, -1):
            suffix_of = np.full(len(tables[k + 1]), -1, dtype=np.int64)
            suffix_of[predicted_ids[k + 1]] = predicted_ids[k]  # a (k+1)-gram's suffix: the k-gram at its position
            counts.insert(0, np.bincount(suffix_of[counts[0] > 0], minlength=len(tables[k])))

        self.counts, self.count_of_counts, self.discounts, self.contexts = [], [], [], []
        self._levels = []  # per order: (c_k by gram id, c_k(h .) and gamma_k by context id, (0, D1, D2, D3+))
        for k, counts_k in enumerate(counts, start=1):
            seen = np.flatnonzero(counts_k)
            seen_counts = counts_k[seen]
            frequency = np.bincount(np.minimum(seen_counts, 5), minlength=6)
            count_of_counts = tuple(int(n) for n in frequency[1:5])
            discounts = modified_discounts(count_of_counts) if self.discount == MODIFIED else (self.discount,) * 3
            context_of = tables[k][seen] // self._index.base  # the id of each k-gram's first k - 1 words
            size = len(tables[k - 1])
            totals = np.bincount(context_of, weights=seen_counts, minlength=size).astype(np.int64)  # exact < 2**53
            followers = np.bincount(context_of, minlength=size)
            ones = np.bincount(context_of[seen_counts == 1], minlength=size)
            twos = np.bincount(context_of[seen_counts == 2], minlength=size)
            self.counts.append(GramCounts(counts_k, self._index, k))
            self.count_of_counts.append(count_of_counts)
            self.discounts.append(discounts)
            self.contexts.append(ContextCounts(*(GramCounts(values, self._index, k - 1)
                                                 for values in (totals, followers, ones, twos))))
            self._levels.append((counts_k, totals, backoff_weights(totals, followers, ones, twos, discounts),
                                 np.array((0.0, *discounts))))
            logger.debug("order %d: %d n-grams, %d contexts, n1..n4 = %s, discounts D1, D2, D3+ = %s",
                         k, len(seen), int(np.count_nonzero(totals)), count_of_counts, discounts)
        self._uniform = 1.0 / len(self.vocabulary)

        logger.info(
            "Kneser-Ney %d-gram model (%s discounts): %d sentences, %s n-gram types per order, vocabulary %d",
            self.order, "modified" if self.discount == MODIFIED else f"fixed {self.discount}",
            len(sequences), [len(counts) for counts in self.counts], len(self.vocabulary),
        )
        return self

    def _stream(self, sequences: Sequence[Sequence[Hashable]], max_tokens: int | None = None) -> IdStream:
        """``sequences`` as this model's padded id stream (:func:`id_stream`)."""
        return id_stream(sequences, self._index.ids, self.order, self._unk_id, self._eos_id, max_tokens)

    # ----------------------------------------------------------------------------- scoring
    def _probabilities(self, stream: IdStream) -> np.ndarray:
        """``P_N(w | h)`` of every predicted token of the stream, float64 ``(tokens,)``, order 1 upwards."""
        gram_ids = [np.zeros(len(stream.ids), dtype=np.int64)]
        for k in range(1, self.order + 1):  # the training id of each k-gram of the stream, -1 if unseen
            keys, valid = gram_keys(stream, gram_ids[-1], k, self._index)
            table = self._index.tables[k]
            found = np.minimum(np.searchsorted(table, keys), len(table) - 1)
            ids_k = np.full(len(stream.ids), -1, dtype=np.int64)
            ids_k[valid] = np.where(table[found] == keys, found, -1)
            gram_ids.append(ids_k)
        positions = stream.predicted
        probabilities = np.full(len(positions), self._uniform)
        for k, (counts, totals, weights, discount_of_count) in enumerate(self._levels, start=1):
            context = gram_ids[k - 1][positions - 1] if k > 1 else np.zeros(len(positions), dtype=np.int64)
            gram = gram_ids[k][positions]
            # unseen context (never seen, or seen without followers, e.g. ending in </s>): P_k = P_{k-1}
            seen = np.flatnonzero(context >= 0)
            seen = seen[totals[context[seen]] > 0]
            context, gram = context[seen], gram[seen]
            count = np.where(gram >= 0, counts[np.maximum(gram, 0)], 0)
            probabilities[seen] = ((count - discount_of_count[np.minimum(count, 3)]) / totals[context]
                                   + weights[context] * probabilities[seen])
        return probabilities

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
        ids = self._index.ids
        history = [BOS_ID] * (self.order - 1) + [ids.get(token, self._unk_id) for token in context]
        word_id = ids.get(word, self._unk_id) if word != self.bos_token else self._unk_id
        gram = np.array([*history[len(history) - (self.order - 1):], word_id], dtype=np.int64)
        # one n-gram as a stream of one sentence whose pads are the context
        stream = IdStream(gram, np.arange(self.order, dtype=np.int64), np.array([self.order - 1]))
        return float(self._probabilities(stream)[0])

    def token_log_probabilities(self, sequences: Iterable[Sequence[Hashable]],
                                max_tokens: int | None = None) -> np.ndarray:
        """``ln P`` of every predicted token (``w1 .. wn </s>`` of each sentence), all at once.

        Args:
            sequences: sentences as token lists, without ``<s>``/``</s>``.
            max_tokens: score only the first that many predicted tokens of each sentence, as
                :func:`pipeline.language_model.data.teacher_forcing_pairs` cuts a neural model's
                targets at ``max_length`` (a cut sentence loses its ``</s>``); ``None``: all.

        Returns:
            float64 ``(tokens,)``, sentence after sentence, ``sum(min(len(s) + 1, max_tokens))`` long.
        """
        if not self.vocabulary:
            raise RuntimeError("call fit() before token_log_probabilities()")
        if max_tokens is not None and max_tokens < 1:
            raise PipelineError(f"max_tokens must be >= 1 or None, got {max_tokens}")
        sequences = sequences if isinstance(sequences, list) else list(sequences)
        return np.log(self._probabilities(self._stream(sequences, max_tokens)))

    def cross_entropy(self, sequences: Iterable[Sequence[Hashable]]) -> tuple[float, int]:
        """Summed ``-ln P`` over every predicted token (``w1 .. wn </s>``) and their count.

        Args:
            sequences: sentences as token lists, without ``<s>``/``</s>``.

        Returns:
            ``(cross_entropy_sum_in_nats, token_count)``, to combine across files or to pass to
            ``pipeline.language_model.data.perplexity``.
        """
        log_probabilities = self.token_log_probabilities(sequences)
        return -math.fsum(log_probabilities), len(log_probabilities)

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
