"""The array Kneser-Ney model (``pipeline.language_model.ngram``) against the pure-Python one it replaced.

``kneser_ney_reference.ReferenceKneserNeyModel`` is the module before its counts moved into NumPy
arrays, itself checked against hand-computed values and a direct implementation of the equations
(``test_ngram.py`` ran on it unchanged). Here both models are fitted on the same text and must
agree on every count, discount and context statistic exactly and on every probability to 1e-9,
on a seeded corpus and on Hypothesis' tiny corpora, where fallback discounts and unseen contexts
abound. Hypothesis also checks that every context's distribution over the vocabulary sums to 1.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kneser_ney_reference import ReferenceKneserNeyModel

from pipeline.language_model.ngram import KneserNeyModel

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOLERANCE = 1e-9


def seeded_corpus(seed, sentences, words):
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{index}" for index in range(words)]
    corpus = [list(rng.choice(vocabulary, size=rng.integers(0, 12))) for _ in range(sentences)]
    return corpus + [["w1", "w2", "w3", "w4", "w5"]] * 5  # counts of 3 and more at every order


def fit_both(corpus, order, discount, vocabulary=None, **tokens):
    new = KneserNeyModel(order=order, discount=discount, **tokens).fit(corpus, vocabulary=vocabulary)
    old = ReferenceKneserNeyModel(order=order, discount=discount, **tokens).fit(corpus, vocabulary=vocabulary)
    return new, old


def predicted_positions(model, sentences):
    """``(word, context)`` of every predicted token of ``sentences`` in scoring order, mapped as the
    reference's scoring maps them (``<s>`` and the pad token inside a sentence are ``<unk>``)."""
    padded = [model._pad(sentence) for sentence in sentences]
    return [(tokens[index], tuple(tokens[:index])) for tokens in padded for index in range(model.order - 1,
                                                                                            len(tokens))]


def assert_same_statistics(new, old):
    assert new.vocabulary == old.vocabulary
    assert new.count_of_counts == old.count_of_counts
    assert new.discounts == old.discounts
    for k in range(new.order):
        assert dict(new.counts[k]) == dict(old.counts[k]), f"order {k + 1}"
        for name in ("totals", "followers", "ones", "twos"):
            assert dict(getattr(new.contexts[k], name)) == dict(getattr(old.contexts[k], name)), (k + 1, name)


def assert_same_scores(new, old, sentences, contexts=()):
    expected = [math.log(old.probability(word, context)) for word, context in predicted_positions(old, sentences)]
    np.testing.assert_allclose(new.token_log_probabilities(sentences), expected, rtol=0, atol=TOLERANCE)
    new_sum, new_count = new.cross_entropy(sentences)
    old_sum, old_count = old.cross_entropy(sentences)
    assert new_count == old_count and new_sum == pytest.approx(old_sum, rel=TOLERANCE)
    for context in contexts:
        for word in [*old.vocabulary, old.bos_token]:
            assert new.probability(word, context) == pytest.approx(old.probability(word, context), abs=TOLERANCE)


@pytest.mark.parametrize("discount", ["modified", 0.75])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_agrees_with_the_pure_python_model_on_a_seeded_corpus(order, discount):
    train, test = seeded_corpus(0, 300, 40), seeded_corpus(1, 80, 45)  # w40..w44 never trained: <unk>
    vocabulary = ["<pad>", "<s>", *[f"w{index}" for index in range(36)], "never_seen"]  # w36..: <unk> in training
    new, old = fit_both(train, order, discount, vocabulary, pad_token="<pad>")
    assert_same_statistics(new, old)
    contexts = [(), ("w1",), ("w1", "w2", "w3", "w4"), ("w44", "w2"), ("never_seen", "w1"), ("w2", "</s>"),
                ("<s>",) * 4, ("w1", "<s>", "w2"), ("<pad>", "w3")]
    assert_same_scores(new, old, test + [[], ["<s>", "<pad>", "</s>", "<unk>"]], contexts)


def test_agrees_with_the_pure_python_model_on_token_ids():
    # the evaluate stage's numbering: pad 0, unk 1, <s> 2, </s> 3, words from 4
    rng = np.random.default_rng(2)
    train = [list(rng.integers(4, 30, size=rng.integers(0, 10))) for _ in range(200)]
    test = [list(rng.integers(0, 34, size=rng.integers(0, 10))) for _ in range(50)]  # 0..3 and >= 30 included
    new, old = fit_both(train, 4, "modified", range(30), bos_token=2, eos_token=3, unk_token=1, pad_token=0)
    assert_same_statistics(new, old)
    assert_same_scores(new, old, test, [(2, 5), (7, 8, 9), (3,), (40, 5)])


@pytest.mark.parametrize("max_tokens", [1, 3, 6])
def test_max_tokens_scores_the_first_targets_of_each_sentence(max_tokens):
    train, test = seeded_corpus(0, 100, 20), seeded_corpus(1, 30, 20)
    new, old = fit_both(train, 3, "modified")
    expected = [math.log(old.probability(word, context)) for sentence in test
                for word, context in predicted_positions(old, [sentence])[:max_tokens]]
    assert len(expected) == sum(min(len(sentence) + 1, max_tokens) for sentence in test)
    np.testing.assert_allclose(new.token_log_probabilities(test, max_tokens=max_tokens), expected,
                               rtol=0, atol=TOLERANCE)


# ------------------------------------------------------------------ properties
WORDS = ["a", "b", "c", "d", "e"]
sentences = st.lists(st.lists(st.sampled_from(WORDS), max_size=7), min_size=1, max_size=10)
discounts = st.one_of(st.just("modified"), st.floats(0.05, 1.0))
contexts = st.lists(st.sampled_from([*WORDS, "<s>", "</s>", "<unk>", "zzz"]), max_size=5).map(tuple)


@PROPERTY
@given(corpus=sentences, order=st.integers(1, 5), discount=discounts, context=contexts,
       vocabulary=st.one_of(st.none(), st.lists(st.sampled_from(WORDS), min_size=1, unique=True)))
def test_every_context_is_a_distribution_over_the_vocabulary(corpus, order, discount, context, vocabulary):
    model = KneserNeyModel(order=order, discount=discount).fit(corpus, vocabulary=vocabulary)
    probabilities = [model.probability(word, context) for word in model.vocabulary]
    assert math.fsum(probabilities) == pytest.approx(1.0, abs=1e-12)
    assert min(probabilities) > 0
    assert model.probability("<s>", context) == 0.0


@PROPERTY
@given(corpus=sentences, test=sentences, order=st.integers(1, 5), discount=discounts, context=contexts)
def test_agrees_with_the_pure_python_model_on_any_tiny_corpus(corpus, test, order, discount, context):
    new, old = fit_both(corpus, order, discount)
    assert_same_statistics(new, old)
    assert_same_scores(new, old, test, [context])
