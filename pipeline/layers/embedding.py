"""An embedding whose first rows train and whose other rows stay as they start.

A classifier's vocabulary holds the training words and, with ``vectorize.vector_words``, thousands of
``ja_ginza`` words no training sentence contains (a word unseen in training keeps its vector at test time).
Those rows never receive a gradient, yet a ``keras.layers.Embedding`` is one ``(vocabulary, dim)`` weight: every
step the backend builds its dense gradient, the global-norm clipping reads it and Adam updates its moments and
values (all zero for the unseen rows). On the Aozora authorship task that was 42% of an epoch's time. Here the
rows ``[0, trainable_rows)`` (the words training reaches) are one trainable weight and the rest a fixed one, so
training computes exactly what the single matrix would: Adam's update of a row whose gradient was always zero is
zero, and it adds nothing to the gradients' global norm.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="pipeline")
class PartlyFrozenEmbedding(keras.layers.Layer):
    """``keras.layers.Embedding(input_dim, output_dim, mask_zero=True)`` whose rows from ``trainable_rows`` on
    never train.

    Args:
        input_dim: Vocabulary size (rows of the whole matrix).
        output_dim: Vector size.
        trainable_rows: Rows ``[0, trainable_rows)`` form the trainable weight ``embeddings``; rows
            ``[trainable_rows, input_dim)`` the fixed weight ``frozen_embeddings``. ``1 <= trainable_rows <
            input_dim``.
        **kwargs: Passed to ``keras.layers.Layer`` (``name``, ``trainable``, ...).

    Call arguments:
        inputs: Integer ids ``(batch, timesteps)``; 0 is padding (masked).

    Returns:
        ``(batch, timesteps, output_dim)``, row ``inputs[b, t]`` of the whole matrix.
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
        self.built = True

    def call(self, inputs):
        ids = ops.cast(inputs, "int32")
        trained = ids < self.trainable_rows
        head = ops.take(self.embeddings, ops.where(trained, ids, 0), axis=0)
        tail = ops.take(self.frozen_embeddings, ops.where(trained, 0, ids - self.trainable_rows), axis=0)
        return ops.cast(ops.where(ops.expand_dims(trained, -1), head, tail), self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def matrix(self) -> np.ndarray:
        """The whole ``(input_dim, output_dim)`` matrix."""
        return np.concatenate([ops.convert_to_numpy(self.embeddings), ops.convert_to_numpy(self.frozen_embeddings)])

    def assign_matrix(self, matrix: np.ndarray) -> None:
        """Set both parts from a whole ``(input_dim, output_dim)`` matrix."""
        if tuple(matrix.shape) != (self.input_dim, self.output_dim):
            raise ValueError(f"matrix of shape {tuple(matrix.shape)} for an embedding of "
                             f"({self.input_dim}, {self.output_dim})")
        self.embeddings.assign(matrix[:self.trainable_rows])
        self.frozen_embeddings.assign(matrix[self.trainable_rows:])

    def get_config(self) -> dict:
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "trainable_rows": self.trainable_rows}
