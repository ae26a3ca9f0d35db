"""An embedding whose rows the training data reaches train, and whose other rows stay as they start.

A classifier's vocabulary holds the training words and, with ``vectorize.vector_words``, thousands of
``ja_ginza`` words no training sentence contains (a word unseen in training keeps its vector at test time).
Those rows never receive a gradient, yet a ``keras.layers.Embedding`` is one ``(vocabulary, dim)`` weight: every
step the backend builds its dense gradient, the global-norm clipping reads it and Adam updates its moments and
values (all zero for the unseen rows). On the Aozora authorship task the embedding's gradient and update were 42%
of an epoch's time. Here the trained rows form one trainable weight and the rest a fixed one, so training
computes exactly what the single matrix would: Adam's update of a row whose gradient was always zero is zero, and
such a row adds nothing to the gradients' global norm.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="pipeline")
class PartlyFrozenEmbedding(keras.layers.Layer):
    """``keras.layers.Embedding(input_dim, output_dim, mask_zero=True)`` of which ``trainable_rows`` rows train.

    Weights: ``embeddings`` ``(trainable_rows, output_dim)``, trainable; ``frozen_embeddings``
    ``(input_dim - trainable_rows, output_dim)``, fixed; ``slots`` ``(input_dim,)`` int32, fixed: row ``i`` of
    the whole matrix is ``embeddings[slots[i]]`` when ``slots[i] >= 0``, else ``frozen_embeddings[-1 - slots[i]]``.
    Until :meth:`assign` says which rows train, they are the first ``trainable_rows``.

    Args:
        input_dim: Vocabulary size (rows of the whole matrix).
        output_dim: Vector size.
        trainable_rows: How many rows train, ``1 <= trainable_rows < input_dim``.
        **kwargs: Passed to ``keras.layers.Layer`` (``name``, ``dtype``, ...).

    Call arguments:
        inputs: Integer ids ``(batch, timesteps)``; 0 is padding (masked).

    Returns:
        ``(batch, timesteps, output_dim)``: row ``inputs[b, t]`` of the whole matrix.
    """

    def __init__(self, input_dim: int, output_dim: int, trainable_rows: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 1 <= int(trainable_rows) < int(input_dim):
            raise ValueError(f"trainable_rows must be in [1, input_dim = {input_dim}); received {trainable_rows!r}")
        self.input_dim, self.output_dim, self.trainable_rows = int(input_dim), int(output_dim), int(trainable_rows)
        self.supports_masking = True

    def build(self, input_shape=None) -> None:
        self.embeddings = self.add_weight(shape=(self.trainable_rows, self.output_dim), name="embeddings",
                                          initializer="uniform")
        self.frozen_embeddings = self.add_weight(shape=(self.input_dim - self.trainable_rows, self.output_dim),
                                                 name="frozen_embeddings", initializer="uniform", trainable=False)
        self.slots = self.add_weight(shape=(self.input_dim,), name="slots", dtype="int32", trainable=False,
                                     initializer="zeros")
        self.slots.assign(self._slots_of(np.arange(self.trainable_rows)))
        self.built = True

    def _slots_of(self, trainable_ids: np.ndarray) -> np.ndarray:
        trained = np.zeros(self.input_dim, bool)
        trained[trainable_ids] = True
        if trained.sum() != self.trainable_rows:
            raise ValueError(f"{self.trainable_rows} distinct rows in [0, {self.input_dim}) must train; "
                             f"received {trained.sum()}")
        slots = np.empty(self.input_dim, np.int32)
        slots[trained] = np.arange(self.trainable_rows)
        slots[~trained] = -1 - np.arange(self.input_dim - self.trainable_rows)
        return slots

    def call(self, inputs):
        slots = ops.take(self.slots, ops.cast(inputs, "int32"), axis=0)
        trained = slots >= 0
        head = ops.take(self.embeddings, ops.where(trained, slots, 0), axis=0)
        tail = ops.take(self.frozen_embeddings, ops.where(trained, 0, -1 - slots), axis=0)
        return ops.cast(ops.where(ops.expand_dims(trained, -1), head, tail), self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def matrix(self) -> np.ndarray:
        """The whole ``(input_dim, output_dim)`` matrix."""
        slots = ops.convert_to_numpy(self.slots)
        trained = slots >= 0
        head = ops.convert_to_numpy(self.embeddings)
        whole = np.empty((self.input_dim, self.output_dim), head.dtype)
        whole[trained] = head[slots[trained]]
        whole[~trained] = ops.convert_to_numpy(self.frozen_embeddings)[-1 - slots[~trained]]
        return whole

    def assign(self, matrix: np.ndarray, trainable_ids: np.ndarray | None = None) -> None:
        """Set the whole ``(input_dim, output_dim)`` matrix; ``trainable_ids`` (``trainable_rows`` distinct row
        numbers): the rows that train from now on (``None``: those that trained so far)."""
        if tuple(matrix.shape) != (self.input_dim, self.output_dim):
            raise ValueError(f"matrix of shape {tuple(matrix.shape)} for an embedding of "
                             f"({self.input_dim}, {self.output_dim})")
        if trainable_ids is not None:
            self.slots.assign(self._slots_of(np.asarray(trainable_ids)))
        slots = ops.convert_to_numpy(self.slots)
        trained = slots >= 0
        head = np.empty((self.trainable_rows, self.output_dim), matrix.dtype)
        head[slots[trained]] = matrix[trained]
        tail = np.empty((self.input_dim - self.trainable_rows, self.output_dim), matrix.dtype)
        tail[-1 - slots[~trained]] = matrix[~trained]
        self.embeddings.assign(head)
        self.frozen_embeddings.assign(tail)

    def get_config(self) -> dict:
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "trainable_rows": self.trainable_rows}
