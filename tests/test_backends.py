"""Our layers and a classifier on the other Keras backends: train, save, reload under ``KERAS_BACKEND=jax``.

Keras fixes its backend when first imported, so each check runs in a fresh process with
``KERAS_BACKEND`` set. The jax check needs ``jax[cpu]`` (in the ``dev`` extra, so CI runs it);
it is skipped, saying so, when jax is not installed.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from helpers import REPOSITORY, TEST_CONFIGS, explain

# Runs in the child process: a classifier over every recurrent kind of ours plus a Keras GRU, attention
# pooling on top; two epochs on random ids, saved as .keras, reloaded with safe_mode: same outputs.
LAYERS_SCRIPT = r"""
import json, sys, tempfile
import keras, numpy as np
from pipeline.classifier.model import build_classifier
from pipeline.runs import register_custom_objects
from pipeline.sections import ModelConfig
from pipeline.text.batches import SequenceBatches
from pipeline.training import make_deterministic, make_optimizer
from pipeline.sections import TrainConfig

make_deterministic(7)
rng = np.random.default_rng(7)
matrix = rng.normal(0, 0.5, (30, 8)).astype("float32")
kinds = [{"type": "elman", "units": 6}, {"type": "esn", "units": 12}, {"type": "jordan", "units": 6},
         {"type": "deep_transition", "units": 6}, {"type": "gru", "units": 6}]
settings = ModelConfig(layers=tuple(kinds), pooling="attention", attention_units=4)
model = build_classifier(settings, matrix, 3, seed=7)
model.compile(optimizer=make_optimizer(TrainConfig(learning_rate=0.01)), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
sequences = [rng.integers(1, 30, size=rng.integers(2, 9)) for _ in range(48)]
targets = np.array([int(s[0]) % 3 for s in sequences])
batches = SequenceBatches(sequences, targets, 16, 10, np.random.default_rng(1))
history = model.fit(batches, epochs=2, verbose=0).history
path = tempfile.mkdtemp() + "/model.keras"
model.save(path)
register_custom_objects()
reloaded = keras.saving.load_model(path, compile=False, safe_mode=True)
fixed = SequenceBatches(sequences, targets, 16, 10)
before, after = fixed.predict(model), fixed.predict(reloaded)
print(json.dumps({"backend": keras.backend.backend(), "loss": history["loss"],
                  "layers": sorted({type(layer).__name__ for layer in model.layers}),
                  "max_difference": float(np.abs(before - after).max())}))
"""

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                               reason="jax is not installed (pip install -e '.[dev]' or '.[jax]')")


def in_backend(backend: str, *command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, "KERAS_BACKEND": backend})


@needs_jax
def test_our_layers_train_save_and_reload_on_jax():
    result = in_backend("jax", sys.executable, "-c", LAYERS_SCRIPT)
    assert result.returncode == 0, explain(result)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    assert {"Elman", "Reservoir", "AttentionPooling", "GRU"} <= set(report["layers"]), report["layers"]
    assert all(loss == loss for loss in report["loss"]) and len(report["loss"]) == 2  # finite, two epochs
    assert report["max_difference"] < 1e-5


@needs_jax
@pytest.mark.slow
def test_pipeline_train_and_classify_on_jax(small_work_dir, tmp_path):
    """The real `pipeline train` and `pipeline classify` with KERAS_BACKEND=jax on the small config."""
    options = ["--config", str(TEST_CONFIGS / "small.toml"),
               "--set", f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"', "--set", f'work_dir="{small_work_dir}"',
               "--set", f'models_dir="{tmp_path / "models"}"', "--set", "train.epochs=1", "--set", 'run_name="jax"']
    trained = in_backend("jax", sys.executable, "-m", "pipeline", "train", *options)
    assert trained.returncode == 0, explain(trained)
    assert "Traceback" not in trained.stderr, explain(trained)
    classified = in_backend("jax", sys.executable, "-m", "pipeline", "classify", "--model",
                            str(tmp_path / "models" / "jax"), "京都の紅葉がきれいでした。")
    assert classified.returncode == 0, explain(classified)
    label, probability, text = classified.stdout.strip().split("\t")
    assert text == "京都の紅葉がきれいでした。" and 0 < float(probability) <= 1
