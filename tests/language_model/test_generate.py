"""Tests of ``pipeline.language_model.generate``: sampling text from trained language-model run folders.

The runs are trained once per module by the real ``train`` stage on tiny models (tests/configs/
generator_small.toml on the shipped KNB corpus with GiNZA words, a label-conditioned variant, a
character-level variant, and tests/configs/generator_text.toml on a whitespace-tokenized text file
written here), then reloaded with ``load_run`` as ``pipeline generate`` does.
"""

import dataclasses
import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
from helpers import KNB_LABELS, TEST_CONFIGS, knb_config, write_classifier_run

from pipeline import config as config_module
from pipeline.errors import PipelineError
from pipeline.language_model.generate import (
    Sampling,
    generate,
    label_id,
    prompt_ids,
    text_language,
)
from pipeline.paths import Paths
from pipeline.runs import Run, load_run
from pipeline.stages import run_stage
from pipeline.text.tokenize import make_tokenizer
from pipeline.text.vocab import PAD_ID, UNK, UNK_ID

PROMPT = "京都の"
UNKNOWN_WORD = "ジャイアントパンダ"  # one GiNZA token, not among the 400 most frequent words of the corpus

# A tiny pre-tokenized English corpus: paragraphs (blank lines) are the documents the split keeps whole.
TEXT_PARAGRAPHS = [
    ["the cat sat on the mat", "the dog sat on the rug", "a cat saw the dog"],
    ["the dog ran to the park", "a dog saw a cat in the park", "the cat ran home"],
    ["the bird sat on the tree", "a bird saw the cat", "the cat sat under the tree"],
    ["the dog sat on the mat", "the bird ran to the tree", "a cat ran to the mat"],
    ["the cat saw a bird", "the dog saw the bird on the rug", "a bird sat on the dog"],
]


# ------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def shared_folders(tmp_path_factory) -> tuple[Path, Path]:
    """The work and models folders tests/language_model/conftest.py also uses: stages done there are skipped here."""
    base = tmp_path_factory.getbasetemp()
    return base / "generator-work", base / "generator-models"


def trained(config) -> Run:
    run_stage("train", config)
    return load_run(Paths.from_config(config).run)


@pytest.fixture(scope="module")
def word_run(shared_folders) -> Run:
    return trained(knb_config("generator_small", *shared_folders))


@pytest.fixture(scope="module")
def conditioned_run(shared_folders) -> Run:
    return trained(knb_config("generator_small", *shared_folders, 'run_name="generator_concat"',
                              'model.conditioning="concat"', "train.epochs=1"))


@pytest.fixture(scope="module")
def char_run(shared_folders) -> Run:
    return trained(knb_config("generator_small", *shared_folders, 'run_name="generator_char"',
                              'corpus.name="knb_blog_lm_char"', 'tokenize.method="char"', "train.epochs=1"))


def write_text_corpus(path: Path) -> Path:
    path.write_text("\n\n".join("\n".join(lines) for lines in TEXT_PARAGRAPHS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("text-lm")
    corpus = write_text_corpus(root / "animals.txt")
    config = config_module.load(TEST_CONFIGS / "generator_text.toml", [
        f'corpus.path="{corpus}"', f'work_dir="{root / "work"}"', f'models_dir="{root / "models"}"'])
    return trained(config)


def model_probabilities(run: Run, ids: list[int], label: int | None = None) -> np.ndarray:
    inputs = np.array([ids], dtype=np.int32)
    if label is not None:
        inputs = (inputs, np.array([label], dtype=np.int32))
    return np.asarray(run.model(inputs), dtype=np.float64)[0, -1]


# ------------------------------------------------------------------ sampling settings
def test_tiny_temperature_equals_greedy(word_run):
    greedy = generate(word_run, PROMPT, Sampling(greedy=True, max_tokens=12), num=1, seed=0)[0]
    assert greedy["tokens"], "the greedy sample is empty"
    for sample in generate(word_run, PROMPT, Sampling(temperature=1e-6, max_tokens=12), num=3, seed=5):
        assert sample["tokens"] == greedy["tokens"]


def test_top_k_one_equals_greedy(word_run):
    greedy = generate(word_run, PROMPT, Sampling(greedy=True, max_tokens=12), num=1, seed=0)[0]
    for sample in generate(word_run, PROMPT, Sampling(temperature=1.5, top_k=1, max_tokens=12), num=3, seed=9):
        assert sample["tokens"] == greedy["tokens"]
        assert sample["probabilities"] == pytest.approx(greedy["probabilities"], rel=1e-6)


def test_greedy_takes_the_most_probable_allowed_token_each_step(word_run):
    sample = generate(word_run, PROMPT, Sampling(greedy=True, max_tokens=8), num=1, seed=0)[0]
    ids = prompt_ids(word_run, PROMPT)[0]
    banned = [PAD_ID, UNK_ID, word_run.vocab.index["<s>"]]
    for token in sample["tokens"]:
        probabilities = model_probabilities(word_run, ids)
        probabilities[banned] = 0
        assert word_run.vocab.tokens[int(np.argmax(probabilities))] == token
        ids.append(word_run.vocab.index[token])


def test_fixed_seed_gives_identical_samples_another_seed_differs(word_run):
    sampling = Sampling(temperature=1.0, max_tokens=15)
    first = generate(word_run, PROMPT, sampling, num=3, seed=1)
    again = generate(word_run, PROMPT, sampling, num=3, seed=1)
    other = generate(word_run, PROMPT, sampling, num=3, seed=2)
    assert first == again
    assert [s["tokens"] for s in first] != [s["tokens"] for s in other]
    # num samples from one seed are not all the same
    assert len({tuple(s["tokens"]) for s in first}) > 1


def test_samples_report_the_model_probability_of_each_chosen_token(word_run):
    sampling = Sampling(temperature=0.8, top_p=0.9, max_tokens=10)
    special = {"<pad>", UNK, "<s>", "</s>"}
    for sample in generate(word_run, PROMPT, sampling, num=2, seed=3):
        assert len(sample["probabilities"]) == len(sample["tokens"]) <= 10
        assert sample["ended"] == (len(sample["tokens"]) < 10)
        assert not special & set(sample["tokens"])
        ids = prompt_ids(word_run, PROMPT)[0]
        for token, probability in zip(sample["tokens"], sample["probabilities"]):
            # before temperature and truncation: what the model itself gave that token
            assert probability == pytest.approx(model_probabilities(word_run, ids)[word_run.vocab.index[token]],
                                                rel=1e-5)
            ids.append(word_run.vocab.index[token])
        assert sample["prompt"] == PROMPT and sample["label"] is None


def test_max_tokens_bounds_the_sample(word_run):
    for sample in generate(word_run, PROMPT, Sampling(temperature=1.5, max_tokens=3), num=4, seed=0):
        assert len(sample["tokens"]) <= 3


# ------------------------------------------------------------------ repetition controls
def test_greedy_with_repetition_controls_follows_the_rule_step_by_step(word_run):
    """Each choice is the argmax of the model's p, p ** P for ids already in the text, n-gram repeats at 0."""
    penalty, ngram = 1.5, 2
    sample = generate(word_run, PROMPT, Sampling(greedy=True, max_tokens=12, repetition_penalty=penalty,
                                                 no_repeat_ngram=ngram), num=1, seed=0)[0]
    assert sample["tokens"]
    ids = prompt_ids(word_run, PROMPT)[0]
    banned = [PAD_ID, UNK_ID, word_run.vocab.index["<s>"]]
    for token in sample["tokens"]:
        probabilities = model_probabilities(word_run, ids)
        log_probabilities = np.log(probabilities / probabilities.sum())
        log_probabilities[banned] = -np.inf
        seen = sorted(set(ids))
        log_probabilities[seen] *= penalty
        repeats = [ids[i + 1] for i in range(len(ids) - 1) if ids[i] == ids[-1]]  # bigrams (last id, x) seen
        if np.isfinite(np.delete(log_probabilities, repeats)).any():
            log_probabilities[repeats] = -np.inf
        assert word_run.vocab.tokens[int(np.argmax(log_probabilities))] == token
        ids.append(word_run.vocab.index[token])
    bigrams = list(itertools.pairwise(ids))
    assert len(bigrams) == len(set(bigrams))


def test_repetition_controls_with_a_fixed_seed_repeat_and_keep_text_joined(word_run):
    sampling = Sampling(temperature=1.0, top_k=50, max_tokens=15, repetition_penalty=1.3, no_repeat_ngram=2)
    first = generate(word_run, PROMPT, sampling, num=3, seed=1)
    assert first == generate(word_run, PROMPT, sampling, num=3, seed=1)
    for sample in first:
        text_ids = prompt_ids(word_run, PROMPT)[0] + [word_run.vocab.index[token] for token in sample["tokens"]]
        bigrams = list(itertools.pairwise(text_ids))
        assert len(bigrams) == len(set(bigrams)), sample["tokens"]
        assert sample["text"] == PROMPT + "".join(sample["tokens"]) and " " not in sample["text"]


@pytest.mark.parametrize(("field", "value"), [("repetition_penalty", 0.8), ("no_repeat_ngram", -1)])
def test_invalid_repetition_settings_are_refused(word_run, field, value):
    with pytest.raises(PipelineError, match=field) as error:
        generate(word_run, PROMPT, Sampling(**{field: value}), num=1, seed=0)
    assert repr(value) in str(error.value) and "\n" not in str(error.value)


# ------------------------------------------------------------------ prompts
def test_prompt_starts_with_the_sentence_start_token(word_run):
    ids = prompt_ids(word_run, PROMPT)[0]
    assert ids == [word_run.vocab.index["<s>"], word_run.vocab.index["京都"], word_run.vocab.index["の"]]
    assert prompt_ids(word_run, "")[0] == [word_run.vocab.index["<s>"]]


def test_stream_trained_runs_start_after_the_sentence_end_token(word_run):
    stream_config = dataclasses.replace(word_run.config, train=dataclasses.replace(word_run.config.train,
                                                                                  regime="tbptt"))
    stream_run = dataclasses.replace(word_run, config=stream_config)
    assert prompt_ids(stream_run, PROMPT)[0][0] == word_run.vocab.index["</s>"]
    assert generate(stream_run, PROMPT, Sampling(greedy=True, max_tokens=5), num=1, seed=0)[0]["tokens"]


def test_unknown_prompt_words_become_unk_with_a_warning(word_run, caplog):
    assert UNKNOWN_WORD not in word_run.vocab
    prompt = PROMPT + UNKNOWN_WORD
    tokens = make_tokenizer(word_run.config.tokenize).tokenize([prompt])[0]["surface"]
    assert UNKNOWN_WORD in tokens
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        ids = prompt_ids(word_run, prompt)[0]
    assert ids[1:] == [word_run.vocab.index.get(token, UNK_ID) for token in tokens]
    assert UNK_ID in ids
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and UNKNOWN_WORD in warnings[0].getMessage() and UNK in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        prompt_ids(word_run, PROMPT)[0]
    assert not [record for record in caplog.records if record.levelno == logging.WARNING]


def test_sample_text_continues_the_prompt_as_written_even_with_unknown_words(word_run):
    """The printed line starts with what the user typed, not with ``<unk>`` in place of a word."""
    prompt = PROMPT + UNKNOWN_WORD
    sample = generate(word_run, prompt, Sampling(greedy=True, max_tokens=5), num=1, seed=0)[0]
    assert sample["text"].startswith(prompt), sample["text"]


# ------------------------------------------------------------------ what may not be generated from
def test_a_classifier_run_is_refused(tmp_path):
    run = load_run(write_classifier_run(tmp_path / "classifier"))
    with pytest.raises(PipelineError) as error:
        generate(run, PROMPT, Sampling(), num=1, seed=0)
    message = str(error.value)
    assert "classifier" in message and "pipeline classify" in message and "\n" not in message


def test_conditioned_model_without_label_lists_the_labels(conditioned_run):
    assert conditioned_run.labels == KNB_LABELS
    with pytest.raises(PipelineError) as error:
        generate(conditioned_run, PROMPT, Sampling(), num=1, seed=0)
    message = str(error.value)
    assert "--label" in message and all(label in message for label in KNB_LABELS)


def test_unknown_label_is_refused_with_the_valid_ones(conditioned_run):
    with pytest.raises(PipelineError) as error:
        generate(conditioned_run, PROMPT, Sampling(), num=1, seed=0, label="Travel")
    message = str(error.value)
    assert "'Travel'" in message and all(label in message for label in KNB_LABELS)


def test_label_given_to_an_unconditioned_model_is_refused(word_run):
    with pytest.raises(PipelineError, match="--label"):
        generate(word_run, PROMPT, Sampling(), num=1, seed=0, label="Kyoto")


def test_conditioned_generation_depends_on_the_label(conditioned_run):
    ids = prompt_ids(conditioned_run, PROMPT)[0]
    first_step = {}
    for label in ("Gourmet", "Sports"):
        label_index = label_id(conditioned_run, label)
        first_step[label] = model_probabilities(conditioned_run, ids, label_index)
        samples = generate(conditioned_run, PROMPT, Sampling(temperature=1.0, max_tokens=6), num=3, seed=0,
                           label=label)
        assert all(sample["label"] == label for sample in samples)
        started = [sample for sample in samples if sample["tokens"]]
        assert started, samples
        # the probabilities reported are those of the model given that label
        for sample in started:
            token = conditioned_run.vocab.index[sample["tokens"][0]]
            assert sample["probabilities"][0] == pytest.approx(first_step[label][token], rel=1e-5)
    assert np.abs(first_step["Gourmet"] - first_step["Sports"]).max() > 1e-4


# ------------------------------------------------------------------ detokenization
def test_text_language_follows_the_tokenize_method(word_run, char_run, text_run):
    assert (text_language(word_run), text_language(char_run), text_language(text_run)) == ("ja", "ja", "en")


def test_word_model_text_is_joined_without_spaces(word_run):
    for sample in generate(word_run, PROMPT, Sampling(temperature=0.8, max_tokens=10), num=3, seed=4):
        assert sample["text"] == PROMPT + "".join(sample["tokens"])
        assert " " not in sample["text"]


def test_whitespace_model_text_is_joined_with_single_spaces(text_run):
    assert text_run.config.tokenize.method == "whitespace"
    words = {word for lines in TEXT_PARAGRAPHS for line in lines for word in line.split()}
    assert set(text_run.vocab.tokens[4:]) <= words
    prompt = "the  cat"  # a double space in the prompt: the words are what counts
    samples = generate(text_run, prompt, Sampling(temperature=1.0, max_tokens=6), num=4, seed=0)
    assert any(sample["tokens"] for sample in samples), samples
    for sample in samples:
        assert set(sample["tokens"]) <= words
        assert sample["text"] == " ".join(["the", "cat", *sample["tokens"]])
        assert "  " not in sample["text"] and sample["text"] == sample["text"].strip()
    # the repetition controls change which words, not how they are joined
    for sample in generate(text_run, prompt, Sampling(max_tokens=6, repetition_penalty=2.0, no_repeat_ngram=1),
                           num=3, seed=0):
        assert sample["text"] == " ".join(["the", "cat", *sample["tokens"]])
        assert not {"the", "cat"} & set(sample["tokens"]) and len(set(sample["tokens"])) == len(sample["tokens"])


def test_character_model_generates_characters(char_run):
    assert char_run.config.tokenize.method == "char"
    assert all(len(token) == 1 for token in char_run.vocab.tokens[4:])
    samples = generate(char_run, PROMPT, Sampling(temperature=0.8, max_tokens=12), num=2, seed=0)
    assert prompt_ids(char_run, PROMPT)[0][1:] == [char_run.vocab.index[c] for c in PROMPT]
    assert any(sample["tokens"] for sample in samples), samples
    for sample in samples:
        assert all(len(token) == 1 for token in sample["tokens"])
        assert sample["text"] == PROMPT + "".join(sample["tokens"])
