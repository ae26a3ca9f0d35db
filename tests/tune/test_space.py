"""The search space of ``pipeline tune`` (pipeline/tune/space.py), its sampler and the best config's TOML,
without training: the same seed samples the same first trial, keys through arrays of tables, bad ranges."""

from __future__ import annotations

import tomllib

import optuna
import pytest
from helpers import REPOSITORY, TEST_CONFIGS

from pipeline import config as config_module
from pipeline.errors import PipelineError
from pipeline.tune.report import toml_text
from pipeline.tune.space import Parameter, get_value, set_value
from pipeline.tune.study import load_job, sampler


def first_trial(job) -> dict:
    """The values of the first trial that ``job``'s seeded sampler draws (an in-memory study, nothing trained)."""
    study = optuna.create_study(direction=job.direction, sampler=sampler(job, 0))
    trial = study.ask()
    return {key: parameter.suggest(trial) for key, parameter in job.space.items()}


def test_the_same_seed_samples_the_same_first_trial():
    job = load_job(TEST_CONFIGS / "small.toml")
    assert first_trial(job) == first_trial(load_job(TEST_CONFIGS / "small.toml"))
    other = first_trial(load_job(TEST_CONFIGS / "small.toml", ["seed=7"]))
    assert other != first_trial(job)
    assert set(other) == set(job.space)
    assert all(job.space[key].contains(value) for key, value in other.items())


def test_default_spaces_of_the_classifier_and_the_language_model():
    default = load_job(REPOSITORY / "configs" / "default.toml")
    assert default.metric == "macro_f1" and default.direction == "maximize"
    assert {"model.layers.units", "model.layers.dropout", "model.embedding_dropout", "train.learning_rate",
            "train.freeze_embeddings_epochs", "train.embedding_learning_rate_factor",
            "model.pooling", "model.ensemble", "train.distill"} == set(default.space)
    assert default.space["model.pooling"].choices == ("attention", "attention+mean+max")
    assert "model.pooling" not in load_job(REPOSITORY / "configs" / "esn.toml").space  # ridge: no attention
    given = load_job(REPOSITORY / "configs" / "default.toml", ['corpus.unlabeled_path="corpora/blog_text"'])
    # only with unlabeled text
    assert set(given.space) - set(default.space) == {"train.distill_unlabeled", "train.self_training"}
    assert given.space["train.self_training"].low == 0 and given.space["train.self_training"].high == 1
    pretrained = load_job(REPOSITORY / "configs" / "lstm_pretrained.toml")
    assert "pretrain.epochs" in pretrained.space and "model.layers.units" not in pretrained.space
    generator = load_job(REPOSITORY / "configs" / "generator.toml")
    assert generator.metric == "perplexity" and generator.direction == "minimize"
    assert {"model.layers.units", "model.layers.weight_drop", "model.input_dropout",
            "train.learning_rate"} <= set(generator.space)
    for job in (default, given, pretrained, generator):  # every range holds the config's own value (trial 0)
        for key, parameter in job.space.items():
            own = get_value(job.resolved, key)
            assert own is None or parameter.contains(own), key  # None: a layer key left to its default


def test_a_key_through_an_array_of_tables_sets_every_table():
    data = {"model": {"layers": [{"type": "gru", "units": 8}, {"type": "gru", "units": 16}]}}
    assert set_value(data, "model.layers.units", 32, {})["model"]["layers"] == [
        {"type": "gru", "units": 32}, {"type": "gru", "units": 32}]
    assert data["model"]["layers"][0]["units"] == 8  # a copy
    resolved = config_module.from_dict({}).to_dict()  # a file without [[model.layers]]: the default stack
    assert set_value({}, "model.layers.dropout", 0.25, resolved)["model"]["layers"] == [
        {"type": "bilstm", "units": 64, "dropout": 0.25}]


def test_tune_section_changes_the_space_and_bad_entries_are_one_line_errors():
    small = TEST_CONFIGS / "small.toml"
    job = load_job(small, ['tune.exclude=["model.ensemble"]',
                           'tune.parameters=[{key = "train.batch_size", choices = [32, 64]}]'])
    assert "model.ensemble" not in job.space and job.space["train.batch_size"] == Parameter(
        "train.batch_size", choices=(32, 64))
    only = load_job(small, ["tune.only=true", 'tune.parameters=[{key = "train.learning_rate", low = 1e-3, '
                                              'high = 1e-2, log = true}]'])
    assert list(only.space) == ["train.learning_rate"] and not only.space["train.learning_rate"].integer
    for change, fragment in (
            (['tune.parameters=[{key = "model.layers.unitz", low = 4, high = 8}]'], "unitz"),
            (['tune.parameters=[{key = "train.learning_rate", low = 1e-2, high = 1e-3}]'], "tune.parameters[0].high"),
            (['tune.parameters=[{key = "train.epochs", low = 1, hi = 3}]'], "tune.parameters[0].hi"),
            (['tune.parameters=[{key = "model.dense_dropout", low = 0.0, high = 1.5}]'], "model.dense_dropout"),
            (['tune.exclude=["train.momentum"]'], "train.momentum"),
            (['tune.metric="perplexity"'], "tune.metric"),
            (['tune.pruner="hyperband"'], "tune.pruner")):
        with pytest.raises(PipelineError, match=fragment.replace("[", r"\[").replace(".", r"\.")) as error:
            load_job(small, change)
        assert "\n" not in str(error.value)


def test_the_best_config_toml_reads_back_as_written():
    data = config_module.from_dict(tomllib.loads((REPOSITORY / "configs" / "default.toml").read_text("utf-8")))
    written = data.to_dict()
    text = toml_text(written, header="a header\nof two lines")
    assert text.startswith("# a header\n# of two lines\n")
    assert tomllib.loads(text) == written
    assert config_module.from_dict(tomllib.loads(text)) == data
