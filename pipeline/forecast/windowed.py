"""Forecast a series with any recurrent layer kind of the registry, over sliding windows.

``forecast_windowed`` builds ``Input (batch, window, 1) -> recurrent layer (kind) -> Dense(1)``,
trains it to predict the next (scaled) value with the mean squared error, early stopping on
the validation part, then measures one-step and recursive multi-step forecasts on the test part
against the persistence and seasonal-naive baselines (see :mod:`pipeline.forecast.windows`).

The ``esn`` kind is not trained by gradient descent: its reservoir (fixed random weights) runs
over each window and a ridge readout on ``[last input; final state]`` is solved in closed form
(:class:`pipeline.layers.esn.RidgeAccumulator`) on the training windows.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import seeds
from pipeline.config import nearest
from pipeline.errors import PipelineError
from pipeline.forecast import windows as W

logger = logging.getLogger(__name__)

# The forecast options a registry builder may take (passed when its signature has them).
LAYER_OPTIONS = ("units", "leak_rate", "spectral_radius", "input_scaling", "connectivity", "input_connectivity",
                 "bias_scaling")


def check_kind(kind: str) -> None:
    """Raise a one-line :class:`PipelineError` (with a "did you mean") unless ``kind`` is in the registry."""
    from pipeline import models

    if kind not in models.RECURRENT_LAYERS:
        hint = nearest(kind, models.RECURRENT_LAYERS) or f" (one of: {', '.join(sorted(models.RECURRENT_LAYERS))})"
        raise PipelineError(f"config key 'forecast.kind' = {kind!r} is not a layer kind{hint}")


def build_layer(kind: str, options: dict[str, Any], seed: int):
    """The registry's layer ``kind`` (last state only), given the ``options`` its builder accepts."""
    from pipeline import models

    check_kind(kind)
    builder = models.RECURRENT_LAYERS[kind]
    accepted = {key: value for key, value in options.items() if key in inspect.signature(builder).parameters}
    context = models.LayerContext(
        return_sequences=False, kernel_initializer=_initializer("glorot_uniform", seeds.child_seed(seed, "kernel")),
        recurrent_initializer=_initializer("orthogonal", seeds.child_seed(seed, "recurrent")),
        seed=seeds.child_seed(seed, "layer") % 2**31, name="recurrent")
    try:
        return builder(context=context, **accepted)
    except (ValueError, TypeError) as error:
        raise PipelineError(f"forecast.kind = {kind!r}: {str(error).strip().splitlines()[0]}") from None


def _initializer(name: str, seed: int):
    import keras

    return keras.initializers.get({"class_name": name, "config": {"seed": seed % 2**31}})


def _fit_trained(kind: str, options: dict[str, Any], data: dict[str, np.ndarray], *, window: int, epochs: int,
                 batch_size: int, learning_rate: float, patience: int, clipnorm: float, seed: int,
                 folder: Path) -> tuple[Any, int]:
    """Train ``kind -> Dense(1)`` by Adam on MSE; return ``(predict, epochs run)``."""
    import dataclasses

    import keras

    from pipeline import training
    from pipeline.sections import TrainConfig

    training.make_deterministic(seed)
    settings = dataclasses.replace(TrainConfig(), optimizer="adam", learning_rate=learning_rate, clipnorm=clipnorm,
                                   batch_size=batch_size, epochs=epochs, patience=patience, tensorboard=False)
    inputs = keras.Input((window, 1), name="window")
    hidden = build_layer(kind, options, seed)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="next_value")(hidden), name=f"forecast_{kind}")
    model.compile(optimizer=training.make_optimizer(settings), loss="mse")
    history = model.fit(data["train_x"][..., None], data["train_y"], batch_size=batch_size, epochs=epochs,
                        validation_data=(data["validation_x"][..., None], data["validation_y"]), shuffle=True,
                        callbacks=training.callbacks(settings, folder, "val_loss", checkpoint=False),
                        verbose=training.progress_verbosity())

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(batch[..., None].astype("float32")))[:, 0]

    return predict, len(history.history["loss"])


def _fit_reservoir(options: dict[str, Any], data: dict[str, np.ndarray], *, ridge: float, seed: int):
    """Run the ``esn`` reservoir over each window; ridge readout on ``[last input; final state]``."""
    import keras

    from pipeline.layers.esn import RidgeAccumulator

    layer = build_layer("esn", options, seed)
    inputs = keras.Input((None, 1))
    states = keras.Model(inputs, layer(inputs))

    def features(batch: np.ndarray) -> np.ndarray:
        final = np.asarray(states.predict_on_batch(batch[..., None].astype("float32")), dtype=np.float64)
        return np.column_stack([batch[:, -1], final])

    accumulator = RidgeAccumulator(ridge)
    accumulator.update(features(data["train_x"]), data["train_y"])
    weights, bias = accumulator.solve()

    def predict(batch: np.ndarray) -> np.ndarray:
        return features(batch) @ weights[:, 0] + bias[0]

    return predict, 0


def forecast_windowed(series, *, kind: str = "lstm", window: int = 24, horizon: int = 12, season: int = 12,
                      train_fraction: float = 0.7, validation_fraction: float = 0.15, difference: bool = False,
                      epochs: int = 200, batch_size: int = 32, learning_rate: float = 3e-3, patience: int = 20,
                      clipnorm: float = 1.0, ridge: float = 1e-6, layer_options: dict[str, Any] | None = None,
                      seed: int = 0, folder: str | Path | None = None) -> dict[str, Any]:
    """Train ``kind`` on sliding windows of ``series`` and measure it against the baselines.

    Args:
        series: the values ``(n,)`` in time order.
        kind: a registry kind (``lstm``, ``gru``, ``simple_rnn``, ``elman``, ``esn``, ...).
        window: inputs per forecast; horizon: steps of the recursive multi-step forecast.
        season: period of the seasonal-naive baseline (12 for monthly data).
        train_fraction, validation_fraction: the first and second parts, in time order; the rest is test.
        difference: model first differences instead of levels (for trending series).
        epochs ... clipnorm: Adam training with early stopping on the validation loss (trained kinds).
        ridge: β of the ``esn`` readout.
        layer_options: options passed to the registry builder when it accepts them (``units``, ...).
        seed: drives weights, shuffling and the reservoir.
        folder: where ``history.csv`` is written (trained kinds; default: not kept).

    Returns:
        ``{"metrics": {"one_step"|"multi_step": {"model"|"persistence"|"seasonal_naive": {rmse, mae,
        nrmse}}, "beats_persistence": {...}, "epochs_run", "test_targets"}, "test_index" (t,),
        "one_step": {"truth", "model", "persistence", "seasonal_naive"} (t,) each, "multi_step":
        {"origins" (p,), "truth", "model", "persistence", "seasonal_naive"} (p, horizon) each}``.
    """
    values = np.asarray(series, dtype=np.float64).reshape(-1)
    split = W.time_split(values.size, window, train_fraction, validation_fraction, difference=difference,
                         horizon=horizon)
    if season >= split.validation_end:
        raise PipelineError(f"forecast.season = {season} must be smaller than the first test index "
                            f"{split.validation_end}")
    z = W.model_series(values, difference)
    scaler = W.Standardiser.fit(z[(1 if difference else 0): split.train_end])
    scaled = scaler.transform(z)
    data = {}
    for part in ("train", "validation", "test"):
        targets = split.targets(part)
        data[f"{part}_x"], data[f"{part}_y"] = W.windows(scaled, targets, window), scaled[targets]
    options = dict(layer_options or {})
    if kind == "esn":
        predict, epochs_run = _fit_reservoir(options, data, ridge=ridge, seed=seed)
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            predict, epochs_run = _fit_trained(
                kind, options, data, window=window, epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, patience=patience, clipnorm=clipnorm, seed=seed,
                folder=Path(folder) if folder is not None else Path(scratch))

    test_index = split.targets("test")
    one_step = {"truth": values[test_index],
                "model": W.recursive_forecast(predict, scaled, values, test_index, window, 1, scaler, difference)[:, 0],
                "persistence": W.persistence(values, test_index, 1)[:, 0],
                "seasonal_naive": W.seasonal_naive(values, test_index, 1, season)[:, 0]}
    origins = test_index[: len(test_index) - horizon + 1]
    multi_step = {"origins": origins, "truth": values[origins[:, None] + np.arange(horizon)[None, :]],
                  "model": W.recursive_forecast(predict, scaled, values, origins, window, horizon, scaler, difference),
                  "persistence": W.persistence(values, origins, horizon),
                  "seasonal_naive": W.seasonal_naive(values, origins, horizon, season)}
    metrics: dict[str, Any] = {}
    for mode, result in (("one_step", one_step), ("multi_step", multi_step)):
        metrics[mode] = {name: W.errors(result["truth"], result[name])
                         for name in ("model", "persistence", "seasonal_naive")}
    metrics["beats_persistence"] = {mode: metrics[mode]["model"]["rmse"] < metrics[mode]["persistence"]["rmse"]
                                    for mode in ("one_step", "multi_step")}
    metrics.update(epochs_run=epochs_run, test_targets=int(test_index.size), horizon=horizon)
    logger.info("%s forecast: one-step RMSE %.4g (persistence %.4g), %d-step RMSE %.4g (persistence %.4g)", kind,
                metrics["one_step"]["model"]["rmse"], metrics["one_step"]["persistence"]["rmse"], horizon,
                metrics["multi_step"]["model"]["rmse"], metrics["multi_step"]["persistence"]["rmse"])
    return {"metrics": metrics, "kind": kind, "test_index": test_index, "one_step": one_step,
            "multi_step": multi_step}
