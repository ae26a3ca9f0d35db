"""Recurrent language models: the network and its loss.

A language model reads token ids ``(batch, timesteps)`` and predicts the next
token at every step, ``(batch, timesteps, vocabulary)`` probabilities, trained
with teacher forcing (the input at step t is the true token t, the target token
t+1); see :mod:`pipeline.language_model.train` for the two training regimes.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.models import embedding, kernel_initializer, recurrent_stack
from pipeline.sections import ModelConfig
from pipeline.text.vocab import BOS, EOS, PAD_ID, SENTENCE_MARKERS, Vocabulary

SPECIALS = SENTENCE_MARKERS
LABEL_DIM = 32  # size of the learned label vector for concat conditioning


@keras.saving.register_keras_serializable(package="pipeline")
class TiedEmbedding(keras.layers.Layer):
    """One matrix E ``(vocabulary, dim)`` used twice: ids -> vectors, and vectors -> logits ``h Eᵀ + b``.

    Weight tying (Press & Wolf 2017; Inan et al. 2017) halves the parameters of a
    word model and usually lowers perplexity. Called on int ids ``(batch, timesteps)``
    it embeds (and masks id 0); called on floats ``(batch, timesteps, dim)`` it
    returns logits ``(batch, timesteps, vocabulary)``.
    """

    def __init__(self, input_dim: int, output_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        if self.built:
            return
        self.embeddings = self.add_weight(shape=(self.input_dim, self.output_dim), name="embeddings",
                                          initializer="uniform")
        self.output_bias = self.add_weight(shape=(self.input_dim,), name="output_bias", initializer="zeros")

    def call(self, inputs: Any) -> Any:
        if len(inputs.shape) == 2:
            return keras.ops.take(self.embeddings, keras.ops.cast(inputs, "int32"), axis=0)
        return keras.ops.matmul(inputs, keras.ops.transpose(self.embeddings)) + self.output_bias

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return keras.ops.not_equal(inputs, PAD_ID) if len(inputs.shape) == 2 else mask

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape, self.output_dim) if len(input_shape) == 2 else (*input_shape[:-1], self.input_dim)

    def get_config(self) -> dict:
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim}


@keras.saving.register_keras_serializable(package="pipeline")
class ConcatLabel(keras.layers.Layer):
    """Append a label vector ``(batch, k)`` to every step of ``(batch, timesteps, d)``; keeps the mask."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: list) -> Any:
        sequence, label_vector = inputs
        steps = keras.ops.shape(sequence)[1]
        repeated = keras.ops.repeat(keras.ops.expand_dims(label_vector, 1), steps, axis=1)
        return keras.ops.concatenate([sequence, keras.ops.cast(repeated, sequence.dtype)], axis=-1)

    def compute_mask(self, inputs: list, mask: Any = None) -> Any:
        return None if mask is None else mask[0]

    def compute_output_shape(self, input_shapes: list) -> tuple:
        sequence, label = input_shapes
        return (*sequence[:-1], sequence[-1] + label[-1])


@keras.saving.register_keras_serializable(package="pipeline")
class TokenCrossEntropy(keras.losses.Loss):
    """Cross-entropy of next-token probabilities ``(batch, timesteps, vocabulary)``, padding excluded.

    ``sum_over_time=False``: the mean per predicted token. ``True``: summed over the
    time steps of a window and averaged over the batch, as in Zaremba et al.'s
    training code; with plain SGD its gradients are ``timesteps`` times larger, which
    is what their learning rate of 1.0 and clipping at 5 assume.
    """

    def __init__(self, pad_id: int | None = PAD_ID, sum_over_time: bool = False, name: str = "token_cross_entropy",
                 **kwargs: Any) -> None:
        # Per-token values, averaged by Keras; the padding mask that the embedding propagates to the
        # output makes Keras average over real tokens only.
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        self.pad_id, self.sum_over_time = pad_id, sum_over_time

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        y_true = ops.cast(y_true, "int32")
        per_token = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        if self.pad_id is not None:
            per_token = per_token * ops.cast(ops.not_equal(y_true, self.pad_id), per_token.dtype)
        if self.sum_over_time:
            # Keras averages over the real tokens; scaling by (real tokens / batch) turns that
            # average into the per-sentence sum averaged over the batch.
            real = ops.sum(ops.cast(ops.not_equal(y_true, -1 if self.pad_id is None else self.pad_id), per_token.dtype))
            per_token = per_token * real / ops.cast(ops.shape(per_token)[0], per_token.dtype)
        return per_token

    def get_config(self) -> dict:
        return {"name": self.name, "pad_id": self.pad_id, "sum_over_time": self.sum_over_time}


@keras.saving.register_keras_serializable(package="pipeline")
class TargetNegativeLogLikelihood(keras.losses.Loss):
    """The loss of a model whose output is already ``log p(target)`` ``(batch, timesteps)``.

    The same quantity as :class:`TokenCrossEntropy` (mean per real token, or with
    ``sum_over_time`` the per-window sum averaged over the batch), for the adaptive
    softmax's training model, which never builds the full distribution. Targets equal to
    ``pad_id`` are excluded exactly: each real token weighs ``1 / real tokens`` of the batch.
    """

    def __init__(self, pad_id: int | None = PAD_ID, sum_over_time: bool = False,
                 name: str = "target_negative_log_likelihood", **kwargs: Any) -> None:
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kwargs)
        self.pad_id, self.sum_over_time = pad_id, sum_over_time

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        y_true = ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred))
        negative = -ops.cast(y_pred, "float32")
        real = ops.ones_like(negative) if self.pad_id is None else ops.cast(ops.not_equal(y_true, self.pad_id),
                                                                              "float32")
        denominator = ops.cast(ops.shape(negative)[0], "float32") if self.sum_over_time else \
            ops.maximum(ops.sum(real), 1.0)
        return negative * real / denominator

    def get_config(self) -> dict:
        return {"name": self.name, "pad_id": self.pad_id, "sum_over_time": self.sum_over_time}


def check_generator(settings: ModelConfig, regime: str) -> None:
    for position, spec in enumerate(settings.layers):
        if str(spec.get("type", "")).startswith("bi"):
            raise PipelineError(f"config key 'model.layers[{position}].type' = {spec['type']!r}: a language model "
                                "reads left to right; use lstm, gru, simple_rnn or elman")
        if spec.get("type") == "jordan" and position == 0 and settings.conditioning == "initial_state":
            raise PipelineError("config key 'model.conditioning' = \"initial_state\": a jordan layer has no recurrent "
                                "state to start from a label; use \"concat\"")
    if regime == "tbptt" and settings.conditioning != "none":
        raise PipelineError("config key 'model.conditioning' must be \"none\" with train.regime = \"tbptt\" "
                            "(a stream has no per-sentence label)")


def build_generator(settings: ModelConfig, embedding_matrix: np.ndarray, seed: int, num_labels: int = 0,
                    stateful: bool = False, batch_size: int | None = None, name: str = "generator") -> keras.Model:
    """Token ids ``(batch, timesteps)`` [+ label ids ``(batch,)``] -> next-token probabilities."""
    return build_generator_pair(settings, embedding_matrix, seed, num_labels, stateful, batch_size, name)[0]


def build_generator_pair(settings: ModelConfig, embedding_matrix: np.ndarray, seed: int, num_labels: int = 0,
                         stateful: bool = False, batch_size: int | None = None,
                         name: str = "generator") -> tuple[keras.Model, keras.Model]:
    """The language model twice over the same layers: ``(inference, training)``.

    ``inference``: token ids ``(batch, timesteps)`` [+ label ids ``(batch,)``] -> next-token
    probabilities ``(batch, timesteps, vocabulary)``; it is what a run folder saves and what
    perplexity and sampling use. ``training`` is the same model for the full softmax; for the
    adaptive softmax it takes the target ids ``(batch, timesteps)`` as one more input and
    returns ``log p(target)`` ``(batch, timesteps)`` without building the whole distribution
    (train it with :class:`TargetNegativeLogLikelihood`).

    The AWD-LSTM regularisers of ``settings`` (embedding, input, hidden and output dropout, AR/TAR)
    act in training only, so both models compute the same function at inference.
    """
    if any((settings.embedding_dropout, settings.input_dropout, settings.hidden_dropout, settings.output_dropout,
            settings.activation_regularization, settings.temporal_activation_regularization)):
        from pipeline.layers.regularization import ActivationRegularization, EmbeddingDropout, LockedDropout
    vocabulary_size, dimension = embedding_matrix.shape
    token_ids = keras.Input(shape=(None,), batch_size=batch_size, dtype="int32", name="token_ids")
    inputs = [token_ids]
    adaptive = None
    if settings.output == "adaptive":
        from pipeline.layers.adaptive_softmax import AdaptiveSoftmax, default_cutoffs

        cutoffs = [c for c in (settings.cutoffs or default_cutoffs(vocabulary_size)) if c < vocabulary_size]
        # tied: the same layer embeds the ids and scores the words from their embedding rows
        adaptive = AdaptiveSoftmax(vocabulary_size, cutoffs, projection_factor=settings.projection_factor,
                                   kernel_initializer=kernel_initializer(settings, seed + 52),
                                   tie_weights=settings.tie_weights, embedding_dim=dimension,
                                   name="embedding" if settings.tie_weights else "adaptive_softmax")
    if settings.tie_weights:
        embed = adaptive or TiedEmbedding(vocabulary_size, dimension, trainable=settings.trainable_embeddings,
                                          name="embedding")
    else:
        embed = embedding(vocabulary_size, dimension, settings.trainable_embeddings)
    x = embed(token_ids)
    if settings.embedding_dropout:
        x = EmbeddingDropout(settings.embedding_dropout, vocabulary_size=vocabulary_size, seed=seed + 60,
                             name="embedding_dropout")([x, token_ids])
    if settings.input_dropout:
        x = LockedDropout(settings.input_dropout, seed=seed + 61, name="input_dropout")(x)
    initial_state = None
    if settings.conditioning != "none":
        label_ids = keras.Input(shape=(), batch_size=batch_size, dtype="int32", name="label_ids")
        inputs.append(label_ids)
        if settings.conditioning == "concat":
            label_vector = keras.layers.Embedding(num_labels, LABEL_DIM, name="label_embedding")(label_ids)
            x = ConcatLabel(name="concat_label")([x, label_vector])
        else:
            def initial_state(layer: keras.layers.Layer) -> list:
                sizes = layer.cell.state_size if isinstance(layer.cell.state_size, (list, tuple)) \
                    else [layer.cell.state_size]
                return [keras.layers.Embedding(num_labels, int(size), name=f"label_state_{i}")(label_ids)
                        for i, size in enumerate(sizes)]
    between = None
    if settings.hidden_dropout:
        def between(position: int) -> keras.layers.Layer:
            return LockedDropout(settings.hidden_dropout, seed=seed + 70 + position, name=f"hidden_dropout_{position}")
    x = recurrent_stack(x, settings, seed, last_returns_sequences=True, stateful=stateful,
                        initial_state=initial_state, between=between)
    if settings.temporal_activation_regularization:  # TAR on the undropped output
        x = ActivationRegularization(beta=settings.temporal_activation_regularization, name="tar")(x)
    if settings.output_dropout:
        x = LockedDropout(settings.output_dropout, seed=seed + 62, name="output_dropout")(x)
    if settings.activation_regularization:  # AR on the dropped output
        x = ActivationRegularization(alpha=settings.activation_regularization, name="ar")(x)
    training_inputs, training_outputs = None, None
    if settings.tie_weights and x.shape[-1] != dimension:  # the last layer's size must be the embedding's
        x = keras.layers.Dense(dimension, name="projection", kernel_initializer=kernel_initializer(settings, seed))(x)
    if settings.tie_weights and adaptive is None:
        outputs = keras.layers.Activation("softmax", name="probabilities", dtype="float32")(embed(x))
    elif adaptive is not None:
        outputs = keras.layers.Activation("exponential", name="probabilities", dtype="float32")(adaptive(x))
        target_ids = keras.Input(shape=(None,), batch_size=batch_size, dtype="int32", name="target_ids")
        training_inputs, training_outputs = [*inputs, target_ids], adaptive([x, target_ids])
    elif keras.config.dtype_policy().compute_dtype != "float32":  # low-precision logits, float32 softmax
        logits = keras.layers.Dense(vocabulary_size, name="logits",
                                    kernel_initializer=kernel_initializer(settings, seed + 52))(x)
        outputs = keras.layers.Activation("softmax", name="probabilities", dtype="float32")(logits)
    else:
        outputs = keras.layers.Dense(vocabulary_size, activation="softmax", name="probabilities",
                                     kernel_initializer=kernel_initializer(settings, seed + 52))(x)
    model = keras.Model(inputs if len(inputs) > 1 else token_ids, outputs, name=name)
    model.get_layer("embedding").embeddings.assign(embedding_matrix)
    training = model if training_inputs is None else keras.Model(training_inputs, training_outputs,
                                                                  name="generator_training")
    return model, training


def build_ensemble(members: list[keras.Model]) -> keras.Model:
    """One language model whose next-token distribution is the mean of ``members``' (``model.members``).

    Each member maps token ids ``(batch, timesteps)`` [+ label ids ``(batch,)``] to probabilities
    ``(batch, timesteps, vocabulary)`` and has a name of its own (``member_0``, ...); the ensemble
    takes the same inputs and gives ``(1/M) sum_m p_m(w | context)``, a distribution again, so
    perplexity, sampling and export read it as they read one model. Averaging probabilities (not
    logits) is the mixture whose likelihood a perplexity measures.
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    inputs = [token_ids]
    if len(members[0].inputs) > 1:  # conditioned on a label
        inputs.append(keras.Input(shape=(), dtype="int32", name="label_ids"))
    feed = inputs if len(inputs) > 1 else token_ids
    outputs = keras.layers.Average(name="probabilities", dtype="float32")([member(feed) for member in members])
    return keras.Model(feed, outputs, name="generator")


def start_id(config: Config, vocab: Vocabulary) -> int:
    """The token a sentence starts after: ``<s>``, or ``</s>`` for stream-trained (tbptt) models."""
    return vocab.index[EOS if config.train.regime == "tbptt" else BOS]
