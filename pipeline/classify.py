"""Load a run folder and label new sentences with its classifier.

A run folder is self-contained: ``model.keras`` (loaded with ``safe_mode``),
the resolved ``config.json`` (how to tokenize), ``vocab.json`` and
``labels.json``. Nothing from ``work/`` or ``corpora/`` is needed.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import config as config_module
from pipeline import io as artifact_io
from pipeline.batches import SequenceBatches
from pipeline.config import Config
from pipeline.corpora import normalize
from pipeline.errors import PipelineError
from pipeline.paths import RunPaths
from pipeline.vocab import UNK_ID, Vocabulary

log = logging.getLogger(__name__)

# Modules whose custom layers must be registered before a .keras file is deserialised.
CUSTOM_OBJECT_MODULES = ("pipeline.models", "pipeline.generator", "pipeline.layers.elman", "pipeline.layers.esn",
                         "pipeline.lm_data")


def register_custom_objects() -> None:
    for name in CUSTOM_OBJECT_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise


@dataclass
class Run:
    """Everything a saved run holds."""

    folder: Path
    model: Any
    config: Config
    vocab: Vocabulary
    labels: list[str]


def load_run(folder: str | Path) -> Run:
    """Load ``saved_models/<run>/``; a missing or corrupt folder is a one-line PipelineError."""
    folder = Path(folder)
    run = RunPaths(folder)
    if not folder.is_dir():
        raise PipelineError(f"{folder}: run folder not found; train one with `pipeline train --config ...` "
                            "or pass --model saved_models/<run>")
    for path in (run.model, run.config, run.vocab, run.labels):
        if not path.is_file():
            raise PipelineError(f"{folder}: incomplete run folder, {path.name} is missing; retrain with --force")
    try:
        config = config_module.from_dict(artifact_io.read_json(run.config), where=str(run.config))
    except ValueError as error:
        raise PipelineError(f"{run.config}: corrupt run metadata ({error}); retrain with --force") from None
    try:
        labels = artifact_io.read_json(run.labels)
    except ValueError as error:
        raise PipelineError(f"{run.labels}: corrupt label list ({error}); retrain with --force") from None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise PipelineError(f"{run.labels}: expected a JSON list of label strings; retrain with --force")
    vocab = Vocabulary.load(run.vocab)
    import keras

    register_custom_objects()
    try:
        model = keras.saving.load_model(run.model, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PipelineError(f"{run.model}: cannot load the model ({first_line[:200]}); retrain with --force") from None
    if config.model.task == "classifier" and model.outputs[0].shape[-1] != len(labels):
        raise PipelineError(f"{run.labels}: {len(labels)} labels for a model with {model.outputs[0].shape[-1]} "
                            "outputs; the run folder is inconsistent, retrain with --force")
    return Run(folder, model, config, vocab, labels)


def encode_texts(run: Run, texts: list[str]) -> tuple[list[np.ndarray], list[str | None]]:
    """Token ids per text with the run's tokenizer and vocabulary, and an error (or None) per text."""
    from pipeline.tokenize import make_tokenizer

    cleaned = [normalize(text) for text in texts]
    tokenizer = make_tokenizer(run.config.tokenize)
    tokens = tokenizer.tokenize([text for text in cleaned if text])
    field = run.config.vectorize.token_field
    sequences, errors, position = [], [], 0
    for text in cleaned:
        if not text:
            sequences.append(np.zeros(0, dtype=np.int32))
            errors.append("empty text; nothing to classify")
            continue
        ids = np.array(run.vocab.encode(tokens[position][field]), dtype=np.int32)
        position += 1
        sequences.append(ids)
        errors.append(None if len(ids) else "no tokens left after filtering; nothing to classify")
    return sequences, errors


def classify(run: Run, texts: list[str], batch_size: int = 64) -> list[dict]:
    """One result per text: ``{"text", "label", "probability", "probabilities"}`` or ``{"text", "error"}``."""
    sequences, errors = encode_texts(run, texts)
    valid = [i for i, error in enumerate(errors) if error is None]
    results: list[dict] = [{"text": text, "error": error} for text, error in zip(texts, errors)]
    if valid:
        batches = SequenceBatches([sequences[i] for i in valid], None, batch_size, run.config.train.max_length)
        probabilities = batches.predict(run.model)
        for index, row in zip(valid, probabilities):
            best = int(np.argmax(row))
            unknown = float(np.mean(sequences[index] == UNK_ID))
            results[index] = {
                "text": texts[index], "label": run.labels[best], "probability": float(row[best]),
                "probabilities": {label: float(p) for label, p in zip(run.labels, row)},
                "unknown_token_share": unknown,
            }
    return results
