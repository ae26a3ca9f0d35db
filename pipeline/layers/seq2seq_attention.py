"""Encoder–decoder attention (Bahdanau et al. 2015; Luong et al. 2015) and the fixed sentence vector C.

For decoder states ``s_t`` ``(batch, target_steps, query_features)`` and encoder states ``h_j``
``(batch, source_steps, value_features)`` with a source padding mask::

    additive        e_tj = v · tanh(W_q s_t + W_k h_j + b)      (Bahdanau et al. 2015, "concat")
    multiplicative  e_tj = s_t · W h_j                          (Luong et al. 2015, "general")
    alpha_t         = softmax_j(e_tj) over the real source steps (batch, target_steps, source_steps)
    c_t             = sum_j alpha_tj h_j                        (batch, target_steps, value_features)

The decoder reads a different context ``c_t`` for every output character: the lecture's answer
to the bottleneck of one fixed vector ``C`` for the whole sentence (Sutskever et al. 2014), which
:class:`SentenceVector` computes for the model without attention.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from pipeline.layers.checks import check_positive_integer

SCORES = ("additive", "multiplicative")


@keras.saving.register_keras_serializable(package="pipeline")
class DecoderAttention(keras.layers.Layer):
    """Attention of every decoder step over the encoder states.

    Args:
        score: ``"additive"`` (Bahdanau) or ``"multiplicative"`` (Luong's general score).
        units: Positive integer, size of the additive score's hidden layer (unused by
            ``multiplicative``). Default 64.
        kernel_initializer: Initializer of ``query_kernel``, ``value_kernel`` (additive) or
            ``kernel`` (multiplicative). Default ``"glorot_uniform"``.
        score_initializer: Initializer of the additive score vector ``v``. Default ``"glorot_uniform"``.

    Call arguments:
        inputs: ``[queries (batch, target_steps, query_features), values (batch, source_steps, value_features)]``.
        mask: Optional ``[query_mask, value_mask]``; ``value_mask`` ``(batch, source_steps)`` is
            ``True`` at real source steps, which alone receive weight.

    Returns:
        ``[context (batch, target_steps, value_features), alpha (batch, target_steps, source_steps)]``;
        each row of ``alpha`` sums to 1 over the real source steps (all zeros for a fully masked row).

    Example:

    ```python
    context, alpha = DecoderAttention("additive", 8)([np.ones((2, 3, 4)), np.ones((2, 5, 6))])
    ```
    """

    def __init__(self, score: str = "additive", units: int = 64, kernel_initializer: Any = "glorot_uniform",
                 score_initializer: Any = "glorot_uniform", **kwargs: Any) -> None:
        if score not in SCORES:
            raise ValueError(f"Argument `score` must be one of {SCORES}; received score={score!r}.")
        units = check_positive_integer("units", units)
        super().__init__(**kwargs)
        self.score, self.units = score, units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.score_initializer = keras.initializers.get(score_initializer)
        self.softmax = keras.layers.Softmax(axis=-1)
        self.supports_masking = True

    def build(self, input_shape: list) -> None:
        query_shape, value_shape = input_shape
        if query_shape[-1] is None or value_shape[-1] is None:
            raise ValueError(f"DecoderAttention needs known feature sizes; received input_shape={input_shape}.")
        if self.score == "additive":
            self.query_kernel = self.add_weight(shape=(query_shape[-1], self.units), name="query_kernel",
                                                initializer=self.kernel_initializer)
            self.value_kernel = self.add_weight(shape=(value_shape[-1], self.units), name="value_kernel",
                                                initializer=self.kernel_initializer)
            self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros")
            self.score_vector = self.add_weight(shape=(self.units,), name="score_vector",
                                                initializer=self.score_initializer)
        else:
            self.kernel = self.add_weight(shape=(query_shape[-1], value_shape[-1]), name="kernel",
                                          initializer=self.kernel_initializer)

    def scores(self, queries: Any, values: Any) -> Any:
        """``e`` ``(batch, target_steps, source_steps)`` before the softmax."""
        if self.score == "additive":
            projected_queries = ops.expand_dims(ops.matmul(queries, self.query_kernel), 2)  # (b, t, 1, units)
            projected_values = ops.expand_dims(ops.matmul(values, self.value_kernel), 1)  # (b, 1, s, units)
            hidden = ops.tanh(projected_queries + projected_values + self.bias)  # (b, t, s, units)
            return ops.sum(hidden * self.score_vector, axis=-1)
        return ops.matmul(ops.matmul(queries, self.kernel), ops.transpose(values, (0, 2, 1)))

    def call(self, inputs: list, mask: Any = None) -> list:
        queries, values = inputs
        scores = self.scores(queries, values)
        value_mask = None if mask is None else mask[1]
        if value_mask is not None:  # the same source mask for every decoder step
            value_mask = ops.broadcast_to(ops.expand_dims(ops.cast(value_mask, "bool"), 1), ops.shape(scores))
        alpha = self.softmax(scores, mask=value_mask)
        return [ops.matmul(alpha, values), alpha]

    def compute_mask(self, inputs: list, mask: Any = None) -> list:
        return [None if mask is None else mask[0], None]

    def compute_output_shape(self, input_shape: list) -> list:
        query_shape, value_shape = input_shape
        return [(*query_shape[:2], value_shape[-1]), (*query_shape[:2], value_shape[1])]

    def get_config(self) -> dict:
        return {**super().get_config(), "score": self.score, "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "score_initializer": keras.initializers.serialize(self.score_initializer)}


@keras.saving.register_keras_serializable(package="pipeline")
class SentenceVector(keras.layers.Layer):
    """The fixed vector ``C``: the encoder's final state, read off its output sequence.

    A forward recurrent layer's final state is its output at the last real step; a
    bidirectional one's is ``[forward output at the last real step, backward output at step 0]``
    (the backward direction ends at the first character). Reading it off the sequence lets the
    registry's layers return sequences only, as the attention needs.

    Args:
        directions: 1 (forward layer) or 2 (bidirectional; the features are ``[forward, backward]`` halves).

    Call arguments:
        inputs: ``(batch, timesteps, features)``, padded at the end.
        mask: Optional ``(batch, timesteps)``; without it every step is real.

    Returns:
        ``(batch, features)``.
    """

    def __init__(self, directions: int = 1, **kwargs: Any) -> None:
        if directions not in (1, 2):
            raise ValueError(f"Argument `directions` must be 1 or 2; received directions={directions!r}.")
        super().__init__(**kwargs)
        self.directions = directions
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        steps = ops.shape(inputs)[1]
        if mask is None:
            last = ops.full((ops.shape(inputs)[0],), steps - 1, dtype="int32")
        else:
            last = ops.maximum(ops.sum(ops.cast(mask, "int32"), axis=1) - 1, 0)
        pick = ops.expand_dims(ops.one_hot(last, steps, dtype=inputs.dtype), -1)  # (batch, timesteps, 1)
        final = ops.sum(pick * inputs, axis=1)
        if self.directions == 1:
            return final
        half = inputs.shape[-1] // 2
        return ops.concatenate([final[:, :half], inputs[:, 0, half:]], axis=-1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict:
        return {**super().get_config(), "directions": self.directions}


@keras.saving.register_keras_serializable(package="pipeline")
class RepeatOverTime(keras.layers.Layer):
    """``[vector (batch, features), sequence (batch, timesteps, any)]`` -> ``(batch, timesteps, features)``.

    The model without attention gives every decoder step the same context ``C``; the output
    keeps the sequence's mask.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: list, mask: Any = None) -> Any:
        vector, sequence = inputs
        steps = ops.shape(sequence)[1]
        return ops.repeat(ops.expand_dims(vector, 1), steps, axis=1)

    def compute_mask(self, inputs: list, mask: Any = None) -> Any:
        return None if mask is None else mask[1]

    def compute_output_shape(self, input_shape: list) -> tuple:
        return (input_shape[1][0], input_shape[1][1], input_shape[0][-1])
