"""Tests of our layers (``elman``, ``esn``) in the model registry (pipeline.models), real Keras and GiNZA.

The registry tests build small classifiers from ``[[model.layers]]`` tables. The training tests
(``@pytest.mark.slow``) use the shipped corpus, prepared, tokenized and vectorized once per module
into pytest's temporary folder (tests/configs/elman_small.toml, elman_generator.toml): a classifier
is trained for one epoch, saved as a run folder, and reloaded with ``pipeline.classifier.predict.load_run`` in
a fresh Python process, which must give the predictions the saving process computed.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import REPOSITORY

from pipeline import config as config_module
from pipeline import seeds
from pipeline.classifier.model import build_classifier
from pipeline.classifier.predict import classify
from pipeline.errors import PipelineError
from pipeline.language_model.generate import Sampling, generate
from pipeline.layers.elman import ACTIVATIONS, Elman
from pipeline.layers.esn import Reservoir
from pipeline.models import RECURRENT_LAYERS, check_layer_spec, check_layers, trainable_parameters
from pipeline.paths import Paths, RunPaths
from pipeline.runs import Run, load_run, write_run_metadata
from pipeline.sections import ModelConfig
from pipeline.stages import run_stage
from pipeline.text.batches import SequenceBatches
from pipeline.text.vectors import EncodedSplits
from pipeline.text.vocab import Vocabulary
from pipeline.training import make_deterministic, make_optimizer

CLASSIFIER_CONFIG = REPOSITORY / "tests" / "configs" / "elman_small.toml"
GENERATOR_CONFIG = REPOSITORY / "tests" / "configs" / "elman_generator.toml"
VOCABULARY, DIMENSION, CLASSES = 20, 8, 3
SENTENCES = ["新しいスマホのバッテリーがすぐ切れて困っています。", "昨日の試合は延長戦の末にサヨナラ勝ちでした！",
             "週末は嵐山で紅葉を見ました。", "駅前のラーメン屋のスープが絶品だった。"]

# Stacks with our Elman layer (softsign) over another recurrent layer, and under one.
STACKS = {
    "elman-over-elman": '[{type="elman", units=8}, {type="elman", units=8, activation="softsign"}]',
    "elman-over-bilstm": '[{type="bilstm", units=4}, {type="elman", units=8, activation="softsign"}]',
    "bilstm-over-elman": '[{type="elman", units=8, activation="softsign"}, {type="bilstm", units=4}]',
}


def embedding_matrix(seed: int = 0) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(0.0, 0.5, size=(VOCABULARY, DIMENSION)).astype(np.float32)
    matrix[0] = 0.0
    return matrix


def classifier(layers, seed: int = 0, **settings) -> keras.Model:
    settings = {"pooling": "mean", **settings}
    return build_classifier(ModelConfig(layers=tuple(layers), **settings), embedding_matrix(), CLASSES, seed)


def token_ids(batch: int = 4, timesteps: int = 7, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, VOCABULARY, size=(batch, timesteps)).astype(np.int32)


def load_config(path: Path, work_dir: Path, models_dir: Path, *overrides: str):
    """A test config with the corpus found from any cwd and artifacts in tmp folders."""
    return config_module.load(path, [f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"',
                                     f'work_dir="{work_dir}"', f'models_dir="{models_dir}"', *overrides])


# --- registry: elman --------------------------------------------------------------------------------


def test_registry_holds_our_layers():
    assert {"elman", "esn"} <= set(RECURRENT_LAYERS)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_elman_activation_option_reaches_the_layer(activation):
    builder, options = check_layer_spec({"type": "elman", "units": 5, "activation": activation}, 0)
    assert builder is RECURRENT_LAYERS["elman"] and options == {"units": 5, "activation": activation}
    model = classifier([{"type": "elman", "units": 5, "activation": activation}])
    layer = model.get_layer("recurrent_0")
    assert isinstance(layer, Elman) and layer.activation == activation and layer.units == 5
    assert model.predict(token_ids(), verbose=0).shape == (4, CLASSES)


def test_elman_stack_gets_return_sequences_right():
    model = classifier([{"type": "elman", "units": 6}, {"type": "elman", "units": 5, "activation": "softsign"}],
                       pooling="last")
    assert model.get_layer("recurrent_0").output.shape == (None, None, 6)
    assert model.get_layer("recurrent_1").output.shape == (None, 5)


def test_elman_activation_of_wrong_type_is_a_pipeline_error():
    with pytest.raises(PipelineError, match=r"'model.layers\[1\].activation' = 3 is invalid: it must be str"):
        check_layer_spec({"type": "elman", "activation": 3}, 1)


INVALID_VALUES = {
    "elman-activation": ({"type": "elman", "units": 4, "activation": "softmaxx"}, "activation", "softmaxx"),
    "esn-leak_rate-0": ({"type": "esn", "units": 20, "leak_rate": 0.0}, "leak_rate", "0.0"),
    "esn-spectral_radius-0": ({"type": "esn", "units": 20, "spectral_radius": 0.0}, "spectral_radius", "0.0"),
}


@pytest.mark.parametrize("spec, option, value", INVALID_VALUES.values(), ids=INVALID_VALUES.keys())
def test_invalid_layer_value_when_building_names_the_config_key(spec, option, value):
    """A user reads the config key ``model.layers[1].<option>``, not Keras' layer name ``recurrent_1``."""
    layers = [{"type": "gru", "units": 4}, spec]
    with pytest.raises(PipelineError) as error:
        classifier(layers)
    message = str(error.value)
    assert "\n" not in message
    assert f"model.layers[1].{option}" in message, message
    assert value in message, message


@pytest.mark.parametrize("spec, option, value", INVALID_VALUES.values(), ids=INVALID_VALUES.keys())
def test_invalid_layer_value_is_caught_by_check_layers(spec, option, value):
    """``check_layers`` runs before ``prepare`` in the CLI: a bad value must not wait for ``train``."""
    settings = ModelConfig(layers=({"type": "gru", "units": 4}, spec))
    with pytest.raises(PipelineError) as error:
        check_layers(settings)
    assert f"model.layers[1].{option}" in str(error.value)


# --- registry: esn ----------------------------------------------------------------------------------


def test_esn_options_build_a_fixed_reservoir():
    spec = {"type": "esn", "units": 30, "leak_rate": 0.5, "spectral_radius": 1, "input_scaling": 0.25}
    builder, options = check_layer_spec(spec, 0)
    assert options["spectral_radius"] == 1.0 and isinstance(options["spectral_radius"], float)  # int accepted
    model = classifier([spec], readout="ridge")
    layer = model.get_layer("recurrent_0")
    assert isinstance(layer, Reservoir)
    assert (layer.cell.units, layer.cell.leak_rate, layer.cell.spectral_radius, layer.cell.input_scaling) == \
        (30, 0.5, 1.0, 0.25)
    assert layer.trainable_weights == []
    # W is rescaled to the configured spectral radius; W_in entries are ±input_scaling
    recurrent = np.asarray(layer.cell.recurrent_kernel, dtype=np.float64)
    assert recurrent.shape == (30, 30)
    np.testing.assert_allclose(np.max(np.abs(np.linalg.eigvals(recurrent))), 1.0, rtol=1e-5)
    input_kernel = np.asarray(layer.cell.input_kernel)
    assert input_kernel.shape == (DIMENSION, 30)
    np.testing.assert_array_equal(np.unique(np.abs(input_kernel[input_kernel != 0])), [0.25])
    # only the readout (and the embedding) are trainable; the readout is a Dense named "readout"
    readout = model.get_layer("readout")
    assert trainable_parameters(model) == VOCABULARY * DIMENSION + 30 * CLASSES + CLASSES
    assert readout.kernel.shape == (30, CLASSES)
    probabilities = model.predict(token_ids(), verbose=0)
    assert probabilities.shape == (4, CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_esn_reservoir_depends_on_the_seed_only():
    spec = {"type": "esn", "units": 25, "leak_rate": 0.3, "spectral_radius": 0.9}
    first, again = (classifier([spec], seed=4).get_layer("recurrent_0").get_weights() for _ in range(2))
    other = classifier([spec], seed=5).get_layer("recurrent_0").get_weights()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])


@pytest.mark.parametrize("spec, message", [
    ({"type": "esn", "leak_rat": 0.3},
     r"unknown config key 'model.layers\[0\].leak_rat' \(did you mean 'leak_rate'\?\)"),
    ({"type": "esn", "spectral_raduis": 1.2},
     r"'model.layers\[0\].spectral_raduis' \(did you mean 'spectral_radius'\?\)"),
    ({"type": "esn", "input_scale": 0.5}, r"did you mean 'input_scaling'\?"),
    ({"type": "esn", "sr": 1.2}, r"'model.layers\[0\].sr' \(valid keys for esn: bias_scaling, connectivity, "
                                 r"input_connectivity, input_scaling, leak_rate, spectral_radius, units\)"),
    ({"type": "esn", "units": "100"}, r"'model.layers\[0\].units' = '100' is invalid: it must be int"),
    ({"type": "esn", "leak_rate": "0.3"}, r"'model.layers\[0\].leak_rate' = '0.3' is invalid: it must be float"),
    ({"type": "esn", "units": 0}, r"'model.layers\[0\].units' = 0 is invalid: it must be >= 1"),
    ({"type": "ens"}, r"'model.layers\[0\].type' = 'ens' is not a layer kind \(did you mean 'esn'\?\)"),
])
def test_bad_esn_specs_are_pipeline_errors(spec, message):
    with pytest.raises(PipelineError, match=message):
        check_layer_spec(spec, 0)


# --- training, saving, reloading in a new process ---------------------------------------------------


@pytest.fixture(scope="module")
def classifier_work_dir(small_work_dir) -> Path:
    """prepare -> tokenize -> vectorize of elman_small.toml (GiNZA): the session's small.toml work folder, whose
    front end it shares (same seed, corpus and vectorize settings: the stages are up to date)."""
    config = load_config(CLASSIFIER_CONFIG, small_work_dir, small_work_dir / "unused-models")
    assert run_stage("vectorize", config)["skipped"]
    return small_work_dir


def fit_and_save(config) -> Run:
    """Build from the registry, fit one epoch on the training split, save a run folder; the Run in memory."""
    make_deterministic(config.seed)
    paths = Paths.from_config(config)
    splits = EncodedSplits.load(paths.ids)
    vocab = Vocabulary.load(paths.vocab)
    model = build_classifier(config.model, np.load(paths.embeddings), len(splits.labels),
                             seeds.child_seed(config.seed, "model"))
    model.compile(optimizer=make_optimizer(config.train), loss="sparse_categorical_crossentropy")
    batches = SequenceBatches(splits.sequences["train"], splits.targets["train"], config.train.batch_size,
                              config.train.max_length, seeds.rng(config.seed, "batches"))
    history = model.fit(batches, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    paths.run.mkdir(parents=True)
    model.save(RunPaths(paths.run).model)
    write_run_metadata(paths.run, config, vocab, splits.labels)
    return Run(paths.run, model, config, vocab, splits.labels)


RELOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    from pipeline.classifier.predict import classify
    from pipeline.runs import load_run
    request = json.loads(sys.stdin.read())
    answer = {folder: classify(load_run(folder), request["texts"]) for folder in request["folders"]}
    print(json.dumps(answer, ensure_ascii=False))
""")


@pytest.fixture(scope="module")
def trained_stacks(classifier_work_dir, tmp_path_factory) -> dict:
    """Each stack of STACKS trained one epoch and saved; predictions in memory and after a reload elsewhere."""
    models_dir = tmp_path_factory.mktemp("elman-models")
    in_memory, folders = {}, {}
    for name, layers in STACKS.items():
        config = load_config(CLASSIFIER_CONFIG, classifier_work_dir, models_dir, f"model.layers={layers}",
                             f'run_name="{name}"')
        run = fit_and_save(config)
        in_memory[name] = classify(run, SENTENCES)
        folders[name] = str(run.folder)
    # A fresh interpreter: nothing registered or cached from this process.
    reloaded = subprocess.run([sys.executable, "-c", RELOAD_SCRIPT], cwd=REPOSITORY, capture_output=True, text=True,
                              encoding="utf-8", timeout=600,
                              input=json.dumps({"texts": SENTENCES, "folders": list(folders.values())}))
    assert reloaded.returncode == 0, reloaded.stderr[-3000:]
    answer = json.loads(reloaded.stdout.strip().splitlines()[-1])
    return {name: (in_memory[name], answer[folders[name]], folders[name]) for name in STACKS}


@pytest.mark.slow
@pytest.mark.parametrize("name", STACKS)
def test_trained_stack_reloads_in_a_new_process_with_the_same_predictions(trained_stacks, name):
    in_memory, reloaded, folder = trained_stacks[name]
    assert len(in_memory) == len(reloaded) == len(SENTENCES)
    for before, after in zip(in_memory, reloaded):
        assert before.get("error") is None and after.get("error") is None, (before, after)
        assert after["label"] == before["label"]
        assert list(after["probabilities"]) == list(before["probabilities"])  # label order kept
        np.testing.assert_allclose(list(after["probabilities"].values()), list(before["probabilities"].values()),
                                   rtol=0, atol=1e-6)
        assert after["unknown_token_share"] == before["unknown_token_share"]
    # the saved model holds our layer with its activation
    model = keras.saving.load_model(RunPaths(Path(folder)).model, compile=False)
    elman_layers = [layer for layer in model.layers if isinstance(layer, Elman)]
    assert [layer.activation for layer in elman_layers] == [
        spec.get("activation", "tanh") for spec in config_module.load(
            CLASSIFIER_CONFIG, [f"model.layers={STACKS[name]}"]).model.layers if spec["type"] == "elman"]


@pytest.mark.slow
def test_train_stage_trains_an_elman_classifier(classifier_work_dir, tmp_path):
    """The real ``train`` stage, with the config's own elman stack."""
    config = load_config(CLASSIFIER_CONFIG, classifier_work_dir, tmp_path / "models")
    result = run_stage("train", config)
    assert result["skipped"] is False and result["epochs"] == 1
    run = load_run(Paths.from_config(config).run)
    assert [type(layer) for layer in run.model.layers if isinstance(layer, Elman)] == [Elman, Elman]
    assert run.model.get_layer("recurrent_1").activation == "softsign"
    history = pd.read_csv(RunPaths(run.folder).history)
    assert len(history) == 1 and np.isfinite(history["loss"]).all()
    assert [result["label"] in run.labels for result in classify(run, SENTENCES[:2])] == [True, True]


@pytest.mark.slow
def test_elman_generator_trains_one_epoch_and_generates(tmp_path):
    config = load_config(GENERATOR_CONFIG, tmp_path / "work", tmp_path / "models")
    result = run_stage("train", config)  # prepare, tokenize, vectorize first
    assert result["skipped"] is False and result["epochs"] == 1
    run = load_run(Paths.from_config(config).run)
    assert run.config.model.task == "generator"
    layer = run.model.get_layer("recurrent_0")
    assert isinstance(layer, Elman) and layer.units == 16 and layer.activation == "tanh"
    history = pd.read_csv(RunPaths(run.folder).history)
    assert len(history) == 1 and np.isfinite(history["loss"]).all()
    # next-token probabilities for every step over the whole vocabulary
    probabilities = np.asarray(run.model(np.array([[2, 5, 9]], dtype=np.int32), training=False))
    assert probabilities.shape == (1, 3, len(run.vocab))
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)

    sampling = Sampling(temperature=0.8, max_tokens=8)
    samples = generate(run, "京都の", sampling, num=2, seed=3)
    assert samples == generate(run, "京都の", sampling, num=2, seed=3)  # same seed, same text
    assert len(samples) == 2
    for sample in samples:
        assert sample["text"].startswith("京都の")
        assert 1 <= len(sample["tokens"]) <= 8 and len(sample["probabilities"]) == len(sample["tokens"])
        assert all(token in run.vocab for token in sample["tokens"])
        assert all(0.0 < p <= 1.0 for p in sample["probabilities"])
    greedy = generate(run, "今日は", Sampling(greedy=True, max_tokens=5), num=2, seed=0)
    assert greedy[0]["tokens"] == greedy[1]["tokens"]
