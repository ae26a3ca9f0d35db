"""Typed, frozen configuration loaded from ``configs/*.toml``.

A config file has a few top-level keys (``seed``, ``run_name``, ``work_dir``, ``models_dir``), the
frame's tables (``[corpus]``, ``[tokenize]``, ``[vectorize]``, ``[model]``, ``[train]``:
:mod:`pipeline.sections`) and the tables of the one task or tool it is for, its *owner*: the task
``model.task`` names (``[classify]`` and ``[pretrain]`` for the classifier, ``[generate]`` for the
generator, ...), or the tool whose command reads it (``[lsm]`` for ``pipeline lsm``). Each task and
tool owns its sections next to its code and registers them (:mod:`pipeline.registry`). Every key is
checked: an unknown key or table is an error that names the nearest valid one (a table another task
owns says whose it is), and every value is checked for type and range, so a typo never silently
falls back to a default.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import registry
from pipeline.errors import PipelineError
from pipeline.sections import (
    CorpusConfig,
    ModelConfig,
    TokenizeConfig,
    TrainConfig,
    VectorizeConfig,
    check,
)


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration of one run: the frame's sections and its owner's.

    ``owner`` is the task or tool the config is for ("" at construction: the task ``model.task``
    names); ``sections`` holds the owner's sections by name, each filled with its defaults when the
    file has none. They read as attributes: ``config.classify``, ``config.lsm``.
    """

    seed: int = 42  # drives every random choice (split, init, dropout, batching)
    run_name: str = "default"  # saved_models/<run_name>/
    work_dir: str = "work"  # intermediate artifacts: work/<corpus name>/
    models_dir: str = "saved_models"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    vectorize: VectorizeConfig = field(default_factory=VectorizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    owner: str = ""
    sections: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = self.owner or self.model.task
        object.__setattr__(self, "owner", owner)
        registered = registry.sections()
        try:
            wanted = registry.owner(owner).sections
        except KeyError:  # an unknown task: validate() says so
            wanted = ()
        filled = {name: self.sections.get(name) or registered[name].config_class() for name in wanted}
        filled.update({name: value for name, value in self.sections.items() if name not in filled})
        object.__setattr__(self, "sections", filled)

    def __getattr__(self, name: str) -> Any:  # only called for what is not a field: the owner's sections
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        if name.startswith("__") or name not in registry.sections():
            raise AttributeError(name)
        raise AttributeError(f"a {self.__dict__.get('owner')} config has no [{name}] section")

    def replace(self, **changes: Any) -> Config:
        """A copy with fields (``model=...``) or the owner's sections (``pretrain=...``) replaced."""
        names = {item.name for item in dataclasses.fields(self)}
        section_changes = {key: value for key, value in changes.items() if key not in names}
        unknown = set(section_changes) - set(self.sections)
        if unknown:
            raise TypeError(f"a {self.owner} config has no section {sorted(unknown)}")
        fields_changed = {key: value for key, value in changes.items() if key in names}
        return dataclasses.replace(self, **fields_changed, sections={**self.sections, **section_changes})

    def validate(self) -> None:
        check(0 <= self.seed < 2**32, "seed", self.seed, "an integer in [0, 2**32)")
        check(bool(self.run_name) and "/" not in self.run_name, "run_name", self.run_name, "a folder name")
        task = registry.task(self.model.task)
        for name in FRAME_SECTIONS:
            getattr(self, name).validate()
        for section in self.sections.values():
            section.validate()
        if self.owner == task.name:
            task.validate(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists) that :func:`from_dict` reads back: top-level keys, the
        frame's sections and the owner's."""
        data = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)
                if item.name not in ("owner", "sections")}
        data.update(self.sections)
        return _plain({key: dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
                       for key, value in data.items()})


FRAME_SECTIONS = ("corpus", "tokenize", "vectorize", "model", "train")


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
        check(isinstance(value, bool), key, value, "true or false")
        return value
    if annotation is int:
        check(isinstance(value, int) and not isinstance(value, bool), key, value, "an integer")
        return value
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        check(ok, key, value, "a number")
        return float(value)
    if annotation is str:
        check(isinstance(value, str), key, value, "a string")
        return value
    if origin is tuple:
        check(isinstance(value, (list, tuple)), key, value, "a list")
        item_type = typing.get_args(annotation)[0]
        if item_type is dict:
            for item in value:
                check(isinstance(item, dict), key, item, "a table")
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
            check(isinstance(value, dict), full_key, value, f"a table [{full_key}]")
            values[key] = _build(annotation, value, f"{full_key}.", where)
        else:
            values[key] = _coerce(full_key, value, annotation)
    return cls(**values)


def _owner_of(data: dict[str, Any], owner: str | None) -> str:
    """The task or tool a parsed config is for: ``owner`` (a tool's command), else its ``model.task``."""
    if owner:
        return owner
    model = data.get("model")
    task = model.get("task") if isinstance(model, dict) else None
    return task if isinstance(task, str) else ModelConfig.task


def from_dict(data: dict[str, Any], where: str = "config", owner: str | None = None) -> Config:
    """Build and validate a :class:`Config` from nested dicts (a parsed TOML or JSON file).

    ``owner``: the tool whose command reads the config; None for a task's config (``model.task``).
    Tables that the owner does not use are errors, with the name of the task or tool that owns them.
    """
    owner = _owner_of(data, owner)
    registered = registry.sections()
    try:
        allowed = registry.owner(owner).sections
    except KeyError:
        registry.task(owner)  # raises the one-line "model.task must be one of ..."
        raise
    top_level = {item.name for item in dataclasses.fields(Config)} - {"owner", "sections"}
    frame_data, section_data = {}, {}
    for key, value in data.items():
        if key in top_level:
            frame_data[key] = value
        elif key in allowed:
            check(isinstance(value, dict), key, value, f"a table [{key}]")
            section_data[key] = _build(registered[key].config_class, value, f"{key}.", where)
        elif key in registered:
            readers = [f"model.task = \"{name}\"" for name, task in registry.tasks().items() if key in task.sections]
            readers += [f"`pipeline {name}`" for name, tool in registry.tools().items() if key in tool.sections]
            raise PipelineError(f"{where}: [{key}] is read by {' and '.join(readers)}, not by a {owner} config; "
                                "remove it, or put it in a config of its own")
        else:
            raise unknown_key_error(key, top_level | set(allowed), where)
    config = _build(Config, frame_data, "", where)
    config = dataclasses.replace(config, owner=owner, sections=section_data)
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


def load(path: str | Path, overrides: typing.Sequence[str] = (), owner: str | None = None) -> Config:
    """Read a TOML config file, apply ``--set`` overrides, validate; errors name the file.

    ``owner``: the tool whose command reads it (None: the task ``model.task`` names)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: config file not found; pass an existing .toml file, e.g. configs/default.toml")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise PipelineError(f"{path}: invalid TOML ({error}); fix the syntax at that line") from None
    return from_dict(apply_overrides(data, overrides), where=str(path), owner=owner)
