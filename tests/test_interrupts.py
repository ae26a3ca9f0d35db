"""A Ctrl-C that Python drops (it lands in a finalizer) still stops training after the batch it came in."""

import gc
import os
import signal

import keras
import numpy as np
import pytest

from pipeline import interrupts
from pipeline.training import StopOnInterrupt


@pytest.fixture
def installed():
    interrupts.install()
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupts._requested.clear()


class SignalsWhenCollected:
    """An object whose finalizer sends SIGINT to this process: the KeyboardInterrupt raised there is dropped."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)


def test_sigint_raises_keyboard_interrupt_and_is_remembered(installed):
    assert not interrupts.requested()
    interrupts.check()  # nothing came: no exception
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
    assert interrupts.requested()
    with pytest.raises(KeyboardInterrupt):
        interrupts.check()


def test_a_dropped_keyboard_interrupt_stops_the_fit_after_its_batch(installed):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    batches_done = []

    class DropsAnInterrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches_done.append(batch)
            if batch == 2:
                SignalsWhenCollected()  # collected at once: SIGINT inside __del__, its KeyboardInterrupt ignored
                gc.collect()

    x, y = np.zeros((40, 3), dtype=np.float32), np.zeros((40, 2), dtype=np.float32)
    # without the callback Python drops the interrupt and the fit runs to its end (what the module guards against)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[DropsAnInterrupt()])
    assert interrupts.requested() and batches_done == list(range(10))
    interrupts._requested.clear()
    batches_done.clear()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[DropsAnInterrupt(), StopOnInterrupt()])
    assert interrupts.requested()
    assert batches_done == [0, 1, 2]  # no batch after the one the signal came in


def test_without_install_nothing_is_requested():
    assert not interrupts.requested()
    interrupts.check()
