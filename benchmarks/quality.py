"""Classifier quality and cost on a labelled corpus: one table, every figure measured in this run.

Each classifier config (by default every ``configs/*.toml`` whose ``model.task`` is ``classifier``;
``--config`` picks others) is run through the real CLI in its own process
(``python -m pipeline run CONFIG --set ...``), exactly as a user would, on the corpus given by
``--format`` and ``--path`` (with any ``--set`` overrides for every run). The table shows, per config:
test accuracy and macro-F1 (and, for an ensemble, its recurrent member's alone), the gap to the character n-gram
TF-IDF baseline, seconds of the train
stage (pretraining not included), wall time of the whole run and the peak resident memory of the
process; above them the three baselines the evaluate stage computed on the same test split (majority
class, token TF-IDF and character 1-3-gram TF-IDF, each with logistic regression).

The corpus is prepared, tokenized and vectorized by the first run; later runs find those stages up
to date unless their config changes them.

Usage::

    .venv/bin/python benchmarks/quality.py                      # every classifier config, shipped corpus
    .venv/bin/python benchmarks/quality.py --format folders --path ../shared/corpora/aozora/authors \\
        --set corpus.split_sentences=true --config configs/lstm.toml --config configs/gru.toml
    .venv/bin/python benchmarks/quality.py --format table --path my_tables/ --set train.epochs=5
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import tomllib
from pathlib import Path

from common import REPOSITORY, run_pipeline

BASELINES = (("majority", "majority class"), ("tfidf_logistic_regression", "token uni+bigram TF-IDF + LR"),
             ("char_tfidf_logistic_regression", "char 1-3-gram TF-IDF + LR"))


def classifier_configs() -> list[str]:
    """The shipped configs that train a classifier: a ``[model]`` table whose task is (by default) classifier."""
    found = []
    for path in sorted((REPOSITORY / "configs").glob("*.toml")):
        model = tomllib.loads(path.read_text(encoding="utf-8")).get("model")
        if model is not None and model.get("task", "classifier") == "classifier":
            found.append(str(path.relative_to(REPOSITORY)))
    return found


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="knb", choices=("knb", "table", "folders"),
                        help="corpus.format (default: knb)")
    parser.add_argument("--path", type=Path, default=REPOSITORY / "corpora" / "knb_blog",
                        help="corpus.path (default: the shipped corpora/knb_blog)")
    parser.add_argument("--config", action="append", dest="configs",
                        help="classifier config (repeatable; default: every configs/*.toml with model.task classifier)")
    parser.add_argument("--set", action="append", dest="overrides", default=[], metavar="KEY=VALUE",
                        help="override for every run, e.g. --set corpus.split_sentences=true (repeatable)")
    parser.add_argument("--work-dir", type=Path, help="keep work/ and saved_models/ here (default: temporary)")
    return parser.parse_args(argv)


def run_config(config: str, root: Path, options: argparse.Namespace) -> dict:
    """``pipeline run CONFIG`` on the corpus in a fresh process: its metrics, times and peak RSS (None if it failed)."""
    name = Path(config).stem
    overrides = [
        f'corpus.format="{options.format}"', f'corpus.path="{options.path.resolve()}"', 'corpus.name="quality"',
        f'work_dir="{root / "work"}"', f'models_dir="{root / "models"}"', f'run_name="{name}"',
        "classify.examples=[]", *options.overrides,
    ]
    try:
        finished = run_pipeline(str(Path(config).resolve()), overrides)
    except SystemExit as failure:  # one broken config leaves the others' rows
        print(failure, file=sys.stderr)
        return {"config": config, "metrics": None}
    metrics = json.loads((root / "models" / name / "metrics.json").read_text(encoding="utf-8"))
    return {"config": config, "metrics": metrics, "train_seconds": finished.train_seconds,
            "wall_seconds": finished.wall_seconds, "peak_rss_gib": finished.peak_rss_gib}


def gap(scores: dict, char: dict | None) -> str:
    """``+0.012 / -0.003``: accuracy and macro-F1 minus the char baseline's; empty without that baseline."""
    if char is None:
        return ""
    return f"{scores['accuracy'] - char['accuracy']:+.3f} / {scores['macro_f1'] - char['macro_f1']:+.3f}"


def table(rows: list[dict]) -> list[str]:
    """The markdown table: the baselines of the first run that finished, then one row per config."""
    finished = [row for row in rows if row["metrics"]]
    baselines = finished[0]["metrics"]["baselines"] if finished else {}
    lines = ["| model | test accuracy | macro-F1 | − char TF-IDF (accuracy / macro-F1) | train | wall | peak RSS |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, label in BASELINES:
        if key in baselines:
            scores = baselines[key]
            detail = f" ({scores['label']})" if "label" in scores else f" (C={scores['C']:g})" if "C" in scores else ""
            lines.append(f"| {label}{detail} | {scores['accuracy']:.3f} | {scores['macro_f1']:.3f} | | | | |")
    for row in rows:
        metrics = row["metrics"]
        if metrics is None:
            lines.append(f"| `{row['config']}` | failed | | | | | |")
            continue
        char = metrics["baselines"].get("char_tfidf_logistic_regression")
        lines.append(f"| `{row['config']}` | {metrics['accuracy']:.3f} | {metrics['macro_f1']:.3f} | "
                     f"{gap(metrics, char)} | "
                     f"{row['train_seconds']:.0f} s | {row['wall_seconds']:.0f} s | {row['peak_rss_gib']:.2f} GiB |")
        if "ensemble" in metrics:  # an ensemble: its recurrent member alone too (issue 18: the gap to char TF-IDF)
            member = metrics["ensemble"]["recurrent"]
            lines.append(f"| `{row['config']}`: its recurrent member alone | {member['accuracy']:.3f} | "
                         f"{member['macro_f1']:.3f} | {gap(member, char)} | | | |")
    differing = [row["config"] for row in finished if row["metrics"]["baselines"] != baselines]
    if differing:  # another tokenization or seed: each gap above is to that run's own baseline
        lines.append(f"(baselines differ in: {', '.join(differing)}; their gaps are to their own char baseline)")
    return lines


def main(argv=None) -> int:
    options = parse_arguments(argv)
    configs = options.configs or classifier_configs()
    with tempfile.TemporaryDirectory(prefix="quality-") as temporary:
        root = options.work_dir or Path(temporary)
        rows = []
        for config in configs:
            print(f"running {config} ...", file=sys.stderr, flush=True)
            rows.append(run_config(config, root, options))
    first = next((row["metrics"] for row in rows if row["metrics"]), None)
    size = f"; {first['test_size']} test sentences, {len(first['labels'])} labels" if first else ""
    print(f"corpus {options.path} (format {options.format}){size}")
    print("\n".join(table(rows)))
    return 0 if all(row["metrics"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
