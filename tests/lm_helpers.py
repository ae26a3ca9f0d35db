"""Shared by the language-model tests: tiny models with hand-set weights, their NumPy forward pass,
and the small configs the stage tests train (importable as ``lm_helpers``)."""

import warnings

import keras
import numpy as np
import pandas as pd

from pipeline.paths import Paths, RunPaths
from pipeline.sections import ModelConfig
from pipeline.stages import run_stage

BOS, EOS = 2, 3  # ids of <s> and </s> in the hand-made vocabularies below (0 pad, 1 unk)


def model_settings(*layers: dict, **options) -> ModelConfig:
    return ModelConfig(task="generator", layers=tuple(layers) or ({"type": "lstm", "units": 6},), **options)


def random_matrix(rows: int, columns: int, seed: int, scale: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-scale, scale, size=(rows, columns)).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def set_random_weights(model: keras.Model, seed: int, scale: float = 0.5) -> None:
    """Every weight of ``model`` uniform in ±scale (biases included), from one seed."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-scale, scale, size=w.shape).astype(np.float32) for w in model.get_weights()])


def numpy_simple_rnn_generator(model: keras.Model, token_ids: np.ndarray, tied: bool) -> np.ndarray:
    """The forward pass of a one-layer ``simple_rnn`` generator in NumPy (float64).

    ``x_t = E[id_t]``, ``h_t = tanh(x_t W + h_{t-1} U + b)``, then either
    ``softmax(h_t W_out + b_out)`` or, tied, ``softmax((h_t P + p) Eᵀ + b_E)``.
    """
    embedding_weights = model.get_layer("embedding").get_weights()
    matrix = embedding_weights[0].astype(np.float64)
    kernel, recurrent_kernel, bias = (w.astype(np.float64) for w in model.get_layer("recurrent_0").get_weights())
    inputs = matrix[token_ids]
    hidden = np.zeros((token_ids.shape[0], kernel.shape[1]))
    outputs = []
    for step in range(token_ids.shape[1]):
        hidden = np.tanh(inputs[:, step] @ kernel + hidden @ recurrent_kernel + bias)
        outputs.append(hidden)
    states = np.stack(outputs, axis=1)
    if tied:
        if any(layer.name == "projection" for layer in model.layers):
            projection_kernel, projection_bias = model.get_layer("projection").get_weights()
            states = states @ projection_kernel + projection_bias
        return softmax(states @ matrix.T + embedding_weights[1])
    output_kernel, output_bias = model.get_layer("probabilities").get_weights()
    return softmax(states @ output_kernel + output_bias)


def numpy_mean_cross_entropy(probabilities: np.ndarray, targets: np.ndarray, pad_id: int | None = 0) -> float:
    chosen = np.take_along_axis(np.asarray(probabilities, np.float64), targets[..., None], axis=-1)[..., 0]
    mask = np.ones_like(targets, dtype=bool) if pad_id is None else targets != pad_id
    return float(-np.log(chosen[mask]).mean())


def train_recording_warnings(config) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_stage("train", config)
    return [str(warning.message) for warning in caught]


def history_of(config) -> pd.DataFrame:
    return pd.read_csv(RunPaths(Paths.from_config(config).run).history)
