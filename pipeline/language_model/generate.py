"""Sample text from a trained language-model run (``pipeline generate``).

The prompt is tokenized with the run's own tokenizer and vocabulary; the model
then predicts one token at a time from the whole prefix (see
:func:`pipeline.language_model.sampling.generate_tokens`) until ``</s>`` or ``max_tokens``.
Every sample's ``text`` (printed plainly, in ``--json`` lines and by ``pipeline run``) is the
prompt's and the sample's tokens joined by :func:`~pipeline.language_model.sampling.detokenize`:
without spaces for GiNZA words and characters (Japanese), with single spaces for
whitespace-tokenized corpora (see :func:`text_language`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.language_model.model import BOS, EOS, start_id
from pipeline.language_model.sampling import check_settings, detokenize, generate_tokens
from pipeline.runs import Run
from pipeline.text import subwords
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
    repetition_penalty: float = 1.0  # p ** P for tokens already in the text (CTRL); 1: off
    no_repeat_ngram: int = 0  # never repeat an n-gram of this many tokens (prompt included); 0: off


def text_language(run: Run) -> str:
    """The language code :func:`detokenize` joins this run's tokens for.

    ``tokenize.method = "whitespace"`` reads pre-tokenized text (English, benchmarks): ``"en"``,
    one space between tokens. GiNZA words and characters are Japanese: ``"ja"``, no spaces.
    """
    return "en" if run.config.tokenize.method == "whitespace" else "ja"


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
    """``num`` samples continuing ``prompt``: text, tokens and the probability of each chosen token.

    The repetition controls of ``sampling`` look at the prompt's ids (with the start token ``<s>``;
    never at ``</s>``) and the sample so far; each sample starts afresh from the prompt.
    """
    check_settings(sampling.temperature, sampling.top_k, sampling.top_p, sampling.repetition_penalty,
                   sampling.no_repeat_ngram)  # before the tokenizer and the model load
    if run.config.model.task != "generator":
        raise PipelineError(f"{run.folder}: a {run.config.model.task} run, not a language model; "
                            "use `pipeline classify`, or train with model.task = \"generator\"")
    prefix, prompt_tokens = prompt_ids(run, prompt)
    label_index = label_id(run, label)
    model = run.model
    banned = [PAD_ID, UNK_ID, run.vocab.index.get(BOS, PAD_ID)]
    eos = run.vocab.index[EOS]
    language = text_language(run)

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
                                             banned_ids=banned, repetition_penalty=sampling.repetition_penalty,
                                             no_repeat_ngram=sampling.no_repeat_ngram)
        tokens = run.vocab.decode(ids)
        text = (subwords.detokenize(prompt_tokens + tokens) if run.config.tokenize.method == "sentencepiece"
                else detokenize(prompt_tokens + tokens, language))  # pieces: each ▁ back to a space
        samples.append({"prompt": prompt, "label": label, "text": text,
                        "tokens": tokens, "probabilities": [float(p) for p in probabilities],
                        "ended": len(ids) < sampling.max_tokens})
    return samples


def sample(run: Run, prompt: str, *, num: int = 1, seed: int = 0, label: str | None = None,
           **sampling: Any) -> list[dict]:
    """:meth:`pipeline.runs.Run.generate`: ``num`` samples continuing ``prompt`` with the :class:`Sampling`
    settings given by name (the others keep their defaults)."""
    known = {item.name for item in dataclasses.fields(Sampling)}
    unknown = sorted(set(sampling) - known)
    if unknown:
        raise PipelineError(f"unknown sampling setting {unknown[0]!r}; use {', '.join(sorted(known))}")
    settings = Sampling(**sampling)
    if settings.max_tokens < 1 or num < 1:
        raise PipelineError("max_tokens and num must be >= 1")
    return generate(run, prompt, settings, num, seed, label)
