"""The classifier task declares itself to the frame (:mod:`pipeline.registry`): ``model.task = "classifier"``.

Its configs hold ``[classify]`` (the example sentences ``run`` classifies) and ``[pretrain]`` (the
language model its encoder may start from, a stage the language-model plugin registers). Its stages
after ``vectorize`` are ``pretrain``, ``train`` and ``evaluate``. Light on purpose: names and
dataclasses only, the work is imported when a stage runs.
"""

from __future__ import annotations

from pipeline import registry, stages
from pipeline.classifier.sections import ClassifyConfig
from pipeline.paths import RunPaths
from pipeline.sections import check, check_off
from pipeline.text.features import uses_subword_features
from pipeline.text.vocab import SENTENCE_MARKERS

registry.register_section("classify", ClassifyConfig, owner="classifier")


def validate(config) -> None:
    """The options a classifier does not take, and the ones that need another setting."""
    train, model = config.train, config.model
    check_off(config, ("model.members",), "a classifier (its ensemble is model.ensemble)")
    check(train.precision == "float32", "train.precision", train.precision,
          "\"float32\" for a classifier (mixed precision is for language models)")
    check(train.distribute == "none" or model.readout != "ridge", "train.distribute", train.distribute,
          "\"none\" with model.readout = \"ridge\" (a closed-form fit in one process)")
    check(train.steps_per_epoch == 0 or model.readout != "ridge", "train.steps_per_epoch", train.steps_per_epoch,
          "0 with model.readout = \"ridge\" (its closed-form fit reads the whole training split)")
    for key in ("adversarial", "virtual_adversarial"):
        value = getattr(train, key)
        check(value == 0 or model.readout != "ridge", f"train.{key}", value,
              "0 with model.readout = \"ridge\" (a closed-form fit takes no gradient steps)")
        check(value == 0 or train.distribute == "none", f"train.{key}", value,
              "0 with train.distribute (its step moves the embedding of one process)")
    # (without corpus.unlabeled_path there is nothing to label, and self-training does nothing)
    check(train.self_training == 0 or train.distribute == "none" or not config.corpus.unlabeled_path,
          "train.self_training", train.self_training, "0 with train.distribute (the rounds train in one process)")
    for key in ("freeze_embeddings_epochs", "embedding_learning_rate_factor"):
        value, off = getattr(train, key), getattr(type(train), key)  # the defaults are off
        check(value == off or model.trainable_embeddings, f"train.{key}", value,
              f"{str(off).lower()} (off) with model.trainable_embeddings = false")


def fits_char_model(config) -> bool:
    """Whether ``train`` fits the char n-gram model: as the ensemble member (``model.ensemble``) or as the
    distillation teacher (``train.distill``)."""
    return config.model.ensemble != "none" or config.train.distill > 0


def reads_tokens(config) -> bool:
    """The subword features (``model.char_encoder``, ``model.ngram_features``) and the char n-gram model
    (:func:`fits_char_model`) read the tokens' text."""
    return uses_subword_features(config.model) or fits_char_model(config)


def train_settings(config) -> dict:
    """What training reads beyond ``[model]`` and ``[train]``: pretraining on or off, and the char n-gram
    model's row bound when there is one (the ensemble member, the distillation teacher)."""
    settings = {"pretrain": config.pretrain.enabled}
    if fits_char_model(config):
        settings["linear_max_rows"] = config.classify.linear_max_rows
    return settings


def train_inputs(config, paths) -> list:
    """Beyond the vectorized corpus: the pretrained language model, the tokens for the subword signal."""
    files = []
    if config.pretrain.enabled:
        files.append(RunPaths(stages.folder_of("pretrain", config, paths)).model)
    if reads_tokens(config):
        files.append(paths.tokens)
    return files


# Layer kinds whose [[model.layers]] table takes `dropout` (the Keras recurrent layers and our Elman layer).
DROPOUT_LAYERS = frozenset({"lstm", "gru", "simple_rnn", "bilstm", "bigru", "elman"})


def search_space(config) -> registry.SearchSpace:
    """What ``pipeline tune`` searches for a classifier by default; every range holds the config's own value.

    * ``model.layers.units`` (every layer, 16-128, log scale), ``model.layers.dropout`` (0-0.5, when every layer
      takes one), ``model.embedding_dropout`` (0-0.3), ``train.learning_rate`` (a tenth to 3x the config's, log);
    * with ``model.trainable_embeddings``: ``train.freeze_embeddings_epochs`` (0-3) and
      ``train.embedding_learning_rate_factor`` (0.05-1, log);
    * a pooled model's ``model.pooling`` (its own, attention, or attention+mean+max; softmax readouts);
    * ``model.ensemble`` (none or char_ngram) and ``train.distill`` (0-0.8: how much the recurrent model learns
      from the char n-gram model), and with ``corpus.unlabeled_path`` ``train.distill_unlabeled`` (0-4: how many
      unlabeled sentences per training sentence it learns that model's guesses of) and ``train.self_training``
      (0-1 rounds of labelling that text itself);
    * with ``[pretrain] enabled``: ``pretrain.epochs`` (2 to twice the config's), and the units are kept: each
      new width would pretrain a new language model.

    Scored by the validation macro-F1 (or accuracy) of the trained run, ensemble included; the pruner watches
    the per-epoch validation accuracy.
    """
    model, train = config.model, config.train
    parameters: dict[str, dict] = {}
    if not config.pretrain.enabled:
        units = [layer.get("units", 64) for layer in model.layers]
        parameters["model.layers.units"] = {"low": min(16, *units), "high": max(128, *units), "log": True}
    if all(layer.get("type") in DROPOUT_LAYERS for layer in model.layers):
        dropouts = [layer.get("dropout", 0.0) for layer in model.layers]
        parameters["model.layers.dropout"] = {"low": 0.0, "high": max(0.5, *dropouts)}
    parameters["model.embedding_dropout"] = {"low": 0.0, "high": max(0.3, model.embedding_dropout)}
    parameters["train.learning_rate"] = {"low": train.learning_rate / 10, "high": train.learning_rate * 3,
                                         "log": True}
    if model.trainable_embeddings:
        parameters["train.freeze_embeddings_epochs"] = {"low": 0, "high": max(3, train.freeze_embeddings_epochs)}
        parameters["train.embedding_learning_rate_factor"] = {
            "low": min(0.05, train.embedding_learning_rate_factor) or 0.05, "high": 1.0, "log": True}
    if model.pooling != "last" and model.readout == "softmax":  # a ridge readout would leave attention untrained
        parameters["model.pooling"] = {"choices": list(dict.fromkeys([model.pooling, "attention",
                                                                       "attention+mean+max"]))}
    parameters["model.ensemble"] = {"choices": ["none", "char_ngram"]}
    parameters["train.distill"] = {"low": 0.0, "high": max(0.8, train.distill)}
    if config.corpus.unlabeled_path:
        parameters["train.distill_unlabeled"] = {"low": 0.0, "high": max(4.0, train.distill_unlabeled)}
        parameters["train.self_training"] = {"low": 0, "high": max(1, train.self_training)}
    if config.pretrain.enabled:
        parameters["pretrain.epochs"] = {"low": 2, "high": max(2, 2 * config.pretrain.epochs)}
    return registry.SearchSpace(parameters, {"macro_f1": "maximize", "accuracy": "maximize"},
                                "pipeline.classifier.validation:validation_scores", "val_accuracy")


TASK = registry.register_task(registry.Task(
    name="classifier",
    sections=("classify", "pretrain"),
    stages=("pretrain", "train", "evaluate"),
    train=registry.TaskStage("pipeline.classifier.train:train_classifier", settings=train_settings,
                             inputs=train_inputs),
    evaluate=registry.TaskStage("pipeline.classifier.evaluate:evaluate_classifier",
                                settings=lambda config: {"linear_max_rows": config.classify.linear_max_rows}),
    summary="pipeline.classifier.evaluate:summary",
    after_run="pipeline.cli.classify:run_classify_examples",
    specials=lambda config: SENTENCE_MARKERS if config.pretrain.enabled else (),
    validate=validate,
    load_extras="pipeline.classifier.predict:load_extras",
    api={"classify": "pipeline.classifier.predict:classify", "explain": "pipeline.classifier.explain:explain",
         "classify_tokens": "pipeline.classifier.predict:classify_tokens",
         "export": "pipeline.classifier.export:export"},
    search_space=search_space,
))
