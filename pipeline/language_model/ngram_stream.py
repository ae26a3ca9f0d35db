"""Sentences as one padded id stream, and the keys of the k-grams ending at its positions.

The array layout :class:`pipeline.language_model.ngram.KneserNeyModel` counts on when it fits and looks
up when it scores: every sentence becomes ``<s> x (N - 1), w1 .. wn </s>`` in one int64 stream, and the
k-gram ending at a position is one int64 key, ``id(its first k - 1 words) * base + id(last word)``
(``base = |V| + 1``; :class:`pipeline.language_model.ngram_counts.GramIndex` holds the sorted keys).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np

from pipeline.language_model.ngram_counts import GramIndex

BOS_ID = 0  # the id of <s> in the model's own numbering; the vocabulary is 1 .. |V|


@dataclass(frozen=True)
class IdStream:
    """Sentences as one padded id stream: ``<s>`` x (N - 1), the predicted tokens, sentence after sentence.

    Attributes:
        ids: int64 ``(length,)`` token ids.
        offsets: int64 ``(length,)`` position of each token within its sentence (0 at the first pad).
        predicted: int64 ``(tokens,)`` stream positions of the predicted tokens, in order.
    """

    ids: np.ndarray
    offsets: np.ndarray
    predicted: np.ndarray


def id_stream(sequences: Sequence[Sequence[Hashable]], ids: dict, order: int, unk_id: int, eos_id: int,
              max_tokens: int | None = None) -> IdStream:
    """The padded id stream of ``sequences`` (token lists) for an order-``order`` model.

    Args:
        sequences: sentences as token lists, without ``<s>``/``</s>``.
        ids: token -> id (``<s>`` is :data:`BOS_ID`); words outside it (and ``<s>`` itself) become ``unk_id``.
        order: ``N``: each sentence gets ``N - 1`` ``<s>`` pads.
        unk_id, eos_id: the ids of ``<unk>`` and ``</s>``.
        max_tokens: keep the first that many predicted tokens of each sentence (``w1 .. wn </s>`` cut as
            ``pipeline.language_model.data.teacher_forcing_pairs`` cuts its targets); ``None``: all.
    """
    pads = order - 1
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    predicted_counts = lengths + 1 if max_tokens is None else np.minimum(lengths + 1, max_tokens)
    sizes = predicted_counts + pads
    starts = np.cumsum(sizes) - sizes
    offsets = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(starts, sizes)
    stream = np.full(len(offsets), BOS_ID, dtype=np.int64)
    word_ids = np.fromiter(map(ids.get, chain.from_iterable(sequences), repeat(unk_id)),
                           dtype=np.int64, count=int(lengths.sum()))
    word_ids[word_ids == BOS_ID] = unk_id  # <s> is not a word of the vocabulary
    position = offsets - pads  # index of the predicted token within its sentence, < 0 on the pads
    sentence_length = np.repeat(lengths, sizes)
    is_word = (position >= 0) & (position < sentence_length)
    if max_tokens is not None:  # drop the words of long sentences beyond the cut
        kept = np.repeat(np.minimum(lengths, predicted_counts), lengths)
        word_ids = word_ids[np.arange(len(word_ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths) < kept]
    stream[is_word] = word_ids
    stream[position == sentence_length] = eos_id
    return IdStream(stream, offsets, np.flatnonzero(position >= 0))


def gram_keys(stream: IdStream, shorter_ids: np.ndarray, k: int, index: GramIndex) -> tuple[np.ndarray, np.ndarray]:
    """The keys of the k-grams ending at each stream position that has k tokens of its sentence.

    Args:
        stream: the id stream.
        shorter_ids: ``(length,)`` the id of the k - 1-gram ending at each position (-1: unknown).
        k: the order.
        index: the model's tables: ``index.tables[k - 1]`` numbers the k - 1-grams, ``index.base`` the tokens.

    Returns:
        ``(keys, valid)``: int64 keys ``id(k - 1-gram ending one position earlier) * base + id(token)``
        of the positions where ``valid`` (a bool mask ``(length,)``: within the sentence, prefix known).
    """
    if k == 1:  # the empty prefix, id 0
        previous = np.zeros_like(shorter_ids)
    else:
        previous = np.full_like(shorter_ids, -1)
        previous[1:] = shorter_ids[:-1]
    valid = (stream.offsets >= k - 1) & (previous >= 0)
    if len(index.tables[k - 1]) * index.base >= 2**63:
        raise ValueError(f"order {k}: {len(index.tables[k - 1])} contexts x {index.base} ids overflow int64 keys")
    return previous[valid] * index.base + stream.ids[valid], valid
