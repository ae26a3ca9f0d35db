"""The classifier network.

Token ids ``(batch, timesteps)`` -> embedding with masking ``(batch, timesteps, dim)``
-> recurrent stack (``return_sequences`` on all but the last, or on all when
pooling over time) -> pooling ``(batch, units)`` -> optional dense layer ->
softmax ``(batch, classes)``.
"""

from __future__ import annotations

import keras
import numpy as np

from pipeline.layers.pooling import MaskedGlobalPooling
from pipeline.models import embedding, kernel_initializer, recurrent_stack
from pipeline.sections import ModelConfig


def build_classifier(settings: ModelConfig, embedding_matrix: np.ndarray, num_classes: int,
                     seed: int) -> keras.Model:
    """Embedding -> recurrent stack -> pooling -> [dense] -> softmax over ``num_classes``.

    The embedding starts from ``embedding_matrix`` ``(vocabulary, dim)``; it is
    set after building rather than passed as an initializer, so the saved
    config stays small.
    """
    vocabulary_size, dimension = embedding_matrix.shape
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    embed = embedding(vocabulary_size, dimension, settings.trainable_embeddings)
    x = embed(token_ids)
    pooled = settings.pooling != "last"
    x = recurrent_stack(x, settings, seed, last_returns_sequences=pooled)
    if pooled:
        x = MaskedGlobalPooling(settings.pooling, name=f"{settings.pooling}_pooling")(x)
    if settings.dense_units:
        x = keras.layers.Dense(settings.dense_units, activation="relu", name="dense",
                               kernel_initializer=kernel_initializer(settings, seed + 50))(x)
        if settings.dense_dropout:
            x = keras.layers.Dropout(settings.dense_dropout, seed=seed + 51, name="dense_dropout")(x)
    if settings.readout == "ridge":
        x = keras.layers.Dense(num_classes, name="readout")(x)
        outputs = keras.layers.Activation("softmax", name="probabilities")(x)
    else:
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities",
                                     kernel_initializer=kernel_initializer(settings, seed + 52))(x)
    model = keras.Model(token_ids, outputs, name="classifier")
    embed.set_weights([embedding_matrix])
    return model
