"""Language-model quality and cost on a plain-text corpus: one table, every figure measured in this run.

For a corpus given as a file or a folder with train/valid/test files (``corpus.format = "text"``),
each language-model config is run through the real CLI in its own process
(``python -m pipeline run CONFIG --set ...``), exactly as a user would. The table shows, per config:
validation and test perplexity (every token and one ``</s>`` per sentence predicted), the
interpolated modified Kneser-Ney 3-gram and 4-gram perplexity of the same test sentences (computed
by the evaluate stage on the same vocabulary), the model's gap to each in percent, the test
perplexity of the mixture ``w p_model + (1 - w) p_KN4`` with its weight ``w`` (chosen on validation
by the evaluate stage), epochs run (of every member, for ``model.members``), training tokens per
second (predicted training tokens x epochs / seconds of the train stage), wall time of the whole
run and the peak resident memory of the process; below the table, each member's test perplexity
alone for a config with ``model.members``. The speed of ``model.output = "adaptive"`` is printed
as a ratio to ``"full"`` on the same model and data (the first pair of configs that differ in the
output layer only).

The corpus is prepared, tokenized and vectorized once (the first run); the other runs find those
stages up to date, so the train and evaluate stages are what differs.

Usage::

    .venv/bin/python benchmarks/lm_quality.py ../shared/corpora/aozora/lm              # the default configs
    .venv/bin/python benchmarks/lm_quality.py corpus/ --config configs/generator_full.toml \\
        --config configs/generator.toml --set train.epochs=3 --tokenize whitespace --min-count 2
    # GiNZA words against SentencePiece pieces: compare the "test per character" column (each row's Kneser-Ney
    # baselines are fitted on its own tokens; the table's baseline rows are the first run's)
    .venv/bin/python benchmarks/lm_quality.py ../shared/corpora/aozora/lm --set corpus.split_sentences=true \\
        --config configs/generator.toml --config 'configs/generator.toml;tokenize.method="sentencepiece"'
    # a config with its own overrides after ';' (here: bfloat16 mixed precision)
    .venv/bin/python benchmarks/lm_quality.py corpus/ --config configs/generator.toml \\
        --config 'configs/generator.toml;train.precision="mixed_bfloat16"'
    # the deeper tied AWD-like model and weight averaging against the default, 4 epochs each
    .venv/bin/python benchmarks/lm_quality.py ../shared/corpora/aozora/lm --set corpus.split_sentences=true \\
        --set train.epochs=4 --set train.time_limit_minutes=0.0 --config configs/generator.toml \\
        --config 'configs/generator.toml;train.average="swa";train.average_start=3' \\
        --config 'configs/generator_awd.toml;train.average_start=3'
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import run_pipeline

DEFAULT_CONFIGS = ("configs/generator_full.toml", "configs/generator.toml")


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="plain-text file, or folder with *train*/*valid*/*test* files")
    parser.add_argument("--config", action="append", dest="configs", help="LM config, optionally followed by "
                        "';KEY=VALUE' overrides for that run only (repeatable; default: "
                        + ", ".join(DEFAULT_CONFIGS) + ")")
    parser.add_argument("--set", action="append", dest="overrides", default=[], metavar="KEY=VALUE",
                        help="override for every run, e.g. --set train.epochs=2 (repeatable)")
    parser.add_argument("--tokenize", default="ginza", choices=("ginza", "whitespace", "char", "sentencepiece"),
                        help="tokenize.method for the corpus (default: ginza)")
    parser.add_argument("--min-count", type=int, default=2, help="vectorize.min_count (default: 2)")
    parser.add_argument("--work-dir", type=Path, help="keep work/ and saved_models/ here (default: temporary)")
    return parser.parse_args(argv)


def run_config(config: str, corpus: Path, root: Path, options: argparse.Namespace, index: int = 0) -> dict:
    """``pipeline run CONFIG`` on the corpus in a fresh process; its metrics, times and peak RSS."""
    config, *own = config.split(";")
    name = Path(config).stem + (f"_{index}" if own else "")
    overrides = [
        'corpus.format="text"', f'corpus.path="{corpus.resolve()}"', 'corpus.name="lm_quality"',
        f'tokenize.method="{options.tokenize}"', f"vectorize.min_count={options.min_count}",
        f'work_dir="{root / "work"}"', f'models_dir="{root / "models"}"', f'run_name="{name}"',
        "generate.prompts=[]", *options.overrides, *own,
    ]
    for override in (*options.overrides, *own):  # a run_name of the user's, set after ours, names the run folder
        key, _, value = override.partition("=")
        if key.strip() == "run_name":
            name = value.strip().strip("\"'")
    finished = run_pipeline(config, overrides)
    run = root / "models" / name
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    history = (run / "history.csv").read_text(encoding="utf-8").strip().splitlines()
    epochs = len(history) - 1
    return {
        "config": ";".join([config, *own]), "metrics": metrics, "epochs": epochs,
        "wall_seconds": finished.wall_seconds, "train_seconds": finished.train_seconds,
        "tokens_per_second": metrics["tokens"]["train"] * epochs / finished.train_seconds,
        "peak_rss_gib": finished.peak_rss_gib,
        "output": json.loads((run / "config.json").read_text(encoding="utf-8"))["model"]["output"],
    }


def speed_ratio(rows: list[dict]) -> tuple[str, str, float] | None:
    """tokens/s of the first adaptive run over the first full-softmax run."""
    full = next((r for r in rows if r["output"] == "full"), None)
    adaptive = next((r for r in rows if r["output"] == "adaptive"), None)
    if full is None or adaptive is None:
        return None
    return full["config"], adaptive["config"], adaptive["tokens_per_second"] / full["tokens_per_second"]


def versus(metrics: dict, baseline: str) -> str:
    """The model's test perplexity against a Kneser-Ney model's (``kneser_ney_trigram``, ``kneser_ney_4gram``) in
    percent, negative where the model wins; each variant is compared with the n-grams of its own run."""
    reference = metrics.get("baselines", {}).get(baseline, {}).get("perplexity")
    test = metrics["perplexity"].get("test")
    return "" if reference is None or test is None else f"{100 * (test / reference - 1):+.1f}%"


def per_character(metrics: dict) -> str:
    """Test perplexity per character (exp of the test NLL over its characters, one per ``</s>``): comparable
    across tokenizations (words, pieces, characters), where perplexity per token is not."""
    value = metrics.get("perplexity_per_character", {}).get("test")
    return "" if value is None else f"{value:.2f}"


def interpolated(metrics: dict) -> str:
    """Test perplexity of ``w p_model + (1 - w) p_KN4``, ``w`` chosen on validation by the evaluate stage."""
    mixture = metrics.get("interpolated")
    return "" if mixture is None else f"{mixture['perplexity']['test']:.1f} ({mixture['model_weight']:.2f})"


def main(argv=None) -> int:
    options = parse_arguments(argv)
    configs = options.configs or list(DEFAULT_CONFIGS)
    with tempfile.TemporaryDirectory(prefix="lm-quality-") as temporary:
        root = options.work_dir or Path(temporary)
        rows = []
        for index, config in enumerate(configs):
            print(f"running {config} ...", file=sys.stderr, flush=True)
            rows.append(run_config(config, options.corpus, root, options, index))
    baselines = rows[0]["metrics"].get("baselines", {})
    print(f"corpus {options.corpus} (tokenize {options.tokenize}, min_count {options.min_count}); "
          f"{rows[0]['metrics']['tokens']['train']:,} training tokens")
    header = ("| model | validation perplexity | test perplexity | test per character | vs KN3 | vs KN4 "
              "| mixed with KN4: test (weight) "
              "| epochs | train tokens/s | speed vs first | wall | peak RSS |")
    print(header)
    print("| --- " * header.count(" | ") + "| --- |")
    for key, label in (("kneser_ney_trigram", "Kneser-Ney 3-gram (modified, interpolated)"),
                       ("kneser_ney_4gram", "Kneser-Ney 4-gram (modified, interpolated)")):
        if key in baselines:
            print(f"| {label} | | {baselines[key]['perplexity']:.1f} | | | | | | | | | |")
    for row in rows:
        perplexity = row["metrics"]["perplexity"]
        print(f"| `{row['config']}` ({row['output']} softmax) | {perplexity.get('validation', float('nan')):.1f} | "
              f"{perplexity.get('test', float('nan')):.1f} | {per_character(row['metrics'])} | "
              f"{versus(row['metrics'], 'kneser_ney_trigram')} | "
              f"{versus(row['metrics'], 'kneser_ney_4gram')} | "
              f"{interpolated(row['metrics'])} | {row['epochs']} | {row['tokens_per_second']:,.0f} | "
              f"{row['tokens_per_second'] / rows[0]['tokens_per_second']:.2f}x | "
              f"{row['wall_seconds'] / 60:.1f} min | {row['peak_rss_gib']:.2f} GiB |")
    for row in rows:  # model.members: each member alone beside the ensemble's row above
        members = row["metrics"].get("members", {}).get("test")
        if members:
            print(f"`{row['config']}`: test perplexity of each of its {len(members)} members alone: "
                  + ", ".join(f"{value:.1f}" for value in members))
    ratio = speed_ratio(rows)
    if ratio:
        print(f"training speed, adaptive / full softmax ({ratio[1]} / {ratio[0]}): {ratio[2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
