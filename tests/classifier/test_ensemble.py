"""Tests of pipeline.classifier.ensemble: the char n-gram member against scikit-learn, its files, the
mixture weight, and a run with ``model.ensemble = "char_ngram"`` through the real CLI."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SHORT_TEXTS as TEXTS
from helpers import TEST_CONFIGS, assert_success, cli_here

from pipeline.classifier import ensemble
from pipeline.classifier.ensemble import (
    ARRAYS_FILE,
    WEIGHT_GRID,
    CharNgramModel,
    char_vectorizer,
    fit_char_ngram,
    fit_ensemble,
    mix,
    mixture_weight,
    read_linear_rows,
)
from pipeline.errors import PipelineError

UNSEEN = ["ｽﾏﾎ", "見たことのない固有名詞ＡＢＣ", "😀", "", "寺"]


def fitted(classes: int):
    from sklearn.linear_model import LogisticRegression

    targets = np.arange(len(TEXTS)) % classes
    vectorizer = char_vectorizer()
    classifier = LogisticRegression(solver="saga", max_iter=5000, C=3.0, random_state=0)
    classifier.fit(vectorizer.fit_transform(TEXTS), targets)
    return vectorizer, classifier


@pytest.mark.parametrize("classes", [2, 3])
def test_member_probabilities_are_scikit_learns(classes):
    vectorizer, classifier = fitted(classes)
    member = CharNgramModel.from_fitted(vectorizer, classifier, 3.0)
    for texts in (TEXTS, UNSEEN):
        np.testing.assert_allclose(member.probabilities(texts), classifier.predict_proba(vectorizer.transform(texts)),
                                   rtol=1e-10, atol=1e-12)


def test_member_scores_a_chunk_at_a_time_with_the_same_probabilities(monkeypatch):
    member = CharNgramModel.from_fitted(*fitted(3), 3.0)
    texts = TEXTS + UNSEEN
    whole = member.probabilities(texts)
    monkeypatch.setattr(ensemble, "SCORE_CHUNK", 4)
    np.testing.assert_array_equal(member.probabilities(texts), whole)
    vectorizer, classifier = fitted(3)
    np.testing.assert_array_equal(ensemble.chunked_predict(classifier, vectorizer, texts),
                                  classifier.predict(vectorizer.transform(texts)))
    assert ensemble.chunked_predict(classifier, vectorizer, []).shape == (0,)


def token_table(path: Path, rows: int, row_group: int = 10_000) -> pd.DataFrame:
    """A token table of ``rows`` rows (text, label, split, surface), written in row groups of ``row_group``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = np.arange(rows)
    frame = pd.DataFrame({"text": [f"文{i}" for i in index], "label": np.where(index % 3 == 0, "a", "b"),
                          "split": np.array(["train", "train", "validation", "train", "test"])[index % 5],
                          "surface": [["文", str(i)] for i in index]})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group)
    return frame


def test_linear_rows_keep_every_row_below_the_bound_and_a_seeded_sample_above(tmp_path):
    frame = token_table(tmp_path / "tokens.parquet", 70_000)  # more than one read batch
    train = frame[frame["split"] == "train"]
    validation = frame[frame["split"] == "validation"]
    everything, counts = read_linear_rows(tmp_path / "tokens.parquet", ["text", "label", "surface"],
                                          ("train", "validation", "test"), 0, 7)
    assert counts == {"train": len(train), "validation": len(validation), "test": 14_000}
    pd.testing.assert_frame_equal(everything[["text", "label", "split"]],
                                  frame[["text", "label", "split"]].reset_index(drop=True))
    assert [list(words) for words in everything["surface"]] == frame["surface"].tolist()
    assert everything[everything["split"] == "train"]["row"].tolist() == list(range(len(train)))
    assert ensemble.sampled(everything, counts) == {}
    sample, counts = read_linear_rows(tmp_path / "tokens.parquet", ["text"], ("train", "validation", "test"), 1000, 7)
    assert list(sample.columns) == ["text", "split", "row"]
    assert ensemble.sampled(sample, counts) == {"train": {"rows": 1000, "of": len(train)},
                                                "validation": {"rows": 1000, "of": len(validation)}}
    for split, part in ((split, frame[frame["split"] == split]) for split in ("train", "validation")):
        kept = sample[sample["split"] == split]
        assert len(kept) == 1000 and set(kept["text"]) <= set(part["text"])
        order = kept["text"].str.slice(1).astype(int).tolist()
        assert order == sorted(order) and order[-1] > 65_536  # table order, drawn across the whole table
        # row: the position within the split, so another model's predictions of the split line up
        assert part["text"].to_numpy()[kept["row"].to_numpy()].tolist() == kept["text"].tolist()
    assert sample[sample["split"] == "test"]["text"].tolist() == frame[frame["split"] == "test"]["text"].tolist()
    again, _ = read_linear_rows(tmp_path / "tokens.parquet", ["text"], ("train", "validation", "test"), 1000, 7)
    other, _ = read_linear_rows(tmp_path / "tokens.parquet", ["text"], ("train", "validation", "test"), 1000, 8)
    pd.testing.assert_frame_equal(again, sample)
    assert set(other["text"]) != set(sample["text"])


def test_ensemble_member_is_fitted_on_the_bounded_sample(tmp_path):
    rows = 400
    index = np.arange(rows)
    texts = np.array(TEXTS[:9])[index % 9]
    frame = pd.DataFrame({"text": [f"{text}{i}" for i, text in zip(index, texts)],
                          "label": np.array(["a", "b", "c"])[index % 3],
                          "split": np.where(index % 4 == 0, "validation", "train")})
    frame.to_parquet(tmp_path / "tokens.parquet", index=False)
    asked = []

    def uniform(rows):  # the recurrent model's probabilities of the validation rows at these positions
        asked.append(rows)
        return np.full((len(rows), 3), 1 / 3)

    fit_ensemble(tmp_path / "tokens.parquet", ["a", "b", "c"], uniform, 5, tmp_path, 50)
    settings = json.loads((tmp_path / "ensemble.json").read_text(encoding="utf-8"))
    assert settings["rows"] == {"train": {"rows": 50, "of": 300}, "validation": {"rows": 50, "of": 100}}
    sample, _ = read_linear_rows(tmp_path / "tokens.parquet", ["text"], ("train",), 50, 5)
    # only the 50 validation rows the weight is chosen on are predicted
    read, _ = read_linear_rows(tmp_path / "tokens.parquet", ["split"], ("train", "validation"), 50, 5)
    assert len(asked) == 1 and asked[0].tolist() == read[read["split"] == "validation"]["row"].tolist()
    member = CharNgramModel.load(tmp_path)
    assert set(member.ngrams) == set(char_vectorizer().fit(sample["text"]).vocabulary_)


def test_ensemble_validation_rows_bound_the_validation_sample_only(tmp_path):
    rows = 400
    index = np.arange(rows)
    frame = pd.DataFrame({"text": [f"{text}{i}" for i, text in zip(index, np.array(TEXTS[:9])[index % 9])],
                          "label": np.array(["a", "b", "c"])[index % 3],
                          "split": np.where(index % 4 == 0, "validation", "train")})
    frame.to_parquet(tmp_path / "tokens.parquet", index=False)
    asked = []

    def uniform(chosen):
        asked.append(chosen)
        return np.full((len(chosen), 3), 1 / 3)

    # train.validation_rows = 20 under classify.linear_max_rows = 50 (and alone, with no linear bound)
    for max_rows, train_rows in ((50, 50), (0, 300)):
        fit_ensemble(tmp_path / "tokens.parquet", ["a", "b", "c"], uniform, 5, tmp_path, max_rows, 20)
        settings = json.loads((tmp_path / "ensemble.json").read_text(encoding="utf-8"))
        assert settings["rows"] == {"train": {"rows": train_rows, "of": 300}, "validation": {"rows": 20, "of": 100}}
        assert len(asked[-1]) == 20
    read, _ = read_linear_rows(tmp_path / "tokens.parquet", ["split"], ("train", "validation"),
                               {"train": 50, "validation": 20}, 5)
    assert read["split"].value_counts().to_dict() == {"train": 50, "validation": 20}
    assert asked[0].tolist() == read[read["split"] == "validation"]["row"].tolist()


def test_member_files_round_trip_exactly(tmp_path):
    member = CharNgramModel.from_fitted(*fitted(3), 3.0)
    member.save(tmp_path)
    loaded = CharNgramModel.load(tmp_path)
    assert loaded.ngrams == member.ngrams and loaded.C == 3.0
    np.testing.assert_array_equal(loaded.probabilities(TEXTS + UNSEEN), member.probabilities(TEXTS + UNSEEN))


def test_missing_or_corrupt_member_is_a_one_line_error(tmp_path):
    with pytest.raises(PipelineError, match="char_ngram.npz.*missing"):
        CharNgramModel.load(tmp_path)
    CharNgramModel.from_fitted(*fitted(2), 3.0).save(tmp_path)
    (tmp_path / ARRAYS_FILE).write_bytes(b"not an npz")
    with pytest.raises(PipelineError, match="corrupt char n-gram"):
        CharNgramModel.load(tmp_path)


def test_fit_chooses_c_on_validation_and_falls_back_without_it():
    targets = np.arange(len(TEXTS)) % 3
    texts = {"train": TEXTS[:18], "validation": TEXTS[18:]}
    split_targets = {"train": targets[:18], "validation": targets[18:]}
    member = fit_char_ngram(texts, split_targets, ["a", "b", "c"], 0, (0.1, 100.0), 7.0)
    assert member.C in (0.1, 100.0)
    no_validation = fit_char_ngram({"train": TEXTS, "validation": []}, {"train": targets, "validation": targets[:0]},
                                   ["a", "b", "c"], 0, (0.1, 100.0), 7.0)
    assert no_validation.C == 7.0


def test_mixture_weight_minimises_validation_nll():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 200)
    sure = np.full((200, 3), 0.05)
    sure[np.arange(200), targets] = 0.9
    uniform = np.full((200, 3), 1 / 3)
    assert mixture_weight(sure, uniform, targets) == 1.0  # the char member adds nothing: recurrent alone
    assert mixture_weight(uniform, sure, targets) == 0.0
    # two members right on different halves: the mixture beats either alone
    left, right = uniform.copy(), uniform.copy()
    left[:100], right[100:] = sure[:100], sure[100:]
    weight = mixture_weight(left, right, targets)
    assert 0 < weight < 1 and weight in WEIGHT_GRID
    nll = [-np.log(mix(left, right, w)[np.arange(200), targets]).mean() for w in (0.0, weight, 1.0)]
    assert nll[1] < min(nll[0], nll[2])
    assert mixture_weight(sure[:0], uniform[:0], targets[:0]) == 1.0  # no validation split


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    result = cli_here("run", str(TEST_CONFIGS / "e2e.toml"), "--set", f"work_dir='{root / 'work'}'",
                      "--set", f"models_dir='{root / 'models'}'", "--set", "model.ensemble='char_ngram'",
                      "--set", "train.epochs=2", "--set", f"classify.linear_max_rows={BOUND}",
                      "--set", f"train.distill={DISTILL}", "--set", f"corpus.unlabeled_path='{unlabeled_text(root)}'",
                      "--set", "train.distill_unlabeled=2")
    assert_success(result)
    return root / "models" / "e2e", result.stdout, result.stderr


DISTILL = 0.5  # the run's recurrent model also learns from the char member's out-of-fold probabilities
PLACES = ["京都", "大阪の店", "近所の公園", "新しいスマホ", "野球場"]
DOINGS = ["で遊んだ。", "が気に入った。", "を見に行った。", "について書きます。", "はどうかな？"]
UNLABELED = [place + doing for place in PLACES for doing in DOINGS]  # 25 sentences the blog corpus does not hold


def unlabeled_text(root: Path) -> Path:
    """``corpus.unlabeled_path`` of the run: UNLABELED, one sentence a line."""
    path = root / "unlabeled.txt"
    path.write_text("\n".join(UNLABELED) + "\n", encoding="utf-8")
    return path


BOUND = 40  # classify.linear_max_rows of the run: fewer than its training sentences


def test_run_reports_the_ensemble_and_each_member(ensemble_run):
    folder, stdout, stderr = ensemble_run
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    members = metrics["ensemble"]
    assert 0.0 <= members["weight"] <= 1.0
    assert set(members) == {"weight", "recurrent", "char_ngram"}
    # the char member is the char TF-IDF baseline itself, fitted once
    assert members["char_ngram"]["accuracy"] == metrics["baselines"]["char_tfidf_logistic_regression"]["accuracy"]
    assert "ensemble = " in stdout and "alone: recurrent accuracy" in stdout
    char = metrics["baselines"]["char_tfidf_logistic_regression"]
    gap = members["recurrent"]["macro_f1"] - char["macro_f1"]
    assert "(− char TF-IDF: accuracy " in stdout and "macro-F1 " + f"{gap:+.3f})".replace("-", "−") in stdout
    # train.distill: said in the metrics and on the terminal; the teacher is the ensemble's member, fitted once
    # ... and from its probabilities of every unlabeled sentence (train.distill_unlabeled: up to 2 per training one)
    unlabeled = {"rows": len(UNLABELED), "of": len(UNLABELED)}
    assert metrics["distilled"] == {"teacher": "char_ngram", "weight": DISTILL, "folds": 5, "unlabeled": unlabeled}
    assert "0.50 · labels + 0.50 · the char n-gram model's out-of-fold probabilities (train.distill), and from its " \
           f"probabilities of {len(UNLABELED)} unlabeled sentences" in stdout
    assert f"training also on {len(UNLABELED)} unlabeled sentences" in stderr
    assert stderr.count("distillation teacher: char n-gram out-of-fold probabilities") == 1
    assert len(re.findall(r"char n-gram member: \d+ features, C = ", stderr)) == 1
    assert (folder / "char_ngram.npz").is_file() and (folder / "ensemble.json").is_file()
    # the linear models (member and baselines) were fitted on a sample of BOUND training sentences, and say so
    rows = json.loads((folder / "ensemble.json").read_text(encoding="utf-8"))["rows"]
    assert rows["train"]["rows"] == BOUND and rows["train"]["of"] > BOUND
    assert metrics["linear_models_fitted_on"]["train"] == rows["train"]
    assert f"{BOUND} of the {rows['train']['of']:,} train sentences" in stdout


MIXED_WEIGHT = 0.35  # a value of WEIGHT_GRID strictly inside (0, 1): both members count
CLASSIFIED = ["新しいスマホのバッテリーがすぐ切れて困っています。", "週末は嵐山で紅葉を見てから湯豆腐を食べました。",
              "ｻｯｶｰの試合で延長戦になった"]  # half-width katakana: the member reads the normalised text


def char_member_predict_proba(member: CharNgramModel, labels: list[str], texts: list[str]) -> np.ndarray:
    """scikit-learn's own ``predict_proba`` with the member's stored arrays (its vectorizer's vocabulary and
    idf, its logistic regression's coefficients), on ``texts``."""
    from sklearn.linear_model import LogisticRegression

    vectorizer = char_vectorizer({ngram: column for column, ngram in enumerate(member.ngrams)})
    vectorizer.idf_ = member.idf
    classifier = LogisticRegression(solver="saga")
    classifier.coef_, classifier.intercept_ = member.coef, member.intercept
    classifier.classes_ = np.arange(len(labels))
    return classifier.predict_proba(vectorizer.transform(texts))


def recurrent_predict(folder, texts: list[str]) -> np.ndarray:
    """The run's Keras model's ``predict`` on ``texts``, tokenized and encoded as ``classify`` does."""
    from pipeline.classifier.predict import encode_texts, surface_forms, text_batches, tokenize_texts
    from pipeline.runs import load_run

    run = load_run(folder)
    tokenized = tokenize_texts(run, texts)
    sequences, errors = encode_texts(run, texts, tokenized)
    assert errors == [None] * len(texts)
    batches = text_batches(run, sequences, surface_forms(*tokenized), batch_size=len(texts))
    assert len(batches) == 1  # one batch, rows in input order
    return np.asarray(run.model.predict(batches.inputs(0), verbose=0), dtype=np.float64)


def test_classify_mixes_both_members(ensemble_run, tmp_path):
    """p = w · p_recurrent + (1 − w) · p_char for every class, with w strictly inside (0, 1): the trained run
    folder with ``ensemble.json`` set to ``MIXED_WEIGHT`` (whatever w training chose), members computed here by
    the Keras model's ``predict`` and scikit-learn's ``predict_proba``."""
    from pipeline.text.corpora import normalize

    folder = Path(shutil.copytree(ensemble_run[0], tmp_path / "mixed"))
    settings = json.loads((folder / "ensemble.json").read_text(encoding="utf-8"))
    (folder / "ensemble.json").write_text(json.dumps({**settings, "weight": MIXED_WEIGHT}), encoding="utf-8")
    assert MIXED_WEIGHT in WEIGHT_GRID and 0 < MIXED_WEIGHT < 1
    result = cli_here("classify", "--model", str(folder), "--json", *CLASSIFIED)
    assert_success(result)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == CLASSIFIED
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    mixed = np.array([[line["probabilities"][label] for label in labels] for line in lines])
    recurrent = recurrent_predict(folder, CLASSIFIED)
    char = char_member_predict_proba(CharNgramModel.load(folder), labels, [normalize(text) for text in CLASSIFIED])
    assert recurrent.shape == char.shape == mixed.shape == (len(CLASSIFIED), len(labels))
    np.testing.assert_allclose(mixed, MIXED_WEIGHT * recurrent + (1 - MIXED_WEIGHT) * char, rtol=0, atol=1e-6)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    assert [line["label"] for line in lines] == [labels[i] for i in mixed.argmax(axis=1)]
    # both members count: the mixture is neither of them alone
    assert np.abs(mixed - recurrent).max() > 1e-3 and np.abs(mixed - char).max() > 1e-3


def test_explain_gives_the_ensemble_label(ensemble_run):
    folder = ensemble_run[0]
    text = "週末は嵐山で紅葉を見てから湯豆腐を食べました。"
    classified = json.loads(cli_here("classify", "--model", str(folder), "--json", text).stdout.splitlines()[0])
    explained = cli_here("classify", "--model", str(folder), "--json", "--explain", text)
    assert_success(explained)
    result = json.loads(explained.stdout.splitlines()[0])
    assert result["label"] == classified["label"]
    assert result["probability"] == pytest.approx(classified["probability"], abs=1e-5)
    assert [token for token, _ in result["tokens"]]



def test_split_chunks_give_a_splits_rows_in_table_order_a_chunk_at_a_time(tmp_path):
    frame = token_table(tmp_path / "tokens.parquet", 5_000)
    chunks = list(ensemble.split_chunks(tmp_path / "tokens.parquet", ["text", "surface"], "test", rows=700))
    assert len(chunks) == 8 and all(len(chunk) <= 140 for chunk in chunks)  # 700 rows read, 1 in 5 of them test
    test = frame[frame["split"] == "test"]
    assert pd.concat(chunks)["text"].tolist() == test["text"].tolist()
    assert [list(words) for chunk in chunks for words in chunk["surface"]] == test["surface"].tolist()
