"""Tests of ``pipeline.language_model.train``: the real ``train`` stage, full BPTT and truncated BPTT.

Runs of tests/configs/generator_small.toml and generator_tbptt.toml on the shipped KNB corpus
(GiNZA tokens, a 400-word vocabulary, a 16-24 unit LSTM, two epochs), trained once per module
(fixtures in ``conftest.py``); and ensembles of them (``model.members``).
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
from pipeline.language_model import train as train_module
from pipeline.language_model.data import token_stream
from pipeline.language_model.evaluate import ensemble_members, sentence_perplexity, stream_perplexity, summary
from pipeline.language_model.model import (
    TiedEmbedding,
    build_generator,
)
from pipeline.language_model.train import MEMBERS_FILE, _train_members, member_seed
from pipeline.paths import Paths
from pipeline.runs import load_run
from pipeline.stages import run_stage
from pipeline.text.batches import sampled_rows
from pipeline.text.vectors import EncodedSplits
from pipeline.training import dtype_policy


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


# ------------------------------------------------------------------ model.members: an ensemble of language models
@pytest.fixture(scope="module")
def members_run(lm_work_dir, tmp_path_factory):
    """generator_small.toml with ``model.members = 2``: the sentence run's model and one more from its own seed."""
    config = knb_config("generator_small", lm_work_dir, tmp_path_factory.mktemp("generator-models"),
                        'run_name="generator_members"', "model.members=2")
    run_stage("train", config)
    return config


def test_members_mean_their_distributions_and_the_first_is_the_single_model(members_run, sentence_run):
    run = load_run(Paths.from_config(members_run).run)
    members = ensemble_members(run.model)
    assert [member.name for member in members] == ["member_0", "member_1"]
    batch = np.array([[2, 5, 9, 11], [2, 7, 0, 0]], dtype=np.int32)
    each = [np.asarray(member(batch), np.float64) for member in members]
    mixed = np.asarray(run.model(batch), np.float64)
    np.testing.assert_allclose(mixed, (each[0] + each[1]) / 2, atol=1e-6)  # (1/M) sum_m p_m
    np.testing.assert_allclose(mixed.sum(axis=-1), 1.0, atol=1e-5)
    assert not np.allclose(each[0], each[1], atol=1e-3)  # two seeds, two models
    # member 0 is trained from the config's own seed: the model of model.members = 1
    single = load_run(Paths.from_config(sentence_run[0]).run).model
    np.testing.assert_allclose(each[0], np.asarray(single(batch)), atol=1e-5)
    record = json.loads((Paths.from_config(members_run).run / MEMBERS_FILE).read_text(encoding="utf-8"))
    assert [m["seed"] for m in record["members"]] == [members_run.seed, member_seed(members_run.seed, 1)]
    assert member_seed(members_run.seed, 1) != members_run.seed
    history = history_of(members_run)
    assert history["member"].tolist() == [0] * members_run.train.epochs + [1] * members_run.train.epochs
    samples = run.generate("京都の", num=2, seed=0, max_tokens=5)  # sampling reads the mean distribution
    assert len(samples) == 2 and all(sample["text"] for sample in samples)


def test_evaluate_scores_each_member_and_their_mixture_beats_their_mean_log_likelihood(members_run):
    metrics = run_stage("evaluate", members_run) and json.loads(
        (Paths.from_config(members_run).run / "metrics.json").read_text(encoding="utf-8"))
    for split in ("validation", "test"):
        alone = metrics["members"][split]
        assert len(alone) == 2
        # Jensen: ln((p0 + p1) / 2) >= (ln p0 + ln p1) / 2 per token, so the mixture's perplexity is at most
        # the geometric mean of the members'
        assert metrics["perplexity"][split] <= math.sqrt(alone[0] * alone[1]) * (1 + 1e-9)
    assert "each of the 2 members alone" in summary(metrics)


def test_members_share_the_time_limit_and_one_without_time_for_an_epoch_does_not_train(lm_work_dir, tmp_path, caplog):
    config = knb_config("generator_small", lm_work_dir, tmp_path, "model.members=3", "train.epochs=1",
                        "train.time_limit_minutes=1.0")
    now = [0.0]

    def clock() -> float:  # 40 s pass at every reading: the first member's share leaves no time for another
        now[0] += 40.0
        return now[0]

    paths = Paths.from_config(config)
    with caplog.at_level("WARNING"), dtype_policy(config.train.precision):
        result = _train_members(config, paths, ("train",), False, None, clock=clock)
    assert result["members"] == 1
    record = json.loads((paths.run / MEMBERS_FILE).read_text(encoding="utf-8"))
    # the first member's share: the 20 s left of the minute at that reading, over the three members
    assert record["members"][0]["minutes"] == pytest.approx(20 / 60 / 3, abs=0.01)
    assert record["time_limit_minutes"] == 1.0
    assert any("the ensemble is of 1 member(s), not 3" in message for message in caplog.messages)
    assert [member.name for member in ensemble_members(load_run(paths.run).model)] == ["member_0"]
    assert not list((paths.work / "members").iterdir())  # the members' folders are gone


def test_a_killed_ensemble_training_resumes_with_the_next_member(lm_work_dir, tmp_path, monkeypatch):
    config = knb_config("generator_small", lm_work_dir, tmp_path, "model.members=2", "train.epochs=1")
    trained = []
    original = train_module._train_generator

    def train_then_stop(own, paths, *arguments):
        if trained and len(trained) == 1 and not getattr(train_then_stop, "resumed", False):
            raise KeyboardInterrupt  # killed while the second member trains
        trained.append(own.seed)
        return original(own, paths, *arguments)

    monkeypatch.setattr(train_module, "_train_generator", train_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_stage("train", config)
    assert not Paths.from_config(config).run.exists()
    train_then_stop.resumed = True
    run_stage("train", config)
    assert trained == [config.seed, member_seed(config.seed, 1)]  # the first member was not trained again
    assert len(ensemble_members(load_run(Paths.from_config(config).run).model)) == 2


@pytest.mark.parametrize(("overrides", "message"), [
    (("model.members=2", 'train.regime="tbptt"', "train.bptt_steps=10"), "model.members.*tbptt"),
    (("model.members=0",), "model.members.*>= 1"),
])
def test_members_refused_where_they_cannot_work(lm_work_dir, tmp_path, overrides, message):
    with pytest.raises(PipelineError, match=message):
        knb_config("generator_small", lm_work_dir, tmp_path, *overrides)


def test_a_classifier_refuses_members(tmp_path):
    with pytest.raises(PipelineError, match=r"model.members.*classifier"):
        knb_config("small", tmp_path, tmp_path, "model.members=2")
