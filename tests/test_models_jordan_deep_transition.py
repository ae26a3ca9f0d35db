"""The registry kinds ``jordan`` and ``deep_transition`` (pipeline.models) inside real models.

A ``jordan`` language model's probabilities are checked against NumPy in both modes: teacher forced
(the model over a whole sentence at once) and free running (greedy generation through
``generate_tokens``, each argmax word fed back, against a NumPy loop that feeds back its own argmax).
A ``deep_transition`` classifier is built from a ``[[model.layers]]`` table. The slow test runs
``pipeline run configs/jordan.toml`` (a small character model) in a fresh process through the CLI.
"""

import json
import re

import numpy as np
import pytest
from helpers import assert_success, cli_here, folders
from lm_helpers import model_settings, set_random_weights, softmax

from pipeline.classifier.model import build_classifier
from pipeline.errors import PipelineError
from pipeline.language_model.model import build_generator, check_generator
from pipeline.language_model.sampling import generate_tokens
from pipeline.layers.deep_transition import DeepTransition
from pipeline.layers.jordan import JordanHidden
from pipeline.models import check_layer_spec
from pipeline.sections import ModelConfig

VOCABULARY, DIMENSION = 12, 5
TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def jordan_generator(state_decay: float):
    matrix = np.random.default_rng(0).normal(0.0, 0.5, size=(VOCABULARY, DIMENSION)).astype(np.float32)
    settings = model_settings({"type": "jordan", "units": 6, "state_decay": state_decay}, tie_weights=False)
    model = build_generator(settings, matrix, seed=1)
    set_random_weights(model, seed=2, scale=0.8)
    return model


def numpy_jordan_generator(model, ids: list[int], state_decay: float) -> np.ndarray:
    """``s_t = μ s_{t-1} + E[w_t]``, ``h_t = tanh(s_t R + b)``, ``p_t = softmax(h_t V + c)`` for every step."""
    matrix = model.get_layer("embedding").get_weights()[0].astype(np.float64)
    recurrent_kernel, bias = model.get_layer("recurrent_0").get_weights()
    output_kernel, output_bias = model.get_layer("probabilities").get_weights()
    state, probabilities = np.zeros(DIMENSION), []
    for token in ids:
        state = state_decay * state + matrix[token]
        probabilities.append(softmax(np.tanh(state @ recurrent_kernel + bias) @ output_kernel + output_bias))
    return np.array(probabilities)


@pytest.mark.parametrize("state_decay", [0.0, 0.5])
def test_jordan_language_model_teacher_forced_against_numpy(state_decay):
    model = jordan_generator(state_decay)
    assert isinstance(model.get_layer("recurrent_0"), JordanHidden)
    sentence = [2, 5, 7, 4, 9, 3]
    got = np.asarray(model(np.array([sentence + [0, 0]], np.int32), training=False))[0]
    np.testing.assert_allclose(got[:6], numpy_jordan_generator(model, sentence, state_decay), **TOLERANCE)


@pytest.mark.parametrize("state_decay", [0.0, 0.5])
def test_jordan_language_model_free_running_feeds_back_its_prediction(state_decay):
    model = jordan_generator(state_decay)

    def step(ids):
        return np.asarray(model(np.array([ids], np.int32), training=False))[0, -1]

    generated, _ = generate_tokens(step, [2], max_tokens=6, eos_id=None, greedy=True)
    ids = [2]  # NumPy free running: the argmax of each step is the next step's previous output
    for _ in range(6):
        ids.append(int(numpy_jordan_generator(model, ids, state_decay)[-1].argmax()))
    assert generated == ids[1:]


def test_jordan_options_are_checked_at_config_load():
    with pytest.raises(PipelineError, match=r"'model.layers\[0\].state_decay'.*state_decay=1.5"):
        check_layer_spec({"type": "jordan", "state_decay": 1.5}, 0)
    settings = model_settings({"type": "jordan", "units": 4}, conditioning="initial_state")
    with pytest.raises(PipelineError, match="model.conditioning"):
        check_generator(settings, "sentences")


def test_deep_transition_classifier_from_a_layer_table():
    table = {"type": "deep_transition", "units": 5, "transition_depth": 3, "output_depth": 1}
    matrix = np.random.default_rng(0).normal(size=(VOCABULARY, DIMENSION)).astype(np.float32)
    model = build_classifier(ModelConfig(layers=(table,), pooling="mean"), matrix, 3, seed=0)
    layer = model.get_layer("recurrent_0")
    assert isinstance(layer, DeepTransition) and layer.cell.transition_depth == 3 and layer.cell.output_depth == 1
    ids = np.random.default_rng(1).integers(1, VOCABULARY, size=(4, 6)).astype(np.int32)
    assert model.predict(ids, verbose=0).shape == (4, 3)
    with pytest.raises(PipelineError, match=r"'model.layers\[0\].transition_depth'.*transition_depth=0"):
        check_layer_spec({"type": "deep_transition", "transition_depth": 0}, 0)


@pytest.mark.slow
def test_jordan_character_language_model_through_the_cli(tmp_path):
    """``pipeline run configs/jordan.toml`` as a character model, shrunk: trains, evaluates, samples."""
    small = ['tokenize.method="char"', 'vectorize.vectors="none"', "model.embedding_dim=16",
             'model.layers=[{type="jordan", units=16, state_decay=0.3}]', "train.epochs=1",
             "train.learning_rate=0.01", 'corpus.name="knb_blog_jordan_test"']
    result = cli_here("run", "configs/jordan.toml", *folders(tmp_path), *[item for s in small for item in ("--set", s)])
    assert_success(result)
    test_perplexity = float(re.search(r"^perplexity train \S+ +validation \S+ +test (\S+)", result.stdout,
                                      re.MULTILINE).group(1))
    vocabulary = json.loads((tmp_path / "models" / "jordan" / "vocab.json").read_text(encoding="utf-8"))["tokens"]
    assert 1.0 < test_perplexity < len(vocabulary), result.stdout  # better than guessing uniformly
    assert "Kneser-Ney" in result.stdout
    samples = result.stdout.split("samples:")[1].split()
    assert len(samples) == 6
    assert all(sample.startswith(("京都の", "今日は", "新しいスマホ")) for sample in samples)
