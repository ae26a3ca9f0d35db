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


def test_pipeline_order_and_dependencies():
    assert stages.PIPELINE == ("prepare", "tokenize", "vectorize", "pretrain", "train", "evaluate")
    assert [stages.STAGES[name].after for name in stages.PIPELINE] == [None, *stages.PIPELINE[:-1]]


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
    package = tmp_path / "package"
    (package / "text").mkdir(parents=True)
    shutil.copy(stages.PACKAGE / "text" / "corpora.py", package / "text" / "corpora.py")
    monkeypatch.setattr(stages, "PACKAGE", package)
    before = prepare_fingerprint(config)
    with open(package / "text" / "corpora.py", "a", encoding="utf-8") as handle:
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
    assert stages.STAGES["prepare"].lock_key(paths) == "prepare"
    assert stages.STAGES["train"].lock_key(paths) == f"train:{paths.run}"
    other = Paths.from_config(replace(config, run_name="other"))
    assert stages.STAGES["train"].lock_key(other) != stages.STAGES["train"].lock_key(paths)


def test_pretrain_is_a_no_op_without_pretrain_enabled(config):
    pretrain = stages.STAGES["pretrain"]
    paths = Paths.from_config(config)
    assert pretrain.inputs(config, paths) == [] and pretrain.outputs(config, paths) == []
    assert pretrain.action(config, paths) == {}


def test_pretrained_folder_depends_on_the_encoder_and_pretrain_settings(config):
    enabled = replace(config, pretrain=replace(config.pretrain, enabled=True))
    folder = Paths.from_config(enabled).pretrained
    assert folder.parent == Paths.from_config(enabled).work / "pretrained"
    assert Paths.from_config(replace(enabled, run_name="other", train=replace(config.train, epochs=3))).pretrained \
        == folder  # another classifier on the same encoder shares it
    assert Paths.from_config(replace(enabled, pretrain=replace(enabled.pretrain, epochs=2))).pretrained != folder
    layers = ({"type": "lstm", "units": 16},)
    assert Paths.from_config(replace(enabled, model=replace(config.model, layers=layers))).pretrained != folder
    assert stages.STAGES["pretrain"].lock_key(Paths.from_config(enabled)) == f"pretrain:{folder}"


def test_train_reads_the_tokens_only_with_subword_features(config):
    from pipeline.sections import ModelConfig

    paths = Paths.from_config(config)
    train = stages.STAGES["train"]
    assert paths.tokens not in train.inputs(config, paths)
    for model in (ModelConfig(char_encoder="cnn"), ModelConfig(ngram_features="char")):
        assert paths.tokens in train.inputs(replace(config, model=model), paths)
    assert "text/features.py" in train.code and "text/features.py" in stages.STAGES["evaluate"].code


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
        assert all(name in stages.PACKAGES[stage] for stage in ("pretrain", "train", "evaluate")), name
    assert "ja-ginza" in stages.PACKAGES["vectorize"]
    assert installed("keras") and installed("ja-ginza") and installed("no-such-package-here") is None
