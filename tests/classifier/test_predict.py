"""Tests of ``classify`` through the Python API on a tiny GRU trained on the shipped corpus (``small_run``)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import KNB_LABELS

from pipeline.classifier.predict import classify
from pipeline.paths import RunPaths
from pipeline.runs import load_run

SENTENCES = [
    "新しいスマホのバッテリーがすぐ切れて困っています。",
    "週末は嵐山で紅葉を見てから湯豆腐を食べました。",
    "昨日の試合は延長戦の末にサヨナラ勝ちでした！",
    "駅前の新しいラーメン屋は、スープが濃厚で麺ももちもちしていて、何度でも通いたくなる味でした。",
    "雨。",
]


# ------------------------------------------------------------------ classify
def assert_classified(result: dict, text: str, labels: list[str]) -> None:
    assert result["text"] == text
    assert not result.get("error")
    probabilities = result["probabilities"]
    assert list(probabilities) == labels
    values = np.array(list(probabilities.values()))
    assert np.all(values >= 0) and abs(values.sum() - 1.0) < 1e-5
    assert result["label"] == labels[int(values.argmax())]
    assert result["probability"] == pytest.approx(values.max(), abs=1e-7)
    assert 0.0 <= result["unknown_token_share"] <= 1.0


def test_classify_returns_a_label_and_probabilities_that_sum_to_one(small_run):
    results = classify(small_run, SENTENCES)
    assert len(results) == len(SENTENCES)
    for text, result in zip(SENTENCES, results):
        assert_classified(result, text, KNB_LABELS)


def test_empty_texts_get_an_error_and_the_others_are_still_classified(small_run):
    texts = [SENTENCES[0], "", SENTENCES[1], "   \t ", SENTENCES[2]]
    results = classify(small_run, texts)
    assert len(results) == len(texts)
    for position in (1, 3):
        assert results[position]["text"] == texts[position]
        assert "empty" in results[position]["error"]
        assert "label" not in results[position]
    for position in (0, 2, 4):
        assert_classified(results[position], texts[position], KNB_LABELS)
    alone = classify(small_run, [SENTENCES[0], SENTENCES[1], SENTENCES[2]])
    for got, want in zip([results[0], results[2], results[4]], alone):
        np.testing.assert_allclose(list(got["probabilities"].values()), list(want["probabilities"].values()),
                                   atol=1e-5)


def test_only_empty_texts(small_run):
    results = classify(small_run, ["", " "])
    assert [bool(result["error"]) for result in results] == [True, True]


def test_classify_is_deterministic_and_independent_of_batching(small_run):
    """Padding a sentence into a batch of longer ones must not change its probabilities (masking)."""
    one_by_one = [classify(small_run, [text])[0]["probabilities"] for text in SENTENCES]
    batched = [result["probabilities"] for result in classify(small_run, SENTENCES, batch_size=64)]
    for alone, together in zip(one_by_one, batched):
        np.testing.assert_allclose(list(alone.values()), list(together.values()), atol=1e-5)


def test_classify_batches_of_different_lengths(small_run):
    """Two first batches of equal width, then a wider one: every batch must be accepted.

    Keras infers the input signature of a PyDataset from its first two batches; when both have the
    same number of timesteps that width becomes fixed and a longer later batch is rejected.
    """
    texts = ["雨。"] * 4 + [SENTENCES[3]]
    results = classify(small_run, texts, batch_size=2)
    for text, result in zip(texts, results):
        assert_classified(result, text, KNB_LABELS)


def test_classify_normalises_like_the_training_data(small_run):
    """Full-width Latin letters and digits are NFKC-normalised before tokenizing, as in `prepare`."""
    wide, narrow = classify(small_run, ["ｉＰｈｏｎｅ１５を買いました。", "iPhone15を買いました。"])
    np.testing.assert_allclose(list(wide["probabilities"].values()), list(narrow["probabilities"].values()),
                               atol=1e-6)


def test_classify_a_run_folder_moved_elsewhere(small_run_copy, tmp_path):
    moved = shutil.move(str(small_run_copy), str(tmp_path / "moved" / "run"))
    assert RunPaths(Path(moved)).model.is_file()
    results = classify(load_run(moved), SENTENCES[:2])
    for text, result in zip(SENTENCES[:2], results):
        assert_classified(result, text, KNB_LABELS)
