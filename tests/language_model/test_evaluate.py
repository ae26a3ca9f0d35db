"""Tests of ``pipeline.language_model.evaluate``: sentence and stream perplexity, and the evaluate stage."""

import json
import math

import numpy as np
import pytest
from lm_helpers import (
    BOS,
    EOS,
    history_of,
    model_settings,
    numpy_simple_rnn_generator,
    random_matrix,
    set_random_weights,
)

from pipeline.language_model.data import teacher_forcing_pairs
from pipeline.language_model.evaluate import (
    interpolation_weight,
    mixture_log_probabilities,
    perplexity_of,
    reset_states,
    sentence_perplexity,
    stream_perplexity,
    summary,
    target_log_probabilities,
)
from pipeline.language_model.model import (
    build_generator,
)
from pipeline.language_model.ngram import KneserNeyModel
from pipeline.language_model.train import ResetStates
from pipeline.paths import Paths, RunPaths
from pipeline.runs import load_run
from pipeline.stages import run_stage
from pipeline.text.vectors import EncodedSplits

# ------------------------------------------------------------------ sentence_perplexity
SENTENCES = [np.array(s, dtype=np.int32) for s in ([5, 6, 7], [8], [9, 10, 11, 4, 5, 6, 7], [4, 4], [11, 10, 9, 8, 7])]


def test_sentence_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    vocabulary = 12
    model = build_generator(model_settings({"type": "simple_rnn", "units": 3}), random_matrix(vocabulary, 4, 0), 0)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])  # softmax(0) = 1/V everywhere
    value = sentence_perplexity(model, SENTENCES, None, BOS, EOS, max_length=10, batch_size=2)
    assert value == pytest.approx(vocabulary, rel=1e-5)


@pytest.mark.parametrize("max_length", [10, 4], ids=["whole-sentences", "cut-at-4"])
def test_sentence_perplexity_by_hand(max_length):
    model = build_generator(model_settings({"type": "simple_rnn", "units": 3}), random_matrix(12, 4, 0), 0)
    set_random_weights(model, seed=11, scale=1.0)
    cross_entropy, count, per_token = 0.0, 0, []
    for sentence in SENTENCES:  # one sentence at a time: no padding at all in the reference
        inputs, targets = teacher_forcing_pairs([sentence], BOS, EOS, max_length=min(max_length, len(sentence) + 1))
        probabilities = numpy_simple_rnn_generator(model, inputs, tied=False)
        chosen = np.take_along_axis(probabilities, targets[..., None], -1)[..., 0]
        cross_entropy -= np.log(chosen).sum()
        count += targets.size
        per_token.extend(np.log(chosen[0]))
    expected = math.exp(cross_entropy / count)
    assert count == sum(min(len(s) + 1, max_length) for s in SENTENCES)
    value = sentence_perplexity(model, SENTENCES, None, BOS, EOS, max_length=max_length, batch_size=2)
    assert value == pytest.approx(expected, rel=1e-5)
    # token by token in sentence order, though the batches group sentences by length
    scores = target_log_probabilities(model, SENTENCES, None, BOS, EOS, max_length=max_length, batch_size=2)
    np.testing.assert_allclose(scores, per_token, rtol=1e-5, atol=1e-6)


def test_sentence_perplexity_of_a_conditioned_model_uses_the_labels():
    model = build_generator(model_settings({"type": "lstm", "units": 4}, conditioning="concat"),
                            random_matrix(12, 4, 0), 0, num_labels=2)
    set_random_weights(model, seed=12, scale=1.0)
    labels = np.array([0, 1, 0, 1, 1], dtype=np.int32)
    value = sentence_perplexity(model, SENTENCES, labels, BOS, EOS, max_length=10, batch_size=2)
    cross_entropy, count = 0.0, 0
    for sentence, label in zip(SENTENCES, labels):
        inputs, targets = teacher_forcing_pairs([sentence], BOS, EOS)
        probabilities = np.asarray(model((inputs, np.array([label], np.int32))), dtype=np.float64)
        cross_entropy -= np.log(np.take_along_axis(probabilities, targets[..., None], -1)[..., 0]).sum()
        count += targets.size
    assert value == pytest.approx(math.exp(cross_entropy / count), rel=1e-5)
    flipped = sentence_perplexity(model, SENTENCES, 1 - labels, BOS, EOS, max_length=10, batch_size=2)
    assert flipped != pytest.approx(value, rel=1e-4)


# ------------------------------------------------------------------ stateful models
def test_reset_states_zeroes_the_state_of_stateful_layers():
    model = build_generator(model_settings({"type": "lstm", "units": 4}, {"type": "gru", "units": 3}),
                            random_matrix(9, 4, 0), 0, stateful=True, batch_size=2)
    set_random_weights(model, seed=8)
    token_ids = np.array([[2, 5, 6], [2, 7, 8]], dtype=np.int32)
    first = np.asarray(model(token_ids))
    layers = [model.get_layer("recurrent_0"), model.get_layer("recurrent_1")]
    assert all(np.abs(np.asarray(state)).sum() > 0 for layer in layers for state in layer.states)
    second = np.asarray(model(token_ids))
    assert np.abs(first - second).max() > 1e-4  # the state carried over
    reset_states(model)
    assert all(np.abs(np.asarray(state)).sum() == 0 for layer in layers for state in layer.states)
    np.testing.assert_allclose(np.asarray(model(token_ids)), first, rtol=1e-5, atol=1e-6)


def test_reset_states_callback_resets_at_each_epoch_begin():
    model = build_generator(model_settings({"type": "lstm", "units": 4}), random_matrix(9, 4, 0), 0,
                            stateful=True, batch_size=2)
    set_random_weights(model, seed=9)
    model(np.array([[2, 5, 6], [2, 7, 8]], dtype=np.int32))
    callback = ResetStates()
    callback.set_model(model)
    callback.on_epoch_begin(0)
    assert all(np.abs(np.asarray(state)).sum() == 0 for state in model.get_layer("recurrent_0").states)


def test_stream_perplexity_carries_the_state_and_resets_it():
    vocabulary = 9
    model = build_generator(model_settings({"type": "lstm", "units": 4}), random_matrix(vocabulary, 4, 0), 0,
                            stateful=True, batch_size=2)
    set_random_weights(model, seed=10)
    stream = np.random.default_rng(3).integers(2, vocabulary, size=2 * (3 * 5) + 2).astype(np.int32)
    value = stream_perplexity(model, stream, batch_size=2, bptt_steps=5)
    assert all(np.abs(np.asarray(state)).sum() == 0 for state in model.get_layer("recurrent_0").states)
    # reference: one pass over each whole track (state carried), 15 predicted tokens per track
    tracks = stream[: 2 * (len(stream) // 2)].reshape(2, -1)
    probabilities = np.asarray(model(tracks[:, :15]), dtype=np.float64)
    reset_states(model)
    chosen = np.take_along_axis(probabilities, tracks[:, 1:16, None], -1)[..., 0]
    assert value == pytest.approx(math.exp(-np.log(chosen).mean()), rel=1e-5)


# ------------------------------------------------------------------ the evaluate stage
def test_evaluate_writes_perplexities_and_a_kneser_ney_baseline(sentence_run):
    config, _ = sentence_run
    result = run_stage("evaluate", config)
    paths = Paths.from_config(config)
    metrics = json.loads(RunPaths(paths.run).metrics.read_text(encoding="utf-8"))
    assert result["perplexity"] == metrics["perplexity"]
    assert set(metrics["perplexity"]) == {"train", "validation", "test"}
    vocabulary = len(load_run(paths.run).vocab)
    for split, value in metrics["perplexity"].items():
        assert 1 < value < vocabulary, split
        assert metrics["tokens"][split] > 0
    baseline = metrics["baselines"]["kneser_ney_trigram"]["perplexity"]
    assert math.isfinite(baseline) and 1 < baseline < vocabulary
    assert (RunPaths(paths.run).plots / "training_curves.png").is_file()
    # the saved checkpoint is the best epoch: its validation perplexity is the history's minimum
    assert metrics["perplexity"]["validation"] == pytest.approx(history_of(config)["val_perplexity"].min(), rel=1e-4)
    # and the test perplexity is the one sentence_perplexity gives for the reloaded model
    run = load_run(paths.run)
    splits = EncodedSplits.load(paths.ids)
    direct = sentence_perplexity(run.model, splits.sequences["test"], None, run.vocab.index["<s>"],
                                 run.vocab.index["</s>"], config.train.max_length)
    assert metrics["perplexity"]["test"] == pytest.approx(direct, rel=1e-5)
    # KN3 and KN4 score the very tokens the model predicts; the mixture's weight is chosen on validation
    bos, eos, max_length = run.vocab.index["<s>"], run.vocab.index["</s>"], config.train.max_length
    kn4 = KneserNeyModel(order=4, bos_token=bos, eos_token=eos, unk_token=1, pad_token=0).fit(
        [s[:max_length - 1] for s in splits.sequences["train"]], vocabulary=range(2, len(run.vocab)))
    scores = {split: (target_log_probabilities(run.model, splits.sequences[split], None, bos, eos, max_length),
                      kn4.token_log_probabilities(splits.sequences[split], max_tokens=max_length))
              for split in ("validation", "test")}
    assert len(scores["test"][1]) == metrics["tokens"]["test"]
    assert metrics["baselines"]["kneser_ney_4gram"]["perplexity"] == pytest.approx(perplexity_of(scores["test"][1]),
                                                                                rel=1e-12)
    assert metrics["kneser_ney_4gram_gap_percent"] == pytest.approx(
        100 * (metrics["perplexity"]["test"] / metrics["baselines"]["kneser_ney_4gram"]["perplexity"] - 1))
    mixture = metrics["interpolated"]
    assert mixture["with"] == "kneser_ney_4gram"
    assert mixture["model_weight"] == pytest.approx(interpolation_weight(*scores["validation"]), abs=1e-4)
    for split in ("validation", "test"):
        expected = perplexity_of(mixture_log_probabilities(mixture["model_weight"], *scores[split]))
        assert mixture["perplexity"][split] == pytest.approx(expected, rel=1e-4), split
    # chosen on validation with the end points among the candidates: no worse there than either member
    validation_kn4 = perplexity_of(scores["validation"][1])
    assert mixture["perplexity"]["validation"] <= min(metrics["perplexity"]["validation"], validation_kn4) * (1 + 1e-6)


def test_evaluate_tbptt_run_adds_the_stream_perplexity(tbptt_run):
    config, _ = tbptt_run
    metrics = run_stage("evaluate", config)
    assert set(metrics["perplexity"]) == {"train", "validation", "test"}
    assert 1 < metrics["stream_perplexity_test"] < len(load_run(Paths.from_config(config).run).vocab)
    assert "kneser_ney_trigram" in metrics["baselines"]


@pytest.mark.parametrize("test_perplexity, verdict", [(70.0, "-17.6%"), (91.2, "does not beat")])
def test_summary_compares_the_model_with_the_best_kneser_ney_baseline(test_perplexity, verdict):
    metrics = {"perplexity": {"validation": 80.0, "test": test_perplexity},
               "baselines": {"kneser_ney_trigram": {"perplexity": 85.0}, "kneser_ney_4gram": {"perplexity": 84.9}}}
    text = summary(metrics)
    assert "Kneser-Ney 4-gram baseline: test perplexity 84.9" in text
    assert verdict in text
    assert ("does not beat" in text) == (test_perplexity > 84.9)


@pytest.mark.parametrize("test_perplexity, verdict", [
    (70.0, "model vs Kneser-Ney 4-gram: test perplexity -17.6%\n"),
    (84.95, "-0.1%: the model does not beat the Kneser-Ney trigram baseline"),  # beats KN4, not KN3
    (90.0, "+5.9%: the model does not beat the Kneser-Ney 4-gram baseline"),
])
def test_summary_gives_the_gap_to_the_4gram_and_the_interpolated_model(test_perplexity, verdict):
    metrics = {"perplexity": {"validation": 80.0, "test": test_perplexity},
               "baselines": {"kneser_ney_trigram": {"perplexity": 84.9}, "kneser_ney_4gram": {"perplexity": 85.0}},
               "kneser_ney_4gram_gap_percent": 100 * (test_perplexity / 85.0 - 1),
               "interpolated": {"with": "kneser_ney_4gram", "model_weight": 0.625,
                                "perplexity": {"validation": 75.04, "test": 66.66}}}
    text = summary(metrics)
    assert verdict in text
    assert "interpolated 0.62 x model + 0.38 x Kneser-Ney 4-gram (weight chosen on validation): " \
           "test perplexity 66.7 (validation 75.0)" in text


def test_interpolation_weight_maximises_the_likelihood_of_the_tokens():
    rng = np.random.default_rng(0)
    model, baseline = np.log(rng.uniform(0.01, 1, 500)), np.log(rng.uniform(0.01, 1, 500))
    weight = interpolation_weight(model, baseline)
    grid = np.linspace(0, 1, 10001)
    likelihoods = [mixture_log_probabilities(w, model, baseline).sum() for w in grid]
    assert 0.05 < weight < 0.95
    assert weight == pytest.approx(grid[int(np.argmax(likelihoods))], abs=2e-4)
    assert mixture_log_probabilities(weight, model, baseline).sum() >= max(likelihoods) - 1e-9
    # a member worse at every token gets no weight; the mixture of a weight 0 or 1 is that member exactly
    assert interpolation_weight(model, model - 0.5) == 1.0
    assert interpolation_weight(model - 0.5, model) == 0.0
    np.testing.assert_array_equal(mixture_log_probabilities(1.0, model, baseline), model)
    np.testing.assert_array_equal(mixture_log_probabilities(0.0, model, baseline), baseline)
    np.testing.assert_allclose(mixture_log_probabilities(0.25, model, baseline),
                               np.log(0.25 * np.exp(model) + 0.75 * np.exp(baseline)), rtol=1e-12)
