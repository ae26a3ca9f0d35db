"""The classifier's subword parts: character vectors per token and the wide n-gram head.

Both are off by default (``model.char_encoder = "none"``, ``model.ngram_features = "none"``); then
the classifier has its single ``token_ids`` input, exactly as before. When on, each adds a named
input that :func:`pipeline.text.features.sentence_inputs` fills:

* ``char_ids`` ``(batch, timesteps, max_chars)`` -> :class:`CharacterEncoder`
  ``(batch, timesteps, char_units)``, concatenated with the word vectors before the recurrent
  stack (Ling et al. 2015; Lample et al. 2016); the token mask is kept;
* ``ngram_ids`` ``(batch, n)`` -> embedding ``(batch, n, ngram_dim)`` -> masked mean
  ``(batch, ngram_dim)`` (fastText, Joulin et al. 2017), concatenated with the recurrent sentence
  vector before the softmax: a wide-and-deep model (Cheng et al. 2016) trained jointly.
"""

from __future__ import annotations

from typing import Any

import keras

from pipeline.layers.char_encoder import CharacterEncoder
from pipeline.layers.pooling import MaskedGlobalPooling
from pipeline.sections import ModelConfig


def with_char_vectors(word_vectors: Any, inputs: dict, settings: ModelConfig, seed: int) -> Any:
    """``word_vectors`` ``(batch, timesteps, dim)`` with each token's character vector appended.

    Adds the ``char_ids`` input to ``inputs``; returns ``word_vectors`` unchanged when
    ``model.char_encoder = "none"``. The word features come first, so a pretrained recurrent
    layer's input kernel fits the leading rows of the wider one.
    """
    if settings.char_encoder == "none":
        return word_vectors
    char_ids = keras.Input(shape=(None, settings.max_chars), dtype="int32", name="char_ids")
    inputs["char_ids"] = char_ids
    char_vectors = CharacterEncoder(settings.char_encoder, settings.char_buckets, settings.char_dim,
                                    settings.char_units, seed=seed + 60, name="char_encoder")(char_ids)
    return keras.layers.Concatenate(name="word_and_char_vectors")([word_vectors, char_vectors])


def with_ngram_vector(sentence_vector: Any, inputs: dict, settings: ModelConfig, seed: int) -> Any:
    """``sentence_vector`` ``(batch, features)`` with the mean n-gram embedding ``(batch, ngram_dim)`` appended.

    Adds the ``ngram_ids`` input to ``inputs``; returns ``sentence_vector`` unchanged when
    ``model.ngram_features = "none"``. The n-gram embedding starts uniform in ±1/ngram_dim, as
    fastText's input matrix.
    """
    if settings.ngram_features == "none":
        return sentence_vector
    ngram_ids = keras.Input(shape=(None,), dtype="int32", name="ngram_ids")
    inputs["ngram_ids"] = ngram_ids
    scale = 1.0 / settings.ngram_dim
    embedded = keras.layers.Embedding(
        settings.ngram_buckets + 1, settings.ngram_dim, mask_zero=True, name="ngram_embedding",
        embeddings_initializer=keras.initializers.RandomUniform(-scale, scale, seed=seed + 70))(ngram_ids)
    bag = MaskedGlobalPooling("mean", name="ngram_mean")(embedded)
    if settings.ngram_dropout:
        bag = keras.layers.Dropout(settings.ngram_dropout, seed=seed + 71, name="ngram_dropout")(bag)
    return keras.layers.Concatenate(name="wide_and_deep")([sentence_vector, bag])
