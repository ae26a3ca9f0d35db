"""An ensemble of the recurrent classifier and the character n-gram linear model, in one run folder.

With ``model.ensemble = "char_ngram"`` a run also holds TF-IDF of character 1-3-grams with logistic
regression (the char baseline of :mod:`pipeline.classifier.evaluate`, C chosen on the validation
split), and classifies with the mixture

    p(y | x) = w · p_recurrent(y | x) + (1 − w) · p_char(y | x)

where w is the value of ``WEIGHT_GRID`` with the lowest negative log-likelihood on the validation
split. Recurrent and n-gram models make different errors (the recurrent one reads word order and
meaning, the n-gram one spelling: names, katakana loanwords, numbers), so the mixture is usually
better than either; both members are still scored alone in ``metrics.json``.

The linear member is stored without pickle, as arrays in ``char_ngram.npz`` and its n-grams in
``char_ngram.json``; :class:`CharNgramModel` recomputes sklearn's features and probabilities from them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

ARRAYS_FILE = "char_ngram.npz"
NGRAMS_FILE = "char_ngram.json"
WEIGHT_GRID = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))  # w of the recurrent model, steps of 0.05
NGRAM_RANGE = (1, 3)
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)  # char TF-IDF: inverse regularisation strengths tried on validation
FIXED_C = 10.0  # the token TF-IDF baseline, and the char one without a validation split
SCORE_CHUNK = 20_000  # texts turned into sparse features at once when a fitted linear model scores them


def char_vectorizer(vocabulary: dict[str, int] | None = None):
    """The one definition of the char features: TF-IDF of 1-3-grams, sublinear term frequency, l2 rows."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char", ngram_range=NGRAM_RANGE, sublinear_tf=True, vocabulary=vocabulary)


def logistic_regression(seed: int, **options):
    """The one definition of the linear models' classifier (the char member, its out-of-fold copies, the TF-IDF
    baselines): multinomial logistic regression by ``saga``, the fastest solver on these sparse features."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(solver="saga", max_iter=1000, random_state=seed, **options)


@dataclass
class CharNgramModel:
    """A fitted char TF-IDF + logistic regression, as plain arrays.

    ``ngrams`` (features,) in column order, ``idf`` (features,), ``coef`` (classes or 1, features),
    ``intercept`` (classes or 1,): one row for a two-class problem, as sklearn stores it.
    """

    ngrams: list[str]
    idf: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    C: float

    @classmethod
    def from_fitted(cls, vectorizer, classifier, inverse_regularization: float) -> CharNgramModel:
        ngrams = [None] * len(vectorizer.vocabulary_)
        for ngram, column in vectorizer.vocabulary_.items():
            ngrams[column] = ngram
        return cls(ngrams, vectorizer.idf_.astype(np.float64), classifier.coef_.astype(np.float64),
                   classifier.intercept_.astype(np.float64), float(inverse_regularization))

    def features(self, texts: list[str]):
        """Sparse TF-IDF rows ``(texts, features)``, exactly as the fitted vectorizer gives them."""
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        counts = CountVectorizer(analyzer="char", ngram_range=NGRAM_RANGE,
                                 vocabulary={ngram: i for i, ngram in enumerate(self.ngrams)}).transform(texts)
        counts = counts.astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)  # sublinear term frequency
        return normalize(counts.multiply(self.idf).tocsr())

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Class probabilities ``(texts, classes)``: softmax of the decision values (sigmoid for two classes).

        Features are made ``SCORE_CHUNK`` texts at a time, so scoring a large split holds one chunk's matrix.
        """
        if len(texts) > SCORE_CHUNK:
            return in_chunks(self.probabilities, texts)
        if not texts:
            return np.zeros((0, max(2, self.coef.shape[0])))
        decision = np.asarray(self.features(texts) @ self.coef.T) + self.intercept
        if self.coef.shape[0] == 1:
            positive = 1.0 / (1.0 + np.exp(-decision[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        decision -= decision.max(axis=1, keepdims=True)
        exponentials = np.exp(decision)
        return exponentials / exponentials.sum(axis=1, keepdims=True)

    def save(self, folder: Path) -> None:
        artifact_io.write_json(folder / NGRAMS_FILE, {"ngrams": self.ngrams, "C": self.C})
        with artifact_io.atomic_path(folder / ARRAYS_FILE, suffix=".npz") as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, idf=self.idf, coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, folder: Path) -> CharNgramModel:
        for name in (ARRAYS_FILE, NGRAMS_FILE):
            if not (folder / name).is_file():
                raise PipelineError(f"{folder}: incomplete run folder, {name} (the char n-gram ensemble member) is "
                                    "missing; retrain with --force")
        try:
            meta = artifact_io.read_json(folder / NGRAMS_FILE)
            with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
                model = cls(list(meta["ngrams"]), arrays["idf"], arrays["coef"], arrays["intercept"], float(meta["C"]))
        except (ValueError, KeyError, OSError) as error:
            raise PipelineError(f"{folder}: corrupt char n-gram ensemble member ({error}); retrain with --force") \
                from None
        if not (len(model.ngrams) == len(model.idf) == model.coef.shape[1]):
            raise PipelineError(f"{folder}: inconsistent char n-gram ensemble member; retrain with --force")
        return model


def fit_char_ngram(texts: dict[str, list[str]], targets: dict[str, np.ndarray], labels: list[str], seed: int,
                   c_grid: tuple[float, ...], fixed_c: float) -> CharNgramModel:
    """Fit on ``texts["train"]``; C from ``c_grid`` by validation macro-F1 (``fixed_c`` without validation rows).

    Warm starts from the smallest C up, as the char baseline does; the returned arrays are those of the best C.
    """
    from sklearn.metrics import f1_score

    started = time.perf_counter()
    vectorizer = char_vectorizer()
    train_features = vectorizer.fit_transform(texts["train"])
    has_validation = len(texts["validation"]) > 0
    classifier = logistic_regression(seed, warm_start=True)
    best: tuple[float, CharNgramModel] | None = None
    for inverse_regularization in c_grid if has_validation else (fixed_c,):
        classifier.set_params(C=inverse_regularization).fit(train_features, targets["train"])
        score = f1_score(targets["validation"], chunked_predict(classifier, vectorizer, texts["validation"]),
                         average="macro", labels=range(len(labels)), zero_division=0) if has_validation else 0.0
        if best is None or score > best[0]:
            best = (score, CharNgramModel.from_fitted(vectorizer, classifier, inverse_regularization))
    log.info("char n-gram member: %d features, C = %g, %.1f s", len(vectorizer.vocabulary_), best[1].C,
             time.perf_counter() - started)
    return best[1]


def chunked_predict(classifier, vectorizer, texts) -> np.ndarray:
    """``classifier.predict`` of ``vectorizer``'s features of ``texts`` (a list or a Series), ``SCORE_CHUNK``
    texts at a time: labels ``(texts,)``."""
    texts = list(texts)
    if not texts:
        return np.zeros(0, dtype=np.int64)
    return in_chunks(lambda part: classifier.predict(vectorizer.transform(part)), texts)


def in_chunks(score, texts: list) -> np.ndarray:
    """``score`` of ``texts`` (at least one), ``SCORE_CHUNK`` of them at a time, the results concatenated."""
    return np.concatenate([score(texts[start:start + SCORE_CHUNK]) for start in range(0, len(texts), SCORE_CHUNK)])


SAMPLED_SPLITS = ("train", "validation")  # what a linear model fits on and is tuned on; the test split is all scored


def read_linear_rows(tokens_path: Path, columns: list[str], splits: tuple[str, ...], max_rows: int | dict[str, int],
                     seed: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of the token table a linear model is fitted, tuned and scored on, without holding the others.

    Every row of ``splits`` is kept, except that the training and the validation split keep at most
    ``max_rows`` rows each (``classify.linear_max_rows``; 0 keeps all; a dict gives each split its own bound,
    a split it does not name keeps all): a seeded uniform sample, in table order. Only ``columns`` (and
    ``split``) are read, a batch of rows at a time, so a table of millions of sentences never has all its texts
    in memory.

    Returns:
        the kept rows: a frame with ``columns``, ``split`` and ``row`` (the row's position within its split,
        e.g. to pick the same validation rows of another model's predictions), index 0..n-1; and the number of
        rows of each of ``splits`` in the table (more than the kept ones when sampled).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    table = artifact_io.parquet_file(tokens_path)
    split = table.read(columns=["split"]).column("split")  # Arrow strings: no Python object per row
    keep = np.zeros(len(split), dtype=bool)
    within = np.zeros(len(split), dtype=np.int64)  # a row's position in its split
    counts = {}
    for name in splits:
        positions = np.flatnonzero(pc.equal(split, pa.scalar(name, split.type)).to_numpy(zero_copy_only=False))
        counts[name] = len(positions)
        within[positions] = np.arange(len(positions))
        limit = max_rows.get(name, 0) if isinstance(max_rows, dict) else max_rows
        if name in SAMPLED_SPLITS and limit and len(positions) > limit:
            positions = np.sort(seeds.rng(seed, f"linear_sample_{name}").choice(positions, limit, replace=False))
        keep[positions] = True
    del split
    names = list(dict.fromkeys([*columns, "split"]))
    parts, start = [], 0
    for batch in table.iter_batches(batch_size=65_536, columns=names):
        rows = np.flatnonzero(keep[start:start + batch.num_rows])
        if len(rows):
            part = batch.take(rows).to_pandas()
            part["row"] = within[start + rows]
            parts.append(part)
        start += batch.num_rows
    frame = pd.concat(parts, ignore_index=True) if parts else \
        table.schema_arrow.empty_table().select(names).to_pandas().assign(row=np.zeros(0, dtype=np.int64))
    return frame, counts


def split_chunks(tokens_path: Path, columns: list[str], split: str, rows: int = 65_536) -> Iterator[pd.DataFrame]:
    """The rows of ``split`` in the token table, in table order: a frame (``columns`` and ``split``) per
    ``rows`` rows of the table read, so that a large split is never whole in memory."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = artifact_io.parquet_file(tokens_path)
    names = list(dict.fromkeys([*columns, "split"]))
    for batch in table.iter_batches(batch_size=rows, columns=names):
        kept = batch.filter(pc.equal(batch.column("split"), pa.scalar(split, batch.schema.field("split").type)))
        if kept.num_rows:
            yield kept.to_pandas()


def sampled(frame: pd.DataFrame, counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """``{split: {"rows": kept, "of": in the table}}`` for each split of :func:`read_linear_rows` that was
    sampled (empty when none was)."""
    kept = frame["split"].value_counts()
    return {split: {"rows": int(kept.get(split, 0)), "of": total} for split, total in counts.items()
            if int(kept.get(split, 0)) < total}


def mixture_weight(recurrent: np.ndarray, char: np.ndarray, targets: np.ndarray) -> float:
    """The w of ``WEIGHT_GRID`` with the lowest mean negative log-likelihood of ``targets`` under the mixture
    (probabilities ``(examples, classes)`` each); 1.0 (the recurrent model alone) without examples.

    Ties go to the larger w, so the recurrent model is kept whenever the n-grams add nothing.
    """
    if len(targets) == 0:
        return 1.0
    rows = np.arange(len(targets))
    losses = [-np.mean(np.log(w * recurrent[rows, targets] + (1 - w) * char[rows, targets] + 1e-12))
              for w in WEIGHT_GRID]
    best = min(losses)
    return float(max(w for w, loss in zip(WEIGHT_GRID, losses) if loss <= best + 1e-9))


def mix(recurrent: np.ndarray, char: np.ndarray, weight: float) -> np.ndarray:
    return weight * recurrent + (1.0 - weight) * char


@dataclass
class MemberRows:
    """The rows the char member is fitted and tuned on (:func:`read_linear_rows`): per split ``train`` and
    ``validation``, the ``texts``, their label ids ``targets`` (n,), their positions ``rows`` (n,) within the
    split (in the token table's order), and ``counts``: every row of each split in the table."""

    texts: dict[str, list[str]]
    targets: dict[str, np.ndarray]
    rows: dict[str, np.ndarray]
    counts: dict[str, int]


def read_member_rows(tokens_path: Path, labels: list[str], seed: int, max_rows: int,
                     validation_rows: int = 0) -> MemberRows:
    """The char member's rows: at most ``max_rows`` of the training and of the validation split, and at most
    ``validation_rows`` (``train.validation_rows``, 0: no bound) of the validation split."""
    bounds = [bound for bound in (max_rows, validation_rows) if bound]
    limits = {"train": max_rows, "validation": min(bounds, default=0)}
    tokens, counts = read_linear_rows(tokens_path, ["text", "label"], ("train", "validation"), limits, seed)
    for split, sample in sampled(tokens, counts).items():
        log.info("char n-gram member: %d of %d %s sentences (classify.linear_max_rows)", sample["rows"],
                 sample["of"], split)
    label_index = {label: i for i, label in enumerate(labels)}
    parts = {split: tokens[tokens["split"] == split] for split in ("train", "validation")}
    return MemberRows({split: part["text"].tolist() for split, part in parts.items()},
                      {split: part["label"].map(label_index).to_numpy() for split, part in parts.items()},
                      {split: part["row"].to_numpy() for split, part in parts.items()}, counts)


def fit_member(data: MemberRows, labels: list[str], seed: int) -> CharNgramModel:
    """The char member: fitted on ``data``'s training rows, C chosen on its validation rows."""
    return fit_char_ngram(data.texts, data.targets, labels, seeds.child_seed(seed, "char_tfidf"), C_GRID, FIXED_C)


def fit_ensemble(tokens_path: Path, labels: list[str], recurrent_probabilities: Callable[[np.ndarray], np.ndarray],
                 seed: int, folder: Path, max_rows: int, validation_rows: int = 0,
                 fitted: tuple[MemberRows, CharNgramModel] | None = None) -> float:
    """Fit the char member on the prepared text of the training split, choose its C and w on the validation
    split (at most ``max_rows`` of each, see :func:`read_linear_rows`, and at most ``validation_rows``
    (``train.validation_rows``, 0: no bound) of the validation split), save both to the run ``folder``;
    returns w. ``recurrent_probabilities(rows)`` gives the recurrent model's ``(len(rows), classes)`` for
    the validation rows at positions ``rows`` of the split (in the token table's order): only the rows read
    are predicted. ``fitted``: the rows and member already made (the distillation teacher), used as they are."""
    if fitted is None:
        data = read_member_rows(tokens_path, labels, seed, max_rows, validation_rows)
        fitted = (data, fit_member(data, labels, seed))
    data, member = fitted
    weight = mixture_weight(recurrent_probabilities(data.rows["validation"]),
                            member.probabilities(data.texts["validation"]), data.targets["validation"])
    member.save(folder)
    artifact_io.write_json(folder / "ensemble.json", {"members": ["recurrent", "char_ngram"], "weight": weight,
                                                      "weight_chosen_on": "validation negative log-likelihood",
                                                      "rows": {split: {"rows": len(data.texts[split]),
                                                                       "of": data.counts[split]}
                                                               for split in ("train", "validation")}})
    log.info("ensemble: p = %.2f · recurrent + %.2f · char n-gram (chosen on validation)", weight, 1 - weight)
    return weight


def ensemble_weight(folder: Path) -> float:
    try:
        return float(artifact_io.read_json(folder / "ensemble.json")["weight"])
    except (OSError, ValueError, KeyError, TypeError):
        raise PipelineError(f"{folder}: ensemble.json is missing or corrupt; retrain with --force") from None
