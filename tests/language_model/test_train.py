"""Tests of ``pipeline.language_model.train``: the real ``train`` stage, full BPTT and truncated BPTT.

Runs of tests/configs/generator_small.toml and generator_tbptt.toml on the shipped KNB corpus
(GiNZA tokens, a 400-word vocabulary, a 16-24 unit LSTM, two epochs), trained once per module
(fixtures in ``conftest.py``).
"""

import json
import math

import keras
import numpy as np
import pytest
from helpers import knb_config
from lm_helpers import history_of

from pipeline import seeds
from pipeline.errors import PipelineError
from pipeline.language_model.data import token_stream
from pipeline.language_model.evaluate import sentence_perplexity, stream_perplexity
from pipeline.language_model.model import (
    TiedEmbedding,
    build_generator,
)
from pipeline.paths import Paths
from pipeline.runs import load_run
from pipeline.stages import run_stage
from pipeline.text.batches import sampled_rows
from pipeline.text.vectors import EncodedSplits


@pytest.mark.parametrize("run", ["sentence_run", "tbptt_run"])
def test_train_stage_writes_history_with_perplexity_columns(run, request):
    config, caught = request.getfixturevalue(run)
    history = history_of(config)
    assert len(history) == config.train.epochs
    assert {"epoch", "loss", "perplexity", "val_loss", "val_perplexity"} <= set(history.columns)
    for column in ("perplexity", "val_perplexity"):
        assert np.isfinite(history[column]).all() and (history[column] > 1).all()
    # validation perplexity is exp of the validation mean cross-entropy, and below uniform guessing
    vocabulary = len(json.loads((Paths.from_config(config).run / "vocab.json").read_text(encoding="utf-8"))["tokens"])
    assert (history["val_perplexity"] < vocabulary).all()
    # the monitored value existed every epoch: no "metric ... not available" warnings from callbacks
    assert not [message for message in caught if "available" in message], caught


def test_sentence_training_learns(sentence_run):
    history = history_of(sentence_run[0])
    assert history["val_perplexity"].iloc[-1] < history["val_perplexity"].iloc[0]


def test_plateau_schedule_is_wired_into_generator_training(sentence_run):
    config, caught = sentence_run
    history = history_of(config)
    assert "learning_rate" in history.columns  # ReduceLROnPlateau ran (it logs the rate)
    assert history["learning_rate"].iloc[0] == pytest.approx(config.train.learning_rate)


def test_tbptt_step_schedule_and_summed_loss(tbptt_run):
    config, _ = tbptt_run
    history = history_of(config)
    # decay_start = 1: epoch 1 at 1.0, then halved every epoch
    assert history["learning_rate"].tolist() == pytest.approx([1.0, 0.5])
    # the loss is summed over each 20-step window: 20 times the mean cross-entropy, ln(perplexity)
    assert history["loss"].iloc[-1] == pytest.approx(config.train.bptt_steps * math.log(history["perplexity"].iloc[-1]),
                                                     rel=0.05)


def test_tbptt_run_saves_a_stateless_model_with_the_trained_weights(tbptt_run):
    config, _ = tbptt_run
    run = load_run(Paths.from_config(config).run)
    assert not any(getattr(layer, "stateful", False) for layer in run.model.layers)
    assert tuple(run.model.inputs[0].shape) == (None, None)
    for batch in (np.array([[3, 5, 6]], np.int32), np.array([[3, 5], [3, 7]], np.int32)):
        probabilities = np.asarray(run.model(batch))
        assert probabilities.shape == (*batch.shape, len(run.vocab))
        np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    # the saved weights are those trained: the last epoch's validation stream perplexity comes back
    splits = EncodedSplits.load(Paths.from_config(config).ids)
    stateful = build_generator(config.model, np.zeros((len(run.vocab), 16), np.float32), 0, stateful=True,
                               batch_size=config.train.batch_size)
    stateful.set_weights(run.model.get_weights())
    stream = token_stream(splits.sequences["validation"], run.vocab.index["</s>"])
    value = stream_perplexity(stateful, stream, config.train.batch_size, config.train.bptt_steps)
    assert value == pytest.approx(history_of(config)["val_perplexity"].iloc[-1], rel=1e-4)


def test_sentence_run_folder_reloads_a_tied_model(sentence_run):
    config, _ = sentence_run
    run = load_run(Paths.from_config(config).run)
    assert run.config == config and run.config.model.tie_weights
    assert isinstance(run.model.get_layer("embedding"), TiedEmbedding)
    assert run.vocab.tokens[:4] == ["<pad>", "<unk>", "<s>", "</s>"]


def test_train_rejects_conditioning_on_an_unlabelled_or_streamed_corpus(lm_work_dir, tmp_path):
    config = knb_config("generator_tbptt", lm_work_dir, tmp_path / "models", 'model.conditioning="concat"')
    with pytest.raises(PipelineError, match="model.conditioning"):
        run_stage("train", config)
    assert not (tmp_path / "models" / config.run_name).exists()


def test_adaptive_run_learns_and_saves_the_inference_model(adaptive_run):
    config, caught = adaptive_run
    history = history_of(config)
    assert len(history) == config.train.epochs
    assert history["val_perplexity"].iloc[-1] < history["val_perplexity"].iloc[0]
    assert not [message for message in caught if "available" in message], caught
    run = load_run(Paths.from_config(config).run)
    assert len(run.model.inputs) == 1  # the inference model: no target ids
    assert run.model.get_layer("adaptive_softmax").cutoffs == [60, 200]
    probabilities = np.asarray(run.model(np.array([[2, 5, 9, 0]], dtype=np.int32)))
    assert probabilities.shape[-1] == len(run.vocab)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    # the saved full distribution scores the validation split exactly as training's target-only path did
    splits = EncodedSplits.load(Paths.from_config(config).ids)
    value = sentence_perplexity(run.model, splits.sequences["validation"], None, run.vocab.index["<s>"],
                                run.vocab.index["</s>"], config.train.max_length)
    assert value == pytest.approx(history["val_perplexity"].iloc[-1], rel=1e-3)


def test_validation_rows_scores_each_epoch_on_one_seeded_sample(lm_work_dir, tmp_path):
    config = knb_config("generator_small", lm_work_dir, tmp_path, "train.validation_rows=30", "train.epochs=1",
                        "train.patience=0")
    run_stage("train", config)
    history = history_of(config)
    run = load_run(Paths.from_config(config).run)
    validation = EncodedSplits.load(Paths.from_config(config).ids).sequences["validation"]
    rows = sampled_rows(len(validation), 30, seeds.rng(config.seed, "validation_rows"))

    def perplexity_of(sentences):
        return sentence_perplexity(run.model, sentences, None, run.vocab.index["<s>"], run.vocab.index["</s>"],
                                   config.train.max_length)

    # the epoch's val_perplexity is that of the 30 sampled sentences, not of the whole split
    assert history["val_perplexity"].iloc[0] == pytest.approx(perplexity_of([validation[i] for i in rows]), rel=1e-3)
    assert history["val_perplexity"].iloc[0] != pytest.approx(perplexity_of(list(validation)), rel=1e-3)


def test_mixed_bfloat16_training_gives_a_float32_distribution(lm_work_dir, tmp_path):
    config = knb_config("generator_small", lm_work_dir, tmp_path, 'train.precision="mixed_bfloat16"', "train.epochs=1",
                        "model.tie_weights=false")
    run_stage("train", config)
    run = load_run(Paths.from_config(config).run)
    assert run.model.get_layer("logits").dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    probabilities = np.asarray(run.model(np.array([[2, 5, 9]], dtype=np.int32)))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    assert np.isfinite(history_of(config)["val_perplexity"]).all()


def test_sentence_training_in_epochs_of_a_set_number_of_batches(lm_work_dir, tmp_path):
    config = knb_config("generator_small", lm_work_dir, tmp_path, "train.steps_per_epoch=3", "train.epochs=2",
                        "train.patience=0")
    run_stage("train", config)
    history = history_of(config)
    assert len(history) == 2
    # the checkpoint (the best epoch's model) took 3 optimizer steps an epoch up to it
    best = int(history["val_perplexity"].to_numpy().argmin()) + 1
    model = keras.saving.load_model(Paths.from_config(config).run / "model.keras", compile=True)
    assert int(model.optimizer.iterations.numpy()) == 3 * best
