import math

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.language_model.ngram import KneserNeyTrigramModel

TINY_CORPUS = [["a", "b"], ["a", "c"], ["b", "a"]]


def tiny_model():
    return KneserNeyTrigramModel(discount=0.75).fit(TINY_CORPUS)


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


@pytest.mark.parametrize(
    "context",
    [
        (),  # start of sentence: seen trigram context (<s>, <s>)
        ("<s>", "a"),  # seen trigram context
        ("a",),  # same as (<s>, a)
        ("c", "a"),  # unseen trigram context, seen bigram context a
        ("b", "c"),  # unseen trigram context, seen bigram context c
        ("a", "zzz"),  # unknown word: context <unk>, never seen -> unigram level
        ("</s>", "</s>"),  # </s> is never a context in training
    ],
)
def test_probabilities_over_the_vocabulary_sum_to_one(context):
    model = tiny_model()
    assert model.vocabulary == {"a", "b", "c", "<unk>", "</s>"}
    total = sum(model.probability(word, context) for word in model.vocabulary)
    assert total == pytest.approx(1.0, abs=1e-12)
    assert all(model.probability(word, context) > 0 for word in model.vocabulary)
    assert model.probability("<s>", context) == 0.0


def test_sums_to_one_on_a_larger_corpus_with_caller_vocabulary():
    rng = np.random.default_rng(0)
    words = [f"w{index}" for index in range(30)]
    corpus = [list(rng.choice(words, size=rng.integers(1, 8))) for _ in range(200)]
    vocabulary = ["<pad>", "<unk>", "<s>", "</s>", *words[:25], "never_seen"]  # w25..w29 -> <unk>
    model = KneserNeyTrigramModel().fit(corpus, vocabulary=vocabulary)
    assert "<pad>" not in model.vocabulary and "<s>" not in model.vocabulary
    for context in [(), ("w1",), ("w3", "w4"), ("w27", "w2"), ("never_seen", "w0"), ("w0", "never_seen")]:
        total = sum(model.probability(word, context) for word in model.vocabulary)
        assert total == pytest.approx(1.0, abs=1e-12), context
    # words outside the vocabulary are <unk>, in the predicted word and in the context
    assert model.probability("w28", ("w1", "w2")) == model.probability("<unk>", ("w1", "w2"))
    assert model.probability("w3", ("w1", "w29")) == model.probability("w3", ("w1", "<unk>"))


def test_perplexity_lower_on_training_text_than_on_shuffled_text():
    rng = np.random.default_rng(1)
    subjects, verbs, objects = ["猫", "犬", "鳥"], ["食べる", "見る"], ["魚", "肉", "空"]
    corpus = [[rng.choice(subjects), "が", rng.choice(objects), "を", rng.choice(verbs)] for _ in range(300)]
    shuffled = [list(rng.permutation(sentence)) for sentence in corpus]
    model = KneserNeyTrigramModel().fit(corpus)
    assert model.perplexity(corpus) < model.perplexity(shuffled) / 2
    assert model.perplexity(corpus) < 4  # ~3 choices at 3 of the 6 predicted positions


def test_cross_entropy_counts_every_token_after_bos_including_eos():
    model = tiny_model()
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


def test_token_ids_work_as_tokens():
    # ids: pad 0, unk 1, <s> 2, </s> 3, words 4..6 as a -> 4, b -> 5, c -> 6
    ids_corpus = [[4, 5], [4, 6], [5, 4]]
    model = KneserNeyTrigramModel(bos_token=2, eos_token=3, unk_token=1, pad_token=0)
    model.fit(ids_corpus, vocabulary=range(7))
    assert model.vocabulary == {1, 3, 4, 5, 6}
    assert model.probability(5, (2, 4)) == pytest.approx(0.317578125, abs=1e-15)
    assert model.perplexity(ids_corpus) == pytest.approx(tiny_model().perplexity(TINY_CORPUS), rel=1e-12)


def test_invalid_arguments():
    with pytest.raises(PipelineError, match="discount"):
        KneserNeyTrigramModel(discount=0)
    with pytest.raises(PipelineError, match="discount"):
        KneserNeyTrigramModel(discount=1.5)
    with pytest.raises(PipelineError, match="no training sentences"):
        KneserNeyTrigramModel().fit([])
    with pytest.raises(PipelineError, match="empty"):
        tiny_model().perplexity([])
