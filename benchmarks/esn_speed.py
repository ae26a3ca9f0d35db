"""Reservoir run time: our ``Reservoir`` layer against ReservoirPy's ``Reservoir``, same run.

Task: run a 1,000-unit reservoir over 10,000 steps of a one-dimensional Mackey-Glass input
(only the reservoir, no readout), with the same hyperparameters for both (leak rate 0.3,
spectral radius 1.25, connectivity 0.1, dense ±1 input and bias weights). Each variant gets
a warm-up run that is not timed (tracing/XLA compilation for ours, matrix creation for
ReservoirPy); then the timed runs alternate between variants so that machine noise hits all
alike, and we report the median.

Variants of ours (all return every state, ``(batch, steps, units)``):

* ``graph``: ``model.predict_on_batch``, a TensorFlow graph ``while`` loop;
* ``xla``: the same with ``model.jit_compile = True``: one fused XLA loop (the default of
  ``pipeline.forecast.timeseries.forecast``); float32 and float64 (ReservoirPy computes in float64
  with a sparse CSR W, ours multiplies by the dense W);
* ``eager`` (``--eager``): calling the layer eagerly, stepping in Python; slow, for reference.

With one sequence each step is a single 1000 x 1000 matrix-vector product; splitting it over
threads pays a synchronisation per step, which is cheap on idle cores and very expensive on
busy ones: compare ``--threads 1`` with the default on a loaded machine.

Usage::

    .venv/bin/python benchmarks/esn_speed.py                   # defaults: about a minute on 2 cores
    .venv/bin/python benchmarks/esn_speed.py --threads 1             # one TensorFlow thread
    .venv/bin/python benchmarks/esn_speed.py --units 500 --steps 5000 --repeats 5 --eager
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.forecast.timeseries import mackey_glass  # noqa: E402
from pipeline.layers.esn import Reservoir  # noqa: E402


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000, help="reservoir units")
    parser.add_argument("--steps", type=int, default=10_000, help="time steps of the input series")
    parser.add_argument("--batch", type=int, default=1,
                        help="sequences run at once by ours (ReservoirPy runs them one after the other)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (after one warm-up)")
    parser.add_argument("--eager", action="store_true", help="also time the eager (Python-stepped) layer")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra-op threads for ours (0 = TensorFlow's default, one per core)")
    parser.add_argument("--seed", type=int, default=0, help="matrix seed")
    return parser.parse_args(argv)


HYPERPARAMETERS = dict(leak_rate=0.3, spectral_radius=1.25, input_scaling=1.0, connectivity=0.1,
                       input_connectivity=1.0, bias_scaling=1.0)


def ours(arguments, inputs, *, dtype, jit_compile, eager=False):
    """A zero-argument function that runs our reservoir over ``inputs`` (batch, steps, 1)."""
    layer = Reservoir(arguments.units, **HYPERPARAMETERS, seed=arguments.seed, return_sequences=True, dtype=dtype)
    sequence_input = keras.Input((None, 1), dtype=dtype)
    model = keras.Model(sequence_input, layer(sequence_input))
    model.jit_compile = jit_compile
    data = inputs.astype(dtype)
    if eager:
        return lambda: keras.ops.convert_to_numpy(layer(data))
    return lambda: model.predict_on_batch(data)


def reservoirpy_runner(arguments, inputs):
    from reservoirpy.mat_gen import bernoulli
    from reservoirpy.nodes import Reservoir as ReservoirPyReservoir

    # Matched: lr = leak_rate (after tanh), sr = spectral_radius, rc_connectivity = connectivity,
    # Win and bias ±1 (bernoulli; Win times input_scaling), float64. Its state persists between
    # runs, so reset after each sequence: every run starts from zero like ours.
    reservoir = ReservoirPyReservoir(arguments.units, lr=0.3, sr=1.25, input_scaling=1.0, rc_connectivity=0.1,
                                     input_connectivity=1.0, bias=bernoulli, seed=arguments.seed)
    sequences = [sequence.astype(np.float64) for sequence in inputs]

    def run():
        outputs = []
        for sequence in sequences:
            outputs.append(reservoir.run(sequence))
            reservoir.reset()
        return outputs

    return run


def main(argv=None):
    arguments = parse_arguments(argv)
    if arguments.threads:
        import tensorflow as tf  # process-wide; must be set before TensorFlow runs anything

        tf.config.threading.set_intra_op_parallelism_threads(arguments.threads)
        tf.config.threading.set_inter_op_parallelism_threads(arguments.threads)
    series = mackey_glass(arguments.steps + arguments.batch - 1)
    inputs = np.stack([series[start: start + arguments.steps] for start in range(arguments.batch)])[..., None]

    runners = {
        "ReservoirPy 0.4.2 (float64, sparse W)": reservoirpy_runner(arguments, inputs),
        "ours graph loop (float32)": ours(arguments, inputs, dtype="float32", jit_compile=False),
        "ours XLA loop (float32)": ours(arguments, inputs, dtype="float32", jit_compile=True),
        "ours XLA loop (float64)": ours(arguments, inputs, dtype="float64", jit_compile=True),
    }
    if arguments.eager:
        runners["ours eager (float32)"] = ours(arguments, inputs, dtype="float32", jit_compile=False, eager=True)
    for runner in runners.values():  # warm-up: matrices, tracing, XLA compilation
        runner()
    timings = {name: [] for name in runners}
    for _ in range(arguments.repeats):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner()
            timings[name].append(time.perf_counter() - start)

    reference = statistics.median(timings["ReservoirPy 0.4.2 (float64, sparse W)"])
    print(f"{arguments.units} units, {arguments.steps} steps, batch {arguments.batch}, "
          f"median of {arguments.repeats} runs (after a warm-up), keras {keras.__version__} "
          f"on {keras.backend.backend()}, {arguments.threads or 'default'} TensorFlow threads, "
          f"{os.cpu_count()} CPUs")
    print(f"{'variant':<40} {'seconds':>9} {'µs/step':>9} {'speed-up vs ReservoirPy':>24}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:<40} {median:>9.3f} {1e6 * median / arguments.steps:>9.1f} {reference / median:>23.2f}x")


if __name__ == "__main__":
    main()
