"""What every task's training shares: determinism, optimizer and clipping, schedules, callbacks, progress.

Per-group learning rates (discriminative fine-tuning, frozen and gradually unfrozen layers) are one
idea here, :class:`GroupRates`: a task says which group each variable is in and each group's factor
per epoch; :func:`make_optimizer` then multiplies every variable's rate by its group's factor.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
from keras import ops

from pipeline import interrupts, progress, seeds
from pipeline.averaging import WeightAveraging
from pipeline.errors import PipelineError
from pipeline.keras_compat import force_jit_compile, layers_refusing_jit, optimizer_variable_index
from pipeline.paths import RunPaths
from pipeline.sections import TrainConfig

log = logging.getLogger(__name__)


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and the backend, and ask TensorFlow for deterministic kernels."""
    keras.utils.set_random_seed(seeds.child_seed(seed, "keras"))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


JIT_COMPILE_CHOICES = ("auto", "on", "off")


def compile_steps(model: keras.Model, setting: str = "auto") -> bool:
    """Choose how a compiled ``model`` runs its train/test/predict steps; returns whether XLA compiles them.

    Call it right after ``model.compile``. ``setting``:

    * ``"auto"``: Keras' choice: XLA on JAX; on TensorFlow XLA only with a GPU and without op
      determinism, so the op-by-op graph on our CPUs (``make_deterministic`` turns determinism on).
    * ``"on"``: XLA on every backend (``torch.compile`` on PyTorch); on TensorFlow also on the CPU
      and under op determinism (:func:`pipeline.keras_compat.force_jit_compile`). Every XLA
      program is compiled once per input shape: bucketed batch widths keep their number small.
    * ``"off"``: no XLA (JAX then runs the step op by op, slowly; for debugging).

    A layer that cannot be compiled (``layer.supports_jit`` false) makes ``"on"`` an error that names it.
    """
    if setting not in JIT_COMPILE_CHOICES:
        raise ValueError(f"jit_compile={setting!r}: expected one of {JIT_COMPILE_CHOICES}")
    if setting == "off":
        model.jit_compile = False
    elif setting == "on":
        refusing = layers_refusing_jit(model)
        if refusing:
            raise PipelineError(f"train.jit_compile = \"on\": layer(s) {', '.join(refusing)} cannot be "
                                "XLA-compiled; use \"auto\"")
        if keras.backend.backend() == "tensorflow":
            force_jit_compile(model)
        else:
            model.jit_compile = True
    return bool(model.jit_compile)


BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 (AVX-512 BF16, AMX) and Arm (FEAT_BF16)


def cpu_has_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has bfloat16 arithmetic: one of ``BFLOAT16_FLAGS`` among the ``flags`` (x86) or
    ``Features`` (Arm) of ``/proc/cpuinfo`` (or of the text ``cpuinfo``). False where there is no such file."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features") and BFLOAT16_FLAGS & set(value.split()):
            return True
    return False


def resolve_precision(name: str, cpuinfo: str | None = None) -> str:
    """``train.precision`` as a Keras dtype policy: ``"auto"`` is ``"mixed_bfloat16"`` on a CPU with bfloat16
    arithmetic (:func:`cpu_has_bfloat16`), else ``"float32"``: without it bfloat16 is emulated and slower than
    float32 (README, "Measured figures"). Other names are returned as they are."""
    if name != "auto":
        return name
    chosen = "mixed_bfloat16" if cpu_has_bfloat16(cpuinfo) else "float32"
    log.info("train.precision = \"auto\": %s (this CPU %s bfloat16 arithmetic)", chosen,
             "has" if chosen != "float32" else "has no")
    return chosen


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build and train under Keras' global dtype policy ``name`` (e.g. ``"mixed_bfloat16"``; ``"auto"``: see
    :func:`resolve_precision`), then restore it.

    Layers take the policy when they are created and keep it in their config, so a model built
    here is saved and reloaded with it.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(resolve_precision(name))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@dataclass(frozen=True)
class GroupRates:
    """Learning-rate factors for groups of variables, per epoch.

    Attributes:
        names: the groups, bottom to top (named in the logs).
        group_of: ``group_of(variable) -> int``, the index in ``names`` of a trainable variable.
        factors: ``factors(epoch) -> tuple`` of one factor per group: the variable's learning rate is the
            optimizer's rate (or schedule) times its group's factor in that epoch; 0 freezes the group.
    """

    names: tuple[str, ...]
    group_of: Callable[[Any], int]
    factors: Callable[[int], tuple[float, ...]]


class _GroupRatesMixin:
    """Put before a Keras optimizer class: each variable's update uses the rate times its group's factor.

    The factors live in a non-trainable variable ``group_factors`` ``(groups,)`` that
    :class:`GroupRateSchedule` sets when an epoch begins, so the compiled train step reads the
    current ones. It hooks ``update_step(gradient, variable, learning_rate)``, the method every
    Keras optimizer implements, so clipping (by global norm over all gradients) happens before and
    Adam's update ``lr * m_hat / (sqrt(v_hat) + eps)`` is scaled exactly. A frozen group (factor 0)
    keeps its weights while its moment estimates still follow its gradients: when it is unfrozen its
    first steps are as large as intended, not inflated by moments that start at zero late in training.
    """

    def __init__(self, *args: Any, group_rates: GroupRates, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_rates = group_rates
        with keras.name_scope(self.name, caller=self):
            self.group_factors = keras.Variable(group_rates.factors(0), dtype="float32", trainable=False,
                                                name="group_factors")

    def build(self, variables: list) -> None:
        super().build(variables)
        self.variable_groups = tuple(self.group_rates.group_of(variable) for variable in variables)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        group = self.variable_groups[optimizer_variable_index(self, variable)]
        factor = ops.cast(self.group_factors[group], learning_rate.dtype)
        super().update_step(gradient, variable, learning_rate * factor)


@functools.cache
def _with_group_rates(optimizer_class: type) -> type:
    return type(f"{optimizer_class.__name__}WithGroupRates", (_GroupRatesMixin, optimizer_class), {})


class GroupRateSchedule(keras.callbacks.Callback):
    """Set the optimizer's group factors for each epoch (see :class:`GroupRates`); log them when they change."""

    def __init__(self) -> None:
        super().__init__()
        self.previous: tuple[float, ...] | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        factors = tuple(float(f) for f in optimizer.group_rates.factors(epoch))
        optimizer.group_factors.assign(factors)
        if factors != self.previous:
            log.info("epoch %d: learning-rate factors %s", epoch + 1, ", ".join(
                f"{name} {factor:.3g}" if factor else f"{name} frozen"
                for name, factor in zip(optimizer.group_rates.names, factors)))
        self.previous = factors


def make_optimizer(settings: TrainConfig, learning_rate=None,
                   group_rates: GroupRates | None = None) -> keras.optimizers.Optimizer:
    """The configured optimizer; ``clipnorm`` clips the *global* norm of all gradients together.

    ``learning_rate``: a float or a ``LearningRateSchedule`` (default ``settings.learning_rate``).
    ``group_rates``: per-group factors on it (add a :class:`GroupRateSchedule` callback to the fit).
    """
    clipping = {}
    if settings.clipnorm:
        clipping["global_clipnorm"] = settings.clipnorm
    if settings.clipvalue:
        clipping["clipvalue"] = settings.clipvalue
    rate = settings.learning_rate if learning_rate is None else learning_rate
    optimizer_class, options = {
        "sgd": (keras.optimizers.SGD, {"momentum": settings.momentum}),
        "rmsprop": (keras.optimizers.RMSprop, {}),
        "adagrad": (keras.optimizers.Adagrad, {}),
        "adam": (keras.optimizers.Adam, {}),
    }[settings.optimizer]
    if group_rates is not None:
        return _with_group_rates(optimizer_class)(rate, group_rates=group_rates, **options, **clipping)
    return optimizer_class(rate, **options, **clipping)


@keras.saving.register_keras_serializable(package="pipeline")
class SlantedTriangular(keras.optimizers.schedules.LearningRateSchedule):
    """Slanted triangular learning rates (STLR; Howard & Ruder 2018, equation 3).

    A short linear rise to ``maximum_learning_rate`` over the first ``cut_fraction`` of the
    ``total_steps``, then a long linear decay back to ``maximum_learning_rate / ratio``::

        cut = floor(T * cut_fraction)
        p   = t / cut                                           if t < cut
            = 1 - (t - cut) / (cut * (1 / cut_fraction - 1))    otherwise   (clipped at 0 past T)
        η_t = η_max * (1 + p * (ratio - 1)) / ratio

    The model first moves quickly to a good region, then refines; the step ``t`` is the optimizer's
    iteration count (0 at the first batch).

    Args:
        maximum_learning_rate: ``η_max`` > 0.
        total_steps: ``T``, the training batches of all epochs (>= 1).
        cut_fraction: share of ``T`` spent rising, in (0, 1). Default 0.1 (the paper's).
        ratio: how much smaller the lowest rate is than the highest (>= 1). Default 32 (the paper's).
    """

    def __init__(self, maximum_learning_rate: float, total_steps: int, cut_fraction: float = 0.1,
                 ratio: float = 32.0) -> None:
        if not maximum_learning_rate > 0:
            raise ValueError(f"maximum_learning_rate must be > 0; received {maximum_learning_rate!r}")
        if int(total_steps) < 1:
            raise ValueError(f"total_steps must be >= 1; received {total_steps!r}")
        if not 0 < cut_fraction < 1:
            raise ValueError(f"cut_fraction must be in (0, 1); received {cut_fraction!r}")
        if not ratio >= 1:
            raise ValueError(f"ratio must be >= 1; received {ratio!r}")
        self.maximum_learning_rate, self.total_steps = float(maximum_learning_rate), int(total_steps)
        self.cut_fraction, self.ratio = float(cut_fraction), float(ratio)

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        cut = float(max(1, math.floor(self.total_steps * self.cut_fraction)))
        rising = step / cut
        falling = 1.0 - (step - cut) / (cut * (1.0 / self.cut_fraction - 1.0))
        share = ops.maximum(ops.where(step < cut, rising, falling), 0.0)
        return self.maximum_learning_rate * (1.0 + share * (self.ratio - 1.0)) / self.ratio

    def get_config(self) -> dict:
        return {"maximum_learning_rate": self.maximum_learning_rate, "total_steps": self.total_steps,
                "cut_fraction": self.cut_fraction, "ratio": self.ratio}


def learning_rate_schedule(settings: TrainConfig, steps_per_epoch: int):
    """The optimizer's learning rate: ``settings.learning_rate``, or a per-step schedule over all epochs.

    ``slanted_triangular``: :class:`SlantedTriangular` peaking at ``learning_rate``. ``one_cycle``
    (Smith & Topin 2019, PyTorch ``OneCycleLR``'s defaults, rate only): a linear rise from
    ``learning_rate / 25`` to ``learning_rate`` over 30% of the steps, then a cosine decay to
    ``learning_rate / 25 / 1e4`` (Keras' ``CosineDecay`` with warm-up). ``step`` and ``plateau``
    change the rate between epochs instead (:func:`schedule_callbacks`).
    """
    total_steps = max(1, settings.epochs * steps_per_epoch)
    if settings.lr_schedule == "slanted_triangular":
        return SlantedTriangular(settings.learning_rate, total_steps)
    if settings.lr_schedule == "one_cycle":
        warmup_steps = int(0.3 * total_steps)
        return keras.optimizers.schedules.CosineDecay(
            settings.learning_rate / 25, max(1, total_steps - warmup_steps), alpha=1 / (25 * 1e4),
            warmup_target=settings.learning_rate, warmup_steps=warmup_steps)
    return settings.learning_rate


def progress_verbosity() -> int:
    """Keras' ``verbose`` under :func:`pipeline.progress.mode`'s rule: a progress bar on a terminal, one line per
    epoch in logs and CI, nothing with ``--quiet``."""
    return {"quiet": 0, "bar": 1, "log": 2}[progress.mode(logging.getLogger("pipeline"))]


def schedule_callbacks(settings: TrainConfig, monitor: str) -> list[keras.callbacks.Callback]:
    """Learning-rate schedule: constant, step decay after ``decay_start`` epochs, or reduce on plateau."""
    if settings.lr_schedule == "step":
        def step_decay(epoch: int, learning_rate: float) -> float:
            # epochs 0 .. decay_start-1 at the base rate, then one more factor per epoch
            return settings.learning_rate * settings.decay_factor ** max(0, epoch - settings.decay_start + 1)

        return [keras.callbacks.LearningRateScheduler(step_decay)]
    if settings.lr_schedule == "plateau":
        return [keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=settings.decay_factor,
                                                  patience=settings.plateau_patience, mode="min")]
    return []


class StopOnInterrupt(keras.callbacks.Callback):
    """Raise ``KeyboardInterrupt`` after the batch in which Ctrl-C came, should Python have dropped the first one
    (it does when the signal lands in a finalizer; :mod:`pipeline.interrupts`)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        interrupts.check()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        interrupts.check()


class TimeBudget:
    """``train.time_limit_minutes`` spread over the several trainings of one train stage (self-training's rounds, a
    language model's members), so that the whole stage ends within it: each training gets the time left in proportion
    to its size against that of every training still to come, and what one leaves unused (it stopped early) goes to
    those after it. ``minutes = 0``: no limit."""

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = 60.0 * minutes, clock
        self.started = clock()

    def left_seconds(self) -> float:
        return max(0.0, self.seconds - (self.clock() - self.started)) if self.seconds else float("inf")

    def share(self, size: float, later: float) -> float | None:
        """Minutes for a training of ``size`` (e.g. its training sentences) with ``later`` to train after it in all;
        ``None`` without a limit."""
        if not self.seconds:
            return None
        return self.left_seconds() / 60.0 * size / (size + later)


class TimeLimit(keras.callbacks.Callback):
    """Stop training when the next epoch would end past ``minutes`` after the start of training.

    The next epoch is predicted to take as long as the slowest so far, so the budget is kept
    (a user asks for an answer within the hour, not one epoch after it). With early stopping's
    ``restore_best_weights`` the best epoch is still the one saved.
    """

    def __init__(self, minutes: float, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.seconds, self.clock = 60.0 * minutes, clock
        self.started = self.epoch_started = 0.0
        self.longest = 0.0
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = self.clock()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_started = self.clock()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = self.clock()
        self.longest = max(self.longest, now - self.epoch_started)
        if now - self.started + self.longest > self.seconds:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            log.warning("time limit: stopping after epoch %d (%.1f of %.1f minutes used; a faster machine trains "
                        "longer, so the same seed gives the same metrics only where the limit is not reached)",
                        epoch + 1, (now - self.started) / 60, self.seconds / 60)


def callbacks(settings: TrainConfig, folder: Path, monitor: str, checkpoint: bool = True,
              first: tuple[keras.callbacks.Callback, ...] = (), resume: Any = None,
              minutes: float | None = None) -> list[keras.callbacks.Callback]:
    """Callbacks in order: weight averaging (``train.average``: it swaps the average in before the others
    score the epoch), ``first`` (they may add logs, e.g. a validation perplexity), schedule,
    best-model checkpoint, history CSV, the time limit (``minutes``, else ``train.time_limit_minutes``: a
    training that is one share of a budget gets its share), early stopping, TensorBoard, ``resume``'s
    (a :class:`pipeline.resume.Resume`: it saves the others' state after every epoch), and last
    :class:`StopOnInterrupt`."""
    run = RunPaths(folder)
    result = []
    if settings.average == "swa":
        if not monitor.startswith("val_"):
            raise PipelineError("config key 'train.average' = \"swa\" needs a validation split to score the "
                                "averaged weights; add validation sentences or set it to \"none\"")
        result.append(WeightAveraging(monitor, settings.average_start))
    result += [*first, *schedule_callbacks(settings, monitor)]
    if checkpoint:
        result.append(keras.callbacks.ModelCheckpoint(run.model, monitor=monitor, save_best_only=True, mode="min"))
    result.append(keras.callbacks.CSVLogger(str(run.history), append=True))  # a resumed run continues it
    minutes = settings.time_limit_minutes if minutes is None else minutes
    if minutes:
        result.append(TimeLimit(minutes))
    if settings.patience:
        result.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=settings.patience, mode="min",
                                                    restore_best_weights=True))
    if settings.tensorboard:
        result.append(keras.callbacks.TensorBoard(log_dir=str(run.tensorboard), write_graph=False))
    if resume is not None:
        resume.callback.callbacks = list(result)
        result.append(resume.callback)
    return [*result, StopOnInterrupt()]  # after the epoch's state is saved
