"""Stochastic weight averaging (pipeline/averaging.py) through the callbacks every trainer gets, against numpy."""

import logging

import keras
import numpy as np
import pytest

from pipeline.averaging import WeightAveraging
from pipeline.errors import PipelineError
from pipeline.sections import TrainConfig
from pipeline.training import callbacks, make_deterministic


class RecordTrainingWeights(keras.callbacks.Callback):
    """Put before the averaging: the weights each epoch ended with, before the average is swapped in."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[list[np.ndarray]] = []

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.weights.append([np.array(w) for w in self.model.get_weights()])


def small_fit(tmp_path, epochs: int, **train) -> tuple[keras.Model, RecordTrainingWeights, keras.callbacks.History]:
    """A bag-of-embeddings classifier on fixed random data, fitted with the pipeline's callbacks and validation."""
    make_deterministic(0)
    rng = np.random.default_rng(0)
    ids, labels = rng.integers(1, 20, (64, 6)), rng.integers(0, 2, 64)
    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(20, 4),
                              keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    recorder = RecordTrainingWeights()
    recorder.validation = ids[48:], labels[48:]
    settings = TrainConfig(tensorboard=False, epochs=epochs, **train)
    history = model.fit(ids[:48], labels[:48], validation_data=(ids[48:], labels[48:]), epochs=epochs, batch_size=16,
                        verbose=0, callbacks=[recorder, *callbacks(settings, tmp_path, "val_loss")])
    return model, recorder, history


def test_swa_ends_with_the_mean_of_the_epoch_end_weights_and_scores_it(tmp_path):
    model, recorder, history = small_fit(tmp_path, 4, patience=0, average="swa", average_start=2)
    assert len(recorder.weights) == 4
    expected = [np.mean([weights[i] for weights in recorder.weights[1:]], axis=0)
                for i in range(len(recorder.weights[0]))]
    for ours, mean in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(ours, mean, rtol=1e-6, atol=1e-7)
    # the last epoch's validation loss is the average's, and a saved model keeps the average
    ids, labels = recorder.validation
    assert model.evaluate(ids, labels, verbose=0, batch_size=16) == pytest.approx(history.history["val_loss"][-1],
                                                                                  rel=1e-5)
    model.save(tmp_path / "averaged.keras")
    for ours, mean in zip(keras.saving.load_model(tmp_path / "averaged.keras").get_weights(), expected, strict=True):
        np.testing.assert_allclose(ours, mean, rtol=1e-6, atol=1e-7)


def test_swa_off_keeps_the_last_epoch_weights(tmp_path):
    model, recorder, _ = small_fit(tmp_path, 2, patience=0)
    for ours, last in zip(model.get_weights(), recorder.weights[-1], strict=True):
        np.testing.assert_array_equal(ours, last)


def scored_training(scores: list[float], start: int, patience: int = 0) -> tuple[keras.Model, list]:
    """Drive WeightAveraging (and early stopping) through epochs whose weights are the epoch number and whose
    validation loss is ``scores[epoch]`` whatever the weights; the callbacks as a fit calls them."""

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer="sgd", loss="mse")
    averaging = WeightAveraging("val_loss", start)
    listed = [averaging] + ([keras.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=True)]
                            if patience else [])
    callback_list = keras.callbacks.CallbackList(listed, model=model)
    callback_list.on_train_begin()
    seen = []
    for epoch, score in enumerate(scores):
        callback_list.on_epoch_begin(epoch)
        model.set_weights([np.full((1, 1), epoch + 1.0, np.float32)])  # the epoch's training
        callback_list.on_test_begin()
        seen.append(float(model.get_weights()[0][0, 0]))  # what validation scores
        callback_list.on_epoch_end(epoch, {"val_loss": score})
        if model.stop_training:
            break
    callback_list.on_train_end()
    return model, seen


def test_swa_swaps_the_running_mean_in_for_validation_and_back_for_training():
    model, seen = scored_training([5.0, 4.0, 3.0, 2.0], start=2)
    assert seen == [1.0, 2.0, 2.5, 3.0]  # epoch 1 its own, then the mean of epochs 2..n
    assert float(model.get_weights()[0][0, 0]) == 3.0


def test_swa_automatic_start_is_the_epoch_after_the_first_without_a_new_best(caplog):
    with caplog.at_level(logging.INFO, logger="pipeline"):
        _, seen = scored_training([5.0, 4.0, 4.5, 3.0, 2.0], start=0)
    assert seen == [1.0, 2.0, 3.0, 4.0, 4.5]  # epoch 3 was no new best: averaging from epoch 4
    assert "weight averaging starts with epoch 4" in caplog.text
    assert "epoch 5 scored best (val_loss 2) with the average of epochs 4-5" in caplog.text


def test_early_stopping_restores_the_best_scored_epoch_whichever_kind_it_is(caplog):
    with caplog.at_level(logging.INFO, logger="pipeline"):  # the averages of epochs 3.. never beat epoch 2's own
        model, _ = scored_training([5.0, 1.0, 4.0, 4.0, 4.0], start=3, patience=2)
    assert float(model.get_weights()[0][0, 0]) == 2.0
    assert "epoch 2 scored best (val_loss 1) with its own weights (averaging from epoch 3)" in caplog.text
    model, _ = scored_training([5.0, 4.0, 3.0, 3.5, 3.5], start=2, patience=2)  # the average of epochs 2-3 wins
    assert float(model.get_weights()[0][0, 0]) == 2.5


def test_swa_needs_validation_and_a_known_setting(tmp_path):
    with pytest.raises(PipelineError, match=r"'train.average' = \"swa\" needs a validation split"):
        callbacks(TrainConfig(average="swa", tensorboard=False), tmp_path, "loss")
    with pytest.raises(PipelineError, match="train.average"):
        TrainConfig(average="ema").validate()
    with pytest.raises(PipelineError, match="train.average_start"):
        TrainConfig(average="swa", average_start=-1).validate()
