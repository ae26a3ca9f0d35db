"""The ``train`` stage for ``model.task = "reading"``: fit the encoder–decoder, save a run folder.

Pairs come from the tokenized table's ``text`` and ``split`` columns (readings from GiNZA, see
:mod:`pipeline.seq2seq.data`): the training split to learn from, the validation split for early
stopping. The run folder holds ``model.keras`` (the teacher-forced model), ``vocab.json`` (source
characters), ``labels.json`` (the target alphabet, ``<s>`` and ``</s>`` included) and the config.
"""

from __future__ import annotations

import logging

import keras
import pandas as pd

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.config import Config
from pipeline.models import trainable_parameters
from pipeline.paths import Paths, RunPaths
from pipeline.runs import write_run_metadata
from pipeline.seq2seq.data import build_vocabularies, encode_sources, encode_targets, split_pairs
from pipeline.seq2seq.model import build_reader
from pipeline.text.vocab import PAD_ID
from pipeline.training import callbacks, make_deterministic, make_optimizer, progress_verbosity

log = logging.getLogger(__name__)


def train_reader(config: Config, paths: Paths) -> dict:
    """Fit the configured reading model on the tokenized corpus; write ``saved_models/<run>/``."""
    make_deterministic(config.seed)
    settings = config.train
    table = pd.read_parquet(paths.tokens, columns=["text", "split"])
    train_texts, train_readings = split_pairs(table, "train", config.tokenize, settings.max_length)
    validation_texts, validation_readings = split_pairs(table, "validation", config.tokenize, settings.max_length)
    source_vocab, alphabet = build_vocabularies(train_texts, train_readings)
    model = build_reader(config, len(source_vocab), len(alphabet), seeds.child_seed(config.seed, "model"))
    decoder_input, targets = encode_targets(train_readings, alphabet)
    train_data = ([encode_sources(train_texts, source_vocab), decoder_input], targets)
    validation_data = None
    if validation_texts:
        validation_input, validation_targets = encode_targets(validation_readings, alphabet)
        validation_data = ([encode_sources(validation_texts, source_vocab), validation_input], validation_targets)
    monitor = "val_loss" if validation_data else "loss"
    # Padding (id 0) is no target: the loss is the mean over the real characters and </s>.
    model.compile(optimizer=make_optimizer(settings),
                  loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=PAD_ID))
    log.info("training %s reading model (attention %s, %s decoder): %d parameters, %d training pairs, "
             "%d source characters, %d reading characters", config.run_name, config.reading.attention,
             config.reading.decoder, trainable_parameters(model), len(train_texts), len(source_vocab),
             len(alphabet))
    with artifact_io.atomic_directory(paths.run) as folder:
        fitted = model.fit(*train_data, validation_data=validation_data, epochs=settings.epochs,
                           batch_size=settings.batch_size, shuffle=True, verbose=progress_verbosity(),
                           callbacks=callbacks(settings, folder, monitor, checkpoint=False))
        model.save(RunPaths(folder).model)  # early stopping restored the best epoch's weights
        write_run_metadata(folder, config, source_vocab, alphabet.tokens)
    return {"epochs": len(fitted.history["loss"]), "parameters": trainable_parameters(model)}
