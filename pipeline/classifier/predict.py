"""Label new sentences with a loaded classifier run (:func:`pipeline.runs.load_run`).

The run folder alone is enough: its config says how to tokenize, its
vocabulary how to encode, its labels what the outputs mean.
"""

from __future__ import annotations

import numpy as np

from pipeline.runs import Run
from pipeline.text.batches import SequenceBatches
from pipeline.text.corpora import normalize
from pipeline.text.vocab import UNK_ID


def encode_texts(run: Run, texts: list[str]) -> tuple[list[np.ndarray], list[str | None]]:
    """Token ids per text with the run's tokenizer and vocabulary, and an error (or None) per text."""
    from pipeline.text.tokenize import make_tokenizer

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
