"""Tests of pipeline.classifier.evaluate: metrics against hand-computed values, baselines, summary."""

import numpy as np
import pandas as pd
import pytest

from pipeline.classifier.evaluate import (
    C_GRID,
    FIXED_C,
    char_scorer,
    char_tfidf_baseline,
    classification_metrics,
    confusion_matrix,
    fit_char_baseline,
    fit_tfidf_baseline,
    majority_baseline,
    score_test,
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


def char_corpus(validation: bool = True) -> pd.DataFrame:
    """Sentences whose label only their characters tell: katakana names for one label, kanji for the other."""
    rows = []
    for index in range(30):
        split = "test" if index < 6 else "validation" if index < 12 and validation else "train"
        rows.append((f"カタカナ{index}のスマホ", "Keitai", split))
        rows.append((f"京都{index}の寺院", "Kyoto", split))
    return pd.DataFrame(rows, columns=["text", "label", "split"])


def test_char_tfidf_baseline_chooses_c_on_validation_and_scores_the_test_split():
    scores = char_tfidf_baseline(char_corpus(), ["Keitai", "Kyoto"], seed=0)
    assert scores["accuracy"] == 1.0 and scores["macro_f1"] == 1.0
    # every C separates the validation split perfectly: the smallest one wins the tie
    assert scores["C"] == C_GRID[0] and scores["C_chosen_on"] == "validation"
    assert char_tfidf_baseline(char_corpus(), ["Keitai", "Kyoto"], seed=0) == scores  # deterministic


def test_char_tfidf_baseline_picks_the_c_with_the_best_validation_macro_f1():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    alphabet = list("あいうえおかきくけこさしすせそ")
    texts = ["".join(rng.choice(alphabet, 8)) for _ in range(240)]
    labels = ["x" if ("あ" in text) != (rng.random() < 0.2) else "y" for text in texts]  # noisy rule
    splits = ["train"] * 160 + ["validation"] * 40 + ["test"] * 40
    table = pd.DataFrame({"text": texts, "label": labels, "split": splits})
    scores = char_tfidf_baseline(table, ["x", "y"], seed=0)
    # the same grid fitted cold, one C at a time, with scikit-learn alone
    parts = {split: table[table["split"] == split] for split in ("train", "validation", "test")}
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True).fit(parts["train"]["text"])
    validation_f1 = {}
    for inverse_regularization in C_GRID:
        model = LogisticRegression(C=inverse_regularization, solver="saga", max_iter=10000, tol=1e-6)
        model.fit(vectorizer.transform(parts["train"]["text"]), parts["train"]["label"])
        predicted = model.predict(vectorizer.transform(parts["validation"]["text"]))
        validation_f1[inverse_regularization] = f1_score(parts["validation"]["label"], predicted, average="macro")
    assert validation_f1[scores["C"]] == pytest.approx(max(validation_f1.values()), abs=0.03)


def test_both_baselines_are_scored_in_one_pass_over_the_test_rows_as_each_alone():
    table = char_corpus().assign(surface=lambda frame: frame["text"].map(list))
    labels = ["Keitai", "Kyoto"]
    passes = []

    def test_rows():  # the test rows in chunks of 4, as split_chunks gives them from the token table
        passes.append(1)
        rows = table[table["split"] == "test"]
        return (rows.iloc[start:start + 4] for start in range(0, len(rows), 4))

    scorers = {"char": char_scorer(fit_char_baseline(table, labels, 0)),
               "word": fit_tfidf_baseline(table, "surface", labels, 0)}
    truth, outputs = score_test(table, test_rows, labels, scorers)
    assert len(passes) == 1
    np.testing.assert_array_equal(truth, table[table["split"] == "test"]["label"].map(labels.index))
    assert outputs["char"].shape == (len(truth), 2) and outputs["word"].shape == (len(truth),)
    alone = {"char": char_tfidf_baseline(table, labels, 0), "word": tfidf_baseline(table, "surface", labels, 0)}
    assert alone["char"]["accuracy"] == np.mean(outputs["char"].argmax(axis=1) == truth)
    assert alone["word"]["accuracy"] == np.mean(outputs["word"] == truth)
    # no test rows: empty outputs of the right shapes
    truth, outputs = score_test(table, lambda: iter(()), labels, scorers)
    assert truth.shape == (0,) and outputs["char"].shape == (0, 2) and outputs["word"].shape == (0,)


def test_char_tfidf_baseline_without_a_validation_split_uses_a_fixed_c():
    scores = char_tfidf_baseline(char_corpus(validation=False), ["Keitai", "Kyoto"], seed=0)
    assert scores["C"] == FIXED_C and scores["C_chosen_on"] == "fixed (no validation split)"
    assert scores["accuracy"] == 1.0


def summary_metrics(char_accuracy: float, char_macro_f1: float) -> dict:
    metrics = classification_metrics(TRUTH, PREDICTED, LABELS)  # accuracy 0.375, macro-F1 0.302
    metrics["baselines"] = {"majority": {"label": "b", "accuracy": 0.25, "macro_f1": 0.1},
                            "tfidf_logistic_regression": {"accuracy": 0.5, "macro_f1": 0.45},
                            "char_tfidf_logistic_regression": {"accuracy": char_accuracy, "macro_f1": char_macro_f1,
                                                               "C": 3.0, "C_chosen_on": "validation"}}
    metrics["test_size"] = 8
    return metrics


def test_summary_lists_model_baselines_gap_and_classes():
    text = summary(summary_metrics(0.363, 0.306))
    lines = text.splitlines()
    assert lines[0] == "test accuracy 0.375  macro-F1 0.302  (n=8)"
    assert "majority baseline (b): accuracy 0.250" in text
    assert lines[3] == ("  char 1-3-gram TF-IDF + logistic regression (C=3, validation): accuracy 0.363  "
                        "macro-F1 0.306")
    assert lines[4] == "  model − char TF-IDF: accuracy +0.012, macro-F1 −0.004"
    assert lines[5] == "  the model beats the character n-gram baseline on accuracy only"
    assert len(lines) == 6 + len(LABELS)


@pytest.mark.parametrize("char_accuracy, char_macro_f1, verdict", [
    (0.5, 0.4, "  the model does not beat the character n-gram baseline"),
    (0.375, 0.302, "  the model does not beat the character n-gram baseline"),  # a tie is no win
    (0.3, 0.2, None),
])
def test_summary_says_plainly_when_the_model_loses(char_accuracy, char_macro_f1, verdict):
    text = summary(summary_metrics(char_accuracy, char_macro_f1))
    if verdict:
        assert text.splitlines()[5] == verdict
    else:
        assert "beat" not in text


def test_summary_of_metrics_without_the_char_baseline():
    metrics = summary_metrics(0.0, 0.0)
    del metrics["baselines"]["char_tfidf_logistic_regression"]
    assert len(summary(metrics).splitlines()) == 3 + len(LABELS)
