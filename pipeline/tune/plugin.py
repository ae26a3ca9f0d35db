"""``pipeline tune`` declares itself to the frame (:mod:`pipeline.registry`): the ``[tune]`` section, the tool.

A config for ``pipeline tune`` is a task's config (``model.task`` picks the task, whose search space is
the default) with an optional ``[tune]`` table that only the tune command reads: it is taken out before
the task's config is checked, and the best config it writes holds no ``[tune]``, so ``pipeline run``
takes it as it is. Light on purpose: dataclasses and names only.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import registry
from pipeline.errors import PipelineError
from pipeline.sections import check, one_of

# What a [[tune.parameters]] table may hold: the config key, then a range (low, high, optional log and step)
# or a list of choices.
PARAMETER_KEYS = ("key", "low", "high", "log", "step", "choices")


@dataclass(frozen=True)
class TuneConfig:
    """How ``pipeline tune`` searches (``pipeline.tune``); the defaults suit a first search on any corpus."""

    # the objective, one of the task's validation metrics: classifier macro_f1 | accuracy, generator perplexity;
    # "": the task's first (macro-F1 for a classifier: it weighs the rare labels as much as the frequent ones)
    metric: str = ""
    # [[tune.parameters]] tables: {key = "train.learning_rate", low = 1e-4, high = 1e-2, log = true} or
    # {key = "model.ensemble", choices = ["none", "char_ngram"]}; each replaces the task's default range for its
    # key or adds a key to the search
    parameters: tuple[dict, ...] = ()
    exclude: tuple[str, ...] = ()  # keys of the task's default search space to leave as the config has them
    only: bool = False  # search [[tune.parameters]] alone, none of the task's defaults
    pruner: str = "median"  # median (stop a trial below the median curve) | successive_halving | none
    startup_trials: int = 5  # trials TPE samples at random and the pruner waits for before it judges
    warmup_epochs: int = 1  # epochs of a trial before the pruner may stop it
    start_from_config: bool = True  # trial 0 trains the config as given: the score to beat, in the same table

    def validate(self) -> None:
        one_of("tune.pruner", self.pruner, ("median", "successive_halving", "none"))
        check(self.startup_trials >= 0, "tune.startup_trials", self.startup_trials, ">= 0")
        check(self.warmup_epochs >= 0, "tune.warmup_epochs", self.warmup_epochs, ">= 0")
        for position, table in enumerate(self.parameters):
            where = f"tune.parameters[{position}]"
            for key in table:
                if key not in PARAMETER_KEYS:
                    from pipeline.config import nearest

                    hint = nearest(key, PARAMETER_KEYS) or f" (valid keys: {', '.join(PARAMETER_KEYS)})"
                    raise PipelineError(f"unknown config key '{where}.{key}'{hint}")
            check(isinstance(table.get("key"), str) and "." in table.get("key", ""), f"{where}.key",
                  table.get("key"), 'a dotted config key such as "train.learning_rate"')
            ranged, listed = "low" in table or "high" in table, "choices" in table
            check(ranged != listed, where, table, "a range (low and high) or a list of choices, one of the two")
            if listed:
                check(isinstance(table["choices"], list) and len(table["choices"]) >= 1, f"{where}.choices",
                      table["choices"], "a non-empty list")
            else:
                low, high = table.get("low"), table.get("high")
                numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
                check(numbers and low <= high, f"{where}.high", high, f"a number >= low ({low!r})")
                check(not table.get("log") or low > 0, f"{where}.low", low, "> 0 with log = true")


registry.register_section("tune", TuneConfig, owner="tune")
registry.register_tool(registry.Tool(
    "tune", sections=("tune",),
    description="search a task's hyperparameters on the validation split (Optuna); write the best config"))
