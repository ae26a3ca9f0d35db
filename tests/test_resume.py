"""Tests of pipeline.resume: which saved training state a new fit starts from.

That a killed training resumes to the same history and metrics as an uninterrupted one is checked on a
real ``pipeline`` process in ``tests/test_cli_interrupt.py``.
"""

from pipeline import io as artifact_io
from pipeline.resume import STATE, Resume, identity_of


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


def test_state_of_the_same_settings_continues_after_its_epoch_and_replays_the_shuffles(tmp_path):
    saved_state(tmp_path / "resume", epoch=2, stopped=False)
    (tmp_path / "run").mkdir()
    resume = Resume(tmp_path / "resume", tmp_path / "run", identity_of({"seed": 1}), epochs=5)
    dataset = CountingDataset()
    resume.fast_forward(dataset)
    assert resume.initial_epoch == 2 and dataset.epochs_ended == 2
    assert (tmp_path / "run" / "history.csv").read_text(encoding="utf-8").endswith("1,0.5\n")  # CSVLogger appends
    resume.finish()
    assert not (tmp_path / "resume").exists()


def test_state_of_an_early_stopped_training_trains_no_further_epoch(tmp_path):
    saved_state(tmp_path / "resume", epoch=2, stopped=True)
    (tmp_path / "run").mkdir()
    assert Resume(tmp_path / "resume", tmp_path / "run", identity_of({"seed": 1}), epochs=5).initial_epoch == 5


def test_state_of_other_settings_is_ignored(tmp_path):
    saved_state(tmp_path / "resume", epoch=2, stopped=False)
    (tmp_path / "run").mkdir()
    resume = Resume(tmp_path / "resume", tmp_path / "run", identity_of({"seed": 2}), epochs=5)
    assert resume.initial_epoch == 0 and not (tmp_path / "run" / "history.csv").exists()
