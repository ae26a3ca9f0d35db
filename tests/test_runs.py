"""Tests of ``pipeline.runs.load_run``: a trained run reloads; a missing or damaged one is a one-line error."""

import json
from pathlib import Path

import pytest
from helpers import KNB_LABELS

from pipeline.errors import PipelineError
from pipeline.runs import load_run


# ------------------------------------------------------------------ load_run
def test_load_run_restores_model_config_vocab_and_labels(small_trained, small_run):
    config, folder = small_trained
    assert small_run.folder == folder
    assert small_run.config == config
    assert small_run.labels == KNB_LABELS
    assert small_run.vocab.tokens[:2] == ["<pad>", "<unk>"]
    assert small_run.model.output_shape == (None, len(KNB_LABELS))


def assert_one_line_error(folder: Path, match: str) -> str:
    with pytest.raises(PipelineError) as error:
        load_run(folder)
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    assert match in message, message
    return message


def test_load_run_missing_folder(tmp_path):
    message = assert_one_line_error(tmp_path / "no-such-run", "run folder not found")
    assert "no-such-run" in message


def test_load_run_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(tmp_path / "empty", "model.keras")


def test_load_run_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"PK")
    assert_one_line_error(tmp_path / "model.keras", "run folder not found")


@pytest.mark.parametrize("name", ["model.keras", "config.json", "vocab.json", "labels.json"])
def test_load_run_missing_file(small_run_copy, name):
    (small_run_copy / name).unlink()
    assert_one_line_error(small_run_copy, name)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "truncated-model": ("model.keras", truncate),
    "empty-model": ("model.keras", lambda path: path.write_bytes(b"")),
    "text-model": ("model.keras", lambda path: path.write_text("not a keras archive\n", encoding="utf-8")),
    "truncated-config": ("config.json", truncate),
    "config-unknown-key": ("config.json", lambda path: path.write_text(
        json.dumps({**json.loads(path.read_text(encoding="utf-8")), "sed": 1}), encoding="utf-8")),
    "truncated-labels": ("labels.json", truncate),
    "truncated-vocab": ("vocab.json", truncate),
    "vocab-not-a-table": ("vocab.json", lambda path: path.write_text("[1, 2, 3]", encoding="utf-8")),
    "labels-not-a-list": ("labels.json", lambda path: path.write_text('{"Gourmet": 0}', encoding="utf-8")),
    "labels-fewer-than-outputs": ("labels.json", lambda path: path.write_text('["Gourmet"]', encoding="utf-8")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_load_run_corrupt_file(small_run_copy, damage):
    name, spoil = DAMAGE[damage]
    spoil(small_run_copy / name)
    assert_one_line_error(small_run_copy, name)


def test_load_run_leaves_a_corrupt_folder_untouched(small_run_copy):
    truncate(small_run_copy / "model.keras")
    before = {path.name: path.read_bytes() for path in small_run_copy.iterdir() if path.is_file()}
    with pytest.raises(PipelineError):
        load_run(small_run_copy)
    assert {path.name: path.read_bytes() for path in small_run_copy.iterdir() if path.is_file()} == before




# ------------------------------------------------------------------ the Python API
def test_the_package_entry_point_loads_a_run_whose_methods_are_the_tasks_code(small_trained):
    import pipeline
    from pipeline.classifier.predict import classify

    run = pipeline.load_run(small_trained[1])
    texts = ["週末は嵐山で紅葉を見ました。", "  ", "新しいスマホの電池がすぐ切れる。"]
    assert run.task == "classifier"
    assert run.classify(texts) == classify(run, texts)  # one code path: the method is the task's function
    assert "error" in run.classify(texts)[1] and run.classify(texts)[0]["label"] in run.labels
    explained = run.explain(texts[:1])[0]
    assert explained["label"] == run.classify(texts[:1])[0]["label"] and explained["tokens"]


@pytest.mark.parametrize("method, arguments", [("generate", ("京都の",)), ("read", (["京都"],))])
def test_a_method_of_another_task_is_a_one_line_error(small_run, method, arguments):
    with pytest.raises(PipelineError, match=rf"a classifier run cannot {method}; use a (generator|reading) run"):
        getattr(small_run, method)(*arguments)


def test_import_pipeline_loads_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, pipeline; print(sorted(m for m in ('tensorflow', 'keras', 'spacy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
