"""Tests of pipeline.classifier.evaluate: metrics against hand-computed values, baselines, summary."""

import numpy as np
import pandas as pd
import pytest

from pipeline.classifier.evaluate import (
    classification_metrics,
    confusion_matrix,
    majority_baseline,
    summary,
    tfidf_baseline,
)

LABELS = ["a", "b", "c"]
TRUTH = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PREDICTED = np.array([0, 0, 1, 1, 0, 1, 1, 0])  # class c is never predicted


def test_confusion_matrix_by_hand():
    np.testing.assert_array_equal(confusion_matrix(TRUTH, PREDICTED, 3), [[2, 1, 0], [1, 1, 0], [1, 2, 0]])


def test_classification_metrics_by_hand():
    metrics = classification_metrics(TRUTH, PREDICTED, LABELS)
    # Columns (predicted) sum to [4, 4, 0], rows (support) to [3, 2, 3].
    # a: precision 2/4, recall 2/3, F1 = 2 * (1/2)(2/3) / (7/6) = 4/7
    # b: precision 1/4, recall 1/2, F1 = 2 * (1/8) / (3/4) = 1/3
    # c: never predicted -> precision 0 (undefined), recall 0/3, F1 0
    assert metrics["accuracy"] == pytest.approx(3 / 8)
    assert metrics["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "support": 3})
    assert metrics["per_class"]["b"] == pytest.approx({"precision": 0.25, "recall": 0.5, "f1": 1 / 3, "support": 2})
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 3}
    assert metrics["macro_f1"] == pytest.approx((4 / 7 + 1 / 3 + 0) / 3)  # 19/63
    assert metrics["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [1, 2, 0]]
    assert list(metrics["per_class"]) == LABELS


def test_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    truth, predicted = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    predicted[predicted == 3] = 2  # class 3 never predicted
    metrics = classification_metrics(truth, predicted, ["w", "x", "y", "z"])
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=[0, 1, 2, 3],
                                                                     zero_division=0)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))
    for index, label in enumerate(["w", "x", "y", "z"]):
        scores = metrics["per_class"][label]
        assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx(
            (precision[index], recall[index], f1[index]))
        assert scores["support"] == support[index]


def test_perfect_predictions_and_a_class_absent_from_the_test_split():
    metrics = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 1]), ["x", "y", "z"])
    assert metrics["accuracy"] == 1.0
    assert metrics["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics["macro_f1"] == pytest.approx(2 / 3)


def test_empty_test_split_gives_zero_not_a_crash():
    metrics = classification_metrics(np.array([], dtype=int), np.array([], dtype=int), ["x", "y"])
    assert metrics["accuracy"] == 0.0 and metrics["macro_f1"] == 0.0


def test_majority_baseline_by_hand():
    # Training majority: b (3 of 5). Test truth [a, b, b, c] all predicted b:
    # accuracy 2/4; b: precision 2/4, recall 1 -> F1 2/3; a, c: 0 -> macro-F1 2/9.
    baseline = majority_baseline(np.array([1, 1, 1, 0, 2]), np.array([0, 1, 1, 2]), LABELS)
    assert baseline == pytest.approx({"label": "b", "accuracy": 0.5, "macro_f1": 2 / 9})


def test_majority_baseline_tie_takes_the_first_label():
    assert majority_baseline(np.array([2, 0, 2, 0]), np.array([0]), LABELS)["label"] == "a"


def test_tfidf_baseline_separates_an_easy_corpus():
    rows = []
    for index in range(12):
        rows.append((["京都", "の", "寺", f"w{index}"], "Kyoto", "test" if index < 3 else "train"))
        rows.append((["携帯", "の", "電池", f"v{index}"], "Keitai", "test" if index < 3 else "train"))
    tokens = pd.DataFrame(rows, columns=["surface", "label", "split"])
    scores = tfidf_baseline(tokens, "surface", ["Keitai", "Kyoto"], seed=0)
    assert scores == {"accuracy": 1.0, "macro_f1": 1.0}


def test_summary_lists_model_baselines_and_classes():
    metrics = classification_metrics(TRUTH, PREDICTED, LABELS)
    metrics["baselines"] = {"majority": {"label": "b", "accuracy": 0.25, "macro_f1": 0.1},
                            "tfidf_logistic_regression": {"accuracy": 0.5, "macro_f1": 0.45}}
    metrics["test_size"] = 8
    text = summary(metrics)
    assert text.splitlines()[0] == "test accuracy 0.375  macro-F1 0.302  (n=8)"
    assert "majority baseline (b): accuracy 0.250" in text
    assert len(text.splitlines()) == 3 + len(LABELS)
