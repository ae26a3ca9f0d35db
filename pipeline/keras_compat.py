"""Every use of Keras internals in the pipeline, in one place.

The pipeline keeps to the public Keras API (``keras.layers``, ``keras.ops``, ``keras.callbacks``, ...)
except for the few things below, where no public API does the job. Each function says which Keras
behaviour it relies on and why; ``tests/test_keras_compat.py`` has one test per function that fails
when Keras changes that behaviour, so an upgrade breaks a test here and not a training run.
The package pins ``keras>=3.3,<4`` (``pyproject.toml``); the behaviour was read in Keras 3.15
(``keras/src/optimizers/base_optimizer.py``, ``keras/src/backend/tensorflow/trainer.py``,
``keras/src/callbacks/{early_stopping,reduce_lr_on_plateau,model_checkpoint}.py``).

Nothing here imports TensorFlow: the module works on every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

# ------------------------------------------------------------------ optimizers


def optimizer_variable_index(optimizer: keras.optimizers.Optimizer, variable: Any) -> int:
    """The position of trainable ``variable`` in the list that ``optimizer.build(variables)`` received.

    Used by :class:`pipeline.training.GroupRates`: ``update_step(gradient, variable, learning_rate)``,
    the one hook every Keras optimizer implements, receives the variable but not its position, and a
    per-group learning rate needs the group of that variable.

    Relies on the private ``BaseOptimizer._get_variable_index``: ``build`` records each variable's
    position keyed by ``id(variable)``, and ``apply`` passes the same variable objects to
    ``update_step``, also inside a compiled train step (Keras' own Adam and SGD find their slot
    variables with it). No public method maps a variable to its position.
    """
    return optimizer._get_variable_index(variable)


def training_variables(model: keras.Model) -> tuple[list, list]:
    """``(model variables, optimizer variables)``: everything a training's next step depends on.

    Used by :mod:`pipeline.resume` to save the state after an epoch and to restore it before the
    first step of a resumed ``fit``. The optimizer is built first when it is not yet (a ``fit``
    builds it on its first step, too late for a restore).

    Relies on two behaviours of Keras 3:

    * ``model.variables`` includes the state of every ``keras.random.SeedGenerator`` a layer owns
      (dropout, our AWD regularisers), so restoring it makes the next epoch draw the same masks;
    * ``optimizer.build(model.trainable_variables)`` before the first step creates the same
      variables, in the same order, as the build a ``fit`` would do, and ``fit`` then keeps them.
    """
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return list(model.variables), list(optimizer.variables)


# ------------------------------------------------------------------ callbacks

# The attributes that carry a Keras callback's state from one epoch to the next: its ``on_epoch_end``
# reads and updates them, its ``on_train_begin`` resets them (``ModelCheckpoint`` keeps ``best``).
CALLBACK_STATE: dict[type, tuple[str, ...]] = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
    keras.callbacks.ModelCheckpoint: ("best",),
}


def callback_state(callback: keras.callbacks.Callback) -> dict[str, Any]:
    """The state of ``callback`` after an epoch as plain JSON values (``{}`` for a callback without state).

    Relies on the (undocumented) attribute names of :data:`CALLBACK_STATE`, which ``on_epoch_end``
    of Keras' ``EarlyStopping``, ``ReduceLROnPlateau`` and ``ModelCheckpoint`` read and update:
    ``BackupAndRestore``, Keras' own way to resume, saves the model and optimizer only, so these
    callbacks would start over (early stopping would wait ``patience`` more epochs).
    """
    names = next((names for kind, names in CALLBACK_STATE.items() if isinstance(callback, kind)), ())
    return {name: _plain(getattr(callback, name)) for name in names if hasattr(callback, name)}


def restore_callback_state(callback: keras.callbacks.Callback, state: dict[str, Any]) -> None:
    """Set the attributes that :func:`callback_state` returned on ``callback``.

    Call it after the callback's ``on_train_begin`` (which resets them), i.e. from a callback
    placed after it in the list: Keras calls callbacks in list order.
    """
    for name, value in state.items():
        setattr(callback, name, value)


def early_stopping_best_weights(callback: keras.callbacks.Callback) -> list[np.ndarray] | None:
    """The weights of the best epoch so far that an ``EarlyStopping(restore_best_weights=True)`` holds.

    Relies on ``EarlyStopping.best_weights``: the list ``model.get_weights()`` gave at the best
    epoch, which its ``on_train_end`` passes to ``model.set_weights``; ``None`` before any epoch
    and for any other callback.
    """
    if not isinstance(callback, keras.callbacks.EarlyStopping):
        return None
    return callback.best_weights


def set_early_stopping_best_weights(callback: keras.callbacks.EarlyStopping, weights: list[np.ndarray]) -> None:
    """Give a resumed ``EarlyStopping`` the best weights of the epochs before the interruption (see
    :func:`early_stopping_best_weights`); call it after the callback's ``on_train_begin``."""
    callback.best_weights = list(weights)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# ------------------------------------------------------------------ trainers (XLA)


def force_jit_compile(model: keras.Model) -> None:
    """Run ``model``'s train, test and predict steps XLA-compiled even where Keras would refuse.

    Used by :func:`pipeline.training.compile_steps` for ``train.jit_compile = "on"`` on TensorFlow:
    ``make_deterministic`` turns on TensorFlow's op determinism, and Keras' ``jit_compile`` setter
    then drops ``True`` with a warning ("Model doesn't support `jit_compile=True`"), because XLA on
    a GPU is not deterministic for every op. XLA on the CPU is (one thread order per compiled
    program; ``tests/test_training.py`` trains twice and compares the weights bit for bit).

    Relies on the private ``Trainer._jit_compile``, which the public ``jit_compile`` property
    returns and ``make_train_function`` / ``make_test_function`` / ``make_predict_function`` read
    when they wrap the steps in ``tf.function(jit_compile=...)``. Call it after ``compile`` (which
    resets the attribute) and before the first ``fit``/``evaluate``/``predict`` (which keep the
    functions they made). Every layer must still allow XLA (``layer.supports_jit``): that is checked
    by the caller (:func:`layers_refusing_jit`), not bypassed here.
    """
    if not hasattr(model, "_jit_compile"):
        raise RuntimeError("this Keras has no Trainer._jit_compile; pipeline.keras_compat.force_jit_compile "
                           "needs updating (see tests/test_keras_compat.py)")
    model._jit_compile = True


def layers_refusing_jit(model: keras.Model) -> list[str]:
    """Names of the layers of ``model``, nested ones included, whose ``supports_jit`` is false.

    Relies on the private ``Layer._flatten_layers()`` (every layer tracked below the model), the
    walk Keras' own ``model_supports_jit`` makes: ``model.layers`` lists the top level only.
    """
    return sorted({layer.name for layer in model._flatten_layers() if not layer.supports_jit})


# ------------------------------------------------------------------ trainers (tf.distribute)


def take_strategy_from_scope(model: keras.Model) -> None:
    """Make a model built in a ``tf.distribute`` scope fit under the strategy of the scope it is fitted in.

    Used by :meth:`pipeline.distribution.Distribution.fitting` for several workers: a fit under a
    strategy starts by reducing the first batch over the replicas to build the model symbolically,
    which fails for a nested ``(inputs, targets)`` batch; our model is already built.

    Relies on the private attribute ``_distribute_strategy`` of Keras' TensorFlow trainer: set to the
    strategy of the scope the model was created in; when it is ``None``, ``model.distribute_strategy``
    falls back to ``tf.distribute.get_strategy()`` (the strategy of the current scope) and
    ``_maybe_symbolic_build`` returns without building. A Keras without the attribute would silently
    ignore the assignment, so that is an error here.
    """
    if not hasattr(model, "_distribute_strategy"):
        raise RuntimeError("this Keras has no Trainer._distribute_strategy; pipeline.keras_compat."
                           "take_strategy_from_scope needs updating (see tests/test_keras_compat.py)")
    model._distribute_strategy = None


def wrap_steps(model: keras.Model, wrapper: Callable[[Callable], Callable],
               names: tuple[str, ...] = ("train_step", "test_step")) -> None:
    """Replace ``model.train_step`` and ``model.test_step`` of this one model by ``wrapper(step)``.

    Used by :meth:`pipeline.distribution.Distribution.fitting` to reshape the step logs of a
    multi-worker fit. The documented way to change a step is to subclass ``keras.Model`` and
    override ``train_step``; our models are functional ones, built by the tasks, so the bound
    methods of the instance are replaced instead.

    Relies on the trainers reading ``self.train_step`` / ``self.test_step`` when ``fit`` /
    ``evaluate`` first make their step function (``make_train_function``), so an instance attribute
    shadows the class's method. Call it before the model's first ``fit`` or ``evaluate``: the made
    functions are kept (``model.train_function``).
    """
    for name in names:
        setattr(model, name, wrapper(getattr(model, name)))
