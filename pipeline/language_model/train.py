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

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from pipeline import io as artifact_io
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
    build_ensemble,
    build_generator,
    build_generator_pair,
    check_generator,
    start_id,
)
from pipeline.models import trainable_parameters
from pipeline.paths import Paths, RunPaths
from pipeline.resume import Resume, finished_trainings_folder, identity_of
from pipeline.runs import load_run, write_run_metadata
from pipeline.stages import settings_read
from pipeline.text.batches import sampled_rows, take_rows
from pipeline.text.encoded import RaggedIds
from pipeline.text.vectors import EncodedSplits
from pipeline.text.vocab import PAD_ID, Vocabulary
from pipeline.training import (
    TimeBudget,
    callbacks,
    dtype_policy,
    make_deterministic,
    make_optimizer,
    progress_verbosity,
)

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
        if config.model.members > 1:
            return _train_members(config, paths, train_splits, reverse, embedding_matrix)
        return _train_generator(config, paths, train_splits, reverse, embedding_matrix)


MEMBERS_FILE = "members.json"  # a run of several members: each one's seed, epochs and share of the time limit
SCRATCH = "members"  # work/<corpus>/members/<run>-<key>/: the members' run folders until the ensemble is written


def member_seed(seed: int, member: int) -> int:
    """The seed of member ``member`` of ``model.members``: the config's own for the first, so that one member is
    exactly the model without an ensemble, and one derived from it for each other."""
    return seed if member == 0 else seeds.child_seed(seed, f"member{member}")


def _train_members(config: Config, paths: Paths, train_splits: tuple[str, ...], reverse: bool,
                   embedding_matrix: np.ndarray | None, clock: Callable[[], float] = time.monotonic) -> dict:
    """``model.members`` language models of ``config``, each from :func:`member_seed` and trained as one model
    would be, then saved as one run whose distribution is their mean (:func:`build_ensemble`).

    They share ``train.time_limit_minutes`` (:class:`pipeline.training.TimeBudget`): each gets the time left
    divided by the members still to train, so one that stops early leaves its time to the next; a member for
    which less than the first one's epoch is left does not train, and the ensemble is of those before it. A member
    whose folder and record (``MEMBERS_FILE``) are written is not trained again, so a killed stage resumes at the
    member it was training (from that member's own saved epochs, :mod:`pipeline.resume`).
    """
    settings = config.train
    scratch = finished_trainings_folder(paths, SCRATCH, {"train": settings_read("train", config),
                                                         "splits": list(train_splits), "reverse": reverse})

    def folder_of(member: int) -> Path:  # named by the run: each member's resume state is its own
        return scratch / f"{paths.run.name}.member{member}"

    budget = TimeBudget(settings.time_limit_minutes, clock)
    count = config.model.members
    records, epoch_seconds = [], 0.0
    for member in range(count):
        folder = folder_of(member)
        record_path = folder / MEMBERS_FILE
        if record_path.is_file():  # complete: the record is written after the folder (itself written atomically)
            log.info("member %d of %d is already trained (%s)", member + 1, count, folder)
            records.append(artifact_io.read_json(record_path))
            continue
        if member and budget.left_seconds() <= epoch_seconds:
            log.warning("%.1f minutes of train.time_limit_minutes are left, less than an epoch of member 1 (%.1f); "
                        "the ensemble is of %d member(s), not %d (model.members)", budget.left_seconds() / 60,
                        epoch_seconds / 60, member, count)
            break
        minutes = budget.share(1, count - member - 1)
        own = dataclasses.replace(
            config, seed=member_seed(config.seed, member), model=dataclasses.replace(config.model, members=1),
            train=settings if minutes is None else dataclasses.replace(settings, time_limit_minutes=minutes))
        log.info("member %d of %d (seed %d)%s", member + 1, count, own.seed,
                 "" if minutes is None else f", at most {minutes:.1f} of train.time_limit_minutes")
        started = clock()
        result = _train_generator(own, Paths(work=paths.work, run=folder), train_splits, reverse, embedding_matrix)
        seconds = clock() - started
        if not member:
            epoch_seconds = seconds / max(1, result["epochs"])
        record = {"member": member, "seed": own.seed, "epochs": result["epochs"], "seconds": round(seconds, 1),
                  **({} if minutes is None else {"minutes": round(minutes, 2)})}
        artifact_io.write_json(record_path, record)  # the folder is complete: written last
        records.append(record)
    splits = EncodedSplits.load(paths.ids)
    vocab = Vocabulary.load(paths.vocab)
    matrix = np.load(paths.embeddings) if embedding_matrix is None else embedding_matrix
    num_labels = len(splits.labels) if config.model.conditioning != "none" else 0
    single = dataclasses.replace(config.model, members=1)
    members = []
    for record in records:
        trained = load_run(folder_of(record["member"])).model
        member = build_generator(single, matrix, seeds.child_seed(record["seed"], "model"), num_labels,
                                 name=f"member_{record['member']}")
        member.set_weights(trained.get_weights())
        members.append(member)
    histories = [pd.read_csv(RunPaths(folder_of(r["member"])).history).assign(member=r["member"]) for r in records]
    with artifact_io.atomic_directory(paths.run) as building:
        build_ensemble(members).save(RunPaths(building).model)
        write_run_metadata(building, config, vocab, splits.labels)
        pd.concat(histories, ignore_index=True).to_csv(RunPaths(building).history, index=False)
        artifact_io.write_json(building / MEMBERS_FILE, {
            "members": records, **({"time_limit_minutes": settings.time_limit_minutes}
                                   if settings.time_limit_minutes else {})})
    shutil.rmtree(scratch, ignore_errors=True)
    return {"epochs": sum(r["epochs"] for r in records), "members": len(records),
            "parameters": sum(trainable_parameters(member) for member in members)}


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
