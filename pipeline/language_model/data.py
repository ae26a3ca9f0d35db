"""Language-model data: teacher-forcing pairs, a token stream cut for truncated BPTT, perplexity.

Two ways to feed a recurrent language model:

* **Sentence by sentence** (:func:`teacher_forcing_pairs`): each sentence becomes
  ``<s> w1 .. wn </s>``; the model reads ``<s> w1 .. wn`` and must predict ``w1 .. wn </s>``
  (teacher forcing: the true previous token is the input, never the model's own guess).
  Rows are right-padded with ``pad_id``; a target equal to ``pad_id`` is not scored.
* **One continuous stream** (:func:`token_stream`, :func:`tbptt_batches`, :class:`TBPTTDataset`),
  as Zaremba et al. (2014) train on the Penn Treebank: sentences joined with ``</s>``, cut into
  ``batch_size`` parallel tracks read ``bptt_steps`` tokens at a time, so a *stateful* model
  carries its state from one batch to the next (truncated backpropagation through time).

Perplexity is ``exp(mean cross-entropy per predicted token)``: the number of equally likely
words the model is, on average, choosing between. A uniform model over ``V`` words has
perplexity ``V``; a perfect model has 1. Every predicted token counts, ``</s>`` included;
padding does not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from pipeline.errors import PipelineError
from pipeline.text.batches import SequenceBatches, round_up
from pipeline.text.encoded import RaggedIds
from pipeline.text.vocab import PAD_ID

# Probabilities are clipped to this floor before the log, so a zero probability gives a large,
# finite cross-entropy (-ln 1e-7 = 16.1) instead of inf. Same value as keras.config.epsilon().
PROBABILITY_FLOOR = 1e-7


def teacher_forcing_pairs(
    sequences: Sequence[Sequence[int]],
    bos_id: int,
    eos_id: int,
    pad_id: int = 0,
    max_length: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn sentences of token ids into (inputs, targets) for next-token prediction.

    Sentence ``[w1, .., wn]`` becomes ``<s> w1 .. wn </s>``; inputs are its tokens ``0..n``
    (``<s> w1 .. wn``), targets its tokens ``1..n+1`` (``w1 .. wn </s>``).

    Args:
        sequences: sentences as lists of token ids (no ``<s>``/``</s>`` yet).
        bos_id: id of ``<s>``.
        eos_id: id of ``</s>``.
        pad_id: id written after the end of each row (targets there are masked).
        max_length: number of timesteps of the result. ``None``: the longest sentence + 1.
            A longer sentence is cut to its first ``max_length`` inputs and targets; its
            ``</s>`` is then dropped (the sentence does not end there, so the model must not
            learn to stop there).

    Returns:
        ``(inputs, targets)``, int32 arrays of shape ``(n_sentences, timesteps)``.

    Example:
        >>> teacher_forcing_pairs([[5, 6]], bos_id=2, eos_id=3)
        (array([[2, 5, 6]], dtype=int32), array([[5, 6, 3]], dtype=int32))
    """
    if pad_id in (bos_id, eos_id):
        raise ValueError(f"pad_id={pad_id} must differ from bos_id={bos_id} and eos_id={eos_id}")
    if max_length is not None and max_length < 1:
        raise PipelineError(f"max_length must be >= 1 or None, got {max_length}; raise it in the config")
    if max_length is None:
        timesteps = max((len(sentence) + 1 for sentence in sequences), default=1)
    else:
        timesteps = max_length
    inputs = np.full((len(sequences), timesteps), pad_id, dtype=np.int32)
    targets = np.full((len(sequences), timesteps), pad_id, dtype=np.int32)
    for row, sentence in enumerate(sequences):
        framed = [bos_id, *sentence, eos_id][: timesteps + 1]
        length = len(framed) - 1
        inputs[row, :length] = framed[:-1]
        targets[row, :length] = framed[1:]
    return inputs, targets


class LanguageModelBatches(SequenceBatches):
    """Teacher-forcing batches ``(inputs, targets)`` or ``((inputs, label_ids), targets)``, bucketed by length."""

    def __init__(self, sequences, label_ids, batch_size: int, max_length: int, bos_id: int, eos_id: int,
                 rng: np.random.Generator | None = None, bucketing: bool = True, conditioned: bool = False,
                 width_multiple: int | None = None, steps_per_epoch: int = 0) -> None:
        super().__init__(sequences, label_ids, batch_size, max_length + 1, rng, bucketing,
                         width_multiple=width_multiple, steps_per_epoch=steps_per_epoch)
        self.bos_id, self.eos_id, self.conditioned = bos_id, eos_id, conditioned
        self.timesteps = max_length

    def __getitem__(self, index: int) -> tuple:
        rows = self.batches[index]
        # the sentences and one more token (<s> in the inputs, </s> in the targets), rounded as SequenceBatches does
        longest = round_up(int(self.lengths[rows].max()) + 1, self.width_multiple, self.timesteps)
        inputs, targets = teacher_forcing_pairs([self.sequences[r] for r in rows], self.bos_id, self.eos_id,
                                                PAD_ID, max_length=longest)
        if self.conditioned:
            return (inputs, self.targets[rows]), targets
        return inputs, targets


def token_stream(sequences: Sequence[Sequence[int]], eos_id: int) -> np.ndarray:
    """Concatenate sentences into one stream, each sentence followed by ``</s>`` (PTB style).

    Args:
        sequences: sentences as lists of token ids, or a :class:`RaggedIds` view (joined without a Python loop).
        eos_id: id of ``</s>``, appended after every sentence (the last one too).

    Returns:
        int32 array of shape ``(sum(len(s) + 1 for s in sequences),)``.

    Example:
        >>> token_stream([[5, 6], [7]], eos_id=3)
        array([5, 6, 3, 7, 3], dtype=int32)
    """
    if isinstance(sequences, RaggedIds) and not sequences.reverse:  # flat ids: </s> slots in one step
        offsets = sequences.offsets
        stream = np.empty(int(offsets[-1] - offsets[0]) + len(sequences), dtype=np.int32)
        ends = np.zeros(len(stream), dtype=bool)
        ends[offsets[1:] - offsets[0] + np.arange(len(sequences))] = True
        stream[ends], stream[~ends] = eos_id, sequences.flat[offsets[0]:offsets[-1]]
        return stream
    stream = np.empty(sum(len(sentence) + 1 for sentence in sequences), dtype=np.int32)
    position = 0
    for sentence in sequences:
        stream[position : position + len(sentence)] = sentence
        position += len(sentence)
        stream[position] = eos_id
        position += 1
    return stream


def num_tbptt_batches(stream_length: int, batch_size: int, bptt_steps: int) -> int:
    """Number of full ``bptt_steps`` windows :func:`tbptt_batches` yields for a stream.

    Each track holds ``L = stream_length // batch_size`` tokens; the last token of a track is
    only a target, so there are ``(L - 1) // bptt_steps`` windows. The last partial window
    (``(L - 1) % bptt_steps`` tokens per track) is always dropped, every epoch the same, so
    every batch has the fixed shape ``(batch_size, bptt_steps)`` a stateful model needs.
    """
    _check_tbptt_arguments(batch_size, bptt_steps)
    track_length = stream_length // batch_size
    return max(track_length - 1, 0) // bptt_steps


def _check_tbptt_arguments(batch_size: int, bptt_steps: int) -> None:
    if int(batch_size) != batch_size or batch_size < 1:
        raise PipelineError(f"batch_size must be an integer >= 1, got {batch_size!r}; fix it in the config")
    if int(bptt_steps) != bptt_steps or bptt_steps < 1:
        raise PipelineError(f"bptt_steps must be an integer >= 1, got {bptt_steps!r}; fix it in the config")


def _tracks(stream: np.ndarray, batch_size: int, bptt_steps: int) -> tuple[np.ndarray, int]:
    """Reshape the stream into ``(batch_size, L)`` tracks; return them and the window count."""
    stream = np.asarray(stream)
    if stream.ndim != 1:
        raise ValueError(f"stream must be 1-D token ids, got shape {stream.shape}")
    count = num_tbptt_batches(len(stream), batch_size, bptt_steps)
    if count == 0:
        raise PipelineError(
            f"token stream of {len(stream)} tokens is too short for batch_size={batch_size} and "
            f"bptt_steps={bptt_steps} (needs at least {batch_size * (bptt_steps + 1)}); "
            "use more text or smaller values"
        )
    track_length = len(stream) // batch_size
    tracks = stream[: batch_size * track_length].reshape(batch_size, track_length)
    return tracks, count


def tbptt_batches(
    stream: np.ndarray, batch_size: int, bptt_steps: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cut a token stream into batches for a stateful model trained with truncated BPTT.

    The stream is split into ``batch_size`` contiguous tracks: track ``b`` holds
    ``stream[b*L:(b+1)*L]`` with ``L = len(stream) // batch_size`` (the last
    ``len(stream) % batch_size`` tokens are dropped). Batch ``i`` is::

        inputs  = tracks[:, i*k     : (i+1)*k]        # k = bptt_steps
        targets = tracks[:, i*k + 1 : (i+1)*k + 1]    # the next token in the stream

    so row ``b`` of batch ``i + 1`` continues exactly where row ``b`` of batch ``i`` stopped,
    and a stateful RNN keeps the right state per row. The last partial window is dropped
    (see :func:`num_tbptt_batches`).

    Args:
        stream: 1-D token ids, e.g. from :func:`token_stream`.
        batch_size: number of parallel tracks (rows per batch).
        bptt_steps: timesteps per batch, the truncation length of BPTT.

    Returns:
        An iterator of ``(inputs, targets)``, each of shape ``(batch_size, bptt_steps)``
        (views into the stream, not copies).

    Example:
        >>> batches = list(tbptt_batches(np.arange(23), batch_size=3, bptt_steps=2))
        >>> batches[0][0].tolist(), batches[0][1].tolist()
        ([[0, 1], [7, 8], [14, 15]], [[1, 2], [8, 9], [15, 16]])
    """
    tracks, count = _tracks(stream, batch_size, bptt_steps)  # validates now, not on first next()
    return (
        (tracks[:, start : start + bptt_steps], tracks[:, start + 1 : start + bptt_steps + 1])
        for start in range(0, count * bptt_steps, bptt_steps)
    )


class TargetsAsInput(keras.utils.PyDataset):
    """Batches ``(inputs, targets)`` of ``dataset`` as ``((*inputs, targets), targets)``.

    The adaptive softmax's training model reads the targets as an input so that it computes
    only ``log p(target)``; the targets stay the labels of the loss.
    """

    def __init__(self, dataset: keras.utils.PyDataset) -> None:
        super().__init__()
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple:
        inputs, targets = self.dataset[index]
        inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
        return (*inputs, targets), targets

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()


class TBPTTDataset(keras.utils.PyDataset):
    """The batches of :func:`tbptt_batches` as a ``keras.utils.PyDataset``, for a stateful model.

    Batch ``i`` is always the same window, in the same order every epoch; nothing is shuffled.
    But ``model.fit`` shuffles a ``PyDataset``'s batch order by default, which would scramble
    the state carried between batches, so **always call** ``model.fit(dataset, shuffle=False)``
    and keep ``workers=1`` (the default). Reset the model's recurrent state at the start of each
    epoch (e.g. a callback calling ``layer.reset_state()`` on the stateful layers), since
    batch 0 starts the tracks again.

    Args:
        stream: 1-D token ids, e.g. from :func:`token_stream`.
        batch_size: number of parallel tracks; the model's fixed batch size.
        bptt_steps: timesteps per batch.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of ``PyDataset``.

    Returns (per item):
        ``(inputs, targets)``, int32 arrays of shape ``(batch_size, bptt_steps)``.

    Example:
        >>> stream = token_stream(train_ids, eos_id)  # doctest: +SKIP
        >>> dataset = TBPTTDataset(stream, batch_size=20, bptt_steps=35)  # doctest: +SKIP
        >>> model.fit(dataset, epochs=10, shuffle=False)  # doctest: +SKIP
    """

    def __init__(self, stream: np.ndarray, batch_size: int, bptt_steps: int, **kwargs):
        super().__init__(**kwargs)
        stream = np.asarray(stream, dtype=np.int32)
        self.tracks, self._count = _tracks(stream, batch_size, bptt_steps)
        self.batch_size = batch_size
        self.bptt_steps = bptt_steps

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self._count:
            raise IndexError(f"batch index {index} out of range for {self._count} batches")
        start = index * self.bptt_steps
        inputs = self.tracks[:, start : start + self.bptt_steps]
        targets = self.tracks[:, start + 1 : start + self.bptt_steps + 1]
        return np.ascontiguousarray(inputs), np.ascontiguousarray(targets)


def perplexity(cross_entropy_sum: float, token_count: int) -> float:
    """Perplexity ``exp(cross_entropy_sum / token_count)`` from a summed cross-entropy in nats.

    Args:
        cross_entropy_sum: sum over predicted tokens of ``-ln p(token | prefix)``.
        token_count: number of predicted tokens (``</s>`` included, padding excluded).

    Returns:
        The perplexity, a float >= 1 for a proper model.
    """
    if token_count <= 0:
        raise PipelineError(
            f"perplexity needs at least one predicted token, got token_count={token_count}; "
            "check the evaluation text is not empty"
        )
    return math.exp(cross_entropy_sum / token_count)


def perplexity_from_probabilities(
    probabilities: np.ndarray, targets: np.ndarray, pad_id: int = 0
) -> float:
    """Perplexity of next-token probabilities against targets, padding excluded.

    Args:
        probabilities: ``(n, timesteps, vocab)`` model outputs (softmax probabilities).
        targets: ``(n, timesteps)`` true next-token ids; positions equal to ``pad_id`` are skipped.
        pad_id: the padding id.

    Returns:
        ``exp(mean over non-pad targets of -ln p(target))``; probabilities are clipped to
        ``PROBABILITY_FLOOR`` first, as :class:`Perplexity` does.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets)
    if probabilities.shape[:-1] != targets.shape:
        raise ValueError(f"probabilities {probabilities.shape} do not match targets {targets.shape}")
    chosen = np.take_along_axis(probabilities, targets[..., None].astype(np.intp), axis=-1)[..., 0]
    mask = targets != pad_id
    cross_entropy = -np.log(np.clip(chosen[mask], PROBABILITY_FLOOR, 1.0))
    return perplexity(float(cross_entropy.sum()), int(mask.sum()))


@keras.saving.register_keras_serializable(package="pipeline")
class Perplexity(keras.metrics.Metric):
    """Perplexity over all non-pad targets seen since the last reset: ``exp(sum CE / count)``.

    Unlike averaging per-batch perplexities (wrong: exp of a mean is not a mean of exps, and
    batches hold different numbers of real tokens), this keeps two running totals: the summed
    sparse categorical cross-entropy of the non-pad targets and their count.

    Args:
        pad_id: targets equal to this id are ignored (padding).
        from_logits: ``y_pred`` holds logits instead of probabilities.
        target_log_probabilities: ``y_pred`` is already ``log p(target)`` ``(batch, timesteps)``
            (the adaptive softmax's training output); nothing is gathered.
        name: metric name, shown in the training logs.
        dtype: dtype of the running totals.

    Call arguments (``update_state``):
        y_true: ``(batch, timesteps)`` (or ``(batch, timesteps, 1)``) integer target ids.
        y_pred: ``(batch, timesteps, vocab)`` probabilities (or logits).
        sample_weight: optional ``(batch,)`` or ``(batch, timesteps)``; scales each token's weight.

    Returns (``result``):
        A scalar; NaN before any non-pad target has been seen.

    Example:
        >>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=0),
        ...               metrics=[Perplexity(pad_id=0)])  # doctest: +SKIP
    """

    def __init__(self, pad_id: int = 0, from_logits: bool = False, target_log_probabilities: bool = False,
                 name: str = "perplexity", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.pad_id = int(pad_id)
        self.from_logits = bool(from_logits)
        self.target_log_probabilities = bool(target_log_probabilities)
        self.cross_entropy_sum = self.add_variable(shape=(), initializer="zeros", name="cross_entropy_sum")
        self.token_count = self.add_variable(shape=(), initializer="zeros", name="token_count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ops = keras.ops
        if self.target_log_probabilities:
            token_shape = ops.shape(y_pred)  # (batch, timesteps)
            chosen = ops.reshape(ops.cast(y_pred, self.dtype), (-1,))
            y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        else:
            vocab_size = y_pred.shape[-1]
            token_shape = ops.shape(y_pred)[:-1]  # (batch, timesteps)
            y_pred = ops.reshape(ops.cast(y_pred, self.dtype), (-1, vocab_size))
            y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
            if self.from_logits:
                log_probabilities = ops.log_softmax(y_pred, axis=-1)
            else:
                log_probabilities = ops.log(ops.clip(y_pred, PROBABILITY_FLOOR, 1.0))
            chosen = ops.take_along_axis(log_probabilities, ops.expand_dims(y_true, -1), axis=-1)[:, 0]
        weight = ops.cast(ops.not_equal(y_true, self.pad_id), self.dtype)
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, self.dtype)
            while len(sample_weight.shape) < len(token_shape):  # per-sentence weights (batch,)
                sample_weight = ops.expand_dims(sample_weight, -1)
            weight = weight * ops.reshape(ops.broadcast_to(sample_weight, token_shape), (-1,))
        self.cross_entropy_sum.assign_add(-ops.sum(chosen * weight))
        self.token_count.assign_add(ops.sum(weight))

    def result(self):
        ops = keras.ops
        mean = self.cross_entropy_sum / ops.maximum(self.token_count, 1e-12)
        return ops.where(self.token_count > 0, ops.exp(mean), float("nan"))

    def get_config(self) -> dict:
        return {**super().get_config(), "pad_id": self.pad_id, "from_logits": self.from_logits,
                "target_log_probabilities": self.target_log_probabilities}
