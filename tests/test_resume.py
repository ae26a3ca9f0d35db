"""Tests of pipeline.resume: which saved training state a new fit starts from.

That a training stopped after an epoch resumes to exactly the weights, optimizer state, history and
saved model of an uninterrupted one is checked here in-process (a classifier, a language model in both
regimes, and the pretrain stage before a classifier); a real ``pipeline`` process killed by a signal is
checked in ``tests/test_cli_interrupt.py``.
"""

import contextlib
import importlib
import logging
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import TEST_CONFIGS, write_csv

from pipeline import config as config_module
from pipeline import io as artifact_io
from pipeline.interrupts import unfinished_training
from pipeline.paths import Paths
from pipeline.resume import STATE, Resume, identity_of
from pipeline.runs import load_run
from pipeline.stages import folder_of, run_stage


class CountingDataset:
    def __init__(self) -> None:
        self.epochs_ended = 0

    def on_epoch_end(self) -> None:
        self.epochs_ended += 1


def saved_state(directory, **state) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    artifact_io.write_json(directory / STATE, {"identity": identity_of({"seed": 1}), "callbacks": [], **state})
    (directory / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.5\n", encoding="utf-8")


def test_no_state_starts_at_epoch_zero(tmp_path):
    resume = Resume(tmp_path / "resume", tmp_path / "run", identity_of({"seed": 1}), epochs=5)
    dataset = CountingDataset()
    resume.fast_forward(dataset)
    assert resume.initial_epoch == 0 and dataset.epochs_ended == 0
    assert (unfinished_training() or (None,))[0] != tmp_path / "resume"  # nothing to promise an interrupted command


def test_state_of_the_same_settings_continues_after_its_epoch_and_replays_the_shuffles(tmp_path):
    saved_state(tmp_path / "resume", epoch=2, stopped=False)
    (tmp_path / "run").mkdir()
    resume = Resume(tmp_path / "resume", tmp_path / "run", identity_of({"seed": 1}), epochs=5)
    dataset = CountingDataset()
    resume.fast_forward(dataset)
    assert resume.initial_epoch == 2 and dataset.epochs_ended == 2
    assert (tmp_path / "run" / "history.csv").read_text(encoding="utf-8").endswith("1,0.5\n")  # CSVLogger appends
    assert unfinished_training() == (tmp_path / "resume", 2)
    resume.finish()
    assert (unfinished_training() or (None,))[0] != tmp_path / "resume"
    assert not (tmp_path / "resume").exists()


def test_state_of_an_early_stopped_training_trains_no_further_epoch(tmp_path):
    saved_state(tmp_path / "resume", epoch=2, stopped=True)
    (tmp_path / "run").mkdir()
    resume = Resume(tmp_path / "resume", tmp_path / "run", identity_of({"seed": 1}), epochs=5)
    assert resume.initial_epoch == 5
    resume.finish()


def test_state_of_other_settings_is_ignored(tmp_path):
    saved_state(tmp_path / "resume", epoch=2, stopped=False)
    (tmp_path / "run").mkdir()
    resume = Resume(tmp_path / "resume", tmp_path / "run", identity_of({"seed": 2}), epochs=5)
    assert resume.initial_epoch == 0 and not (tmp_path / "run" / "history.csv").exists()


# ------------------------------------------------------------------ a training stopped after an epoch, resumed
# Each case trains three ways in this process, on a tiny table corpus with character tokens: uninterrupted;
# stopped by a KeyboardInterrupt right after an epoch was saved (what Ctrl-C or a kill between epochs leaves);
# and rerun, which must resume after that epoch. The resumed training must end with exactly the weights,
# optimizer variables, history and saved model of the uninterrupted one. The corpus's validation rows are
# reversed and carry the other label, so the validation loss worsens from the first epochs on: early
# stopping, the plateau schedule and the best-epoch checkpoint then decide on the state saved before the
# interruption (a resumed run that forgot it would stop, decay and save at other epochs).

FOOD = ["ラーメン", "寿司", "天ぷら", "うどん", "カレー", "焼肉", "そば", "餃子"]
SPORT = ["野球", "サッカー", "テニス", "相撲", "卓球", "水泳", "柔道", "陸上"]
ENDINGS = ["が好きです。", "を楽しみました。", "は最高だった。", "について話した。", "を見に行きます。"]

# Sizes that keep a case at a few seconds; the other settings are those of the named test config.
# case: (test config, module whose fit is interrupted, overrides, epochs before the interruption)
CASES = {
    # early stopping (patience 3, restoring the best weights: it stops after 4 of the 6 epochs), plateau
    # schedule, dropout on a GRU classifier
    "classifier": ("interrupt", "pipeline.classifier.train", ["train.epochs=6"], 2),
    # the same with weight averaging from epoch 2, interrupted while the average of epochs 2-3 is swapped in:
    # the running average, the training weights under it and early stopping's best must all come back
    "classifier_swa": ("interrupt", "pipeline.classifier.train",
                       ["train.epochs=6", 'train.average="swa"', "train.average_start=2"], 3),
    # full BPTT over sentences: tied softmax, plateau schedule, best-epoch checkpoint; a weight-dropped LSTM and
    # locked dropout, so the dropout masks of the resumed epochs must continue from the saved seed generators
    "sentences": ("generator_small", "pipeline.language_model.train",
                  ["train.epochs=4", "train.batch_size=16", "train.learning_rate=0.03",
                   'model.layers=[{type="weight_drop_lstm", units=12, weight_drop=0.3}]', "model.input_dropout=0.2"],
                  2),
    # truncated BPTT: a stateful model over one stream, SGD with a step schedule, stream validation
    "tbptt": ("generator_tbptt", "pipeline.language_model.train",
              ["train.epochs=3", "train.batch_size=4", "train.bptt_steps=8"], 1),
}


class StopAfter(keras.callbacks.Callback):
    """Raise KeyboardInterrupt at the end of epoch ``epoch`` (from 1), after the callbacks before it saved it."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


class Record(keras.callbacks.Callback):
    """What a fit ended with: the epochs it ran, the model's weights and the optimizer's variables."""

    def __init__(self, fits: list) -> None:
        super().__init__()
        self.fits, self.epochs = fits, []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs.append(epoch)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.fits.append({"epochs": self.epochs, "weights": [np.array(w) for w in self.model.get_weights()],
                          "optimizer": [np.array(v) for v in self.model.optimizer.variables]})


@contextlib.contextmanager
def extra_callbacks(module_name: str, *extra_factories):
    """Append callbacks (made fresh for every fit) after the task's own, the resume callback included."""
    module = importlib.import_module(module_name)
    original = module.callbacks

    def with_extra(*arguments, **options):
        return [*original(*arguments, **options), *(factory() for factory in extra_factories)]

    module.callbacks = with_extra
    try:
        yield
    finally:
        module.callbacks = original


@pytest.fixture(scope="module")
def table_corpus(tmp_path_factory) -> Path:
    """Two themes, 240 rows of short Japanese sentences (those of tests/test_cli_interrupt.py) in a given split:
    a sixth each validation and test, the rest training; the validation rows reversed, with the other label."""
    rows = set()
    for index in range(240):
        words, others = (FOOD, SPORT) if index % 2 else (SPORT, FOOD)
        extra = others[index % 8] if index % 5 == 0 else words[(index // 3) % 8]
        rows.add((f"{words[index % 8]}と{extra}{ENDINGS[(index // 2) % 5]}{'！' * (index % 3)}",
                  "food" if index % 2 else "sport"))
    table = []
    for index, (text, label) in enumerate(sorted(rows)):
        split = ("validation", "test", "train", "train", "train", "train")[index % 6]
        if split == "validation":
            text, label = text[::-1], {"food": "sport", "sport": "food"}[label]
        table.append((text, f"{label},{split}"))
    return write_csv(tmp_path_factory.mktemp("resume-corpus") / "themes.csv", table, header="text,label,split")


def tiny_config(name: str, corpus: Path, work_dir: Path, models_dir: Path, *overrides: str):
    """tests/configs/<name>.toml on the table corpus with character tokens and no pretrained vectors."""
    return config_module.load(TEST_CONFIGS / f"{name}.toml", [
        'corpus.format="table"', f'corpus.path="{corpus}"', 'corpus.split_column="split"', f'corpus.name="{name}"',
        'tokenize.method="char"', 'vectorize.vectors="none"', "vectorize.min_count=1", f'work_dir="{work_dir}"',
        f'models_dir="{models_dir}"', *overrides])


def interrupted_then_resumed(stage: str, config, module_name: str, after_epoch: int, caplog) -> list[dict]:
    """Run ``stage`` stopped after epoch ``after_epoch`` of the fit in ``module_name``, then again; the fits of
    the rerun (what :class:`Record` saw)."""
    with extra_callbacks(module_name, lambda: StopAfter(after_epoch)), pytest.raises(KeyboardInterrupt):
        run_stage(stage, config)
    directory, epochs = unfinished_training()  # what the CLI's interrupt message promises
    assert epochs == after_epoch and (directory / STATE).is_file()
    fits = []
    with extra_callbacks(module_name, lambda: Record(fits)), caplog.at_level(logging.INFO, logger="pipeline"):
        run_stage(stage, config)
    assert f"resuming training after epoch {after_epoch}" in caplog.text
    assert (unfinished_training() or (None,))[0] != directory and not directory.exists()  # finished
    return fits


def uninterrupted(stage: str, config, module_name: str) -> list[dict]:
    """Run ``stage``; the fits in ``module_name`` (what :class:`Record` saw)."""
    fits = []
    with extra_callbacks(module_name, lambda: Record(fits)):
        run_stage(stage, config)
    return fits


def assert_same_training(resumed: dict, reference: dict, after_epoch: int) -> None:
    """The rerun trained only the epochs after ``after_epoch`` (it resumed) and ended where the reference did."""
    assert reference["epochs"][0] == 0 and len(reference["epochs"]) > after_epoch
    assert resumed["epochs"] == reference["epochs"][after_epoch:]
    assert len(resumed["weights"]) > 0
    for ours, theirs in zip(resumed["weights"], reference["weights"], strict=True):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(resumed["optimizer"], reference["optimizer"], strict=True):  # iterations, moments, rate
        np.testing.assert_array_equal(ours, theirs)


def assert_same_run_folders(resumed: Path, reference: Path) -> None:
    """Same saved model weights and the same history, line for line."""
    assert (resumed / "history.csv").read_text(encoding="utf-8") == (reference / "history.csv").read_text(
        encoding="utf-8")
    ours, theirs = load_run(resumed).model.get_weights(), load_run(reference).model.get_weights()
    assert len(ours) > 0
    for mine, other in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine, other)


@pytest.mark.parametrize("case", list(CASES))
def test_a_resumed_training_ends_with_the_weights_of_an_uninterrupted_one(case, table_corpus, tmp_path_factory,
                                                                          caplog):
    name, module_name, overrides, after_epoch = CASES[case]
    work_dir = tmp_path_factory.mktemp(f"resume-{case}-work")
    reference_config = tiny_config(name, table_corpus, work_dir, tmp_path_factory.mktemp("reference"), *overrides)
    config = tiny_config(name, table_corpus, work_dir, tmp_path_factory.mktemp("resumed"), *overrides)
    (reference,) = uninterrupted("train", reference_config, module_name)
    (resumed,) = interrupted_then_resumed("train", config, module_name, after_epoch, caplog)
    assert_same_training(resumed, reference, after_epoch)
    assert_same_run_folders(Paths.from_config(config).run, Paths.from_config(reference_config).run)


def test_an_interrupted_pretraining_resumes_and_the_classifier_trains_as_after_an_uninterrupted_one(
        table_corpus, tmp_path_factory, caplog):
    """``pipeline train`` of tests/configs/pretrained_small.toml stopped after the first epoch of the language
    model's pretraining (early stopping, plateau schedule, AWD dropout), then run again: the pretrained encoder
    and the classifier trained from it are those of an uninterrupted run."""
    overrides = ["pretrain.epochs=3", "pretrain.batch_size=16", "train.epochs=2", "train.batch_size=16"]
    configs = [tiny_config("pretrained_small", table_corpus, tmp_path_factory.mktemp(f"pretrain-{kind}-work"),
                           tmp_path_factory.mktemp(f"pretrain-{kind}-models"), *overrides)
               for kind in ("reference", "resumed")]  # own work folders: the pretrained encoder is cached there
    module_name = "pipeline.language_model.train"
    reference_fits = uninterrupted("train", configs[0], module_name)
    classifier_fits = []
    with extra_callbacks("pipeline.classifier.train", lambda: Record(classifier_fits)):
        resumed_fits = interrupted_then_resumed("train", configs[1], module_name, 1, caplog)
    assert len(reference_fits) == len(resumed_fits) == 1  # the language model's; the classifier's is not patched
    assert_same_training(resumed_fits[0], reference_fits[0], 1)
    reference_paths, paths = (Paths.from_config(config) for config in configs)
    pretrained = folder_of("pretrain", configs[1], paths)  # work/<corpus>/pretrained/<fingerprint>/
    assert_same_run_folders(pretrained, folder_of("pretrain", configs[0], reference_paths))
    assert_same_run_folders(paths.run, reference_paths.run)
    assert [fit["epochs"] for fit in classifier_fits] == [[0, 1]]
    assert not Paths(paths.work, pretrained).resume.exists()


def test_a_worker_reads_the_chiefs_state_and_writes_none(tmp_path):
    """Several workers (pipeline.distribution): every one resumes from the state the chief saved in the work
    folder they share; only the chief replaces or deletes it."""
    saved_state(tmp_path / "resume", epoch=2, stopped=False)
    (tmp_path / "run").mkdir()
    resume = Resume(tmp_path / "resume", tmp_path / "run", identity_of({"seed": 1}), epochs=5, writes=False)
    assert resume.initial_epoch == 2
    before = (tmp_path / "resume" / STATE).read_bytes()
    resume.callback.on_epoch_end(2)  # a worker's epoch ends: nothing saved, but a rerun resumes after it
    assert (tmp_path / "resume" / STATE).read_bytes() == before and unfinished_training() == (tmp_path / "resume", 3)
    resume.finish()
    assert (tmp_path / "resume" / STATE).read_bytes() == before
