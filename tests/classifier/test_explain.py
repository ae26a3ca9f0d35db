"""Tests of pipeline.classifier.explain: attention weights and occlusion per GiNZA token, and their rendering.

Tiny GRU runs trained on the shipped corpus: ``small_run`` (mean pooling: occlusion) and an
attention-pooled twin (``small_attention_trained``); untrained models with subword inputs.
"""

import dataclasses
import re

import numpy as np
import pytest

from pipeline import config as config_module
from pipeline.classifier.explain import ansi_background, explain, html_page, strengths, terminal_line
from pipeline.classifier.model import build_classifier
from pipeline.classifier.predict import classify
from pipeline.paths import RunPaths
from pipeline.runs import load_run, write_run_metadata
from pipeline.text.batches import pad
from pipeline.text.tokenize import make_tokenizer
from pipeline.text.vocab import UNK_ID, Vocabulary

SENTENCES = ["新しいスマホのバッテリーがすぐ切れて困っています。", "週末は嵐山で紅葉を見てから湯豆腐を食べました。"]


@pytest.fixture(scope="module")
def attention_run(small_attention_trained):
    return load_run(small_attention_trained[1])


def with_max_length(run, max_length: int):
    config = dataclasses.replace(run.config, train=dataclasses.replace(run.config.train, max_length=max_length))
    return dataclasses.replace(run, config=config)


def surfaces(run, text: str) -> list[str]:
    return make_tokenizer(run.config.tokenize).tokenize([text])[0]["surface"]


def assert_like_classify(run, results: list[dict], texts: list[str]) -> None:
    for result, expected in zip(results, classify(run, texts)):
        assert result["label"] == expected["label"]
        np.testing.assert_allclose(list(result["probabilities"].values()), list(expected["probabilities"].values()),
                                   atol=1e-5)


def test_attention_weights_per_ginza_token_sum_to_one(attention_run):
    results = explain(attention_run, SENTENCES)
    assert_like_classify(attention_run, results, SENTENCES)
    for text, result in zip(SENTENCES, results):
        assert result["method"] == "attention" and result["truncated"] == 0
        assert [word for word, _ in result["tokens"]] == surfaces(attention_run, text)
        weights = np.array([weight for _, weight in result["tokens"]])
        assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0, abs=1e-5)


def test_attention_sees_only_the_first_max_length_tokens(attention_run):
    short = with_max_length(attention_run, 4)
    result = explain(short, SENTENCES[:1])[0]
    words = surfaces(attention_run, SENTENCES[0])
    assert [word for word, _ in result["tokens"]] == words[:4]
    assert result["truncated"] == len(words) - 4
    assert sum(weight for _, weight in result["tokens"]) == pytest.approx(1.0, abs=1e-5)
    assert_like_classify(short, [result], SENTENCES[:1])
    assert f"(+{len(words) - 4} tokens past train.max_length)" in terminal_line(result, color=False)


def test_occlusion_is_the_drop_of_the_label_probability_with_the_token_as_unk(small_run):
    result = explain(small_run, SENTENCES[1:])[0]
    assert result["method"] == "occlusion"
    assert_like_classify(small_run, [result], SENTENCES[1:])
    ids = np.array(small_run.vocab.encode(surfaces(small_run, SENTENCES[1])), dtype=np.int32)
    best = small_run.labels.index(result["label"])
    full = np.asarray(small_run.model.predict_on_batch(pad([ids], 100)))[0, best]
    for position in (0, 2, len(ids) - 1):
        occluded = ids.copy()
        occluded[position] = UNK_ID
        without = np.asarray(small_run.model.predict_on_batch(pad([occluded], 100)))[0, best]
        assert result["tokens"][position][1] == pytest.approx(full - without, abs=1e-5)
    assert [word for word, _ in result["tokens"]] == surfaces(small_run, SENTENCES[1])


def test_an_unknown_token_occluded_changes_nothing(small_run):
    result = explain(small_run, ["ｚｚｑｘ語のスマホ。"])[0]
    unknown = [index for index, word in enumerate(surfaces(small_run, "zzqx語のスマホ。"))
               if small_run.vocab.encode([word])[0] == UNK_ID]
    assert unknown and all(abs(result["tokens"][index][1]) < 1e-6 for index in unknown)
    assert result["unknown_token_share"] > 0


@pytest.mark.parametrize("pooling, method", [("attention", "attention"), ("mean", "occlusion")])
def test_a_model_with_subword_inputs_is_explained_through_the_same_inputs(tmp_path, pooling, method):
    """Character and n-gram inputs (a dict of model inputs) reach the explained forward pass too."""
    settings = {"task": "classifier", "pooling": pooling, "char_encoder": "cnn", "ngram_features": "both",
                "layers": [{"type": "gru", "units": 4}]}
    config = config_module.from_dict({"run_name": "subword", "vectorize": {"vectors": "none"}, "model": settings})
    vocab = Vocabulary(["<pad>", "<unk>", "スマホ", "の", "バッテリー"])
    matrix = np.random.default_rng(0).normal(size=(len(vocab), 8)).astype(np.float32)
    (tmp_path / "run").mkdir()
    build_classifier(config.model, matrix, 2, seed=0).save(RunPaths(tmp_path / "run").model)
    write_run_metadata(tmp_path / "run", config, vocab, ["a", "b"])
    run = load_run(tmp_path / "run")
    assert isinstance(run.model.input, dict)
    results = explain(run, SENTENCES)
    assert_like_classify(run, results, SENTENCES)
    assert [result["method"] for result in results] == [method, method]
    assert [word for word, _ in results[0]["tokens"]] == surfaces(run, SENTENCES[0])


def test_empty_texts_get_an_error_and_the_others_are_explained(small_run):
    results = explain(small_run, [SENTENCES[0], "", SENTENCES[1]])
    assert "empty" in results[1]["error"] and "tokens" not in results[1]
    assert [results[0]["text"], results[2]["text"]] == [SENTENCES[0], SENTENCES[1]]
    assert all(result["tokens"] for result in (results[0], results[2]))


# ------------------------------------------------------------------ rendering
RESULT = {"text": "a<b", "label": "L&1", "probability": 0.75, "probabilities": {"L&1": 0.75, "x": 0.25},
          "method": "occlusion", "tokens": [["a", 0.2], ["<b>", -0.4], ["c", -0.001]], "truncated": 0}


def test_strengths_scale_by_the_largest_absolute_weight():
    assert strengths(RESULT) == pytest.approx([0.5, -1.0, -0.0025])
    assert strengths({**RESULT, "tokens": [["a", 0.0]]}) == [0.0]


def test_ansi_backgrounds_run_from_white_to_red_and_blue():
    assert (ansi_background(0.0), ansi_background(1.0), ansi_background(-1.0)) == (231, 196, 21)
    assert ansi_background(0.6) == 16 + 36 * 5 + 6 * 2 + 2  # 3 of 5 steps: (5, 2, 2) in the 6x6x6 cube


def test_terminal_line_plain_and_coloured():
    assert terminal_line(RESULT, color=False) == "  occlusion: a(0.20) <b>(-0.40) c(0.00)"
    coloured = terminal_line(RESULT, color=True)
    assert re.findall(r"\x1b\[48;5;(\d+)m\x1b\[38;5;16m([^\x1b]+)\x1b\[0m", coloured) == [
        ("217", "a"), ("21", "<b>"), ("231", "c")]


def test_html_page_is_self_contained_and_escapes_text():
    page = html_page([RESULT, {"text": "", "error": "empty text; nothing to classify"}], "title <run>")
    assert page.startswith("<!DOCTYPE html>") and "<meta charset='utf-8'>" in page
    assert "title &lt;run&gt;" in page and "<b>L&amp;1</b> 0.750" in page
    assert "rgba(37,99,235,1.00)' title='-0.4000'>&lt;b&gt;</span>" in page
    assert "rgba(220,38,38,0.50)' title='0.2000'>a</span>" in page
    assert "line 2: empty text" in page
    assert "src=" not in page and "href=" not in page  # nothing to fetch
