"""A vector per token from its characters: the character-level word encoder of Ling et al. (2015).

Words outside the vocabulary (names, products, katakana loanwords, numbers, English) still have
characters, and characters carry meaning in Japanese: 〜駅, 〜寺, 〜店, the katakana of a brand.
The layer reads hashed character ids ``(batch, timesteps, chars)`` (:mod:`pipeline.text.features`)
and gives each token a vector ``(batch, timesteps, units)`` to concatenate with its word vector.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from pipeline.layers.checks import check_positive_integer, check_seed
from pipeline.layers.pooling import MaskedGlobalPooling

MODES = ("cnn", "bilstm")


@keras.saving.register_keras_serializable(package="pipeline")
class CharacterEncoder(keras.layers.Layer):
    """Character ids per token -> one vector per token, masked where the token is padding.

    Each token's characters ``c_1 .. c_L`` (ids ``> 0``; 0 is padding) are embedded,
    ``e_j = E[c_j]`` (padding embedded as 0), then

    * ``mode="cnn"`` (Kim et al. 2016): one ``Conv1D`` per width ``w`` with ``"same"`` padding
      and ``tanh``, ``y_j = tanh(sum_k e_{j+k-⌊(w-1)/2⌋} W_k + b)``, the widths' features
      concatenated and max-pooled over the token's real characters;
    * ``mode="bilstm"`` (Ling et al. 2015; Lample et al. 2016): a bidirectional LSTM over
      ``e_1 .. e_L``; the final forward and backward states, concatenated.

    A token whose ids are all 0 (a padding token) gets the zero vector, and the output mask is
    ``any(ids != 0)`` over the characters: it equals the word embedding's mask, so a
    ``Concatenate`` of the two keeps the padding masked.

    Args:
        mode: ``"cnn"`` or ``"bilstm"``.
        buckets: Number of character ids besides padding (ids are in ``[0, buckets]``).
        char_dim: Size of a character embedding.
        units: Size of a token's vector: split as evenly as possible between the widths
            (``cnn``), half per direction (``bilstm``, so it must be even).
        widths: ``cnn``: convolution widths in characters. Default ``(2, 3)``.
        seed: Integer seed of the initializers, or ``None``.
        **kwargs: Passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: int ids ``(batch, timesteps, chars)``.

    Returns:
        ``(batch, timesteps, units)``, with the token mask ``(batch, timesteps)``.

    Example:

    ```python
    encoder = CharacterEncoder("cnn", buckets=8192, char_dim=16, units=32)
    vectors = encoder(char_ids)  # (batch, timesteps, 32)
    ```
    """

    def __init__(self, mode: str = "cnn", buckets: int = 8192, char_dim: int = 32, units: int = 64,
                 widths: Any = (2, 3), seed: int | None = None, **kwargs: Any) -> None:
        if mode not in MODES:
            raise ValueError(f"Argument `mode` must be one of {MODES}; received mode={mode!r}.")
        buckets = check_positive_integer("buckets", buckets)
        char_dim = check_positive_integer("char_dim", char_dim)
        units = check_positive_integer("units", units)
        widths = tuple(check_positive_integer("widths", width) for width in widths)
        seed = check_seed(seed)
        if mode == "cnn" and not 1 <= len(widths) <= units:
            raise ValueError(f"Argument `units` must be at least the number of widths {widths}; "
                             f"received units={units}.")
        if mode == "bilstm" and units % 2:
            raise ValueError(f"Argument `units` must be even for mode='bilstm' (half per direction); "
                             f"received units={units}.")
        super().__init__(**kwargs)
        self.mode, self.buckets, self.char_dim, self.units, self.widths, self.seed = (
            mode, buckets, char_dim, units, widths, seed)

        def initializer(kind: str, offset: int) -> Any:
            return keras.initializers.get({"class_name": kind,
                                           "config": {"seed": None if seed is None else seed + offset}})

        self.char_embedding = keras.layers.Embedding(buckets + 1, char_dim, name="char_embedding",
                                                     embeddings_initializer=initializer("RandomUniform", 0))
        self.convolutions, self.recurrent = [], None
        if mode == "cnn":
            filters = [units // len(widths) + (i < units % len(widths)) for i in range(len(widths))]
            self.convolutions = [
                keras.layers.Conv1D(count, width, padding="same", activation="tanh", name=f"char_conv_{width}",
                                    kernel_initializer=initializer("GlorotUniform", 1 + i))
                for i, (count, width) in enumerate(zip(filters, widths))]
            self.char_pooling = MaskedGlobalPooling("max", name="char_max")
        else:
            self.recurrent = keras.layers.Bidirectional(
                keras.layers.LSTM(units // 2, kernel_initializer=initializer("GlorotUniform", 1),
                                  recurrent_initializer=initializer("Orthogonal", 2), seed=seed),
                name="char_bilstm")

    def build(self, input_shape: Any) -> None:
        chars = input_shape[-1]
        self.char_embedding.build((None, chars))
        for convolution in self.convolutions:
            convolution.build((None, chars, self.char_dim))
        if self.recurrent is not None:
            self.recurrent.build((None, chars, self.char_dim))
        self.built = True

    def call(self, inputs: Any) -> Any:
        ids = ops.cast(inputs, "int32")
        shape = ops.shape(ids)
        flat = ops.reshape(ids, (-1, shape[-1]))  # (batch * timesteps, chars): one row per token
        char_mask = ops.not_equal(flat, 0)
        embedded = self.char_embedding(flat) * ops.expand_dims(ops.cast(char_mask, self.compute_dtype), -1)
        if self.mode == "cnn":
            features = ops.concatenate([convolution(embedded) for convolution in self.convolutions], axis=-1)
            vectors = self.char_pooling(features, mask=char_mask)
        else:
            # A padding token would be an empty sequence (which cuDNN refuses); let it read its first
            # (zero) position: its vector is replaced by 0 below.
            first = ops.expand_dims(ops.equal(ops.arange(ops.shape(flat)[1]), 0), 0)
            vectors = self.recurrent(embedded, mask=ops.logical_or(char_mask, first))
        has_chars = ops.any(char_mask, axis=-1, keepdims=True)
        vectors = ops.where(has_chars, vectors, ops.zeros_like(vectors))
        return ops.reshape(vectors, (shape[0], shape[1], self.units))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return ops.any(ops.not_equal(inputs, 0), axis=-1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode, "buckets": self.buckets, "char_dim": self.char_dim,
                "units": self.units, "widths": list(self.widths), "seed": self.seed}
