"""Tokenization throughput: GiNZA's path, the SudachiPy fast path, bare GiNZA and bare SudachiPy, same run.

Six ways over the same sentences (the shipped KNB-style corpus, normalised as ``prepare`` does,
repeated to ``--sentences``):

(a) GiNZA path: ``pipeline.text.tokenize.Tokenizer(TokenizeConfig()).tokenize(sentences)``, which pipes
    the texts through GiNZA's tokenizer and collects surface, lemma, norm and POS of every token;
(b) bare GiNZA: ``spacy.load("ja_ginza")`` with every pipeline component excluded, ``nlp.pipe`` over
    the sentences, iterating the docs and touching nothing;
(c) bare SudachiPy: GiNZA's own SudachiPy tokenizer (its dictionary, split mode C), ``tokenize`` per
    sentence, reading nothing: the floor of any tokenizer that analyses with SudachiPy;
(d) the GiNZA path with ``tokenize.processes = --processes`` (default 2) forked workers;
(e) fast path: ``pipeline.text.sudachi.SudachiTokenizer(TokenizeConfig()).tokenize(sentences)``, what the
    ``tokenize`` stage runs by default: the same four fields as (a) from SudachiPy, without spaCy Docs;
(f) the fast path with ``tokenize.processes = --processes`` (workers started per call, as in the stage).

Each variant is warmed up first; then the repeats alternate between the variants so machine noise
hits all of them alike, and the best repeat of each counts. The table gives sentences per second and
the ratio against (c); the goals: (e) at least 0.5 of (c), (f) at least 1.7 times (e).

Then the ``tokenize`` stage itself (``--stage``, on by default): the sentences of the Aozora language-model corpus
(``lm/*.txt``, split into sentences and normalised as ``prepare`` does) written as a prepared table, tokenized by
:func:`pipeline.text.shards.tokenize_stage` (shards of ``tokenize.shard_rows``, each written to its Arrow IPC
file, then merged into ``tokens.parquet``: everything but the fingerprint and the lock) with
``tokenize.processes`` 1 and ``--processes``, against bare SudachiPy (c) over the same sentences in the same run,
the repeats alternating, with the fast path's ``tokenize`` over the same list in memory (e) for scale. Goals: one
process at least 0.5 of (c), ``--processes`` at least 1.7 times one.
``--memory`` then runs the stage (one process, shards of 5,000) in fresh processes on those sentences repeated 1
and 4 times and prints each one's peak resident memory: it must not grow with the corpus.
``--breakdown`` first times the stage's pieces in one process on those sentences, each as a share of bare
SudachiPy's time (CPU seconds, best of ``--repeats``, the pieces alternating): the analysis with a reused
``MorphemeList``, the fields the fast path reads (surface and word id; the four fields for comparison), the fast
path's ``token_lists`` (everything in Python), the Arrow arrays, a shard's file (Arrow IPC; Parquet for
comparison) and the merge's ``tokens.parquet``.

Then the fast path's tokens are compared with the GiNZA path's, sentence by sentence, on the Aozora
corpus (``--aozora``: ``lm/*.txt`` and ``authors/``, read with the project's readers, split into
sentences, each distinct sentence as read and as ``prepare`` normalises it); the count of sentences
whose tokens differ must be 0. That pass is timed too (one pass each of (a), (c) and (e)).

Usage::

    .venv/bin/python benchmarks/tokenize_throughput.py                  # about two minutes on 2 cores
    .venv/bin/python benchmarks/tokenize_throughput.py --sentences 10000 --repeats 5
    .venv/bin/python benchmarks/tokenize_throughput.py --aozora ''        # skip the Aozora comparison
    .venv/bin/python benchmarks/tokenize_throughput.py --stage-only --repeats 3 --processes 2   # the stage alone
    .venv/bin/python benchmarks/tokenize_throughput.py --stage-only --repeats 1 --memory   # and its peak memory
    .venv/bin/python benchmarks/tokenize_throughput.py --stage-only --repeats 5 --breakdown   # and its pieces
    .venv/bin/python benchmarks/tokenize_throughput.py --profile        # cProfile of (a), (b) and (e)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run from anywhere without installing


AOZORA = REPOSITORY.parent / "shared" / "corpora" / "aozora"
GINZA, BARE_GINZA, SUDACHI = "(a) GiNZA path", "(b) bare GiNZA nlp.pipe", "(c) bare SudachiPy"
FAST = "(e) fast path (SudachiPy)"


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPOSITORY / "corpora" / "knb_blog",
                        help="KNB-style corpus folder (default: the shipped one)")
    parser.add_argument("--sentences", type=int, default=5000, help="sentences per timed pass (corpus repeated)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per variant; the best one counts")
    parser.add_argument("--warmup", type=int, default=500, help="sentences of the untimed warm-up pass")
    parser.add_argument("--batch-size", type=int, default=None, help="nlp.pipe batch size (default: the config's)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes of variants (d) and (f)")
    parser.add_argument("--aozora", default=str(AOZORA),
                        help="Aozora corpus folder (lm/*.txt, authors/) for the token comparison; '' skips it")
    parser.add_argument("--stage", action=argparse.BooleanOptionalAction, default=True,
                        help="time the tokenize stage (shards, files, merge) on the Aozora lm/ sentences")
    parser.add_argument("--stage-only", action="store_true", help="time the tokenize stage only")
    parser.add_argument("--memory", action="store_true", help="with the stage: its peak memory on the Aozora "
                                                               "sentences repeated 1 and 4 times")
    parser.add_argument("--breakdown", action="store_true", help="with the stage: the time of its pieces in one "
                                                                  "process, each a share of bare SudachiPy's")
    parser.add_argument("--peak-memory-of", type=Path, default=None, help=argparse.SUPPRESS)  # --memory's child
    parser.add_argument("--stage-copies", type=int, default=1, help="the stage's sentences: the Aozora lm/ "
                        "sentences this many times over (fixed costs, e.g. the workers' start, weigh less)")
    parser.add_argument("--shard-rows", type=int, default=None, help="tokenize.shard_rows of the stage (default: "
                                                                     "the config's)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of (a), (b) and (e)")
    parser.add_argument("--profile-lines", type=int, default=25, help="functions listed per profile")
    return parser.parse_args(argv)


def load_sentences(corpus: Path, count: int) -> list[str]:
    """The corpus sentences, normalised as ``prepare`` does, repeated (in order) to ``count``."""
    from pipeline.text.corpora import normalize, read_knb

    unique = [text for text in (normalize(t) for t in read_knb(corpus)["text"]) if text]
    repeats = -(-count // len(unique))
    return (unique * repeats)[:count]


def load_aozora(root: Path) -> list[str]:
    """Distinct sentences of ``root/lm/*.txt`` and ``root/authors/``, as read and as ``prepare`` normalises them."""
    from pipeline.sections import CorpusConfig
    from pipeline.text.corpora import normalize, read

    tables = [read(CorpusConfig(format="text", path=str(path), split_sentences=True))
              for path in sorted((root / "lm").glob("*.txt"))]
    tables.append(read(CorpusConfig(format="folders", path=str(root / "authors"), split_sentences=True)))
    raw = [text for table in tables for text in table["text"]]
    return list(dict.fromkeys(raw + [text for text in map(normalize, raw) if text]))


def load_aozora_lm(root: Path) -> list[str]:
    """The sentences of ``root/lm/*.txt`` as ``prepare`` makes them (split, normalised, empty ones dropped)."""
    from pipeline.sections import CorpusConfig
    from pipeline.text.corpora import normalize, read

    tables = [read(CorpusConfig(format="text", path=str(path), split_sentences=True))
              for path in sorted((root / "lm").glob("*.txt"))]
    return [text for table in tables for text in map(normalize, table["text"]) if text]


def time_stage(root: Path, processes: int, repeats: int, shard_rows: int | None, copies: int = 1) -> None:
    """The tokenize stage with 1 and ``processes`` processes against bare SudachiPy, same sentences, same run
    (the ``root/lm`` sentences ``copies`` times over)."""
    import tempfile

    import pandas as pd

    from pipeline.sections import TokenizeConfig
    from pipeline.text.shards import ShardJob, file_stamp, process_tokenizer, tokenize_stage
    from pipeline.text.sudachi import SudachiTokenizer

    sentences = load_aozora_lm(root) * copies
    rows = {} if shard_rows is None else {"shard_rows": shard_rows}
    settings = {count: TokenizeConfig(processes=count, **rows) for count in (1, processes)}
    sudachi = SudachiTokenizer(settings[1]).sudachi
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        prepared = work / "prepared.parquet"
        pd.DataFrame({"text": sentences, "split": "train"}).to_parquet(prepared, index=False)

        def stage(count: int) -> None:
            job = ShardJob.of(work, prepared, settings[count], f"processes{count}", file_stamp(prepared))
            tokenize_stage(job, work / "tokens.parquet")

        def bare() -> None:
            tokenize = sudachi.tokenize
            for text in sentences:
                tokenize(text)

        fast = process_tokenizer(settings[1])  # the stage's own tokenizer in this process
        variants = {"(c) bare SudachiPy": bare, "(e) fast path, in memory": lambda: fast.tokenize(sentences),
                    "(g) stage, 1 process": lambda: stage(1),
                    f"(h) stage, {processes} processes": lambda: stage(processes)}
        for text in sentences[:2000]:  # warm-up: dictionary pages, the fast path's caches (the stage's tokenizer)
            sudachi.tokenize(text)
        fast.tokenize(sentences[:2000])
        walls: dict[str, list[float]] = {name: [] for name in variants}
        cpus: dict[str, list[float]] = {name: [] for name in variants}  # this process and its workers
        for _ in range(repeats):
            for name, run in variants.items():
                wall, cpu, workers_cpu = timed(run)
                walls[name].append(wall)
                cpus[name].append(cpu + workers_cpu)
    best = {name: min(times) for name, times in walls.items()}
    cpu = {name: min(times) for name, times in cpus.items()}
    reference, _, one, several = best.values()
    print(f"\ntokenize stage on {root}/lm: {len(sentences)} sentences, shard_rows={settings[1].shard_rows}, "
          f"best of {repeats}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for name in variants:
        print(f"  {name:<28} {best[name]:>7.2f} s {len(sentences) / best[name]:>9.0f} sentences/s  "
              f"{reference / best[name]:>5.2f} of bare SudachiPy  (CPU {cpu[name]:.2f} s)")
    reference_cpu, _, one_cpu, several_cpu = cpu.values()
    print(f"  stage, 1 process / bare SudachiPy = {reference / one:.2f} (CPU time: {reference_cpu / one_cpu:.2f}); "
          f"goal >= 0.50: {'met' if reference / one >= 0.5 else 'NOT met'}")
    # with a free core per process: all the CPU the workers and this process spend, spread over them
    print(f"  stage, {processes} processes / stage, 1 process = {one / several:.2f} (from CPU times, with a free "
          f"core per process: {one_cpu / (several_cpu / processes):.2f}); goal >= 1.70: "
          f"{'met' if one / several >= 1.7 else 'NOT met'}")


def stage_breakdown(root: Path, repeats: int, shard_rows: int | None) -> None:
    """CPU time of the stage's pieces in one process on the ``root/lm`` sentences, each against bare SudachiPy's
    (``tokenize`` a sentence, nothing read) in the same run; the pieces alternate, the best of ``repeats`` counts.

    The pieces are cumulative where they say "+" (the analysis, then the fields read), separate otherwise (Arrow
    arrays from the fast path's lists, the files of one shard size written, ``tokens.parquet`` written from them).
    """
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq
    from sudachipy import Morpheme

    from pipeline.sections import TokenizeConfig
    from pipeline.text.shards import output_schema
    from pipeline.text.sudachi import SudachiTokenizer

    sentences = load_aozora_lm(root)
    settings = TokenizeConfig(**({} if shard_rows is None else {"shard_rows": shard_rows}))
    fast = SudachiTokenizer(settings)
    sudachi, morphemes = fast.sudachi, fast.sudachi.tokenize("")
    fast.token_lists(sentences)  # warm: dictionary pages, the caches
    word_id = Morpheme.word_id
    rows = settings.shard_rows
    prepared = pa.table({"text": sentences, "split": ["train"] * len(sentences)})
    schema = output_schema(prepared.schema, settings)
    shard_tables = []
    for start in range(0, len(sentences), rows):
        columns, ends = fast.token_lists(sentences[start:start + rows])
        offsets = pa.array([0, *ends], type=pa.int32())
        arrays = [pa.ListArray.from_arrays(offsets, pa.array(columns[name], type=pa.string())) for name in columns]
        shard_tables.append(pa.Table.from_arrays([*prepared.slice(start, rows).columns, *arrays], schema=schema))
    lists = [fast.token_lists(sentences[start:start + rows]) for start in range(0, len(sentences), rows)]

    def bare() -> None:
        for text in sentences:
            sudachi.tokenize(text)

    def reused() -> None:
        for text in sentences:
            sudachi.tokenize(text, out=morphemes)

    def two_fields() -> None:  # what the fast path reads of a text without whitespace
        for text in sentences:
            found = sudachi.tokenize(text, out=morphemes)
            str(found).split(" ")
            list(map(word_id, found))

    def four_fields() -> None:  # what it read before the word-id cache (the surface by surface())
        for text in sentences:
            [(m.surface(), m.part_of_speech_id(), m.dictionary_form(), m.normalized_form())
             for m in sudachi.tokenize(text, out=morphemes)]

    def arrow() -> None:
        for columns, ends in lists:
            offsets = pa.array([0, *ends], type=pa.int32())
            [pa.ListArray.from_arrays(offsets, pa.array(values, type=pa.string())) for values in columns.values()]

    with tempfile.TemporaryDirectory() as folder:
        shard = Path(folder) / "shard"

        def ipc_shards() -> None:
            for table in shard_tables:
                with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                    writer.write_table(table)

        def parquet_shards() -> None:
            for table in shard_tables:
                pq.write_table(table, shard)

        def merged() -> None:
            with pq.ParquetWriter(str(Path(folder) / "tokens.parquet"), schema) as out:
                for table in shard_tables:
                    out.write_table(table, row_group_size=table.num_rows)

        pieces = {"(c) bare SudachiPy": bare, "SudachiPy, MorphemeList reused": reused,
                  "+ surfaces and word ids": two_fields, "+ 4 fields (the former read)": four_fields,
                  "(e) fast path token_lists": lambda: fast.token_lists(sentences),
                  "Arrow arrays from its lists": arrow, "shards as Arrow IPC files": ipc_shards,
                  "shards as Parquet (former)": parquet_shards, "merge: tokens.parquet": merged}
        cpus: dict[str, list[float]] = {name: [] for name in pieces}
        for _ in range(repeats):
            for name, run in pieces.items():
                cpus[name].append(timed(run)[1])
    best = {name: min(times) for name, times in cpus.items()}
    reference = best["(c) bare SudachiPy"]
    print(f"\nthe stage's pieces on {root}/lm: {len(sentences)} sentences, shards of {rows}, one process, CPU "
          f"seconds, best of {repeats}; load average {os.getloadavg()[0]:.1f}")
    for name, seconds in best.items():
        print(f"  {name:<32} {seconds:>6.3f} s  {seconds / reference:>5.2f} of bare SudachiPy")


def peak_memory(prepared: Path) -> None:
    """Run the stage (one process, shards of 5,000) on the prepared table ``prepared``; print the peak resident
    memory of this (fresh) process before and after it."""
    from pipeline.sections import TokenizeConfig
    from pipeline.text.shards import ShardJob, file_stamp, tokenize_stage
    from pipeline.text.sudachi import SudachiTokenizer

    SudachiTokenizer(TokenizeConfig()).tokenize(["京都に行った。"])  # the model loaded: "before" counts it
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    job = ShardJob.of(prepared.parent, prepared, TokenizeConfig(shard_rows=5000), "memory", file_stamp(prepared))
    tokenize_stage(job, prepared.parent / "tokens.parquet")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"  {job.rows:>7} sentences: peak RSS {after / 1024:.0f} MiB (with the model loaded, before the stage: "
          f"{before / 1024:.0f} MiB)", flush=True)


def measure_peak_memory(root: Path) -> None:
    """:func:`peak_memory` in fresh processes on the ``root/lm`` sentences repeated 1 and 4 times (prepared tables
    of row groups of 10,000 rows, written here)."""
    import tempfile

    import pandas as pd

    sentences = load_aozora_lm(root)
    print("\nthe tokenize stage's peak memory (fresh processes, shards of 5,000):")
    for times in (1, 4):
        with tempfile.TemporaryDirectory() as folder:
            prepared = Path(folder) / "prepared.parquet"
            pd.DataFrame({"text": sentences * times, "split": "train"}).to_parquet(prepared, index=False,
                                                                                row_group_size=10_000)
            subprocess.run([sys.executable, __file__, "--peak-memory-of", str(prepared)], check=True)


def children_cpu() -> float:
    """CPU seconds of this process's finished children (worker processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(function: Callable[[], object]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, CPU seconds of its worker processes) of one call."""
    wall, cpu, children = time.perf_counter(), time.process_time(), children_cpu()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu, children_cpu() - children


def compare_on_aozora(root: Path, ginza, fast, sudachi) -> int:
    """Tokens of the fast path against the GiNZA path's on the Aozora sentences; prints and returns the differences."""
    sentences = load_aozora(root)
    timings, results = {}, {}
    for name, tokenizer in ((GINZA, ginza), (FAST, fast)):
        start = time.perf_counter()
        results[name] = tokenizer.tokenize(sentences)
        timings[name] = time.perf_counter() - start
    start = time.perf_counter()
    for text in sentences:
        sudachi.tokenize(text)
    timings[SUDACHI] = time.perf_counter() - start
    different = [index for index, (expected, got) in enumerate(zip(results[GINZA], results[FAST], strict=True))
                 if expected != got]
    tokens = sum(len(result["surface"]) for result in results[GINZA])
    print(f"\nAozora ({root}): {len(sentences)} distinct sentences (as read and normalised), {tokens} tokens; "
          "one pass each:")
    for name in (SUDACHI, FAST, GINZA):
        print(f"  {name:<28} {len(sentences) / timings[name]:>9.0f} sentences/s  "
              f"{timings[SUDACHI] / timings[name]:>5.2f} of bare SudachiPy")
    print(f"  fast path / GiNZA path = {timings[GINZA] / timings[FAST]:.2f}x")
    print(f"sentences whose tokens differ between the fast path and the GiNZA path: {len(different)} (must be 0)")
    for index in different[:5]:
        print(f"  {sentences[index][:60]!r}: GiNZA {results[GINZA][index]} fast {results[FAST][index]}")
    return len(different)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if arguments.peak_memory_of:  # before importing anything else: the peak is the stage's
        peak_memory(arguments.peak_memory_of)
        return 0
    import spacy
    import sudachipy

    from pipeline.sections import TokenizeConfig
    from pipeline.text.sudachi import SudachiTokenizer
    from pipeline.text.tokenize import Tokenizer

    stage_corpus = Path(arguments.aozora or AOZORA)
    if arguments.stage_only:
        if arguments.breakdown:
            stage_breakdown(stage_corpus, arguments.repeats, arguments.shard_rows)
        time_stage(stage_corpus, arguments.processes, arguments.repeats, arguments.shard_rows, arguments.stage_copies)
        if arguments.memory:
            measure_peak_memory(stage_corpus)
        return 0
    settings = TokenizeConfig() if arguments.batch_size is None else TokenizeConfig(batch_size=arguments.batch_size)
    parallel_settings = TokenizeConfig(batch_size=settings.batch_size, processes=arguments.processes)
    sentences = load_sentences(arguments.corpus, arguments.sentences)
    warmup = sentences[: arguments.warmup]

    ginza, ginza_parallel = Tokenizer(settings), Tokenizer(parallel_settings)
    fast, fast_parallel = SudachiTokenizer(settings), SudachiTokenizer(parallel_settings)
    meta = spacy.util.get_model_meta(spacy.util.get_package_path(settings.model))
    bare_nlp = spacy.load(settings.model, exclude=list(meta.get("pipeline", [])))
    sudachi = fast.sudachi  # GiNZA's own SudachiPy tokenizer: the model's dictionary and split mode

    def run_bare_pipe(texts=sentences):
        for _ in bare_nlp.pipe(texts, batch_size=settings.batch_size):
            pass

    def run_sudachi(texts=sentences):
        tokenize = sudachi.tokenize
        for text in texts:
            tokenize(text)

    parallel = f"processes={arguments.processes}"
    variants = {
        GINZA: lambda texts=sentences: ginza.tokenize(texts),
        BARE_GINZA: run_bare_pipe,
        SUDACHI: run_sudachi,
        f"(d) GiNZA path, {parallel}": lambda texts=sentences: ginza_parallel.tokenize(texts),
        FAST: lambda texts=sentences: fast.tokenize(texts),
        f"(f) fast path, {parallel}": lambda texts=sentences: fast_parallel.tokenize(texts),
    }
    for run in variants.values():  # warm-up: dictionary pages, spaCy vocab/string store, caches
        run(warmup)
    tokens = sum(len(doc) for doc in bare_nlp.pipe(sentences, batch_size=settings.batch_size))

    walls: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    totals: dict[str, list[float]] = {name: [] for name in variants}  # CPU of the process and its workers
    for _ in range(arguments.repeats):
        for name, run in variants.items():
            wall, cpu, workers_cpu = timed(run)
            walls[name].append(wall)
            cpus[name].append(cpu)
            totals[name].append(cpu + workers_cpu)

    best = {name: min(times) for name, times in walls.items()}
    print(f"{len(sentences)} sentences ({len(set(sentences))} distinct, {tokens} tokens) from {arguments.corpus}; "
          f"best of {arguments.repeats}; batch_size={settings.batch_size}; split mode {fast.split_mode}; "
          f"spaCy {spacy.__version__}, SudachiPy {getattr(sudachipy, '__version__', '?')}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'variant':<30} {'best s':>7} {'median s':>9} {'sentences/s':>12} {'tokens/s':>9} {'vs (c)':>7}"
          f" {'best CPU s':>11}")
    for name in variants:
        median = sorted(walls[name])[len(walls[name]) // 2]
        print(f"{name:<30} {best[name]:>7.3f} {median:>9.3f} {len(sentences) / best[name]:>12.0f} "
              f"{tokens / best[name]:>9.0f} {best[SUDACHI] / best[name]:>7.2f} {min(cpus[name]):>11.3f}")
    one_core = best[SUDACHI] / best[FAST]
    speedup = best[FAST] / best[f"(f) fast path, {parallel}"]
    print("ratios of best wall times (the machine's cores may be shared with other work: approximate):")
    one_core_cpu = min(cpus[SUDACHI]) / min(cpus[FAST])
    print(f"  fast path / bare SudachiPy, one core = {one_core:.2f} (CPU time: {one_core_cpu:.2f}); "
          f"goal >= 0.50: {'met' if one_core >= 0.5 else 'NOT met'}")
    # what the workers would give with a core each: all the CPU they and the parent spend, spread over them
    estimate = min(cpus[FAST]) / (min(totals[f"(f) fast path, {parallel}"]) / arguments.processes)
    print(f"  fast path {parallel} / fast path one process = {speedup:.2f} (from CPU times, with a free core "
          f"per process: {estimate:.2f}); goal >= 1.70: {'met' if speedup >= 1.7 else 'NOT met'}")
    print(f"  fast path / GiNZA path = {best[GINZA] / best[FAST]:.2f}x; "
          f"GiNZA path / bare nlp.pipe = {best[BARE_GINZA] / best[GINZA]:.2f}; "
          f"GiNZA path {parallel} / one process = {best[GINZA] / best[f'(d) GiNZA path, {parallel}']:.2f}")

    if arguments.stage:
        time_stage(stage_corpus, arguments.processes, arguments.repeats, arguments.shard_rows, arguments.stage_copies)
    different = 0
    if arguments.aozora:
        different = compare_on_aozora(Path(arguments.aozora), ginza, fast, sudachi)

    if arguments.profile:
        for name in (GINZA, BARE_GINZA, FAST):
            profiler = cProfile.Profile()
            profiler.enable()
            variants[name]()
            profiler.disable()
            report = io.StringIO()
            pstats.Stats(profiler, stream=report).sort_stats("tottime").print_stats(arguments.profile_lines)
            print(f"\n=== cProfile of {name} (sorted by own time) ===")
            print(report.getvalue())
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
