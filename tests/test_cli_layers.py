"""The real command line with our layers: an ESN classifier, ``pipeline forecast`` and ``pipeline diagnose``.

Every command runs through the CLI's ``main`` (helpers.cli_here) from the repository root, with
``work_dir`` and ``models_dir`` in pytest's temporary folder (the reservoir's reload in a fresh process is
tests/layers/test_reload.py's). The ESN classifier
(tests/configs/esn_small.toml) is trained once per module by ``pipeline run``; the tests then
check that the reservoir kept the weights it was built with (no backpropagation), that the
readout is the ridge solution recomputed here in NumPy from the reservoir states, and that
``pipeline classify`` predicts what the Python API computes.
User errors must be one ``error:`` line on stderr, exit status 2, no traceback.
"""

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPOSITORY, assert_success, assert_user_error, cli_here, folders

from pipeline import config as config_module
from pipeline import seeds
from pipeline.classifier.model import build_classifier
from pipeline.classifier.predict import classify, encode_texts
from pipeline.paths import Paths, RunPaths
from pipeline.runs import load_run
from pipeline.text.vectors import EncodedSplits

ESN_CONFIG = "tests/configs/esn_small.toml"
FORECAST_CONFIG = "configs/esn_mackey_glass.toml"
DIAGNOSE_CONFIG = "configs/diagnose_gradients.toml"
SENTENCES = ["新しいスマホのバッテリーがすぐ切れて困っています。", "昨日の試合は延長戦の末にサヨナラ勝ちでした！",
             "駅前のラーメン屋のスープが絶品だった。"]
EXAMPLE = "週末は嵐山で紅葉を見ました。"  # [classify] examples of esn_small.toml
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def models_dir(root: Path) -> list[str]:
    return ["--set", f'models_dir="{root}"']


# ------------------------------------------------------------------ ESN classifier, `pipeline run`
@pytest.fixture(scope="module")
def esn_run(tmp_path_factory) -> dict:
    """``pipeline run tests/configs/esn_small.toml`` once: prepare ... evaluate, then the [classify] example."""
    root = tmp_path_factory.mktemp("esn-cli")
    result = cli_here("run", ESN_CONFIG, *folders(root))
    assert_success(result)
    config = config_module.load(REPOSITORY / ESN_CONFIG, [f'work_dir="{root / "work"}"',
                                                         f'models_dir="{root / "models"}"'])
    return {"result": result, "config": config, "paths": Paths.from_config(config)}


def reservoir_states(run, sequences: list[np.ndarray]) -> np.ndarray:
    """Mean reservoir state per sentence, ``(sentences, units)``, by the update equation in NumPy (float64).

    x̃(n) = tanh(u(n) W_inᵀ + b + x(n-1) Wᵀ), x(n) = (1 - α) x(n-1) + α x̃(n), from x(0) = 0; u(n) is the
    embedding of token n; sentences are cut to train.max_length tokens as the batches do.
    """
    model = run.model
    embeddings = np.asarray(model.get_layer("embedding").get_weights()[0], np.float64)
    cell = model.get_layer("recurrent_0").cell
    input_kernel, bias, recurrent_kernel = (np.asarray(w, np.float64) for w in
                                            (cell.input_kernel, cell.bias, cell.recurrent_kernel))
    max_length = run.config.train.max_length
    cut = [sequence[:max_length] for sequence in sequences]
    longest = max(len(sequence) for sequence in cut)
    ids = np.zeros((len(cut), longest), dtype=np.int64)
    for row, sequence in enumerate(cut):
        ids[row, :len(sequence)] = sequence
    mask = ids != 0
    state = np.zeros((len(cut), cell.units))
    total = np.zeros_like(state)
    for step in range(longest):
        candidate = np.tanh(embeddings[ids[:, step]] @ input_kernel + bias + state @ recurrent_kernel)
        updated = (1.0 - cell.leak_rate) * state + cell.leak_rate * candidate
        state = np.where(mask[:, step, None], updated, state)
        total += np.where(mask[:, step, None], state, 0.0)
    return total / np.maximum(mask.sum(axis=1), 1)[:, None]


@pytest.mark.slow
def test_esn_run_prints_metrics_and_the_example(esn_run):
    stdout = esn_run["result"].stdout
    assert "test accuracy" in stdout and "majority baseline" in stdout
    assert re.search(rf"^\w+\t[01]\.\d{{3}}\t{EXAMPLE}$", stdout, re.MULTILINE), stdout
    run = RunPaths(esn_run["paths"].run)
    for path in (run.model, run.config, run.vocab, run.labels, run.history, run.metrics):
        assert path.is_file(), path


@pytest.mark.slow
def test_esn_reservoir_weights_are_those_of_a_fresh_build(esn_run):
    """No backpropagation: the reservoir (and the frozen embedding) keep the weights drawn at build time."""
    config, paths = esn_run["config"], esn_run["paths"]
    run = load_run(paths.run)
    fresh = build_classifier(config.model, np.load(paths.embeddings), len(run.labels),
                             seeds.child_seed(config.seed, "model"))
    saved_reservoir = run.model.get_layer("recurrent_0")
    fresh_reservoir = fresh.get_layer("recurrent_0")
    assert [w.path.split("/")[-1] for w in saved_reservoir.weights] == ["input_kernel", "bias", "recurrent_kernel"]
    assert saved_reservoir.trainable_weights == []
    for saved, built in zip(saved_reservoir.get_weights(), fresh_reservoir.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, built)
    np.testing.assert_array_equal(run.model.get_layer("embedding").get_weights()[0],
                                  fresh.get_layer("embedding").get_weights()[0])
    # the readout did change: it is fitted, not left at its initial values
    assert not np.allclose(run.model.get_layer("readout").get_weights()[0],
                           fresh.get_layer("readout").get_weights()[0])
    history = pd.read_csv(RunPaths(paths.run).history)
    assert list(history["epoch"]) == [0]  # no gradient epochs


@pytest.mark.slow
def test_esn_readout_is_the_ridge_solution_of_the_training_states(esn_run):
    """W = argmin ||[1 X] W - Y||² + β ||W without its bias row||², recomputed here from NumPy states."""
    config, paths = esn_run["config"], esn_run["paths"]
    run = load_run(paths.run)
    splits = EncodedSplits.load(paths.ids)
    pooled = reservoir_states(run, splits.sequences["train"])
    # the model's own features agree with the NumPy reservoir
    import keras

    feature_model = keras.Model(run.model.inputs, run.model.get_layer("readout").input)
    first = splits.sequences["train"][:5]
    padded = np.zeros((5, max(len(s) for s in first)), dtype=np.int32)
    for row, sequence in enumerate(first):
        padded[row, :len(sequence)] = sequence
    np.testing.assert_allclose(feature_model.predict(padded, verbose=0), pooled[:5], rtol=0, atol=1e-5)

    targets = np.eye(len(run.labels))[splits.targets["train"]]
    design = np.column_stack([np.ones(len(pooled)), pooled])
    penalty = config.model.ridge * np.diag([0.0] + [1.0] * pooled.shape[1])  # bias not regularised
    solution = np.linalg.solve(design.T @ design + penalty, design.T @ targets)
    kernel, bias = run.model.get_layer("readout").get_weights()
    assert kernel.shape == (pooled.shape[1], len(run.labels))
    np.testing.assert_allclose(kernel, solution[1:], rtol=0, atol=1e-4)
    np.testing.assert_allclose(bias, solution[0], rtol=0, atol=1e-4)


@pytest.mark.slow
def test_esn_beats_the_majority_baseline(esn_run):
    metrics = json.loads(RunPaths(esn_run["paths"].run).metrics.read_text(encoding="utf-8"))
    majority = metrics["baselines"]["majority"]["accuracy"]
    assert metrics["test_size"] > 100
    assert metrics["accuracy"] > majority + 0.1, (metrics["accuracy"], majority)


@pytest.mark.slow
def test_esn_classify_matches_the_python_api(esn_run, tmp_path):
    run_folder = esn_run["paths"].run
    run = load_run(run_folder)
    expected_file = tmp_path / "expected.json"
    expected_file.write_text(json.dumps(classify(run, [*SENTENCES, EXAMPLE]), ensure_ascii=False), encoding="utf-8")

    result = cli_here("classify", "--model", str(run_folder), "--json", *SENTENCES, EXAMPLE)
    assert_success(result)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    assert [line["line"] for line in lines] == [1, 2, 3, 4]
    for got, want in zip(lines, expected, strict=True):
        assert got["text"] == want["text"] and got["label"] == want["label"]
        assert list(got["probabilities"]) == run.labels
        np.testing.assert_allclose(list(got["probabilities"].values()), list(want["probabilities"].values()),
                                   rtol=0, atol=1e-6)
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-6)

    # both equal the NumPy forward pass: mean reservoir state -> readout -> softmax
    sequences, errors = encode_texts(run, [*SENTENCES, EXAMPLE])
    assert errors == [None] * 4
    kernel, bias = (np.asarray(w, np.float64) for w in run.model.get_layer("readout").get_weights())
    logits = reservoir_states(run, sequences) @ kernel + bias
    reference = np.exp(logits - logits.max(axis=1, keepdims=True))
    reference /= reference.sum(axis=1, keepdims=True)
    got = np.array([list(line["probabilities"].values()) for line in lines])
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)

    # and the process that trained and saved the run printed the same label for the example
    label, probability = re.search(rf"^(\w+)\t([01]\.\d{{3}})\t{EXAMPLE}$", esn_run["result"].stdout,
                                   re.MULTILINE).groups()
    assert lines[-1]["label"] == label and f"{lines[-1]['probability']:.3f}" == probability


@pytest.mark.slow
def test_bad_elman_activation_fails_before_prepare(tmp_path):
    layers = 'model.layers=[{type="elman", units=4, activation="softmaxx"}]'
    result = cli_here("run", ESN_CONFIG, *folders(tmp_path), "--set", layers, "--set", 'model.readout="softmax"')
    assert_user_error(result, "model.layers[0].activation", "softmaxx")
    assert not (tmp_path / "work").exists(), "prepare ran before the layer table was checked"
    assert not (tmp_path / "models").exists()


# ------------------------------------------------------------------ pipeline forecast
@pytest.mark.slow
def test_forecast_mackey_glass(tmp_path):
    result = cli_here("forecast", "--config", FORECAST_CONFIG, "--set", "forecast.units=200",
                      "--set", "forecast.n_steps=2600", "--set", "forecast.train_length=2000",
                      "--set", "forecast.test_length=300", "--set", "forecast.generative_steps=300",
                      *models_dir(tmp_path))
    assert_success(result)
    printed = dict(re.findall(r"^(\w+_nrmse): (\S+)$", result.stdout, re.MULTILINE))
    assert set(printed) == {"train_nrmse", "one_step_nrmse", "generative_nrmse"}, result.stdout
    assert float(printed["one_step_nrmse"]) < 0.05
    run = tmp_path / "esn_mackey_glass"
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    for key, value in printed.items():
        assert metrics[key] == pytest.approx(float(value), rel=1e-5)
    assert metrics["config"]["units"] == 200 and metrics["config"]["train_length"] == 2000
    assert (run / "forecast.png").read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(path.name for path in tmp_path.iterdir()) == ["esn_mackey_glass"]  # no temporary leftovers


def write_sine_csv(path: Path, length: int = 700) -> Path:
    time_steps = np.arange(length)
    frame = pd.DataFrame({"time": time_steps, "signal": np.sin(2 * np.pi * time_steps / 25.0)})
    frame.to_csv(path, index=False, float_format="%.10f")
    return path


def csv_forecast(csv_path: Path, column: str, models: Path, *overrides: str) -> subprocess.CompletedProcess:
    settings = ['forecast.series="csv"', f'forecast.csv_path="{csv_path}"', f'forecast.column="{column}"',
                "forecast.units=50", "forecast.spectral_radius=0.9", "forecast.washout=50",
                "forecast.train_length=400", "forecast.test_length=100", "forecast.generative_steps=100",
                *overrides]
    arguments = [item for setting in settings for item in ("--set", setting)]
    return cli_here("forecast", "--config", FORECAST_CONFIG, *arguments, *models_dir(models))


@pytest.mark.slow
def test_forecast_a_csv_column(tmp_path):
    result = csv_forecast(write_sine_csv(tmp_path / "sine.csv"), "signal", tmp_path / "models")
    assert_success(result)
    one_step = float(re.search(r"^one_step_nrmse: (\S+)$", result.stdout, re.MULTILINE).group(1))
    assert one_step < 0.05
    run = tmp_path / "models" / "esn_mackey_glass"
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["config"]["series"] == "csv" and metrics["config"]["column"] == "signal"
    assert metrics["one_step_nrmse"] == pytest.approx(one_step, rel=1e-5)
    assert (run / "forecast.png").read_bytes()[:8] == PNG_SIGNATURE


def test_forecast_missing_csv_file(tmp_path):
    missing = tmp_path / "nowhere.csv"
    assert_user_error(csv_forecast(missing, "signal", tmp_path / "models"), str(missing))
    assert not (tmp_path / "models").exists()


def test_forecast_missing_csv_file_names_the_config_key(tmp_path):
    """The hint must name the key that sets the path, ``forecast.csv_path``, not a key that does not exist."""
    error = assert_user_error(csv_forecast(tmp_path / "nowhere.csv", "signal", tmp_path / "models"))
    assert "forecast.csv_path" in error, error


def test_forecast_missing_csv_column(tmp_path):
    csv_path = write_sine_csv(tmp_path / "sine.csv")
    assert_user_error(csv_forecast(csv_path, "signl", tmp_path / "models"), str(csv_path), "'signl'", "signal")
    assert not (tmp_path / "models").exists()


def test_forecast_non_numeric_csv_value(tmp_path):
    csv_path = write_sine_csv(tmp_path / "sine.csv")
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    lines[41] = "41,n/a"  # file line 42 (the header is line 1)
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_user_error(csv_forecast(csv_path, "signal", tmp_path / "models"), f"{csv_path}:42", "'n/a'", "'signal'")
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("setting, key", [
    ("forecast.leak_rate=0", "forecast.leak_rate"),
    ("forecast.leak_rate=1.5", "forecast.leak_rate"),
    ("forecast.washout=2000", "forecast.washout"),
    ("forecast.washout=2500", "forecast.washout"),
], ids=["leak_rate-0", "leak_rate-1.5", "washout-eq-train_length", "washout-gt-train_length"])
def test_forecast_invalid_settings(tmp_path, setting, key):
    result = cli_here("forecast", "--config", FORECAST_CONFIG, "--set", setting, *models_dir(tmp_path / "models"))
    assert_user_error(result, f"'{key}'", setting.split("=")[1])
    assert not (tmp_path / "models").exists()


# ------------------------------------------------------------------ pipeline diagnose gradients
@pytest.mark.slow
def test_diagnose_gradients_shows_vanishing_gradients(tmp_path):
    result = cli_here("diagnose", "gradients", "--config", DIAGNOSE_CONFIG, "--set", "diagnose.timesteps=40",
                      "--set", "diagnose.train_steps=0", *models_dir(tmp_path))
    assert_success(result)
    run = tmp_path / "diagnose_gradients"
    assert (run / "gradient_norms.png").read_bytes()[:8] == PNG_SIGNATURE
    table = pd.read_csv(run / "gradient_norms.csv")
    assert set(table["architecture"]) == {"elman", "simple_rnn", "lstm", "gru"}
    assert set(table["phase"]) == {"initial"}  # train_steps = 0
    assert sorted(set(table["distance_from_loss"])) == list(range(40))
    assert np.isfinite(table["grad_norm"]).all() and (table["grad_norm"] >= 0).all()

    def ratio(architecture: str) -> float:
        rows = table[table["architecture"] == architecture].set_index("distance_from_loss")["grad_norm"]
        return rows[39] / rows[0]

    assert ratio("simple_rnn") < 1e-3
    assert ratio("lstm") > ratio("simple_rnn")
    for distance in ("0", "39"):
        assert re.search(rf"\b{distance}\b", result.stdout.splitlines()[1]), result.stdout  # printed table header


def test_diagnose_unknown_architecture(tmp_path):
    result = cli_here("diagnose", "gradients", "--config", DIAGNOSE_CONFIG,
                      "--set", 'diagnose.architectures=["lstm", "transformer"]', "--set", "diagnose.timesteps=5",
                      "--set", "diagnose.train_steps=0", *models_dir(tmp_path / "models"))
    assert_user_error(result, "'transformer'", "lstm")
    assert not (tmp_path / "models").exists()
