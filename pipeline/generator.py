"""Recurrent language models: build, train (full or truncated BPTT), score by perplexity.

A generator reads token ids ``(batch, timesteps)`` and predicts the next token
at every step, ``(batch, timesteps, vocabulary)`` probabilities, trained with
teacher forcing (the input at step t is the true token t, the target token
t+1). Two regimes (``train.regime``):

* ``sentences``: every sentence ``<s> w1 .. wn </s>`` on its own, padded and
  masked; the gradient flows through the whole sentence (full BPTT).
* ``tbptt``: one token stream cut into ``batch_size`` tracks read
  ``bptt_steps`` tokens at a time by a stateful model whose state carries over
  from batch to batch and is reset at each epoch (Zaremba et al. 2014). The
  stream separates sentences by ``</s>`` only, which then also starts a sentence.

The saved ``model.keras`` is always the stateless twin (any batch size), so
``pipeline generate`` and the evaluation need no stream.
"""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.batches import SequenceBatches
from pipeline.config import Config, ModelConfig
from pipeline.errors import PipelineError
from pipeline.lm_data import Perplexity, TBPTTDataset, num_tbptt_batches, teacher_forcing_pairs, token_stream
from pipeline.models import embedding, kernel_initializer, recurrent_stack, trainable_parameters
from pipeline.paths import Paths, RunPaths
from pipeline.vectors import EncodedSplits
from pipeline.vocab import PAD_ID, Vocabulary

log = logging.getLogger(__name__)

BOS, EOS = "<s>", "</s>"
SPECIALS = (BOS, EOS)
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


def check_generator(settings: ModelConfig, regime: str) -> None:
    for position, spec in enumerate(settings.layers):
        if str(spec.get("type", "")).startswith("bi"):
            raise PipelineError(f"config key 'model.layers[{position}].type' = {spec['type']!r}: a language model "
                                "reads left to right; use lstm, gru, simple_rnn or elman")
    if regime == "tbptt" and settings.conditioning != "none":
        raise PipelineError("config key 'model.conditioning' must be \"none\" with train.regime = \"tbptt\" "
                            "(a stream has no per-sentence label)")


def build_generator(settings: ModelConfig, embedding_matrix: np.ndarray, seed: int, num_labels: int = 0,
                    stateful: bool = False, batch_size: int | None = None) -> keras.Model:
    """Token ids ``(batch, timesteps)`` [+ label ids ``(batch,)``] -> next-token probabilities."""
    vocabulary_size, dimension = embedding_matrix.shape
    token_ids = keras.Input(shape=(None,), batch_size=batch_size, dtype="int32", name="token_ids")
    inputs = [token_ids]
    embed = (TiedEmbedding(vocabulary_size, dimension, trainable=settings.trainable_embeddings, name="embedding")
             if settings.tie_weights else embedding(vocabulary_size, dimension, settings.trainable_embeddings))
    x = embed(token_ids)
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
    x = recurrent_stack(x, settings, seed, last_returns_sequences=True, stateful=stateful,
                        initial_state=initial_state)
    if settings.tie_weights:
        if x.shape[-1] != dimension:
            x = keras.layers.Dense(dimension, name="projection", kernel_initializer=kernel_initializer(settings, seed))(x)
        outputs = keras.layers.Activation("softmax", name="probabilities")(embed(x))
    else:
        outputs = keras.layers.Dense(vocabulary_size, activation="softmax", name="probabilities",
                                     kernel_initializer=kernel_initializer(settings, seed + 52))(x)
    model = keras.Model(inputs if len(inputs) > 1 else token_ids, outputs, name="generator")
    model.get_layer("embedding").set_weights(
        [embedding_matrix] + ([np.zeros(vocabulary_size, np.float32)] if settings.tie_weights else []))
    return model


def start_id(config: Config, vocab: Vocabulary) -> int:
    """The token a sentence starts after: ``<s>``, or ``</s>`` for stream-trained (tbptt) models."""
    return vocab.index[EOS if config.train.regime == "tbptt" else BOS]


class LanguageModelBatches(SequenceBatches):
    """Teacher-forcing batches ``(inputs, targets)`` or ``((inputs, label_ids), targets)``, bucketed by length."""

    def __init__(self, sequences, label_ids, batch_size: int, max_length: int, bos_id: int, eos_id: int,
                 rng: np.random.Generator | None = None, bucketing: bool = True, conditioned: bool = False) -> None:
        super().__init__(sequences, label_ids, batch_size, max_length + 1, rng, bucketing)
        self.bos_id, self.eos_id, self.conditioned = bos_id, eos_id, conditioned
        self.timesteps = max_length

    def __getitem__(self, index: int) -> tuple:
        rows = self.batches[index]
        longest = min(self.timesteps, int(self.lengths[rows].max()) + 1)
        inputs, targets = teacher_forcing_pairs([self.sequences[r] for r in rows], self.bos_id, self.eos_id,
                                                PAD_ID, max_length=longest)
        if self.conditioned:
            return (inputs, self.targets[rows]), targets
        return inputs, targets


class ResetStates(keras.callbacks.Callback):
    """Reset the state of stateful layers at the start of every epoch (the stream starts again)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        reset_states(self.model)


def reset_states(model: keras.Model) -> None:
    for layer in model.layers:
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_state"):
            layer.reset_state()


def stream_perplexity(model: keras.Model, stream: np.ndarray, batch_size: int, bptt_steps: int) -> float:
    """Perplexity of a stateful model over a stream, state carried across windows, then reset."""
    metric = Perplexity(pad_id=-1)
    reset_states(model)
    for inputs, targets in TBPTTDataset(stream, batch_size, bptt_steps):
        metric.update_state(targets, model(inputs, training=False))
    reset_states(model)
    return float(metric.result())


class StreamValidation(keras.callbacks.Callback):
    """Adds ``val_perplexity`` (and ``val_loss`` = its log) after each epoch of truncated-BPTT training."""

    def __init__(self, stream: np.ndarray, batch_size: int, bptt_steps: int) -> None:
        super().__init__()
        self.stream, self.batch_size, self.bptt_steps = stream, batch_size, bptt_steps

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = stream_perplexity(self.model, self.stream, self.batch_size, self.bptt_steps)
        if logs is not None:
            logs["val_perplexity"], logs["val_loss"] = value, float(np.log(value))


def _check_stream(stream: np.ndarray, batch_size: int, bptt_steps: int, split: str) -> None:
    if num_tbptt_batches(len(stream), batch_size, bptt_steps) < 1:
        raise PipelineError(f"the {split} split has {len(stream)} tokens, fewer than train.batch_size x "
                            f"(train.bptt_steps + 1) = {batch_size * (bptt_steps + 1)}; lower them or add text")


def train_generator(config: Config, paths: Paths) -> dict:
    """Fit the configured language model; write ``saved_models/<run>/`` with its stateless twin."""
    from pipeline.train import callbacks, make_deterministic, make_optimizer, progress_verbosity, write_run_metadata

    make_deterministic(config.seed)
    settings, model_settings = config.train, config.model
    check_generator(model_settings, settings.regime)
    splits = EncodedSplits.load(paths.ids)
    vocab = Vocabulary.load(paths.vocab)
    matrix = np.load(paths.embeddings)
    model_seed = seeds.child_seed(config.seed, "model")
    conditioned = model_settings.conditioning != "none"
    num_labels = len(splits.labels)
    if conditioned and (num_labels < 2 or splits.labels == [""]):
        raise PipelineError(f"{config.corpus.path}: model.conditioning needs a labelled corpus; this one has no labels")
    eos = vocab.index[EOS]
    tbptt = settings.regime == "tbptt"
    if tbptt:
        streams = {s: token_stream(splits.sequences[s], eos) for s in ("train", "validation")}
        _check_stream(streams["train"], settings.batch_size, settings.bptt_steps, "train")
        model = build_generator(model_settings, matrix, model_seed, stateful=True, batch_size=settings.batch_size)
        train_data = TBPTTDataset(streams["train"], settings.batch_size, settings.bptt_steps)
        validation_data = None
        first = [ResetStates()]
        if len(streams["validation"]):
            _check_stream(streams["validation"], settings.batch_size, settings.bptt_steps, "validation")
            first.append(StreamValidation(streams["validation"], settings.batch_size, settings.bptt_steps))
        tokens = len(streams["train"])
    else:
        model = build_generator(model_settings, matrix, model_seed, num_labels if conditioned else 0)
        bos = start_id(config, vocab)
        train_data = LanguageModelBatches(splits.sequences["train"], splits.targets["train"], settings.batch_size,
                                          settings.max_length, bos, eos, seeds.rng(config.seed, "batches"),
                                          settings.bucketing, conditioned)
        validation_data = LanguageModelBatches(splits.sequences["validation"], splits.targets["validation"],
                                               settings.batch_size, settings.max_length, bos, eos,
                                               conditioned=conditioned) if splits.sequences["validation"] else None
        first = []
        tokens = int(sum(len(s) + 1 for s in splits.sequences["train"]))
    has_validation = bool(first[1:]) if tbptt else validation_data is not None
    monitor = "val_perplexity" if has_validation else "perplexity"
    log.info("training %s language model (%s): %d parameters, %d training tokens", config.run_name,
             settings.regime, trainable_parameters(model), tokens)
    model.compile(optimizer=make_optimizer(settings),
                  loss=TokenCrossEntropy(None if tbptt else PAD_ID, settings.loss == "sum_over_time"),
                  metrics=[Perplexity(pad_id=-1 if tbptt else PAD_ID)])
    with artifact_io.atomic_directory(paths.run) as folder:
        fitted = model.fit(train_data, validation_data=validation_data, epochs=settings.epochs, shuffle=False,
                           callbacks=callbacks(settings, folder, monitor, checkpoint=not tbptt, first=tuple(first)),
                           verbose=progress_verbosity())
        if tbptt or settings.patience:
            twin = build_generator(model_settings, matrix, model_seed, num_labels if conditioned else 0)
            twin.set_weights(model.get_weights())
            twin.save(RunPaths(folder).model)
        write_run_metadata(folder, config, vocab, splits.labels)
    return {"epochs": len(pd.DataFrame(fitted.history)), "parameters": trainable_parameters(model)}


def sentence_perplexity(model: keras.Model, sequences: list, label_ids: np.ndarray | None, bos_id: int,
                        eos_id: int, max_length: int, batch_size: int = 64) -> float:
    """exp(mean cross-entropy per predicted token) over whole sentences, ``</s>`` included, padding excluded."""
    metric = Perplexity(pad_id=PAD_ID)
    conditioned = len(model.inputs) > 1
    batches = LanguageModelBatches(sequences, label_ids, batch_size, max_length, bos_id, eos_id,
                                   conditioned=conditioned)
    for index in range(len(batches)):
        inputs, targets = batches[index]
        metric.update_state(targets, model(inputs, training=False))
    return float(metric.result())


def evaluate_generator(config: Config, paths: Paths) -> dict:
    """Perplexity on train/validation/test sentences beside an interpolated Kneser-Ney trigram model."""
    from pipeline.classify import load_run
    from pipeline.evaluate import plot_history
    from pipeline.ngram import KneserNeyTrigramModel

    run = load_run(paths.run)
    splits = EncodedSplits.load(paths.ids)
    vocab = run.vocab
    bos, eos = start_id(config, vocab), vocab.index[EOS]
    metrics: dict = {"perplexity": {}, "tokens": {}}
    for split in ("train", "validation", "test"):
        if len(splits.sequences[split]):
            metrics["perplexity"][split] = sentence_perplexity(
                run.model, splits.sequences[split], splits.targets[split], bos, eos, config.train.max_length)
            metrics["tokens"][split] = int(sum(min(len(s) + 1, config.train.max_length)
                                               for s in splits.sequences[split]))
    if config.train.regime == "tbptt":
        stream = token_stream(splits.sequences["test"], eos)
        if num_tbptt_batches(len(stream), config.train.batch_size, config.train.bptt_steps) >= 1:
            shape_only = np.zeros_like(run.model.get_layer("embedding").get_weights()[0])
            stateful = build_generator(config.model, shape_only, 0, stateful=True, batch_size=config.train.batch_size)
            stateful.set_weights(run.model.get_weights())
            metrics["stream_perplexity_test"] = stream_perplexity(stateful, stream, config.train.batch_size,
                                                                  config.train.bptt_steps)
    cut = config.train.max_length - 1  # the neural model scores at most max_length tokens per sentence
    trigram = KneserNeyTrigramModel(bos_token=vocab.index[BOS], eos_token=eos, unk_token=1, pad_token=PAD_ID)
    trigram.fit([list(s[:cut]) for s in splits.sequences["train"]], vocabulary=range(2, len(vocab)))
    if len(splits.sequences["test"]):
        metrics["baselines"] = {"kneser_ney_trigram": {
            "perplexity": trigram.perplexity([list(s[:cut]) for s in splits.sequences["test"]])}}
    history_path = RunPaths(paths.run).history
    if history_path.is_file():
        run_paths = RunPaths(paths.run)
        run_paths.plots.mkdir(exist_ok=True)
        plot_history(pd.read_csv(history_path), run_paths.plots / "training_curves.png")
    artifact_io.write_json(RunPaths(paths.run).metrics, metrics)
    return metrics


def summary(metrics: dict) -> str:
    lines = ["perplexity " + "  ".join(f"{split} {value:.1f}" for split, value in metrics["perplexity"].items())]
    if "stream_perplexity_test" in metrics:
        lines.append(f"  test stream perplexity (state carried across sentences): {metrics['stream_perplexity_test']:.1f}")
    if "baselines" in metrics:
        lines.append(f"  Kneser-Ney trigram baseline: test perplexity "
                     f"{metrics['baselines']['kneser_ney_trigram']['perplexity']:.1f}")
    return "\n".join(lines)
