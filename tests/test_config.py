"""Tests of pipeline.config: defaults, unknown keys, value checks, --set overrides, file errors."""

import dataclasses
import json
from pathlib import Path

import pytest
from helpers import REPOSITORY

from pipeline import config as config_module
from pipeline.config import Config, apply_overrides, from_dict, load, parse_override
from pipeline.errors import PipelineError
from pipeline.models import check_layer_spec


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_validate_and_an_empty_file_gives_the_defaults(tmp_path):
    Config().validate()
    assert from_dict({}) == Config()
    assert load(write_config(tmp_path, "")) == Config()


def test_shipped_default_config_loads():
    config = load(REPOSITORY / "configs" / "default.toml")
    assert config.corpus.format == "knb"
    assert [layer["type"] for layer in config.model.layers] == ["bilstm"]
    model = config.model
    assert (model.pooling, model.char_encoder, model.ensemble) == ("attention", "cnn", "char_ngram")
    for position, spec in enumerate(config.model.layers):
        check_layer_spec(spec, position)


@pytest.mark.parametrize(
    "data, key, suggestion",
    [
        ({"train": {"epoch": 3}}, "train.epoch", "epochs"),
        ({"corpus": {"formt": "knb"}}, "corpus.formt", "format"),
        ({"vectorize": {"min_cont": 2}}, "vectorize.min_cont", "min_count"),
        ({"traim": {"epochs": 3}}, "traim", "train"),
        ({"sed": 1}, "sed", "seed"),
    ],
)
def test_unknown_key_names_the_nearest_valid_key(data, key, suggestion):
    with pytest.raises(PipelineError) as caught:
        from_dict(data, where="run.toml")
    message = str(caught.value)
    assert f"'{key}'" in message
    assert f"did you mean '{suggestion}'" in message
    assert message.startswith("run.toml:")


def test_unknown_key_with_no_near_match_lists_the_valid_keys():
    with pytest.raises(PipelineError, match=r"unknown config key 'train\.zzzzzzzz' \(valid keys: .*epochs.*\)"):
        from_dict({"train": {"zzzzzzzz": 1}})


@pytest.mark.parametrize(
    "data, key",
    [
        ({"train": {"learning_rate": -1}}, "train.learning_rate"),
        ({"train": {"learning_rate": 0}}, "train.learning_rate"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"epochs": "3"}}, "train.epochs"),
        ({"train": {"epochs": True}}, "train.epochs"),
        ({"train": {"batch_size": 2.5}}, "train.batch_size"),
        ({"train": {"optimizer": "adamw"}}, "train.optimizer"),
        ({"corpus": {"format": "xml"}}, "corpus.format"),
        ({"corpus": {"test_fraction": 1.5}}, "corpus.test_fraction"),
        ({"corpus": {"validation_fraction": 0.5, "test_fraction": 0.5}}, "corpus.test_fraction"),
        ({"corpus": {"encoding": "latin-1"}}, "corpus.encoding"),
        ({"vectorize": {"max_size": 2}}, "vectorize.max_size"),
        ({"model": {"pooling": "sum"}}, "model.pooling"),
        ({"model": {"pooling": "mean+mean"}}, "model.pooling"),
        ({"model": {"pooling": "last+mean"}}, "model.pooling"),
        ({"model": {"pooling": "attention+sum"}}, "model.pooling"),
        ({"model": {"pooling": "attention", "attention_units": 0}}, "model.attention_units"),
        ({"model": {"dense_dropout": 1.0}}, "model.dense_dropout"),
        ({"model": {"char_encoder": "lstm"}}, "model.char_encoder"),
        ({"model": {"char_encoder": "bilstm", "char_units": 33}}, "model.char_units"),
        ({"model": {"char_encoder": "cnn", "char_units": 1}}, "model.char_units"),
        ({"model": {"max_chars": 0}}, "model.max_chars"),
        ({"model": {"char_buckets": 0}}, "model.char_buckets"),
        ({"model": {"char_dim": 0}}, "model.char_dim"),
        ({"model": {"ngram_features": "chars"}}, "model.ngram_features"),
        ({"model": {"ngram_buckets": 0}}, "model.ngram_buckets"),
        ({"model": {"ngram_dim": 0}}, "model.ngram_dim"),
        ({"model": {"ngram_dropout": 1.0}}, "model.ngram_dropout"),
        ({"model": {"layers": []}}, "model.layers"),
        ({"model": {"layers": [3]}}, "model.layers"),
        ({"tokenize": {"stop_pos": "ADP"}}, "tokenize.stop_pos"),
        ({"seed": -1}, "seed"),
        ({"run_name": "a/b"}, "run_name"),
        ({"train": 3}, "train"),
        ({"train": {"precision": "float16"}}, "train.precision"),
        ({"train": {"precision": "mixed_bfloat16"}}, "train.precision"),  # a classifier
        ({"train": {"time_limit_minutes": -1}}, "train.time_limit_minutes"),
        ({"model": {"task": "generator", "output": "sampled"}}, "model.output"),
        ({"model": {"task": "generator", "output": "adaptive", "tie_weights": True, "trainable_embeddings": False}},
         "model.trainable_embeddings"),
        ({"train": {"average": "ema"}}, "train.average"),
        ({"train": {"average_start": -1}}, "train.average_start"),
        ({"model": {"task": "generator", "cutoffs": [10, 5]}}, "model.cutoffs"),
        ({"model": {"task": "generator", "input_dropout": 1.0}}, "model.input_dropout"),
        ({"pretrain": {"output": "x"}}, "pretrain.output"),
        # words without a vector, fine-tuning (pipeline.classifier.finetune)
        ({"vectorize": {"unknown_init": "chars"}}, "vectorize.unknown_init"),
        ({"vectorize": {"unknown_init": "characters", "vectors": "none"}}, "vectorize.unknown_init"),
        ({"train": {"lr_schedule": "triangular"}}, "train.lr_schedule"),
        ({"train": {"lr_schedule": "slanted_triangular"}, "model": {"task": "generator"}}, "train.lr_schedule"),
        ({"train": {"freeze_embeddings_epochs": -1}}, "train.freeze_embeddings_epochs"),
        ({"train": {"freeze_embeddings_epochs": 2}, "model": {"trainable_embeddings": False}},
         "train.freeze_embeddings_epochs"),
        ({"train": {"embedding_learning_rate_factor": -0.1}}, "train.embedding_learning_rate_factor"),
        ({"train": {"embedding_learning_rate_factor": 0.1}, "model": {"trainable_embeddings": False}},
         "train.embedding_learning_rate_factor"),
        ({"train": {"discriminative_factor": 0.5}}, "train.discriminative_factor"),
        ({"train": {"discriminative_factor": 2.6}, "model": {"task": "generator"}}, "train.discriminative_factor"),
        ({"train": {"gradual_unfreezing": True}, "model": {"task": "generator"}}, "train.gradual_unfreezing"),
        # data parallelism (pipeline.distribution), tokenizer processes
        ({"train": {"distribute": "horovod"}}, "train.distribute"),
        ({"train": {"distribute": "mirrored", "regime": "tbptt"}, "model": {"task": "generator"}}, "train.distribute"),
        ({"train": {"distribute": "multi_worker"}, "model": {"readout": "ridge"}}, "train.distribute"),
        ({"tokenize": {"processes": 0}}, "tokenize.processes"),
        # the training backend (pipeline.backend_process)
        ({"train": {"backend": "torch"}}, "train.backend"),
        ({"train": {"backend": "jax", "distribute": "mirrored"}}, "train.backend"),
        # epochs of a set number of batches
        ({"train": {"steps_per_epoch": -1}}, "train.steps_per_epoch"),
        ({"train": {"steps_per_epoch": 100, "regime": "tbptt"}, "model": {"task": "generator"}},
         "train.steps_per_epoch"),
        ({"train": {"steps_per_epoch": 100}, "model": {"readout": "ridge"}}, "train.steps_per_epoch"),
        ({"train": {"steps_per_epoch": 100}, "model": {"task": "reading"}}, "train.steps_per_epoch"),
        ({"train": {"validation_rows": -1}}, "train.validation_rows"),
        ({"train": {"validation_rows": 100}, "model": {"task": "reading"}}, "train.validation_rows"),
        # distillation from the char n-gram model: a classifier's, a weight in [0, 1]
        ({"train": {"distill": 1.5}}, "train.distill"),
        ({"train": {"distill": -0.1}}, "train.distill"),
        ({"train": {"distill_folds": 1}}, "train.distill_folds"),
        ({"train": {"distill": 0.5}, "model": {"task": "generator"}}, "train.distill"),
        ({"train": {"distill": 0.5}, "model": {"task": "reading"}}, "train.distill"),
        # adversarial training (pipeline.adversarial): a classifier's gradient steps in one process
        ({"train": {"adversarial": -0.1}}, "train.adversarial"),
        ({"train": {"adversarial": 1.5}}, "train.adversarial"),
        ({"train": {"adversarial": 0.05}, "model": {"task": "generator"}}, "train.adversarial"),
        ({"train": {"adversarial": 0.05}, "model": {"task": "reading"}}, "train.adversarial"),
        ({"train": {"adversarial": 0.05}, "model": {"readout": "ridge"}}, "train.adversarial"),
        ({"train": {"adversarial": 0.05, "distribute": "mirrored"}}, "train.adversarial"),
        ({"train": {"virtual_adversarial": 2.0}}, "train.virtual_adversarial"),
        ({"train": {"virtual_unlabeled": -1.0}}, "train.virtual_unlabeled"),
        ({"train": {"virtual_adversarial": 0.1}, "model": {"task": "generator"}}, "train.virtual_adversarial"),
        ({"train": {"virtual_adversarial": 0.1}, "model": {"readout": "ridge"}}, "train.virtual_adversarial"),
        # self-training (pipeline.classifier.self_training): a classifier's, with unlabeled text, in one process
        ({"train": {"self_training": -1}}, "train.self_training"),
        ({"train": {"self_training": 1, "distribute": "mirrored"}, "corpus": {"unlabeled_path": "x.txt"}},
         "train.self_training"),
        ({"train": {"self_training": 1}, "corpus": {"unlabeled_path": "x.txt"}, "model": {"task": "generator"}},
         "train.self_training"),
        ({"train": {"self_training": 1}, "corpus": {"unlabeled_path": "x.txt"}, "model": {"task": "reading"}},
         "train.self_training"),
        ({"train": {"self_training_threshold": 1.0}}, "train.self_training_threshold"),
        ({"train": {"self_training_unlabeled": 0.0}}, "train.self_training_unlabeled"),
        ({"train": {"self_training_start": "warm"}}, "train.self_training_start"),
    ],
)
def test_invalid_value_names_the_key(data, key):
    with pytest.raises(PipelineError) as caught:
        from_dict(data)
    assert f"'{key}'" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("data, owner, fragments", [
    ({"pretrain": {"enabled": True}, "model": {"task": "generator"}}, None,
     ['[pretrain] is read by model.task = "classifier"', "not by a generator config"]),
    ({"lsm": {"units": 10}}, None, ["[lsm] is read by `pipeline lsm`", "not by a classifier config"]),
    ({"classify": {"examples": ["x"]}}, "forecast", ['[classify] is read by model.task = "classifier"']),
    ({"lsmm": {"units": 10}}, "lsm", ["unknown config key 'lsmm'", "did you mean 'lsm'"]),
    ({"model": {"task": "translator"}}, None, ["'model.task'", "'classifier', 'generator', 'reading'"]),
])
def test_a_config_holds_the_sections_of_its_task_or_tool_only(data, owner, fragments):
    with pytest.raises(PipelineError) as caught:
        from_dict(data, owner=owner)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_each_config_reads_its_owners_sections_with_their_defaults():
    classifier, generator, tool = from_dict({}), from_dict({"model": {"task": "generator"}}), from_dict({}, owner="lsm")
    assert (classifier.owner, sorted(classifier.sections)) == ("classifier", ["classify", "pretrain"])
    assert (generator.owner, sorted(generator.sections)) == ("generator", ["generate"])
    assert (tool.owner, sorted(tool.sections), tool.lsm.units) == ("lsm", ["lsm"], 200)
    assert "lsm" not in classifier.to_dict() and "generate" in generator.to_dict()
    with pytest.raises(AttributeError, match=r"a classifier config has no \[lsm\] section"):
        _ = classifier.lsm
    assert from_dict(generator.to_dict()) == generator
    changed = classifier.replace(pretrain=classifier.pretrain.__class__(enabled=True), run_name="other")
    assert changed.pretrain.enabled and changed.run_name == "other" and not classifier.pretrain.enabled


def test_integers_are_accepted_for_floats():
    config = from_dict({"train": {"learning_rate": 1, "clipnorm": 2}})
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    assert config.train.clipnorm == 2.0


@pytest.mark.parametrize(
    "layer, key, value",
    [
        ({"type": "lstm", "units": 8, "dropout": 1.5}, "model.layers[1].dropout", "1.5"),
        ({"type": "lstm", "units": 8, "recurrent_dropout": -0.1}, "model.layers[1].recurrent_dropout", "-0.1"),
        ({"type": "gru", "units": 0}, "model.layers[1].units", "0"),
        ({"type": "gru", "units": 8.0}, "model.layers[1].units", "8.0"),
    ],
)
def test_invalid_layer_values_are_caught_by_the_model_registry(layer, key, value):
    # [[model.layers]] tables are plain dicts to the config; the registry checks their keys and values.
    config = from_dict({"model": {"layers": [{"type": "lstm", "units": 8}, layer]}})
    check_layer_spec(config.model.layers[0], 0)
    with pytest.raises(PipelineError) as caught:
        check_layer_spec(config.model.layers[1], 1)
    assert f"'{key}' = {value}" in str(caught.value)


@pytest.mark.parametrize(
    "text, parts, value",
    [
        ("train.epochs=3", ["train", "epochs"], 3),
        ("train.learning_rate=1e-3", ["train", "learning_rate"], 0.001),
        ("train.bucketing=false", ["train", "bucketing"], False),
        ('run_name="quoted"', ["run_name"], "quoted"),
        ("run_name=demo", ["run_name"], "demo"),
        ("corpus.path=corpora/my corpus.csv", ["corpus", "path"], "corpora/my corpus.csv"),
        ('tokenize.stop_pos=["ADP", "AUX"]', ["tokenize", "stop_pos"], ["ADP", "AUX"]),
        (" train.epochs = 3", ["train", "epochs"], 3),
        ("run_name=a=b", ["run_name"], "a=b"),
    ],
)
def test_parse_override_reads_toml_values_and_bare_strings(text, parts, value):
    parsed_parts, parsed_value = parse_override(text)
    assert parsed_parts == parts
    assert parsed_value == value
    assert type(parsed_value) is type(value)


@pytest.mark.parametrize("text", ["train.epochs", "=3", " =3"])
def test_parse_override_rejects_malformed_text(text):
    with pytest.raises(PipelineError, match="--set"):
        parse_override(text)


def test_apply_overrides_creates_tables_and_leaves_the_input_alone():
    data = {"train": {"epochs": 5}, "corpus": {"path": "x"}}
    result = apply_overrides(data, ["train.epochs=3", "model.pooling=max", "seed=7"])
    assert result == {"train": {"epochs": 3}, "corpus": {"path": "x"}, "model": {"pooling": "max"}, "seed": 7}
    assert data == {"train": {"epochs": 5}, "corpus": {"path": "x"}}


def test_apply_overrides_refuses_to_descend_into_a_value():
    with pytest.raises(PipelineError, match="'seed' is not a table"):
        apply_overrides({"seed": 3}, ["seed.value=4"])


def test_load_applies_overrides_and_checks_them(tmp_path):
    path = write_config(tmp_path, "seed = 1\n[train]\nepochs = 5\n")
    config = load(path, ["train.epochs=2", "run_name=demo", 'tokenize.stop_pos=["ADP"]'])
    assert (config.seed, config.train.epochs, config.run_name) == (1, 2, "demo")
    assert config.tokenize.stop_pos == ("ADP",)
    with pytest.raises(PipelineError, match=r"did you mean 'epochs'") as caught:
        load(path, ["train.epoch=2"])
    assert str(path) in str(caught.value)
    with pytest.raises(PipelineError, match=r"'train\.epochs' = 'three'"):
        load(path, ["train.epochs=three"])


def test_missing_config_file_is_a_one_line_error_naming_it(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(PipelineError) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message and "not found" in message
    assert "\n" not in message


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        load(tmp_path)


def test_invalid_toml_is_a_one_line_error_naming_the_file_and_line(tmp_path):
    path = write_config(tmp_path, "seed = 1\n[train\nepochs = 3\n")
    with pytest.raises(PipelineError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:")
    assert "invalid TOML" in message and "line 2" in message
    assert "\n" not in message


def test_config_that_is_not_utf8_is_a_one_line_error(tmp_path):
    path = tmp_path / "run.toml"
    path.write_bytes('run_name = "京都"\n'.encode("euc-jp"))
    with pytest.raises(PipelineError, match="not UTF-8") as caught:
        load(path)
    assert str(path) in str(caught.value)


def test_to_dict_from_dict_round_trip_through_json():
    config = from_dict({
        "seed": 7,
        "run_name": "round",
        "corpus": {"format": "table", "path": "data/x.csv", "text_column": "本文"},
        "tokenize": {"stop_pos": ["ADP", "AUX"], "drop_punct": True},
        "model": {"layers": [{"type": "lstm", "units": 8, "dropout": 0.25}, {"type": "gru", "units": 4}],
                  "pooling": "max"},
        "train": {"learning_rate": 0.01, "epochs": 2},
        "classify": {"examples": ["京都に行った。"]},
    })
    data = config.to_dict()
    assert data["tokenize"]["stop_pos"] == ["ADP", "AUX"]
    assert data["model"]["layers"] == [{"type": "lstm", "units": 8, "dropout": 0.25}, {"type": "gru", "units": 4}]
    assert from_dict(data) == config
    assert from_dict(json.loads(json.dumps(data, ensure_ascii=False))) == config


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().seed = 3  # type: ignore[misc]


def test_nearest_suffix():
    assert config_module.nearest("epoch", ["epochs", "patience"]) == " (did you mean 'epochs'?)"
    assert config_module.nearest("qqqq", ["epochs", "patience"]) == ""
