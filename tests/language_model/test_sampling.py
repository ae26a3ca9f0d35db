import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.language_model.sampling import detokenize, generate_tokens, next_token_distribution, sample_next

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
    settings = dict(max_tokens=30, eos_id=None, temperature=1.0, banned_ids=[0, 1, 2])
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
