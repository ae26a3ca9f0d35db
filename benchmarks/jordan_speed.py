"""Training steps/s: the Jordan layer teacher-forced (parallel over time) against our Elman layer (BPTT), same run.

Task: tag every token of a sequence (``classes`` per-step labels, as POS tagging); identical data, sizes and
seed for both models, only the recurrent part differs:

* Elman: ``Embedding -> Elman(units, return_sequences) -> Dense(classes, softmax)``; ``h_t`` depends on
  ``h_{t-1}``, so the forward pass loops over the time steps and the gradient flows back through them (BPTT).
* Jordan: ``Embedding -> Jordan(units, output_units=classes, softmax)`` called with the true one-hot tags as
  ``targets`` (teacher forcing): ``h_t = tanh(x_t W + y_{t-1} R + b)`` needs no earlier step's result, so
  every step runs at once as a few batched matrix products, forward and backward.

Each model gets a warm-up epoch (tracing, not timed); the timed epochs alternate between the models so
that machine noise hits both alike. Printed: steps/s per model (median and fastest epoch) and the ratio
Jordan / Elman; the ratio grows with ``--timesteps`` (the loop's length).

Usage::

    .venv/bin/python benchmarks/jordan_speed.py                   # defaults: about a minute on 2 cores
    .venv/bin/python benchmarks/jordan_speed.py --timesteps 200 --epochs 3
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
from pipeline.layers.jordan import Jordan  # noqa: E402


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048, help="training sequences per epoch")
    parser.add_argument("--timesteps", type=int, default=50, help="tokens per sequence")
    parser.add_argument("--vocabulary", type=int, default=2000, help="token ids 0..vocabulary-1")
    parser.add_argument("--embedding-dim", type=int, default=32, help="embedding width = recurrent input features")
    parser.add_argument("--units", type=int, default=64, help="hidden units of both layers")
    parser.add_argument("--classes", type=int, default=16, help="tags per step (= Jordan's output and feedback size)")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per training step")
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs per model (after one warm-up)")
    parser.add_argument("--seed", type=int, default=0, help="data and weight seed")
    return parser.parse_args(argv)


def make_data(arguments):
    """Token ids ``(samples, timesteps)`` and a tag per token that depends on the token and the previous tag."""
    rng = np.random.default_rng(arguments.seed)
    token_ids = rng.integers(0, arguments.vocabulary, size=(arguments.samples, arguments.timesteps))
    tags = np.zeros_like(token_ids)
    for t in range(arguments.timesteps):
        previous = tags[:, t - 1] if t else 0
        tags[:, t] = (token_ids[:, t] + 3 * previous) % arguments.classes
    one_hot = np.eye(arguments.classes, dtype="float32")[tags]
    return token_ids.astype("int32"), tags.astype("int32"), one_hot


def build_elman(arguments):
    keras.utils.set_random_seed(arguments.seed)
    token_ids = keras.Input((arguments.timesteps,), dtype="int32")
    embedded = keras.layers.Embedding(arguments.vocabulary, arguments.embedding_dim)(token_ids)
    hidden = Elman(arguments.units, return_sequences=True)(embedded)
    outputs = keras.layers.Dense(arguments.classes, activation="softmax")(hidden)
    return keras.Model(token_ids, outputs)


def build_jordan(arguments):
    keras.utils.set_random_seed(arguments.seed)
    token_ids = keras.Input((arguments.timesteps,), dtype="int32")
    targets = keras.Input((arguments.timesteps, arguments.classes))
    embedded = keras.layers.Embedding(arguments.vocabulary, arguments.embedding_dim)(token_ids)
    outputs = Jordan(arguments.units, arguments.classes, output_activation="softmax")(embedded, targets=targets)
    return keras.Model([token_ids, targets], outputs)


def timed_epoch(model, inputs, tags, batch_size):
    """Seconds for one epoch of ``model.fit`` and the number of training steps it made."""
    start = time.perf_counter()
    model.fit(inputs, tags, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - start, -(-len(tags) // batch_size)


def main(argv=None):
    arguments = parse_arguments(argv)
    token_ids, tags, one_hot = make_data(arguments)
    models = {"Elman (BPTT)": (build_elman(arguments), token_ids),
              "Jordan (teacher forced)": (build_jordan(arguments), [token_ids, one_hot])}
    for model, _ in models.values():
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    for model, inputs in models.values():
        timed_epoch(model, inputs, tags, arguments.batch_size)  # warm-up: tracing, not timed
    steps_per_second = {name: [] for name in models}
    for _ in range(arguments.epochs):
        for name, (model, inputs) in models.items():
            seconds, steps = timed_epoch(model, inputs, tags, arguments.batch_size)
            steps_per_second[name].append(steps / seconds)
    print(f"samples={arguments.samples} timesteps={arguments.timesteps} embedding_dim={arguments.embedding_dim} "
          f"units={arguments.units} classes={arguments.classes} batch_size={arguments.batch_size} "
          f"epochs={arguments.epochs} backend={keras.backend.backend()}")
    print(f"{'layer':<26}{'median steps/s':>16}{'best steps/s':>14}")
    for name, values in steps_per_second.items():
        print(f"{name:<26}{statistics.median(values):>16.1f}{max(values):>14.1f}")
    elman, jordan = steps_per_second.values()
    median_ratio = statistics.median(jordan) / statistics.median(elman)
    print(f"ratio Jordan / Elman training steps/s, median epoch: {median_ratio:.2f}")
    print(f"ratio Jordan / Elman training steps/s, best epoch:   {max(jordan) / max(elman):.2f}")


if __name__ == "__main__":
    main()
