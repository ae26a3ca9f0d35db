"""Where the time of a cold ``pipeline classify`` of one sentence goes, per Keras backend.

For each backend (``KERAS_BACKEND``), a fresh process runs the phases a cold ``classify`` pays, in
order, and times each one (cumulative costs, as a user pays them; a module imported by an earlier
phase is free later):

1. ``import keras``: the backend itself (TensorFlow, JAX or PyTorch);
2. ``import pipeline.classifier.predict``: our code and what it imports;
3. load the run (``pipeline.runs.load_run``: config, vocabulary, ``model.keras``);
4. load GiNZA (``pipeline.text.tokenize.make_tokenizer``);
5. the first prediction (``classify(run, [sentence])``: tracing/compilation and the forward pass);

then whether TensorFlow was imported at all and the peak resident memory. Another fresh process
runs the real CLI (``python -m pipeline classify --model RUN SENTENCE``) for the wall time and peak
memory a user sees, and one more runs ``python -m pipeline classify --model MISSING x`` (a user error),
which should cost no Keras import. The ratio column is each backend's CLI time against the first
backend named, measured in the same run.

Usage::

    .venv/bin/python benchmarks/cold_start.py --model saved_models/default
    .venv/bin/python benchmarks/cold_start.py --model saved_models/default --backends tensorflow jax
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
SENTENCE = "京都の紅葉がとてもきれいでした。"

# Runs in the child process: argv[1] = run folder; prints one JSON line of phase seconds.
PHASES = r"""
import json, resource, sys, time
started = time.perf_counter()
seconds = {}
def phase(name, function):
    begin = time.perf_counter()
    value = function()
    seconds[name] = time.perf_counter() - begin
    return value
def load_ginza(run):
    from pipeline.text.tokenize import make_tokenizer
    return make_tokenizer(run.config.tokenize)
phase("import keras", lambda: __import__("keras"))
phase("import pipeline", lambda: __import__("pipeline.classifier.predict"))
from pipeline.runs import load_run
from pipeline.classifier.predict import classify
run = phase("load run", lambda: load_run(sys.argv[1]))
phase("load GiNZA", lambda: load_ginza(run))
phase("first predict", lambda: classify(run, [sys.argv[2]]))
seconds["total"] = time.perf_counter() - started
import keras
print(json.dumps({"seconds": seconds, "backend": keras.backend.backend(), "tensorflow": "tensorflow" in sys.modules,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a classifier run folder, e.g. saved_models/default")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"],
                        help="Keras backends to compare; the first is the reference (default: %(default)s)")
    return parser.parse_args(argv)


def timed_process(command: list[str], backend: str) -> tuple[float, float, str, int]:
    """(wall seconds, peak RSS MiB, stdout, exit status) of ``command`` in a fresh process."""
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPOSITORY, env=environment, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, stdout, os.waitstatus_to_exitcode(status)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    model = arguments.model.resolve()
    rows = {}
    for backend in arguments.backends:
        print(f"backend {backend} ...", file=sys.stderr, flush=True)
        _, _, stdout, status = timed_process([sys.executable, "-c", PHASES, str(model), SENTENCE], backend)
        if status != 0 or not stdout.strip():
            print(f"{backend}: the phases failed (exit {status})")
            continue
        phases = json.loads(stdout.strip().splitlines()[-1])
        cli_seconds, cli_rss, _, cli_status = timed_process(
            [sys.executable, "-m", "pipeline", "classify", "--model", str(model), SENTENCE], backend)
        error_seconds, error_rss, _, _ = timed_process(
            [sys.executable, "-m", "pipeline", "classify", "--model", str(model / "missing"), "x"], backend)
        rows[backend] = (phases, cli_seconds, cli_rss, cli_status, error_seconds, error_rss)
    if not rows:
        return 1
    names = list(next(iter(rows.values()))[0]["seconds"])
    reference = rows.get(arguments.backends[0])
    print(f"cold `pipeline classify` of one sentence, {model.name}; seconds per phase in one fresh process; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'backend':<11}" + "".join(f" {name:>15}" for name in names) +
          f" {'TF imported':>11} {'peak MiB':>8} {'CLI s':>6} {'CLI MiB':>7} {'CLI vs ' + arguments.backends[0]:>17}"
          f" {'error s':>7} {'error MiB':>9}")
    for backend, (phases, cli_seconds, cli_rss, cli_status, error_seconds, error_rss) in rows.items():
        ratio = f"{reference[1] / cli_seconds:>17.2f}" if reference and cli_status == 0 else f"{'-':>17}"
        print(f"{backend:<11}" + "".join(f" {phases['seconds'][name]:>15.2f}" for name in names) +
              f" {str(phases['tensorflow']):>11} {phases['peak_rss_mib']:>8.0f} {cli_seconds:>6.2f} {cli_rss:>7.0f}"
              f" {ratio} {error_seconds:>7.2f} {error_rss:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
