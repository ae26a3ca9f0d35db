"""The ``evaluate`` stage: test-split metrics, baselines and plots for a classifier run.

``metrics.json`` holds accuracy, macro-F1, per-class precision/recall/F1 and
the confusion matrix of the model, beside two baselines computed on the same
split: the majority class of the training split, and TF-IDF features of the
same tokens with logistic regression (the classic strong baseline for short
texts). Plots: the confusion matrix and the training curves.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline.config import Config
from pipeline.paths import Paths, RunPaths
from pipeline.plots import plot_confusion, plot_history
from pipeline.runs import load_run
from pipeline.text.batches import SequenceBatches
from pipeline.text.vectors import EncodedSplits

log = logging.getLogger(__name__)


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``matrix[i, j]``: examples of true class i predicted as class j."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def classification_metrics(truth: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support (0 where undefined)."""
    matrix = confusion_matrix(truth, predicted, len(labels))
    true_positive = np.diag(matrix).astype(np.float64)
    predicted_count = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = np.divide(true_positive, predicted_count, out=np.zeros_like(true_positive), where=predicted_count > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    return {
        "accuracy": float(true_positive.sum() / max(1, len(truth))),
        "macro_f1": float(f1.mean()),
        "per_class": {label: {"precision": float(precision[i]), "recall": float(recall[i]),
                              "f1": float(f1[i]), "support": int(support[i])} for i, label in enumerate(labels)},
        "confusion_matrix": matrix.tolist(),
    }


def majority_baseline(train_targets: np.ndarray, test_targets: np.ndarray, labels: list[str]) -> dict:
    majority = int(np.bincount(train_targets, minlength=len(labels)).argmax())
    scores = classification_metrics(test_targets, np.full_like(test_targets, majority), labels)
    return {"label": labels[majority], "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def tfidf_baseline(tokens: pd.DataFrame, field: str, labels: list[str], seed: int) -> dict:
    """TF-IDF of unigrams and bigrams of the same tokens, logistic regression; scored on the test split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    label_index = {label: i for i, label in enumerate(labels)}
    train, test = tokens[tokens["split"] == "train"], tokens[tokens["split"] == "test"]
    vectorizer = TfidfVectorizer(analyzer=lambda words: list(words) + [" ".join(p) for p in zip(words, words[1:])],
                                 sublinear_tf=True)
    features = vectorizer.fit_transform(train[field])
    classifier = LogisticRegression(max_iter=2000, C=10.0, random_state=seed)
    classifier.fit(features, train["label"].map(label_index))
    predicted = classifier.predict(vectorizer.transform(test[field]))
    scores = classification_metrics(test["label"].map(label_index).to_numpy(), predicted, labels)
    return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def evaluate_classifier(config: Config, paths: Paths) -> dict:
    """Score the run's model on the test split; write ``metrics.json`` and the plots."""
    run = RunPaths(paths.run)
    model = load_run(paths.run).model
    splits = EncodedSplits.load(paths.ids)
    labels = splits.labels
    test_targets = splits.targets["test"]
    batches = SequenceBatches(splits.sequences["test"], None, config.train.batch_size, config.train.max_length)
    probabilities = batches.predict(model)
    predicted = probabilities.argmax(axis=1)
    metrics = classification_metrics(test_targets, predicted, labels)
    tokens = pd.read_parquet(paths.tokens)
    metrics["baselines"] = {
        "majority": majority_baseline(splits.targets["train"], test_targets, labels),
        "tfidf_logistic_regression": tfidf_baseline(tokens, config.vectorize.token_field, labels, config.seed),
    }
    metrics["test_size"] = int(len(test_targets))
    metrics["labels"] = labels
    history = pd.read_csv(run.history)
    run.plots.mkdir(exist_ok=True)
    plot_confusion(np.array(metrics["confusion_matrix"]), labels, run.plots / "confusion_matrix.png")
    plot_history(history, run.plots / "training_curves.png")
    matrix = pd.DataFrame(metrics["confusion_matrix"], index=labels, columns=labels)
    with artifact_io.atomic_path(run.root / "confusion_matrix.csv", suffix=".csv") as temporary:
        matrix.to_csv(temporary, index_label="true\\predicted")
    artifact_io.write_json(run.metrics, metrics)
    return metrics


def summary(metrics: dict) -> str:
    """A few lines for the terminal: model against the baselines, then per-class F1."""
    baselines = metrics["baselines"]
    lines = [
        f"test accuracy {metrics['accuracy']:.3f}  macro-F1 {metrics['macro_f1']:.3f}  (n={metrics['test_size']})",
        f"  majority baseline ({baselines['majority']['label']}): accuracy {baselines['majority']['accuracy']:.3f}"
        f"  macro-F1 {baselines['majority']['macro_f1']:.3f}",
        f"  TF-IDF + logistic regression: accuracy {baselines['tfidf_logistic_regression']['accuracy']:.3f}"
        f"  macro-F1 {baselines['tfidf_logistic_regression']['macro_f1']:.3f}",
    ]
    for label, scores in metrics["per_class"].items():
        lines.append(f"  {label:<12} precision {scores['precision']:.3f}  recall {scores['recall']:.3f}"
                     f"  F1 {scores['f1']:.3f}  support {scores['support']}")
    return "\n".join(lines)
