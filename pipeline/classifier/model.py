"""The classifier network.

Token ids ``(batch, timesteps)`` -> embedding with masking ``(batch, timesteps, dim)``
-> [whole-word dropout in training] -> recurrent stack (``return_sequences`` on all but the last, or on all when
pooling over time) -> pooling ``(batch, units)`` (last state, masked mean/max, or
attention; or several of mean, max and attention concatenated, ``(batch, k * units)``) -> optional dense layer ->
softmax ``(batch, classes)``. Optional subword inputs (:mod:`pipeline.classifier.subword`):
character vectors beside the word vectors, a hashed n-gram bag beside the sentence vector.
"""

from __future__ import annotations

import keras
import numpy as np

from pipeline.classifier.subword import with_char_vectors, with_ngram_vector
from pipeline.layers.attention import AttentionPooling
from pipeline.layers.pooling import MaskedGlobalPooling
from pipeline.layers.regularization import EmbeddingDropout
from pipeline.models import embedding, kernel_initializer, recurrent_stack, set_embedding_matrix
from pipeline.sections import ModelConfig


def build_classifier(settings: ModelConfig, embedding_matrix: np.ndarray, num_classes: int,
                     seed: int, trainable_ids: np.ndarray | None = None) -> keras.Model:
    """Embedding -> recurrent stack -> pooling -> [dense] -> softmax over ``num_classes``.

    The embedding starts from ``embedding_matrix`` ``(vocabulary, dim)``; it is
    set after building rather than passed as an initializer, so the saved
    config stays small. ``trainable_ids``: the rows the training data reaches (sorted ids); the others
    (``vectorize.vector_words``' words no training sentence holds) never get a gradient, so they are kept
    out of the trainable weight (:func:`pipeline.models.embedding`).
    """
    vocabulary_size, dimension = embedding_matrix.shape
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    embed = embedding(vocabulary_size, dimension, settings.trainable_embeddings,
                      trainable_rows=None if trainable_ids is None else len(trainable_ids))
    inputs = {"token_ids": token_ids}  # + char_ids / ngram_ids when the subword features are on
    x = embed(token_ids)
    if settings.embedding_dropout:  # whole word types, each sentence its own mask (Gal & Ghahramani 2016)
        x = EmbeddingDropout(settings.embedding_dropout, vocabulary_size=vocabulary_size, per_sequence=True,
                             seed=seed + 60, name="embedding_dropout")([x, token_ids])
    x = with_char_vectors(x, inputs, settings, seed)
    pooled = settings.pooling != "last"
    x = recurrent_stack(x, settings, seed, last_returns_sequences=pooled)
    if pooled:
        x = pool(x, settings, seed)
    if settings.dense_units:
        x = keras.layers.Dense(settings.dense_units, activation="relu", name="dense",
                               kernel_initializer=kernel_initializer(settings, seed + 50))(x)
        if settings.dense_dropout:
            x = keras.layers.Dropout(settings.dense_dropout, seed=seed + 51, name="dense_dropout")(x)
    x = with_ngram_vector(x, inputs, settings, seed)
    if settings.readout == "ridge":
        x = keras.layers.Dense(num_classes, name="readout")(x)
        outputs = keras.layers.Activation("softmax", name="probabilities")(x)
    else:
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities",
                                     kernel_initializer=kernel_initializer(settings, seed + 52))(x)
    model = keras.Model(inputs if len(inputs) > 1 else token_ids, outputs, name="classifier")
    set_embedding_matrix(embed, embedding_matrix, trainable_ids)
    return model


def pool(sequence, settings: ModelConfig, seed: int):
    """``(batch, timesteps, units)`` -> ``(batch, units)`` by ``model.pooling`` (mean, max or attention over the
    unmasked steps), or ``(batch, k * units)``: the k poolings of a ``+``-joined ``model.pooling`` concatenated in
    its order (``"attention+mean+max"``; mean and max keep what the attention's one weighted sum loses, e.g. a
    feature strong at one word only). Only a model pooled by attention alone keeps ``alpha`` ``(batch, timesteps)``
    in the graph for ``pipeline classify --explain``; a combined one is explained by occlusion, since its
    attention weights are no longer the whole of its reading."""
    pooled = []
    for kind in settings.pooling.split("+"):
        if kind == "attention":
            alone = settings.pooling == "attention"
            layer = AttentionPooling(settings.attention_units, return_attention=alone, name="attention_pooling",
                                     kernel_initializer=kernel_initializer(settings, seed + 53),
                                     context_initializer=kernel_initializer(settings, seed + 54))
            pooled.append(layer(sequence)[0] if alone else layer(sequence))
        else:
            pooled.append(MaskedGlobalPooling(kind, name=f"{kind}_pooling")(sequence))
    return pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="pooled")(pooled)
