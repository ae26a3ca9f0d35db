"""Typed, frozen configuration loaded from ``configs/*.toml``.

A config file has a few top-level keys (``seed``, ``run_name``, ``work_dir``,
``models_dir``) and one table per concern: ``[corpus]``, ``[tokenize]``,
``[vectorize]``, ``[model]``, ``[train]``, ``[pretrain]``, ``[classify]``, ``[generate]``,
``[forecast]``, ``[diagnose]``, ``[reading]``, ``[hopfield]``, ``[lsm]``. Every key is checked: an unknown key is an error that names the
nearest valid one, and every value is checked for type and range, so a typo
never silently falls back to a default.

Recurrent layers (``[[model.layers]]``) are plain tables whose keys are checked
by the model registry (``pipeline.models``), because each layer kind accepts
different options.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.sections import (
    ClassifyConfig,
    CorpusConfig,
    GenerateConfig,
    ModelConfig,
    PretrainConfig,
    TokenizeConfig,
    TrainConfig,
    VectorizeConfig,
    _check,
)
from pipeline.tool_sections import DiagnoseConfig, ForecastConfig, HopfieldConfig, LsmConfig, ReadingConfig


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration of one run."""

    seed: int = 42  # drives every random choice (split, init, dropout, batching)
    run_name: str = "default"  # saved_models/<run_name>/
    work_dir: str = "work"  # intermediate artifacts: work/<corpus name>/
    models_dir: str = "saved_models"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    vectorize: VectorizeConfig = field(default_factory=VectorizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    diagnose: DiagnoseConfig = field(default_factory=DiagnoseConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    reading: ReadingConfig = field(default_factory=ReadingConfig)
    hopfield: HopfieldConfig = field(default_factory=HopfieldConfig)
    lsm: LsmConfig = field(default_factory=LsmConfig)

    def validate(self) -> None:
        _check(0 <= self.seed < 2**32, "seed", self.seed, "an integer in [0, 2**32)")
        _check(bool(self.run_name) and "/" not in self.run_name, "run_name", self.run_name, "a folder name")
        for section in SECTIONS:
            getattr(self, section).validate()
        _check(not (self.pretrain.enabled and self.model.task != "classifier"), "pretrain.enabled", True,
               "false for a language model (model.task = \"generator\" is trained directly)")
        _check(self.train.precision == "float32" or self.model.task == "generator", "train.precision",
               self.train.precision, "\"float32\" for a classifier (mixed precision is for language models)")
        _check(self.train.distribute == "none" or self.model.task == "classifier", "train.distribute",
               self.train.distribute, "\"none\" for a language model (data parallelism is for classifiers; README)")
        _check(self.train.distribute == "none" or self.model.readout != "ridge", "train.distribute",
               self.train.distribute, "\"none\" with model.readout = \"ridge\" (a closed-form fit in one process)")
        # the classifier's fine-tuning options (pipeline.classifier.finetune)
        _check(self.train.lr_schedule not in ("slanted_triangular", "one_cycle") or self.model.task == "classifier",
               "train.lr_schedule", self.train.lr_schedule, "constant, step or plateau for a language model")
        for key in ("freeze_embeddings_epochs", "embedding_learning_rate_factor", "discriminative_factor",
                    "gradual_unfreezing"):
            value, off = getattr(self.train, key), getattr(TrainConfig, key)  # the defaults are off
            _check(value == off or self.model.task == "classifier", f"train.{key}", value,
                   f"{str(off).lower()} (off) for a language model")
            _check(value == off or self.model.trainable_embeddings or not key.startswith(("freeze", "embedding")),
                   f"train.{key}", value, f"{str(off).lower()} (off) with model.trainable_embeddings = false")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists) that :func:`from_dict` reads back."""
        return _plain(dataclasses.asdict(self))


SECTIONS = ("corpus", "tokenize", "vectorize", "model", "train", "pretrain", "classify", "generate", "diagnose",
            "forecast", "reading", "hopfield", "lsm")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def nearest(name: str, candidates: typing.Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix naming the closest candidate, or '' when none is close."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown_key_error(key: str, candidates: typing.Iterable[str], where: str) -> PipelineError:
    candidates = sorted(candidates)
    leaf = key.rsplit(".", 1)[-1]
    hint = nearest(leaf, candidates) or f" (valid keys: {', '.join(candidates)})"
    return PipelineError(f"{where}: unknown config key '{key}'{hint}")


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a dataclass field type; ints are accepted for floats."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        _check(isinstance(value, bool), key, value, "true or false")
        return value
    if annotation is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, value, "an integer")
        return value
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        _check(ok, key, value, "a number")
        return float(value)
    if annotation is str:
        _check(isinstance(value, str), key, value, "a string")
        return value
    if origin is tuple:
        _check(isinstance(value, (list, tuple)), key, value, "a list")
        item_type = typing.get_args(annotation)[0]
        if item_type is dict:
            for item in value:
                _check(isinstance(item, dict), key, item, "a table")
            return tuple(dict(item) for item in value)
        return tuple(_coerce(f"{key}[]", item, item_type) for item in value)
    raise TypeError(f"unsupported config annotation {annotation!r} for {key}")


def _build(cls: type, data: dict[str, Any], prefix: str, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        full_key = f"{prefix}{key}"
        if key not in names:
            raise unknown_key_error(full_key, names, where)
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            _check(isinstance(value, dict), full_key, value, f"a table [{full_key}]")
            values[key] = _build(annotation, value, f"{full_key}.", where)
        else:
            values[key] = _coerce(full_key, value, annotation)
    return cls(**values)


def from_dict(data: dict[str, Any], where: str = "config") -> Config:
    """Build and validate a :class:`Config` from nested dicts (a parsed TOML or JSON file)."""
    config = _build(Config, data, "", where)
    try:
        config.validate()
    except PipelineError as error:
        raise PipelineError(f"{where}: {error}") from None
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``--set section.key=value``; the value is TOML (``3``, ``0.5``, ``true``, ``"x"``, ``[1]``).

    A value that is not valid TOML is taken as a bare string, so ``--set run_name=demo`` works.
    """
    if "=" not in text:
        raise PipelineError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise PipelineError(f"--set {text!r}: the key before '=' is empty")
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``--set key=value`` applied."""
    result = _plain(data)
    for text in overrides:
        parts, value = parse_override(text)
        table = result
        for part in parts[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise PipelineError(f"--set {text!r}: '{part}' is not a table")
        table[parts[-1]] = value
    return result


def load(path: str | Path, overrides: typing.Sequence[str] = ()) -> Config:
    """Read a TOML config file, apply ``--set`` overrides, validate; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: config file not found; pass an existing .toml file, e.g. configs/default.toml")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise PipelineError(f"{path}: invalid TOML ({error}); fix the syntax at that line") from None
    return from_dict(apply_overrides(data, overrides), where=str(path))
