"""Language-model training throughput (tokens per second): our pipeline against plain Keras, same run.

Two regimes, each timed for two models of the same size (embedding -> one LSTM -> softmax over
the vocabulary, untied, Adam):

* ``sentences`` (full BPTT on padded, masked sentences). Ours: ``pipeline.language_model.data.LanguageModelBatches``
  (length bucketing, each batch padded to its own longest sentence) feeding ``build_generator``
  compiled with ``TokenCrossEntropy`` and the ``Perplexity`` metric, as ``pipeline train`` does.
  Reference: ``Input -> Embedding(mask_zero) -> LSTM(return_sequences) -> Dense(softmax)`` built from
  Keras layers, fed plain NumPy arrays (every sentence padded to ``max_length``) with
  ``model.fit(x, y, batch_size)`` and ``sparse_categorical_crossentropy``.
* ``tbptt`` (truncated BPTT over one token stream). Ours: ``TBPTTDataset`` feeding a stateful
  ``build_generator`` with ``ResetStates``. Reference: the same windows laid out as NumPy arrays in
  batch order, a stateful Keras LSTM, ``model.fit(x, y, batch_size, shuffle=False)``.

Tokens per second count predicted tokens that are not padding (the same number for both models
of a regime). Every model first trains one warm-up epoch (tracing, not timed); then the timed
epochs alternate between ours and the reference so that machine noise hits both alike. The ratio
is ours / reference in tokens per second: above 1 means our pipeline trains faster.

Data: the training split of ``configs/generator.toml`` (the shipped KNB blog corpus, GiNZA words),
run through the pipeline's own ``prepare -> tokenize -> vectorize`` stages in a temporary work
folder, or synthetic ids with ``--synthetic``.

Usage::

    .venv/bin/python benchmarks/lm_throughput.py               # about a minute on 2 cores
    .venv/bin/python benchmarks/lm_throughput.py --synthetic   # no GiNZA: random sentences
    .venv/bin/python benchmarks/lm_throughput.py --units 256 --epochs 5 --vocabulary 8000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run from anywhere without installing

import keras  # noqa: E402
import numpy as np  # noqa: E402

from pipeline import config as config_module  # noqa: E402
from pipeline.language_model.data import (  # noqa: E402
    LanguageModelBatches,
    Perplexity,
    TBPTTDataset,
    teacher_forcing_pairs,
    token_stream,
)
from pipeline.language_model.evaluate import reset_states  # noqa: E402
from pipeline.language_model.model import TokenCrossEntropy, build_generator  # noqa: E402
from pipeline.language_model.train import ResetStates  # noqa: E402

BOS, EOS = 2, 3  # the pipeline's vocabulary order for language models: <pad>, <unk>, <s>, </s>, words


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true", help="random sentences instead of the shipped corpus")
    parser.add_argument("--sentences", type=int, default=1000, help="--synthetic: number of training sentences")
    parser.add_argument("--vocabulary", type=int, default=2000, help="vocabulary size, specials included")
    parser.add_argument("--embedding-dim", type=int, default=64, help="embedding width")
    parser.add_argument("--units", type=int, default=128, help="LSTM units")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per batch / parallel tracks")
    parser.add_argument("--max-length", type=int, default=60, help="sentences: timesteps kept per sentence")
    parser.add_argument("--bptt-steps", type=int, default=35, help="tbptt: timesteps per window")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per model (after one warm-up)")
    parser.add_argument("--work-dir", type=Path, help="keep the vectorized corpus here (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0, help="data and weight seed")
    return parser.parse_args(argv)


# ------------------------------------------------------------------ data
def corpus_sequences(arguments, work_dir: Path) -> list[np.ndarray]:
    """Training-split ids of configs/generator.toml, through the pipeline's own stages."""
    from pipeline.paths import Paths
    from pipeline.stages import run_stage
    from pipeline.text.vectors import EncodedSplits

    config = config_module.load(REPOSITORY / "configs" / "generator.toml", [
        f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"', f'work_dir="{work_dir}"',
        f'models_dir="{work_dir / "models"}"', 'vectorize.vectors="none"',
        f"vectorize.max_size={arguments.vocabulary}", f"model.embedding_dim={arguments.embedding_dim}"])
    run_stage("vectorize", config)
    return EncodedSplits.load(Paths.from_config(config).ids).sequences["train"]


def synthetic_sequences(arguments) -> list[np.ndarray]:
    rng = np.random.default_rng(arguments.seed)
    lengths = rng.integers(5, 40, size=arguments.sentences)  # about the KNB sentence lengths (mean ~20 words)
    return [rng.integers(4, arguments.vocabulary, size=length).astype(np.int32) for length in lengths]


# ------------------------------------------------------------------ models
def our_generator(arguments, vocabulary: int, stateful: bool) -> keras.Model:
    settings = config_module.ModelConfig(task="generator", embedding_dim=arguments.embedding_dim,
                                         layers=({"type": "lstm", "units": arguments.units},))
    matrix = np.random.default_rng(arguments.seed).normal(0, 0.1, (vocabulary, arguments.embedding_dim))
    model = build_generator(settings, matrix.astype(np.float32), arguments.seed, stateful=stateful,
                            batch_size=arguments.batch_size if stateful else None)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=TokenCrossEntropy(None if stateful else 0),
                  metrics=[Perplexity(pad_id=-1 if stateful else 0)])
    return model


def keras_generator(arguments, vocabulary: int, stateful: bool) -> keras.Model:
    keras.utils.set_random_seed(arguments.seed)
    token_ids = keras.Input((None,), batch_size=arguments.batch_size if stateful else None, dtype="int32")
    x = keras.layers.Embedding(vocabulary, arguments.embedding_dim, mask_zero=not stateful)(token_ids)
    x = keras.layers.LSTM(arguments.units, return_sequences=True, stateful=stateful)(x)
    outputs = keras.layers.Dense(vocabulary, activation="softmax")(x)
    model = keras.Model(token_ids, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


# ------------------------------------------------------------------ one epoch each
def sentence_contestants(arguments, sequences, vocabulary):
    """(name, one-epoch function) for ours and the reference, and the predicted tokens per epoch."""
    batches = LanguageModelBatches(sequences, None, arguments.batch_size, arguments.max_length, BOS, EOS,
                                   rng=np.random.default_rng(arguments.seed))
    ours = our_generator(arguments, vocabulary, stateful=False)
    inputs, targets = teacher_forcing_pairs(sequences, BOS, EOS, max_length=arguments.max_length)
    reference = keras_generator(arguments, vocabulary, stateful=False)
    tokens = int((targets != 0).sum())
    padding = 1 - tokens / sum(len(batches[i][1].ravel()) for i in range(len(batches)))

    def ours_epoch():
        ours.fit(batches, epochs=1, verbose=0)

    def reference_epoch():
        reference.fit(inputs, targets, batch_size=arguments.batch_size, epochs=1, shuffle=True, verbose=0)

    note = f"padding: ours {100 * padding:.0f}% (bucketed), reference {100 * (1 - tokens / targets.size):.0f}%"
    return [("ours", ours_epoch), ("keras", reference_epoch)], tokens, note


def tbptt_contestants(arguments, sequences, vocabulary):
    stream = token_stream(sequences, EOS)
    dataset = TBPTTDataset(stream, arguments.batch_size, arguments.bptt_steps)
    ours = our_generator(arguments, vocabulary, stateful=True)
    windows = [dataset[i] for i in range(len(dataset))]  # batch i: rows = tracks, in the order a stateful fit needs
    inputs = np.concatenate([window[0] for window in windows])
    targets = np.concatenate([window[1] for window in windows])
    reference = keras_generator(arguments, vocabulary, stateful=True)
    tokens = int(targets.size)

    def ours_epoch():
        ours.fit(dataset, epochs=1, shuffle=False, callbacks=[ResetStates()], verbose=0)

    def reference_epoch():
        reset_states(reference)
        reference.fit(inputs, targets, batch_size=arguments.batch_size, epochs=1, shuffle=False, verbose=0)

    note = f"{len(dataset)} windows of {arguments.batch_size} x {arguments.bptt_steps} tokens"
    return [("ours", ours_epoch), ("keras", reference_epoch)], tokens, note


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(contestants, epochs: int) -> dict[str, list[float]]:
    for _, epoch in contestants:
        epoch()  # warm-up: tracing, not timed
    seconds = {name: [] for name, _ in contestants}
    for _ in range(epochs):
        for name, epoch in contestants:
            seconds[name].append(timed(epoch))
    return seconds


def main(argv=None):
    arguments = parse_arguments(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lm_throughput-") as temporary:
        if arguments.synthetic:
            sequences, vocabulary, source = synthetic_sequences(arguments), arguments.vocabulary, "synthetic ids"
        else:
            sequences = corpus_sequences(arguments, arguments.work_dir or Path(temporary))
            vocabulary = int(max(int(s.max()) for s in sequences if len(s)) + 1)
            source = "configs/generator.toml corpus (KNB blog, GiNZA words), training split"
    print(f"data: {source}: {len(sequences)} sentences, {sum(len(s) for s in sequences)} words, "
          f"vocabulary {vocabulary} (prepared in {time.perf_counter() - started:.1f} s)")
    print(f"model: embedding {arguments.embedding_dim} -> LSTM {arguments.units} -> softmax {vocabulary}; "
          f"batch_size={arguments.batch_size} max_length={arguments.max_length} bptt_steps={arguments.bptt_steps} "
          f"timed epochs={arguments.epochs} backend={keras.backend.backend()} cpus={os.cpu_count()}")
    rows, notes = [], []
    for regime, make in (("sentences", sentence_contestants), ("tbptt", tbptt_contestants)):
        contestants, tokens, note = make(arguments, sequences, vocabulary)
        seconds = measure(contestants, arguments.epochs)
        rows.append((regime, tokens, seconds))
        notes.append(f"{regime}: {note}")
    print()
    print(f"{'regime':<10}{'tokens/epoch':>13}{'ours tok/s':>12}{'keras tok/s':>13}{'ratio (median)':>16}"
          f"{'ratio (best)':>14}")
    for regime, tokens, seconds in rows:
        ours, reference = seconds["ours"], seconds["keras"]
        ours_rate, reference_rate = tokens / statistics.median(ours), tokens / statistics.median(reference)
        best = (tokens / min(ours)) / (tokens / min(reference))
        print(f"{regime:<10}{tokens:>13}{ours_rate:>12.0f}{reference_rate:>13.0f}"
              f"{ours_rate / reference_rate:>16.2f}{best:>14.2f}")
    print()
    for note in notes:
        print(note)
    print("ratio = ours / keras tokens per second (> 1: ours faster); median and fastest of the timed epochs")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
