import doctest
import math
from collections import Counter

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.language_model import ngram
from pipeline.language_model.ngram import KneserNeyModel
from pipeline.language_model.ngram_counts import FALLBACK_DISCOUNTS, modified_discounts

TINY_CORPUS = [["a", "b"], ["a", "c"], ["b", "a"]]
# Order 2 on this corpus has bigram counts with n1..n4 = 4, 2, 1, 1 (see test_modified_discounts_of_a_small_corpus).
DISCOUNT_CORPUS = [["a", "b", "a", "b", "a", "b", "a", "b"], ["c", "d", "c", "d", "c"]]


def tiny_model(order=3, discount=0.75):
    return KneserNeyModel(order=order, discount=discount).fit(TINY_CORPUS)


def random_sentences(rng, sentences, words=30):
    vocabulary = [f"w{index}" for index in range(words)]
    return [list(rng.choice(vocabulary, size=rng.integers(1, 8))) for _ in range(sentences)]


def random_corpus(seed, sentences=200, words=30):
    return random_sentences(np.random.default_rng(seed), sentences, words)


def reference_probability(sentences, order, discount, word, context, vocabulary):
    """The module equations computed the slow, obvious way: every count recounted from the text."""
    padded = [["<s>"] * (order - 1) + [w if w in vocabulary else "<unk>" for w in s] + ["</s>"] for s in sentences]
    raw = Counter(tuple(s[i - order + 1:i + 1]) for s in padded for i in range(order - 1, len(s)))
    counts = {order: raw}
    for k in range(order - 1, 0, -1):  # continuation counts: distinct words before each k-gram
        counts[k] = Counter(gram[1:] for gram in counts[k + 1])
    predicted = set(vocabulary) - {"<s>"} | {"<unk>", "</s>"}
    history = ["<s>"] * (order - 1) + [w if w in vocabulary or w == "<s>" else "<unk>" for w in context]
    history = tuple(history[len(history) - (order - 1):])
    word = word if word in vocabulary or word == "</s>" else "<unk>"

    def level(k):
        if k == 0:
            return 1 / len(predicted)
        frequency = Counter(counts[k].values())
        if discount == "modified":
            d1, d2, d3 = modified_discounts([frequency[r] for r in (1, 2, 3, 4)])
        else:
            d1 = d2 = d3 = discount
        context_k = history[len(history) - (k - 1):] if k > 1 else ()
        followers = [c for gram, c in counts[k].items() if gram[:-1] == context_k]
        if not followers:
            return level(k - 1)
        total = sum(followers)
        gamma = (d1 * followers.count(1) + d2 * followers.count(2) + d3 * sum(c >= 3 for c in followers)) / total
        c = counts[k].get((*context_k, word), 0)
        return (c - (0, d1, d2, d3)[min(c, 3)]) / total + gamma * level(k - 1)

    return level(order)


# ------------------------------------------------------------------ the old trigram model
def test_one_probability_by_hand():
    # Padded: <s> <s> a b </s> | <s> <s> a c </s> | <s> <s> b a </s>; D = 0.75, V = {a, b, c, <unk>, </s>}.
    # Trigram (<s>, a): c(<s> a .) = 2 over 2 followers; c(<s> a b) = 1.
    # Bigram continuation after a: N1+(. a b) = N1+(. a c) = N1+(. a </s>) = 1 -> total 3, 3 followers.
    # Unigram continuation: N1+(. a) = 2, N1+(. b) = 2, N1+(. c) = 1, N1+(. </s>) = 3 -> total 8, 4 types.
    unigram = (2 - 0.75) / 8 + 0.75 * 4 / 8 * (1 / 5)  # 0.23125
    bigram = (1 - 0.75) / 3 + 0.75 * 3 / 3 * unigram  # 0.2567708...
    trigram = (1 - 0.75) / 2 + 0.75 * 2 / 2 * bigram  # 0.317578125
    assert trigram == pytest.approx(0.317578125, abs=1e-15)
    assert tiny_model().probability("b", ("<s>", "a")) == pytest.approx(trigram, abs=1e-15)


# What KneserNeyTrigramModel(discount=0.75) (this module before modified discounts) gave.
OLD_TRIGRAM_PROBABILITIES = {
    (): {"</s>": 0.13359375, "<unk>": 0.028125000000000004, "a": 0.5658854166666667,
         "b": 0.23255208333333333, "c": 0.039843750000000004},
    ("<s>", "a"): {"</s>": 0.262890625, "<unk>": 0.0421875, "a": 0.13007812500000002,
                   "b": 0.317578125, "c": 0.247265625},
    ("c", "a"): {"</s>": 0.35052083333333334, "<unk>": 0.05625000000000001, "a": 0.17343750000000002,
                 "b": 0.25677083333333334, "c": 0.16302083333333334},
    ("a", "zzz"): {"</s>": 0.35625, "<unk>": 0.07500000000000001, "a": 0.23125, "b": 0.23125,
                   "c": 0.10625000000000001},
}


@pytest.mark.parametrize("context", list(OLD_TRIGRAM_PROBABILITIES))
def test_order_3_fixed_discount_gives_the_old_trigram_probabilities(context):
    model = tiny_model(order=3, discount=0.75)
    for word, expected in OLD_TRIGRAM_PROBABILITIES[context].items():
        assert model.probability(word, context) == pytest.approx(expected, rel=1e-14), word


def test_order_3_fixed_discount_gives_the_old_trigram_perplexities():
    assert tiny_model(3, 0.75).perplexity(TINY_CORPUS) == pytest.approx(2.330418617003172, rel=1e-13)
    assert tiny_model(3, 0.75).perplexity([["c", "b", "a"], ["zzz"]]) == pytest.approx(6.7472769775621675, rel=1e-13)
    assert tiny_model(3, 0.5).perplexity([["c", "b", "a"], ["zzz"]]) == pytest.approx(9.179355959296815, rel=1e-13)
    rng = np.random.default_rng(0)
    train, test = random_sentences(rng, 200), random_sentences(rng, 50)
    model = KneserNeyModel(order=3, discount=0.75).fit(train)
    cross_entropy_sum, token_count = model.cross_entropy(test)
    assert token_count == 255
    assert cross_entropy_sum == pytest.approx(880.2512127932159, rel=1e-13)
    assert model.perplexity(test) == pytest.approx(31.56236848975129, rel=1e-13)


# ------------------------------------------------------------------ a proper distribution
def contexts_for(order):
    """Seen, partially seen and unseen contexts of the random corpus, long and short."""
    return [
        (),  # start of a sentence: always seen
        ("w1",),
        ("w3", "w4"),
        ("w1", "w2", "w3", "w4", "w5"),  # longer than any order here needs
        ("w27", "w2", "w0"),  # w27 is outside the caller's vocabulary below: <unk>
        ("never_seen", "w0"),  # in the vocabulary, never in training: an unseen context
        ("w0", "never_seen"),
        ("</s>", "</s>"),  # </s> is never a context in training
        ("<s>",) * order,
    ]


@pytest.mark.parametrize("discount", ["modified", 0.75, 0.3, 1.0])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_probabilities_over_the_vocabulary_sum_to_one(order, discount):
    corpus = random_corpus(0) + [["w1", "w2", "w3", "w4", "w5", "w6"]] * 3  # some counts of 3 and more
    vocabulary = ["<pad>", "<unk>", "<s>", "</s>", *[f"w{index}" for index in range(25)], "never_seen"]
    model = KneserNeyModel(order=order, discount=discount, pad_token="<pad>").fit(corpus, vocabulary=vocabulary)
    assert "<pad>" not in model.vocabulary and "<s>" not in model.vocabulary
    assert len(model.vocabulary) == 25 + 3  # w0..w24, never_seen, <unk>, </s>
    if discount == "modified" and order >= 2:
        assert model.discounts[-1] != FALLBACK_DISCOUNTS  # estimated from the counts, not fallen back
    for context in contexts_for(order):
        probabilities = [model.probability(word, context) for word in model.vocabulary]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-12), context
        assert min(probabilities) > 0, context
        assert model.probability("<s>", context) == 0.0
        assert model.probability("<pad>", context) == 0.0


@pytest.mark.parametrize("discount", ["modified", 0.75])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_tiny_corpus_sums_to_one_with_fallback_discounts(order, discount):
    model = tiny_model(order, discount)
    assert model.vocabulary == {"a", "b", "c", "<unk>", "</s>"}
    for context in [(), ("a",), ("<s>", "a"), ("c", "a"), ("b", "c"), ("a", "zzz"), ("a", "b", "a", "c")]:
        total = sum(model.probability(word, context) for word in model.vocabulary)
        assert total == pytest.approx(1.0, abs=1e-12), context
    for discounts in model.discounts:
        assert all(0 < discount_r <= r for r, discount_r in enumerate(discounts, start=1))


@pytest.mark.parametrize("discount", ["modified", 0.75])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_a_direct_implementation_of_the_equations(order, discount):
    corpus = random_corpus(3, sentences=60, words=12) + [["w1", "w2", "w3"]] * 4
    vocabulary = [f"w{index}" for index in range(10)]  # w10, w11 -> <unk>
    model = KneserNeyModel(order=order, discount=discount).fit(corpus, vocabulary=vocabulary)
    for context in [(), ("w1",), ("w1", "w2"), ("w11", "w2"), ("w5", "w5", "w5"), ("w3", "w1", "w2")]:
        for word in [*vocabulary, "w11", "</s>"]:
            expected = reference_probability(corpus, order, discount, word, context, vocabulary)
            assert model.probability(word, context) == pytest.approx(expected, rel=1e-12), (context, word)


# ------------------------------------------------------------------ modified discounts
def test_modified_discounts_by_hand():
    # Y = 10 / (10 + 8) = 5/9; D1 = 1 - 2 Y 4/10 = 5/9; D2 = 2 - 3 Y 2/4 = 7/6; D3+ = 3 - 4 Y 1/2 = 17/9
    assert modified_discounts((10, 4, 2, 1)) == pytest.approx((5 / 9, 7 / 6, 17 / 9), rel=1e-15)
    # Y = 0.6: D1 = 0.6; D2 = 2 - 3 Y 2/1 = -1.6 is out of (0, 2] -> fallback 1; D3+ = 3 - 4 Y 2/2 = 0.6
    assert modified_discounts((3, 1, 2, 2)) == pytest.approx((0.6, 1.0, 0.6), rel=1e-15)


@pytest.mark.parametrize(("count_of_counts", "expected"), [
    ((0, 0, 0, 0), FALLBACK_DISCOUNTS),  # nothing counted
    ((5, 0, 0, 0), FALLBACK_DISCOUNTS),  # every n-gram seen once: no n2, Y = 1
    ((0, 3, 2, 1), FALLBACK_DISCOUNTS),  # no singletons: Y = 0
    ((4, 2, 0, 0), (0.5, 1.0, 1.5)),  # D1 = 1 - 2 (1/2) 2/4 = 0.5; n3 = 0: D2 and D3+ fall back
    ((4, 2, 1, 0), (0.5, 1.25, 1.5)),  # D2 = 2 - 3 (1/2) 1/2; n4 = 0: D3+ falls back
    ((1, 1, 1, 1), (1 / 3, 1.0, 3 - 4 / 3)),  # Y = 1/3: D2 = 2 - 1 = 1 (estimated, equal to the fallback)
])
def test_degenerate_count_of_counts_fall_back(count_of_counts, expected):
    discounts = modified_discounts(count_of_counts)
    assert discounts == pytest.approx(expected, rel=1e-15)
    assert all(0 < discount <= r for r, discount in enumerate(discounts, start=1))


def test_modified_discounts_of_a_small_corpus():
    # Padded <s> a b a b a b a b </s> | <s> c d c d c </s>. Bigram counts:
    #   (a b) 4; (b a) 3; (c d) 2, (d c) 2; (<s> a), (b </s>), (<s> c), (c </s>) 1 -> n1..n4 = 4, 2, 1, 1
    #   Y = 4 / (4 + 4) = 1/2; D1 = 1 - 2 Y 2/4 = 0.5; D2 = 2 - 3 Y 1/2 = 1.25; D3+ = 3 - 4 Y 1/1 = 1
    # Unigram continuation counts: a {<s>, b} 2, b {a} 1, c {<s>, d} 2, d {c} 1, </s> {b, c} 2
    #   -> n1..n4 = 2, 3, 0, 0: Y = 2/8; D1 = 1 - 2 Y 3/2 = 0.25; n3 = 0: D2 = 1, D3+ = 1.5 (fallback)
    model = KneserNeyModel(order=2).fit(DISCOUNT_CORPUS)
    assert model.counts[1][("a", "b")] == 4 and model.counts[0][("c",)] == 2
    assert model.count_of_counts == [(2, 3, 0, 0), (4, 2, 1, 1)]
    assert model.discounts == [(0.25, 1.0, 1.5), (0.5, 1.25, 1.0)]
    assert model.contexts[1].totals[("c",)] == 3  # c d (2) + c </s> (1)
    after_c = model.contexts[1]
    assert (after_c.followers[("c",)], after_c.ones[("c",)], after_c.twos[("c",)]) == (2, 1, 1)  # N1+, N1, N2
    assert model.contexts[1].backoff_weight(("c",), model.discounts[1]) == pytest.approx((0.5 + 1.25) / 3, rel=1e-15)
    assert model.contexts[1].backoff_weight(("zzz",), model.discounts[1]) == 0.0


def test_modified_probability_by_hand_at_order_2():
    model = KneserNeyModel(order=2).fit(DISCOUNT_CORPUS)  # discounts as in the test above
    # Unigram: continuation total 8; gamma() = (0.25 N1 + 1 N2 + 1.5 N3+) / 8 = (0.25 * 2 + 3) / 8 = 0.4375
    # over |V| = 6 (a b c d </s> <unk>): P1(b) = (1 - 0.25)/8 + 0.4375/6 = 1/6, P1(a) = (2 - 1)/8 + 0.4375/6 = 19/96
    unigram_b, unigram_a, unigram_end = 1 / 6, 19 / 96, 19 / 96
    assert model.probability("b", ("zzz",)) == pytest.approx(unigram_b, rel=1e-14)  # unseen context <unk>
    assert model.probability("<unk>", ("zzz",)) == pytest.approx(0.4375 / 6, rel=1e-14)
    # a -> b 4 times: P(b | a) = (4 - D3+) / 4 + (D3+ 1) / 4 * P1(b) = 0.75 + 0.25 / 6 = 19/24
    assert model.probability("b", ("a",)) == pytest.approx(19 / 24, rel=1e-14)
    # b -> a 3 times, b -> </s> once: gamma(b) = (D1 1 + D3+ 1) / 4 = 0.375; P(a | b) = (3 - 1)/4 + 0.375 P1(a)
    assert model.probability("a", ("b",)) == pytest.approx(0.5 + 0.375 * unigram_a, rel=1e-14)
    # d -> c twice: gamma(d) = D2 1 / 2 = 0.625; P(</s> | d) = 0 + 0.625 P1(</s>)
    assert model.probability("</s>", ("d",)) == pytest.approx(0.625 * unigram_end, rel=1e-14)
    assert model.probability("c", ("d",)) == pytest.approx((2 - 1.25) / 2 + 0.625 * unigram_a, rel=1e-14)
    for context in [(), ("a",), ("b",), ("c",), ("d",), ("zzz",)]:
        assert sum(model.probability(word, context) for word in model.vocabulary) == pytest.approx(1.0, abs=1e-14)


def test_order_1_is_a_discounted_unigram_over_raw_counts():
    # Raw unigram counts (order 1 is the highest order): a 3, b 2, c 1, </s> 3 -> total 9, 4 types.
    model = tiny_model(order=1, discount=0.75)
    expected = (3 - 0.75) / 9 + 0.75 * 4 / 9 * (1 / 5)
    for context in [(), ("b",), ("c", "a"), ("zzz",)]:
        assert model.probability("a", context) == pytest.approx(expected, rel=1e-15)
    assert model.probability("<unk>", ()) == pytest.approx(0.75 * 4 / 9 / 5, rel=1e-15)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_context_is_padded_with_order_minus_one_bos_and_truncated(order):
    model = KneserNeyModel(order=order).fit(random_corpus(1))
    for word in ["w1", "</s>", "<unk>"]:
        assert model.probability(word, ()) == model.probability(word, ("<s>",) * (order - 1))
        long_context = ("w3", "w4", "w5", "w6", "w7", "w8")
        last_words = long_context[len(long_context) - order + 1:] if order > 1 else ()
        assert model.probability(word, long_context) == model.probability(word, last_words)


# ------------------------------------------------------------------ perplexity
def long_range_corpus(seed, sentences):
    """Sentences 'x m m y(x) m y(x)': y follows x three and five tokens later; nothing else informs."""
    rng = np.random.default_rng(seed)
    pairs = [("犬", "吠える"), ("猫", "鳴く"), ("鳥", "飛ぶ"), ("魚", "泳ぐ")]
    corpus = []
    for _ in range(sentences):
        subject, verb = pairs[rng.integers(len(pairs))]
        corpus.append([subject, "が", "が", verb, "が", verb])
    return corpus


@pytest.mark.parametrize("discount", ["modified", 0.75])
def test_higher_order_lowers_perplexity_on_a_repetitive_corpus(discount):
    train, test = long_range_corpus(0, 400), long_range_corpus(1, 100)
    perplexities = [KneserNeyModel(order=order, discount=discount).fit(train).perplexity(test)
                    for order in (1, 2, 3, 4, 5)]
    assert perplexities[0] > perplexities[1] > perplexities[2] > perplexities[3], perplexities
    # order 4 sees the subject when it predicts the verb: only the subject (4 ways) is uncertain
    assert perplexities[3] < 4 ** (1 / 7) * 1.1, perplexities
    assert perplexities[4] <= perplexities[3] * 1.01, perplexities


def test_modified_discounts_beat_the_fixed_discount_on_held_out_text():
    train, test = random_corpus(0, sentences=400), random_corpus(1, sentences=100)
    fixed = KneserNeyModel(order=3, discount=0.75).fit(train).perplexity(test)
    modified = KneserNeyModel(order=3).fit(train).perplexity(test)
    assert modified < fixed


def test_perplexity_lower_on_training_text_than_on_shuffled_text():
    rng = np.random.default_rng(1)
    subjects, verbs, objects = ["猫", "犬", "鳥"], ["食べる", "見る"], ["魚", "肉", "空"]
    corpus = [[rng.choice(subjects), "が", rng.choice(objects), "を", rng.choice(verbs)] for _ in range(300)]
    shuffled = [list(rng.permutation(sentence)) for sentence in corpus]
    for discount in ["modified", 0.75]:
        model = KneserNeyModel(order=3, discount=discount).fit(corpus)
        assert model.perplexity(corpus) < model.perplexity(shuffled) / 2
        assert model.perplexity(corpus) < 4  # ~3 choices at 3 of the 6 predicted positions


@pytest.mark.parametrize("order", [1, 3, 4])
def test_cross_entropy_counts_every_token_after_bos_including_eos(order):
    model = tiny_model(order, "modified")
    sentences = [["a", "b"], ["c"], []]
    cross_entropy_sum, token_count = model.cross_entropy(sentences)
    assert token_count == 3 + 2 + 1  # len + 1 (</s>) each, as teacher_forcing_pairs targets
    expected = -sum(
        math.log(model.probability(word, context))
        for word, context in [
            ("a", ()), ("b", ("a",)), ("</s>", ("a", "b")),
            ("c", ()), ("</s>", ("c",)),
            ("</s>", ()),
        ]
    )
    assert cross_entropy_sum == pytest.approx(expected, rel=1e-12)
    assert model.perplexity(sentences) == pytest.approx(math.exp(expected / 6), rel=1e-12)


# ------------------------------------------------------------------ tokens
def test_unknown_words_are_unk_in_the_word_and_in_the_context():
    vocabulary = [f"w{index}" for index in range(25)]  # w25..w29 -> <unk>
    for order in (2, 3, 4):
        model = KneserNeyModel(order=order).fit(random_corpus(0), vocabulary=vocabulary)
        assert model.probability("w28", ("w1", "w2")) == model.probability("<unk>", ("w1", "w2"))
        assert model.probability("w3", ("w1", "w29")) == model.probability("w3", ("w1", "<unk>"))
        assert model.probability("w3", ("w1", "w29")) != model.probability("w3", ("w1", "w2"))
        assert model.counts[0][("<unk>",)] > 0  # the training text's w25..w29 were counted as <unk>
        # an unknown sentence scores as its <unk> version
        assert model.perplexity([["w27", "w1"]]) == model.perplexity([["<unk>", "w1"]])


def test_token_ids_work_as_tokens():
    # ids: pad 0, unk 1, <s> 2, </s> 3, words 4..6 as a -> 4, b -> 5, c -> 6
    ids_corpus = [[4, 5], [4, 6], [5, 4]]
    for discount in [0.75, "modified"]:
        model = KneserNeyModel(order=3, discount=discount, bos_token=2, eos_token=3, unk_token=1, pad_token=0)
        model.fit(ids_corpus, vocabulary=range(7))
        assert model.vocabulary == {1, 3, 4, 5, 6}
        assert model.perplexity(ids_corpus) == pytest.approx(tiny_model(3, discount).perplexity(TINY_CORPUS), rel=1e-12)
        assert model.probability(0, (2, 4)) == 0.0  # the pad token is never predicted
    assert model.probability(5, (2, 4)) == tiny_model(3, "modified").probability("b", ("<s>", "a"))
    fixed = KneserNeyModel(order=3, discount=0.75, bos_token=2, eos_token=3, unk_token=1, pad_token=0)
    assert fixed.fit(ids_corpus, vocabulary=range(7)).probability(5, (2, 4)) == pytest.approx(0.317578125, abs=1e-15)


# ------------------------------------------------------------------ arguments
@pytest.mark.parametrize("order", [0, -1, 2.5, True, "3", None])
def test_invalid_order_raises(order):
    with pytest.raises(PipelineError, match="order") as error:
        KneserNeyModel(order=order)
    assert repr(order) in str(error.value)


@pytest.mark.parametrize("discount", [0, 1.5, -0.5, float("nan"), "kneser-ney", "Modified", True, None])
def test_invalid_discount_raises(discount):
    with pytest.raises(PipelineError, match="discount") as error:
        KneserNeyModel(discount=discount)
    assert repr(discount) in str(error.value)


def test_invalid_use():
    with pytest.raises(PipelineError, match="no training sentences"):
        KneserNeyModel().fit([])
    with pytest.raises(PipelineError, match="empty"):
        tiny_model().perplexity([])
    with pytest.raises(ValueError, match="must all differ"):
        KneserNeyModel(bos_token="x", eos_token="x")
    with pytest.raises(ValueError, match="must all differ"):
        KneserNeyModel(pad_token="<unk>")
    with pytest.raises(RuntimeError, match="fit"):
        KneserNeyModel().probability("a", ())


def test_fixed_discount_one_is_allowed_and_integer_order_types():
    assert KneserNeyModel(order=np.int64(2), discount=1).fit(TINY_CORPUS).discounts == [(1.0,) * 3] * 2


def test_docstring_examples_run():
    result = doctest.testmod(ngram, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0
