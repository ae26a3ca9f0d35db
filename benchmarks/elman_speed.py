"""Training time per epoch: our ``Elman`` layer against ``keras.layers.SimpleRNN``, same run.

Model: ``Input(int ids) -> Embedding -> recurrent layer -> Dense(classes, softmax)``, identical
sizes, data and seed for both; only the recurrent layer differs. Each model gets a warm-up
epoch (tracing the train function) that is not timed; then the timed epochs alternate between
the two models so that machine noise hits both alike. Printed: Elman time / SimpleRNN time for
the median and for the fastest epoch (on a busy machine the fastest is the steadier number);
the target is at most about 1.2.

Usage::

    .venv/bin/python benchmarks/elman_speed.py                # defaults: under a minute on 2 cores
    .venv/bin/python benchmarks/elman_speed.py --units 128 --timesteps 100 --epochs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

import keras  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.layers.elman import Elman  # noqa: E402


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048, help="training sequences per epoch")
    parser.add_argument("--timesteps", type=int, default=50, help="tokens per sequence")
    parser.add_argument("--vocabulary", type=int, default=2000, help="token ids 1..vocabulary-1 (0 = padding)")
    parser.add_argument("--embedding-dim", type=int, default=32, help="embedding width = recurrent input features")
    parser.add_argument("--units", type=int, default=64, help="recurrent units")
    parser.add_argument("--classes", type=int, default=4, help="output classes")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per training step")
    parser.add_argument("--epochs", type=int, default=8, help="timed epochs per model (after one warm-up)")
    parser.add_argument("--mask-zero", action="store_true", help="pad with 0 and mask it (ragged lengths)")
    parser.add_argument("--seed", type=int, default=0, help="data and weight seed")
    return parser.parse_args(argv)


def make_data(arguments):
    rng = np.random.default_rng(arguments.seed)
    token_ids = rng.integers(1, arguments.vocabulary, size=(arguments.samples, arguments.timesteps))
    if arguments.mask_zero:
        lengths = rng.integers(arguments.timesteps // 2, arguments.timesteps + 1, size=arguments.samples)
        token_ids[np.arange(arguments.timesteps)[None, :] >= lengths[:, None]] = 0
    labels = rng.integers(0, arguments.classes, size=arguments.samples)
    return token_ids.astype("int32"), labels.astype("int32")


def build_model(recurrent_class, arguments):
    keras.utils.set_random_seed(arguments.seed)  # same initial weights for both models
    inputs = keras.Input((arguments.timesteps,), dtype="int32")
    embedding = keras.layers.Embedding(arguments.vocabulary, arguments.embedding_dim, mask_zero=arguments.mask_zero)
    embedded = embedding(inputs)
    hidden = recurrent_class(arguments.units)(embedded)
    outputs = keras.layers.Dense(arguments.classes, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def timed_epoch(model, token_ids, labels, batch_size):
    start = time.perf_counter()
    model.fit(token_ids, labels, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - start


def main(argv=None):
    arguments = parse_arguments(argv)
    token_ids, labels = make_data(arguments)
    models = {"SimpleRNN (keras)": build_model(keras.layers.SimpleRNN, arguments),
              "Elman (ours)": build_model(Elman, arguments)}
    for model in models.values():
        timed_epoch(model, token_ids, labels, arguments.batch_size)  # warm-up: tracing, not timed
    seconds = {name: [] for name in models}
    for _ in range(arguments.epochs):
        for name, model in models.items():
            seconds[name].append(timed_epoch(model, token_ids, labels, arguments.batch_size))
    print(
        f"samples={arguments.samples} timesteps={arguments.timesteps} embedding_dim={arguments.embedding_dim} "
        f"units={arguments.units} batch_size={arguments.batch_size} epochs={arguments.epochs} "
        f"mask_zero={arguments.mask_zero} backend={keras.backend.backend()}"
    )
    print(f"{'layer':<20}{'median s/epoch':>16}{'min s/epoch':>14}")
    for name, values in seconds.items():
        print(f"{name:<20}{statistics.median(values):>16.3f}{min(values):>14.3f}")
    reference, ours = seconds.values()
    print(f"ratio Elman / SimpleRNN, median epoch time: {statistics.median(ours) / statistics.median(reference):.2f}")
    print(f"ratio Elman / SimpleRNN, fastest epoch:     {min(ours) / min(reference):.2f}  "
          "(least disturbed by other load)")


if __name__ == "__main__":
    main()
