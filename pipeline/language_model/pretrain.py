"""The ``pretrain`` stage: a language model that gives a classifier its encoder.

Semi-supervised sequence learning (Dai & Le 2015) and ULMFiT (Howard & Ruder 2018): before the
classifier sees a label, a left-to-right language model with the classifier's own embedding and
``[[model.layers]]`` learns Japanese from the corpus's text: the training split plus any unlabelled
text (``corpus.unlabeled_path``). Validation sentences score it; test sentences are never read.
The classifier's ``train`` stage then starts its embedding and recurrent layers from these weights
(layers are matched by name: ``embedding``, ``recurrent_0``, ...).

A bidirectional encoder (``bilstm``, ``bigru``) is pretrained the way it is used: the forward
half of each ``Bidirectional`` layer reads left to right, the backward half right to left, so a
second language model reads every sentence reversed and predicts the previous word (ULMFiT's
backward model). Both share one embedding: the forward model trains it, the backward model reads
it frozen. The classifier has one embedding under both halves, so each half must have been trained
on exactly the vectors it will see; ULMFiT's alternative, two whole classifiers averaged, costs
twice the fine-tuning and the prediction time.

The run folder (``work/<corpus>/pretrained/<fingerprint>/``) is a normal language-model run:
``model.keras``, ``config.json``, ``vocab.json`` (the vocabulary the classifier shares) and
``history.csv``; ``pipeline generate --model`` samples from it. The backward model, when there is
one, is a run folder of its own inside it: ``backward/``.
"""

from __future__ import annotations

import dataclasses
import logging

import pandas as pd

from pipeline.config import Config
from pipeline.language_model.plugin import pretrained_folder
from pipeline.language_model.train import train_generator
from pipeline.paths import Paths, RunPaths
from pipeline.text.corpora import UNLABELED

log = logging.getLogger(__name__)


BACKWARD = "backward"  # the backward model's run folder inside the forward one's (read by the classifier's train)
ONE_DIRECTION = {"bilstm": "lstm", "bigru": "gru"}  # a Bidirectional layer kind -> the kind of each of its halves


def is_bidirectional(config: Config) -> bool:
    """Whether any of ``config``'s ``[[model.layers]]`` is bidirectional: then a backward model is pretrained too."""
    return any(spec.get("type") in ONE_DIRECTION for spec in config.model.layers)


def _one_direction(spec: dict, weight_drop: float) -> dict:
    """The layer a language model trains for ``[[model.layers]]`` table ``spec``: a ``bilstm`` or ``bigru`` as
    one of its halves, an ``lstm`` as ``weight_drop_lstm`` (same weight shapes) when ``weight_drop``."""
    kind = ONE_DIRECTION.get(spec.get("type"), spec.get("type"))
    if kind == "lstm" and weight_drop:
        return {"type": "weight_drop_lstm", "units": spec.get("units", 64), "weight_drop": weight_drop}
    return {**spec, "type": kind}


def language_model_config(config: Config, backward: bool = False) -> Config:
    """The language-model config that pretrains the encoder of classifier ``config``.

    Same embedding and recurrent layers (an ``lstm`` trains as ``weight_drop_lstm``, whose weights
    have the same shapes; a ``bilstm``/``bigru`` as one ``lstm``/``gru`` per direction), the AWD-LSTM
    regularisers of ``[pretrain]``, Adam with a plateau schedule. ``backward``: the model of the
    right-to-left halves, over the forward model's embedding, frozen.
    """
    settings = config.pretrain
    layers = tuple(_one_direction(spec, settings.weight_drop) for spec in config.model.layers)
    model = dataclasses.replace(
        config.model, task="generator", layers=layers, tie_weights=False, conditioning="none",
        trainable_embeddings=config.model.trainable_embeddings and not backward and not settings.freeze_embeddings,
        ensemble="none",  # the classifier's n-gram member is no part of its language model
        output=settings.output, cutoffs=(),
        embedding_dropout=settings.embedding_dropout, input_dropout=settings.input_dropout,
        hidden_dropout=settings.hidden_dropout, output_dropout=settings.output_dropout)
    train = dataclasses.replace(
        config.train, optimizer="adam", learning_rate=settings.learning_rate, clipnorm=settings.clipnorm,
        clipvalue=0.0, batch_size=settings.batch_size, epochs=settings.epochs, patience=settings.patience,
        max_length=settings.max_length, regime="sentences", loss="mean", class_weights="none",
        lr_schedule="plateau", decay_factor=0.5, plateau_patience=1,
        # the classifier's fine-tuning, teachers and training on unlabeled text do not apply to its language model
        freeze_embeddings_epochs=0, embedding_learning_rate_factor=1.0, discriminative_factor=1.0,
        gradual_unfreezing=False, distill=0.0, adversarial=0.0, virtual_adversarial=0.0, self_training=0,
        distribute="none", steps_per_epoch=0)  # whole passes
    run_name = "pretrained_backward" if backward else "pretrained"
    # a language model's own config: its sections (defaults), not the classifier's
    return dataclasses.replace(config, model=model, train=train, run_name=run_name, owner="generator", sections={})


def pretrain_encoder(config: Config, paths: Paths) -> dict:
    """Train the encoder's language model (and, for a bidirectional encoder, the backward one) into the
    pretrain stage's folder; the best validation perplexity of each."""
    folder = pretrained_folder(config, paths)
    result = _train_one(language_model_config(config), Paths(work=paths.work, run=folder), "forward")
    if is_bidirectional(config):
        from pipeline.runs import load_run

        # the forward model's trained embedding, frozen: both halves of the classifier read the same vectors
        embedding_matrix = load_run(folder).model.get_layer("embedding").get_weights()[0]
        backward = _train_one(language_model_config(config, backward=True),
                              Paths(work=paths.work, run=folder / BACKWARD), "backward", reverse=True,
                              embedding_matrix=embedding_matrix)
        result.update({f"backward_{key}": value for key, value in backward.items()})
    return result


def _train_one(lm_config: Config, paths: Paths, direction: str, **options) -> dict:
    """Fit one language model into ``paths.run``: its epochs, parameters and best (validation) perplexity."""
    result = train_generator(lm_config, paths, train_splits=("train", UNLABELED), **options)
    history = pd.read_csv(RunPaths(paths.run).history)
    column = "val_perplexity" if "val_perplexity" in history else "perplexity"
    best = float(history[column].min())
    log.info("pretrained %s encoder: %s %.1f after %d epochs (%s)", direction, column, best, len(history), paths.run)
    return {**result, column: best}
