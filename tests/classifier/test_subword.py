"""Tests of pipeline.classifier.subword: character vectors and the wide n-gram head in the classifier.

Model structure and masking on tiny models (real Keras), a run folder round trip through
``load_run`` and ``classify`` (real GiNZA), a pretrained encoder widened by the character vectors,
training and evaluating with the ridge readout, and one end-to-end ``pipeline run`` + ``pipeline
classify`` through the real CLI on sentences with words the run never saw.
"""

import json

import numpy as np
import pytest
from helpers import (
    CLASSES,
    REPOSITORY,
    TEST_CONFIGS,
    VOCABULARY,
    assert_success,
    classifier,
    cli_here,
    embedding_matrix,
    knb_config,
)

from pipeline import config as config_module
from pipeline.classifier.evaluate import evaluate_classifier
from pipeline.classifier.model import build_classifier
from pipeline.classifier.predict import classify
from pipeline.classifier.train import start_from_pretrained, train_classifier
from pipeline.layers.char_encoder import CharacterEncoder
from pipeline.paths import Paths, RunPaths
from pipeline.runs import load_run, write_run_metadata
from pipeline.text.vocab import Vocabulary

SUBWORD = {"char_encoder": "cnn", "char_dim": 4, "char_units": 6, "max_chars": 5, "char_buckets": 50,
           "ngram_features": "both", "ngram_buckets": 100, "ngram_dim": 4}
GRU = [{"type": "gru", "units": 4}]


def inputs(token_ids, char_ids, ngram_ids) -> dict:
    return {"token_ids": np.array(token_ids, dtype=np.int32), "char_ids": np.array(char_ids, dtype=np.int32),
            "ngram_ids": np.array(ngram_ids, dtype=np.int32)}


CHARS = [[3, 9, 0, 0, 0], [12, 0, 0, 0, 0], [7, 7, 41, 2, 0]]
NO_CHARS = [0, 0, 0, 0, 0]
SENTENCE = inputs([[3, 4, 5]], [CHARS], [[11, 12, 13, 14]])


# ------------------------------------------------------------------ structure
def test_without_subword_features_the_model_is_the_token_ids_model():
    model = classifier(GRU)
    assert [tensor.name for tensor in model.inputs] == ["token_ids"]
    assert not any(layer.name in ("char_encoder", "ngram_embedding") for layer in model.layers)


def test_inputs_and_layers_of_each_feature():
    both = classifier(GRU, **SUBWORD)
    assert sorted(tensor.name for tensor in both.inputs) == ["char_ids", "ngram_ids", "token_ids"]
    assert isinstance(both.get_layer("char_encoder"), CharacterEncoder)
    assert both.get_layer("ngram_embedding").input_dim == 101
    assert both.get_layer("recurrent_0").cell.kernel.shape == (8 + 6, 12)  # word dim 8 + char_units 6
    assert both.get_layer("probabilities").kernel.shape == (4 + 4, CLASSES)  # sentence 4 + ngram_dim 4
    assert np.asarray(both(SENTENCE)).shape == (1, CLASSES)
    chars_only = classifier(GRU, **{**SUBWORD, "ngram_features": "none"})
    assert sorted(tensor.name for tensor in chars_only.inputs) == ["char_ids", "token_ids"]
    ngrams_only = classifier(GRU, **{**SUBWORD, "char_encoder": "none", "ngram_dropout": 0.3})
    assert sorted(tensor.name for tensor in ngrams_only.inputs) == ["ngram_ids", "token_ids"]
    assert ngrams_only.get_layer("ngram_dropout").rate == 0.3


# ------------------------------------------------------------------ masking
@pytest.mark.parametrize("pooling, char_encoder", [("last", "cnn"), ("mean", "bilstm"), ("max", "cnn")])
def test_padding_tokens_characters_and_ngrams_do_not_change_the_output(pooling, char_encoder):
    model = classifier(GRU + [{"type": "lstm", "units": 3}], pooling=pooling,
                       **{**SUBWORD, "char_encoder": char_encoder})
    expected = np.asarray(model(SENTENCE, training=False))
    padded = inputs([[3, 4, 5, 0, 0]], [CHARS + [NO_CHARS] * 2], [[11, 12, 13, 14, 0, 0, 0]])
    np.testing.assert_allclose(np.asarray(model(padded, training=False)), expected, atol=1e-6)
    batch = inputs([[3, 4, 5, 0], [6, 7, 8, 9]], [CHARS + [NO_CHARS], [[1, 2, 0, 0, 0]] * 4],
                   [[11, 12, 13, 14, 0], [1, 2, 3, 4, 5]])
    np.testing.assert_allclose(np.asarray(model(batch, training=False))[0], expected[0], atol=1e-6)
    # real characters and n-grams do reach the output
    other_chars = inputs([[3, 4, 5]], [[[13, 0, 0, 0, 0], [14, 0, 0, 0, 0], [15, 0, 0, 0, 0]]], [[11, 12, 13, 14]])
    other_ngrams = inputs([[3, 4, 5]], [CHARS], [[21, 22, 23, 24]])
    for changed in (other_chars, other_ngrams):
        assert np.abs(np.asarray(model(changed, training=False)) - expected).max() > 1e-6


# ------------------------------------------------------------------ run folder, classify, pretrained encoder
def write_run(folder, layers=GRU, **settings):
    """A real (untrained) classifier run folder over a vocabulary of VOCABULARY entries; returns (model, config)."""
    config = config_module.from_dict({"run_name": folder.name, "vectorize": {"vectors": "none"},
                                      "model": {"task": "classifier", "layers": layers, **settings}})
    model = build_classifier(config.model, embedding_matrix(), CLASSES, seed=0)
    folder.mkdir(parents=True)
    model.save(RunPaths(folder).model)
    vocab = Vocabulary(["<pad>", "<unk>", "京都", "の", *(f"word{i}" for i in range(VOCABULARY - 4))])
    write_run_metadata(folder, config, vocab, ["a", "b", "c"])
    return model, config


def test_a_run_folder_reloads_in_safe_mode_with_the_same_probabilities(tmp_path):
    model, _ = write_run(tmp_path / "run", **SUBWORD)
    restored = load_run(tmp_path / "run").model
    assert isinstance(restored.get_layer("char_encoder"), CharacterEncoder)
    batch = inputs([[3, 4, 5, 0], [6, 7, 8, 9]], [CHARS + [NO_CHARS], [[1, 2, 0, 0, 0]] * 4],
                   [[11, 12, 13, 14, 0], [1, 2, 3, 4, 5]])
    np.testing.assert_allclose(np.asarray(restored(batch)), np.asarray(model(batch)), atol=1e-6)


def test_classify_tells_unseen_words_apart_by_their_characters(tmp_path):
    write_run(tmp_path / "run", **SUBWORD)
    run = load_run(tmp_path / "run")
    texts = ["ペロブスカイトを買った。", "ジルコニアを買った。", "ペロブスカイトを買った。"]
    results = classify(run, texts, batch_size=2)
    assert all(result["unknown_token_share"] == 1.0 for result in results)  # every word is <unk> here
    first, second, again = (np.array(list(result["probabilities"].values())) for result in results)
    assert np.abs(first - second).max() > 1e-6  # the same ids, told apart by characters and n-grams
    np.testing.assert_allclose(first, again, atol=1e-6)


def test_a_pretrained_encoder_fills_the_word_rows_of_a_wider_first_layer(tmp_path):
    pretrained, _ = write_run(tmp_path / "plain")
    model = classifier(GRU, seed=3, **SUBWORD)
    initial = model.get_layer("recurrent_0").get_weights()
    assert start_from_pretrained(model, tmp_path / "plain") == ["embedding", "recurrent_0"]
    source = pretrained.get_layer("recurrent_0").get_weights()
    kernel, recurrent_kernel, bias = model.get_layer("recurrent_0").get_weights()
    np.testing.assert_array_equal(kernel[:8], source[0])  # the word rows
    np.testing.assert_array_equal(kernel[8:], initial[0][8:])  # the character rows keep their initial values
    np.testing.assert_array_equal(recurrent_kernel, source[1])
    np.testing.assert_array_equal(bias, source[2])


# ------------------------------------------------------------------ train and evaluate
def test_train_and_evaluate_with_a_bilstm_char_encoder_and_the_ridge_readout(small_work_dir, tmp_path):
    config = knb_config("small", small_work_dir, tmp_path / "models", 'model.char_encoder="bilstm"',
                        "model.char_units=4", "model.char_dim=4", 'model.ngram_features="word"',
                        "model.ngram_buckets=512", "model.ngram_dim=4", 'model.readout="ridge"')
    paths = Paths.from_config(config)
    train_classifier(config, paths)
    model = load_run(paths.run).model
    assert sorted(tensor.name for tensor in model.inputs) == ["char_ids", "ngram_ids", "token_ids"]
    metrics = evaluate_classifier(config, paths)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["test_size"] > 0


# ------------------------------------------------------------------ end to end through the CLI
@pytest.mark.slow
def test_run_then_classify_sentences_with_unseen_words(small_work_dir, tmp_path):
    """``pipeline run`` over the session's vectorized small work folder (same front end), then ``classify``."""
    config = str(TEST_CONFIGS / "subword_small.toml")
    result = cli_here("run", config, "--set", f'work_dir="{small_work_dir}"',
                      "--set", f'models_dir="{tmp_path / "models"}"',
                      "--set", f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"')
    assert_success(result)
    assert "vectorize: up to date" in result.stderr, result.stderr[-2000:]
    assert "test accuracy" in result.stdout and "examples:" in result.stdout
    run_folder = tmp_path / "models" / "subword_small"
    metrics = json.loads(RunPaths(run_folder).metrics.read_text(encoding="utf-8"))
    assert metrics["accuracy"] > metrics["baselines"]["majority"]["accuracy"]
    sentences = ["新型のギャラクシーＺフォールドを予約しました。", "新型のペロブスカイトを予約しました。",
                 "Snapdragonのベンチマークを比べた。"]
    classified = cli_here("classify", "--model", str(run_folder), "--json", *sentences)
    assert_success(classified)
    rows = [json.loads(line) for line in classified.stdout.splitlines()]
    assert [row["text"] for row in rows] == sentences
    assert all(row["unknown_token_share"] > 0 for row in rows)
    first, second = (np.array(list(row["probabilities"].values())) for row in rows[:2])
    assert np.abs(first - second).max() > 1e-4  # the unseen words differ only in their characters
