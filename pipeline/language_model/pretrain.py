"""The ``pretrain`` stage: a language model that gives a classifier its encoder.

Semi-supervised sequence learning (Dai & Le 2015) and ULMFiT (Howard & Ruder 2018): before the
classifier sees a label, a left-to-right language model with the classifier's own embedding and
``[[model.layers]]`` learns Japanese from the corpus's text: the training split plus any unlabelled
text (``corpus.unlabeled_path``). Validation sentences score it; test sentences are never read.
The classifier's ``train`` stage then starts its embedding and recurrent layers from these weights
(layers are matched by name: ``embedding``, ``recurrent_0``, ...).

The run folder (``work/<corpus>/pretrained/<fingerprint>/``) is a normal language-model run:
``model.keras``, ``config.json``, ``vocab.json`` (the vocabulary the classifier shares) and
``history.csv``; ``pipeline generate --model`` samples from it.
"""

from __future__ import annotations

import dataclasses
import logging

import pandas as pd

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.language_model.plugin import pretrained_folder
from pipeline.language_model.train import train_generator
from pipeline.paths import Paths, RunPaths
from pipeline.text.corpora import UNLABELED

log = logging.getLogger(__name__)


def language_model_config(config: Config) -> Config:
    """The language-model config that pretrains the encoder of classifier ``config``.

    Same embedding and recurrent layers (an ``lstm`` trains as ``weight_drop_lstm``, whose weights
    have the same shapes), the AWD-LSTM regularisers of ``[pretrain]``, Adam with a plateau schedule.
    """
    settings = config.pretrain
    for position, spec in enumerate(config.model.layers):
        if str(spec.get("type", "")).startswith("bi"):
            raise PipelineError(f"config key 'model.layers[{position}].type' = {spec['type']!r}: pretrain.enabled "
                                "needs a left-to-right encoder (lstm, gru, simple_rnn, elman) that a language model "
                                "can train; use one or set pretrain.enabled = false")
    layers = tuple({"type": "weight_drop_lstm", "units": spec.get("units", 64), "weight_drop": settings.weight_drop}
                   if spec.get("type") == "lstm" and settings.weight_drop else spec for spec in config.model.layers)
    model = dataclasses.replace(
        config.model, task="generator", layers=layers, tie_weights=False, conditioning="none",
        output=settings.output, cutoffs=(),
        embedding_dropout=settings.embedding_dropout, input_dropout=settings.input_dropout,
        hidden_dropout=settings.hidden_dropout, output_dropout=settings.output_dropout)
    train = dataclasses.replace(
        config.train, optimizer="adam", learning_rate=settings.learning_rate, clipnorm=settings.clipnorm,
        clipvalue=0.0, batch_size=settings.batch_size, epochs=settings.epochs, patience=settings.patience,
        max_length=settings.max_length, regime="sentences", loss="mean", class_weights="none",
        lr_schedule="plateau", decay_factor=0.5, plateau_patience=1,
        # the classifier's fine-tuning options do not apply to its language model
        freeze_embeddings_epochs=0, embedding_learning_rate_factor=1.0, discriminative_factor=1.0,
        gradual_unfreezing=False)
    # a language model's own config: its sections (defaults), not the classifier's
    return dataclasses.replace(config, model=model, train=train, run_name="pretrained", owner="generator", sections={})


def pretrain_encoder(config: Config, paths: Paths) -> dict:
    """Train the encoder's language model into the pretrain stage's folder; its best validation perplexity."""
    folder = pretrained_folder(config, paths)
    lm_config = language_model_config(config)
    result = train_generator(lm_config, Paths(work=paths.work, run=folder), train_splits=("train", UNLABELED))
    history = pd.read_csv(RunPaths(folder).history)
    column = "val_perplexity" if "val_perplexity" in history else "perplexity"
    best = float(history[column].min())
    log.info("pretrained encoder: %s %.1f after %d epochs (%s)", column, best, len(history), folder)
    return {**result, column: best}
