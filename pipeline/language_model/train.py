"""The ``train`` stage for language models: fit with full or truncated BPTT, save a run folder.

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

import keras
import numpy as np
import pandas as pd

from pipeline import seeds
from pipeline.config import Config
from pipeline.distribution import make_distribution
from pipeline.errors import PipelineError
from pipeline.language_model.data import (
    LanguageModelBatches,
    Perplexity,
    TargetsAsInput,
    TBPTTDataset,
    num_tbptt_batches,
    token_stream,
)
from pipeline.language_model.evaluate import reset_states, stream_perplexity
from pipeline.language_model.model import (
    EOS,
    TargetNegativeLogLikelihood,
    TokenCrossEntropy,
    build_generator,
    build_generator_pair,
    check_generator,
    start_id,
)
from pipeline.models import trainable_parameters
from pipeline.paths import Paths, RunPaths
from pipeline.resume import Resume, identity_of
from pipeline.runs import write_run_metadata
from pipeline.stages import settings_read
from pipeline.text.batches import sampled_rows, take_rows
from pipeline.text.encoded import RaggedIds
from pipeline.text.vectors import EncodedSplits
from pipeline.text.vocab import PAD_ID, Vocabulary
from pipeline.training import callbacks, dtype_policy, make_deterministic, make_optimizer, progress_verbosity

log = logging.getLogger(__name__)


class ResetStates(keras.callbacks.Callback):
    """Reset the state of stateful layers at the start of every epoch (the stream starts again)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        reset_states(self.model)


class StreamValidation(keras.callbacks.Callback):
    """Adds ``val_perplexity`` (and ``val_loss`` = its log) after each epoch of truncated-BPTT training."""

    def __init__(self, stream: np.ndarray, batch_size: int, bptt_steps: int,
                 scorer: keras.Model | None = None) -> None:
        super().__init__()
        self.stream, self.batch_size, self.bptt_steps = stream, batch_size, bptt_steps
        self.scorer = scorer  # the model that outputs probabilities (default: the model being fitted)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = stream_perplexity(self.scorer or self.model, self.stream, self.batch_size, self.bptt_steps)
        if logs is not None:
            logs["val_perplexity"], logs["val_loss"] = value, float(np.log(value))


def _check_stream(stream: np.ndarray, batch_size: int, bptt_steps: int, split: str) -> None:
    if num_tbptt_batches(len(stream), batch_size, bptt_steps) < 1:
        raise PipelineError(f"the {split} split has {len(stream)} tokens, fewer than train.batch_size x "
                            f"(train.bptt_steps + 1) = {batch_size * (bptt_steps + 1)}; lower them or add text")


def train_generator(config: Config, paths: Paths, train_splits: tuple[str, ...] = ("train",),
                    reverse: bool = False, embedding_matrix: np.ndarray | None = None) -> dict:
    """Fit the configured language model; write ``saved_models/<run>/`` with its stateless twin.

    ``train_splits``: the splits whose sentences it learns from (pretraining adds ``unlabeled``).
    ``reverse``: every sentence read right to left (a backward language model, ULMFiT's second one).
    ``embedding_matrix``: the embedding's start ``(vocabulary, dim)`` instead of ``paths.embeddings``.
    Built and trained under ``train.precision`` (the saved model keeps it; its outputs are float32).
    """
    with dtype_policy(config.train.precision):
        return _train_generator(config, paths, train_splits, reverse, embedding_matrix)


def _train_generator(config: Config, paths: Paths, train_splits: tuple[str, ...], reverse: bool = False,
                     embedding_matrix: np.ndarray | None = None) -> dict:
    settings, model_settings = config.train, config.model
    # train.distribute (pipeline.distribution): made before TensorFlow's first op; the model is built in its scope
    distribution = make_distribution(settings.distribute, settings.batch_size)
    make_deterministic(config.seed)
    check_generator(model_settings, settings.regime)
    splits = EncodedSplits.load(paths.ids)
    if reverse:  # w_n .. w_1: predicting the next token of a reversed sentence is predicting the previous one
        splits.sequences = {split: sequences.reversed() for split, sequences in splits.sequences.items()}
    train_sequences = RaggedIds.concatenate([splits.sequences[split] for split in train_splits
                                             if split in splits.sequences])
    train_targets = np.concatenate([splits.targets[split] for split in train_splits if split in splits.targets])
    vocab = Vocabulary.load(paths.vocab)
    matrix = np.load(paths.embeddings) if embedding_matrix is None else embedding_matrix
    model_seed = seeds.child_seed(config.seed, "model")
    conditioned = model_settings.conditioning != "none"
    num_labels = len(splits.labels)
    if conditioned and (num_labels < 2 or splits.labels == [""]):
        raise PipelineError(f"{config.corpus.path}: model.conditioning needs a labelled corpus; this one has no labels")
    eos = vocab.index[EOS]
    tbptt = settings.regime == "tbptt"
    # train.validation_rows: the epochs' validation reads a seeded sample of the sentences (the same every epoch)
    sample = sampled_rows(len(splits.sequences["validation"]), settings.validation_rows,
                          seeds.rng(config.seed, "validation_rows"))
    validation_sequences = take_rows(splits.sequences["validation"], sample)
    validation_labels = take_rows(splits.targets["validation"], sample)
    adaptive = model_settings.output == "adaptive"
    if tbptt:
        streams = {"train": token_stream(train_sequences, eos),
                   "validation": token_stream(validation_sequences, eos)}
        _check_stream(streams["train"], settings.batch_size, settings.bptt_steps, "train")
        with distribution.scope():
            model, trainee = build_generator_pair(model_settings, matrix, model_seed, stateful=True,
                                                  batch_size=settings.batch_size)
        train_data = TBPTTDataset(streams["train"], settings.batch_size, settings.bptt_steps)
        validation_data = None
        first = [ResetStates()]
        if len(streams["validation"]):
            _check_stream(streams["validation"], settings.batch_size, settings.bptt_steps, "validation")
            first.append(StreamValidation(streams["validation"], settings.batch_size, settings.bptt_steps, model))
        tokens = len(streams["train"])
    else:
        with distribution.scope():
            model, trainee = build_generator_pair(model_settings, matrix, model_seed, num_labels if conditioned else 0)
        bos = start_id(config, vocab)
        # this worker's rows of each batch (pipeline.distribution); every batch on one worker
        train_data = distribution.share(LanguageModelBatches(train_sequences, train_targets, settings.batch_size,
                                                             settings.max_length, bos, eos,
                                                             seeds.rng(config.seed, "batches"), settings.bucketing,
                                                             conditioned, steps_per_epoch=settings.steps_per_epoch))
        validation_data = distribution.share(LanguageModelBatches(
            validation_sequences, validation_labels, settings.batch_size, settings.max_length,
            bos, eos, conditioned=conditioned)) if len(validation_sequences) else None
        first = []
        tokens = int(train_sequences.lengths().sum()) + len(train_sequences)
    if adaptive:  # the training twin reads the targets too and returns log p(target) only
        train_data = TargetsAsInput(train_data)
        validation_data = validation_data and TargetsAsInput(validation_data)
        loss = TargetNegativeLogLikelihood(None if tbptt else PAD_ID, settings.loss == "sum_over_time")
    else:
        loss = TokenCrossEntropy(None if tbptt else PAD_ID, settings.loss == "sum_over_time")
    has_validation = bool(first[1:]) if tbptt else validation_data is not None
    monitor = "val_perplexity" if has_validation else "perplexity"
    log.info("training %s language model (%s, %s softmax): %d parameters, %d training tokens", config.run_name,
             settings.regime, model_settings.output, trainable_parameters(model), tokens)
    with distribution.scope():
        trainee.compile(optimizer=make_optimizer(settings), loss=loss,
                        metrics=[Perplexity(pad_id=-1 if tbptt else PAD_ID, target_log_probabilities=adaptive)])
    # The best-epoch checkpoint is the inference model itself only when it is the model being fitted.
    checkpoint = not tbptt and trainee is model
    with distribution.output_folder(paths.run) as folder:  # a temporary folder on workers other than the chief
        # the state after each epoch (pipeline.resume), saved by the chief: a killed training continues
        resume = Resume(paths.resume, folder, identity_of(settings_read("train", config)), settings.epochs,
                        writes=distribution.is_chief)
        resume.fast_forward(train_data)
        data, feeding = distribution.feed(train_data, shuffle=False)
        with distribution.fitting(trainee):  # the strategy's scope (pipeline.distribution)
            fitted = trainee.fit(data, validation_data=distribution.feed_validation(validation_data),
                                 epochs=settings.epochs, shuffle=False,
                                 initial_epoch=resume.initial_epoch,
                                 callbacks=callbacks(settings, folder, monitor, checkpoint=checkpoint,
                                                     first=tuple(first), resume=resume) + feeding,
                                 verbose=progress_verbosity())
        if not checkpoint or settings.patience:
            twin = build_generator(model_settings, matrix, model_seed, num_labels if conditioned else 0)
            twin.set_weights(model.get_weights())
            twin.save(RunPaths(folder).model)
        write_run_metadata(folder, config, vocab, splits.labels)
    resume.finish()
    result = {"epochs": len(pd.DataFrame(fitted.history)), "parameters": trainable_parameters(model)}
    if feeding:  # several workers: the training examples this one read, per epoch
        result["examples_read"] = feeding[0].examples_read
    if not distribution.is_chief:  # the chief writes the run folder and records the stage
        return {**result, "outputs_written": False}
    return result
