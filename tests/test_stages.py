"""Tests of pipeline.stages: fingerprints and the skip / re-run logic, on a tiny corpus in tmp_path."""

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from pipeline import stages
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import Paths
from pipeline.sections import CorpusConfig, TokenizeConfig, TrainConfig

LABELS = {"Kyoto": ["金閣寺", "嵐山", "祇園", "清水寺", "伏見", "鴨川"],
          "Keitai": ["電池", "画面", "充電", "料金", "機種", "写真"]}


def write_corpus(path: Path) -> Path:
    lines = ["text,label"]
    for label, words in LABELS.items():
        lines.extend(f"{word}の話です。,{label}" for word in words)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def config(tmp_path) -> Config:
    corpus = write_corpus(tmp_path / "tiny.csv")
    return Config(seed=1, work_dir=str(tmp_path / "work"), models_dir=str(tmp_path / "models"),
                  corpus=CorpusConfig(format="table", path=str(corpus), validation_fraction=0.2, test_fraction=0.2))


def prepare_fingerprint(config: Config) -> str:
    return stages.fingerprint(stages.STAGES["prepare"], config, Paths.from_config(config))


def test_each_task_declares_its_stages_after_the_front_end(config):
    order = stages.pipeline_of(config)
    assert order == ("prepare", "tokenize", "vectorize", "pretrain", "train", "evaluate")  # a classifier
    assert [stages.before(name, config) for name in order] == [None, *order[:-1]]
    generator = Config(model=replace(config.model, task="generator"))
    assert stages.pipeline_of(generator) == ("prepare", "tokenize", "vectorize", "train", "evaluate")
    assert stages.before("train", generator) == "vectorize"
    with pytest.raises(PipelineError, match="a generator run has no `pretrain` stage"):
        stages.run_stage("pretrain", generator)


def test_fingerprint_is_stable(config):
    assert prepare_fingerprint(config) == prepare_fingerprint(config)
    assert len(prepare_fingerprint(config)) == 64


def test_fingerprint_changes_with_an_input_file(config):
    before = prepare_fingerprint(config)
    corpus = Path(config.corpus.path)
    corpus.write_text(corpus.read_text(encoding="utf-8") + "新しい文です。,Kyoto\n", encoding="utf-8")
    assert prepare_fingerprint(config) != before


def test_fingerprint_follows_contents_not_modification_times(config):
    before = prepare_fingerprint(config)
    corpus = Path(config.corpus.path)
    status = corpus.stat()
    os.utime(corpus, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    assert prepare_fingerprint(config) == before


@pytest.mark.parametrize("change", [
    lambda c: replace(c, seed=2),
    lambda c: replace(c, corpus=replace(c.corpus, test_fraction=0.25)),
    lambda c: replace(c, corpus=replace(c.corpus, deduplicate=False)),
    lambda c: replace(c, corpus=replace(c.corpus, text_column="body")),
])
def test_fingerprint_changes_with_a_relevant_setting(config, change):
    assert prepare_fingerprint(change(config)) != prepare_fingerprint(config)


@pytest.mark.parametrize("change", [
    lambda c: replace(c, run_name="other"),
    lambda c: replace(c, models_dir="elsewhere"),
    lambda c: replace(c, train=TrainConfig(epochs=3, learning_rate=0.1)),
    lambda c: replace(c, tokenize=TokenizeConfig(drop_punct=True)),
])
def test_fingerprint_ignores_an_irrelevant_setting(config, change):
    assert prepare_fingerprint(change(config)) == prepare_fingerprint(config)


def test_fingerprint_changes_with_the_stage_code(config, tmp_path, monkeypatch):
    package = Path(shutil.copytree(stages.PACKAGE, tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__")))
    monkeypatch.setattr(stages, "PACKAGE", package)
    before = prepare_fingerprint(config)
    with open(package / "text" / "splits.py", "a", encoding="utf-8") as handle:  # imported by text/corpora.py
        handle.write("\n# a change\n")
    assert prepare_fingerprint(config) != before


def test_tokenize_fingerprint_uses_tokenize_settings_and_needs_prepare(config):
    paths = Paths.from_config(config)
    tokenize = stages.STAGES["tokenize"]
    missing_input = r"prepared\.parquet: input of `tokenize` not found; run `pipeline prepare`"
    with pytest.raises(PipelineError, match=missing_input):
        stages.fingerprint(tokenize, config, paths)
    stages.run_stage("prepare", config)
    base = stages.fingerprint(tokenize, config, paths)
    assert stages.fingerprint(tokenize, replace(config, tokenize=TokenizeConfig(drop_punct=True)), paths) != base
    assert stages.fingerprint(tokenize, replace(config, train=TrainConfig(epochs=2)), paths) == base


def test_missing_corpus_is_a_pipeline_error(config, tmp_path):
    missing = replace(config, corpus=replace(config.corpus, path=str(tmp_path / "nothere.csv")))
    with pytest.raises(PipelineError, match="nothere.csv: table file not found"):
        stages.run_stage("prepare", missing)


def test_run_stage_skips_when_nothing_changed(config):
    paths = Paths.from_config(config)
    first = stages.run_stage("prepare", config)
    assert first == {"skipped": False, "sentences": 12}
    table = pd.read_parquet(paths.prepared)
    assert set(table["split"]) == {"train", "validation", "test"}
    written = paths.prepared.stat().st_mtime_ns
    assert stages.run_stage("prepare", config) == {"skipped": True}
    assert paths.prepared.stat().st_mtime_ns == written  # not rewritten
    assert "prepare" in stages.read_lock(paths)
    # A setting no stage input depends on does not re-run it either.
    assert stages.run_stage("prepare", replace(config, run_name="other")) == {"skipped": True}


def test_run_stage_reruns_with_force(config):
    stages.run_stage("prepare", config)
    assert stages.run_stage("prepare", config, force=True)["skipped"] is False
    assert stages.run_stage("prepare", config)["skipped"] is True


def test_run_stage_reruns_when_the_output_is_deleted(config):
    paths = Paths.from_config(config)
    stages.run_stage("prepare", config)
    paths.prepared.unlink()
    assert stages.run_stage("prepare", config)["skipped"] is False
    assert paths.prepared.is_file()


def test_run_stage_reruns_when_the_output_is_modified(config):
    paths = Paths.from_config(config)
    stages.run_stage("prepare", config)
    original = pd.read_parquet(paths.prepared)
    original.head(3).to_parquet(paths.prepared, index=False)  # someone overwrote the artifact
    assert stages.run_stage("prepare", config)["skipped"] is False
    pd.testing.assert_frame_equal(pd.read_parquet(paths.prepared), original)


def test_run_stage_reruns_when_an_input_or_setting_changes(config):
    stages.run_stage("prepare", config)
    changed = replace(config, corpus=replace(config.corpus, test_fraction=0.3))
    assert stages.run_stage("prepare", changed)["skipped"] is False
    assert stages.run_stage("prepare", changed)["skipped"] is True
    corpus = Path(config.corpus.path)
    corpus.write_text(corpus.read_text(encoding="utf-8") + "新しい文です。,Kyoto\n", encoding="utf-8")
    assert stages.run_stage("prepare", changed) == {"skipped": False, "sentences": 13}


def test_run_stage_reruns_after_a_corrupt_lock_file(config):
    paths = Paths.from_config(config)
    stages.run_stage("prepare", config)
    paths.lock.write_text("{not json", encoding="utf-8")
    assert stages.run_stage("prepare", config)["skipped"] is False
    assert stages.run_stage("prepare", config)["skipped"] is True


def test_run_stages_are_locked_per_run_folder(config):
    paths = Paths.from_config(config)
    assert stages.STAGES["prepare"].lock_key(config, paths) == "prepare"
    assert stages.STAGES["train"].lock_key(config, paths) == f"train:{paths.run}"
    other_config = replace(config, run_name="other")
    other = Paths.from_config(other_config)
    assert stages.STAGES["train"].lock_key(other_config, other) != stages.STAGES["train"].lock_key(config, paths)


def test_pretrain_is_a_no_op_without_pretrain_enabled(config):
    pretrain = stages.STAGES["pretrain"]
    paths = Paths.from_config(config)
    assert pretrain.inputs(config, paths) == [] and pretrain.outputs(config, paths) == []
    assert pretrain.action(config, paths) == {}


def pretrained(config: Config) -> Path:
    return stages.folder_of("pretrain", config, Paths.from_config(config))


def test_pretrained_folder_depends_on_the_encoder_and_pretrain_settings(config):
    enabled = config.replace(pretrain=replace(config.pretrain, enabled=True))
    folder = pretrained(enabled)
    assert folder.parent == Paths.from_config(enabled).work / "pretrained"
    assert pretrained(enabled.replace(run_name="other", train=replace(config.train, epochs=3))) == folder  # shared
    assert pretrained(enabled.replace(pretrain=replace(enabled.pretrain, epochs=2))) != folder
    # a validation sample changes what its epochs validate on; unset, the key is absent (older folders hold)
    assert pretrained(enabled.replace(train=replace(config.train, validation_rows=500))) != folder
    assert "validation_rows" not in stages.STAGES["pretrain"].settings(enabled)
    layers = ({"type": "lstm", "units": 16},)
    assert pretrained(enabled.replace(model=replace(config.model, layers=layers))) != folder
    assert stages.STAGES["pretrain"].lock_key(enabled, Paths.from_config(enabled)) == f"pretrain:{folder}"
    assert pretrained(config) is None


def test_train_reads_the_tokens_only_with_subword_features(config):
    from pipeline.sections import ModelConfig

    paths = Paths.from_config(config)
    train = stages.STAGES["train"]
    assert paths.tokens not in train.inputs(config, paths)
    for model in (ModelConfig(char_encoder="cnn"), ModelConfig(ngram_features="char")):
        assert paths.tokens in train.inputs(replace(config, model=model), paths)


def code_of(name: str, config: Config) -> set[str]:
    stage = stages.STAGES[name]
    return {str(path.relative_to(stages.PACKAGE)) for path in stages.code_files(stage.modules(config))}


def test_a_stage_fingerprints_the_code_it_runs_and_nothing_else(config):
    train, evaluate = code_of("train", config), code_of("evaluate", config)
    assert {"classifier/train.py", "classifier/model.py", "text/features.py", "layers/attention.py",
            "training.py", "models.py"} <= train  # followed through the imports, function-level ones too
    assert "text/features.py" in evaluate and "classifier/evaluate.py" in evaluate
    for name in ("train", "evaluate"):  # explaining, the CLI, other tasks and tools change no trained run
        assert not {"classifier/explain.py", "cli/classify.py", "language_model/train.py", "tools/lsm/compare.py",
                    "stages.py", "workarea.py"} & code_of(name, config), name
    generator = Config(model=replace(config.model, task="generator"))
    assert "language_model/train.py" in code_of("train", generator) and "classifier/train.py" not in \
        code_of("train", generator)
    assert code_of("prepare", config) == {"text/prepare.py", "text/corpora.py", "text/tables.py", "text/encodings.py",
                                        "text/unlabeled.py", "text/splits.py", "seeds.py", "sections.py"} | \
        (code_of("prepare", config) & {"text/__init__.py", "progress.py"})


def test_an_upgraded_package_reruns_the_stages_it_changes(config, monkeypatch):
    """tokenize follows GiNZA/SudachiPy, train Keras/TensorFlow; prepare follows neither."""
    stages.run_stage("prepare", config)
    paths = Paths.from_config(config)
    tokenize, prepare = stages.STAGES["tokenize"], stages.STAGES["prepare"]
    before = {stage.name: stages.fingerprint(stage, config, paths) for stage in (tokenize, prepare)}
    installed = stages.package_version
    for name in ("spacy", "ginza", "ja-ginza", "sudachipy", "sudachidict-core"):
        monkeypatch.setattr(stages, "package_version", lambda n, name=name: "99.0" if n == name else installed(n))
        assert stages.fingerprint(tokenize, config, paths) != before["tokenize"], name
        assert stages.fingerprint(prepare, config, paths) == before["prepare"], name
    for name in ("keras", "tensorflow"):
        assert all(name in stages.STAGES[stage].packages for stage in ("pretrain", "train", "evaluate")), name
    assert "ja-ginza" in stages.STAGES["vectorize"].packages
    assert installed("keras") and installed("ja-ginza") and installed("no-such-package-here") is None
