"""Tests of ``pipeline.training``: learning-rate schedules (as callbacks and in a real fit), optimizers, clipping."""


import keras
import numpy as np
import pytest
from helpers import REPOSITORY

from pipeline import config as config_module
from pipeline.errors import PipelineError
from pipeline.sections import TrainConfig
from pipeline.training import (
    GroupRates,
    GroupRateSchedule,
    SlantedTriangular,
    TimeBudget,
    TimeLimit,
    callbacks,
    compile_steps,
    cpu_has_bfloat16,
    dtype_policy,
    learning_rate_schedule,
    make_deterministic,
    make_optimizer,
    resolve_precision,
    schedule_callbacks,
)


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
    # a training given its share of a budget (a self-training round) gets that share, with or without the key
    for settings in (TrainConfig(tensorboard=False, time_limit_minutes=5), TrainConfig(tensorboard=False)):
        shared = callbacks(settings, tmp_path, "loss", minutes=1.5)
        assert [c.seconds for c in shared if isinstance(c, TimeLimit)] == [90.0]


# ------------------------------------------------------------------ per-batch schedules
def rate_at(schedule, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_slanted_triangular_follows_the_papers_equation():
    # T = 100, cut_frac = 0.1 -> cut = 10; ratio 32; eta_max = 0.01
    schedule = SlantedTriangular(0.01, total_steps=100)
    def stlr(t):  # Howard & Ruder 2018, eq. 3
        cut = 10
        p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / 0.1 - 1))
        return 0.01 * (1 + p * 31) / 32
    for t in (0, 1, 5, 9, 10, 11, 55, 99, 100):
        assert rate_at(schedule, t) == pytest.approx(stlr(t), rel=1e-6), t
    assert rate_at(schedule, 0) == pytest.approx(0.01 / 32) and rate_at(schedule, 10) == pytest.approx(0.01)
    assert rate_at(schedule, 55) == pytest.approx(0.01 * (1 + 0.5 * 31) / 32)  # half way down
    assert rate_at(schedule, 250) == pytest.approx(0.01 / 32)  # never below the floor past T


def test_slanted_triangular_round_trips_through_its_config_and_rejects_bad_arguments():
    schedule = SlantedTriangular(0.002, total_steps=40, cut_fraction=0.2, ratio=8)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert [rate_at(again, t) for t in (0, 8, 30)] == pytest.approx([rate_at(schedule, t) for t in (0, 8, 30)])
    for arguments in ((0.0, 10), (0.1, 0), (0.1, 10, 1.0), (0.1, 10, 0.1, 0.5)):
        with pytest.raises(ValueError):
            SlantedTriangular(*arguments)


def test_learning_rate_schedule_spans_every_batch_of_every_epoch():
    assert learning_rate_schedule(TrainConfig(learning_rate=0.01), steps_per_epoch=7) == 0.01
    for plain in ("step", "plateau"):  # epoch-wise: callbacks change a constant rate
        assert learning_rate_schedule(TrainConfig(lr_schedule=plain), steps_per_epoch=7) == 1e-3
    stlr = learning_rate_schedule(TrainConfig(lr_schedule="slanted_triangular", learning_rate=0.01, epochs=10), 30)
    assert stlr.total_steps == 300 and rate_at(stlr, 30) == pytest.approx(0.01)  # the peak after 10% of 300
    one_cycle = learning_rate_schedule(TrainConfig(lr_schedule="one_cycle", learning_rate=0.01, epochs=10), 30)
    # warm-up from lr / 25 to lr over 30% of the steps, cosine down to lr / 25 / 1e4 (PyTorch's OneCycleLR defaults)
    assert rate_at(one_cycle, 0) == pytest.approx(0.01 / 25)
    assert rate_at(one_cycle, 45) == pytest.approx((0.01 / 25 + 0.01) / 2)
    assert rate_at(one_cycle, 90) == pytest.approx(0.01)
    assert rate_at(one_cycle, 195) == pytest.approx(0.01 * (0.5 + 0.5 / 25e4), rel=1e-5)  # cosine half way
    assert rate_at(one_cycle, 300) == pytest.approx(0.01 / 25e4, rel=1e-3)


def test_make_optimizer_takes_a_schedule():
    optimizer = make_optimizer(TrainConfig(), SlantedTriangular(0.01, 100))
    assert rate_at(lambda step: optimizer.learning_rate, 0) == pytest.approx(0.01 / 32)


# ------------------------------------------------------------------ per-group learning rates
def two_groups(factors) -> tuple[GroupRates, list]:
    """Variables [a, b] in groups 0 and 1, with ``factors(epoch)``."""
    variables = [keras.Variable(np.zeros(3, "float32"), name="a"), keras.Variable(np.zeros(2, "float32"), name="b")]
    groups = {id(variables[0]): 0, id(variables[1]): 1}
    return GroupRates(("low", "high"), lambda variable: groups[id(variable)], factors), variables


def values(variables) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in variables]


def test_group_rates_scale_each_groups_sgd_step_and_keep_global_clipping():
    group_rates, variables = two_groups(lambda epoch: (0.25, 1.0))
    settings = TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.0, clipnorm=1.0)
    optimizer = make_optimizer(settings, group_rates=group_rates)
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.global_clipnorm == 1.0
    gradients = [np.array([3.0, 0.0, 0.0], "float32"), np.array([0.0, 4.0], "float32")]  # global norm 5
    optimizer.apply([keras.ops.convert_to_tensor(g) for g in gradients], variables)
    low, high = values(variables)
    np.testing.assert_allclose(low, -0.25 * 0.1 * gradients[0] / 5.0, atol=1e-7)  # clipped together, then scaled
    np.testing.assert_allclose(high, -0.1 * gradients[1] / 5.0, atol=1e-7)


def test_a_frozen_group_keeps_its_weights_while_adam_tracks_its_gradients():
    group_rates, variables = two_groups(lambda epoch: (0.0, 1.0))
    optimizer = make_optimizer(TrainConfig(optimizer="adam", learning_rate=0.1), group_rates=group_rates)
    gradient = [keras.ops.ones((3,)), keras.ops.ones((2,))]
    for _ in range(3):
        optimizer.apply(gradient, variables)
    low, high = values(variables)
    np.testing.assert_array_equal(low, 0.0)
    np.testing.assert_allclose(high, -0.3, rtol=1e-4)  # Adam: lr * sign(g) per step for a constant gradient
    optimizer.group_factors.assign([1.0, 1.0])  # unfrozen: its moments already fit its gradients
    optimizer.apply(gradient, variables)
    np.testing.assert_allclose(values(variables)[0], -0.1, rtol=1e-4)


def test_group_rate_schedule_sets_the_factors_of_each_epoch_in_a_fit(tmp_path, caplog):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="low"), keras.layers.Dense(1, name="high")])
    groups = {id(v): 0 for v in model.get_layer("low").trainable_weights}
    group_rates = GroupRates(("low", "high"), lambda variable: groups.get(id(variable), 1),
                             lambda epoch: (0.0 if epoch < 2 else 0.5, 1.0))
    model.compile(optimizer=make_optimizer(TrainConfig(learning_rate=0.01), group_rates=group_rates), loss="mse")
    initial = model.get_layer("low").get_weights()
    inputs, targets = np.ones((8, 2), "float32"), np.ones((8, 1), "float32")
    with caplog.at_level("INFO", logger="pipeline.training"):
        model.fit(inputs, targets, epochs=2, verbose=0, callbacks=[GroupRateSchedule()])
        for ours, theirs in zip(model.get_layer("low").get_weights(), initial):
            np.testing.assert_array_equal(ours, theirs)  # frozen for epochs 1 and 2
        model.fit(inputs, targets, epochs=3, initial_epoch=2, verbose=0, callbacks=[GroupRateSchedule()])
    assert not np.array_equal(model.get_layer("low").get_weights()[0], initial[0])
    assert keras.ops.convert_to_numpy(model.optimizer.group_factors).tolist() == [0.5, 1.0]
    assert "epoch 1: learning-rate factors low frozen, high 1" in caplog.text
    assert "epoch 3: learning-rate factors low 0.5, high 1" in caplog.text
    model.save(tmp_path / "model.keras")  # what ModelCheckpoint does; the run folder reloads uncompiled
    reloaded = keras.saving.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))


# ------------------------------------------------------------------ XLA-compiled steps


def masked_gru_weights_after_fit(jit_compile: str) -> tuple[bool, list[np.ndarray]]:
    """Seed, build Embedding(mask_zero) > GRU(4) > Dense(3), fit one epoch on batches of two widths.

    Returns whether the steps were XLA-compiled and the weights after the fit.
    """
    make_deterministic(7)
    inputs = keras.Input((None,), dtype="int32")
    hidden = keras.layers.GRU(4)(keras.layers.Embedding(10, 3, mask_zero=True)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    compiled = compile_steps(model, jit_compile)
    rng = np.random.default_rng(0)
    for width in (5, 8):  # two shapes: two XLA programs
        ids = rng.integers(1, 10, size=(4, width)).astype("int32")
        ids[:, width - 2:] = 0  # padding the mask hides
        model.train_on_batch(ids, rng.integers(0, 3, size=4))
    return compiled, model.get_weights()


def test_jit_compile_on_compiles_the_steps_under_op_determinism_and_stays_reproducible():
    compiled, first = masked_gru_weights_after_fit("on")
    assert compiled  # on TensorFlow despite make_deterministic's op determinism (Keras alone would refuse)
    _, second = masked_gru_weights_after_fit("on")
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)  # XLA on the CPU: the same seed gives the same bits
    off, graph = masked_gru_weights_after_fit("off")
    assert not off
    for a, b in zip(first, graph):  # the same function compiled differently: equal up to rounding
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_jit_compile_rejects_an_unknown_setting_and_names_a_layer_that_cannot_be_compiled():
    inputs = keras.Input((3,))
    layer = keras.layers.Dense(2, name="python_side")
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="jit_compile='yes'"):
        compile_steps(model, "yes")
    layer.supports_jit = False
    with pytest.raises(PipelineError, match="python_side"):
        compile_steps(model, "on")
    assert compile_steps(model, "auto") is False  # Keras' own choice sees the layer too


INTEL_AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
AMD_WITHOUT = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nbugs\t\t: sysret_ss_attrs\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


@pytest.mark.parametrize(("cpuinfo", "expected"), [
    (INTEL_AMX, "mixed_bfloat16"), (ARM_BF16, "mixed_bfloat16"), (AMD_WITHOUT, "float32"),
    ("model name\t: bf16 in a name is no flag\n", "float32"), ("", "float32")])
def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(cpuinfo, expected):
    assert cpu_has_bfloat16(cpuinfo) == (expected == "mixed_bfloat16")
    assert resolve_precision("auto", cpuinfo) == expected
    for name in ("float32", "mixed_bfloat16"):  # a set precision is kept on any CPU
        assert resolve_precision(name, cpuinfo) == name


def test_dtype_policy_auto_follows_this_machines_cpu_and_is_restored():
    before = keras.config.dtype_policy().name
    with dtype_policy("auto"):
        assert keras.config.dtype_policy().name == ("mixed_bfloat16" if cpu_has_bfloat16() else "float32")
    assert keras.config.dtype_policy().name == before


def test_time_budget_shares_what_is_left_over_the_trainings_to_come():
    now = [100.0]
    budget = TimeBudget(10.0, clock=lambda: now[0])
    assert budget.share(1, 2) == pytest.approx(10 / 3)  # a third of 10 minutes for the first of three
    now[0] += 120.0  # the first stopped after 2 minutes: the other two share the 8 left
    assert budget.share(1, 1) == pytest.approx(4.0)
    now[0] += 1000.0
    assert budget.left_seconds() == 0.0 and budget.share(1, 0) == 0.0
    assert TimeBudget(0.0).share(1, 5) is None and TimeBudget(0.0).left_seconds() == float("inf")
