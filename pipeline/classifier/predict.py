"""Label new sentences with a loaded classifier run (:func:`pipeline.runs.load_run`).

The run folder alone is enough: its config says how to tokenize, its
vocabulary how to encode, its labels what the outputs mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.classifier.ensemble import mix
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import RunPaths
from pipeline.runs import Run
from pipeline.text.batches import SequenceBatches
from pipeline.text.corpora import normalize
from pipeline.text.features import WORD_FIELD, sentence_inputs
from pipeline.text.tokenize import FIELDS
from pipeline.text.vocab import UNK_ID


def load_extras(folder: Path, config: Config, model, labels: list[str]) -> dict:
    """What :func:`pipeline.runs.load_run` loads for a classifier besides the model: the n-gram ensemble
    member and the weight of the recurrent model (``model.ensemble = "char_ngram"``), as ``{"ensemble":
    (member, weight)}``; a label list that does not fit the model's outputs is an error."""
    if model.outputs[0].shape[-1] != len(labels):
        raise PipelineError(f"{RunPaths(folder).labels}: {len(labels)} labels for a model with "
                            f"{model.outputs[0].shape[-1]} outputs; the run folder is inconsistent, "
                            "retrain with --force")
    if config.model.ensemble != "char_ngram":
        return {}
    from pipeline.classifier.ensemble import CharNgramModel, ensemble_weight

    return {"ensemble": (CharNgramModel.load(folder), ensemble_weight(folder))}


def tokenize_texts(run: Run, texts: list[str]) -> tuple[list[str], list[dict[str, list[str]]]]:
    """Each text normalised as in ``prepare``, and the run tokenizer's tokens of the non-empty ones, in order."""
    from pipeline.text.tokenize import make_tokenizer

    cleaned = [normalize(text) for text in texts]
    return cleaned, make_tokenizer(run.config.tokenize).tokenize([text for text in cleaned if text])


def tokens_per_text(cleaned: list[str], tokens: list[dict[str, list[str]]]) -> list[dict[str, list[str]]]:
    """The tokens of every text, in order, from what :func:`tokenize_texts` returned (which tokenizes only the
    non-empty ones): an empty text gets empty field lists."""
    found = iter(tokens)
    return [next(found) if text else {field: [] for field in FIELDS} for text in cleaned]


def encode_tokens(run: Run, texts: list[str],
                  tokens: list[dict[str, list[str]]]) -> tuple[list[np.ndarray], list[str | None]]:
    """Token ids per text with the run's vocabulary (its ``vectorize.token_field`` of ``tokens``), and an error
    (or None) per text: ``texts`` are the normalised texts, ``tokens`` their tokens (:func:`classify_tokens`)."""
    field = run.config.vectorize.token_field
    sequences, errors = [], []
    for text, fields in zip(texts, tokens, strict=True):
        if not text:
            sequences.append(np.zeros(0, dtype=np.int32))
            errors.append("empty text; nothing to classify")
            continue
        ids = np.array(run.vocab.encode_forms(fields[field], *(fields[name] for name in
                                                                 run.config.vectorize.fallback_fields)),
                       dtype=np.int32)
        sequences.append(ids)
        errors.append(None if len(ids) else "no tokens left after filtering; nothing to classify")
    return sequences, errors


def encode_texts(run: Run, texts: list[str],
                 tokenized: tuple | None = None) -> tuple[list[np.ndarray], list[str | None]]:
    """Token ids per text with the run's tokenizer and vocabulary, and an error (or None) per text.

    ``tokenized``: what :func:`tokenize_texts` returned for ``texts``, so they are tokenized once.
    """
    cleaned, tokens = tokenized or tokenize_texts(run, texts)
    return encode_tokens(run, cleaned, tokens_per_text(cleaned, tokens))


def surface_forms(cleaned: list[str], tokens: list[dict[str, list[str]]]) -> list[list[str]]:
    """The surface forms of each text (``[]`` for an empty one), from what :func:`tokenize_texts` returned."""
    return [list(fields[WORD_FIELD]) for fields in tokens_per_text(cleaned, tokens)]


def text_batches(run: Run, sequences: list[np.ndarray], words: list[list[str]], batch_size: int) -> SequenceBatches:
    """Prediction batches of token ids ``sequences`` with the subword inputs the run's model takes (from ``words``,
    the same texts' surface forms; none when ``model.char_encoder`` and ``model.ngram_features`` are off)."""
    max_length = run.config.train.max_length
    return SequenceBatches(sequences, None, batch_size, max_length,
                           **sentence_inputs(run.config.model, words, max_length))


def classify(run: Run, texts: list[str], batch_size: int = 64) -> list[dict]:
    """One result per text: ``{"text", "label", "probability", "probabilities"}`` or ``{"text", "error"}``.

    The texts are normalised and tokenized as in ``prepare`` and ``tokenize``, then :func:`classify_tokens`
    classifies them; ``"text"`` is the text as given."""
    cleaned, tokens = tokenize_texts(run, texts)
    results = classify_tokens(run, cleaned, tokens_per_text(cleaned, tokens), batch_size)
    return [{**result, "text": text} for result, text in zip(results, texts, strict=True)]


def classify_tokens(run: Run, texts: list[str], tokens: list[dict[str, list[str]] | None],
                    batch_size: int = 64) -> list[dict]:
    """Classify texts that are already normalised and tokenized (the spaCy component's Docs, :func:`classify`'s
    texts): one result per text as :func:`classify` gives it, ``"text"`` being the normalised text.

    Args:
        texts: each text normalised as ``prepare`` does (:func:`pipeline.text.corpora.normalize`); an empty one
            is an error result. The char n-gram ensemble member reads them.
        tokens: per text, its tokens as the run's tokenizer gives them after its filters (``drop_punct``,
            ``stop_pos``, ``lowercase``): ``{"surface": [...], "lemma": [...], "norm": [...], "pos": [...]}``; the
            vocabulary reads ``vectorize.token_field``, the subword inputs ``surface``. Longer than
            ``train.max_length``: cut as in training. None: the run's tokenizer tokenizes that text here.
    """
    missing = [i for i, fields in enumerate(tokens) if fields is None]
    if missing:
        tokens = list(tokens)
        cleaned = [texts[i] for i in missing]
        for i, fields in zip(missing, tokens_per_text(cleaned, tokenize_texts(run, cleaned)[1]), strict=True):
            tokens[i] = fields
    sequences, errors = encode_tokens(run, texts, tokens)
    words = [list(fields[WORD_FIELD]) for fields in tokens]
    valid = [i for i, error in enumerate(errors) if error is None]
    results: list[dict] = [{"text": text, "error": error} for text, error in zip(texts, errors)]
    if valid:
        batches = text_batches(run, [sequences[i] for i in valid], [words[i] for i in valid], batch_size)
        probabilities = batches.predict(run.model)
        if "ensemble" in run.extras:  # model.ensemble = "char_ngram": mix with the n-gram member
            member, weight = run.extras["ensemble"]
            probabilities = mix(probabilities, member.probabilities([texts[i] for i in valid]), weight)
        for index, row in zip(valid, probabilities):
            results[index] = labelled(run, texts[index], row, sequences[index])
    return results


def labelled(run: Run, text: str, probabilities: np.ndarray, ids: np.ndarray) -> dict:
    """The result for one text from its class ``probabilities`` ``(classes,)`` and token ``ids``."""
    best = int(np.argmax(probabilities))
    return {"text": text, "label": run.labels[best], "probability": float(probabilities[best]),
            "probabilities": {label: float(p) for label, p in zip(run.labels, probabilities)},
            "unknown_token_share": float(np.mean(ids == UNK_ID))}
