"""The text front end as TensorFlow ops: what ``pipeline export`` puts inside a SavedModel.

Each function is the graph twin of a NumPy/Python one, and gives the same ids for the same strings:

* :func:`vocabulary_table` and :func:`encode_tokens`: :meth:`pipeline.text.vocab.Vocabulary.encode`
  (a ``tf.lookup.StaticHashTable``, unknown words -> ``UNK_ID``, the padding string ``""`` -> ``PAD_ID``);
* :func:`crc32` and :func:`stable_ids`: :func:`pipeline.text.features.stable_id`. TensorFlow has no
  crc32 of a string (``tf.strings.to_hash_bucket*`` are FarmHash and SipHash), so it is computed here
  as zlib does, a byte at a time with the 256-entry table of the reflected polynomial ``0xEDB88320``,
  over the UTF-8 bytes of each string;
* :func:`char_ids`: :func:`pipeline.text.features.char_ids` for a padded batch of words;
* :func:`ngram_ids`: :func:`pipeline.text.features.ngram_ids` for a padded batch of words.

Strings go in as dense ``tf.string`` tensors padded with ``""``; nothing here imports the package at
serving time: the ops are TensorFlow's own, so a SavedModel built from them loads without ``pipeline``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from pipeline.text.features import CHAR_ORDERS
from pipeline.text.vocab import PAD_ID, UNK_ID

PADDING = ""  # the string that pads a row of tokens: never a token, always id PAD_ID
CRC32_POLYNOMIAL = 0xEDB88320  # zlib's (reflected IEEE 802.3)
CRC32_MASK = 0xFFFFFFFF


def crc32_table() -> np.ndarray:
    """The 256 remainders of zlib's table-driven crc32, int64."""
    table = np.zeros(256, dtype=np.int64)
    for byte in range(256):
        remainder = byte
        for _ in range(8):
            remainder = (remainder >> 1) ^ CRC32_POLYNOMIAL if remainder & 1 else remainder >> 1
        table[byte] = remainder
    return table


def crc32(strings: tf.Tensor) -> tf.Tensor:
    """``zlib.crc32`` of the UTF-8 bytes of every string of ``strings`` (any shape), int64 of the same shape.

    One step per byte position of the longest string, over all strings at once: ``crc = T[(crc ^ b) & 0xFF]
    ^ (crc >> 8)`` for the strings that still have a byte there, from ``0xFFFFFFFF``, finally xor ``0xFFFFFFFF``.
    """
    strings = tf.convert_to_tensor(strings, dtype=tf.string)
    flat = tf.reshape(strings, [-1])
    pieces = tf.strings.bytes_split(flat)  # (strings, bytes), one byte a string
    values = tf.cast(tf.reshape(tf.io.decode_raw(pieces.flat_values, tf.uint8), [-1]), tf.int64)
    byte_rows = tf.RaggedTensor.from_row_splits(values, pieces.row_splits)
    padded = byte_rows.to_tensor(default_value=0)  # (strings, longest)
    lengths = byte_rows.row_lengths()
    table = tf.constant(crc32_table())

    def step(crc: tf.Tensor, column: tuple) -> tf.Tensor:
        byte, position = column
        index = tf.bitwise.bitwise_and(tf.bitwise.bitwise_xor(crc, byte), 0xFF)
        updated = tf.bitwise.bitwise_xor(tf.gather(table, index), tf.bitwise.right_shift(crc, 8))
        return tf.where(position < lengths, updated, crc)

    positions = tf.range(tf.shape(padded, out_type=tf.int64)[1], dtype=tf.int64)
    start = tf.fill(tf.shape(flat), tf.constant(CRC32_MASK, tf.int64))
    crc = tf.foldl(step, (tf.transpose(padded), positions), initializer=start)
    return tf.reshape(tf.bitwise.bitwise_xor(crc, CRC32_MASK), tf.shape(strings))


def stable_ids(strings: tf.Tensor, buckets: int) -> tf.Tensor:
    """:func:`pipeline.text.features.stable_id` of every string: ``crc32 % buckets + 1``, int32."""
    return tf.cast(tf.math.floormod(crc32(strings), buckets) + 1, tf.int32)


def vocabulary_table(tokens: Sequence[str]) -> tf.lookup.StaticHashTable:
    """Token -> id (its position in ``tokens``, a vocabulary in id order); any other string -> ``UNK_ID``."""
    initializer = tf.lookup.KeyValueTensorInitializer(tf.constant(list(tokens), tf.string),
                                                      tf.range(len(tokens), dtype=tf.int64))
    return tf.lookup.StaticHashTable(initializer, default_value=UNK_ID)


def encode_tokens(table: tf.lookup.StaticHashTable, tokens: tf.Tensor) -> tf.Tensor:
    """Ids of a padded batch of tokens ``(batch, timesteps)``, int32: ``""`` -> ``PAD_ID``, unknown -> ``UNK_ID``."""
    ids = tf.cast(table.lookup(tokens), tf.int32)
    return tf.where(tf.equal(tokens, PADDING), tf.constant(PAD_ID, tf.int32), ids)


def pad_columns(strings: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """A ``(batch, t)`` string tensor right-padded with ``""`` to ``width >= t`` columns."""
    return tf.pad(strings, [[0, 0], [0, width - tf.shape(strings)[1]]], constant_values=PADDING)


def char_ids(words: tf.Tensor, max_chars: int, buckets: int) -> tf.Tensor:
    """Hashed ids of the first ``max_chars`` characters (code points) of each word of ``words`` ``(batch,
    timesteps)``: int32 ``(batch, timesteps, max_chars)``, right-padded with 0 (a ``""`` word is all 0)."""
    characters = tf.strings.unicode_split(words, "UTF-8")[:, :, :max_chars]  # (batch, timesteps, chars)
    ids = tf.ragged.map_flat_values(stable_ids, characters, buckets)
    return ids.to_tensor(default_value=0, shape=[None, None, max_chars])


def _prefixed(prefix: str, pieces: tf.RaggedTensor) -> tf.RaggedTensor:
    return tf.ragged.map_flat_values(lambda values: tf.strings.join([prefix, values]), pieces)


def ngram_ids(words: tf.Tensor, kind: str, buckets: int) -> tf.Tensor:
    """Hashed ids of each row's bag of n-grams ``kind`` (``char``, ``word`` or ``both``) from the words of
    ``words`` ``(batch, timesteps)`` (``""`` padding skipped): int32 ``(batch, n)``, right-padded with 0 and at
    least one column wide; the same ids in the same order as :func:`pipeline.text.features.ngram_ids`."""
    if kind not in ("char", "word", "both"):
        raise ValueError(f"Argument `kind` must be 'char', 'word' or 'both'; received kind={kind!r}.")
    kept = tf.ragged.boolean_mask(words, tf.not_equal(words, PADDING))  # (batch, words)
    pieces = []
    if kind in ("char", "both"):
        characters = tf.strings.unicode_split(tf.strings.reduce_join(kept, axis=1), "UTF-8")
        pieces += [_prefixed("c:", tf.strings.ngrams(characters, order, separator="")) for order in CHAR_ORDERS]
    if kind in ("word", "both"):
        pieces += [_prefixed("w:", kept), _prefixed("w:", tf.strings.ngrams(kept, 2, separator=" "))]
    bag = tf.concat(pieces, axis=1) if len(pieces) > 1 else pieces[0]
    ids = tf.ragged.map_flat_values(stable_ids, bag, buckets).to_tensor(default_value=0)
    return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])
