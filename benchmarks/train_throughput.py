"""Training throughput of the shipped classifier and generator configs: training sentences per second per epoch.

For each ``configs/*.toml`` whose ``model.task`` is ``classifier`` or ``generator`` (sentence regime; the
others are listed as skipped),
the shipped corpus is prepared, tokenized and vectorized with that config's settings into a
temporary work folder (the stages' own code, so the data is what ``pipeline train`` sees), and the
model is built as the ``train`` stage builds it: ``pipeline.classifier.model.build_classifier`` on the
embedding matrix, the same batches (``SequenceBatches`` with the config's batch size, bucketing and
class weights), optimizer (``pipeline.training.make_optimizer``, clipping included), loss and seed.
A generator is built as its ``train`` stage builds it (``build_generator_pair`` under ``train.precision``,
``LanguageModelBatches``, the adaptive softmax's training twin and loss, the perplexity metric).
The subword inputs of a classifier with ``model.char_encoder`` / ``model.ngram_features`` ride along.
One warm-up epoch (tracing, XLA compilation of each batch shape, first-batch costs) is timed apart
(``first`` in the backends table: what a short run pays once); then ``--epochs`` epochs are timed one
by one, training split only (no validation pass, no callbacks writing files). A ridge-readout config
has no epochs: its closed-form fit over the training split is timed instead, ``--epochs`` times.

The table gives the median seconds per epoch, training sentences per second, and the ratio of each
config's throughput to the fastest one measured in the same run. After the timed epochs the model is
evaluated once on the validation split (loss, and accuracy or perplexity): the same config on two
backends or step compilers should reach similar figures (not equal: each backend draws its own
initial weights and dropout masks from the one seed).

Usage::

    .venv/bin/python benchmarks/train_throughput.py                       # a few minutes on 2 cores
    .venv/bin/python benchmarks/train_throughput.py --epochs 1            # quicker
    .venv/bin/python benchmarks/train_throughput.py --configs configs/gru.toml configs/lstm.toml
    .venv/bin/python benchmarks/train_throughput.py --set train.batch_size=64
    .venv/bin/python benchmarks/train_throughput.py --backends tensorflow jax --configs configs/elman.toml

``--backends``: the same configs in one fresh process per Keras backend (``KERAS_BACKEND``), one after
the other on the same vectorized data; the table gives seconds per epoch per backend, the validation
figures, and the ratio of the first backend named (the default, TensorFlow) to the fastest one, all
measured in the same run (the goal of issue 19: at most 1.3). A backend may be written
``BACKEND:JIT`` with JIT one of ``auto``/``on``/``off`` (``pipeline.training.compile_steps``), e.g.
``tensorflow:on`` for XLA-compiled steps on TensorFlow's CPU::

    .venv/bin/python benchmarks/train_throughput.py --configs configs/default.toml configs/gru.toml \
        configs/generator.toml --backends tensorflow tensorflow:on jax
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run from anywhere without installing


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", type=Path, default=None,
                        help="config files (default: every configs/*.toml; non-classifiers are skipped)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per config, after one warm-up epoch")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override applied to every config, e.g. --set train.batch_size=64 (repeatable)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the vectorized corpora go (default: a temporary folder, removed afterwards)")
    parser.add_argument("--backends", nargs="+", default=None, metavar="BACKEND",
                        help="compare Keras backends (tensorflow, jax, torch), one process each; the first is the "
                             "reference")
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "on", "off"),
                        help="XLA for the train step (pipeline.training.compile_steps; default: Keras' choice)")
    parser.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)  # a --backends child's results
    return parser.parse_args(argv)


def compare_backends(arguments: argparse.Namespace) -> int:
    """Run this script once per ``BACKEND[:JIT]`` on the same work folder; print seconds per epoch and ratios."""
    with tempfile.TemporaryDirectory(prefix="train-throughput-") as scratch:
        work_dir = arguments.work_dir or Path(scratch)
        results: dict[str, dict[str, dict]] = {}
        for variant in arguments.backends:
            backend, _, jit = variant.partition(":")
            output = Path(scratch) / f"{backend}-{jit or 'auto'}.json"
            command = [sys.executable, __file__, "--epochs", str(arguments.epochs), "--work-dir", str(work_dir),
                       "--json", str(output), "--jit-compile", jit or arguments.jit_compile,
                       *(["--configs", *map(str, arguments.configs)] if arguments.configs else []),
                       *[f"--set={item}" for item in arguments.overrides]]
            print(f"backend {variant} ...", file=sys.stderr, flush=True)
            done = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True, text=True)
            if done.returncode != 0 or not output.is_file():
                print(f"backend {variant}: failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
                continue
            results[variant] = json.loads(output.read_text())
    reference = arguments.backends[0]
    names = sorted({name for measured in results.values() for name in measured})
    print(f"seconds per training epoch (median of {arguments.epochs}, after 1 warm-up) per Keras backend[:jit], "
          f"validation loss / accuracy or perplexity after the {1 + arguments.epochs} epochs; "
          f"{reference} / fastest = the first backend's epoch time over the fastest's; own / fastest = that of "
          f"the backend the config trains on (train.backend: what `pipeline train` runs; goal <= 1.3); "
          f"first = the warm-up epoch's seconds (tracing, and under XLA one compilation per batch shape); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'config':<16}" + "".join(f" {variant + ' s':>16} {'first':>7} {'val':>13}" for variant in results)
          + f" {reference + ' / fastest':>24} {'own':>10} {'own / fastest':>14}")
    for name in names:
        cells, seconds = [], {}
        for variant, measured in results.items():
            row = measured.get(name)
            if row is None:
                cells.append(f" {'failed':>16} {'-':>7} {'-':>13}")
                continue
            seconds[variant] = row["seconds"]
            cells.append(f" {row['seconds']:>16.3f} {row['warmup']:>7.1f} {row['validation']:>13}")
        ratio = seconds[reference] / min(seconds.values()) if reference in seconds else float("nan")
        own = next((row["own"] for measured in results.values() if (row := measured.get(name))), "tensorflow")
        own_seconds = seconds.get(own, seconds.get(f"{own}:auto", float("nan")))
        own_ratio = own_seconds / min(seconds.values())
        print(f"{name:<16}" + "".join(cells) + f" {ratio:>24.2f} {own:>10} {own_ratio:>14.2f}")
    return 0 if results else 1


@dataclass
class Measurement:
    name: str
    architecture: str
    parameters: int
    sentences: int
    batch_size: int
    epoch_seconds: list[float]
    validation: str = "-"  # e.g. "0.712/0.683": validation loss / accuracy (or perplexity) after training
    warmup_seconds: float = float("nan")  # the untimed first epoch: tracing, and XLA compiling each batch shape
    backend: str = "tensorflow"  # the config's train.backend: what `pipeline train` trains it on

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.epoch_seconds)

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.median_seconds


def architecture(config) -> str:
    layers = " > ".join(f"{spec.get('type')}({spec.get('units', '')})" for spec in config.model.layers)
    embedding = "trainable" if config.model.trainable_embeddings else "frozen"
    if config.model.task == "generator":
        return f"{layers}, {config.model.output} softmax, {embedding} emb, {config.train.precision}"
    return f"{layers}, {config.model.pooling} pooling, {embedding} emb" + \
        (", ridge" if config.model.readout == "ridge" else "")


TASKS = ("classifier", "generator")  # the tasks this benchmark builds as their train stage does


def load_classifier_config(path: Path, overrides: list[str], work_dir: Path):
    """The config with artifacts redirected to work_dir, or (None, why) when it is not a classifier or generator.

    A classifier config has a ``[model]`` table whose ``task`` is ``"classifier"`` (the default);
    configs of other commands (``[diagnose]``, ``[forecast]``) have no ``[model]`` table at all.
    """
    import tomllib

    from pipeline import config as config_module
    from pipeline.errors import PipelineError

    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    if "model" not in raw:
        other = ", ".join(f"[{key}]" for key, value in raw.items() if isinstance(value, dict)) or "no tables"
        return None, f"no [model] table ({other}): not a classifier config"
    try:
        config = config_module.load(path, [*overrides, f'work_dir="{work_dir / path.stem}"',
                                           f'models_dir="{work_dir / "models"}"'])
    except PipelineError as error:
        return None, f"not loadable as a pipeline config ({error})"
    if getattr(config.model, "task", None) not in TASKS:
        return None, f"model.task = {config.model.task!r}, not one of {TASKS}"
    if config.model.task == "generator" and config.train.regime != "sentences":
        return None, f"train.regime = {config.train.regime!r}: only the sentence regime is measured"
    if not config.corpus.path.startswith("/"):
        config = config_module.load(path, [*overrides, f'work_dir="{work_dir / path.stem}"',
                                           f'models_dir="{work_dir / "models"}"',
                                           f'corpus.path="{REPOSITORY / config.corpus.path}"'])
    return config, ""


class EpochTimer:
    """Seconds of each epoch (Keras callback, built lazily so Keras is imported only when needed)."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.seconds: list[float] = []

            def on_epoch_begin(self, epoch, logs=None) -> None:
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None) -> None:
                self.seconds.append(time.perf_counter() - self.started)

        return Timer()


def measure(name: str, config, epochs: int, jit_compile: str = "auto") -> Measurement:
    """Build, compile and fit ``config``'s model as its ``train`` stage does; time each epoch."""
    from pipeline.stages import run_stage
    from pipeline.training import dtype_policy, make_deterministic

    run_stage("vectorize", config)  # prepare -> tokenize -> vectorize, skipped when up to date
    make_deterministic(config.seed)
    if config.model.task == "generator":
        with dtype_policy(config.train.precision):
            return _measure_generator(name, config, epochs, jit_compile)
    return _measure_classifier(name, config, epochs, jit_compile)


def _fit_timed(model, batches, validation, epochs: int) -> tuple[list[float], dict]:
    """Seconds of the warm-up epoch then of each of ``epochs`` epochs, and the validation scores after them."""
    timer = EpochTimer()
    model.fit(batches, epochs=1 + epochs, verbose=0, callbacks=[timer], shuffle=False)
    scores = model.evaluate(validation, verbose=0, return_dict=True) if validation is not None else {}
    return timer.seconds, scores


def _measure_classifier(name: str, config, epochs: int, jit_compile: str) -> Measurement:
    import numpy as np

    from pipeline import seeds
    from pipeline.classifier.model import build_classifier
    from pipeline.classifier.train import fit_ridge
    from pipeline.models import trainable_parameters
    from pipeline.paths import Paths
    from pipeline.text.batches import SequenceBatches, balanced_class_weights
    from pipeline.text.features import split_inputs
    from pipeline.text.vectors import EncodedSplits
    from pipeline.training import compile_steps, make_optimizer

    paths = Paths.from_config(config)
    settings = config.train
    splits = EncodedSplits.load(paths.ids)
    num_classes = len(splits.labels)
    model = build_classifier(config.model, np.load(paths.embeddings), num_classes,
                             seeds.child_seed(config.seed, "model"))
    targets = splits.targets["train"]
    weights = balanced_class_weights(targets, num_classes)[targets] if settings.class_weights == "balanced" else None
    extra = split_inputs(config.model, paths.tokens,
                         {split: splits.sequences[split] for split in ("train", "validation")}, settings.max_length)
    batches = SequenceBatches(splits.sequences["train"], targets, settings.batch_size, settings.max_length,
                              seeds.rng(config.seed, "batches"), settings.bucketing, weights, **extra["train"])
    validation = SequenceBatches(splits.sequences["validation"], splits.targets["validation"], settings.batch_size,
                                 settings.max_length, **extra["validation"]) \
        if len(splits.sequences["validation"]) else None
    model.compile(optimizer=make_optimizer(settings), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=[] if weights is not None else None)
    compile_steps(model, jit_compile)
    scores = {}
    if config.model.readout == "ridge":
        seconds = []
        for _ in range(1 + epochs):  # the first fit traces the reservoir: warm-up
            started = time.perf_counter()
            fit_ridge(model, batches, config.model.ridge, num_classes)
            seconds.append(time.perf_counter() - started)
    else:
        seconds, scores = _fit_timed(model, batches, validation, epochs)
    figures = f"{scores['loss']:.3f}/{scores['accuracy']:.3f}" if scores else "-"
    return Measurement(name, architecture(config), trainable_parameters(model), len(targets),
                       settings.batch_size, seconds[1:], figures, seconds[0], settings.backend)


def _measure_generator(name: str, config, epochs: int, jit_compile: str) -> Measurement:
    import numpy as np

    from pipeline import seeds
    from pipeline.language_model.data import LanguageModelBatches, Perplexity, TargetsAsInput
    from pipeline.language_model.model import (
        TargetNegativeLogLikelihood,
        TokenCrossEntropy,
        build_generator_pair,
        start_id,
    )
    from pipeline.models import trainable_parameters
    from pipeline.paths import Paths
    from pipeline.text.vectors import EncodedSplits
    from pipeline.text.vocab import PAD_ID, Vocabulary
    from pipeline.training import compile_steps, make_optimizer

    paths = Paths.from_config(config)
    settings, model_settings = config.train, config.model
    splits = EncodedSplits.load(paths.ids)
    vocab = Vocabulary.load(paths.vocab)
    conditioned = model_settings.conditioning != "none"
    model, trainee = build_generator_pair(model_settings, np.load(paths.embeddings),
                                          seeds.child_seed(config.seed, "model"),
                                          len(splits.labels) if conditioned else 0)
    bos, eos = start_id(config, vocab), vocab.index["</s>"]
    batches = LanguageModelBatches(splits.sequences["train"], splits.targets["train"], settings.batch_size,
                                   settings.max_length, bos, eos, seeds.rng(config.seed, "batches"),
                                   settings.bucketing, conditioned)
    validation = LanguageModelBatches(splits.sequences["validation"], splits.targets["validation"],
                                      settings.batch_size, settings.max_length, bos, eos, conditioned=conditioned) \
        if splits.sequences["validation"] else None
    adaptive = model_settings.output == "adaptive"
    if adaptive:  # the training twin reads the targets too and returns log p(target) only
        batches, validation = TargetsAsInput(batches), validation and TargetsAsInput(validation)
        loss = TargetNegativeLogLikelihood(PAD_ID, settings.loss == "sum_over_time")
    else:
        loss = TokenCrossEntropy(PAD_ID, settings.loss == "sum_over_time")
    trainee.compile(optimizer=make_optimizer(settings), loss=loss,
                    metrics=[Perplexity(pad_id=PAD_ID, target_log_probabilities=adaptive)])
    compile_steps(trainee, jit_compile)
    seconds, scores = _fit_timed(trainee, batches, validation, epochs)
    figures = f"{scores['loss']:.3f}/{scores['perplexity']:.1f}" if scores else "-"
    return Measurement(name, architecture(config), trainable_parameters(model), len(splits.sequences["train"]),
                       settings.batch_size, seconds[1:], figures, seconds[0], settings.backend)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if arguments.backends:
        return compare_backends(arguments)
    paths = arguments.configs or sorted((REPOSITORY / "configs").glob("*.toml"))
    temporary = None
    work_dir = arguments.work_dir
    if work_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="train-throughput-")
        work_dir = Path(temporary.name)
    measured: list[Measurement] = []
    skipped: list[tuple[str, str]] = []
    try:
        for path in paths:
            config, why = load_classifier_config(path, arguments.overrides, work_dir)
            if config is None:
                skipped.append((path.name, why))
                continue
            print(f"measuring {path.name} ...", file=sys.stderr, flush=True)
            try:
                measured.append(measure(path.name, config, arguments.epochs, arguments.jit_compile))
            except Exception as error:  # report and go on with the other configs
                first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
                skipped.append((path.name, f"failed: {type(error).__name__}: {first_line}"))
    finally:
        if temporary is not None:
            temporary.cleanup()

    if arguments.json is not None:
        arguments.json.write_text(json.dumps({m.name: {"seconds": m.median_seconds, "validation": m.validation,
                                                       "warmup": m.warmup_seconds, "own": m.backend}
                                              for m in measured}))
    import keras

    print(f"training throughput, {arguments.epochs} timed epoch(s) after 1 warm-up, training split only; "
          f"Keras {keras.__version__} ({keras.backend.backend()}, jit_compile {arguments.jit_compile}), "
          f"{os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    if measured:
        fastest = max(m.sentences_per_second for m in measured)
        print(f"{'config':<22} {'architecture':<52} {'params':>9} {'batch':>5} {'sent.':>5} "
              f"{'s/epoch':>8} {'sent./s':>8} {'vs fastest':>10} {'validation':>12}")
        for m in sorted(measured, key=lambda m: -m.sentences_per_second):
            print(f"{m.name:<22} {m.architecture:<52} {m.parameters:>9} {m.batch_size:>5} {m.sentences:>5} "
                  f"{m.median_seconds:>8.3f} {m.sentences_per_second:>8.0f} {m.sentences_per_second / fastest:>10.2f} "
                  f"{m.validation:>12}")
    for name, why in skipped:
        print(f"skipped {name}: {why}")
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
