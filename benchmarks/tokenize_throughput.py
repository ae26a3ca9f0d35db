"""Tokenization throughput: our ``tokenize`` stage against bare GiNZA and bare SudachiPy, same run.

Three ways over the same sentences (the shipped KNB-style corpus, normalised as ``prepare`` does,
repeated to ``--sentences``):

(a) ours: ``pipeline.text.tokenize.Tokenizer(TokenizeConfig()).tokenize(sentences)``, which pipes the
    texts through GiNZA and collects surface, lemma, norm and POS of every token;
(b) reference: ``spacy.load("ja_ginza")`` with every pipeline component excluded, ``nlp.pipe`` over
    the sentences, iterating the docs and touching nothing;
(c) floor: SudachiPy alone, ``sudachipy.Dictionary(dict="core").create()`` in split mode C,
    ``tokenize`` per sentence;
(d) ours with ``tokenize.processes = --processes`` (default 2): forked worker processes
    started per call, as the ``tokenize`` stage does; the last line gives its speed-up over (a).

Each variant is warmed up first; then the repeats alternate between the variants so machine noise
hits all of them alike, and the best repeat of each counts. The table gives sentences per second
and the ratio against (b); the target for (a) is at least 0.9.

Usage::

    .venv/bin/python benchmarks/tokenize_throughput.py                  # about a minute on 2 cores
    .venv/bin/python benchmarks/tokenize_throughput.py --sentences 10000 --repeats 5
    .venv/bin/python benchmarks/tokenize_throughput.py --profile        # cProfile of (a), top functions
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run from anywhere without installing


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPOSITORY / "corpora" / "knb_blog",
                        help="KNB-style corpus folder (default: the shipped one)")
    parser.add_argument("--sentences", type=int, default=5000, help="sentences per timed pass (corpus repeated)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per variant; the best one counts")
    parser.add_argument("--warmup", type=int, default=500, help="sentences of the untimed warm-up pass")
    parser.add_argument("--batch-size", type=int, default=None, help="nlp.pipe batch size (default: the config's)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes of variant (d)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of (a) and of (b)")
    parser.add_argument("--profile-lines", type=int, default=25, help="functions listed per profile")
    return parser.parse_args(argv)


def load_sentences(corpus: Path, count: int) -> list[str]:
    """The corpus sentences, normalised as ``prepare`` does, repeated (in order) to ``count``."""
    from pipeline.text.corpora import normalize, read_knb

    unique = [text for text in (normalize(t) for t in read_knb(corpus)["text"]) if text]
    repeats = -(-count // len(unique))
    return (unique * repeats)[:count]


def timed(function: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import spacy
    import sudachipy

    from pipeline.sections import TokenizeConfig
    from pipeline.text.tokenize import Tokenizer

    settings = TokenizeConfig() if arguments.batch_size is None else TokenizeConfig(batch_size=arguments.batch_size)
    sentences = load_sentences(arguments.corpus, arguments.sentences)
    warmup = sentences[: arguments.warmup]

    ours = Tokenizer(settings)
    parallel = Tokenizer(TokenizeConfig(batch_size=settings.batch_size, processes=arguments.processes))
    meta = spacy.util.get_model_meta(spacy.util.get_package_path(settings.model))
    bare_nlp = spacy.load(settings.model, exclude=list(meta.get("pipeline", [])))
    sudachi = sudachipy.Dictionary(dict="core").create()
    mode = sudachipy.SplitMode.C

    def run_ours(texts=sentences):
        ours.tokenize(texts)

    def run_bare_pipe(texts=sentences):
        for _ in bare_nlp.pipe(texts, batch_size=settings.batch_size):
            pass

    def run_sudachi(texts=sentences):
        tokenize = sudachi.tokenize
        for text in texts:
            tokenize(text, mode)

    def run_parallel(texts=sentences):
        parallel.tokenize(texts)

    variants = {
        "(a) ours: Tokenizer.tokenize": run_ours,
        "(b) nlp.pipe, no components": run_bare_pipe,
        "(c) SudachiPy tokenize, mode C": run_sudachi,
        f"(d) ours, processes={arguments.processes}": run_parallel,
    }
    for run in variants.values():  # warm-up: dictionary pages, spaCy vocab/string store, caches
        run(warmup)
    tokens = sum(len(doc) for doc in bare_nlp.pipe(sentences, batch_size=settings.batch_size))

    walls: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(arguments.repeats):
        for name, run in variants.items():
            wall, cpu = timed(run)
            walls[name].append(wall)
            cpus[name].append(cpu)

    reference = "(b) nlp.pipe, no components"
    print(f"{len(sentences)} sentences ({len(set(sentences))} distinct, {tokens} tokens) from {arguments.corpus}; "
          f"best of {arguments.repeats}; nlp.pipe batch_size={settings.batch_size}; "
          f"spaCy {spacy.__version__}, SudachiPy {getattr(sudachipy, '__version__', '?')}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'variant':<32} {'best s':>7} {'median s':>9} {'sentences/s':>12} {'tokens/s':>9} {'vs (b)':>7}"
          f" {'best CPU s':>11} {'CPU vs (b)':>11}")
    for name in variants:
        best, median, best_cpu = min(walls[name]), sorted(walls[name])[len(walls[name]) // 2], min(cpus[name])
        print(f"{name:<32} {best:>7.3f} {median:>9.3f} {len(sentences) / best:>12.0f} {tokens / best:>9.0f} "
              f"{min(walls[reference]) / best:>7.2f} {best_cpu:>11.3f} {min(cpus[reference]) / best_cpu:>11.2f}")
    ratio = min(walls[reference]) / min(walls["(a) ours: Tokenizer.tokenize"])
    verdict = "met" if ratio >= 0.9 else "NOT met"
    print(f"ours / bare nlp.pipe (best wall time) = {ratio:.2f}; target >= 0.90: {verdict}")
    speedup = min(walls["(a) ours: Tokenizer.tokenize"]) / min(walls[f"(d) ours, processes={arguments.processes}"])
    print(f"{arguments.processes}-process speed-up over one process (best wall time, same tokens) = {speedup:.2f}")

    if arguments.profile:
        for name in ("(a) ours: Tokenizer.tokenize", "(b) nlp.pipe, no components"):
            profiler = cProfile.Profile()
            profiler.enable()
            variants[name]()
            profiler.disable()
            report = io.StringIO()
            pstats.Stats(profiler, stream=report).sort_stats("tottime").print_stats(arguments.profile_lines)
            print(f"\n=== cProfile of {name} (sorted by own time) ===")
            print(report.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
