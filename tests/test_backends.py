"""Our layers and models on the other Keras backends: JAX against TensorFlow's numbers, train, save, reload.

Keras fixes its backend when first imported, so the JAX side runs in one fresh process with
``KERAS_BACKEND=jax`` that runs the real `pipeline train` and `pipeline classify`, then computes every check
of ``tests/backend_checks.py`` at once (a JAX process start costs seconds); this TensorFlow process
computes the deterministic checks too, and the tests compare them. Covered: the adaptive softmax (on JAX its
every-row path, which no TensorFlow test runs), the weight-dropped LSTM, the AWD-LSTM regularisers, the
character encoder, the spiking liquid, a language model (build, distribution, SGD steps), a classifier over our
recurrent kinds (train, save, reload) and the pipeline's commands. The jax checks need ``jax[cpu]`` (in the
``dev`` extra, so CI runs them); they are skipped, saying so, when jax is not installed.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import backend_checks
import keras
import numpy as np
import pytest
from helpers import REPOSITORY, RUN_EACH, TEST_CONFIGS, explain

SENTENCE = "京都の紅葉がきれいでした。"
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}  # float32 results of two backends' kernels

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                               reason="jax is not installed (pip install -e '.[dev]' or '.[jax]')")


def in_backend(backend: str, *command: str, timeout: float = 300, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, "KERAS_BACKEND": backend, **environment})


def array(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


# One JAX process: `pipeline train` and `pipeline classify` (RUN_EACH's commands, argv[1]; first, as in a user's
# process: JAX's cache of compiled programs is set before JAX compiles anything), then every check
JAX_SESSION = (RUN_EACH + "sys.stdout.flush(); sys.path[:0] = ['.', 'tests']; import backend_checks\n"
               "print(json.dumps(backend_checks.results()))\n")  # every check


@pytest.fixture(scope="module")
def jax_session(small_work_dir, tmp_path_factory) -> tuple[dict, subprocess.CompletedProcess, Path]:
    """(every check of tests/backend_checks.py, the process, its cache folder) of one fresh process under
    KERAS_BACKEND=jax that trains the small config with ``train.backend = "jax"``, classifies a sentence with
    the run it wrote, then computes the checks (a JAX process start costs seconds, so one for all)."""
    root = tmp_path_factory.mktemp("jax")
    options = ["--config", str(TEST_CONFIGS / "small.toml"),
               "--set", f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"', "--set", f'work_dir="{small_work_dir}"',
               "--set", f'models_dir="{root / "models"}"', "--set", "train.epochs=1", "--set", 'run_name="jax"',
               "--set", 'train.backend="jax"']
    commands = [["train", *options], ["classify", "--model", str(root / "models" / "jax"), SENTENCE]]
    result = in_backend("jax", sys.executable, "-c", JAX_SESSION, json.dumps(commands, ensure_ascii=False),
                        XDG_CACHE_HOME=str(root / "cache"))
    assert result.returncode == 0, explain(result)
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith('{"backend"')))
    assert report["backend"] == "jax"
    return report, result, root / "cache"


@pytest.fixture(scope="module")
def jax_report(jax_session) -> dict:
    """Every check of tests/backend_checks.py, computed under KERAS_BACKEND=jax."""
    return jax_session[0]


@pytest.fixture(scope="module")
def tensorflow_report() -> dict:
    """The deterministic checks, computed in this process on TensorFlow."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"the reference numbers come from the tensorflow backend; this process runs "
                    f"{keras.backend.backend()!r}")
    return backend_checks.results(backend_checks.DETERMINISTIC)


@needs_jax
def test_our_layers_train_save_and_reload_on_jax(jax_report):
    report = jax_report["classifier"]
    assert {"Elman", "Reservoir", "AttentionPooling", "GRU"} <= set(report["layers"]), report["layers"]
    losses = array(report["loss"])
    assert losses.shape == (2,) and np.isfinite(losses).all()  # two epochs, finite losses
    assert report["max_difference"] < 1e-5


@needs_jax
def test_adaptive_softmax_on_jax_picks_the_targets_of_its_distribution_as_tensorflow_does(jax_report,
                                                                                         tensorflow_report):
    ours, theirs = jax_report["adaptive_softmax"], tensorflow_report["adaptive_softmax"]
    log_probabilities, targets = array(ours["log_probabilities"]), np.array(ours["targets"])
    assert log_probabilities.shape == (3, 7, 50) and np.isfinite(log_probabilities).all()
    np.testing.assert_allclose(np.exp(log_probabilities).sum(axis=-1), 1.0, atol=1e-5)
    # the every-row path: log p(target) is the target's entry of the whole distribution, eager and compiled
    picked = np.take_along_axis(log_probabilities, targets[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(array(ours["target_log_probabilities"]), picked, **TOLERANCE)
    np.testing.assert_allclose(array(ours["compiled_target_log_probabilities"]), picked, **TOLERANCE)
    for key in ("log_probabilities", "target_log_probabilities", "compiled_target_log_probabilities"):
        np.testing.assert_allclose(array(ours[key]), array(theirs[key]), **TOLERANCE)  # TF gathers rows instead


@needs_jax
def test_weight_dropped_lstm_on_jax_is_keras_lstm_at_inference_and_applies_its_mask_as_on_tensorflow(
        jax_report, tensorflow_report):
    ours, theirs = jax_report["weight_drop"], tensorflow_report["weight_drop"]
    np.testing.assert_allclose(array(ours["inference"]), array(ours["keras_lstm"]), atol=1e-6)
    for key in ("inference", "given_mask"):
        np.testing.assert_allclose(array(ours[key]), array(theirs[key]), **TOLERANCE)
    assert not np.allclose(array(ours["given_mask"]), array(ours["inference"]), atol=1e-3)  # the mask acts
    drawn = array(ours["drawn"])
    assert np.isfinite(drawn).all() and not np.allclose(drawn, array(ours["inference"]), atol=1e-3)
    masks = array(ours["sampled_masks"])  # (2, units, 4 units): zeros and 1 / (1 - rate)
    assert (np.isclose(masks, 0.0) | np.isclose(masks, 1 / (1 - ours["rate"]))).all()
    assert 0 < np.isclose(masks, 0.0).mean() < 1 and not np.array_equal(masks[0], masks[1])  # a new mask per draw


@needs_jax
def test_awd_regularisers_on_jax_draw_their_masks_per_sequence_and_word_and_penalise_as_on_tensorflow(
        jax_report, tensorflow_report):
    ours, theirs = jax_report["regularization"], tensorflow_report["regularization"]
    locked = array(ours["locked_training"])  # dropout of ones (3, 6, 4) at rate 0.5
    assert np.array_equal(locked, np.broadcast_to(locked[:, :1], locked.shape))  # one mask over time
    assert set(np.unique(locked)) == {0.0, 2.0}
    assert not np.array_equal(locked[0, 0], locked[1, 0]) or not np.array_equal(locked[1, 0], locked[2, 0])
    assert np.array_equal(array(ours["locked_inference"]), np.ones((3, 6, 4)))
    embedded, token_ids = array(ours["embedding_training"]), np.array(ours["token_ids"])
    for word in np.unique(token_ids):  # every occurrence of a word type, every feature: one factor
        assert len(np.unique(embedded[token_ids == word])) == 1
    assert set(np.unique(embedded)) <= {0.0, 2.0} and np.array_equal(array(ours["embedding_inference"]),
                                                                     np.ones((2, 7, 3)))
    np.testing.assert_allclose(array(ours["penalties"]), array(theirs["penalties"]), rtol=1e-6)
    assert np.isfinite(array(ours["penalties"])).all() and (array(ours["penalties"]) > 0).all()
    np.testing.assert_allclose(array(ours["added_losses"]), array(ours["penalties"]), rtol=1e-6)  # add_loss


@needs_jax
@pytest.mark.parametrize("mode", ["cnn", "bilstm"])
def test_character_encoder_on_jax_matches_tensorflow(jax_report, tensorflow_report, mode):
    ours, theirs = jax_report["char_encoder"][mode], tensorflow_report["char_encoder"][mode]
    vectors = array(ours["vectors"])
    assert vectors.shape == (2, 4, 8) and np.isfinite(vectors).all()
    np.testing.assert_allclose(vectors, array(theirs["vectors"]), **TOLERANCE)
    np.testing.assert_allclose(array(ours["compiled"]), vectors, **TOLERANCE)
    assert ours["mask"] == theirs["mask"] == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert not vectors[1, 3].any()  # the padding token


@needs_jax
def test_spiking_liquid_on_jax_fires_the_same_spikes_as_on_tensorflow(jax_report, tensorflow_report):
    ours, theirs = jax_report["lsm"], tensorflow_report["lsm"]
    spikes, traces = array(ours["spikes"]), array(ours["traces"])
    assert set(np.unique(spikes)) == {0.0, 1.0}  # it fires, in whole spikes
    np.testing.assert_array_equal(spikes, array(theirs["spikes"]))
    assert np.isfinite(traces).all()
    np.testing.assert_allclose(traces, array(theirs["traces"]), **TOLERANCE)


@needs_jax
def test_language_model_builds_and_trains_on_jax_as_on_tensorflow(jax_report, tensorflow_report):
    ours, theirs = jax_report["generator"]["deterministic"], tensorflow_report["generator"]["deterministic"]
    probabilities = array(ours["probabilities"])
    assert probabilities.shape == (4, 7, 30) and np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities, array(theirs["probabilities"]), **TOLERANCE)
    losses = array(ours["losses"])  # target NLL through the adaptive softmax + AR + TAR, one SGD step
    assert np.isfinite(losses).all()
    np.testing.assert_allclose(losses, array(theirs["losses"]), **TOLERANCE)
    moved = 0
    for after, reference, before in zip(ours["weights"], theirs["weights"], ours["initial_weights"], strict=True):
        assert np.isfinite(array(after)).all()
        np.testing.assert_allclose(array(after), array(reference), **TOLERANCE)
        moved += not np.allclose(array(after), array(before))
    assert moved >= len(ours["weights"]) - 2  # the step reached (nearly) every weight
    regularised = jax_report["generator"]["regularised"]  # every AWD regulariser on: random masks
    assert np.isfinite(array(regularised["losses"])).all() and len(regularised["losses"]) == 2
    assert all(np.isfinite(array(weights)).all() for weights in regularised["weights"])
    np.testing.assert_allclose(array(regularised["probabilities"]),  # inference: no dropout
                               array(tensorflow_report["generator"]["regularised"]["probabilities"]), **TOLERANCE)


@needs_jax
@pytest.mark.parametrize("case", list(backend_checks.ADVERSARIAL_CASES))
def test_adversarial_training_on_jax_takes_the_step_of_the_math(jax_report, case):
    """pipeline.adversarial hooks JAX's stateless loss: one SGD step against NumPy's (tests/test_adversarial.py
    checks TensorFlow's train step the same way)."""
    ours = jax_report["adversarial"]
    loss, weights = backend_checks.adversarial_reference(ours, case)
    assert ours[case]["loss"] == pytest.approx(loss, rel=1e-5)  # the logs show the clean loss
    for after, reference in zip(ours[case]["after"], weights, strict=True):
        np.testing.assert_allclose(array(after), reference, rtol=1e-4, atol=1e-5)


@needs_jax
@pytest.mark.slow
def test_pipeline_train_and_classify_on_jax(jax_session):
    """The real `pipeline train`, then `pipeline classify` of the run it wrote, with KERAS_BACKEND=jax on the small
    config with ``train.backend = "jax"``, each through ``main`` in the JAX process of the checks, training in that
    process (no child: pipeline.backend_process); each must return 0."""
    _, result, cache = jax_session
    assert "Traceback" not in result.stderr, explain(result)
    assert "in a child process" not in result.stderr, explain(result)
    label, probability, text = next(line for line in result.stdout.splitlines() if "\t" in line).split("\t")
    assert text == SENTENCE and 0 < float(probability) <= 1
    # the command line keeps JAX's compiled steps for the next process (pipeline.paths.keep_jax_programs)
    assert any((cache / "pipeline" / "jax").iterdir())
