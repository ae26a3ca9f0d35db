"""The search space: config keys and their distributions; sampling a trial; writing its values into a config.

A parameter is a dotted config key (``train.learning_rate``) with a range (``low``, ``high``, optional
``log`` and ``step``; integers when both ends are) or a list of ``choices``. A key through an array of
tables (``model.layers.units``) sets that key in every table, so one width serves the whole stack.
The space is the task's default (:attr:`pipeline.registry.Task.search_space`) as ``[tune]`` changes it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import PipelineError


@dataclass(frozen=True)
class Parameter:
    """One searched config key and its distribution (a range or ``choices``)."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    @classmethod
    def from_table(cls, key: str, table: dict) -> Parameter:
        if "choices" in table:
            return cls(key, choices=tuple(table["choices"]))
        return cls(key, table["low"], table["high"], bool(table.get("log", False)), table.get("step"))

    @property
    def integer(self) -> bool:
        """An integer range: both ends (and the step, when given) are ints."""
        ends = (self.low, self.high) + ((self.step,) if self.step is not None else ())
        return self.choices is None and all(isinstance(end, int) and not isinstance(end, bool) for end in ends)

    def suggest(self, trial: Any) -> Any:
        """The value of this parameter in ``trial`` (an ``optuna.Trial``), named by the config key."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (the config's own) is a value this parameter can take."""
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and (not float(value).is_integer() or (value - self.low) % (self.step or 1)):
            return False
        return self.low <= value <= self.high

    def extremes(self) -> list:
        """The values that :func:`probe` tries: both ends of a range, every choice."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.key} in {list(self.choices)}"
        scale = ", log" if self.log else ""
        return f"{self.key} in [{self.low:g}, {self.high:g}{scale}]"

    def normalised(self, value: Any) -> float:
        """``value`` placed in [0, 1] along this parameter's axis (log axes in log space); for plots."""
        if self.choices is not None:
            return self.choices.index(value) / max(1, len(self.choices) - 1) if value in self.choices else math.nan
        low, high, value = float(self.low), float(self.high), float(value)
        if self.log:
            low, high, value = math.log(low), math.log(high), math.log(value)
        return 0.5 if high == low else (value - low) / (high - low)


def resolve(defaults: dict[str, dict], tune: Any) -> dict[str, Parameter]:
    """The task's default parameters ``defaults`` as ``[tune]`` (a :class:`pipeline.tune.plugin.TuneConfig`)
    changes them: without ``exclude``, replaced or added by ``parameters``, none of them with ``only``."""
    for key in tune.exclude:
        if key not in defaults:
            raise PipelineError(f"config key 'tune.exclude' names {key!r}, which the default search space does not "
                                f"hold; it holds {', '.join(defaults)}")
    space = {} if tune.only else {key: Parameter.from_table(key, table) for key, table in defaults.items()
                                  if key not in tune.exclude}
    for table in tune.parameters:
        space[table["key"]] = Parameter.from_table(table["key"], table)
    if not space:
        raise PipelineError("[tune] leaves nothing to search; add [[tune.parameters]] tables or set tune.only = false")
    return space


def get_value(data: dict, key: str) -> Any:
    """The value at dotted ``key`` in nested config ``data`` (the first table of an array of tables); None
    when absent."""
    value: Any = data
    for part in key.split("."):
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def set_value(data: dict, key: str, value: Any, resolved: dict) -> dict:
    """A copy of config ``data`` with dotted ``key`` set to ``value`` (in every table of an array of tables).

    A table that ``data`` lacks is taken from ``resolved`` (the whole resolved config, defaults included),
    so ``model.layers.units`` also works for a file that keeps the default ``[[model.layers]]``.
    """
    result = copy.deepcopy(data)
    parts = key.split(".")

    def assign(table: dict, fallback: Any, position: int) -> None:
        part = parts[position]
        if position == len(parts) - 1:
            table[part] = value
            return
        if part not in table:
            table[part] = copy.deepcopy(fallback.get(part, {})) if isinstance(fallback, dict) else {}
        child = table[part]
        child_fallback = fallback.get(part) if isinstance(fallback, dict) else None
        for index, item in enumerate(child if isinstance(child, list) else [child]):
            if not isinstance(item, dict):
                raise PipelineError(f"[tune] parameter '{key}': '{part}' is not a table in the config")
            nested = child_fallback[index] if isinstance(child_fallback, list) and index < len(child_fallback) \
                else child_fallback
            assign(item, nested, position + 1)

    assign(result, resolved, 0)
    return result


def with_values(data: dict, values: dict[str, Any], resolved: dict) -> dict:
    """A copy of config ``data`` with every ``key: value`` of ``values`` set (:func:`set_value`)."""
    for key, value in values.items():
        data = set_value(data, key, value, resolved)
    return data


def probe(space: dict[str, Parameter], data: dict, resolved: dict, build: Callable[[dict], Any]) -> None:
    """Build the config with each parameter at each extreme alone: a key the config does not take, or a value
    it refuses, is a one-line error now, not after hours of trials."""
    for parameter in space.values():
        for value in parameter.extremes():
            try:
                build(set_value(data, parameter.key, value, resolved))
            except PipelineError as error:
                raise PipelineError(f"[tune] parameter {parameter.describe()}: at {value!r}: {error}") from None
