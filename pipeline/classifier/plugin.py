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
from pipeline.sections import check
from pipeline.text.features import uses_subword_features
from pipeline.text.vocab import SENTENCE_MARKERS

registry.register_section("classify", ClassifyConfig, owner="classifier")


def validate(config) -> None:
    """The options a classifier does not take, and the ones that need another setting."""
    train, model = config.train, config.model
    check(train.precision == "float32", "train.precision", train.precision,
          "\"float32\" for a classifier (mixed precision is for language models)")
    check(train.distribute == "none" or model.readout != "ridge", "train.distribute", train.distribute,
          "\"none\" with model.readout = \"ridge\" (a closed-form fit in one process)")
    for key in ("freeze_embeddings_epochs", "embedding_learning_rate_factor"):
        value, off = getattr(train, key), getattr(type(train), key)  # the defaults are off
        check(value == off or model.trainable_embeddings, f"train.{key}", value,
              f"{str(off).lower()} (off) with model.trainable_embeddings = false")


def reads_tokens(config) -> bool:
    """The subword features (``model.char_encoder``, ``model.ngram_features``) and the n-gram ensemble
    member (``model.ensemble``) read the tokens' text."""
    return uses_subword_features(config.model) or config.model.ensemble != "none"


def train_inputs(config, paths) -> list:
    """Beyond the vectorized corpus: the pretrained language model, the tokens for the subword signal."""
    files = []
    if config.pretrain.enabled:
        files.append(RunPaths(stages.folder_of("pretrain", config, paths)).model)
    if reads_tokens(config):
        files.append(paths.tokens)
    return files


TASK = registry.register_task(registry.Task(
    name="classifier",
    sections=("classify", "pretrain"),
    stages=("pretrain", "train", "evaluate"),
    train=registry.TaskStage("pipeline.classifier.train:train_classifier",
                             settings=lambda config: {"pretrain": config.pretrain.enabled}, inputs=train_inputs),
    evaluate=registry.TaskStage("pipeline.classifier.evaluate:evaluate_classifier"),
    summary="pipeline.classifier.evaluate:summary",
    after_run="pipeline.cli.classify:run_classify_examples",
    specials=lambda config: SENTENCE_MARKERS if config.pretrain.enabled else (),
    validate=validate,
    load_extras="pipeline.classifier.predict:load_extras",
    api={"classify": "pipeline.classifier.predict:classify", "explain": "pipeline.classifier.explain:explain",
         "classify_tokens": "pipeline.classifier.predict:classify_tokens",
         "export": "pipeline.classifier.export:export"},
))
