"""Tests of the deep-transition cell and layer: numbers against NumPy, depth 1 against keras.layers.SimpleRNN."""

import keras
import numpy as np
import pytest

from pipeline.layers.deep_transition import DeepTransition, DeepTransitionCell

TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def numpy_deep_transition(inputs, layer, input_depth, transition_depth, output_depth):
    """The loop of the module docstring, reading the weights by name (every layer tanh)."""
    weights = {w.path.split("/")[-1]: np.asarray(w, np.float64) for w in layer.weights}

    def mlp(values, prefix, depth, first=1):
        for i in range(first, first + depth):
            values = np.tanh(values @ weights[f"{prefix}_{i}_kernel"] + weights[f"{prefix}_{i}_bias"])
        return values

    state = np.zeros((inputs.shape[0], layer.units))
    outputs = []
    for t in range(inputs.shape[1]):
        projected = mlp(inputs[:, t], "input", input_depth)
        state = np.tanh(projected @ weights["kernel"] + state @ weights["recurrent_kernel"] + weights["bias"])
        state = mlp(state, "transition", transition_depth - 1, first=2)
        outputs.append(mlp(state, "output", output_depth))
    return np.stack(outputs, axis=1)


def random_array(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def randomized(layer, inputs):
    layer(inputs)
    rng = np.random.default_rng(3)
    layer.set_weights([rng.uniform(-0.5, 0.5, size=w.shape).astype("float32") for w in layer.get_weights()])
    return layer


def test_shapes_and_weight_names():
    inputs = random_array((2, 5, 3))
    layer = DeepTransition(4, transition_depth=3, input_depth=1, output_depth=2)
    assert layer(inputs).shape == (2, 4)
    names = [w.path.split("/")[-1] for w in layer.weights]
    assert names == ["input_1_kernel", "input_1_bias", "kernel", "recurrent_kernel", "bias",
                     "transition_2_kernel", "transition_2_bias", "transition_3_kernel", "transition_3_bias",
                     "output_1_kernel", "output_1_bias", "output_2_kernel", "output_2_bias"]
    assert layer.count_params() == (3 * 4 + 4) + (4 * 4 + 4 * 4 + 4) + 2 * (4 * 4 + 4) + 2 * (4 * 4 + 4)
    assert DeepTransition(4, return_sequences=True)(inputs).shape == (2, 5, 4)
    assert len(DeepTransition(4, use_bias=False)(inputs).shape) == 2


@pytest.mark.parametrize("input_depth, transition_depth, output_depth", [(0, 2, 0), (1, 3, 0), (2, 2, 1), (0, 1, 2)])
def test_against_numpy(input_depth, transition_depth, output_depth):
    inputs = random_array((3, 6, 5), 1)
    layer = randomized(DeepTransition(4, transition_depth=transition_depth, input_depth=input_depth,
                                      output_depth=output_depth, return_sequences=True), inputs)
    expected = numpy_deep_transition(inputs, layer, input_depth, transition_depth, output_depth)
    np.testing.assert_allclose(layer(inputs), expected, **TOLERANCE)


def test_depth_one_is_simple_rnn():
    inputs = random_array((2, 7, 3), 2)
    ours = randomized(DeepTransition(5, transition_depth=1, return_sequences=True), inputs)
    simple = keras.layers.SimpleRNN(5, return_sequences=True)
    simple(inputs)
    simple.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(inputs), simple(inputs), **TOLERANCE)


def test_the_state_is_the_transition_output_not_the_output_mlp():
    inputs = random_array((2, 4, 3), 4)
    layer = randomized(DeepTransition(3, transition_depth=2, output_depth=1, return_state=True), inputs)
    output, state = layer(inputs)
    expected_state = numpy_deep_transition(inputs, layer, 0, 2, 0)[:, -1]
    np.testing.assert_allclose(state, expected_state, **TOLERANCE)
    assert not np.allclose(output, state)


def test_mask_keeps_the_state_and_model_reloads(tmp_path):
    keras.utils.set_random_seed(1)
    ids = np.array([[3, 4, 5, 0], [6, 7, 0, 0]])
    token_ids = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(8, 3, mask_zero=True)(token_ids)
    model = keras.Model(token_ids, DeepTransition(4, transition_depth=2, output_depth=1, name="deep")(embedded))
    np.testing.assert_allclose(model(ids)[1], model(ids[:, :2])[1], **TOLERANCE)
    path = tmp_path / "deep.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded(ids), model(ids), **TOLERANCE)
    assert reloaded.get_layer("deep").cell.transition_depth == 2


@pytest.mark.parametrize("arguments, fragment", [
    (dict(units=4, transition_depth=0), "transition_depth=0"),
    (dict(units=4, input_depth=-1), "input_depth=-1"),
    (dict(units=4, output_depth=1.5), "output_depth=1.5"),
    (dict(units=4, activation="elu"), "activation='elu'"),
])
def test_invalid_arguments_name_the_argument(arguments, fragment):
    with pytest.raises(ValueError, match=fragment):
        DeepTransitionCell(**arguments)
