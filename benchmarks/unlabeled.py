"""What unlabeled in-domain text is worth to a classifier config: labels hidden from part of a labelled corpus.

The corpus (``--format``/``--path``, any layout ``prepare`` reads) is prepared once with the config's split. A
seeded ``--hide`` share of the training documents then loses its labels: their sentences become a plain text file
(one a line), the other rows a table that keeps every row's split (``corpus.split_column``), so validation and
test are exactly the full corpus's. Each ``--seed`` runs the config through the real CLI, in its own process:

* **labelled part only**: the table alone;
* **+ unlabeled text**: the table with ``corpus.unlabeled_path`` set to the hidden sentences (``--with`` options
  choose what the config does with it, e.g. ``train.self_training``, which the default config does,
  ``train.distill_unlabeled``, ``pretrain.enabled``);
* the same with each ``--also`` override (e.g. ``train.distill_unlabeled=0``: the text feeds the vocabulary only);
* **every label** (``--all-labels``): the full corpus, an upper bound on what the hidden labels were worth.

The table gives test accuracy and macro-F1 of the config (and of an ensemble's recurrent member alone), the char
TF-IDF baseline fitted on the same labels, and train-stage seconds, per seed and their mean.

Usage::

    .venv/bin/python benchmarks/unlabeled.py --seeds 1,2,3                     # the default config, shipped corpus
    .venv/bin/python benchmarks/unlabeled.py --format folders --path ../shared/corpora/aozora/authors \\
        --set corpus.split_sentences=true --all-labels
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import REPOSITORY, run_pipeline

CHAR = "char_tfidf_logistic_regression"


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.toml", help="classifier config (default: the default)")
    parser.add_argument("--format", default="knb", choices=("knb", "table", "folders"), help="corpus.format")
    parser.add_argument("--path", type=Path, default=REPOSITORY / "corpora" / "knb_blog", help="corpus.path")
    parser.add_argument("--hide", type=float, default=0.5, help="share of the training documents whose labels are "
                        "hidden (default 0.5)")
    parser.add_argument("--seeds", default="42", help="comma-separated seeds of the runs (default 42); the split "
                        "and the hidden documents are the first seed's")
    parser.add_argument("--all-labels", action="store_true", help="also run on the full corpus (every label)")
    parser.add_argument("--set", action="append", dest="overrides", default=[], metavar="KEY=VALUE",
                        help="override for every run, e.g. --set corpus.split_sentences=true (repeatable)")
    parser.add_argument("--with", action="append", dest="with_unlabeled", default=[], metavar="KEY=VALUE",
                        help="override for the runs given unlabeled text only (repeatable)")
    parser.add_argument("--also", action="append", default=[], metavar="KEY=VALUE",
                        help="one more run given the unlabeled text, with this override (repeatable: a run each)")
    parser.add_argument("--work-dir", type=Path, help="keep work/, saved_models/ and the split corpus here")
    return parser.parse_args(argv)


def hide_labels(prepared: Path, share: float, seed: int, folder: Path) -> dict:
    """Write ``folder/labeled.csv`` (text, label, doc_id, split) and ``folder/unlabeled.txt`` from the prepared
    table: the sentences of a seeded ``share`` of the training documents lose their labels. Returns counts."""
    table = pd.read_parquet(prepared, columns=["text", "label", "doc_id", "split"])
    documents = np.array(sorted(table.loc[table["split"] == "train", "doc_id"].unique()))
    hidden = np.random.default_rng(seed).choice(documents, int(round(share * len(documents))), replace=False)
    mask = table["doc_id"].isin(set(hidden)).to_numpy()
    folder.mkdir(parents=True, exist_ok=True)
    table[~mask].to_csv(folder / "labeled.csv", index=False)
    (folder / "unlabeled.txt").write_text("".join(text + "\n" for text in table.loc[mask, "text"]), encoding="utf-8")
    return {"labelled training sentences": int(((table["split"] == "train") & ~mask).sum()),
            "unlabeled sentences": int(mask.sum()), "hidden documents": f"{len(hidden)} of {len(documents)}"}


def scores(metrics: dict, key: str) -> tuple[float, float]:
    if key == "recurrent":
        metrics = metrics.get("ensemble", {}).get("recurrent", metrics)
    elif key == CHAR:
        metrics = metrics["baselines"][CHAR]
    return metrics["accuracy"], metrics["macro_f1"]


def main(argv=None) -> int:
    options = parse_arguments(argv)
    seeds = [int(seed) for seed in options.seeds.split(",")]
    config = str((REPOSITORY / options.config).resolve())
    with tempfile.TemporaryDirectory(prefix="unlabeled-") as temporary:
        root = (options.work_dir or Path(temporary)).resolve()
        corpus = [f'corpus.format="{options.format}"', f'corpus.path="{options.path.resolve()}"', 'corpus.name="full"']
        common = [f'work_dir="{root / "work"}"', "classify.examples=[]", *options.overrides]
        # the full corpus's split, prepared once; the split corpus keeps it row by row
        run_pipeline(config, [*corpus, *common, f"seed={seeds[0]}"], stage="prepare")
        counts = hide_labels(root / "work" / "full" / "prepared.parquet", options.hide, seeds[0], root / "split")
        table = ['corpus.format="table"', f'corpus.path="{root / "split" / "labeled.csv"}"', 'corpus.name="labeled"',
                 'corpus.split_column="split"', 'corpus.doc_column="doc_id"', "corpus.split_sentences=false"]
        variants = {"labelled part only": table,
                    "+ unlabeled text": [*table, f'corpus.unlabeled_path="{root / "split" / "unlabeled.txt"}"',
                                         *options.with_unlabeled]}
        for override in options.also:
            variants[f"+ unlabeled text, {override}"] = [*variants["+ unlabeled text"], override]
        if options.all_labels:
            variants["every label"] = corpus
        results = {name: [] for name in variants}
        for seed in seeds:
            for name, overrides in variants.items():
                print(f"seed {seed}: {name} ...", file=sys.stderr, flush=True)
                models = root / "models" / f"variant{list(variants).index(name)}_{seed}"
                run = run_pipeline(config, [*overrides, *common, f"seed={seed}", f'models_dir="{models}"',
                                            'run_name="unlabeled"'])
                metrics = json.loads((models / "unlabeled" / "metrics.json").read_text(encoding="utf-8"))
                results[name].append({"seed": seed, "metrics": metrics, "train_seconds": run.train_seconds})
    print(f"{options.config} on {options.path} (format {options.format}); "
          + ", ".join(f"{key}: {value:,}" if isinstance(value, int) else f"{key}: {value}"
                      for key, value in counts.items()))
    print("| labels | seed | test accuracy / macro-F1 | recurrent member alone | char TF-IDF + LR | train |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rows in results.items():
        for row in [*rows, None] if len(rows) > 1 else rows:
            chosen = rows if row is None else [row]
            means = {key: np.mean([scores(r["metrics"], key) for r in chosen], axis=0)
                     for key in ("model", "recurrent", CHAR)}
            seconds = np.mean([r["train_seconds"] for r in chosen])
            print(f"| {name} | {'mean' if row is None else row['seed']} | "
                  + " | ".join(f"{means[key][0]:.3f} / {means[key][1]:.3f}" for key in ("model", "recurrent", CHAR))
                  + f" | {seconds:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
