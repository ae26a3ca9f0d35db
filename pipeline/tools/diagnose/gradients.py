"""Gradient diagnostics: how the gradient reaching the hidden state ``h_t`` shrinks with its distance from the loss.

Task (a long-memory regression): inputs ``x`` of shape ``(batch, timesteps, features)`` are
standard normal noise at every step; the target is ``z = sum(x[:, :memory_steps, 0]) / sqrt(memory_steps)``,
so only the first few steps matter and the loss sits ``timesteps - 1`` steps after them. The
model is one recurrent layer (``elman``: our ``Elman``; ``simple_rnn``, ``lstm``, ``gru``: the
Keras layers) read at its last state, then ``Dense(1)``. The measured loss is
``L = sum over rows b of 1/2 (y_b - z_b)^2``, so row ``b``'s gradient is its own.

What is measured: for every step ``t``, ``||dL/dh_t||`` averaged over the batch, where ``dL/dh_t``
is the TOTAL derivative through the recurrence (how a small change of ``h_t`` changes ``L`` through
every later step). The cell is stepped in a Python loop under ``tf.GradientTape`` and each
state tensor, which is exactly what the next step reads, is a gradient source. For the LSTM
``h_t`` is its output and the cell state ``c_t`` is held fixed (it is a separate state).

How clipping and gates change it:

* Gates (LSTM, GRU) change the step Jacobian ``dh_{t+1}/dh_t`` itself. In a simple RNN it is
  ``W_rec^T diag(phi'(a_{t+1}))``, whose product shrinks geometrically once ``phi`` saturates:
  vanishing gradients. Through the LSTM's additive cell state it is the forget gate, which
  Keras starts near ``sigmoid(1) = 0.73`` (``unit_forget_bias``), so the LSTM curve falls much
  more slowly; a gate only helps as far as it is open, and the GRU's update gate starts near
  ``sigmoid(0) = 0.5``, so at initialisation the GRU curve falls about as fast or faster.
* Clipping by global norm (``clipnorm``, Keras ``global_clipnorm``) multiplies the whole
  parameter gradient by ``min(1, clipnorm / ||g||)``. It bounds an exploding step but keeps the
  direction, so it cannot bring back vanished long-range terms; it only changes the training
  trajectory. Rows measured after training with clipping say so (``phase="trained_clipped"``)
  and give ``clip_scale``, the factor clipping would apply to the gradient at that point.
"""

from __future__ import annotations

import difflib
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.io import atomic_path

if TYPE_CHECKING:  # TensorFlow and Keras load when a measurement runs, not on import
    import keras

logger = logging.getLogger(__name__)

ARCHITECTURES = ("elman", "simple_rnn", "lstm", "gru")
COLUMNS = [
    "architecture", "phase", "training_steps", "clipnorm", "step", "distance_from_loss",
    "grad_norm", "parameter_grad_norm", "clip_scale",
]


def _check_architecture(architecture: str) -> str:
    if architecture not in ARCHITECTURES:
        close = difflib.get_close_matches(str(architecture), ARCHITECTURES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PipelineError(
            f"config key 'diagnose.architectures': unknown architecture {architecture!r}; choose one of "
            f"{', '.join(ARCHITECTURES)}.{hint}"
        )
    return architecture


def build_model(architecture: str, *, timesteps: int, features: int, units: int, seed: int) -> keras.Model:
    """``Input((timesteps, features)) -> recurrent layer(units) -> Dense(1)``, seeded initializers."""
    import keras

    from pipeline.layers.elman import Elman

    _check_architecture(architecture)
    children = np.random.SeedSequence(seed).spawn(3)
    kernel_seed, recurrent_seed, head_seed = (int(child.generate_state(1)[0]) for child in children)
    layer_arguments = dict(
        kernel_initializer=keras.initializers.GlorotUniform(seed=kernel_seed),
        recurrent_initializer=keras.initializers.Orthogonal(seed=recurrent_seed),
        name="recurrent",
    )
    layer_class = {
        "elman": Elman,
        "simple_rnn": keras.layers.SimpleRNN,
        "lstm": keras.layers.LSTM,
        "gru": keras.layers.GRU,
    }[architecture]
    inputs = keras.Input((timesteps, features))
    hidden = layer_class(units, **layer_arguments)(inputs)
    head = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed=head_seed), name="head")
    return keras.Model(inputs, head(hidden), name=f"{architecture}_gradient_probe")


def memory_task(batch_size: int, timesteps: int, features: int, *, memory_steps: int = 3, rng: np.random.Generator):
    """Inputs ``(batch, timesteps, features)`` of N(0, 1) noise; target ``(batch, 1)`` = scaled sum of the
    first ``memory_steps`` values of feature 0."""
    inputs = rng.standard_normal((batch_size, timesteps, features)).astype("float32")
    targets = inputs[:, :memory_steps, 0].sum(axis=1, keepdims=True) / math.sqrt(memory_steps)
    return inputs, targets.astype("float32")


def hidden_state_gradients(model: keras.Model, inputs, targets):
    """Total ``dL/dh_t`` for every step, with ``L = sum_b 1/2 (y_b - z_b)^2``.

    Args:
        model: from ``build_model`` (layers named ``recurrent`` and ``head``).
        inputs: ``(batch, timesteps, features)``.
        targets: ``(batch, 1)``.

    Returns:
        ``(hidden_gradients, parameter_gradient_norm)``: ``(batch, timesteps, units)`` NumPy array,
        and the global norm of the gradient of the training loss ``mean((y - z)^2)`` w.r.t. all
        trainable weights on this batch.
    """
    import tensorflow as tf

    cell = model.get_layer("recurrent").cell
    head = model.get_layer("head")
    inputs = tf.convert_to_tensor(inputs)
    targets = tf.convert_to_tensor(targets)
    batch_size, timesteps = inputs.shape[0], inputs.shape[1]
    weights = model.trainable_variables
    with tf.GradientTape() as tape:
        states = list(cell.get_initial_state(batch_size=batch_size))
        hidden = []
        for t in range(timesteps):
            output, states = cell(inputs[:, t], states)
            tape.watch(output)  # the very tensor the next step reads as h_{t-1}
            hidden.append(output)
        predictions = head(output)
        loss = 0.5 * tf.reduce_sum(tf.square(predictions - targets))
    gradients = tape.gradient(loss, hidden + list(weights))
    hidden_gradients = np.stack([g.numpy() for g in gradients[:timesteps]], axis=1)
    parameter_norm = float(tf.linalg.global_norm([g for g in gradients[timesteps:] if g is not None]))
    return hidden_gradients, parameter_norm * 2.0 / batch_size  # d mean((y-z)^2) = 2/B d L


def gradient_norms(
    architecture: str,
    *,
    timesteps: int = 100,
    features: int = 8,
    units: int = 32,
    batch_size: int = 32,
    memory_steps: int = 3,
    train_steps: int = 0,
    learning_rate: float = 0.05,
    clipnorm: float | None = None,
    seed: int = 0,
    measure_initial: bool = True,
) -> pd.DataFrame:
    """Mean ``||dL/dh_t||`` per step at initialisation and, with ``train_steps > 0``, after training.

    Args:
        architecture: ``"elman"``, ``"simple_rnn"``, ``"lstm"`` or ``"gru"``.
        timesteps, features, units, batch_size: sizes of the task and the model.
        memory_steps: how many leading steps the target depends on.
        train_steps: SGD steps (fresh batches) before the second measurement; 0 measures only at init.
        learning_rate: SGD learning rate.
        clipnorm: clip each update by global norm (Keras ``global_clipnorm``); ``None`` for no clipping.
        seed: one seed, split into weights, training data and the measurement batch.
        measure_initial: also measure at initialisation (False when a caller already has it).

    Returns:
        DataFrame with ``COLUMNS``: ``architecture``, ``phase`` (``initial``, ``trained`` or
        ``trained_clipped``), ``training_steps``, ``clipnorm`` (NaN when off), ``step`` (0-based),
        ``distance_from_loss`` (``timesteps - 1 - step``), ``grad_norm`` (mean over the batch),
        ``parameter_grad_norm`` and ``clip_scale`` (``min(1, clipnorm / parameter_grad_norm)``).
    """
    import keras

    _check_architecture(architecture)
    for name, value, minimum in (
        ("timesteps", timesteps, 1), ("features", features, 1), ("units", units, 1),
        ("batch_size", batch_size, 1), ("train_steps", train_steps, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise PipelineError(f"gradient diagnostics: `{name}` must be an integer >= {minimum}, got {value!r}.")
    if not 1 <= memory_steps <= timesteps:
        raise PipelineError(f"gradient diagnostics: `memory_steps` must be in [1, timesteps={timesteps}], "
                            f"got {memory_steps!r}.")
    if clipnorm is not None and not clipnorm > 0:
        raise PipelineError(f"gradient diagnostics: `clipnorm` must be positive or None, got {clipnorm!r}.")
    model_seed, data_seed, probe_seed = np.random.SeedSequence(seed).spawn(3)
    model = build_model(
        architecture, timesteps=timesteps, features=features, units=units,
        seed=int(model_seed.generate_state(1)[0]),
    )
    probe_inputs, probe_targets = memory_task(
        batch_size, timesteps, features, memory_steps=memory_steps, rng=np.random.default_rng(probe_seed)
    )
    frames = [_measure(model, probe_inputs, probe_targets, architecture, "initial", 0, clipnorm=None)] \
        if measure_initial else []
    if train_steps > 0:
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate, global_clipnorm=clipnorm)
        model.compile(optimizer=optimizer, loss="mse", jit_compile=False)
        data_rng = np.random.default_rng(data_seed)
        for _ in range(train_steps):
            inputs, targets = memory_task(batch_size, timesteps, features, memory_steps=memory_steps, rng=data_rng)
            model.train_on_batch(inputs, targets)
        phase = "trained" if clipnorm is None else "trained_clipped"
        frames.append(_measure(model, probe_inputs, probe_targets, architecture, phase, train_steps, clipnorm=clipnorm))
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def _measure(model, inputs, targets, architecture, phase, training_steps, *, clipnorm):
    hidden_gradients, parameter_norm = hidden_state_gradients(model, inputs, targets)
    norms = np.linalg.norm(hidden_gradients, axis=-1).mean(axis=0)  # (timesteps,)
    timesteps = norms.shape[0]
    clip_scale = 1.0 if clipnorm is None or parameter_norm == 0 else min(1.0, clipnorm / parameter_norm)
    logger.info("%s %s: |dL/dh| at distance 0 = %.3g, at %d = %.3g", architecture, phase, norms[-1],
                timesteps - 1, norms[0])
    return pd.DataFrame({
        "architecture": architecture,
        "phase": phase,
        "training_steps": training_steps,
        "clipnorm": np.nan if clipnorm is None else float(clipnorm),
        "step": np.arange(timesteps),
        "distance_from_loss": timesteps - 1 - np.arange(timesteps),
        "grad_norm": norms,
        "parameter_grad_norm": parameter_norm,
        "clip_scale": clip_scale,
    })


def run_gradient_diagnostics(
    architectures,
    out_dir: str | Path,
    *,
    timesteps: int = 100,
    features: int = 8,
    units: int = 32,
    batch_size: int = 32,
    memory_steps: int = 3,
    train_steps: int = 0,
    learning_rate: float = 0.05,
    clipnorm: float | None = None,
    seed: int = 0,
) -> dict[str, Path]:
    """Measure every architecture, write ``gradient_norms.csv`` and ``gradient_norms.png`` in ``out_dir``.

    With ``train_steps > 0`` each architecture is also measured after training without
    clipping and, when ``clipnorm`` is given, after training with clipping (same seed, so the
    runs differ only by the clipping). Files are written atomically.

    Args:
        architectures: names from ``ARCHITECTURES`` (a single name is accepted too).
        out_dir: folder for the two files (created if missing).
        timesteps, ..., seed: as in ``gradient_norms``.

    Returns:
        ``{"csv": path, "png": path}``.
    """
    from pipeline.tools.diagnose.plots import plot_gradient_norms

    architectures = [architectures] if isinstance(architectures, str) else list(architectures)
    if not architectures:
        raise PipelineError("gradient diagnostics: no architectures given; choose from "
                            + ", ".join(ARCHITECTURES) + ".")
    for architecture in architectures:
        _check_architecture(architecture)
    options = dict(
        timesteps=timesteps, features=features, units=units, batch_size=batch_size,
        memory_steps=memory_steps, train_steps=train_steps, learning_rate=learning_rate, seed=seed,
    )
    frames = []
    for architecture in architectures:
        frames.append(gradient_norms(architecture, clipnorm=None, **options))
        if train_steps > 0 and clipnorm is not None:
            # same seed, same initial weights: the initial phase is already measured above
            frames.append(gradient_norms(architecture, clipnorm=clipnorm, measure_initial=False, **options))
    table = pd.concat(frames, ignore_index=True)
    out_dir = Path(out_dir)
    csv_path = out_dir / "gradient_norms.csv"
    png_path = out_dir / "gradient_norms.png"
    with atomic_path(csv_path, suffix=".csv") as temporary:
        table.to_csv(temporary, index=False)
    plot_gradient_norms(table, png_path)
    logger.info("wrote %s and %s", csv_path, png_path)
    return {"csv": csv_path, "png": png_path}
