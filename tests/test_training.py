"""Tests of ``pipeline.training``: learning-rate schedules (as callbacks and in a real fit), optimizers, clipping."""

import keras
import numpy as np
import pytest
from helpers import REPOSITORY

from pipeline import config as config_module
from pipeline.errors import PipelineError
from pipeline.sections import TrainConfig
from pipeline.training import TimeLimit, callbacks, make_optimizer, schedule_callbacks


# ------------------------------------------------------------------ learning-rate schedules
def test_step_decay_keeps_the_rate_for_decay_start_epochs_then_halves_it():
    settings = TrainConfig(learning_rate=1.0, lr_schedule="step", decay_start=4, decay_factor=0.5)
    (scheduler,) = schedule_callbacks(settings, "val_perplexity")
    assert isinstance(scheduler, keras.callbacks.LearningRateScheduler)
    rates = [scheduler.schedule(epoch, 1.0) for epoch in range(8)]
    assert rates == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125, 0.0625], rel=1e-12)


def test_zaremba_config_schedule_is_four_epochs_at_one_then_halved():
    config = config_module.load(REPOSITORY / "configs" / "zaremba_small.toml")
    (scheduler,) = schedule_callbacks(config.train, "val_perplexity")
    rates = [scheduler.schedule(epoch, config.train.learning_rate) for epoch in range(config.train.epochs)]
    assert rates == pytest.approx([1.0] * 4 + [0.5 ** k for k in range(1, 10)], rel=1e-12)


def test_step_decay_sets_the_optimizer_rate_during_fit():
    settings = TrainConfig(learning_rate=1.0, lr_schedule="step", decay_start=2, decay_factor=0.5, optimizer="sgd")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    history = model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=5, verbose=0,
                        callbacks=schedule_callbacks(settings, "loss"))
    assert history.history["learning_rate"] == pytest.approx([1.0, 1.0, 0.5, 0.25, 0.125])


def test_plateau_schedule_watches_the_monitor_and_multiplies_by_the_factor():
    settings = TrainConfig(lr_schedule="plateau", decay_factor=0.5, plateau_patience=1, learning_rate=0.02)
    (callback,) = schedule_callbacks(settings, "val_perplexity")
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.monitor, callback.factor, callback.patience) == ("val_perplexity", 0.5, 1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate([50.0, 40.0, 41.0, 39.0, 39.5]):
        callback.on_epoch_end(epoch, {"val_perplexity": value})
        rates.append(float(model.optimizer.learning_rate))
    # worse than the best for plateau_patience = 1 epoch: halve
    assert rates == pytest.approx([0.02, 0.02, 0.01, 0.01, 0.005])


def test_constant_schedule_adds_no_callback():
    assert schedule_callbacks(TrainConfig(), "val_perplexity") == []


# ------------------------------------------------------------------ optimizer and clipping
@pytest.mark.parametrize("name, optimizer_class", [("sgd", keras.optimizers.SGD), ("rmsprop", keras.optimizers.RMSprop),
                                                   ("adagrad", keras.optimizers.Adagrad),
                                                   ("adam", keras.optimizers.Adam)])
def test_make_optimizer_passes_global_clipnorm(name, optimizer_class):
    optimizer = make_optimizer(TrainConfig(optimizer=name, learning_rate=0.25, clipnorm=1.5))
    assert type(optimizer) is optimizer_class
    assert optimizer.global_clipnorm == 1.5
    assert optimizer.clipnorm is None and optimizer.clipvalue is None
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.25)


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adagrad", "adam"])
def test_make_optimizer_passes_clipvalue(name):
    optimizer = make_optimizer(TrainConfig(optimizer=name, clipvalue=0.5))
    assert optimizer.clipvalue == 0.5
    assert optimizer.clipnorm is None and optimizer.global_clipnorm is None


def test_make_optimizer_without_clipping_and_learning_rate_override():
    optimizer = make_optimizer(TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.5), learning_rate=0.01)
    assert optimizer.clipnorm is None and optimizer.clipvalue is None and optimizer.global_clipnorm is None
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.01)
    assert optimizer.momentum == 0.5


def apply_one_sgd_step(settings: TrainConfig, gradients: list[np.ndarray]) -> list[np.ndarray]:
    variables = [keras.Variable(np.zeros_like(g)) for g in gradients]
    make_optimizer(settings).apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in gradients], variables))
    return [keras.ops.convert_to_numpy(v) for v in variables]


def test_clipnorm_clips_the_global_norm_of_all_gradients_together():
    gradients = [np.array([3.0, 0.0, 0.0], dtype="float32"), np.array([0.0, 4.0], dtype="float32")]  # global norm 5
    settings = TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.0, clipnorm=1.0)
    updated = apply_one_sgd_step(settings, gradients)
    expected = [-0.1 * g / 5.0 for g in gradients]  # scaled together by 1 / 5, directions kept
    for got, want in zip(updated, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_clipvalue_clips_each_gradient_element():
    gradients = [np.array([3.0, -0.2, -7.0], dtype="float32")]
    settings = TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.0, clipvalue=0.5)
    (updated,) = apply_one_sgd_step(settings, gradients)
    np.testing.assert_allclose(updated, -0.1 * np.clip(gradients[0], -0.5, 0.5), atol=1e-6)


def test_clipnorm_and_clipvalue_together_is_a_user_error():
    # Keras accepts only one clipping mode; the pipeline should say so as a PipelineError, not a ValueError
    with pytest.raises(PipelineError):
        settings = config_module.from_dict({"train": {"clipnorm": 1.0, "clipvalue": 0.5}}).train
        make_optimizer(settings)


# ------------------------------------------------------------------ time limit
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_limit_stops_before_an_epoch_would_end_past_the_budget():
    clock = FakeClock()
    limit = TimeLimit(minutes=1.0, clock=clock)  # 60 s
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    limit.set_model(model)
    limit.on_train_begin()
    for epoch, seconds in enumerate([15.0, 20.0, 10.0]):
        limit.on_epoch_begin(epoch)
        clock.now += seconds
        limit.on_epoch_end(epoch)
        if getattr(model, "stop_training", False):
            break
    # after 35 s, the slowest epoch (20 s) would end at 55 s <= 60: go on; after 45 s, 45 + 20 > 60: stop
    assert limit.stopped_epoch == 2 and clock.now == 45.0


def test_time_limit_callback_is_added_only_when_set(tmp_path):
    assert not any(isinstance(c, TimeLimit) for c in callbacks(TrainConfig(tensorboard=False), tmp_path, "loss"))
    added = callbacks(TrainConfig(tensorboard=False, time_limit_minutes=5), tmp_path, "loss")
    assert [c.seconds for c in added if isinstance(c, TimeLimit)] == [300.0]
