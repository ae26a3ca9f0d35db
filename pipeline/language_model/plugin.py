"""The language-model task declares itself to the frame (:mod:`pipeline.registry`): ``model.task = "generator"``.

It owns ``[generate]`` (sampling) and ``[pretrain]``, and registers the ``pretrain`` stage: the
language model a classifier's encoder starts from (ULMFiT), cached under
``work/<corpus>/pretrained/<fingerprint of its settings>/`` so that every config with the same
encoder and corpus reuses it. Light on purpose: names and dataclasses only.
"""

from __future__ import annotations

import hashlib
import json

from pipeline import registry, stages
from pipeline.language_model.sections import GenerateConfig, PretrainConfig
from pipeline.sections import FINE_TUNING_KEYS, check, check_off
from pipeline.text.vocab import SENTENCE_MARKERS

registry.register_section("generate", GenerateConfig, owner="language_model")
registry.register_section("pretrain", PretrainConfig, owner="language_model")

# What a language model does not take: an ensemble member or teacher, fine-tuning options.
UNSUPPORTED = ("model.ensemble", "train.distill", "train.adversarial", "train.virtual_adversarial",
               "train.self_training", *FINE_TUNING_KEYS)


def validate(config) -> None:
    check_off(config, UNSUPPORTED, "a language model")
    check(config.train.distribute == "none" or config.train.regime == "sentences", "train.distribute",
          config.train.distribute, '"none" with train.regime = "tbptt" (its stateful stream is one row per track)')
    check(config.train.steps_per_epoch == 0 or config.train.regime == "sentences", "train.steps_per_epoch",
          config.train.steps_per_epoch, '0 with train.regime = "tbptt" (an epoch is one pass over its stream)')
    check(config.model.members == 1 or config.train.regime == "sentences", "model.members", config.model.members,
          '1 with train.regime = "tbptt" (an ensemble is scored sentence by sentence)')
    check(config.model.members == 1 or config.train.distribute == "none", "model.members", config.model.members,
          '1 with train.distribute (the members train one after the other in one process)')
    check(config.train.lr_schedule not in ("slanted_triangular", "one_cycle"), "train.lr_schedule",
          config.train.lr_schedule, "constant, step or plateau for a language model")


# Layer kinds whose [[model.layers]] table takes `dropout` (the Keras recurrent layers and our Elman layer).
DROPOUT_LAYERS = frozenset({"lstm", "gru", "simple_rnn", "bilstm", "bigru", "elman"})


def search_space(config) -> registry.SearchSpace:
    """What ``pipeline tune`` searches for a language model by default; every range holds the config's own value.

    ``model.layers.units`` (every layer, 32-512, log scale); the layers' own dropout (``dropout``, or
    ``weight_drop`` for ``weight_drop_lstm`` layers, 0-0.6); the AWD-LSTM dropouts ``model.embedding_dropout``
    (0-0.3), ``model.input_dropout``, ``model.hidden_dropout`` (with several layers) and
    ``model.output_dropout`` (0-0.6); ``train.learning_rate`` (a tenth to 3x the config's, log). Scored by
    the validation perplexity of the best epoch, which is also what the pruner watches per epoch.
    """
    model, layers = config.model, config.model.layers
    units = [layer.get("units", 64) for layer in layers]
    parameters: dict[str, dict] = {"model.layers.units": {"low": min(32, *units), "high": max(512, *units),
                                                          "log": True}}
    for kinds, key in ((DROPOUT_LAYERS, "dropout"), ({"weight_drop_lstm"}, "weight_drop")):
        if all(layer.get("type") in kinds for layer in layers):
            highest = max(0.6, *(table.get(key, 0.0) for table in layers))
            parameters[f"model.layers.{key}"] = {"low": 0.0, "high": highest}
    keys = ("embedding_dropout", "input_dropout", *(("hidden_dropout",) if len(layers) > 1 else ()), "output_dropout")
    for key in keys:
        parameters[f"model.{key}"] = {"low": 0.0, "high": max(0.3 if key == "embedding_dropout" else 0.6,
                                                               getattr(model, key))}
    rate = config.train.learning_rate
    parameters["train.learning_rate"] = {"low": rate / 10, "high": rate * 3, "log": True}
    return registry.SearchSpace(parameters, {"perplexity": "minimize"},
                                "pipeline.language_model.validation:validation_scores", "val_perplexity")


TASK = registry.register_task(registry.Task(
    name="generator",
    sections=("generate",),
    train=registry.TaskStage("pipeline.language_model.train:train_generator"),
    evaluate=registry.TaskStage("pipeline.language_model.evaluate:evaluate_generator"),
    summary="pipeline.language_model.evaluate:summary",
    after_run="pipeline.cli.generate:run_generate_examples",
    specials=lambda config: SENTENCE_MARKERS,
    validate=validate,
    custom_objects=("pipeline.language_model.model", "pipeline.language_model.data"),
    api={"generate": "pipeline.language_model.generate:sample", "export": "pipeline.language_model.export:export"},
    search_space=search_space,
))


# ------------------------------------------------------------------ the pretrain stage
def pretrain_settings(config) -> dict:
    """What a pretrained encoder depends on besides the vectorized corpus: its section, the encoder, the seed."""
    if not config.pretrain.enabled:
        return {"enabled": False}
    model = config.to_dict()["model"]
    encoder = {key: model[key] for key in ("embedding_dim", "trainable_embeddings", "layers", "initializer",
                                           "init_scale")}
    read = {"seed": config.seed, "pretrain": config.to_dict()["pretrain"], "encoder": encoder}
    if config.train.validation_rows:  # its epochs validate on the same sample (a key only when set: older
        read["validation_rows"] = config.train.validation_rows  # fingerprints stay as they were)
    if config.train.backend != "tensorflow":  # the backend it trains on (a key only when not the first one)
        read["backend"] = config.train.backend
    return read


def pretrained_folder(config, paths):
    """``work/<corpus>/pretrained/<digest of pretrain_settings>/``; None when pretraining is off."""
    if not config.pretrain.enabled:
        return None
    digest = hashlib.sha256(json.dumps(pretrain_settings(config), sort_keys=True).encode()).hexdigest()[:12]
    return paths.work / "pretrained" / digest


def pretrain_action(config, paths) -> dict:
    if not config.pretrain.enabled:
        return {}
    return registry.resolve("pipeline.language_model.pretrain:pretrain_encoder")(config, paths)


stages.register(stages.Stage(
    "pretrain", pretrain_settings,
    lambda config, paths: [paths.vocab, paths.embeddings, paths.ids] if config.pretrain.enabled else [],
    lambda config, paths: stages.run_files(pretrained_folder(config, paths)) if config.pretrain.enabled else [],
    lambda config: ("pipeline.language_model.pretrain",), pretrain_action, packages=stages.TRAINING_PACKAGES,
    folder=pretrained_folder, resumable=lambda config: config.pretrain.enabled,
    backend=lambda config: config.train.backend if config.pretrain.enabled else "",
    entry=lambda config: "pipeline.language_model.plugin:pretrain_action"))
