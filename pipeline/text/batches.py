"""Batches of id sequences for Keras: padding, truncation and length bucketing.

With bucketing, sentences are sorted by length (ties broken at random) and cut
into batches, and the order of the batches is shuffled every epoch: each batch
is padded only to its own longest sentence, so little time goes to padding
while the model still sees the batches in a random order.

A backend that compiles each step for its input shapes (XLA under JAX) compiles once per distinct
batch width; there widths are rounded up to a multiple of :data:`COMPILED_WIDTH_MULTIPLE`
(:func:`backend_width_multiple`), so an epoch has a few shapes instead of one per batch. TensorFlow runs
its steps op by op for any shape, so its batches keep their exact widths.

Extra inputs (the classifier's subword features, :mod:`pipeline.text.features`) ride along:
per-token arrays are padded and truncated to exactly the token ids' width, bags to their
batch's largest bag; a batch is then a dict ``{"token_ids", name, ...}`` keyed by input name.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from pipeline.text.encoded import RaggedIds
from pipeline.text.vocab import PAD_ID

COMPILED_WIDTH_MULTIPLE = 8  # sentence widths on a compiling backend: at most max_length / 8 shapes
COMPILED_BAG_MULTIPLE = 32  # bag widths (character n-grams per sentence: tens to hundreds)


def backend_width_multiple() -> int:
    """What batch widths are rounded up to on the current Keras backend: 1 (exact) on TensorFlow, whose
    steps run op by op, :data:`COMPILED_WIDTH_MULTIPLE` on JAX, which XLA-compiles a step once per input
    shape (about a second each for a recurrent classifier on 2 cores)."""
    return 1 if keras.backend.backend() == "tensorflow" else COMPILED_WIDTH_MULTIPLE


def round_up(width: int, multiple: int, cap: int | None = None) -> int:
    """``width`` rounded up to a multiple of ``multiple``, then at most ``cap`` when given:
    ``round_up(13, 8, cap=60) == 16``, ``round_up(58, 8, cap=60) == 60``, ``round_up(13, 1) == 13``."""
    rounded = -(-width // multiple) * multiple
    return rounded if cap is None else min(rounded, cap)


def pad(sequences: Sequence[np.ndarray], max_length: int, pad_id: int = PAD_ID,
        width: int | None = None) -> np.ndarray:
    """Right-pad (and truncate to ``max_length``) into an int32 array ``(batch, longest, *item)``.

    ``width`` fixes the padded length instead (e.g. to the token ids' width); items may be arrays
    (a row of character ids per token), whose shape ``item`` is kept.
    """
    longest = width or max(1, min(max_length, max((len(s) for s in sequences), default=1)))
    item = np.shape(sequences[0])[1:] if len(sequences) else ()
    batch = np.full((len(sequences), longest, *item), pad_id, dtype=np.int32)
    for row, sequence in enumerate(sequences):
        kept = sequence[:longest]
        batch[row, : len(kept)] = kept
    return batch


def sequence_lengths(sequences: Sequence[np.ndarray], rows: np.ndarray | None = None) -> np.ndarray:
    """Items per sequence (of those at ``rows`` only, when given), int64; a :class:`RaggedIds` (or anything
    with ``lengths(rows)``, e.g. :class:`pipeline.text.features.NgramRows`) answers without making the
    sequences."""
    if hasattr(sequences, "lengths"):
        return sequences.lengths(rows)
    chosen = sequences if rows is None else (sequences[int(row)] for row in rows)
    return np.fromiter((len(sequence) for sequence in chosen), dtype=np.int64,
                       count=len(sequences) if rows is None else len(rows))


def _indexable(values) -> Sequence:
    """``values`` as something indexed by row: a sequence as it is, anything else (an iterator) as a list."""
    return values if isinstance(values, Sequence) else list(values)


def sampled_rows(count: int, limit: int, rng: np.random.Generator) -> np.ndarray | None:
    """``limit`` of ``count`` row indices, drawn without replacement by ``rng`` and kept in increasing order;
    ``None`` (every row) when ``limit`` is 0 or at least ``count``."""
    if not 0 < limit < count:
        return None
    return np.sort(rng.choice(count, size=limit, replace=False))


def rows_up_to(count: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`sampled_rows` as indices always: every row's (``0 .. count - 1``) where it would say ``None``."""
    rows = sampled_rows(count, limit, rng)
    return np.arange(count) if rows is None else rows


class Rows(Sequence):
    """Rows ``rows`` of ``values`` (anything indexed by row: a list, a :class:`RaggedIds`, the subword rows of
    :mod:`pipeline.text.features`) as a sequence of their own: item ``i`` is ``values[rows[i]]``, made when
    asked for, so a sample of a split costs its indices only."""

    def __init__(self, values: Sequence, rows: np.ndarray) -> None:
        self.values, self.rows = values, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        return self.values[int(self.rows[index])]

    def lengths(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Items per row (of ``rows`` of this view only, when given), from ``values`` for those rows alone: a
        sample of a split costs its own rows, not the split's."""
        return sequence_lengths(self.values, self.rows if rows is None else self.rows[rows])


class Chained(Sequence):
    """Several sequences indexed by row as one: the rows of ``parts[0]``, then those of ``parts[1]``, ... (e.g.
    the training sentences followed by unlabeled ones); each item is made when asked for, nothing is copied."""

    def __init__(self, parts: Sequence[Sequence]) -> None:
        self.parts = list(parts)
        self.starts = np.cumsum([0, *(len(part) for part in self.parts)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.parts[part][index - int(self.starts[part])]

    def lengths(self, rows: np.ndarray | None = None) -> np.ndarray:
        every = np.concatenate([sequence_lengths(part) for part in self.parts]) if self.parts \
            else np.zeros(0, dtype=np.int64)
        return every if rows is None else every[rows]


def chain_rows(parts: Sequence):
    """``parts`` (each indexed by row) one after the other: arrays concatenated, anything else :class:`Chained`."""
    if all(isinstance(part, np.ndarray) for part in parts):
        return np.concatenate(parts)
    return Chained(parts)


def take_rows(values, rows: np.ndarray | None):
    """``values`` at ``rows``: an array indexed (a copy), anything else viewed (:class:`Rows`); ``rows``
    ``None`` (every row) or ``values`` ``None`` give ``values`` as they are."""
    if rows is None or values is None:
        return values
    return values[rows] if isinstance(values, np.ndarray) else Rows(values, rows)


def inputs_at(extra: dict, rows: np.ndarray | None) -> dict:
    """The extra inputs of :class:`SequenceBatches` (``{"token_inputs": {...}, "bag_inputs": {...}}``) at
    ``rows`` (:func:`take_rows` of each)."""
    return {kind: {name: take_rows(values, rows) for name, values in inputs.items()}
            for kind, inputs in extra.items()}


def balanced_class_weights(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """``n / (classes * n_c)`` per class: every class weighs as much in the loss in total."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(targets) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


class SequenceBatches(keras.utils.PyDataset):
    """A Keras dataset of ``(ids (batch, timesteps), targets (batch,)[, sample_weight (batch,)])``.

    Args:
        sequences: one int array of token ids per example: a list, or a :class:`RaggedIds` view (the
            memory-mapped ids of ``vectorize``), which is indexed a batch at a time and never copied.
        targets: class id per example, shape ``(n,)``.
        batch_size: examples per batch.
        max_length: sequences are truncated to this many tokens.
        rng: shuffles each epoch when given; ``None`` keeps the input order
            (for prediction, so outputs line up with inputs).
        bucketing: group sentences of similar length (only when shuffling).
        sample_weights: optional weight per example, shape ``(n,)``.
        token_inputs: more inputs with one row per token, e.g. ``{"char_ids": [(timesteps, chars), ...]}``:
            padded and truncated with the token ids, so every input has the same timesteps.
        bag_inputs: more inputs with a bag of ids per example, e.g. ``{"ngram_ids": [(n,), ...]}``:
            padded to the batch's largest bag.
        width_multiple: batch widths are rounded up to a multiple of this (at most ``max_length``), and
            when it is over 1, bag widths to a multiple of :data:`COMPILED_BAG_MULTIPLE`. ``None``: the
            backend's (:func:`backend_width_multiple`; 1, exact widths, on TensorFlow).
        steps_per_epoch: an epoch is this many batches (``train.steps_per_epoch``): epoch ``e`` reads the
            batches of the shuffled plan after those epoch ``e - 1`` read, and past the plan's end the first
            batches of the next shuffle, so every example is read once per pass as in whole epochs, and a
            corpus of millions of sentences validates, checkpoints and can be resumed every few minutes.
            0, or at least one whole plan: every epoch is the whole plan.

    With extra inputs the first element of a batch is ``{"token_ids": ..., **token_inputs, **bag_inputs}``.
    """

    def __init__(self, sequences: Sequence[np.ndarray], targets: np.ndarray | None, batch_size: int,
                 max_length: int, rng: np.random.Generator | None = None, bucketing: bool = True,
                 sample_weights: np.ndarray | None = None, token_inputs: dict | None = None,
                 bag_inputs: dict | None = None, width_multiple: int | None = None,
                 steps_per_epoch: int = 0) -> None:
        super().__init__()
        # a RaggedIds view (memory-mapped ids) stays as it is: indexing reads one sentence
        self.sequences = sequences if isinstance(sequences, (RaggedIds, Chained)) else list(sequences)
        self.targets = targets
        self.batch_size = batch_size
        self.max_length = max_length
        self.rng = rng
        self.bucketing = bucketing and rng is not None
        self.sample_weights = sample_weights
        self.width_multiple = backend_width_multiple() if width_multiple is None else width_multiple
        self.bag_multiple = 1 if self.width_multiple == 1 else COMPILED_BAG_MULTIPLE
        self.lengths = np.minimum(sequence_lengths(self.sequences), max_length)
        # lists, or rows made per batch (pipeline.text.features.CharRows / NgramRows): kept as they are
        self.token_inputs = {name: _indexable(values) for name, values in (token_inputs or {}).items()}
        self.bag_inputs = {name: _indexable(values) for name, values in (bag_inputs or {}).items()}
        self.bag_lengths = {name: sequence_lengths(values) for name, values in self.bag_inputs.items()}
        whole = -(-len(self.sequences) // batch_size)  # batches in one plan
        self.steps_per_epoch = steps_per_epoch if 0 < steps_per_epoch < whole else 0
        self._rest: list[np.ndarray] = []  # the batches of the current plan that no epoch has read yet
        self.batches = self._epoch()

    def _plan(self) -> list[np.ndarray]:
        count = len(self.sequences)
        if self.rng is None:
            order = np.arange(count)
        elif self.bucketing:
            order = np.lexsort((self.rng.random(count), self.lengths))
        else:
            order = self.rng.permutation(count)
        batches = [order[start:start + self.batch_size] for start in range(0, count, self.batch_size)]
        if self.rng is not None:
            batches = [batches[i] for i in self.rng.permutation(len(batches))]
        return self._vary_first_widths(batches)

    def _epoch(self) -> list[np.ndarray]:
        """The next epoch's batches: a whole plan, or the next ``steps_per_epoch`` batches of the plans."""
        if not self.steps_per_epoch:
            return self._plan()
        window: list[np.ndarray] = []
        while len(window) < self.steps_per_epoch:
            if not self._rest:
                self._rest = self._plan()
            taken = self.steps_per_epoch - len(window)
            window += self._rest[:taken]
            self._rest = self._rest[taken:]
        return self._vary_first_widths(window)

    def _width(self, rows: np.ndarray) -> int:
        """The padded width of a batch of ``rows``: its longest sentence, rounded up to ``width_multiple``."""
        return round_up(max(1, int(self.lengths[rows].max())), self.width_multiple, self.max_length)

    def _vary_first_widths(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Keras infers the input shape from the first two batches; when they have the same width
        it fixes that width and a wider later batch fails. Move a batch of another width second."""
        if len(batches) > 2 and self._width(batches[0]) == self._width(batches[1]):
            other = next((i for i in range(2, len(batches))
                          if self._width(batches[i]) != self._width(batches[0])), None)
            if other is not None:
                batches[1], batches[other] = batches[other], batches[1]
        return batches

    def __len__(self) -> int:
        return len(self.batches)

    def _bag_width(self, name: str, index: int) -> int:
        """The largest bag of batch ``index``; batch 1 is one wider when batch 0 has the same width,
        so that Keras, which infers input shapes from the first two batches, never fixes it."""
        width = round_up(max(1, int(self.bag_lengths[name][self.batches[index]].max(initial=0))), self.bag_multiple)
        if index == 1 and width == self._bag_width(name, 0):
            width += self.bag_multiple
        return width

    def inputs(self, index: int) -> np.ndarray | dict[str, np.ndarray]:
        """The model inputs of batch ``index``: the padded token ids, or a dict with the extra inputs."""
        rows = self.batches[index]
        ids = pad([self.sequences[row] for row in rows], self.max_length, width=self._width(rows))
        if not self.token_inputs and not self.bag_inputs:
            return ids
        inputs = {"token_ids": ids}
        for name, values in self.token_inputs.items():
            inputs[name] = pad([values[row] for row in rows], self.max_length, width=ids.shape[1])
        for name, values in self.bag_inputs.items():
            inputs[name] = pad([values[row] for row in rows], self.max_length, width=self._bag_width(name, index))
        return inputs

    def __getitem__(self, index: int) -> tuple:
        rows = self.batches[index]
        inputs = self.inputs(index)
        if self.targets is None:
            return (inputs,)
        if self.sample_weights is None:
            return inputs, self.targets[rows]
        return inputs, self.targets[rows], self.sample_weights[rows]

    def on_epoch_end(self) -> None:
        if self.rng is not None or self.steps_per_epoch:
            self.batches = self._epoch()

    def predict(self, model: keras.Model) -> np.ndarray:
        """Model outputs for every example, in input order (whatever order the batches have)."""
        if self.steps_per_epoch:
            raise ValueError("predict reads every example once: make these batches without steps_per_epoch")
        rows, outputs = [], []
        for index, batch_rows in enumerate(self.batches):
            outputs.append(np.asarray(model.predict_on_batch(self[index][0])))
            rows.append(batch_rows)
        if not outputs:
            return np.zeros((0,) + tuple(model.outputs[0].shape[1:]), dtype=np.float32)
        result = np.empty((len(self.sequences),) + outputs[0].shape[1:], dtype=outputs[0].dtype)
        result[np.concatenate(rows)] = np.concatenate(outputs)
        return result

    def padding_share(self) -> float:
        """Share of padded positions over all batches (what bucketing saves)."""
        total = sum(len(rows) * self._width(rows) for rows in self.batches)
        return 1.0 - float(self.lengths.sum()) / total if total else 0.0
