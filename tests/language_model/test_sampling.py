import itertools

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.language_model.sampling import (
    detokenize,
    generate_tokens,
    next_token_distribution,
    penalize_repetitions,
    repeated_ngram_completions,
    sample_next,
)

PROBABILITIES = np.array([0.02, 0.03, 0.05, 0.4, 0.1, 0.25, 0.15])  # argmax 3, then 5, 6, 4


def random_distribution(vocab_size, seed):
    # distinct values in a random order: the top two differ by >= 2 ln(50/49) in log-probability
    weights = np.random.default_rng(seed).permutation(np.arange(1, vocab_size + 1)) ** 2.0
    return weights / weights.sum()


# ------------------------------------------------------------------ temperature
def test_temperature_one_keeps_the_model_distribution():
    np.testing.assert_allclose(next_token_distribution(PROBABILITIES), PROBABILITIES, rtol=1e-12)


def test_temperature_rescales_log_probabilities():
    expected = PROBABILITIES**0.5 / (PROBABILITIES**0.5).sum()  # T = 2: q ∝ p ** (1 / T)
    np.testing.assert_allclose(next_token_distribution(PROBABILITIES, temperature=2.0), expected, rtol=1e-12)
    logits = np.log(PROBABILITIES) + 7.0
    np.testing.assert_allclose(
        next_token_distribution(logits, temperature=2.0, from_logits=True), expected, rtol=1e-12
    )


def test_temperature_near_zero_equals_greedy():
    for seed in range(20):
        probabilities = random_distribution(50, seed)
        greedy_id = sample_next(probabilities, greedy=True)
        assert greedy_id == int(np.argmax(probabilities))
        distribution = next_token_distribution(probabilities, temperature=1e-4)
        assert distribution[greedy_id] == pytest.approx(1.0, abs=1e-12)
        rng = np.random.default_rng(seed)
        assert {sample_next(probabilities, rng=rng, temperature=1e-4) for _ in range(50)} == {greedy_id}


@pytest.mark.parametrize("temperature", [0, 0.0, -1.0, float("nan"), float("inf"), "1"])
def test_invalid_temperature_raises(temperature):
    with pytest.raises(PipelineError, match="temperature"):
        next_token_distribution(PROBABILITIES, temperature=temperature)


# ------------------------------------------------------------------ top-k, top-p
def test_top_k_never_emits_a_token_outside_the_k_best():
    probabilities = random_distribution(30, seed=1)
    best_five = set(np.argsort(-probabilities)[:5].tolist())
    distribution = next_token_distribution(probabilities, top_k=5)
    assert set(np.flatnonzero(distribution).tolist()) == best_five
    np.testing.assert_allclose(distribution.sum(), 1.0, rtol=1e-12)
    rng = np.random.default_rng(0)
    draws = {sample_next(probabilities, rng=rng, top_k=5, temperature=3.0) for _ in range(3000)}
    assert draws == best_five  # all five seen, nothing else


def test_top_k_zero_disables_and_large_k_keeps_all():
    np.testing.assert_allclose(next_token_distribution(PROBABILITIES, top_k=0), PROBABILITIES, rtol=1e-12)
    np.testing.assert_allclose(next_token_distribution(PROBABILITIES, top_k=100), PROBABILITIES, rtol=1e-12)


@pytest.mark.parametrize(
    ("top_p", "kept"),
    [
        (0.4, [3]),  # 0.4 reaches 0.4 exactly
        (0.41, [3, 5]),  # 0.65
        (0.65, [3, 5]),
        (0.8, [3, 5, 6]),  # 0.8
        (0.81, [3, 4, 5, 6]),  # 0.9
        (1.0, [0, 1, 2, 3, 4, 5, 6]),
    ],
)
def test_top_p_keeps_the_smallest_nucleus(top_p, kept):
    distribution = next_token_distribution(PROBABILITIES, top_p=top_p)
    assert sorted(np.flatnonzero(distribution).tolist()) == kept
    np.testing.assert_allclose(distribution[kept], PROBABILITIES[kept] / PROBABILITIES[kept].sum(), rtol=1e-12)


def test_top_p_applies_after_top_k():
    # top-k 2 keeps 0.4 and 0.25 -> renormalised 0.615, 0.385; top-p 0.6 keeps only the first
    distribution = next_token_distribution(PROBABILITIES, top_k=2, top_p=0.6)
    assert np.flatnonzero(distribution).tolist() == [3]


@pytest.mark.parametrize("top_p", [0, 0.0, -0.1, 1.5, float("nan")])
def test_invalid_top_p_raises(top_p):
    with pytest.raises(PipelineError, match="top_p"):
        next_token_distribution(PROBABILITIES, top_p=top_p)


def test_invalid_top_k_raises():
    with pytest.raises(PipelineError, match="top_k"):
        next_token_distribution(PROBABILITIES, top_k=-1)


# ------------------------------------------------------------------ banned ids, seeds
def test_banned_ids_never_sampled_even_when_most_probable():
    probabilities = np.array([0.5, 0.3, 0.1, 0.05, 0.05])  # pad, unk and <s> (2) dominate
    banned = [0, 1, 2]
    assert sample_next(probabilities, greedy=True, banned_ids=banned) == 3
    rng = np.random.default_rng(0)
    draws = {sample_next(probabilities, rng=rng, temperature=5.0, banned_ids=banned) for _ in range(2000)}
    assert draws == {3, 4}
    np.testing.assert_allclose(next_token_distribution(probabilities, banned_ids=banned), [0, 0, 0, 0.5, 0.5])


def test_everything_banned_raises():
    with pytest.raises(PipelineError, match="banned_ids"):
        next_token_distribution(np.array([0.5, 0.5, 0.0]), banned_ids=[0, 1])


def uniform_step(vocab_size=40):
    return lambda ids: np.full(vocab_size, 1.0 / vocab_size)


def test_fixed_seed_gives_identical_output_different_seed_differs():
    settings = {"max_tokens": 30, "eos_id": None, "temperature": 1.0, "banned_ids": [0, 1, 2]}
    first = generate_tokens(uniform_step(), [2], rng=np.random.default_rng(7), **settings)
    again = generate_tokens(uniform_step(), [2], rng=np.random.default_rng(7), **settings)
    other = generate_tokens(uniform_step(), [2], rng=np.random.default_rng(8), **settings)
    assert first == again
    assert first[0] != other[0]
    assert len(first[0]) == 30 and not {0, 1, 2} & set(first[0])


def test_sampling_without_rng_is_an_error_but_greedy_needs_none():
    with pytest.raises(ValueError, match="rng"):
        sample_next(PROBABILITIES)
    assert sample_next(PROBABILITIES, greedy=True) == 3


# ------------------------------------------------------------------ generate_tokens
def test_generate_tokens_stops_at_eos_which_is_not_returned():
    eos_id, vocab_size = 3, 8
    seen_prefixes = []

    def step(ids):
        seen_prefixes.append(list(ids))
        probabilities = np.full(vocab_size, 0.01)
        # the prefix decides: 4 after <s>, then 5, 6, then </s>
        probabilities[{1: 4, 2: 5, 3: 6}.get(len(ids), eos_id)] = 1.0
        return probabilities / probabilities.sum()

    ids, chosen = generate_tokens(step, [2], max_tokens=10, eos_id=eos_id, greedy=True, banned_ids=[0, 1, 2])
    assert ids == [4, 5, 6]
    np.testing.assert_allclose(chosen, [1.0 / 1.07] * 3)  # the model's probability, not the adjusted one
    assert seen_prefixes == [[2], [2, 4], [2, 4, 5], [2, 4, 5, 6]]  # the whole prefix each step


def test_generate_tokens_stops_at_max_tokens():
    ids, chosen = generate_tokens(
        uniform_step(), [2, 9], max_tokens=5, eos_id=3, rng=np.random.default_rng(0), banned_ids=[0, 1, 2, 3]
    )
    assert len(ids) == len(chosen) == 5
    np.testing.assert_allclose(chosen, 1 / 40)
    assert generate_tokens(uniform_step(), [2], max_tokens=0, eos_id=3, greedy=True) == ([], [])


def test_generate_tokens_validates_before_stepping():
    def step(ids):
        raise AssertionError("step_fn must not be called")

    with pytest.raises(PipelineError, match="max_tokens"):
        generate_tokens(step, [2], max_tokens=-1, eos_id=3, greedy=True)
    with pytest.raises(PipelineError, match="temperature"):
        generate_tokens(step, [2], max_tokens=5, eos_id=3, temperature=0, rng=np.random.default_rng(0))


# ------------------------------------------------------------------ detokenize
def test_detokenize_japanese_without_spaces_others_with_one():
    assert detokenize(["今日", "は", "晴れ", "です"]) == "今日は晴れです"
    assert detokenize(["今日", "は"], language="ja_JP") == "今日は"
    assert detokenize(["it", "is", "sunny"], language="en") == "it is sunny"
    assert detokenize([], language="en") == ""
    with pytest.raises(PipelineError, match="language"):
        detokenize(["a"], language="")


# ------------------------------------------------------------------ repetition controls: numpy reference
def reference_distribution(probabilities, previous_ids=(), penalty=1.0, ngram=0, temperature=1.0, banned=()):
    """Ban, CTRL penalty on log p, no-repeat n-gram (falling back when nothing is left), temperature."""
    logits = np.log(np.asarray(probabilities, dtype=np.float64) / np.sum(probabilities))
    logits[list(banned)] = -np.inf
    seen = sorted(set(previous_ids))
    logits[seen] = np.where(logits[seen] > 0, logits[seen] / penalty, logits[seen] * penalty)
    if ngram and len(previous_ids) >= ngram:
        seen_ngrams = {tuple(previous_ids[i:i + ngram]) for i in range(len(previous_ids) - ngram + 1)}
        context = tuple(previous_ids[len(previous_ids) - ngram + 1:])
        blocked = [token for token in range(len(logits)) if context + (token,) in seen_ngrams]
        constrained = logits.copy()
        constrained[blocked] = -np.inf
        if np.isfinite(constrained).any():
            logits = constrained
    weights = np.exp(logits / temperature)
    return weights / weights.sum()


@pytest.mark.parametrize(("previous_ids", "ngram_size", "expected"), [
    ([3, 5, 6, 3], 2, {5}),  # context (3,): 3 was followed by 5
    ([3, 5, 6, 3, 5], 3, {6}),  # context (3, 5)
    ([3, 5, 3, 6, 3], 2, {5, 6}),  # 3 followed by 5 and by 6
    ([3, 5, 6], 1, {3, 5, 6}),  # unigrams: no token of the text again
    ([3, 5], 2, set()),  # context (5,) never seen before
    ([3, 5], 3, set()),  # fewer ids than n: no n-gram yet
    ([7, 7, 7], 2, {7}),
    ([3, 5, 3], 0, set()),  # off
])
def test_repeated_ngram_completions(previous_ids, ngram_size, expected):
    assert repeated_ngram_completions(previous_ids, ngram_size) == expected


def test_penalize_repetitions_follows_ctrl_on_both_signs():
    logits = np.array([2.0, -2.0, 0.0, 3.0, -1.0])
    penalized = penalize_repetitions(logits, [0, 1, 2, 1], 2.0)  # 1 twice: penalised once
    np.testing.assert_array_equal(penalized, [1.0, -4.0, 0.0, 3.0, -1.0])
    np.testing.assert_array_equal(logits, [2.0, -2.0, 0.0, 3.0, -1.0])  # the input is left alone


def test_repetition_penalty_raises_the_probability_of_seen_tokens_to_the_power_p():
    # P = 2, tokens 3 and 5 already in the text: 0.4 -> 0.16, 0.25 -> 0.0625, then renormalise
    distribution = next_token_distribution(PROBABILITIES, previous_ids=[3, 5, 3], repetition_penalty=2.0)
    expected = np.array([0.02, 0.03, 0.05, 0.16, 0.1, 0.0625, 0.15]) / 0.5725
    np.testing.assert_allclose(distribution, expected, rtol=1e-12)
    np.testing.assert_allclose(distribution, reference_distribution(PROBABILITIES, [3, 5, 3], penalty=2.0),
                               rtol=1e-12)


def test_repetition_penalty_one_or_no_history_changes_nothing():
    np.testing.assert_allclose(next_token_distribution(PROBABILITIES, previous_ids=[3, 5], repetition_penalty=1.0),
                               PROBABILITIES, rtol=1e-12)
    np.testing.assert_allclose(next_token_distribution(PROBABILITIES, repetition_penalty=3.0), PROBABILITIES,
                               rtol=1e-12)


def test_repetition_penalty_on_logits_does_not_depend_on_their_offset():
    """Logits are log-softmaxed first, so shifting them (here: all positive) changes nothing."""
    expected = next_token_distribution(PROBABILITIES, previous_ids=[3, 5], repetition_penalty=1.7)
    for offset in (-3.0, 0.0, 7.0):
        logits = np.log(PROBABILITIES) + offset
        np.testing.assert_allclose(next_token_distribution(logits, from_logits=True, previous_ids=[3, 5],
                                                           repetition_penalty=1.7), expected, rtol=1e-12)


def test_no_repeat_ngram_zeroes_completions_and_renormalises():
    bigram = next_token_distribution(PROBABILITIES, previous_ids=[3, 5, 6, 3], no_repeat_ngram=2)
    np.testing.assert_allclose(bigram, np.array([0.02, 0.03, 0.05, 0.4, 0.1, 0.0, 0.15]) / 0.75, rtol=1e-12)
    trigram = next_token_distribution(PROBABILITIES, previous_ids=[3, 5, 6, 3, 5], no_repeat_ngram=3)
    np.testing.assert_allclose(trigram, np.array([0.02, 0.03, 0.05, 0.4, 0.1, 0.25, 0.0]) / 0.85, rtol=1e-12)
    unigram = next_token_distribution(PROBABILITIES, previous_ids=[3, 5, 6], no_repeat_ngram=1)
    np.testing.assert_allclose(unigram, np.array([0.02, 0.03, 0.05, 0.0, 0.1, 0.0, 0.0]) / 0.2, rtol=1e-12)
    for distribution, previous, n in ((bigram, [3, 5, 6, 3], 2), (trigram, [3, 5, 6, 3, 5], 3)):
        np.testing.assert_allclose(distribution, reference_distribution(PROBABILITIES, previous, ngram=n),
                                   rtol=1e-12)


def test_penalty_and_ngram_come_before_temperature():
    # T = 0.5, P = 2, history [3, 5, 3]: the bigram (3, 5) bans 5; seen 3 gets p ** (P / T) = 0.4 ** 4,
    # the unseen ones p ** (1 / T)
    distribution = next_token_distribution(PROBABILITIES, temperature=0.5, previous_ids=[3, 5, 3],
                                           repetition_penalty=2.0, no_repeat_ngram=2)
    weights = np.array([0.02**2, 0.03**2, 0.05**2, 0.4**4, 0.1**2, 0.0, 0.15**2])
    np.testing.assert_allclose(distribution, weights / weights.sum(), rtol=1e-12)
    np.testing.assert_allclose(distribution, reference_distribution(
        PROBABILITIES, [3, 5, 3], penalty=2.0, ngram=2, temperature=0.5), rtol=1e-12)


def test_penalty_comes_before_top_k_and_top_p():
    # 3 (0.4) seen, P = 2: 0.16 falls below 5 (0.25), so the single best token is now 5
    penalized = {"previous_ids": [3], "repetition_penalty": 2.0}
    assert np.flatnonzero(next_token_distribution(PROBABILITIES, top_k=1, **penalized)).tolist() == [5]
    np.testing.assert_allclose(next_token_distribution(PROBABILITIES, top_k=2, **penalized)[[3, 5]],
                               np.array([0.16, 0.25]) / 0.41, rtol=1e-12)
    # after the penalty 5 holds 0.25 / 0.76 = 0.329 >= 0.3; without it top-p 0.3 keeps only 3
    assert np.flatnonzero(next_token_distribution(PROBABILITIES, top_p=0.3, **penalized)).tolist() == [5]
    assert np.flatnonzero(next_token_distribution(PROBABILITIES, top_p=0.3)).tolist() == [3]
    assert sorted(np.flatnonzero(next_token_distribution(PROBABILITIES, top_p=0.5, **penalized)).tolist()) == [3, 5]
    assert sample_next(PROBABILITIES, greedy=True, **penalized) == 5


def test_ngram_ban_comes_before_top_k():
    # history [6, 3, 6]: 6 was followed by 3, so 3 (the most probable) is out; top-2 of the rest: 5, 6
    distribution = next_token_distribution(PROBABILITIES, top_k=2, previous_ids=[6, 3, 6], no_repeat_ngram=2)
    expected = np.zeros(7)
    expected[[5, 6]] = np.array([0.25, 0.15]) / 0.4
    np.testing.assert_allclose(distribution, expected, rtol=1e-12)
    assert sample_next(PROBABILITIES, greedy=True, previous_ids=[6, 3, 6], no_repeat_ngram=2) == 5


def test_ngram_ban_that_leaves_nothing_falls_back_to_the_unconstrained_distribution():
    probabilities = np.array([0.1, 0.2, 0.3, 0.4])
    # every allowed token (1, 2, 3; 0 banned) is in the text: n = 1 would ban them all
    fallback = next_token_distribution(probabilities, banned_ids=[0], previous_ids=[1, 2, 3], no_repeat_ngram=1)
    np.testing.assert_allclose(fallback, np.array([0.0, 0.2, 0.3, 0.4]) / 0.9, rtol=1e-12)
    # the ban is dropped, not the penalty nor banned_ids
    penalized = next_token_distribution(probabilities, banned_ids=[0], previous_ids=[1, 2, 3], no_repeat_ngram=1,
                                        repetition_penalty=2.0)
    np.testing.assert_allclose(penalized, np.array([0.0, 0.04, 0.09, 0.16]) / 0.29, rtol=1e-12)
    np.testing.assert_allclose(penalized, reference_distribution(probabilities, [1, 2, 3], penalty=2.0, ngram=1,
                                                                 banned=[0]), rtol=1e-12)
    # a partial ban is kept: after 1, both 2 and 3 were seen, only 1 remains
    partial = next_token_distribution(probabilities, banned_ids=[0], previous_ids=[1, 2, 1, 3, 1], no_repeat_ngram=2)
    np.testing.assert_allclose(partial, [0.0, 1.0, 0.0, 0.0])


def test_generate_tokens_keeps_going_after_every_ngram_is_used():
    """Vocabulary {1, 2, 3} allowed, n = 1: three distinct tokens, then the fallback, no error."""
    def step(ids):
        return np.array([0.1, 0.2, 0.3, 0.4])

    ids, _ = generate_tokens(step, [0], max_tokens=8, eos_id=None, rng=np.random.default_rng(0),
                             banned_ids=[0], no_repeat_ngram=1)
    assert len(ids) == 8 and sorted(ids[:3]) == [1, 2, 3]
    greedy, _ = generate_tokens(step, [0], max_tokens=5, eos_id=None, greedy=True, banned_ids=[0], no_repeat_ngram=1)
    assert greedy == [3, 2, 1, 3, 3]  # most probable unused first; then the plain argmax


def loop_step(vocab_size=8):
    """A model stuck in a loop: after 5 it wants 4, after anything else 5 (probability 0.72)."""
    def step(ids):
        probabilities = np.full(vocab_size, 0.04)
        probabilities[4 if ids[-1] == 5 else 5] = 0.72
        return probabilities
    return step


def test_no_repeat_ngram_breaks_a_greedy_loop():
    plain, _ = generate_tokens(loop_step(), [2], max_tokens=6, eos_id=None, greedy=True, banned_ids=[0, 1, 2])
    assert plain == [5, 4, 5, 4, 5, 4]
    ids, _ = generate_tokens(loop_step(), [2], max_tokens=6, eos_id=None, greedy=True, banned_ids=[0, 1, 2],
                             no_repeat_ngram=2)
    # 2 5 4 5 | (5, 4) seen: the lowest id among the 0.04s, 3 | 5 | (5, 4) and (5, 3) seen: 5
    assert ids == [5, 4, 5, 3, 5, 5]
    text = [2, *ids]
    bigrams = list(itertools.pairwise(text))
    assert len(bigrams) == len(set(bigrams))


def test_generate_tokens_matches_the_numpy_reference_step_by_step():
    """Greedy decoding with both options: each choice is the argmax of the reference distribution."""
    def step(ids):  # a fixed random distribution per prefix length
        return random_distribution(12, seed=len(ids))

    banned = [0, 1, 2]
    ids, chosen = generate_tokens(step, [2, 7], max_tokens=15, eos_id=None, greedy=True, banned_ids=banned,
                                  repetition_penalty=1.8, no_repeat_ngram=2)
    text = [2, 7]
    for token in ids:
        expected = reference_distribution(step(text), text, penalty=1.8, ngram=2, banned=banned)
        assert token == int(np.argmax(expected))
        text.append(token)
    np.testing.assert_allclose(chosen, [step([0] * (2 + i))[token] for i, token in enumerate(ids)])


def test_repetition_options_with_a_fixed_seed_are_deterministic():
    settings = {"max_tokens": 30, "eos_id": None, "temperature": 0.9, "top_k": 20, "top_p": 0.95,
                "banned_ids": [0, 1, 2], "repetition_penalty": 1.5, "no_repeat_ngram": 2}

    def step(ids):
        return random_distribution(40, seed=len(ids))

    first = generate_tokens(step, [2], rng=np.random.default_rng(7), **settings)
    again = generate_tokens(step, [2], rng=np.random.default_rng(7), **settings)
    other = generate_tokens(step, [2], rng=np.random.default_rng(8), **settings)
    assert first == again and first[0] != other[0]
    text = [2, *first[0]]
    bigrams = list(itertools.pairwise(text))
    assert len(bigrams) == len(set(bigrams))


def test_end_of_sentence_is_never_penalised_nor_banned():
    """Stream-trained runs start with </s>; it must stay available to end the sample."""
    eos_id = 3

    def step(ids):
        probabilities = np.full(8, 0.05)
        probabilities[eos_id if len(ids) > 2 else 6] = 0.65
        return probabilities

    for options in ({"no_repeat_ngram": 1}, {"repetition_penalty": 50.0}):
        ids, _ = generate_tokens(step, [eos_id, 5], max_tokens=10, eos_id=eos_id, greedy=True, banned_ids=[0, 1, 2],
                                 **options)
        assert ids == [6], options


@pytest.mark.parametrize("penalty", [0.5, 0, -1.0, float("nan"), float("inf"), True, "2"])
def test_invalid_repetition_penalty_raises(penalty):
    with pytest.raises(PipelineError, match="repetition_penalty") as error:
        next_token_distribution(PROBABILITIES, repetition_penalty=penalty)
    assert repr(penalty) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("ngram", [-1, 1.5, True, "2"])
def test_invalid_no_repeat_ngram_raises(ngram):
    with pytest.raises(PipelineError, match="no_repeat_ngram") as error:
        next_token_distribution(PROBABILITIES, no_repeat_ngram=ngram)
    assert repr(ngram) in str(error.value)


def test_generate_tokens_validates_repetition_options_before_stepping():
    def step(ids):
        raise AssertionError("step_fn must not be called")

    with pytest.raises(PipelineError, match="repetition_penalty"):
        generate_tokens(step, [2], max_tokens=5, eos_id=3, greedy=True, repetition_penalty=0.9)
    with pytest.raises(PipelineError, match="no_repeat_ngram"):
        generate_tokens(step, [2], max_tokens=5, eos_id=3, greedy=True, no_repeat_ngram=-2)
