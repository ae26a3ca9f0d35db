"""pipeline.adversarial: the perturbation's geometry, one training step on TensorFlow against NumPy's (the same
step on JAX: tests/test_backends.py), and virtual adversarial training over unlabelled text through the CLI."""

import json

import backend_checks
import keras
import numpy as np
import pandas as pd
import pytest
from helpers import TEST_CONFIGS, assert_success, cli_here

from pipeline.adversarial import perturbation


def test_each_row_moves_by_epsilon_times_its_length_along_its_gradient():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(6, 4)).astype("float32")
    gradient = rng.normal(size=(6, 4)).astype("float32")
    gradient[[1, 4]] = 0.0  # words outside the batch
    r = keras.ops.convert_to_numpy(perturbation(matrix, gradient, 0.05))
    lengths = np.linalg.norm(r, axis=1)
    np.testing.assert_allclose(lengths[[0, 2, 3, 5]], 0.05 * np.linalg.norm(matrix, axis=1)[[0, 2, 3, 5]], rtol=1e-5)
    np.testing.assert_array_equal(r[[1, 4]], 0.0)
    cosine = (r * gradient).sum(axis=1)[[0, 2, 3, 5]] / (lengths[[0, 2, 3, 5]]
                                                          * np.linalg.norm(gradient, axis=1)[[0, 2, 3, 5]])
    np.testing.assert_allclose(cosine, 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def report() -> dict:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow step; tests/test_backends.py checks JAX's")
    return backend_checks.adversarial()


@pytest.mark.parametrize("case", list(backend_checks.ADVERSARIAL_CASES))
def test_a_step_on_tensorflow_follows_the_gradient_of_the_clean_plus_the_adversarial_loss(report, case):
    loss, weights = backend_checks.adversarial_reference(report, case)
    assert report[case]["loss"] == pytest.approx(loss, rel=1e-5)  # the logs show the clean loss
    for ours, reference in zip(report[case]["after"], weights, strict=True):
        np.testing.assert_allclose(np.asarray(ours), reference, rtol=1e-4, atol=1e-5)
    assert not np.allclose(report[case]["after"][1], report[case]["initial"][1])  # the step moved the kernel
    if case == "unlabelled":  # no supervised loss: virtual adversarial training alone moved it
        assert report[case]["loss"] == 0.0


def test_the_perturbation_raises_the_loss_more_than_random_moves_of_the_same_lengths():
    """First-order worst case: moving the batch's words along their gradients costs more than any of 50 random
    directions of the same per-row lengths."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    ids = rng.integers(1, 30, size=(8, 7))
    labels = rng.integers(0, 4, size=8)
    matrix = tf.Variable(rng.normal(size=(30, 6)).astype("float32"))
    kernel = tf.constant(rng.normal(size=(6, 4)).astype("float32"))

    def loss(vectors):
        logits = tf.reduce_mean(tf.gather(vectors, ids), axis=1) @ kernel
        return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)))

    with tf.GradientTape() as tape:
        logits = tf.reduce_mean(tf.gather(matrix, ids), axis=1) @ kernel
        clean = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    gradient = tf.convert_to_tensor(tape.gradient(clean, matrix))
    r = perturbation(matrix, gradient, 0.05).numpy()
    adversarial = loss(matrix + r)
    assert adversarial > float(clean)
    for _ in range(50):
        direction = rng.normal(size=r.shape)
        direction *= (np.linalg.norm(r, axis=1) / np.linalg.norm(direction, axis=1))[:, None]
        assert loss(matrix + direction.astype("float32")) < adversarial


def test_virtual_adversarial_training_reads_the_unlabelled_sentences_through_the_cli(tmp_path):
    """train.virtual_adversarial with corpus.unlabeled_path: the unlabelled sentences join the training batches
    with no weight in the supervised loss (a frozen embedding here: the perturbed matrix need not train)."""
    sentences = [f"{place}{doing}" for place in ("京都", "大阪の店", "近所の公園", "新しいスマホ")
                 for doing in ("で遊んだ。", "が気に入った。", "を見に行った。")]
    unlabelled = tmp_path / "unlabelled.txt"
    unlabelled.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    result = cli_here("run", str(TEST_CONFIGS / "e2e.toml"), "--set", f"work_dir='{tmp_path / 'work'}'",
                      "--set", f"models_dir='{tmp_path / 'models'}'", "--set", "train.epochs=2",
                      "--set", f"corpus.unlabeled_path='{unlabelled}'", "--set", "train.virtual_adversarial=0.1")
    assert_success(result)
    assert f"virtual adversarial training also reads {len(sentences)} unlabeled sentences" in result.stderr
    history = pd.read_csv(tmp_path / "models" / "e2e" / "history.csv")
    assert np.isfinite(history[["loss", "val_loss"]]).all().all() and history["accuracy"].between(0, 1).all()
    config = json.loads((tmp_path / "models" / "e2e" / "config.json").read_text(encoding="utf-8"))
    assert config["train"]["virtual_adversarial"] == 0.1
