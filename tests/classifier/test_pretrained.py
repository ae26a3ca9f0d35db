"""The pretrained encoder end to end: ``pretrain`` trains a language model on the corpus text (plus
``corpus.unlabeled_path``), caches it by fingerprint, and the classifier starts from its weights."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from helpers import TEST_CONFIGS, assert_success, assert_user_error, cli, cli_here, folders, knb_config

from pipeline.classifier.model import build_classifier
from pipeline.classifier.train import start_from_pretrained
from pipeline.errors import PipelineError
from pipeline.paths import Paths, RunPaths
from pipeline.runs import load_run
from pipeline.stages import folder_of
from pipeline.text.vectors import EncodedSplits

CONFIG = str(TEST_CONFIGS / "pretrained_small.toml")
UNLABELED = ["駅前に新しいパン屋ができたので行ってみた。", "新しいスマホのカメラで夜景を撮った。",
             "嵐山の竹林を朝早く散歩した。", "サッカーの試合を見に競技場へ行った。"] * 3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("pretrained")
    extra = root / "unlabeled.txt"
    extra.write_text("\n".join(f"{text}{i}回目" for i, text in enumerate(UNLABELED)) + "\n", encoding="utf-8")
    arguments = ["run", CONFIG, *folders(root), "--set", f'corpus.unlabeled_path="{extra}"']
    first = cli_here(*arguments)
    again = cli_here(*arguments, "--set", "train.epochs=2")  # another classifier, the same encoder (in this process)
    config = knb_config("pretrained_small", root / "work", root / "models", f'corpus.unlabeled_path="{extra}"')
    paths = Paths.from_config(config)
    return {"first": first, "again": again, "paths": paths, "config": config,
            "pretrained": folder_of("pretrain", config, paths)}


def test_run_pretrains_then_trains_the_classifier(pretrained_run):
    assert_success(pretrained_run["first"])
    stderr = pretrained_run["first"].stderr
    assert "pretrain: running" in stderr and "encoder starts from the pretrained language model" in stderr
    paths = pretrained_run["paths"]
    language_model = load_run(pretrained_run["pretrained"])
    assert language_model.config.model.task == "generator"
    # the classifier shares the language model's vocabulary, <s> and </s> included
    assert load_run(paths.run).vocab.tokens == language_model.vocab.tokens
    assert {"<s>", "</s>"} <= set(language_model.vocab.tokens)
    metrics = json.loads(RunPaths(paths.run).metrics.read_text(encoding="utf-8"))
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_unlabeled_text_is_in_the_pretraining_data_and_vocabulary(pretrained_run):
    splits = EncodedSplits.load(pretrained_run["paths"].ids)
    assert len(splits.sequences["unlabeled"]) == len(UNLABELED)
    vocab = load_run(pretrained_run["pretrained"]).vocab
    tokens = pd.read_parquet(pretrained_run["paths"].tokens)
    words = {split: {w for row in tokens.loc[tokens["split"] == split, "surface"] for w in row}
             for split in ("train", "unlabeled")}
    only_unlabeled = words["unlabeled"] - words["train"]
    assert only_unlabeled and all(word in vocab.index for word in only_unlabeled)


def test_a_second_classifier_on_the_same_encoder_reuses_the_pretrained_model(pretrained_run):
    assert_success(pretrained_run["again"])
    assert "pretrain: up to date" in pretrained_run["again"].stderr
    assert "train: running" in pretrained_run["again"].stderr


def test_start_from_pretrained_copies_embedding_and_recurrent_weights(pretrained_run):
    paths, config = pretrained_run["paths"], pretrained_run["config"]
    language_model = load_run(pretrained_run["pretrained"]).model
    matrix = np.load(paths.embeddings)
    classifier = build_classifier(config.model, np.zeros_like(matrix), 4, seed=0)
    assert start_from_pretrained(classifier, pretrained_run["pretrained"]) == ["embedding", "recurrent_0"]
    for name in ("embedding", "recurrent_0"):
        for ours, theirs in zip(classifier.get_layer(name).get_weights(), language_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)


def test_a_partly_frozen_embedding_starts_from_the_whole_pretrained_matrix(pretrained_run):
    """With rows beyond the training words (vectorize.vector_words) the classifier's embedding has two parts."""
    paths, config = pretrained_run["paths"], pretrained_run["config"]
    theirs = load_run(pretrained_run["pretrained"]).model.get_layer("embedding").get_weights()[0]
    matrix = np.load(paths.embeddings)
    classifier = build_classifier(config.model, np.zeros_like(matrix), 4, seed=0,
                                  trainable_ids=np.arange(1, len(matrix), 2))
    assert "embedding" in start_from_pretrained(classifier, pretrained_run["pretrained"])
    np.testing.assert_array_equal(classifier.get_layer("embedding").matrix(), theirs)


def test_an_encoder_that_does_not_fit_is_a_user_error(pretrained_run):
    paths, config = pretrained_run["paths"], pretrained_run["config"]
    matrix = np.load(paths.embeddings)
    wider = replace(config.model, layers=({"type": "gru", "units": 20},))
    with pytest.raises(PipelineError, match="does not fit"):
        start_from_pretrained(build_classifier(wider, np.zeros_like(matrix), 4, seed=0), pretrained_run["pretrained"])


def test_pretraining_a_language_model_config_is_rejected(tmp_path):
    result = cli("run", "configs/generator.toml", *folders(tmp_path), "--set", "pretrain.enabled=true")
    assert_user_error(result, '[pretrain] is read by model.task = "classifier"', "not by a generator config")
