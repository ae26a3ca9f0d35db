"""Pooling over time that honours the padding mask."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="pipeline")
class MaskedGlobalPooling(keras.layers.Layer):
    """Mean or max over time of ``(batch, timesteps, features)``, ignoring masked steps.

    Keras' global pooling layers either ignore the mask (max) or are not
    guaranteed to skip zero-padded steps, so padding would leak into the result.

    Args:
        mode: ``"mean"`` or ``"max"``.

    Returns:
        ``(batch, features)``.
    """

    def __init__(self, mode: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("mean", "max"):
            raise ValueError(f"mode must be 'mean' or 'max', got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        ops = keras.ops
        if mask is None:
            return ops.mean(inputs, axis=1) if self.mode == "mean" else ops.max(inputs, axis=1)
        weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        if self.mode == "mean":
            return ops.sum(inputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
        lowest = ops.min(inputs) - 1.0
        return ops.max(ops.where(weights > 0, inputs, lowest), axis=1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}
