"""What ``pipeline tune`` leaves in its run folder: the best config (TOML), the trials (CSV), the search (PNG).

* ``best_config.toml``: the config as given (file and ``--set``, without ``[tune]``) with the best trial's
  values; ``pipeline run`` takes it as it is. Comments at the top say where it comes from.
* ``trials.csv``: one row per trial: number, state, the validation metric(s), duration, whether it trained
  the config as given, what stopped it, then one column per searched key.
* ``search.png``: the optimisation history (every trial, the best so far), the trials across the searched
  parameters (each axis scaled to its range, a line per finished trial coloured by its score) and, with
  enough finished trials, the parameters' importances (fANOVA, seeded).
* ``tune.json``: the objective, the best and the config's own score, the study's storage.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline import seeds
from pipeline.tune.space import with_values
from pipeline.tune.study import FROM_CONFIG, Job

BEST_CONFIG, TRIALS, PLOT, SUMMARY = "best_config.toml", "trials.csv", "search.png", "tune.json"


# ------------------------------------------------------------------ TOML
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"TOML has no value for {value!r} here")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(key)} = {_toml_value(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def toml_text(data: dict, header: str = "") -> str:
    """``data`` (nested dicts: a config) as TOML: top-level keys, then ``[tables]`` and ``[[arrays of tables]]``."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]

    def table(prefix: str, content: dict) -> None:
        plain = {key: value for key, value in content.items()
                 if not isinstance(value, dict) and not _is_table_array(value)}
        if prefix and (plain or not content):
            lines.extend(["", f"[{prefix}]"])
        lines.extend(f"{_toml_key(key)} = {_toml_value(value)}" for key, value in plain.items())
        for key, value in content.items():
            name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
            if isinstance(value, dict):
                table(name, value)
            elif _is_table_array(value):
                for item in value:
                    lines.extend(["", f"[[{name}]]"])
                    lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items())

    table("", data)
    return "\n".join(lines).lstrip("\n") + "\n"


# ------------------------------------------------------------------ the table of trials
def trials_table(study: Any, job: Job) -> pd.DataFrame:
    """One row per trial of ``study``, in order (see the module docstring for the columns)."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row = {"number": trial.number, "state": trial.state.name.lower()}
        for name in job.search.metrics:
            row[f"validation_{name}"] = trial.user_attrs.get(f"validation_{name}", math.nan)
        row["duration_seconds"] = round(trial.duration.total_seconds(), 1) if trial.duration else math.nan
        row["from_config"] = bool(trial.user_attrs.get(FROM_CONFIG, False))
        row["stopped_by"] = trial.user_attrs.get("stopped_by", "")
        row.update({key: trial.params.get(key) for key in job.space})
        rows.append(row)
    columns = ["number", "state", *(f"validation_{name}" for name in job.search.metrics), "duration_seconds",
               "from_config", "stopped_by", *job.space]
    return pd.DataFrame(rows, columns=columns)


def importances(study: Any, job: Job) -> dict[str, float]:
    """fANOVA importance of each searched key for the objective; {} with fewer than 3 complete trials."""
    import optuna

    complete = [trial for trial in study.get_trials(deepcopy=False) if trial.state.name == "COMPLETE"]
    if len(complete) < 3 or len(job.space) < 2:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seeds.child_seed(job.config.seed, "tune-fanova"))
    try:
        return optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError):  # e.g. every trial scored the same
        return {}


# ------------------------------------------------------------------ the plot
def plot_search(table: pd.DataFrame, job: Job, weights: dict[str, float], path: Path) -> None:
    """``search.png``: history, trials across the parameters and importances (see the module docstring)."""
    from pipeline.plots import pyplot, save

    plt = pyplot()
    value_column = f"validation_{job.metric}"
    panels = 3 if weights else 2
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), squeeze=False)
    history, across = axes[0][0], axes[0][1]
    complete = table[table["state"] == "complete"]
    for state, marker in (("complete", "o"), ("pruned", "x")):
        part = table[table["state"] == state]
        if state == "pruned":  # a pruned trial has no score: drawn at the bottom of the panel
            part = part.assign(**{value_column: complete[value_column].min() if len(complete) else 0.0})
        history.scatter(part["number"], part[value_column], marker=marker, label=state, alpha=0.8)
    if len(complete):
        best = complete[value_column].cummax() if job.direction == "maximize" else complete[value_column].cummin()
        history.step(complete["number"], best, where="post", color="black", label="best so far")
        own = complete[complete["from_config"]]
        if len(own):
            history.axhline(own[value_column].iloc[0], color="grey", linestyle="--", label="config as given")
    history.xaxis.get_major_locator().set_params(integer=True)
    history.set_xlabel("trial")
    history.set_ylabel(f"validation {job.metric}")
    history.set_title("optimisation history")
    history.legend(fontsize=8)
    keys = list(job.space)
    if len(complete):
        scores = complete[value_column].to_numpy(dtype=float)
        span = np.ptp(scores) or 1.0
        colours = plt.get_cmap("viridis")
        for _, row in complete.iterrows():
            shade = (row[value_column] - scores.min()) / span
            if job.direction == "minimize":
                shade = 1 - shade
            across.plot(range(len(keys)), [job.space[key].normalised(row[key]) for key in keys],
                        color=colours(shade), alpha=0.8, marker="o")
    across.set_xticks(range(len(keys)), [key.split(".", 1)[-1] for key in keys], rotation=35, ha="right", fontsize=8)
    across.set_yticks([0, 1], ["low", "high"])
    across.set_title("trials across the parameters (bright: better)")
    if weights:
        names = list(weights)[::-1]
        axes[0][2].barh([name.split(".", 1)[-1] for name in names], [weights[name] for name in names])
        axes[0][2].set_title("parameter importance (fANOVA)")
    figure.suptitle(f"pipeline tune: {job.config.run_name}, {len(table)} trials, {job.direction} validation "
                    f"{job.metric}")
    figure.tight_layout()
    save(figure, path)


# ------------------------------------------------------------------ the run folder
def write_outputs(study: Any, job: Job, study_folder: Path, out: Path) -> dict:
    """Write the four files into the run folder being built at ``out``; return the summary (``tune.json``)."""
    best = study.best_trial
    table = trials_table(study, job)
    own = table[table["from_config"] & (table["state"] == "complete")]
    value_column = f"validation_{job.metric}"
    summary = {
        "metric": f"validation {job.metric}", "direction": job.direction,
        "best_trial": best.number, "best_value": best.value, "best_params": best.params,
        "config_value": float(own[value_column].iloc[0]) if len(own) else None,
        "trials": {state: int(count) for state, count in table["state"].value_counts().items()},
        "space": [parameter.describe() for parameter in job.space.values()],
        "study": str(study_folder), "config": job.where,
    }
    best_data = with_values(job.data, best.params, job.resolved)
    header = (f"pipeline tune: the best of {len(table)} trials on the validation split of {job.where}\n"
              f"validation {job.metric} {best.value:.4f} (trial {best.number})"
              + (f"; the config as given: {summary['config_value']:.4f}" if summary["config_value"] is not None
                 else "") + "\nsearched: " + ", ".join(job.space))
    artifact_io.write_text(out / BEST_CONFIG, toml_text(best_data, header))
    with artifact_io.atomic_path(out / TRIALS, suffix=".csv") as temporary:
        table.to_csv(temporary, index=False)
    plot_search(table, job, importances(study, job), out / PLOT)
    artifact_io.write_json(out / SUMMARY, summary)
    return summary
