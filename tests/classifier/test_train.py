"""Tests of the ``train`` stage through the Python API on the shipped corpus and a tiny GRU.

The corpus is prepared, tokenized and vectorized once per session into pytest's
temporary folder (``tests/classifier/test_predict.py`` reuses it: the second request finds
the stages up to date); each test trains into its own ``models_dir``.
"""

import json
import logging
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import KNB_LABELS, knb_config

from pipeline import config as config_module
from pipeline import seeds
from pipeline.classifier.train import train_classifier
from pipeline.errors import PipelineError
from pipeline.paths import Paths, RunPaths
from pipeline.stages import run_stage
from pipeline.text.batches import SequenceBatches, balanced_class_weights, sampled_rows, take_rows
from pipeline.text.vectors import EncodedSplits

RUN_FILES = ("model.keras", "config.json", "vocab.json", "labels.json", "history.csv")






@pytest.fixture
def make_config(small_work_dir, tmp_path):
    """``make_config(*overrides)``: the small config training into this test's tmp_path/models."""

    def make(*overrides: str):
        return knb_config("small", small_work_dir, tmp_path / "models", *overrides)

    return make


def train(config) -> dict:
    return train_classifier(config, Paths.from_config(config))


def entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


# ------------------------------------------------------------------ the run folder
def test_train_stage_writes_complete_run_folder(make_config):
    config = make_config()
    result = run_stage("train", config)
    run = RunPaths(Paths.from_config(config).run)
    assert result["skipped"] is False and result["epochs"] >= 1
    for name in RUN_FILES:
        assert (run.root / name).is_file() and (run.root / name).stat().st_size > 0, name
    # nothing else in models_dir: no leftover .small.*.building / .old folders
    assert entries(run.root.parent) == ["small"]
    assert json.loads(run.labels.read_text(encoding="utf-8")) == KNB_LABELS
    assert config_module.from_dict(json.loads(run.config.read_text(encoding="utf-8"))) == config
    vocab = json.loads(run.vocab.read_text(encoding="utf-8"))
    assert vocab["tokens"][:2] == ["<pad>", "<unk>"]
    history = pd.read_csv(run.history)
    assert len(history) == result["epochs"]
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.columns)
    assert np.isfinite(history["loss"]).all()
    model = keras.saving.load_model(run.model)
    assert model.output_shape == (None, len(KNB_LABELS))


def test_unchanged_train_stage_is_skipped(make_config, caplog):
    config = make_config()
    run_stage("train", config)
    with caplog.at_level(logging.INFO, logger="pipeline"):
        assert run_stage("train", config)["skipped"] is True
    assert "train: up to date" in caplog.text


def test_retraining_replaces_the_run_folder_and_leaves_no_temporary_folders(make_config):
    config = make_config()
    run = RunPaths(Paths.from_config(config).run)
    train(config)
    (run.root / "stale.txt").write_text("from an older run", encoding="utf-8")
    train(config)
    assert not (run.root / "stale.txt").exists()
    assert entries(run.root.parent) == ["small"]
    assert set(RUN_FILES) <= set(entries(run.root))


@pytest.mark.parametrize("layer", ['{type="gru", units=8, dropout=1.5}', '{type="gru", units=0}',
                                   '{type="gru", unit=8}', '{type="grue", units=8}'],
                         ids=["dropout-1.5", "units-0", "unknown-key", "unknown-kind"])
def test_invalid_layer_config_creates_no_run_folder(make_config, layer):
    config = make_config(f"model.layers=[{layer}]")
    models_dir = Paths.from_config(config).run.parent
    with pytest.raises(PipelineError) as error:
        train(config)
    assert "\n" not in str(error.value) and "model.layers[0]" in str(error.value)
    assert entries(models_dir) == []  # neither the run folder nor a temporary one


def test_failed_retraining_keeps_the_previous_run_folder(make_config):
    good = make_config()
    run = RunPaths(Paths.from_config(good).run)
    train(good)
    before = {name: (run.root / name).read_bytes() for name in RUN_FILES}
    with pytest.raises(PipelineError):
        train(make_config('model.layers=[{type="gru", units=8, dropout=1.5}]'))
    assert {name: (run.root / name).read_bytes() for name in RUN_FILES} == before
    assert entries(run.root.parent) == ["small"]


# ------------------------------------------------------------------ reproducibility
def test_same_seed_gives_identical_history_and_weights(make_config, small_trained):
    """A training now, after other tests, and the session's run of the same config earlier (small_trained)."""
    second = make_config("run_name=second")
    train(second)
    first_run, second_run = RunPaths(small_trained[1]), RunPaths(Paths.from_config(second).run)
    pd.testing.assert_frame_equal(pd.read_csv(first_run.history), pd.read_csv(second_run.history), check_exact=True)
    first_weights = keras.saving.load_model(first_run.model).get_weights()
    second_weights = keras.saving.load_model(second_run.model).get_weights()
    for a, b in zip(first_weights, second_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_another_seed_gives_another_history(make_config, small_trained):
    # same vectorized data (train_classifier reads the seed-42 artifacts); only init/batching seeds change
    reseeded = make_config("run_name=b", "seed=43")
    train(reseeded)
    first = pd.read_csv(RunPaths(small_trained[1]).history)
    second = pd.read_csv(RunPaths(Paths.from_config(reseeded).run).history)
    assert not np.allclose(first["loss"], second["loss"])


def test_adversarial_training_trains_another_model_that_saves_and_reloads(make_config):
    """train.adversarial changes every step (pipeline.adversarial; its math: tests/test_adversarial.py); the saved
    model is an ordinary one."""
    plain = make_config("run_name=plain", "train.epochs=1")
    adversarial = make_config("run_name=adversarial", "train.epochs=1", "train.adversarial=0.1")
    train(plain)
    result = train(adversarial)
    first = pd.read_csv(RunPaths(Paths.from_config(plain).run).history)
    second = pd.read_csv(RunPaths(Paths.from_config(adversarial).run).history)
    assert len(second) == result["epochs"] and np.isfinite(second[["loss", "val_loss"]]).all().all()
    assert not np.allclose(first["val_loss"].iloc[0], second["val_loss"].iloc[0])
    model = keras.saving.load_model(RunPaths(Paths.from_config(adversarial).run).model)
    assert model.output_shape == (None, len(KNB_LABELS))


def test_steps_per_epoch_trains_epochs_of_that_many_batches(make_config):
    # 927 training sentences in batches of 64: 15 a plan; epochs of 4 batches read 3 epochs x 4 = 12 of them
    config = make_config("train.steps_per_epoch=4", "train.epochs=3", "train.patience=0")
    result = train(config)
    run = RunPaths(Paths.from_config(config).run)
    history = pd.read_csv(run.history)
    assert result["epochs"] == 3 and len(history) == 3
    # the checkpoint is the best epoch's model: its optimizer took 4 steps an epoch up to it (15 in whole epochs)
    best = int(history["val_loss"].to_numpy().argmin()) + 1
    assert int(keras.saving.load_model(run.model).optimizer.iterations.numpy()) == 4 * best
    with pytest.raises(PipelineError, match="train.steps_per_epoch"):
        train(make_config("train.steps_per_epoch=-1"))


def test_validation_rows_validates_every_epoch_on_one_seeded_sample(make_config):
    config = make_config("train.validation_rows=20", "train.epochs=1", "train.patience=0")
    train(config)
    history = pd.read_csv(RunPaths(Paths.from_config(config).run).history)
    splits = EncodedSplits.load(Paths.from_config(config).ids)
    rows = sampled_rows(len(splits.sequences["validation"]), 20, seeds.rng(config.seed, "validation_rows"))
    model = keras.saving.load_model(RunPaths(Paths.from_config(config).run).model)

    def loss_on(chosen):
        batches = SequenceBatches(take_rows(splits.sequences["validation"], chosen),
                                  take_rows(splits.targets["validation"], chosen), 64, 100)
        return model.evaluate(batches, verbose=0, return_dict=True)["loss"]

    # the epoch's val_loss is the saved model's loss on the 20 sampled sentences, not on the whole split
    assert history["val_loss"].iloc[0] == pytest.approx(loss_on(rows), rel=1e-5)
    assert history["val_loss"].iloc[0] != pytest.approx(loss_on(None), rel=1e-5)
    with pytest.raises(PipelineError, match="train.validation_rows"):
        train(make_config("train.validation_rows=-1"))


# ------------------------------------------------------------------ class weights
def test_balanced_class_weights_train_and_change_the_loss(make_config, small_work_dir):
    plain, balanced = make_config("run_name=plain"), make_config("run_name=balanced", 'train.class_weights="balanced"')
    train(plain)
    result = train(balanced)
    assert result["epochs"] >= 1
    plain_loss = pd.read_csv(RunPaths(Paths.from_config(plain).run).history)["loss"].to_numpy()
    balanced_loss = pd.read_csv(RunPaths(Paths.from_config(balanced).run).history)["loss"].to_numpy()
    assert np.isfinite(balanced_loss).all()
    # the shipped corpus is nearly balanced, so the weights are near 1 but not 1: the loss moves a little
    targets = EncodedSplits.load(Paths.from_config(plain).ids).targets["train"]
    counts = np.bincount(targets, minlength=len(KNB_LABELS))
    np.testing.assert_allclose(balanced_class_weights(targets, len(KNB_LABELS)),
                               len(targets) / (len(KNB_LABELS) * counts), rtol=1e-6)
    assert not np.array_equal(plain_loss, balanced_loss)


# ------------------------------------------------------------------ overfitting warning
def test_overfitting_warning_when_parameters_exceed_training_examples(make_config, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.classifier.train"):
        result = train(make_config())
    training_examples = len(EncodedSplits.load(Paths.from_config(make_config()).ids).targets["train"])
    assert result["parameters"] > training_examples
    warnings = [r for r in caplog.records if r.name == "pipeline.classifier.train" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{result['parameters']} trainable parameters" in warnings[0].getMessage()
    assert f"{training_examples} training examples" in warnings[0].getMessage()


def test_no_overfitting_warning_for_a_model_smaller_than_the_training_set(make_config, caplog):
    # one GRU unit on frozen 300-d vectors: 3 * (300 + 1) + 6 + (1 * 4 + 4) = 917 trainable parameters
    config = make_config('model.layers=[{type="gru", units=1}]', "train.epochs=1")
    training_examples = len(EncodedSplits.load(Paths.from_config(config).ids).targets["train"])
    with caplog.at_level(logging.WARNING, logger="pipeline.classifier.train"):
        result = train(config)
    assert result["parameters"] == 917
    assert result["parameters"] <= training_examples, "precondition: the split changed; pick a smaller model"
    assert not [r for r in caplog.records if r.name == "pipeline.classifier.train" and r.levelno >= logging.WARNING]


# ------------------------------------------------------------------ missing inputs
def test_train_without_vectorized_data_names_the_stage_to_run(tmp_path):
    config = knb_config("small", tmp_path / "empty-work", tmp_path / "models")
    with pytest.raises(PipelineError, match="pipeline vectorize"):
        train(config)
    assert not (tmp_path / "models").exists() or entries(tmp_path / "models") == []


def test_copied_run_folder_is_self_contained(make_config, tmp_path):
    """A run folder moved elsewhere still has everything: model, config, vocab, labels."""
    config = make_config()
    train(config)
    moved = shutil.copytree(Paths.from_config(config).run, tmp_path / "elsewhere" / "run")
    assert set(RUN_FILES) <= set(entries(moved))
    assert keras.saving.load_model(RunPaths(moved).model).output_shape == (None, len(KNB_LABELS))


# ------------------------------------------------------------------ ULMFiT-style fine-tuning
def test_gradual_unfreezing_first_epoch_trains_the_head_only(make_config, caplog):
    """One epoch with gradual unfreezing, a slanted triangular schedule and whole-word dropout: the
    embedding and the recurrent layer keep their initial weights exactly, the softmax layer learns."""
    from pipeline import seeds
    from pipeline.classifier.model import build_classifier
    from pipeline.models import embedding_matrix_of

    config = make_config("model.trainable_embeddings=true", "train.gradual_unfreezing=true", "train.epochs=1",
                         'train.lr_schedule="slanted_triangular"', "model.embedding_dropout=0.2", "train.patience=0")
    with caplog.at_level(logging.INFO, logger="pipeline"):
        result = train(config)
    assert "epoch 1: learning-rate factors embedding frozen, recurrent_0 frozen, head 1" in caplog.text
    paths = Paths.from_config(config)
    trained = keras.saving.load_model(RunPaths(paths.run).model, compile=False)
    initial = build_classifier(config.model, np.load(paths.embeddings), len(KNB_LABELS),
                               seeds.child_seed(config.seed, "model"))
    np.testing.assert_array_equal(embedding_matrix_of(trained.get_layer("embedding")),
                                  embedding_matrix_of(initial.get_layer("embedding")))
    recurrent = [model.get_layer("recurrent_0").get_weights() for model in (trained, initial)]
    for ours, theirs in zip(*recurrent):
        np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(trained.get_layer("probabilities").get_weights()[0],
                              initial.get_layer("probabilities").get_weights()[0])
    assert result["epochs"] == 1 and np.isfinite(pd.read_csv(RunPaths(paths.run).history)["loss"]).all()


def test_frozen_embedding_epochs_then_the_embedding_trains(make_config):
    config = make_config("model.trainable_embeddings=true", "train.freeze_embeddings_epochs=1",
                         "train.embedding_learning_rate_factor=0.1", "train.epochs=2", "train.patience=0")
    train(config)
    paths = Paths.from_config(config)
    history = pd.read_csv(RunPaths(paths.run).history)
    assert history["epoch"].tolist() == [0, 1]  # one fit: one continuous history
    embedding = keras.saving.load_model(RunPaths(paths.run).model, compile=False).get_layer("embedding")
    assert not np.array_equal(embedding.get_weights()[0], np.load(paths.embeddings))


def test_rows_reached_are_the_ids_the_sentences_hold():
    from pipeline.classifier.train import rows_reached
    from pipeline.text.encoded import RaggedIds

    sentences = RaggedIds(np.array([5, 2, 9, 2]), np.array([0, 2, 2, 4]))  # an empty sentence too
    assert rows_reached(sentences, 12).tolist() == [2, 5, 9]
    assert rows_reached([], 12).tolist() == []
