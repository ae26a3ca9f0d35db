"""Additive attention pooling over time (Bahdanau et al. 2015 scoring, pooled as in Yang et al. 2016).

For hidden states ``h_t`` ``(batch, timesteps, features)`` and a padding mask ``(batch, timesteps)``::

    u_t     = tanh(h_t @ kernel + bias)              (batch, timesteps, units)
    score_t = u_t @ context                          (batch, timesteps)
    alpha   = softmax(score) over the unmasked steps (batch, timesteps)
    output  = sum_t alpha_t h_t                      (batch, features)

``context`` is the learned "word context vector" of Yang et al.'s Hierarchical Attention
Networks: a query asking "which steps matter for the label?". Unlike mean or max pooling, the
weights ``alpha`` say which tokens the classifier looked at, so ``pipeline classify --explain``
can show them.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from pipeline.layers.checks import check_positive_integer


@keras.saving.register_keras_serializable(package="pipeline")
class AttentionPooling(keras.layers.Layer):
    """Masked additive attention pooling: ``(batch, timesteps, features)`` -> ``(batch, features)``.

    The softmax is ``keras.layers.Softmax`` with the mask: masked steps get exactly 0 weight, the
    weights of a row sum to 1, and a fully masked row gets all-zero weights and a zero output
    (not NaN).

    Args:
        units: Positive integer, size of the attention layer ``u_t``. Default 64.
        return_attention: When ``True``, the call returns ``(output, alpha)``. Default ``False``.
        kernel_initializer: Initializer of ``kernel`` ``(features, units)``. Default ``"glorot_uniform"``.
        context_initializer: Initializer of ``context`` ``(units,)``. Default ``"glorot_uniform"``.
        bias_initializer: Initializer of ``bias`` ``(units,)``. Default ``"zeros"``.

    Call arguments:
        inputs: ``(batch, timesteps, features)``.
        mask: Optional boolean ``(batch, timesteps)``; ``True`` marks a real step. Without a mask
            every step takes part.

    Returns:
        ``(batch, features)``, or ``[(batch, features), (batch, timesteps)]`` with ``return_attention``.

    Example:

    ```python
    pooled, alpha = AttentionPooling(8, return_attention=True)(np.ones((2, 5, 3), "float32"))
    ```
    """

    def __init__(self, units: int = 64, return_attention: bool = False, kernel_initializer: Any = "glorot_uniform",
                 context_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros", **kwargs: Any) -> None:
        units = check_positive_integer("units", units)
        if not isinstance(return_attention, bool):
            raise ValueError("Argument `return_attention` must be a bool; "
                             f"received return_attention={return_attention!r}.")
        super().__init__(**kwargs)
        self.units = units
        self.return_attention = return_attention
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.context_initializer = keras.initializers.get(context_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.softmax = keras.layers.Softmax(axis=-1)
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"AttentionPooling expects inputs (batch, timesteps, features) with a known number of "
                             f"features; received input_shape={input_shape}.")
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel",
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer=self.bias_initializer)
        self.context = self.add_weight(shape=(self.units,), name="context", initializer=self.context_initializer)

    def call(self, inputs: Any, mask: Any = None) -> Any:
        hidden = ops.tanh(ops.matmul(inputs, self.kernel) + self.bias)  # (batch, timesteps, units)
        scores = ops.squeeze(ops.matmul(hidden, ops.expand_dims(self.context, -1)), -1)  # (batch, timesteps)
        alpha = self.softmax(scores, mask=mask)
        pooled = ops.sum(ops.expand_dims(alpha, -1) * inputs, axis=1)  # (batch, features)
        return [pooled, alpha] if self.return_attention else pooled

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return [None, None] if self.return_attention else None

    def compute_output_shape(self, input_shape: tuple) -> Any:
        pooled = (input_shape[0], input_shape[2])
        return [pooled, (input_shape[0], input_shape[1])] if self.return_attention else pooled

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "return_attention": self.return_attention,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "context_initializer": keras.initializers.serialize(self.context_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer)}
