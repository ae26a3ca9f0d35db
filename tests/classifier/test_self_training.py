"""Tests of pipeline.classifier.self_training: a self-trained run through the real CLI, the teacher's labels
against ``Run.classify``, and the next round's data against the work folder it copies (the config's refusals are
in tests/test_config.py)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import TEST_CONFIGS, assert_success, cli_here

from pipeline import config as config_module
from pipeline.classifier import self_training
from pipeline.classifier.self_training import SCRATCH, SELF_TRAINING_FILE, pseudo_labels, write_round_data
from pipeline.paths import Paths
from pipeline.runs import load_run
from pipeline.text.corpora import UNLABELED
from pipeline.text.features import read_split_words
from pipeline.text.vectors import EncodedSplits

PLACES = ["京都のお寺", "大阪の店", "近所の球場", "新しいスマホ", "嵐山"]
DOINGS = ["で遊んだ。", "が気に入った。", "を見に行った。", "について書きます。", "はどうかな？", "の写真です。"]
UNLABELED_TEXTS = [place + doing for place in PLACES for doing in DOINGS]  # 30 sentences the corpus does not hold
THRESHOLD = 0.3  # the teacher keeps sentences it gives at least this probability


def overrides(root: Path) -> list[str]:
    path = root / "unlabeled.txt"
    path.write_text("\n".join(UNLABELED_TEXTS) + "\n", encoding="utf-8")
    return [f"work_dir='{root / 'work'}'", f"models_dir='{root / 'models'}'", "model.ensemble='char_ngram'",
            "model.trainable_embeddings=true", "train.epochs=1", f"corpus.unlabeled_path='{path}'",
            "train.self_training=1",
            f"train.self_training_threshold={THRESHOLD}", "classify.examples=[]"]


@pytest.fixture(scope="module")
def self_trained(tmp_path_factory):
    """(config, paths, metrics, stdout) of tests/configs/e2e.toml with the char member and one round of
    self-training on UNLABELED_TEXTS, run through the CLI."""
    root = tmp_path_factory.mktemp("self-training")
    settings = overrides(root)
    result = cli_here("run", str(TEST_CONFIGS / "e2e.toml"), *[part for key in settings for part in ("--set", key)])
    assert_success(result)
    config = config_module.load(TEST_CONFIGS / "e2e.toml", settings)
    paths = Paths.from_config(config)
    metrics = json.loads((paths.run / "metrics.json").read_text(encoding="utf-8"))
    return config, paths, metrics, result.stdout, settings


def test_a_self_trained_run_says_what_its_teacher_labelled_and_keeps_the_labelled_baseline(self_trained):
    config, paths, metrics, stdout, _ = self_trained
    (round_,) = metrics["self_trained"]["rounds"]
    assert round_["round"] == 1 and round_["of"] == len(UNLABELED_TEXTS)
    # the teacher kept what it gave >= THRESHOLD, at most one per training sentence (here every such sentence)
    assert 0 < round_["labelled"] <= len(UNLABELED_TEXTS) and THRESHOLD <= round_["mean_probability"] <= 1
    assert metrics["self_trained"]["threshold"] == THRESHOLD
    assert (paths.run / SELF_TRAINING_FILE).is_file()
    assert f"self-training round 1: trained again with {round_['labelled']} of {len(UNLABELED_TEXTS)} unlabeled " \
           "sentences labelled by the round before" in stdout
    # the rounds before the last are gone once the run is complete
    assert not any((paths.work / SCRATCH).iterdir())
    # the char baseline learns from the labelled sentences alone: it is fitted apart from the run's member,
    # which read the self-labelled sentences too
    splits = EncodedSplits.load(paths.ids)
    assert len(splits.sequences[UNLABELED]) == len(UNLABELED_TEXTS)
    from pipeline.classifier.ensemble import read_linear_rows
    from pipeline.classifier.evaluate import fit_char_baseline

    tokens, _ = read_linear_rows(paths.tokens, ["text", "label"], ("train", "validation", "test"), 0, config.seed)
    baseline = fit_char_baseline(tokens, splits.labels, config.seed)
    test = tokens[tokens["split"] == "test"]
    truth = test["label"].map({label: i for i, label in enumerate(splits.labels)}).to_numpy()
    accuracy = np.mean(baseline.probabilities(test["text"].tolist()).argmax(axis=1) == truth)
    assert metrics["baselines"]["char_tfidf_logistic_regression"]["accuracy"] == pytest.approx(accuracy)
    assert set(metrics["ensemble"]) == {"weight", "recurrent", "char_ngram"}


def test_the_teachers_labels_are_what_run_classify_says(self_trained):
    config, paths, *_ = self_trained
    rows, label_ids, confidence, count = pseudo_labels(config, paths, EncodedSplits.load(paths.ids), paths.run)
    results = load_run(paths.run).classify(UNLABELED_TEXTS)
    probabilities = np.array([result["probability"] for result in results])
    assert count == len(UNLABELED_TEXTS)
    kept = np.flatnonzero(probabilities >= THRESHOLD)
    assert rows.tolist() == kept.tolist()  # every sentence at or above the threshold (fewer than the bound)
    labels = EncodedSplits.load(paths.ids).labels
    assert [labels[i] for i in label_ids] == [results[row]["label"] for row in rows]
    np.testing.assert_allclose(confidence, probabilities[rows], rtol=1e-5)


def test_the_bound_keeps_the_most_confident(self_trained):
    _, paths, *_, settings = self_trained
    training = len(EncodedSplits.load(paths.ids).sequences["train"])

    def labelled(bound: float):
        config = config_module.load(TEST_CONFIGS / "e2e.toml", [*settings, "train.self_training_threshold=0.0",
                                                                 f"train.self_training_unlabeled={bound}"])
        return pseudo_labels(config, paths, EncodedSplits.load(paths.ids), paths.run)

    rows, _, confidence, _ = labelled(5.5 / training)  # at most 5 sentences
    every, _, every_confidence, _ = labelled(100.0)
    assert len(every) == len(UNLABELED_TEXTS) and len(rows) == 5
    assert np.all(np.diff(rows) > 0)
    assert confidence.min() >= np.sort(every_confidence)[-5]


def test_round_data_moves_the_labelled_sentences_into_the_training_split(self_trained, tmp_path):
    config, paths, *_ = self_trained
    splits = EncodedSplits.load(paths.ids)
    rows, label_ids = np.array([1, 4, 7, 20]), np.array([0, 3, 1, 1], dtype=np.int32)
    folder = write_round_data(paths, splits, rows, label_ids, tmp_path / "round")
    moved = EncodedSplits.load(folder / "ids.npz")
    train, unlabeled = splits.sequences["train"], splits.sequences[UNLABELED]
    rest = [row for row in range(len(unlabeled)) if row not in set(rows.tolist())]
    expected = [*[item.tolist() for item in train], *[unlabeled[row].tolist() for row in rows]]
    assert [item.tolist() for item in moved.sequences["train"]] == expected
    assert moved.targets["train"].tolist() == [*splits.targets["train"].tolist(), *label_ids.tolist()]
    assert [item.tolist() for item in moved.sequences[UNLABELED]] == [unlabeled[row].tolist() for row in rest]
    for split in ("validation", "test"):
        assert [item.tolist() for item in moved.sequences[split]] == [item.tolist() for item in splits.sequences[split]]
        assert moved.targets[split].tolist() == splits.targets[split].tolist()
    # the token table's training rows come in the order of the ids, labelled
    table = pd.read_parquet(folder / "tokens.parquet")
    original = pd.read_parquet(paths.tokens)
    assert len(table) == len(original) and list(table.columns) == list(original.columns)
    texts = original.loc[original["split"] == UNLABELED, "text"].to_numpy()
    trained = table[table["split"] == "train"]
    assert trained["text"].tolist()[-len(rows):] == texts[rows].tolist()
    assert trained["label"].tolist()[-len(rows):] == [moved.labels[i] for i in label_ids]
    words = read_split_words(folder / "tokens.parquet", ["train", UNLABELED])
    for split in ("train", UNLABELED):
        assert words[split].lengths().tolist() == moved.sequences[split].lengths().tolist()
    for name in ("vocab.json", "embeddings.npy"):
        assert (folder / name).read_bytes() == (paths.work / name).read_bytes()


def fake_fit(trained: Path, calls: list, clock=None, seconds: float = 0.0, shares: list | None = None,
             around: float = 0.0):
    """A ``fit`` for :func:`self_training.self_train` that records ``(round's Paths, start)`` in ``calls`` and copies
    the run ``trained`` (the fixture's) into the round's run folder with a file ``trained_here``: the tests below
    check who trains where and from what; the training itself is the classifier's. With ``clock`` (a
    :class:`FakeClock`) each training takes ``seconds`` of it, ``around`` of them outside its two epochs, and stops
    at the time limit when its share (recorded in ``shares``) is shorter."""

    def fit(config, round_paths, start, minutes=None):
        calls.append((round_paths, start))
        if shares is not None:
            shares.append(minutes)
        if clock is not None:
            clock.now += seconds
        shutil.copytree(trained, round_paths.run)
        (round_paths.run / "trained_here").write_text("", encoding="utf-8")
        return {"epochs": 2, "fit_seconds": seconds - around,
                **({"time_limited": 2} if minutes is not None and seconds >= 60 * minutes else {})}

    return fit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_killed_self_training_goes_on_from_its_last_complete_round(self_trained, tmp_path):
    """A complete round 0 in the scratch folder is the teacher again, not trained again; another config's rounds
    are removed; the last round trains into the run folder on the next round's data."""
    config, paths, *_ = self_trained
    run = Paths(work=paths.work, run=tmp_path / "again")
    records = []
    fit = fake_fit(paths.run, records)
    stale = paths.work / SCRATCH / "again-0000000000000000"
    other_run = paths.work / SCRATCH / "again-2-0000000000000000"  # another run's, named like a prefix of this one
    stale.mkdir(parents=True)
    other_run.mkdir()
    self_training.self_train(config, run, EncodedSplits.load(paths.ids), fit)  # round 0 and round 1
    calls = [call for call, _ in records]
    assert [call.run for call in calls] == [calls[0].run, run.run] and calls[0].work == paths.work
    assert calls[1].work.parent == calls[0].run.parent and not stale.exists() and other_run.is_dir()
    # train.self_training_start = "scratch": each round from the initial weights
    assert [start for _, start in records] == [None, None]
    other_run.rmdir()
    # killed after round 0: its folder is complete, so only the last round trains
    scratch = calls[0].run.parent
    shutil.copytree(paths.run, calls[0].run)
    shutil.rmtree(run.run)
    records.clear()
    result = self_training.self_train(config, run, EncodedSplits.load(paths.ids), fit)
    assert [call.run for call, _ in records] == [run.run] and result["self_training"][0]["of"] == len(UNLABELED_TEXTS)
    assert (run.run / SELF_TRAINING_FILE).is_file() and not scratch.exists()


def test_a_teacher_that_keeps_no_sentence_is_the_run(self_trained, tmp_path):
    _, paths, *_, settings = self_trained
    sure = config_module.load(TEST_CONFIGS / "e2e.toml", [*settings, "train.self_training_threshold=0.999",
                                                           "train.self_training=2"])
    run = Paths(work=paths.work, run=tmp_path / "sure")
    calls = []
    result = self_training.self_train(sure, run, EncodedSplits.load(paths.ids), fake_fit(paths.run, calls))
    assert len(calls) == 1 and result["self_training"] == [{"round": 1, "labelled": 0, "of": len(UNLABELED_TEXTS),
                                                            "mean_probability": 0.0}]
    assert (run.run / "trained_here").is_file() and (run.run / "model.keras").is_file()


def test_a_student_of_start_teacher_starts_from_the_round_before(self_trained, tmp_path):
    """train.self_training_start = "teacher": round 1 trains from round 0's run, round 2 from round 1's."""
    _, paths, *_, settings = self_trained
    config = config_module.load(TEST_CONFIGS / "e2e.toml", [*settings, 'train.self_training_start="teacher"',
                                                             "train.self_training=2"])
    run = Paths(work=paths.work, run=tmp_path / "warm")
    calls = []
    self_training.self_train(config, run, EncodedSplits.load(paths.ids), fake_fit(paths.run, calls))
    (round0, none), (round1, from0), (last, from1) = [(call.run, start) for call, start in calls]
    assert none is None and from0 == round0 and from1 == round1 and last == run.run


def test_start_from_run_gives_the_runs_model_whatever_rows_train(self_trained):
    """A model of the run's settings whose embedding trains other rows (a student reads more sentences) gets the
    run's weights: the same whole embedding matrix and the same probabilities; a model of other settings is
    refused, naming the layer."""
    from pipeline.classifier.model import build_classifier
    from pipeline.classifier.train import start_from_run
    from pipeline.errors import PipelineError
    from pipeline.layers.embedding import PartlyFrozenEmbedding
    from pipeline.models import embedding_matrix_of
    from pipeline.text.batches import SequenceBatches
    from pipeline.text.features import split_inputs

    config, paths, *_ = self_trained
    run = load_run(paths.run)
    splits = EncodedSplits.load(paths.ids)
    matrix = np.load(paths.embeddings)
    student = build_classifier(config.model, matrix, len(splits.labels), seed=7,
                               trainable_ids=np.arange(1, len(matrix), 2))  # other rows than the run's
    assert isinstance(student.get_layer("embedding"), PartlyFrozenEmbedding)
    start_from_run(student, paths.run)
    np.testing.assert_array_equal(embedding_matrix_of(student.get_layer("embedding")),
                                  embedding_matrix_of(run.model.get_layer("embedding")))
    sequences = splits.sequences["validation"]
    extra = split_inputs(config.model, paths.tokens, {"validation": sequences}, config.train.max_length)
    batches = SequenceBatches(sequences, None, 16, config.train.max_length, **extra["validation"])
    np.testing.assert_allclose(batches.predict(student), batches.predict(run.model), rtol=0, atol=1e-6)

    from dataclasses import replace
    wider = replace(config.model, layers=({**config.model.layers[0], "units": config.model.layers[0]["units"] + 4},))
    with pytest.raises(PipelineError, match="does not fit"):
        start_from_run(build_classifier(wider, matrix, len(splits.labels), seed=7), paths.run)


def test_the_rounds_share_the_time_limit_in_proportion_to_their_sentences(self_trained, tmp_path):
    """train.time_limit_minutes bounds the whole train stage: round 0 gets its sentences' share of it against the
    most a student may learn from, the student's epochs what is left less the time round 0 spent around its epochs
    (per sentence); the run says what each got."""
    from pipeline.classifier.evaluate import summary

    _, paths, metrics, *_, settings = self_trained
    config = config_module.load(TEST_CONFIGS / "e2e.toml", [*settings, "train.time_limit_minutes=10"])
    splits = EncodedSplits.load(paths.ids)
    labelled = len(splits.sequences["train"])
    student_most = labelled + min(len(UNLABELED_TEXTS), labelled)  # train.self_training_unlabeled = 1
    calls, shares, clock = [], [], FakeClock()
    run = Paths(work=paths.work, run=tmp_path / "timed")
    fit = fake_fit(paths.run, calls, clock, 60.0, shares, around=12.0)
    result = self_training.self_train(config, run, splits, fit, clock)
    record = json.loads((run.run / SELF_TRAINING_FILE).read_text(encoding="utf-8"))
    student = labelled + record["rounds"][0]["labelled"]
    assert shares == [pytest.approx(10 * labelled / (labelled + student_most)),
                      pytest.approx(9.0 - 12.0 * student / labelled / 60)]
    assert record["time_limit_minutes"] == 10 and record["round0"] == {"minutes": round(shares[0], 2)}
    assert record["rounds"][0]["minutes"] == round(shares[1], 2) and "time_limited" not in record["rounds"][0]
    assert result["self_training"] == record["rounds"]
    # a shorter limit: round 0 uses it up, so no student would finish one epoch: the teacher labels nothing and the
    # run is round 0's
    short = config_module.load(TEST_CONFIGS / "e2e.toml", [*settings, "train.time_limit_minutes=1"])
    calls.clear()
    run = Paths(work=paths.work, run=tmp_path / "short")
    self_training.self_train(short, run, splits, fake_fit(paths.run, calls, clock, 55.0), clock)
    assert len(calls) == 1 and (run.run / "trained_here").is_file() and (run.run / "model.keras").is_file()
    record = json.loads((run.run / SELF_TRAINING_FILE).read_text(encoding="utf-8"))
    assert record["round0"]["time_limited"] == 2 and record["rounds"][0]["skipped"] == "train.time_limit_minutes"
    assert record["rounds"][0]["labelled"] == 0  # 5 s left, an epoch of round 0 took 27.5: nothing was labelled
    text = summary({**metrics, "self_trained": record})
    assert "self-training round 0 stopped after epoch 2, at its share" in text
    assert "self-training round 1 did not train: too little of train.time_limit_minutes was left" in text


def test_a_training_given_a_share_of_minutes_stops_at_it_and_says_so(self_trained, tmp_path):
    """fit_classifier's ``minutes`` (a round's share) replaces train.time_limit_minutes: a share shorter than one
    epoch stops the training after its first, and the result names that epoch."""
    from pipeline.classifier.train import fit_classifier

    _, paths, *_, settings = self_trained
    config = config_module.load(TEST_CONFIGS / "e2e.toml", [*settings, "train.epochs=3"])
    result = fit_classifier(config, Paths(work=paths.work, run=tmp_path / "limited"), minutes=1e-6)
    assert result["epochs"] == 1 and result["time_limited"] == 1 and result["fit_seconds"] > 0
    assert (tmp_path / "limited" / "model.keras").is_file()
