"""Runs the service tests serve: a small classifier, language model and reading model, trained once per session
by the real stages (the same configs as the CLI tests); plain helpers are in ``tests/serve_helpers.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPOSITORY, TEST_CONFIGS, knb_config


@pytest.fixture(scope="session")
def classifier_folder(small_trained) -> Path:
    """tests/configs/small.toml trained and published with its run.json (a GRU classifier of the four KNB themes)."""
    return small_trained[1]


@pytest.fixture(scope="session")
def generator_folder(tmp_path_factory) -> Path:
    """tests/configs/generator_small.toml trained for one epoch (the work folder the language-model tests use)."""
    from pipeline.paths import Paths
    from pipeline.stages import run_stage

    work_dir = tmp_path_factory.getbasetemp() / "generator-work"
    config = knb_config("generator_small", work_dir, tmp_path_factory.mktemp("serve-generator"), "train.epochs=1")
    run_stage("train", config)
    return Paths.from_config(config).run


@pytest.fixture(scope="session")
def reading_folder(tmp_path_factory) -> Path:
    """tests/configs/reading_small.toml trained for one epoch on 20 sentences of corpora/blog_text."""
    from pipeline import config as config_module
    from pipeline.paths import Paths
    from pipeline.stages import run_stage

    root = tmp_path_factory.mktemp("serve-reading")
    lines = [line for line in (REPOSITORY / "corpora/blog_text/blog.txt").read_text(encoding="utf-8").splitlines()
             if line.strip()][:20]
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(lines[start:start + 5]) for start in range(0, len(lines), 5)) + "\n",
                      encoding="utf-8")
    config = config_module.load(TEST_CONFIGS / "reading_small.toml", [
        f'corpus.path="{corpus}"', f'work_dir="{root / "work"}"', f'models_dir="{root / "models"}"',
        "train.epochs=1"])
    run_stage("train", config)
    return Paths.from_config(config).run
