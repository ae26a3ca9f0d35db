"""What plugs into the frame: config sections, tasks and tools, registered by name (as spaCy's registry).

The frame (config, stages, runs, the CLI's stage commands) looks names up here and never imports a
task or tool folder by name. Each task or tool is a folder with a light ``plugin`` module (dataclasses
and names only; no TensorFlow) that registers, when imported:

* its config sections (:func:`register_section`): ``[classify]``, ``[generate]``, ``[lsm]``, ...,
  each owned by the code that reads it;
* a :class:`Task` (``model.task`` selects it; it trains through the stages) or a :class:`Tool` (a
  command of its own that writes a run folder through :func:`pipeline.workarea.new_run`);
* stages of its own (:func:`pipeline.stages.register`), e.g. the language model's ``pretrain``.

The plugin modules are found through the ``pipeline.plugins`` entry point group of the installed
distributions (``pyproject.toml``), so a new task, in this package or in another one, is a folder
and one entry point line: no frame file changes. They are imported once, on the first look-up.

Callables are named by ``"module:attribute"`` strings and imported on first use (:func:`resolve`),
so a command pays only for the task it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import PipelineError

ENTRY_POINT_GROUP = "pipeline.plugins"


@dataclass(frozen=True)
class Section:
    """A config table ``[name]`` and the frozen dataclass that checks it; ``owner`` names the plugin."""

    name: str
    config_class: type
    owner: str


@dataclass(frozen=True)
class TaskStage:
    """What a task's ``train`` or ``evaluate`` stage is made of.

    Attributes:
        action: ``"module:function"``, called as ``function(config, paths) -> dict``.
        settings: the config values it reads (beyond ``seed``, ``[model]`` and ``[train]`` for train), as a
            function of the config; they go into the stage's fingerprint, nothing else of the config does.
        inputs: extra files it reads (beyond the vectorized corpus), as a function of ``(config, paths)``.
    """

    action: str
    settings: Callable[[Any], dict] = lambda config: {}
    inputs: Callable[[Any, Any], list] = lambda config, paths: []


@dataclass(frozen=True)
class SearchSpace:
    """What ``pipeline tune`` searches for a task (the task's :attr:`Task.search_space` hook returns one).

    Attributes:
        parameters: config key -> distribution, searched together: ``{"low": 1e-4, "high": 1e-2, "log": True}``
            (ints for an integer range, ``"step"`` optional) or ``{"choices": ["none", "char_ngram"]}``. A key
            through an array of tables (``model.layers.units``) sets that key in every table.
        metrics: metric name -> ``"maximize"`` or ``"minimize"``; the first is the default objective.
        score: ``"module:function"``: ``function(config, paths) -> {metric: value}`` on the validation split of
            the run ``paths.run`` that the ``train`` stage just wrote (never the test split).
        curve: the per-epoch Keras log the pruner reads (``val_accuracy``); it moves the way the metric does.
    """

    parameters: dict[str, dict]
    metrics: dict[str, str]
    score: str
    curve: str


@dataclass(frozen=True)
class Task:
    """A kind of model that the stages train: ``model.task = name`` selects it; its runs are of kind ``name``.

    Attributes:
        name: the ``model.task`` value and the run kind recorded in ``run.json``.
        sections: the config sections its configs may hold (its own and ones other plugins own).
        stages: the stages after ``vectorize``, in order (registered stage names), ending with train, evaluate.
        train, evaluate: see :class:`TaskStage`.
        summary: ``"module:function"``: ``function(metrics) -> str``, what ``evaluate`` and ``run`` print.
        after_run: ``"module:function"``: ``function(config) -> int``, what ``run`` does last (classify the
            examples, sample from the prompts, ...); None for nothing.
        specials: vocabulary entries the task adds (``<s>``, ``</s>``); a function of the config.
        validate: checks across sections (``function(config)``; raise PipelineError), e.g. options this task
            does not support.
        custom_objects: modules whose Keras layers must be registered before one of its models is loaded.
        load_extras: ``"module:function"``: ``function(folder, config, model, labels) -> dict``: what else
            :func:`pipeline.runs.load_run` loads and checks (an ensemble member, ...); None for nothing.
        api: what a loaded run of this task does from Python (:class:`pipeline.runs.Run`): ``{"classify":
            "module:function", ...}``, each called as ``function(run, ...)``.
        search_space: ``function(config) -> SearchSpace``: the hyperparameters ``pipeline tune`` searches by
            default for this config, and how a trial is scored; None: the task cannot be tuned.
    """

    name: str
    train: TaskStage
    evaluate: TaskStage
    summary: str
    sections: tuple[str, ...] = ()
    stages: tuple[str, ...] = ("train", "evaluate")
    after_run: str | None = None
    specials: Callable[[Any], tuple[str, ...]] = lambda config: ()
    validate: Callable[[Any], None] = lambda config: None
    custom_objects: tuple[str, ...] = ()
    load_extras: str | None = None
    api: dict[str, str] = field(default_factory=dict)
    search_space: Callable[[Any], SearchSpace] | None = None


@dataclass(frozen=True)
class Tool:
    """A lecture tool: a command of its own, its config sections, its run kind (its ``name``)."""

    name: str
    sections: tuple[str, ...] = ()
    description: str = ""


@dataclass
class _Registry:
    sections: dict[str, Section] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    tools: dict[str, Tool] = field(default_factory=dict)
    loaded: bool = False


_REGISTRY = _Registry()


def register_section(name: str, config_class: type, owner: str) -> type:
    """Register config table ``[name]``, checked by ``config_class`` (a frozen dataclass with ``validate()``)."""
    _REGISTRY.sections[name] = Section(name, config_class, owner)
    return config_class


def register_task(task: Task) -> Task:
    _REGISTRY.tasks[task.name] = task
    return task


def register_tool(tool: Tool) -> Tool:
    _REGISTRY.tools[tool.name] = tool
    return tool


def load_plugins() -> None:
    """Import every plugin module named in the ``pipeline.plugins`` entry point group (once)."""
    if _REGISTRY.loaded:
        return
    from importlib import metadata

    _REGISTRY.loaded = True  # before the imports: a plugin that looks names up does not recurse
    try:
        for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda point: point.name):
            importlib.import_module(entry_point.value.split(":")[0])
    except BaseException:
        _REGISTRY.loaded = False
        raise
    if not _REGISTRY.tasks:
        raise PipelineError("no task is installed (entry point group 'pipeline.plugins' is empty); reinstall the "
                            "package with `make run` or `pip install -e .`")


def sections() -> dict[str, Section]:
    load_plugins()
    return dict(_REGISTRY.sections)


def tasks() -> dict[str, Task]:
    load_plugins()
    return dict(_REGISTRY.tasks)


def tools() -> dict[str, Tool]:
    load_plugins()
    return dict(_REGISTRY.tools)


def task(name: str) -> Task:
    """The task registered as ``name``; an unknown name is a user error naming the installed ones."""
    known = tasks()
    if name not in known:
        raise PipelineError(f"config key 'model.task' = {name!r} is invalid: it must be one of "
                            + ", ".join(repr(known_name) for known_name in sorted(known)))
    return known[name]


def owner(name: str) -> Task | Tool:
    """The task or tool called ``name`` (a config's owner)."""
    found = tasks().get(name) or tools().get(name)
    if found is None:
        raise KeyError(name)
    return found


def resolve(reference: str) -> Any:
    """The object a ``"module:attribute"`` string names, imported now."""
    module, attribute = reference.split(":")
    return getattr(importlib.import_module(module), attribute)
