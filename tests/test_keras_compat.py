"""Tests of pipeline.keras_compat: one per Keras behaviour the pipeline relies on beyond the public API.

Each test fails when a Keras release changes that behaviour (renames a private attribute, stops reading
an instance's step method, resets a callback differently, ...), before a training run would go wrong.
"""

import json

import keras
import numpy as np
import pytest

from pipeline.keras_compat import (
    CALLBACK_STATE,
    callback_state,
    early_stopping_best_weights,
    force_jit_compile,
    layers_refusing_jit,
    optimizer_variable_index,
    restore_callback_state,
    set_early_stopping_best_weights,
    take_strategy_from_scope,
    training_variables,
    wrap_steps,
)

needs_tensorflow = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute only")


def tiny_model(optimizer="sgd", dropout: float = 0.0) -> keras.Model:
    """Dense(2) -> [Dropout] -> Dense(1) on 3 features, compiled with mean squared error."""
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(2, kernel_initializer="ones", name="hidden")(inputs)
    if dropout:
        hidden = keras.layers.Dropout(dropout, seed=1, name="dropout")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="ones", name="output")(hidden))
    model.compile(optimizer=optimizer, loss="mse")
    return model


def data(rows: int = 8):
    rng = np.random.default_rng(0)
    return rng.normal(size=(rows, 3)).astype("float32"), rng.normal(size=(rows, 1)).astype("float32")


# ------------------------------------------------------------------ optimizers


class PerVariableSGD(keras.optimizers.SGD):
    """SGD whose step for the i-th trainable variable is scaled by ``factors[i]`` (what GroupRates does)."""

    def __init__(self, factors, **kwargs):
        super().__init__(**kwargs)
        self.factors = factors

    def update_step(self, gradient, variable, learning_rate):
        factor = self.factors[optimizer_variable_index(self, variable)]
        super().update_step(gradient, variable, learning_rate * factor)


def test_optimizer_variable_index_finds_each_variable_in_a_compiled_train_step():
    """``update_step`` gets the variables ``build`` saw, inside fit's compiled step, and the index finds each."""
    x, y = data()
    plain, scaled = tiny_model(keras.optimizers.SGD(0.1)), tiny_model()
    factors = (0.0, 3.0, 1.0, 0.5)  # hidden kernel frozen, hidden bias x3, output kernel x1, output bias x0.5
    scaled.compile(optimizer=PerVariableSGD(factors, learning_rate=0.1), loss="mse")
    before = [np.array(v) for v in plain.trainable_variables]
    for model in (plain, scaled):
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for factor, start, unscaled, ours in zip(factors, before, plain.trainable_variables, scaled.trainable_variables,
                                             strict=True):
        np.testing.assert_allclose(np.array(ours) - start, factor * (np.array(unscaled) - start), rtol=1e-5,
                                   atol=1e-7)
    assert [optimizer_variable_index(scaled.optimizer, v) for v in scaled.trainable_variables] == [0, 1, 2, 3]


def test_training_variables_hold_the_dropout_generator_and_an_early_built_optimizer_is_the_one_fit_uses():
    model = tiny_model("adam", dropout=0.5)
    model_variables, optimizer_variables = training_variables(model)
    assert model.optimizer.built and len(optimizer_variables) > len(model.trainable_variables)
    # the dropout layer's seed generator state is a model variable: restoring it redraws the same mask
    seed_state = model.get_layer("dropout").seed_generator.state
    assert any(variable is seed_state for variable in model_variables)
    saved = np.array(seed_state)
    ones = np.ones((4, 2), "float32")
    first = np.array(model.get_layer("dropout")(ones, training=True))
    assert not np.array_equal(np.array(seed_state), saved)  # a draw advances it
    seed_state.assign(saved)
    np.testing.assert_array_equal(np.array(model.get_layer("dropout")(ones, training=True)), first)
    # fit keeps the optimizer variables built ahead of it (a restore into them is not overwritten)
    iterations = next(v for v in optimizer_variables if "iteration" in v.path)
    iterations.assign(41)
    model.fit(*data(), batch_size=8, epochs=1, verbose=0)
    assert [id(v) for v in training_variables(model)[1]] == [id(v) for v in optimizer_variables]
    assert int(np.array(iterations)) == 42


# ------------------------------------------------------------------ callbacks


def drive(callback, model, values, first_epoch=0, state=None, best_weights=None, weights_per_epoch=None):
    """One fit of ``callback`` over the monitor ``values`` from epoch ``first_epoch``; the learning rate and
    stop flag after each epoch."""
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    if state is not None:
        restore_callback_state(callback, json.loads(json.dumps(state)))  # what pipeline.resume stores
    if best_weights is not None:
        set_early_stopping_best_weights(callback, best_weights)
    seen = []
    for epoch, value in enumerate(values, start=first_epoch):
        if weights_per_epoch is not None:
            model.set_weights(weights_per_epoch[epoch])
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"val_loss": value})
        seen.append((float(np.array(model.optimizer.learning_rate)), bool(model.stop_training)))
        if model.stop_training:
            break
    callback.on_train_end()
    return seen


def weights_of_epoch(model, epochs):
    return [[np.full(w.shape, epoch, w.dtype) for w in model.get_weights()] for epoch in range(epochs)]


# the monitor worsens after epoch 1: a callback that forgot the first epochs would decide otherwise
VALUES = [1.0, 0.5, 0.7, 0.8, 0.9, 0.95]


@pytest.mark.parametrize("make", [
    lambda: keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
    lambda: keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, cooldown=1),
], ids=["EarlyStopping", "ReduceLROnPlateau"])
def test_callback_state_carries_early_stopping_and_plateau_decisions_over_an_interruption(make):
    assert {type(make())} <= set(CALLBACK_STATE)
    model = tiny_model(keras.optimizers.SGD(0.1))
    weights = weights_of_epoch(model, len(VALUES))
    uninterrupted = drive(make(), model, VALUES, weights_per_epoch=weights)
    final_weights = model.get_weights()
    model.optimizer.learning_rate.assign(0.1)
    first = make()
    before = drive(first, model, VALUES[:2], weights_per_epoch=weights)
    state, best = callback_state(first), early_stopping_best_weights(first)
    assert set(state) == set(CALLBACK_STATE[type(first)])  # every attribute exists under its name
    after = drive(make(), model, VALUES[2:], 2, state, best, weights_per_epoch=weights)
    assert before + after == uninterrupted
    for ours, theirs in zip(model.get_weights(), final_weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # the state matters: a callback started afresh decides otherwise
    model.optimizer.learning_rate.assign(before[-1][0])
    assert drive(make(), model, VALUES[2:], 2, weights_per_epoch=weights) != after


def test_early_stopping_best_weights_are_what_it_restores_at_the_end():
    model = tiny_model()
    weights = weights_of_epoch(model, len(VALUES))
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    drive(stopping, model, VALUES[:3], weights_per_epoch=weights)
    best = early_stopping_best_weights(stopping)
    assert [w.shape for w in best] == [w.shape for w in model.get_weights()]
    assert all((w == 1).all() for w in best)  # epoch 1's weights: the lowest value
    assert early_stopping_best_weights(keras.callbacks.CSVLogger("unused.csv")) is None


def test_callback_state_keeps_the_best_value_of_a_checkpoint(tmp_path):
    model = tiny_model()
    path = tmp_path / "best.keras"
    first = keras.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True, mode="min")
    drive(first, model, VALUES[:2])
    state = callback_state(first)
    assert state == {"best": 0.5}
    path.unlink()
    resumed = keras.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True, mode="min")
    drive(resumed, model, VALUES[2:3], 2, state)
    assert not path.exists()  # 0.7 is no better than the best before the interruption
    fresh = keras.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True, mode="min")
    drive(fresh, model, VALUES[2:3], 2)
    assert path.exists()  # ... which a checkpoint without the state would have saved over


# ------------------------------------------------------------------ trainers


def test_wrapped_steps_are_the_ones_fit_and_evaluate_run():
    model = tiny_model()

    def with_marker(step):
        def marked(data):
            return {**step(data), "marker": keras.ops.ones((1,))}  # a vector log, as Distribution.fitting makes
        return marked

    wrap_steps(model, with_marker)
    history = model.fit(*data(), batch_size=4, epochs=1, verbose=0).history
    assert history["marker"] == [pytest.approx(1.0)] and "loss" in history
    assert model.evaluate(*data(), batch_size=4, verbose=0, return_dict=True)["marker"] == pytest.approx(1.0)


@needs_tensorflow
def test_a_model_built_in_a_strategy_scope_takes_the_strategy_of_the_scope_it_is_fitted_in():
    import tensorflow as tf

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = tiny_model()
    assert model.distribute_strategy is strategy  # remembered from the scope it was built in
    take_strategy_from_scope(model)
    assert model.distribute_strategy is tf.distribute.get_strategy()  # now the current scope's (the default)
    with strategy.scope():
        assert model.distribute_strategy is strategy
        model.fit(*data(), batch_size=4, epochs=1, verbose=0)
    with pytest.raises(RuntimeError, match="_distribute_strategy"):
        take_strategy_from_scope(object())


# ------------------------------------------------------------------ trainers (XLA)


@needs_tensorflow
def test_forced_jit_compile_survives_op_determinism_and_compiles_the_train_step():
    import tensorflow as tf

    class PythonSide(keras.layers.Layer):
        """An op XLA cannot compile (a Python function): fitting fails exactly when the step is XLA-compiled."""

        def call(self, x):
            copied = tf.py_function(lambda t: t, [x], Tout=x.dtype)
            copied.set_shape(x.shape)
            return copied

        def compute_output_shape(self, input_shape):
            return input_shape

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="ones")(PythonSide()(inputs)))
    keras.utils.set_random_seed(0)  # as pipeline.training.make_deterministic, which also turns on:
    tf.config.experimental.enable_op_determinism()  # (no public undo; most test runs have it on already)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    assert model.jit_compile is False  # Keras drops True under op determinism: why force_jit_compile exists
    force_jit_compile(model)
    assert model.jit_compile is True
    with pytest.raises(Exception, match="(?i)xla|py_?func|compil"):
        model.fit(*data(), batch_size=4, epochs=1, verbose=0)
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    model.fit(*data(), batch_size=4, epochs=1, verbose=0)  # the same model runs op by op


def test_layers_refusing_jit_finds_a_nested_layer():
    class Outer(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = keras.layers.Dense(2, name="inner")
            self.inner.supports_jit = False

        def call(self, x):
            return self.inner(x)

    inputs = keras.Input((3,))
    model = keras.Model(inputs, Outer(name="outer")(inputs))
    assert layers_refusing_jit(model) == ["inner"]
    assert layers_refusing_jit(tiny_model()) == []
