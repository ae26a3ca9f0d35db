"""Pretraining a bidirectional encoder (:mod:`pipeline.language_model.pretrain`): a forward language model,
a backward one that reads every sentence reversed, and a classifier whose ``Bidirectional`` layer starts
with exactly their weights.

The corpus is tiny and has one answer: each sentence is a run of the cycle あいうえおかきくけこ, read
in characters, so the token after ``X`` is always the next letter of the cycle and the token before it
the previous one. A forward model that learned it predicts the next letter after ``<s> X``; the
backward model, trained on reversed sentences, predicts the previous one.
"""

import shutil
from dataclasses import replace

import numpy as np
import pytest
from helpers import REPOSITORY, TEST_CONFIGS, write_csv

from pipeline import config as config_module
from pipeline.classifier.model import build_classifier
from pipeline.classifier.train import start_from_pretrained
from pipeline.errors import PipelineError
from pipeline.language_model.pretrain import BACKWARD, language_model_config
from pipeline.paths import Paths
from pipeline.runs import load_run
from pipeline.stages import folder_of, run_stage

CYCLE = "あいうえおかきくけこ"

pytestmark = pytest.mark.slow  # two language models and a classifier are built and trained


@pytest.fixture(scope="module")
def cycle_corpus(tmp_path_factory):
    """80 runs of :data:`CYCLE` (3 to 10 letters from each start), labelled by the parity of their start."""
    rows = []
    for index, (start, length) in enumerate((start, length) for start in range(10) for length in range(3, 11)):
        text = "".join(CYCLE[(start + step) % 10] for step in range(length))
        split = ("validation", "test", "train", "train", "train")[index % 5]
        rows.append((text, f"{('even', 'odd')[start % 2]},{split}"))
    return write_csv(tmp_path_factory.mktemp("cycle") / "cycle.csv", rows, header="text,label,split")


@pytest.fixture(scope="module")
def pretrained(cycle_corpus, tmp_path_factory):
    """The pretrain stage of a bigru classifier on the cycle corpus: (config, paths, pretrained folder)."""
    root = tmp_path_factory.mktemp("cycle-run")
    config = config_module.load(TEST_CONFIGS / "pretrained_small.toml", [
        'corpus.format="table"', f'corpus.path="{cycle_corpus}"', 'corpus.split_column="split"',
        'corpus.name="cycle"', 'tokenize.method="char"', 'vectorize.vectors="none"', "vectorize.min_count=1",
        f'work_dir="{root / "work"}"', f'models_dir="{root / "models"}"', "model.embedding_dim=8",
        'model.layers=[{type="bigru", units=12}]', "pretrain.epochs=12", "pretrain.patience=0",
        "pretrain.batch_size=16", "pretrain.learning_rate=0.05", "pretrain.embedding_dropout=0.0",
        "pretrain.input_dropout=0.0", "pretrain.hidden_dropout=0.0", "pretrain.output_dropout=0.0"])
    run_stage("pretrain", config)
    paths = Paths.from_config(config)
    return config, paths, folder_of("pretrain", config, paths)


def next_token(run, letter: str) -> str:
    """The most probable token after ``<s> letter`` under the language model ``run`` (a loaded run folder)."""
    ids = np.array([[run.vocab.index["<s>"], run.vocab.index[letter]]], dtype="int32")
    return run.vocab.tokens[int(np.argmax(run.model.predict(ids, verbose=0)[0, 1]))]


def test_the_layers_of_each_direction_are_one_directional():
    config = config_module.load(TEST_CONFIGS / "pretrained_small.toml", [
        'model.layers=[{type="bilstm", units=6, dropout=0.1}, {type="bigru", units=4}]', "pretrain.weight_drop=0.5"])
    for backward in (False, True):
        settings = language_model_config(config, backward=backward).model
        assert settings.layers == ({"type": "weight_drop_lstm", "units": 6, "weight_drop": 0.5},
                                   {"type": "gru", "units": 4})
        assert settings.trainable_embeddings is not backward  # the backward model reads the forward's embedding
    frozen = config_module.load(TEST_CONFIGS / "pretrained_small.toml", ["pretrain.freeze_embeddings=true"])
    assert not language_model_config(frozen).model.trainable_embeddings


def test_the_language_model_of_the_default_classifier_is_a_valid_generator_config():
    """configs/default.toml's classifier-only settings (the n-gram ensemble, distillation, adversarial training,
    self-training) are off in its language models, so their run folders reload."""
    from pipeline.config import from_dict

    classifier_config = config_module.load(REPOSITORY / "configs" / "default.toml", [
        "pretrain.enabled=true", "train.distill=0.5", "train.adversarial=0.05", "train.virtual_adversarial=0.1",
        "corpus.unlabeled_path='more.txt'"])
    assert classifier_config.model.ensemble != "none" and classifier_config.train.self_training
    for backward in (False, True):
        settings = language_model_config(classifier_config, backward=backward)
        reloaded = from_dict(settings.to_dict(), owner="generator")
        assert reloaded.model.task == "generator" and reloaded.model.ensemble == "none"
        assert reloaded.train.distill == reloaded.train.adversarial == reloaded.train.virtual_adversarial == 0.0
        assert reloaded.train.self_training == 0


def test_the_forward_model_predicts_the_next_token_and_the_backward_model_the_previous_one(pretrained):
    _, _, folder = pretrained
    assert (folder / BACKWARD / "model.keras").is_file()
    forward, backward = load_run(folder), load_run(folder / BACKWARD)
    for position in (2, 5, 8):
        letter = CYCLE[position]
        assert next_token(forward, letter) == CYCLE[position + 1]
        assert next_token(backward, letter) == CYCLE[position - 1]


def test_both_language_models_share_the_embedding(pretrained):
    _, _, folder = pretrained
    forward, backward = (load_run(path).model.get_layer("embedding").get_weights()[0]
                         for path in (folder, folder / BACKWARD))
    np.testing.assert_array_equal(forward, backward)


def test_the_bidirectional_layer_starts_with_the_weights_of_the_two_language_models(pretrained):
    config, paths, folder = pretrained
    matrix = np.load(paths.embeddings)
    classifier = build_classifier(config.model, np.zeros_like(matrix), 2, seed=0)
    assert start_from_pretrained(classifier, folder) == ["embedding", "recurrent_0"]
    layer = classifier.get_layer("recurrent_0")
    for half, source in ((layer.forward_layer, folder), (layer.backward_layer, folder / BACKWARD)):
        theirs = load_run(source).model.get_layer("recurrent_0").get_weights()
        assert len(theirs) == len(half.get_weights()) == 3
        for ours, expected in zip(half.get_weights(), theirs):
            np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(classifier.get_layer("embedding").get_weights()[0],
                                  load_run(folder).model.get_layer("embedding").get_weights()[0])


def test_a_layer_above_a_bidirectional_one_reads_each_direction_from_its_own_half(pretrained):
    """Two bigru layers: each direction's second-layer language model reads its own first layer (12 inputs);
    in the classifier that layer reads [forward; backward] (24): its kernel fills its direction's rows."""
    import keras

    from pipeline.classifier.train import _copy_layer

    config, paths, folder = pretrained
    two = replace(config.model, layers=({"type": "bigru", "units": 12},) * 2)
    classifier = build_classifier(two, np.zeros_like(np.load(paths.embeddings)), 2, seed=0)
    upper = classifier.get_layer("recurrent_1")
    for direction, half, rows in (("forward", upper.forward_layer, slice(0, 12)),
                                  ("backward", upper.backward_layer, slice(12, 24))):
        second = keras.layers.GRU(12, name="recurrent_1")  # a language model's second layer
        second.build((None, None, 12))
        _copy_layer(second, half, folder, direction)
        placed, expected = half.get_weights(), second.get_weights()
        assert placed[0].shape == (24, 36)
        np.testing.assert_array_equal(placed[0][rows], expected[0])
        assert not np.delete(placed[0], np.arange(24)[rows], axis=0).any()  # the other direction's rows: zero
        for ours, theirs in zip(placed[1:], expected[1:]):
            np.testing.assert_array_equal(ours, theirs)


def test_a_bidirectional_classifier_without_a_backward_model_is_a_user_error(pretrained, tmp_path):
    config, paths, folder = pretrained
    forward_only = shutil.copytree(folder, tmp_path / "forward_only", ignore=shutil.ignore_patterns(BACKWARD))
    classifier = build_classifier(config.model, np.zeros_like(np.load(paths.embeddings)), 2, seed=0)
    with pytest.raises(PipelineError, match="no backward language model"):
        start_from_pretrained(classifier, forward_only)
