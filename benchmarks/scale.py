"""How the pipeline scales with the corpus: time per sentence and peak memory of every stage at several sizes.

Corpora (``--sizes``, default 100k, 1M and 5M sentences) are made by seeded recombination of the Aozora
authorship corpus (``../shared/corpora/aozora/authors/``: Soseki and Dazai, see its README): every sentence
of every work is cut into clauses at ``、``; a made sentence takes one author (each with probability 1/2)
and two or three of that author's clauses at random, joined by ``、`` and ended by ``。``. So sentences are
mostly new (few are exact repeats: ``prepare`` drops those) and each has a label, its author. Each size is
written twice into the scratch folder, the same sentences in the same order:

* ``text/corpus.txt``: one sentence a line and a blank line after every 20 (a paragraph is a document for
  the split), ``corpus.format = "text"``: the language model's corpus;
* ``table/corpus.tsv``: columns text, label (the author), doc (the paragraph), ``corpus.format = "table"``:
  the classifier's corpus (the text format has no labels).

Every stage runs through the real CLI, one process each (``.venv/bin/pipeline STAGE --config CONFIG --set ...``):
``configs/generator.toml`` on the text file (prepare, tokenize, vectorize, then train with ``train.epochs = 1``)
and ``configs/default.toml`` on the table (the same four). The overrides made on the fly point
``corpus.*``, ``work_dir``, ``models_dir`` and ``run_name`` into the scratch folder and set ``train.epochs = 1``,
``train.tensorboard = false`` and ``train.steps_per_epoch = --train-steps`` (default 1000 batches: the same
training work at every size, so that what grows with the corpus is what the train stage holds per sentence, not
the length of the epoch; ``--train-steps 0`` trains a whole epoch, hours at 5M here) and
``train.validation_rows = --validation-rows`` (default 10000: the epoch validates on a seeded sample of that
many sentences; 0: on the whole validation split, 500,000 sentences at 5M). The train stage's time includes
its set-up, which reads the whole training split's ids (and, for the classifier, its words) and plans the
batches of a whole pass over it; the ``epoch`` row below each ``train`` row is the epoch alone (its training
batches and the validation after them: the per-step time Keras prints, times the steps), what issue 19 asks to
stay flat per token. A config that trains on JAX (``train.backend``) compiles its steps within that epoch.
Per stage the table gives the stage's own seconds (its ``STAGE: done in X s``
log line: the process's imports and the up-to-date checks of the stages before it are left out), sentences (or
training tokens) per second, the peak resident memory of its process (``/usr/bin/time -f %M``), and both as ratios
against the reference row (``--reference``, default 100000 when it is among the sizes, else the smallest) measured
in the same run: the goals are RSS at most 1.5 times the reference's (the vocabulary's counts excepted) and time
per sentence within 20% of it. Training tokens: the tokens the epoch trained on (for the language model, plus one
``</s>`` a sentence): the training split's mean per sentence in ``ids.npz`` times the sentences its batches hold.

The tokenize stage is compared with bare SudachiPy (``SudachiTokenizer(TokenizeConfig()).sudachi.tokenize``
per sentence, reading nothing) over the first ``--sudachi-sentences`` sentences of the same corpus, timed in
this process in the same run.

Usage::

    .venv/bin/python benchmarks/scale.py --sizes 20000,100000           # a few minutes on 2 shared cores
    .venv/bin/python benchmarks/scale.py                                 # 100k, 1M, 5M: about 40 minutes
    .venv/bin/python benchmarks/scale.py --sizes 100000 --skip-train     # the front end alone
    .venv/bin/python benchmarks/scale.py --sizes 100000,1000000,5000000 --until prepare   # prepare alone
    .venv/bin/python benchmarks/scale.py --sizes 100000,1000000 --tasks classifier        # one task
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run from anywhere without installing

AUTHORS = REPOSITORY.parent / "shared" / "corpora" / "aozora" / "authors"
PARAGRAPH_SENTENCES = 20  # sentences of a paragraph (a document of the split)
MIN_CLAUSES, MAX_CLAUSES = 2, 3  # two clauses at least: ~10^9 pairs, so exact repeats stay rare even at 5M
FRONT_END = ("prepare", "tokenize", "vectorize")
STAGES = (*FRONT_END, "train")
TASKS = ("generator", "classifier")
TIME = "/usr/bin/time"  # GNU time: -f %M is the command's own peak RSS in KiB


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000", help="corpus sizes, comma-separated")
    parser.add_argument("--reference", type=int, default=100_000,
                        help="the size the ratios compare with (the smallest size when it is not run)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the recombination and of the pipeline")
    parser.add_argument("--scratch", default="", help="folder for corpora and work folders (default: a temporary "
                        "folder, deleted at the end)")
    parser.add_argument("--sudachi-sentences", type=int, default=100_000,
                        help="sentences bare SudachiPy tokenizes for the tokenize stage's reference")
    parser.add_argument("--skip-train", action="store_true", help="the front end only (as --until vectorize)")
    parser.add_argument("--tasks", default="generator,classifier",
                        help="which of generator (the text file) and classifier (the table) to run, comma-separated")
    parser.add_argument("--tokenize-processes", type=int, default=2,
                        help="after the tokenize stage, run it again with tokenize.processes = N (--force; checked "
                        "to write the same tokens.parquet) for the N-process speed-up; 1: do not")
    parser.add_argument("--train-steps", type=int, default=1000,
                        help="batches of the one training epoch (train.steps_per_epoch); 0: the whole training split")
    parser.add_argument("--validation-rows", type=int, default=10_000,
                        help="validation sentences the training epoch is scored on (train.validation_rows); 0: all")
    parser.add_argument("--from", dest="first", choices=STAGES, default="prepare",
                        help="the first stage measured: with --scratch holding a run of the stages before it at "
                        "the same sizes and seed, they are up to date and only the later ones run, each with "
                        "--force (e.g. --from train to measure training again)")
    parser.add_argument("--until", choices=STAGES, default="train",
                        help="the last stage to run (each stage's process runs the ones before it when they are "
                        "out of date, so only a first part of the stages can be measured alone)")
    arguments = parser.parse_args(argv)
    if arguments.skip_train:
        arguments.until = min(arguments.until, "vectorize", key=STAGES.index)
    return arguments


def clause_pools(root: Path) -> dict[str, list[str]]:
    """Every clause (a piece between 、 and sentence ends, normalised) of every work, per author folder."""
    from pipeline.text.corpora import normalize, split_sentences

    pools: dict[str, list[str]] = {}
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        clauses = []
        for path in sorted(folder.glob("*.txt")):
            for sentence in split_sentences(path.read_text(encoding="utf-8")):
                body = normalize(sentence).rstrip("。！？!?")
                clauses.extend(clause for clause in body.split("、")  # a quote or tab would need CSV quoting
                               if clause.strip() and '"' not in clause and "\t" not in clause)
        pools[folder.name] = clauses
    return pools


def write_corpus(pools: dict[str, list[str]], count: int, seed: int, folder: Path) -> tuple[Path, Path]:
    """``count`` recombined sentences as ``folder/text/corpus.txt`` and ``folder/table/corpus.tsv``."""
    rng = np.random.default_rng(seed)
    authors = sorted(pools)
    sizes = np.array([len(pools[author]) for author in authors])
    text_path, table_path = folder / "text" / "corpus.txt", folder / "table" / "corpus.tsv"
    text_path.parent.mkdir(parents=True, exist_ok=True)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    with open(text_path, "w", encoding="utf-8") as text, open(table_path, "w", encoding="utf-8") as table:
        table.write("text\tlabel\tdoc\n")
        for start in range(0, count, 100_000):  # draws a block at a time: memory stays flat
            block = min(100_000, count - start)
            chosen = rng.integers(0, len(authors), block)
            clauses = rng.integers(MIN_CLAUSES, MAX_CLAUSES + 1, block)
            picks = (rng.random((block, MAX_CLAUSES)) * sizes[chosen][:, None]).astype(np.int64)
            for offset in range(block):
                number = start + offset
                pool = pools[authors[chosen[offset]]]
                sentence = "、".join(pool[index] for index in picks[offset, :clauses[offset]]) + "。"
                text.write(sentence + "\n")
                table.write(f"{sentence}\t{authors[chosen[offset]]}\tp{number // PARAGRAPH_SENTENCES}\n")
                if number % PARAGRAPH_SENTENCES == PARAGRAPH_SENTENCES - 1:
                    text.write("\n")
    return text_path, table_path


@dataclass(frozen=True)
class StageRun:
    stage: str
    seconds: float  # the stage's own time, from its log line
    peak_rss_mib: float
    epoch_seconds: float | None = None  # train: its last epoch, from Keras' progress line


# Keras' end-of-epoch line with verbose=2: "1000/1000 - 81s - 81ms/step - loss: ..."
EPOCH_LINE = re.compile(r"^(\d+)/\1 - [\d.]+\w*s - ([\d.]+)(s|ms|us)/step", re.MULTILINE)
STEP_UNIT = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def epoch_seconds(output: str) -> float | None:
    """The last epoch's seconds in a train stage's output: steps × the per-step time Keras prints (training and
    the validation after it); None when there is no such line."""
    found = EPOCH_LINE.findall(output)
    if not found:
        return None
    steps, per_step, unit = found[-1]
    return int(steps) * float(per_step) * STEP_UNIT[unit]


def pipeline_command() -> list[str]:
    script = Path(sys.executable).parent / "pipeline"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pipeline"]


def run_stage(stage: str, config: str, overrides: list[str], flags: tuple[str, ...] = ()) -> StageRun:
    """``pipeline STAGE --config CONFIG --set ...`` in its own process; exits on failure.

    The peak RSS is what ``/usr/bin/time -f %M`` reports for that process: Linux counts into a child's
    ``ru_maxrss`` the peak of the process it was forked from (up to its ``exec``), so ``wait4`` on a child of
    this process (which holds SudachiPy's dictionary after :func:`bare_sudachi_rate`) would report at least ours.
    """
    command = [*pipeline_command(), stage, "--config", config, *flags]
    for override in overrides:
        command += ["--set", override]
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as log, \
            tempfile.NamedTemporaryFile(mode="r", encoding="utf-8", suffix=".rss") as peak:
        process = subprocess.run([TIME, "-f", "%M", "-o", peak.name, *command], cwd=REPOSITORY, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
        log.seek(0)
        output = log.read()
        peak_kib = peak.read().strip().splitlines()[-1] if process.returncode == 0 else "0"
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-3000:]}")
    found = re.search(rf"\b{stage}: done in ([\d.]+) s", output)
    if not found:
        raise SystemExit(f"{stage}: no 'done in' line (was it skipped?):\n{output[-2000:]}")
    return StageRun(stage, float(found.group(1)), int(peak_kib) / 1024, epoch_seconds(output))


def prepared_sentences(work: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(work / "prepared.parquet").metadata.num_rows


def training_tokens(work: Path, language_model: bool, sentences: int | None = None) -> int:
    """Tokens of the training split in ``ids.npz`` (with one ``</s>`` a sentence for a language model); with
    ``sentences``, of that many of its sentences at the split's mean length (what an epoch of a set number of
    batches reads: its batches are a uniform draw of the split's)."""
    with np.load(work / "ids.npz") as ids:
        count = len(ids["train_offsets"]) - 1
        tokens = ids["train_ids"].size + (count if language_model else 0)
    if sentences is None or sentences >= count:
        return int(tokens)
    return round(tokens / max(count, 1) * sentences)


def batch_size(config: str, overrides: list[str]) -> int:
    from pipeline import config as config_module

    return config_module.load(REPOSITORY / config, overrides).train.batch_size


def bare_sudachi_rate(path: Path, count: int) -> tuple[float, int]:
    """Sentences per second of bare SudachiPy over the first ``count`` sentences of the text file ``path``."""
    from pipeline.sections import TokenizeConfig
    from pipeline.text.sudachi import SudachiTokenizer

    sentences = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                sentences.append(line.strip())
                if len(sentences) == count:
                    break
    tokenize = SudachiTokenizer(TokenizeConfig()).sudachi.tokenize
    tokenize(sentences[0])  # load the dictionary outside the timing
    started = time.perf_counter()
    for sentence in sentences:
        tokenize(sentence)
    return len(sentences) / (time.perf_counter() - started), len(sentences)


@dataclass
class Row:
    size: int
    task: str
    stage: str
    units: int  # sentences, or training tokens for train
    unit: str
    seconds: float
    peak_rss_mib: float


def measure_size(size: int, pools: dict, seed: int, scratch: Path, stages: tuple[str, ...],
                 sudachi_sentences: int, chosen: tuple[str, ...] = TASKS,
                 processes: int = 1, train_steps: int = 0,
                 validation_rows: int = 0) -> tuple[list[Row], float | None]:
    folder = scratch / str(size)
    started = time.perf_counter()
    text_path, table_path = write_corpus(pools, size, seed, folder)
    print(f"\n{size} sentences written in {time.perf_counter() - started:.0f} s to {folder}", flush=True)
    common = [f'work_dir="{folder / "work"}"', f'models_dir="{folder / "models"}"', f"seed={seed}",
              "train.epochs=1", "train.tensorboard=false", f"train.steps_per_epoch={train_steps}",
              f"train.validation_rows={validation_rows}"]
    tasks = {
        "generator": ("configs/generator.toml", [*common, 'corpus.format="text"', f'corpus.path="{text_path}"',
                                                 'corpus.name="scale_text"', 'run_name="scale_generator"']),
        "classifier": ("configs/default.toml", [*common, 'corpus.format="table"', f'corpus.path="{table_path}"',
                                                'corpus.doc_column="doc"', 'corpus.name="scale_table"',
                                                'run_name="scale_classifier"']),
    }
    rows = []
    for task, (config, overrides) in ((task, tasks[task]) for task in chosen):
        work = folder / "work" / ("scale_text" if task == "generator" else "scale_table")
        for stage in stages:
            run = run_stage(stage, config, overrides, ("--force",))  # measured even when up to date
            if stage == "train":
                read = train_steps * batch_size(config, overrides) if train_steps else None
                units, unit = training_tokens(work, task == "generator", read), "tokens"
            else:
                units, unit = (size if stage == "prepare" else prepared_sentences(work)), "sentences"
            rows.append(Row(size, task, stage, units, unit, run.seconds, run.peak_rss_mib))
            print(f"  {task:<10} {stage:<9} {run.seconds:8.1f} s  {units / max(run.seconds, 1e-9):>9.0f} {unit}/s  "
                  f"peak RSS {run.peak_rss_mib:7.0f} MiB", flush=True)
            if stage == "train" and run.epoch_seconds:  # the epoch alone: the stage less its set-up over the split
                rows.append(Row(size, task, "epoch", units, unit, run.epoch_seconds, run.peak_rss_mib))
                print(f"  {task:<10} {'epoch':<9} {run.epoch_seconds:8.1f} s  "
                      f"{units / max(run.epoch_seconds, 1e-9):>9.0f} {unit}/s", flush=True)
            if stage == "tokenize" and processes > 1:  # before vectorize: it rewrites tokens.parquet
                rows.append(tokenize_again(work, config, overrides, processes, rows[-1]))
    if "tokenize" not in stages:
        return rows, None
    rate, sampled = bare_sudachi_rate(text_path, sudachi_sentences)
    print(f"  bare SudachiPy: {rate:.0f} sentences/s over {sampled} sentences (same run)", flush=True)
    return rows, rate


def tokenize_again(work: Path, config: str, overrides: list[str], processes: int, single: Row) -> Row:
    """The tokenize stage once more with ``tokenize.processes = processes`` (``--force``): its row, labelled
    ``tokenize×N``; exits when its ``tokens.parquet`` differs from the one-process stage's by a byte."""
    import hashlib

    def digest() -> str:
        with open(work / "tokens.parquet", "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    before = digest()
    run = run_stage("tokenize", config, [*overrides, f"tokenize.processes={processes}"], ("--force",))
    if digest() != before:
        raise SystemExit(f"{work / 'tokens.parquet'}: {processes} processes wrote other bytes than one process")
    row = Row(single.size, single.task, f"tokenize×{processes}", single.units, single.unit, run.seconds,
              run.peak_rss_mib)
    print(f"  {row.task:<10} {row.stage:<9} {run.seconds:8.1f} s  {row.units / max(run.seconds, 1e-9):>9.0f} "
          f"sentences/s  peak RSS {run.peak_rss_mib:7.0f} MiB (the parent's; same tokens.parquet)  "
          f"{single.seconds / max(run.seconds, 1e-9):.2f}× one process", flush=True)
    return row


def report(rows: list[Row], sudachi: dict[int, float | None], reference_size: int) -> None:
    reference = {(row.task, row.stage): row for row in rows if row.size == reference_size}
    print(f"\nratios against the {reference_size}-sentence row (same run); {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'size':>9} {'task':<10} {'stage':<9} {'units':>11} {'seconds':>8} {'units/s':>9} {'peak RSS':>9} "
          f"{'RSS/ref':>7} {'s per unit/ref':>14}")
    for row in rows:
        base = reference[row.task, row.stage]
        per_unit = (row.seconds / row.units) / (base.seconds / base.units) if base.units and base.seconds else \
            float("nan")
        print(f"{row.size:>9} {row.task:<10} {row.stage:<9} {row.units:>11} {row.seconds:>8.1f} "
              f"{row.units / max(row.seconds, 1e-9):>9.0f} {row.peak_rss_mib:>6.0f} MiB "
              f"{row.peak_rss_mib / base.peak_rss_mib:>7.2f} {per_unit:>14.2f}")
    if not any(row.stage == "tokenize" for row in rows):
        return
    print("\ntokenize stage (1 process) against bare SudachiPy, same corpus, same run:")
    for row in rows:
        if row.stage == "tokenize":
            rate = row.units / max(row.seconds, 1e-9)
            several = [other for other in rows if (other.size, other.task) == (row.size, row.task)
                       and other.stage.startswith("tokenize×")]
            speedup = "".join(f"; {other.stage.split('×')[1]} processes {row.seconds / max(other.seconds, 1e-9):.2f}×"
                              " one (goal >= 1.7 with 2)" for other in several)
            print(f"{row.size:>9} {row.task:<10} {rate:>8.0f} sentences/s = {rate / sudachi[row.size]:.2f} of bare "
                  f"SudachiPy ({sudachi[row.size]:.0f} sentences/s){speedup}")


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    sizes = [int(size) for size in arguments.sizes.split(",") if size.strip()]
    reference = arguments.reference if arguments.reference in sizes else min(sizes)
    pools = clause_pools(AUTHORS)
    print("clauses: " + ", ".join(f"{author} {len(clauses)}" for author, clauses in pools.items()))
    scratch = Path(arguments.scratch) if arguments.scratch else Path(tempfile.mkdtemp(prefix="pipeline-scale-"))
    stages = STAGES[STAGES.index(arguments.first):STAGES.index(arguments.until) + 1]
    if not stages:
        raise SystemExit(f"--from {arguments.first} comes after --until {arguments.until}")
    tasks = tuple(task.strip() for task in arguments.tasks.split(",") if task.strip())
    if not tasks or set(tasks) - set(TASKS):
        raise SystemExit(f"--tasks {arguments.tasks!r}: choose from {', '.join(TASKS)}")
    rows, sudachi = [], {}
    try:
        for size in sizes:
            measured, sudachi[size] = measure_size(size, pools, arguments.seed, scratch, stages,
                                                   arguments.sudachi_sentences, tasks,
                                                   arguments.tokenize_processes, arguments.train_steps,
                                                   arguments.validation_rows)
            rows.extend(measured)
    finally:
        if not arguments.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    report(rows, sudachi, reference)


if __name__ == "__main__":
    main()
