"""Choosing the next token from a language model's distribution: repetition penalty, no-repeat
n-grams, temperature, top-k, top-p, greedy.

NumPy only; the model is hidden behind ``step_fn`` in :func:`generate_tokens`, so the same code
serves a Keras recurrent model, an n-gram model or a test stub.

Order of the adjustments (the same as Hugging Face ``generate``):
ban ids -> repetition penalty -> no-repeat n-gram -> temperature -> top-k -> top-p -> renormalise
-> sample (or argmax when greedy).

The two repetition controls look at the text so far (``previous_ids``: prompt included):

* repetition penalty ``P >= 1`` (Keskar et al. 2019, CTRL): the logit ``x`` of every token already
  in the text becomes ``x / P`` if ``x > 0`` and ``x * P`` otherwise. Our models give
  probabilities, and logits are only defined up to an added constant, which changes the sign
  test; we take as logits the normalised log-probabilities ``x_i = log p_i`` (the log-softmax,
  over the whole vocabulary, before banning; ``from_logits`` input is log-softmaxed first).
  Those are all ``<= 0``, so the rule is exactly ``log p_i -> P * log p_i``, i.e.
  ``p_i -> p_i ** P`` for seen tokens, unseen tokens unchanged, then renormalised (with
  temperature: ``q_i ∝ p_i ** (P / T)`` for seen tokens, ``p_i ** (1 / T)`` for the others).
  A token with ``p_i = 1`` keeps log-probability 0: no rescaling can penalise it.
* no-repeat n-gram ``N >= 1``: a token that would complete an ``N``-gram already in the text gets
  probability 0 (``N = 1``: no token of the text again). If that leaves no allowed token, the
  constraint is dropped for that step (the distribution after banning and the penalty is used).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

# Languages written without spaces between words; tokens are concatenated as they are.
LANGUAGES_WITHOUT_SPACES = frozenset({"ja", "zh", "th", "lo", "km", "my"})


def check_settings(temperature: float, top_k: int, top_p: float, repetition_penalty: float = 1.0,
                   no_repeat_ngram: int = 0) -> None:
    """Raise a one-line :class:`PipelineError` naming the first invalid setting and echoing its value."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise PipelineError(
            f"temperature must be a number > 0, got {temperature!r}; use e.g. 1.0 "
            "(for always the most probable token set greedy = true instead of temperature 0)"
        )
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise PipelineError(f"top_k must be an integer >= 0 (0 disables it), got {top_k!r}")
    if not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise PipelineError(f"top_p must be in (0, 1] (1 disables it), got {top_p!r}")
    if (isinstance(repetition_penalty, bool) or not isinstance(repetition_penalty, (int, float))
            or not 1 <= repetition_penalty < math.inf):
        raise PipelineError(f"repetition_penalty must be a finite number >= 1 (1 disables it), "
                            f"got {repetition_penalty!r}")
    if isinstance(no_repeat_ngram, bool) or not isinstance(no_repeat_ngram, (int, np.integer)) or no_repeat_ngram < 0:
        raise PipelineError(f"no_repeat_ngram must be an integer >= 0 (0 disables it), got {no_repeat_ngram!r}")


def repeated_ngram_completions(previous_ids: Sequence[int], ngram_size: int) -> set[int]:
    """The ids that would complete an ``ngram_size``-gram already present in ``previous_ids``.

    The last ``ngram_size - 1`` ids are the start of the next n-gram; every earlier place where
    the same ``ngram_size - 1`` ids occur contributes the id that followed them there.

    Example:
        >>> sorted(repeated_ngram_completions([5, 6, 7, 5, 6], 3)), sorted(repeated_ngram_completions([5, 6, 5], 1))
        ([7], [5, 6])
    """
    ids = [int(token_id) for token_id in previous_ids]
    if ngram_size < 1 or len(ids) < ngram_size:
        return set()
    context = ids[len(ids) - ngram_size + 1:]  # the last n - 1 ids (none for n = 1)
    return {ids[start + ngram_size - 1] for start in range(len(ids) - ngram_size + 1)
            if ids[start:start + ngram_size - 1] == context}


def penalize_repetitions(log_probabilities: np.ndarray, previous_ids: Iterable[int], penalty: float) -> np.ndarray:
    """CTRL's repetition penalty on the logits of the ids in ``previous_ids``: ``x / P`` if ``x > 0``, else ``x * P``.

    Args:
        log_probabilities: ``(vocab,)`` logits; :func:`next_token_distribution` passes normalised
            log-probabilities (all ``<= 0``), for which this is ``x * P``.
        previous_ids: the text so far; each distinct id is penalised once, however often it occurs.
        penalty: ``P >= 1``; 1 changes nothing.

    Returns:
        A new array; ids outside the vocabulary are ignored.
    """
    penalized = np.array(log_probabilities, dtype=np.float64)
    seen = sorted({int(token_id) for token_id in previous_ids if 0 <= int(token_id) < penalized.size})
    values = penalized[seen]
    penalized[seen] = np.where(values > 0, values / penalty, values * penalty)
    return penalized


def next_token_distribution(
    probabilities: np.ndarray,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    banned_ids: Iterable[int] = (),
    from_logits: bool = False,
    previous_ids: Sequence[int] = (),
    repetition_penalty: float = 1.0,
    no_repeat_ngram: int = 0,
) -> np.ndarray:
    """The distribution to sample the next token from: ban, repetition controls, temperature, top-k, top-p.

    Temperature ``T`` divides the log-probabilities before renormalising:
    ``q_i ∝ p_i ** (1 / T)``. ``T = 1`` keeps the model's distribution; ``T < 1`` sharpens it
    (safer, more repetitive text; ``T -> 0`` becomes greedy argmax); ``T > 1`` flattens it (more
    varied, more surprising and more error-prone text; ``T -> inf`` becomes uniform).

    Args:
        probabilities: ``(vocab,)`` next-token probabilities (or logits with ``from_logits``).
        temperature: > 0, see above.
        top_k: keep only the ``top_k`` most probable tokens (ties: lower id first); 0 disables.
        top_p: nucleus sampling: keep the smallest set of most probable tokens whose cumulative
            probability is >= ``top_p`` (computed after temperature and top-k); in (0, 1],
            1 disables.
        banned_ids: ids that get probability 0 whatever the model says; pass the pad, unknown
            and ``<s>`` ids (0, 1 and the bos id).
        from_logits: ``probabilities`` holds unnormalised log-probabilities.
        previous_ids: the text so far, prompt included, which the two options below look at.
        repetition_penalty: ``P >= 1``; ``p_i -> p_i ** P`` for every id in ``previous_ids``
            (CTRL's rule on the log-probabilities, see the module docstring); 1 disables.
        no_repeat_ngram: ``N >= 1``: probability 0 for every id that would complete an
            ``N``-gram already in ``previous_ids`` (:func:`repeated_ngram_completions`), unless
            that bans every allowed id, in which case this step ignores it; 0 disables.

    Returns:
        float64 ``(vocab,)`` probabilities summing to 1, zero outside the kept tokens.

    Raises:
        PipelineError: an invalid setting, or no allowed token has a probability above zero.
    """
    check_settings(temperature, top_k, top_p, repetition_penalty, no_repeat_ngram)
    scores = np.asarray(probabilities, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"probabilities must have shape (vocab,), got {scores.shape}")
    if from_logits:
        log_probabilities = scores.copy()
    else:
        with np.errstate(divide="ignore"):
            log_probabilities = np.log(np.clip(scores, 0.0, None))
    # 1. Normalise to log-probabilities (log-softmax over the whole vocabulary), the logits the
    #    repetition penalty is defined on; temperature and the rest do not depend on it.
    highest = log_probabilities.max(initial=-np.inf)
    if np.isfinite(highest):
        log_probabilities -= highest + np.log(np.exp(log_probabilities - highest).sum())
    # 2. Ban ids.
    banned = [int(token_id) for token_id in banned_ids if 0 <= int(token_id) < scores.size]
    log_probabilities[banned] = -np.inf
    if not np.isfinite(log_probabilities.max(initial=-np.inf)):
        raise PipelineError(
            "the model gives probability 0 to every token not in banned_ids; "
            "check banned_ids and that the model output is a distribution"
        )
    # 3. Repetition penalty: P * log p for every id already in the text (p ** P).
    if repetition_penalty != 1:
        log_probabilities = penalize_repetitions(log_probabilities, previous_ids, repetition_penalty)
    # 4. No-repeat n-gram: ban completions of n-grams already in the text, unless nothing is left.
    if no_repeat_ngram:
        repeats = sorted(repeated_ngram_completions(previous_ids, no_repeat_ngram) & set(range(scores.size)))
        constrained = log_probabilities.copy()
        constrained[repeats] = -np.inf
        if np.isfinite(constrained.max(initial=-np.inf)):
            log_probabilities = constrained
        else:
            log.debug("every allowed token repeats a %d-gram; sampling without that constraint this step",
                      no_repeat_ngram)
    # 5. Temperature in log space, then a stable softmax (subtract the maximum first).
    scaled = log_probabilities / temperature
    distribution = np.exp(scaled - scaled.max())
    distribution /= distribution.sum()
    # 6. Top-k, then top-p. Most probable first; a stable sort breaks ties by the lower id, so
    #    results are reproducible.
    order = np.argsort(-distribution, kind="stable")
    keep = np.count_nonzero(distribution)
    if top_k:
        keep = min(keep, top_k)
    if top_p < 1.0:
        cumulative = np.cumsum(distribution[order[:keep]])
        cumulative /= cumulative[-1]  # the top-k set renormalised
        # First position where the cumulative mass reaches top_p; the 1e-12 absorbs rounding.
        keep = min(keep, int(np.searchsorted(cumulative, top_p - 1e-12, side="left")) + 1)
    kept = np.zeros_like(distribution)
    kept[order[:keep]] = distribution[order[:keep]]
    return kept / kept.sum()


def sample_next(
    probabilities: np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    banned_ids: Iterable[int] = (),
    from_logits: bool = False,
    previous_ids: Sequence[int] = (),
    repetition_penalty: float = 1.0,
    no_repeat_ngram: int = 0,
) -> int:
    """Pick the next token id: the argmax when ``greedy``, otherwise one draw from ``rng``.

    Args:
        probabilities: ``(vocab,)`` next-token probabilities (or logits with ``from_logits``).
        rng: the caller's seeded ``np.random.default_rng(seed)``; required unless ``greedy``.
        temperature, top_k, top_p, banned_ids, from_logits, previous_ids, repetition_penalty,
            no_repeat_ngram: see :func:`next_token_distribution`.
        greedy: take the most probable token after banning, the repetition penalty and the
            no-repeat n-gram constraint (temperature, top-k and top-p cannot change it).

    Returns:
        The chosen token id.
    """
    distribution = next_token_distribution(
        probabilities, temperature=temperature, top_k=top_k, top_p=top_p,
        banned_ids=banned_ids, from_logits=from_logits, previous_ids=previous_ids,
        repetition_penalty=repetition_penalty, no_repeat_ngram=no_repeat_ngram,
    )
    if greedy:
        return int(np.argmax(distribution))  # temperature and truncation never change the argmax
    if rng is None:
        raise ValueError("sample_next needs rng=np.random.default_rng(seed) unless greedy=True")
    # Inverse-CDF draw: the first id whose cumulative probability exceeds u; an id with
    # probability 0 is never chosen (its cumulative value equals its predecessor's).
    cumulative = np.cumsum(distribution)
    draw = rng.random() * cumulative[-1]
    return int(min(np.searchsorted(cumulative, draw, side="right"), distribution.size - 1))


def generate_tokens(
    step_fn: Callable[[list[int]], np.ndarray],
    prompt_ids: Sequence[int],
    *,
    max_tokens: int,
    eos_id: int | None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    rng: np.random.Generator | None = None,
    banned_ids: Iterable[int] = (),
    repetition_penalty: float = 1.0,
    no_repeat_ngram: int = 0,
) -> tuple[list[int], list[float]]:
    """Generate up to ``max_tokens`` ids after ``prompt_ids``, stopping early at ``eos_id``.

    Args:
        step_fn: ``step_fn(ids) -> (vocab,)`` probabilities of the next token given the whole
            prefix ``ids`` (prompt + generated so far; a fresh list each call). A stateful
            model may feed only ``ids[-1]`` if it has already read the rest.
        prompt_ids: the prefix, usually starting with the ``<s>`` id.
        max_tokens: the most tokens to generate (>= 0).
        eos_id: id of ``</s>``; when chosen, generation stops and it is **not** included in the
            returned ids. ``None``: only ``max_tokens`` stops.
        temperature, top_k, top_p, greedy, rng, banned_ids: see :func:`sample_next`.
        repetition_penalty, no_repeat_ngram: see :func:`next_token_distribution`; the text they
            look at is the prefix (prompt + generated so far) without ``eos_id``, so ending the
            sentence is never penalised (stream-trained runs start their prompt with ``</s>``).

    Returns:
        ``(generated_ids, chosen_probabilities)``: the new ids (prompt and ``</s>`` excluded)
        and, for each, the probability the model (``step_fn``, before every adjustment) gave
        it. ``len(generated_ids) < max_tokens`` means ``</s>`` was chosen.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ids, probs = generate_tokens(step, [bos_id], max_tokens=50, eos_id=eos_id,
        ...                              temperature=0.8, top_k=40, rng=rng,
        ...                              banned_ids=[0, 1, bos_id], no_repeat_ngram=3)  # doctest: +SKIP
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 0:
        raise PipelineError(f"max_tokens must be an integer >= 0, got {max_tokens!r}")
    # Fail before the first (possibly slow) step.
    check_settings(temperature, top_k, top_p, repetition_penalty, no_repeat_ngram)
    if not greedy and rng is None:
        raise ValueError("generate_tokens needs rng=np.random.default_rng(seed) unless greedy=True")
    banned_ids = list(banned_ids)  # an iterator would be used up after the first step
    ids = [int(token_id) for token_id in prompt_ids]
    text_ids = [token_id for token_id in ids if token_id != eos_id]  # what the repetition controls see
    generated_ids: list[int] = []
    chosen_probabilities: list[float] = []
    for _ in range(max_tokens):
        # 1. Ask the model for the next-token distribution given everything so far.
        probabilities = np.asarray(step_fn(list(ids)), dtype=np.float64)
        # 2. Ban ids, penalise and block repetitions of the text so far, apply temperature,
        #    top-k and top-p, then sample (or take the argmax).
        token_id = sample_next(
            probabilities, rng=rng, temperature=temperature, top_k=top_k, top_p=top_p,
            greedy=greedy, banned_ids=banned_ids, previous_ids=text_ids,
            repetition_penalty=repetition_penalty, no_repeat_ngram=no_repeat_ngram,
        )
        # 3. End of sentence: stop, without emitting </s>.
        if eos_id is not None and token_id == eos_id:
            break
        # 4. Append the choice to the prefix, so the next step conditions on it.
        ids.append(token_id)
        text_ids.append(token_id)
        generated_ids.append(token_id)
        chosen_probabilities.append(float(probabilities[token_id]))
    return generated_ids, chosen_probabilities


def detokenize(tokens: Sequence[str], language: str = "ja") -> str:
    """Join tokens back into text: no spaces for Japanese (and Chinese, Thai, ...), else one space.

    Args:
        tokens: surface forms, special tokens (``<s>``, ``</s>``) already removed.
        language: ISO 639-1 code, optionally with a region (``"ja"``, ``"ja_JP"``, ``"en-US"``).

    Returns:
        The text.

    Example:
        >>> detokenize(["今日", "は", "晴れ"]), detokenize(["it", "is", "sunny"], language="en")
        ('今日は晴れ', 'it is sunny')
    """
    if not isinstance(language, str) or not language.strip():
        raise PipelineError(f"language must be a language code such as 'ja' or 'en', got {language!r}")
    base_language = language.strip().lower().replace("-", "_").split("_")[0]
    separator = "" if base_language in LANGUAGES_WITHOUT_SPACES else " "
    return separator.join(tokens)
