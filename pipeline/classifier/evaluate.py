"""The ``evaluate`` stage: test-split metrics, baselines and plots for a classifier run.

``metrics.json`` holds accuracy, macro-F1, per-class precision/recall/F1 and
the confusion matrix of the model, beside three baselines computed on the same
split: the majority class of the training split, TF-IDF features of the same
tokens with logistic regression (the classic strong baseline for short texts),
and TF-IDF of character 1-3-grams with logistic regression (the bar to clear on
real Japanese text: no tokenizer, names and loanwords included). Plots: the
confusion matrix and the training curves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.classifier.distill import DISTILLATION_FILE
from pipeline.classifier.ensemble import (
    C_GRID,
    FIXED_C,
    CharNgramModel,
    chunked_predict,
    ensemble_weight,
    fit_char_ngram,
    logistic_regression,
    mix,
    read_linear_rows,
    sampled,
    split_chunks,
)
from pipeline.classifier.self_training import SELF_TRAINING_FILE
from pipeline.config import Config
from pipeline.paths import Paths, RunPaths
from pipeline.plots import plot_confusion, plot_history
from pipeline.runs import load_run
from pipeline.text.batches import SequenceBatches
from pipeline.text.features import split_inputs
from pipeline.text.vectors import EncodedSplits
from pipeline.text.vocab import UNK_ID

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


# The test rows a baseline scores: a function giving them as frames, a chunk of the token table at a time
# (pipeline.classifier.ensemble.split_chunks); None: the frame's own rows whose split is "test".
TestRows = Callable[[], Iterable[pd.DataFrame]] | None

# A fitted baseline: the test rows of a chunk of the token table -> its outputs for them, one row each.
Scorer = Callable[[pd.DataFrame], np.ndarray]


def score_test(tokens: pd.DataFrame, test: TestRows, labels: list[str],
               scorers: dict[str, Scorer]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The test labels as class ids ``(test,)`` and every scorer's outputs, in table order, from **one** pass
    over the test rows (``test``'s chunks; on a large corpus each pass reads the token table again)."""
    label_index = {label: i for i, label in enumerate(labels)}
    truth: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in scorers}
    for chunk in [tokens[tokens["split"] == "test"]] if test is None else test():
        truth.append(chunk["label"].map(label_index).to_numpy())
        for name, scorer in scorers.items():
            outputs[name].append(scorer(chunk))
    empty = {name: scorer(tokens.iloc[:0]) for name, scorer in scorers.items() if not outputs[name]}
    return np.concatenate(truth), {name: np.concatenate(parts) if parts else empty[name]
                                   for name, parts in outputs.items()}


def fit_logistic_regression(tokens: pd.DataFrame, column: str, vectorizer, labels: list[str], seed: int) -> Scorer:
    """``vectorizer`` fitted on the training rows of ``tokens[column]``, logistic regression (C = ``FIXED_C``);
    the scorer gives predicted class ids ``(rows,)``. ``saga`` is the fastest multinomial solver on these sparse
    features: it fits the token baseline of the shipped corpus in under a second where lbfgs took 17 s.
    """
    label_index = {label: i for i, label in enumerate(labels)}
    train = tokens[tokens["split"] == "train"]
    classifier = logistic_regression(seed, C=FIXED_C)
    classifier.fit(vectorizer.fit_transform(train[column]), train["label"].map(label_index).to_numpy())
    return lambda chunk: chunked_predict(classifier, vectorizer, chunk[column])


def fit_tfidf_baseline(tokens: pd.DataFrame, field: str, labels: list[str], seed: int) -> Scorer:
    """TF-IDF of unigrams and bigrams of the same tokens, logistic regression (C = 10): predicted class ids."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer=lambda words: list(words) + [" ".join(p) for p in zip(words, words[1:])],
                                 sublinear_tf=True)
    return fit_logistic_regression(tokens, field, vectorizer, labels, seeds.child_seed(seed, "tfidf"))


def tfidf_baseline(tokens: pd.DataFrame, field: str, labels: list[str], seed: int, test: TestRows = None) -> dict:
    """:func:`fit_tfidf_baseline`'s accuracy and macro-F1 on the test split."""
    truth, outputs = score_test(tokens, test, labels, {"tfidf": fit_tfidf_baseline(tokens, field, labels, seed)})
    return predicted_scores(truth, outputs["tfidf"], labels)


def predicted_scores(truth: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict:
    scores = classification_metrics(truth, predicted, labels)
    return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def fit_char_baseline(tokens: pd.DataFrame, labels: list[str], seed: int) -> CharNgramModel:
    """TF-IDF of character 1-3-grams of the normalised sentence text (``tokens["text"]``), logistic regression
    with C chosen on the validation split from ``C_GRID`` (:func:`pipeline.classifier.ensemble.fit_char_ngram`).

    The bar for a recurrent classifier on real Japanese text: it needs no tokenizer, and names, katakana
    loanwords and numbers outside any word vocabulary still give it features.
    """
    label_index = {label: i for i, label in enumerate(labels)}
    parts = {split: tokens[tokens["split"] == split] for split in ("train", "validation")}
    texts = {split: part["text"].tolist() for split, part in parts.items()}
    targets = {split: part["label"].map(label_index).to_numpy() for split, part in parts.items()}
    return fit_char_ngram(texts, targets, labels, seeds.child_seed(seed, "char_tfidf"), C_GRID, FIXED_C)


def char_scorer(member: CharNgramModel) -> Scorer:
    """The char model's class probabilities ``(rows, classes)`` for a chunk of rows."""
    return lambda chunk: member.probabilities(chunk["text"].tolist())


def char_result(truth: np.ndarray, probabilities: np.ndarray, labels: list[str], member: CharNgramModel,
                tokens: pd.DataFrame) -> dict:
    """The char baseline's entry of ``metrics.json``: scores, its C and what chose it."""
    chosen_on = "validation" if (tokens["split"] == "validation").any() else "fixed (no validation split)"
    return {**predicted_scores(truth, probabilities.argmax(axis=1), labels), "C": member.C, "C_chosen_on": chosen_on}


def char_tfidf_baseline(tokens: pd.DataFrame, labels: list[str], seed: int,
                        member: CharNgramModel | None = None, test: TestRows = None) -> dict:
    """:func:`fit_char_baseline` (or ``member``, the run's own fit of this model with
    ``model.ensemble = "char_ngram"``, scored instead of fitting again) scored on the test split."""
    member = member if member is not None else fit_char_baseline(tokens, labels, seed)
    truth, outputs = score_test(tokens, test, labels, {"char": char_scorer(member)})
    return char_result(truth, outputs["char"], labels, member, tokens)


def evaluate_classifier(config: Config, paths: Paths) -> dict:
    """Score the run's model on the test split; write ``metrics.json`` and the plots."""
    run = RunPaths(paths.run)
    model = load_run(paths.run).model
    splits = EncodedSplits.load(paths.ids)
    labels = splits.labels
    test_targets = splits.targets["test"]
    extra = split_inputs(config.model, paths.tokens, {"test": splits.sequences["test"]}, config.train.max_length)
    batches = SequenceBatches(splits.sequences["test"], None, config.train.batch_size, config.train.max_length,
                              **extra["test"])
    probabilities = batches.predict(model)
    # what the baselines read (not the other token fields: on a big corpus they are most of the file): the
    # training and validation rows they fit on (bounded), the test rows a chunk at a time
    columns = ["text", "label", config.vectorize.token_field]
    tokens, counts = read_linear_rows(paths.tokens, columns, ("train", "validation"), config.classify.linear_max_rows,
                                      config.seed)

    def test() -> Iterable[pd.DataFrame]:
        return split_chunks(paths.tokens, columns, "test")

    member = CharNgramModel.load(paths.run) if config.model.ensemble == "char_ngram" else None
    self_trained = (paths.run / SELF_TRAINING_FILE).is_file()
    # the baseline learns from the labelled sentences alone: a self-trained run's member also read its own labels
    char_member = member if member is not None and not self_trained else \
        fit_char_baseline(tokens, labels, config.seed)
    word = fit_tfidf_baseline(tokens, config.vectorize.token_field, labels, config.seed)
    scorers = {"char": char_scorer(char_member), "word": word}
    if member is not None and member is not char_member:
        scorers["member"] = char_scorer(member)
    # one pass over the test rows for the baselines (and the member)
    truth, outputs = score_test(tokens, test, labels, scorers)
    char = char_result(truth, outputs["char"], labels, char_member, tokens)
    members = None
    if member is not None:  # the run classifies with the mixture; each member is scored alone too
        weight = ensemble_weight(paths.run)
        recurrent = classification_metrics(test_targets, probabilities.argmax(axis=1), labels)
        own = outputs.get("member", outputs["char"])
        alone = predicted_scores(truth, own.argmax(axis=1), labels)
        members = {"weight": weight, "recurrent": {key: recurrent[key] for key in ("accuracy", "macro_f1")},
                   "char_ngram": {key: alone[key] for key in ("accuracy", "macro_f1")}}
        probabilities = mix(probabilities, own, weight)
    metrics = classification_metrics(test_targets, probabilities.argmax(axis=1), labels)
    if members is not None:
        metrics["ensemble"] = members
    if config.train.distill:  # the recurrent model learned from the char n-gram model's soft targets
        record = paths.run / DISTILLATION_FILE
        metrics["distilled"] = artifact_io.read_json(record) if record.is_file() else \
            {"teacher": "char_ngram", "weight": config.train.distill}
    if self_trained:  # the classifier labelled unlabeled text for itself
        metrics["self_trained"] = artifact_io.read_json(paths.run / SELF_TRAINING_FILE)
    metrics["baselines"] = {
        "majority": majority_baseline(splits.targets["train"], test_targets, labels),
        "tfidf_logistic_regression": predicted_scores(truth, outputs["word"], labels),
        "char_tfidf_logistic_regression": char,
    }
    samples = sampled(tokens, counts)
    if samples:  # samples of large training and validation splits (classify.linear_max_rows)
        metrics["linear_models_fitted_on"] = samples
    metrics["test_size"] = int(len(test_targets))
    test_ids = np.asarray(splits.sequences["test"].flat[:])  # <unk>: fewer with vector_words and form_fallback
    metrics["unknown_token_share"] = float(np.mean(test_ids == UNK_ID)) if len(test_ids) else 0.0
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
    if "ensemble" in metrics:
        members = metrics["ensemble"]
        lines.append(f"  ensemble = {members['weight']:.2f} · recurrent + {1 - members['weight']:.2f} · char n-gram "
                     f"(weight chosen on validation); alone: recurrent accuracy "
                     f"{members['recurrent']['accuracy']:.3f} macro-F1 {members['recurrent']['macro_f1']:.3f}"
                     + recurrent_gap(members["recurrent"], baselines.get("char_tfidf_logistic_regression")))
    if "distilled" in metrics:
        alpha = metrics["distilled"]["weight"]
        unlabeled = metrics["distilled"].get("unlabeled", {}).get("rows", 0)
        lines.append(f"  the recurrent model learned from {1 - alpha:.2f} · labels + {alpha:.2f} · the char n-gram "
                     "model's out-of-fold probabilities (train.distill)"
                     + (f", and from its probabilities of {unlabeled:,} unlabeled sentences (train.distill_unlabeled)"
                        if unlabeled else ""))
    self_trained = metrics.get("self_trained", {})
    if "time_limited" in self_trained.get("round0", {}):
        lines.append(f"  self-training round 0 stopped after epoch {self_trained['round0']['time_limited']}, at its "
                     f"share ({self_trained['round0']['minutes']:.1f} minutes) of train.time_limit_minutes")
    for round_ in self_trained.get("rounds", []):
        if "skipped" in round_:
            lines.append(f"  self-training round {round_['round']} did not train: too little of "
                         f"train.time_limit_minutes was left for one epoch; the model is round "
                         f"{round_['round'] - 1}'s")
            continue
        lines.append(f"  self-training round {round_['round']}: trained again with {round_['labelled']:,} of "
                     f"{round_['of']:,} unlabeled sentences labelled by the round before (mean probability "
                     f"{round_['mean_probability']:.2f}; train.self_training)"
                     + (f"; stopped after epoch {round_['time_limited']}, at its share "
                        f"({round_['minutes']:.1f} minutes) of train.time_limit_minutes"
                        if "time_limited" in round_ else ""))
    lines += char_baseline_lines(metrics)
    if "unknown_token_share" in metrics:
        lines.append(f"  test tokens outside the vocabulary (<unk>): {100 * metrics['unknown_token_share']:.1f}%")
    if "linear_models_fitted_on" in metrics:
        samples = metrics["linear_models_fitted_on"]
        lines.append("  (the TF-IDF models read seeded samples: " + ", ".join(
            f"{sample['rows']:,} of the {sample['of']:,} {split} sentences" for split, sample in samples.items())
            + "; classify.linear_max_rows)")
    for label, scores in metrics["per_class"].items():
        lines.append(f"  {label:<12} precision {scores['precision']:.3f}  recall {scores['recall']:.3f}"
                     f"  F1 {scores['f1']:.3f}  support {scores['support']}")
    return "\n".join(lines)


GAP_KEYS = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"))  # metric key, its name on the terminal


def gaps_to_char(scores: dict, char: dict) -> str:
    """``accuracy +0.012, macro-F1 −0.003``: ``scores`` minus the char baseline's."""
    return ", ".join(f"{name} " + f"{scores[key] - char[key]:+.3f}".replace("-", "−") for key, name in GAP_KEYS)


def recurrent_gap(recurrent: dict, char: dict | None) -> str:
    """`` (− char TF-IDF: accuracy …, macro-F1 …)``: the ensemble's recurrent member alone against the char
    baseline; empty for metrics written before that baseline existed."""
    return "" if char is None else f" (− char TF-IDF: {gaps_to_char(recurrent, char)})"


def char_baseline_lines(metrics: dict) -> list[str]:
    """The char TF-IDF baseline, the model's gap to it, and a plain word when the model does not clear it."""
    char = metrics["baselines"].get("char_tfidf_logistic_regression")
    if char is None:  # metrics written before this baseline existed
        return []
    gaps = {name: metrics[key] - char[key] for key, name in GAP_KEYS}
    lines = [f"  char 1-3-gram TF-IDF + logistic regression (C={char['C']:g}, {char['C_chosen_on']}): "
             f"accuracy {char['accuracy']:.3f}  macro-F1 {char['macro_f1']:.3f}",
             f"  model − char TF-IDF: {gaps_to_char(metrics, char)}"]
    ahead = [name for name, gap in gaps.items() if gap > 0]
    if not ahead:
        lines.append("  the model does not beat the character n-gram baseline")
    elif len(ahead) < len(gaps):
        lines.append(f"  the model beats the character n-gram baseline on {ahead[0]} only")
    return lines
