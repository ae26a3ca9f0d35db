"""The ``train`` stage for classifiers: build from the registry, fit, save a run folder.

Training uses early stopping on the validation loss (restoring the best
weights), best-model checkpointing, optional class weights, gradient clipping
by global norm or by value, a per-epoch history CSV and TensorBoard logs. The
run folder ``saved_models/<run>/`` is built in a temporary folder and renamed
into place only when complete. Optional ULMFiT-style fine-tuning
(:mod:`pipeline.classifier.finetune`): rates per layer group, frozen and gradually
unfrozen groups, a slanted triangular or one-cycle schedule per batch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.adversarial import adversarial_training
from pipeline.classifier.distill import DISTILLATION_FILE, distillation_targets
from pipeline.classifier.finetune import fine_tuning_rates
from pipeline.classifier.model import build_classifier
from pipeline.config import Config
from pipeline.distribution import make_distribution
from pipeline.errors import PipelineError
from pipeline.layers.embedding import PartlyFrozenEmbedding
from pipeline.models import embedding_matrix_of, trainable_parameters
from pipeline.paths import Paths, RunPaths
from pipeline.resume import Resume, identity_of
from pipeline.runs import write_run_metadata
from pipeline.stages import folder_of, settings_read
from pipeline.text.batches import (
    SequenceBatches,
    balanced_class_weights,
    chain_rows,
    inputs_at,
    rows_up_to,
    sampled_rows,
    take_rows,
)
from pipeline.text.corpora import UNLABELED
from pipeline.text.features import split_inputs
from pipeline.text.vectors import EncodedSplits
from pipeline.text.vocab import Vocabulary
from pipeline.training import (
    GroupRateSchedule,
    TimeLimit,
    callbacks,
    learning_rate_schedule,
    make_deterministic,
    make_optimizer,
    progress_verbosity,
)

log = logging.getLogger(__name__)


def fit_ridge(model: keras.Model, batches: SequenceBatches, ridge: float, num_classes: int) -> None:
    """Closed-form readout: fit the ``readout`` Dense layer by ridge regression on one-hot targets (or the soft
    targets of ``train.distill``)."""
    from pipeline.layers.esn import fit_ridge_readout

    def one_hot_batches():
        for index in range(len(batches)):
            ids, targets = batches[index][:2]
            yield ids, targets if targets.ndim == 2 else np.eye(num_classes, dtype=np.float64)[targets]

    fit_ridge_readout(model, model.get_layer("readout"), one_hot_batches(), ridge)


BACKWARD = "backward"  # the backward language model's run folder inside the forward one's (the pretrain stage)


def start_from_pretrained(model: keras.Model, folder: Path) -> list[str]:
    """Copy the embedding and recurrent weights of the language model in run ``folder`` into ``model``.

    Layers are matched by name (``embedding``, ``recurrent_0``, ...); every matched layer must have
    the same weight shapes, which holds when the language model was pretrained on this config's
    encoder and vocabulary (the ``pretrain`` stage). A ``Bidirectional`` layer takes its
    ``forward_layer`` from the language model in ``folder`` and its ``backward_layer`` from the one
    that read the sentences reversed, in ``folder/backward/``.

    Input kernels may have more rows than the language model's (``(inputs, gates)`` against
    ``(its inputs, gates)``): with ``model.char_encoder`` the first recurrent layer reads the word
    vectors followed by the character vectors, so the language model's kernel fills the leading
    rows and the character rows keep their initial values; a layer above a bidirectional one reads
    ``[forward; backward]`` outputs, so each direction's kernel fills the rows of the half of the
    same direction and the other rows are zero (the stack starts as the two language models).
    Returns the names of the layers copied.
    """
    from pipeline.runs import load_run

    language_models = {"forward": load_run(folder).model}
    if (folder / BACKWARD).is_dir():
        language_models["backward"] = load_run(folder / BACKWARD).model
    names = {layer.name for layer in language_models["forward"].layers}
    copied = []
    for target in model.layers:
        if target.name not in names or (target.name != "embedding" and not target.name.startswith("recurrent_")):
            continue
        if not isinstance(target, keras.layers.Bidirectional):
            _copy_layer(language_models["forward"].get_layer(target.name), target, folder, "forward")
        elif "backward" not in language_models:
            raise PipelineError(f"{folder}: no backward language model ({BACKWARD}/) for the bidirectional layer "
                                f"{target.name!r}; run `pipeline pretrain --force`")
        else:
            for direction, half in (("forward", target.forward_layer), ("backward", target.backward_layer)):
                _copy_layer(language_models[direction].get_layer(target.name), half, folder, direction)
        copied.append(target.name)
    return copied


def start_from_run(model: keras.Model, folder: Path) -> None:
    """Set every weight of ``model`` to the trained one of the classifier run in ``folder``, which the same model
    settings built. Layers are matched by name; the embedding is copied as its whole ``(vocabulary, dimension)``
    matrix, since the rows that train may differ (``model`` may read more training sentences than that run did)."""
    from pipeline.runs import load_run

    source = load_run(folder).model
    layers = {layer.name: layer for layer in source.layers}
    for target in model.layers:
        if not target.weights:
            continue
        layer = layers.get(target.name)
        embedding = isinstance(target, PartlyFrozenEmbedding)
        weights = None if layer is None else embedding_matrix_of(layer) if embedding else layer.get_weights()
        fits = weights is not None and (
            weights.shape == (target.input_dim, target.output_dim) if embedding
            else [w.shape for w in weights] == [w.shape for w in target.get_weights()])
        if not fits:
            raise PipelineError(f"{folder}: its layer {target.name!r} does not fit this classifier's; the run "
                                "was trained with other model settings")
        if embedding:
            target.assign(weights)
        else:
            target.set_weights(weights)


def _copy_layer(source: keras.layers.Layer, target: keras.layers.Layer, folder: Path, direction: str) -> None:
    """``target.set_weights`` from ``source``'s, a smaller input kernel placed as :func:`start_from_pretrained` says."""
    if isinstance(target, PartlyFrozenEmbedding):  # the language model's embedding is one matrix
        matrix = embedding_matrix_of(source)
        if matrix.shape != (target.input_dim, target.output_dim):
            raise PipelineError(f"{folder}: the embedding of the pretrained {direction} language model does not "
                                "fit the classifier; run `pipeline pretrain --force`")
        target.assign(matrix)
        return
    ours = target.get_weights()
    weights = source.get_weights()[:len(ours)]  # a tied embedding also holds an output bias
    if source.name.startswith("recurrent_") and weights and weights[0].ndim == 2 \
            and weights[0].shape[1] == ours[0].shape[1] and weights[0].shape[0] < ours[0].shape[0]:
        rows = weights[0].shape[0]
        if source.name == "recurrent_0":  # word rows first, then the character rows keep their start
            weights[0] = np.concatenate([weights[0], ours[0][rows:]])
        else:  # [forward; backward] outputs of the layer below: this direction's half, zeros elsewhere
            offset = rows if direction == "backward" and ours[0].shape[0] == 2 * rows else 0
            kernel = np.zeros_like(ours[0])
            kernel[offset:offset + rows] = weights[0]
            weights[0] = kernel
    if [w.shape for w in weights] != [w.shape for w in ours]:
        raise PipelineError(f"{folder}: layer {source.name!r} of the pretrained {direction} language model does not "
                            "fit the classifier; run `pipeline pretrain --force`")
    target.set_weights(weights)


def rows_reached(sequences, vocabulary_size: int) -> np.ndarray:
    """The token ids ``sequences`` (id arrays) hold, sorted: the embedding rows training can change."""
    seen = np.zeros(vocabulary_size, bool)
    for ids in sequences:
        seen[ids] = True
    return np.flatnonzero(seen)


def virtual_adversarial_rows(config: Config, splits: EncodedSplits, train_count: int) -> tuple | None:
    """``(rows, None)``: a seeded sample of at most ``train.virtual_unlabeled`` unlabeled sentences per training
    sentence (``corpus.unlabeled_path``'s split, in its order) for virtual adversarial training; ``None`` without
    VAT or unlabeled text."""
    count = len(splits.sequences.get(UNLABELED, ()))
    limit = int(config.train.virtual_unlabeled * train_count)
    if not (config.train.virtual_adversarial and count and limit):
        return None
    return rows_up_to(count, limit, seeds.rng(config.seed, "virtual_unlabeled")), None


def train_classifier(config: Config, paths: Paths) -> dict:
    """Fit the configured classifier on the vectorized corpus; write ``saved_models/<run>/``: one training, or
    the rounds of ``train.self_training`` (:mod:`pipeline.classifier.self_training`)."""
    from pipeline.classifier import self_training

    pretrained = folder_of("pretrain", config, paths) if config.pretrain.enabled else None

    def fit(config: Config, paths: Paths, start: Path | None = None, minutes: float | None = None) -> dict:
        return fit_classifier(config, paths, pretrained, start, minutes)

    splits = EncodedSplits.load(paths.ids)
    if self_training.applies(config, splits):
        return self_training.self_train(config, paths, splits, fit)
    return fit(config, paths)


def fit_classifier(config: Config, paths: Paths, pretrained: Path | None = None, start: Path | None = None,
                   minutes: float | None = None) -> dict:
    """One training of the configured classifier on the data of ``paths.work`` into the run folder ``paths.run``.
    The model starts from the weights of the classifier run in ``start`` when given (a self-training student from
    its teacher), else its encoder from the language model in ``pretrained`` (the pretrain stage's folder) when
    given, else from its initial weights. ``minutes`` replaces ``train.time_limit_minutes`` (a self-training
    round's share of it). The result: ``epochs``, ``parameters``, ``fit_seconds`` (the epochs' time, without the
    distillation teacher, the ensemble's member and the saving before and after them), and ``time_limited`` (the
    epoch after which the time limit stopped the training, counted from 1) where it did."""
    settings = config.train
    # train.distribute: variables made and compiled in the strategy's scope are mirrored (pipeline.distribution);
    # created first, since TensorFlow configures the collective ops of several workers before any other op
    distribution = make_distribution(settings.distribute, settings.batch_size)
    make_deterministic(config.seed)
    splits = EncodedSplits.load(paths.ids)
    embedding_matrix = np.load(paths.embeddings)
    vocab = Vocabulary.load(paths.vocab)
    num_classes = len(splits.labels)
    if num_classes < 2:
        raise PipelineError(f"{config.corpus.path}: only one label ({splits.labels}); a classifier needs two or more")
    train_targets = splits.targets["train"]
    class_weights = balanced_class_weights(train_targets, num_classes) if settings.class_weights == "balanced" \
        else None
    weights = None if class_weights is None else class_weights[train_targets]
    # train.distill: soft targets mixing the labels with the char n-gram model's out-of-fold probabilities
    teacher, fit_targets, validation_targets, unlabeled = distillation_targets(config, paths, splits)
    # unlabeled sentences the recurrent model reads: labelled by the teacher (train.distill_unlabeled), or read by
    # virtual adversarial training alone (train.virtual_unlabeled), with no weight in the supervised loss
    if unlabeled is None:
        unlabeled = virtual_adversarial_rows(config, splits, len(fit_targets))
    # the subword inputs when model.char_encoder / model.ngram_features are on, else nothing
    read = ("train", "validation", UNLABELED) if unlabeled is not None else ("train", "validation")
    extra = split_inputs(config.model, paths.tokens, {split: splits.sequences[split] for split in read},
                         settings.max_length)
    train_sequences, train_extra = splits.sequences["train"], extra["train"]
    if unlabeled is not None:  # after the training sentences
        rows, probabilities = unlabeled
        train_sequences = chain_rows([train_sequences, take_rows(splits.sequences[UNLABELED], rows)])
        train_extra = {kind: {name: chain_rows([values, take_rows(extra[UNLABELED][kind][name], rows)])
                              for name, values in inputs.items()} for kind, inputs in train_extra.items()}
        if probabilities is None:  # targets without weight: only the virtual adversarial loss reads these rows
            fit_targets = np.concatenate([fit_targets, np.zeros((len(rows), *fit_targets.shape[1:]),
                                                                fit_targets.dtype)])
            weights = np.concatenate([np.ones(len(train_targets)) if weights is None else weights,
                                      np.zeros(len(rows))])
            log.info("virtual adversarial training also reads %d unlabeled sentences (train.virtual_unlabeled)",
                     len(rows))
        else:
            fit_targets = np.concatenate([fit_targets, probabilities])
            if weights is not None:  # a sentence of unknown class weighs its class's expected weight
                weights = np.concatenate([weights, probabilities @ class_weights])
            log.info("training also on %d unlabeled sentences, the char n-gram model's probabilities as targets "
                     "(train.distill_unlabeled)", len(rows))
    with distribution.scope():  # the embedding rows no training sentence reaches stay out of the trainable weight
        model = build_classifier(config.model, embedding_matrix, num_classes, seeds.child_seed(config.seed, "model"),
                                 trainable_ids=rows_reached(train_sequences, len(embedding_matrix)))
    if start is not None:
        start_from_run(model, start)
        log.info("the classifier starts from the trained weights of %s", start)
    elif pretrained is not None:
        copied = start_from_pretrained(model, pretrained)
        log.info("encoder starts from the pretrained language model (%s): %s", pretrained, ", ".join(copied))
    train_count = len(splits.sequences["train"])
    parameters = trainable_parameters(model)
    if parameters > train_count:
        log.warning("the model has %d trainable parameters for %d training examples: it can memorise the "
                    "training set (overfitting); early stopping and dropout matter here", parameters, train_count)
    train_batches = SequenceBatches(train_sequences, fit_targets, settings.batch_size,
                                    settings.max_length, seeds.rng(config.seed, "batches"), settings.bucketing,
                                    weights, **train_extra, steps_per_epoch=settings.steps_per_epoch)
    validation_count = len(splits.sequences["validation"])
    has_validation = validation_count > 0

    def validation_at(rows: np.ndarray | None) -> SequenceBatches:
        """Batches of the validation sentences at ``rows`` (``None``: all), in their order."""
        return SequenceBatches(take_rows(splits.sequences["validation"], rows),
                               take_rows(validation_targets, rows), settings.batch_size,
                               settings.max_length, **inputs_at(extra["validation"], rows))

    # train.validation_rows: the epochs' validation reads a seeded sample (the same every epoch)
    sample = sampled_rows(validation_count, settings.validation_rows, seeds.rng(config.seed, "validation_rows"))
    validation_batches = validation_at(sample) if has_validation else None
    log.info("training %s: %d parameters, %d training / %d validation sentences%s, %.0f%% padding per batch",
             config.run_name, parameters, train_count, validation_count,
             "" if sample is None else f" ({len(sample)} read after each epoch)", 100 * train_batches.padding_share())
    unread = unlabeled is not None and unlabeled[1] is None  # training rows without a label (VAT's)
    # ULMFiT-style options (pipeline.classifier.finetune): rates per layer group and epoch, a per-batch schedule
    group_rates = fine_tuning_rates(settings, model)
    with distribution.scope():
        optimizer = make_optimizer(settings, learning_rate_schedule(settings, len(train_batches)), group_rates)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy" if teacher is None
                      else "categorical_crossentropy",
                      # rows of no weight (unlabeled, for VAT) count in no accuracy: it is weighted then
                      metrics=[] if unread else ["accuracy"],
                      weighted_metrics=["accuracy"] if unread else [] if weights is not None else None)
    if settings.adversarial or settings.virtual_adversarial:  # losses with the batch's word vectors moved, added
        adversarial_training(model, model.get_layer("embedding").embeddings, settings.adversarial,
                             settings.virtual_adversarial, seeds.child_seed(config.seed, "virtual_adversarial"))
    resume, examples_read, time_limited, fit_seconds = None, None, None, 0.0
    with distribution.output_folder(paths.run) as folder:  # a temporary folder on workers other than the chief
        if config.model.readout == "ridge":
            fit_ridge(model, train_batches, config.model.ridge, num_classes)
            model.save(RunPaths(folder).model)
            scores = model.evaluate(train_batches, verbose=0, return_dict=True)
            history = pd.DataFrame([{"epoch": 0, **scores}])
            history.to_csv(RunPaths(folder).history, index=False)
        else:
            monitor = "val_loss" if has_validation else "loss"
            # the state after each epoch (pipeline.resume), saved by the chief: a killed training continues
            resume = Resume(paths.resume, folder, identity_of(settings_read("train", config)), settings.epochs,
                            writes=distribution.is_chief)
            shared = distribution.share(train_batches)  # this worker's rows of each batch (pipeline.distribution)
            resume.fast_forward(shared)
            data, feeding = distribution.feed(shared)
            with distribution.fitting(model):  # the strategy's scope (pipeline.distribution)
                # this worker's rows of the validation batches (the ensemble below still predicts them all)
                validation = distribution.feed_validation(distribution.share(validation_batches)
                                                          if has_validation else None)
                watching = callbacks(settings, folder, monitor, resume=resume, minutes=minutes,
                                     first=(GroupRateSchedule(),) if group_rates else ())
                fit_started = time.monotonic()
                fitted = model.fit(data, validation_data=validation, epochs=settings.epochs,
                                   initial_epoch=resume.initial_epoch, callbacks=watching + feeding,
                                   shuffle=not feeding, verbose=progress_verbosity())
                fit_seconds = time.monotonic() - fit_started
            limit = next((item for item in watching if isinstance(item, TimeLimit)), None)
            time_limited = None if limit is None or limit.stopped_epoch is None else limit.stopped_epoch + 1
            history = pd.DataFrame(fitted.history)
            examples_read = feeding[0].examples_read if feeding else None
            if settings.patience:  # the best weights are restored; make the saved model match them
                model.save(RunPaths(folder).model)
        if teacher is not None:  # what the recurrent model learned from, for evaluate's report
            artifact_io.write_json(folder / DISTILLATION_FILE, {
                "teacher": "char_ngram", "weight": settings.distill, "folds": settings.distill_folds,
                "unlabeled": {"rows": 0 if unlabeled is None else len(unlabeled[0]),
                              "of": len(splits.sequences.get(UNLABELED, ()))}})
        if config.model.ensemble == "char_ngram":
            from pipeline.classifier.ensemble import fit_ensemble

            fit_ensemble(paths.tokens, splits.labels, lambda rows: validation_at(rows).predict(model),
                         config.seed, folder, config.classify.linear_max_rows, settings.validation_rows, teacher)
        write_run_metadata(folder, config, vocab, splits.labels)
    if resume is not None:
        resume.finish()
    result = {"epochs": len(history), "parameters": parameters, "fit_seconds": fit_seconds}
    if time_limited is not None:
        result["time_limited"] = time_limited
    if examples_read is not None:  # several workers: the training examples this one read, per epoch
        result["examples_read"] = examples_read
    if not distribution.is_chief:  # the chief writes the run folder and records the stage
        return {**result, "outputs_written": False}
    log.info("saved run folder %s", paths.run)
    return result
