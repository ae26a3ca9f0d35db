"""Our layers saved in a ``.keras`` file reload in a fresh interpreter (nothing registered or cached from this
process: importing the layer's module must be enough) with the same weights and the same outputs.

One fresh process reloads every model of :data:`MODELS` (a process start costs seconds): the Elman layer (also
inside Keras' Bidirectional wrapper), the ESN reservoir and the spiking (LIF) reservoir.
"""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import REPOSITORY, SMALL_LIQUID, input_spikes

from pipeline.layers.elman import Elman
from pipeline.layers.esn import Reservoir
from pipeline.layers.lsm import SpikingReservoir

TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def elman():
    model = keras.Sequential([keras.Input((5, 3)), Elman(4, activation="softsign", return_sequences=True),
                              keras.layers.Bidirectional(Elman(3)), keras.layers.Dense(2)])
    return model, np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")


def reservoir():
    inputs = keras.Input((None, 2))
    model = keras.Model(inputs, keras.layers.Dense(3)(Reservoir(20, leak_rate=0.3, seed=7)(inputs)))
    return model, np.random.default_rng(0).normal(size=(2, 9, 2)).astype("float32")


def spiking_reservoir():
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(SpikingReservoir(**SMALL_LIQUID, return_sequences=True)(inputs)))
    return model, input_spikes((2, 50, 3)).astype("float32")


# name: (a saved model's builder -> (model, inputs), the module the fresh process imports, the layer's class)
MODELS = {"elman": (elman, "pipeline.layers.elman", "Elman"),
          "reservoir": (reservoir, "pipeline.layers.esn", "Reservoir"),
          "spiking_reservoir": (spiking_reservoir, "pipeline.layers.lsm", "SpikingReservoir")}

# argv[1]: {name: [module, model file, npz of inputs]}; prints {name: {"layers": [...], "weights": [...],
# "outputs": [...]}} as one JSON line
RELOAD = """
import importlib, json, sys
import keras, numpy as np
answer = {}
for name, (module, model_file, arrays) in json.loads(sys.argv[1]).items():
    importlib.import_module(module)
    model = keras.saving.load_model(model_file)
    answer[name] = {"layers": [type(layer).__name__ for layer in model.layers],
                    "weights": [weight.tolist() for weight in model.get_weights()],
                    "outputs": model.predict_on_batch(np.load(arrays)["inputs"]).tolist()}
print(json.dumps(answer))
"""


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory) -> dict:
    """``{name: (model here, its inputs, what the fresh process reloaded)}`` for every model of MODELS."""
    folder = tmp_path_factory.mktemp("reload")
    here, request = {}, {}
    for name, (build, module, _) in MODELS.items():
        model, inputs = build()
        model.save(folder / f"{name}.keras")
        np.savez(folder / f"{name}.npz", inputs=inputs)
        here[name] = (model, inputs)
        request[name] = [module, str(folder / f"{name}.keras"), str(folder / f"{name}.npz")]
    completed = subprocess.run([sys.executable, "-c", RELOAD, json.dumps(request)], cwd=REPOSITORY,
                               capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    return {name: (*here[name], answer[name]) for name in MODELS}


@pytest.mark.parametrize("name", MODELS)
def test_a_saved_layer_reloads_in_a_new_process_with_its_weights_and_outputs(reloaded, name):
    model, inputs, answer = reloaded[name]
    assert MODELS[name][2] in answer["layers"]
    weights = model.get_weights()
    assert len(answer["weights"]) == len(weights) >= 2
    for ours, theirs in zip(weights, answer["weights"]):
        np.testing.assert_array_equal(np.asarray(theirs, ours.dtype), ours)  # the file holds them exactly
    np.testing.assert_allclose(np.asarray(answer["outputs"]), model.predict_on_batch(inputs), **TOLERANCE)
