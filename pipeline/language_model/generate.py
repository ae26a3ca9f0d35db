"""Sample text from a trained language-model run (``pipeline generate``).

The prompt is tokenized with the run's own tokenizer and vocabulary; the model
then predicts one token at a time from the whole prefix (see
:func:`pipeline.language_model.sampling.generate_tokens`) until ``</s>`` or ``max_tokens``.
Word models are detokenized without spaces (Japanese), whitespace-tokenized
text with single spaces.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError
from pipeline.language_model.model import BOS, EOS, start_id
from pipeline.language_model.sampling import detokenize, generate_tokens
from pipeline.runs import Run
from pipeline.text.corpora import normalize
from pipeline.text.vocab import PAD_ID, UNK, UNK_ID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    """How to pick each next token (see ``pipeline generate --help``)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False
    max_tokens: int = 40


def prompt_ids(run: Run, prompt: str) -> tuple[list[int], list[str]]:
    """``start`` + the prompt's token ids, and its surface tokens (to print it as written).

    Unknown words become ``<unk>`` with a warning.
    """
    from pipeline.text.tokenize import make_tokenizer

    start_token = EOS if run.config.train.regime == "tbptt" else BOS
    if start_token not in run.vocab:
        raise PipelineError(f"{run.folder}: the vocabulary has no {start_token} token, so generation cannot start; "
                            "retrain the run with model.task = \"generator\"")
    ids, surface = [start_id(run.config, run.vocab)], []
    text = normalize(prompt)
    if text:
        analysed = make_tokenizer(run.config.tokenize).tokenize([text])[0]
        tokens, surface = analysed[run.config.vectorize.token_field], analysed["surface"]
        encoded = run.vocab.encode(tokens)
        unknown = [token for token, i in zip(tokens, encoded) if i == UNK_ID]
        if unknown:
            log.warning("prompt words not in the vocabulary, read as %s: %s", UNK, " ".join(unknown))
        ids.extend(encoded)
    return ids, surface


def label_id(run: Run, label: str | None) -> int | None:
    conditioned = run.config.model.conditioning != "none"
    if not conditioned:
        if label:
            raise PipelineError(f"{run.folder}: --label given but this model is not conditioned on labels")
        return None
    if not label:
        raise PipelineError(f"{run.folder}: this model is conditioned on a label; pass --label, one of: "
                            + ", ".join(run.labels))
    if label not in run.labels:
        raise PipelineError(f"--label {label!r} is not a label of {run.folder}; one of: {', '.join(run.labels)}")
    return run.labels.index(label)


def generate(run: Run, prompt: str, sampling: Sampling, num: int, seed: int, label: str | None = None) -> list[dict]:
    """``num`` samples continuing ``prompt``: text, tokens and the probability of each chosen token."""
    if run.config.model.task != "generator":
        raise PipelineError(f"{run.folder}: a {run.config.model.task} run, not a language model; "
                            "use `pipeline classify`, or train with model.task = \"generator\"")
    prefix, prompt_tokens = prompt_ids(run, prompt)
    label_index = label_id(run, label)
    model = run.model
    banned = [PAD_ID, UNK_ID, run.vocab.index.get(BOS, PAD_ID)]
    eos = run.vocab.index[EOS]
    language = "en" if run.config.tokenize.method == "whitespace" else "ja"  # en: join with spaces

    def step(ids: list[int]) -> np.ndarray:
        inputs = np.array([ids], dtype=np.int32)
        if label_index is not None:
            inputs = (inputs, np.array([label_index], dtype=np.int32))
        return np.asarray(model(inputs, training=False))[0, -1]

    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(num):
        ids, probabilities = generate_tokens(step, prefix, max_tokens=sampling.max_tokens, eos_id=eos,
                                             temperature=sampling.temperature, top_k=sampling.top_k,
                                             top_p=sampling.top_p, greedy=sampling.greedy, rng=rng,
                                             banned_ids=banned)
        tokens = run.vocab.decode(ids)
        samples.append({"prompt": prompt, "label": label, "text": detokenize(prompt_tokens + tokens, language),
                        "tokens": tokens, "probabilities": [float(p) for p in probabilities],
                        "ended": len(ids) < sampling.max_tokens})
    return samples
