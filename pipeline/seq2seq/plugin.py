"""The reading task declares itself to the frame (:mod:`pipeline.registry`): ``model.task = "reading"``.

A character encoder-decoder from a sentence to its katakana reading; its configs hold ``[reading]``.
It learns from the tokens' text and readings, so ``[tokenize]`` is among the settings its stages read.
"""

from __future__ import annotations

from pipeline import registry
from pipeline.sections import FINE_TUNING_KEYS, check, check_off
from pipeline.seq2seq.sections import ReadingConfig

registry.register_section("reading", ReadingConfig, owner="reading")


# What a reading model does not take: an ensemble member or teacher, data parallelism, fine-tuning, mixed precision,
# epochs of a set number of batches, a sample of the validation split.
UNSUPPORTED = ("model.ensemble", "model.members", "train.distill", "train.adversarial", "train.virtual_adversarial",
               "train.distribute", "train.self_training", "train.precision", "train.steps_per_epoch",
               "train.validation_rows",
               *FINE_TUNING_KEYS)


def validate(config) -> None:
    check_off(config, UNSUPPORTED, "a reading model")
    check(config.train.lr_schedule not in ("slanted_triangular", "one_cycle"), "train.lr_schedule",
          config.train.lr_schedule, "constant, step or plateau for a reading model")


def _settings(config) -> dict:
    plain = config.to_dict()
    return {"tokenize": plain["tokenize"], "reading": plain["reading"]}


TASK = registry.register_task(registry.Task(
    name="reading",
    sections=("reading",),
    train=registry.TaskStage("pipeline.seq2seq.train:train_reader", settings=_settings,
                             inputs=lambda config, paths: [paths.tokens]),
    evaluate=registry.TaskStage("pipeline.seq2seq.evaluate:evaluate_reader", settings=_settings),
    summary="pipeline.seq2seq.evaluate:summary",
    after_run="pipeline.cli.read:run_read_examples",
    validate=validate,
    api={"read": "pipeline.seq2seq.decode:read"},
))
