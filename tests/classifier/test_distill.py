"""Tests of pipeline.classifier.distill: the char n-gram teacher's out-of-fold probabilities against scikit-learn,
that they never come from a model that read the sentence, sampled splits, tiny classes, and the teacher's labels
of unlabeled sentences. The distilled run through the real CLI is in test_ensemble.py (its fixture distils)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SHORT_TEXTS

from pipeline import seeds
from pipeline.classifier.distill import teacher_probabilities, unlabeled_targets
from pipeline.classifier.ensemble import char_vectorizer, fit_char_ngram, fit_member, read_member_rows
from pipeline.errors import PipelineError

LABELS = ["a", "b", "c"]


def member_table(path: Path, rows: int, texts=None, every_validation: int = 4) -> pd.DataFrame:
    """A token table of ``rows`` sentences (``texts``, else the SHORT_TEXTS patterns numbered), labels a/b/c in turn,
    every ``every_validation``-th row in the validation split, the others in the training split."""
    index = np.arange(rows)
    texts = texts if texts is not None else [f"{SHORT_TEXTS[i % 9]}{i}" for i in index]
    frame = pd.DataFrame({"text": texts, "label": np.array(LABELS)[index % 3],
                          "split": np.where(index % every_validation == 0, "validation", "train")})
    frame.to_parquet(path, index=False)
    return frame


def test_teacher_probabilities_are_scikit_learns_out_of_fold_predictions(tmp_path):
    """Every row equals scikit-learn's ``cross_val_predict`` of the same TF-IDF + logistic regression pipeline
    (vectorizer refitted on each fold) at the member's C, over the same stratified folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    frame = member_table(tmp_path / "tokens.parquet", 240)
    data = read_member_rows(tmp_path / "tokens.parquet", LABELS, 5, 0)
    member = fit_member(data, LABELS, 5)
    soft = teacher_probabilities(tmp_path / "tokens.parquet", data, member, LABELS, 5, folds=4)
    train = frame[frame["split"] == "train"]
    targets = train["label"].map({label: i for i, label in enumerate(LABELS)}).to_numpy()
    pipeline = make_pipeline(char_vectorizer(), LogisticRegression(solver="saga", max_iter=1000, C=member.C,
                                                                   random_state=seeds.child_seed(5, "char_tfidf")))
    folds = StratifiedKFold(4, shuffle=True, random_state=seeds.child_seed(5, "distill_folds"))
    reference = cross_val_predict(pipeline, train["text"].tolist(), targets, cv=folds, method="predict_proba")
    assert soft.shape == (len(train), 3)
    np.testing.assert_allclose(soft, reference, rtol=1e-6, atol=1e-9)


def test_teacher_probabilities_never_come_from_a_model_that_read_the_sentence(tmp_path):
    """Random labels on sentences of random characters: a model that read them memorises them (C = 300), one
    that did not is at chance. The teacher's probabilities of the training sentences are at chance."""
    generator = np.random.default_rng(0)
    pool = np.array(list("日月火水木金土山川田中本大小上下左右人口目耳手足力刀糸竹米貝車門雨花草"))
    texts = ["".join(generator.choice(pool, 8)) for _ in range(600)]
    frame = member_table(tmp_path / "tokens.parquet", 600, texts)
    frame["label"] = np.array(LABELS)[generator.integers(0, 3, 600)]  # labels unrelated to the text
    frame.to_parquet(tmp_path / "tokens.parquet", index=False)
    data = read_member_rows(tmp_path / "tokens.parquet", LABELS, 1, 0)
    member = fit_char_ngram(data.texts, data.targets, LABELS, 1, (300.0,), 300.0)
    targets = data.targets["train"]
    assert np.mean(member.probabilities(data.texts["train"]).argmax(axis=1) == targets) > 0.95  # memorised
    soft = teacher_probabilities(tmp_path / "tokens.parquet", data, member, LABELS, 1, folds=5)
    assert np.mean(soft.argmax(axis=1) == targets) < 0.45  # chance is 1/3
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)


def test_teacher_of_a_sampled_training_split_scores_the_unread_rows_with_the_member(tmp_path):
    """classify.linear_max_rows: the member read 50 of the training sentences; those get out-of-fold
    probabilities, the others (held out from the member already) the member's, all in the split's order."""
    frame = member_table(tmp_path / "tokens.parquet", 400)
    data = read_member_rows(tmp_path / "tokens.parquet", LABELS, 5, 50)
    assert len(data.texts["train"]) == 50 and data.counts["train"] == 300
    member = fit_member(data, LABELS, 5)
    soft = teacher_probabilities(tmp_path / "tokens.parquet", data, member, LABELS, 5, folds=3)
    train_texts = frame[frame["split"] == "train"]["text"].tolist()
    assert soft.shape == (300, 3)
    unread = np.setdiff1d(np.arange(300), data.rows["train"])
    np.testing.assert_allclose(soft[unread], member.probabilities([train_texts[i] for i in unread]))
    read = data.rows["train"]
    assert [train_texts[i] for i in read] == data.texts["train"]
    assert not np.allclose(soft[read], member.probabilities(data.texts["train"]))  # not the member's own
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)


def test_unlabeled_targets_are_the_members_probabilities_of_a_seeded_sample(tmp_path):
    """train.distill_unlabeled: the teacher labels a seeded sample of the unlabeled split (the rows in the split's
    order, interleaved with labelled rows in the table) with the member's own probabilities: it never read them."""
    frame = member_table(tmp_path / "tokens.parquet", 90)
    frame["split"] = np.where(np.arange(90) % 5 == 2, "unlabeled", frame["split"])
    frame.loc[frame["split"] == "unlabeled", "label"] = ""
    frame.to_parquet(tmp_path / "tokens.parquet", index=False)
    unlabeled = frame[frame["split"] == "unlabeled"]["text"].tolist()
    data = read_member_rows(tmp_path / "tokens.parquet", LABELS, 4, 0)
    member = fit_member(data, LABELS, 4)
    rows, soft = unlabeled_targets(tmp_path / "tokens.parquet", member, len(unlabeled), 12, 3, seed=4)
    assert len(rows) == 12 and np.all(np.diff(rows) > 0) and rows.max() < len(unlabeled)
    np.testing.assert_allclose(soft, member.probabilities([unlabeled[i] for i in rows]))
    again, _ = unlabeled_targets(tmp_path / "tokens.parquet", member, len(unlabeled), 12, 3, seed=4)
    other, _ = unlabeled_targets(tmp_path / "tokens.parquet", member, len(unlabeled), 12, 3, seed=5)
    assert np.array_equal(rows, again) and not np.array_equal(rows, other)
    every, soft = unlabeled_targets(tmp_path / "tokens.parquet", member, len(unlabeled), 1000, 3, seed=4)
    assert np.array_equal(every, np.arange(len(unlabeled)))  # a bound above the split's size keeps every row
    np.testing.assert_allclose(soft, member.probabilities(unlabeled))


def test_teacher_of_tiny_classes_and_of_too_few_sentences(tmp_path):
    """A class with fewer sentences than folds is spread over fewer folds; a class left out of the fitted folds
    gets probability 0 where it is held out; one training sentence is a one-line error."""
    texts = ["京都の寺", "スマホの電池", "野球の試合", "嵐山の紅葉", "新しいケータイ", "サッカー", "清水寺",
             "充電器"]
    frame = pd.DataFrame({"text": texts, "label": ["a", "b", "a", "a", "b", "c", "a", "b"],
                          "split": ["train"] * 7 + ["validation"]})
    frame.to_parquet(tmp_path / "tokens.parquet", index=False)
    data = read_member_rows(tmp_path / "tokens.parquet", LABELS, 3, 0)
    member = fit_member(data, LABELS, 3)
    soft = teacher_probabilities(tmp_path / "tokens.parquet", data, member, LABELS, 3, folds=5)
    assert soft.shape == (7, 3)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    assert soft[5, 2] == 0.0  # the one "c" sentence: no model that did not read it knows "c"
    frame.iloc[:7, frame.columns.get_loc("split")] = ["validation"] * 6 + ["train"]
    frame.to_parquet(tmp_path / "tokens.parquet", index=False)
    data = read_member_rows(tmp_path / "tokens.parquet", LABELS, 3, 0)
    with pytest.raises(PipelineError, match="train.distill"):
        teacher_probabilities(tmp_path / "tokens.parquet", data, member, LABELS, 3, folds=5)
