"""Tests of pipeline.layers.pooling: masked mean and max over time, alone and in a model."""

import keras
import numpy as np
import pytest

from pipeline.layers.pooling import MaskedGlobalPooling

# --- masked pooling ---------------------------------------------------------------------------------


POOLING_INPUTS = np.array([
    [[1.0, -2.0], [3.0, -4.0], [100.0, 100.0], [100.0, 100.0]],
    [[-5.0, -1.0], [-7.0, -3.0], [-6.0, -2.0], [100.0, 100.0]],
    [[-1.0, -2.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
], dtype=np.float32)
POOLING_MASK = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], dtype=bool)


def test_masked_mean_pooling_ignores_padding():
    pooled = np.asarray(MaskedGlobalPooling("mean")(POOLING_INPUTS, mask=POOLING_MASK))
    expected = np.array([[2.0, -3.0], [-6.0, -2.0], [-1.0, -2.0]], dtype=np.float32)
    np.testing.assert_allclose(pooled, expected, atol=1e-6)
    reference = (POOLING_INPUTS * POOLING_MASK[..., None]).sum(1) / POOLING_MASK.sum(1, keepdims=True)
    np.testing.assert_allclose(pooled, reference, atol=1e-6)


def test_masked_max_pooling_ignores_padding_even_when_it_would_dominate():
    pooled = np.asarray(MaskedGlobalPooling("max")(POOLING_INPUTS, mask=POOLING_MASK))
    # Row 3: all real values negative, zero padding must not win.
    expected = np.array([[3.0, -2.0], [-5.0, -1.0], [-1.0, -2.0]], dtype=np.float32)
    np.testing.assert_allclose(pooled, expected, atol=1e-6)
    reference = np.where(POOLING_MASK[..., None], POOLING_INPUTS, -np.inf).max(axis=1)
    np.testing.assert_allclose(pooled, reference, atol=1e-6)


def test_pooling_without_a_mask_uses_every_step():
    np.testing.assert_allclose(MaskedGlobalPooling("mean")(POOLING_INPUTS), POOLING_INPUTS.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(MaskedGlobalPooling("max")(POOLING_INPUTS), POOLING_INPUTS.max(axis=1), atol=1e-6)


def test_pooling_config_and_bad_mode():
    layer = MaskedGlobalPooling("max", name="pool")
    restored = MaskedGlobalPooling.from_config(layer.get_config())
    assert restored.mode == "max" and restored.name == "pool"
    assert layer.compute_output_shape((None, 7, 5)) == (None, 5)
    with pytest.raises(ValueError, match="mode"):
        MaskedGlobalPooling("sum")


def test_pooling_receives_the_embedding_mask_in_a_model():
    # Embedding(mask_zero) -> pooling: ids 0 are padding; an identity embedding shows the pooled values.
    ids = keras.Input(shape=(None,), dtype="int32")
    embed = keras.layers.Embedding(4, 1, mask_zero=True)
    outputs = MaskedGlobalPooling("max")(embed(ids))
    model = keras.Model(ids, outputs)
    embed.set_weights([np.array([[50.0], [-1.0], [-2.0], [-3.0]], dtype=np.float32)])
    pooled = np.asarray(model(np.array([[2, 3, 0, 0], [3, 1, 2, 0]], dtype=np.int32)))
    np.testing.assert_allclose(pooled, [[-2.0], [-1.0]], atol=1e-6)
