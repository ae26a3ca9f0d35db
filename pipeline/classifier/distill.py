"""Knowledge distillation from the char n-gram model (``train.distill``): the recurrent classifier's soft targets.

The teacher is the char member of :mod:`pipeline.classifier.ensemble` (TF-IDF of character 1-3-grams + logistic
regression). Each training sentence gets its probabilities from a copy fitted on folds that did not read it
(:func:`teacher_probabilities`); with ``train.distill_unlabeled`` the teacher also labels a sample of the
unlabeled sentences (:func:`unlabeled_targets`). :func:`distillation_targets` makes the targets the train stage
fits, and the run folder records what the model learned from in ``DISTILLATION_FILE`` for ``evaluate``.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np

from pipeline import seeds
from pipeline.classifier.ensemble import (
    CharNgramModel,
    MemberRows,
    char_vectorizer,
    fit_member,
    logistic_regression,
    read_member_rows,
    split_chunks,
)
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import Paths
from pipeline.text.corpora import UNLABELED
from pipeline.text.vectors import EncodedSplits

log = logging.getLogger(__name__)

DISTILLATION_FILE = "distillation.json"  # what the recurrent model learned from (train.distill), for evaluate


def distillation_targets(config: Config, paths: Paths, splits: EncodedSplits):
    """The training and validation targets, the char n-gram teacher when ``train.distill`` > 0, and the
    unlabeled sentences it labels.

    Without distillation: the label ids ``(n,)`` of each split, no teacher, no unlabeled rows. With it (Hinton
    et al. 2015, the teacher being the char member of :mod:`pipeline.classifier.ensemble`): each training
    sentence's target is ``(1 − distill) · one_hot(label) + distill · p_char(· | sentence)`` ``(n, classes)``,
    where ``p_char`` comes from a char TF-IDF model that did not see the sentence (out-of-fold), so the targets
    carry what the n-grams know of sentences they have not read, not their memory of the training set;
    validation targets are one-hot, so the validation loss stays the labels' cross-entropy. The teacher (its rows
    and fitted member) is returned for the ensemble to reuse.

    With ``corpus.unlabeled_path`` the teacher also labels up to ``train.distill_unlabeled`` unlabeled sentences
    per training sentence (:func:`pipeline.classifier.ensemble.unlabeled_targets`): their rows of the
    ``unlabeled`` split and targets ``p_char(· | sentence)`` ``(rows, classes)``, else ``None``.
    """
    train, validation = splits.targets["train"], splits.targets["validation"]
    alpha = config.train.distill
    if not alpha:
        return None, train, validation, None

    data = read_member_rows(paths.tokens, splits.labels, config.seed, config.classify.linear_max_rows,
                            config.train.validation_rows)
    member = fit_member(data, splits.labels, config.seed)
    soft = teacher_probabilities(paths.tokens, data, member, splits.labels, config.seed, config.train.distill_folds)
    one_hot = np.eye(len(splits.labels), dtype=np.float32)
    unlabeled = None
    count = len(splits.sequences.get(UNLABELED, ()))
    limit = int(config.train.distill_unlabeled * len(train))
    if count and limit:
        rows, probabilities = unlabeled_targets(paths.tokens, member, count, limit, len(splits.labels), config.seed)
        unlabeled = (rows, probabilities.astype(np.float32))
    return ((data, member), ((1.0 - alpha) * one_hot[train] + alpha * soft).astype(np.float32), one_hot[validation],
            unlabeled)


def teacher_probabilities(tokens_path: Path, data: MemberRows, member: CharNgramModel, labels: list[str], seed: int,
                          folds: int) -> np.ndarray:
    """The char member's probabilities ``(training sentences, classes)`` of every training sentence, each from
    a model that did not see it (``train.distill``: the soft targets the recurrent model learns from).

    The sentences the member was fitted on get out-of-fold probabilities: ``folds`` stratified folds, each
    predicted by char TF-IDF + logistic regression fitted (vocabulary, idf and weights) on the other folds at
    the member's C. Training sentences outside its sample (``classify.linear_max_rows``) are held out from the
    member itself, so they get its probabilities, read a chunk of the table at a time. Rows are in the token
    table's order of the training split, as the encoded sequences.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    started = time.perf_counter()
    texts, targets = data.texts["train"], data.targets["train"]
    probabilities = np.zeros((data.counts["train"], len(labels)))
    if data.counts["train"] > len(texts):  # a sample: the rest are held out from the member already
        unread = np.ones(data.counts["train"], dtype=bool)
        unread[data.rows["train"]] = False
        probabilities[unread] = member_probabilities(tokens_path, member, "train", unread, len(labels))
    largest = int(np.bincount(targets).max(initial=0))
    splits = max(2, min(folds, largest))  # a class of fewer sentences than folds is spread over fewer folds
    if len(texts) < splits:
        raise PipelineError(f"train.distill: {len(texts)} training sentences are too few for out-of-fold "
                            "probabilities; set train.distill = 0.0")
    # stratified unless every class has a single sentence; a class smaller than the folds leaves some out
    splitter = (StratifiedKFold if largest >= splits else KFold)(splits, shuffle=True,
                                                                  random_state=seeds.child_seed(seed, "distill_folds"))
    texts_array = np.array(texts, dtype=object)
    out_of_fold = np.zeros((len(texts), len(labels)))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        parts = list(splitter.split(np.zeros(len(texts)), targets))
    for fitted, held in parts:
        vectorizer = char_vectorizer()
        features = vectorizer.fit_transform(texts_array[fitted].tolist())
        present = np.unique(targets[fitted])  # a class missing from these folds gets no probability
        if len(present) == 1:
            out_of_fold[held, present[0]] = 1.0
            continue
        classifier = logistic_regression(seeds.child_seed(seed, "char_tfidf"), C=member.C)
        classifier.fit(features, targets[fitted])
        out_of_fold[np.ix_(held, present)] = classifier.predict_proba(vectorizer.transform(texts_array[held].tolist()))
    probabilities[data.rows["train"]] = out_of_fold
    log.info("distillation teacher: char n-gram out-of-fold probabilities of %d training sentences (%d folds, "
             "accuracy %.3f), %.1f s", len(texts), splits, float(np.mean(out_of_fold.argmax(axis=1) == targets)),
             time.perf_counter() - started)
    return probabilities


def member_probabilities(tokens_path: Path, member: CharNgramModel, split: str, wanted: np.ndarray,
                         classes: int) -> np.ndarray:
    """``member``'s probabilities ``(wanted rows, classes)`` of the rows of ``split`` where the mask ``wanted``
    ``(rows of the split,)`` is true, in the split's order; the texts are read a chunk of the table at a time."""
    probabilities = np.zeros((int(wanted.sum()), classes))
    start, done = 0, 0
    for chunk in split_chunks(tokens_path, ["text"], split):
        rows = np.flatnonzero(wanted[start:start + len(chunk)])
        if len(rows):
            probabilities[done:done + len(rows)] = member.probabilities(chunk["text"].to_numpy()[rows].tolist())
            done += len(rows)
        start += len(chunk)
    return probabilities


def unlabeled_targets(tokens_path: Path, member: CharNgramModel, count: int, limit: int, classes: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The unlabeled sentences the recurrent model also learns from, and their soft targets
    (``train.distill_unlabeled``): a seeded sample of at most ``limit`` of the ``count`` rows of split
    ``unlabeled`` (``corpus.unlabeled_path``; every row when ``limit`` >= ``count``), in the split's order, and
    ``member``'s probabilities of them ``(rows, classes)``. The member never read them, so these are its honest
    guesses, as the out-of-fold ones of the training sentences are (Tang et al. 2019 distil a large model into a
    BiLSTM on unlabeled text labelled this way)."""
    from pipeline.text.batches import rows_up_to  # imports Keras: only when training

    started = time.perf_counter()
    rows = rows_up_to(count, limit, seeds.rng(seed, "distill_unlabeled"))
    wanted = np.zeros(count, dtype=bool)
    wanted[rows] = True
    probabilities = member_probabilities(tokens_path, member, UNLABELED, wanted, classes)
    log.info("distillation teacher: char n-gram probabilities of %d of %d unlabeled sentences (mean top "
             "probability %.2f), %.1f s", len(rows), count, float(probabilities.max(axis=1, initial=0).mean())
             if len(rows) else 0.0, time.perf_counter() - started)
    return rows, probabilities
