"""Tests of pipeline.seq2seq.model: the one-step decoder rebuilt from the trained model computes what the
teacher-forced model does, for every attention and decoder kind, also after saving and reloading."""

import keras
import numpy as np
import pytest

from pipeline import config as config_module
from pipeline.runs import register_custom_objects
from pipeline.seq2seq.model import build_reader, inference_models

SOURCE = np.array([[3, 4, 5, 6, 0, 0], [7, 3, 8, 4, 5, 9]], dtype=np.int32)  # (batch, S), padded
DECODER_INPUT = np.array([[2, 5, 6, 7, 8], [2, 9, 4, 0, 0]], dtype=np.int32)  # <s> y1 .. (batch, T)


def tiny_config(attention: str, decoder: str, layer: str):
    return config_module.from_dict({
        "model": {"task": "reading", "char_dim": 6, "attention_units": 5, "layers": [{"type": layer, "units": 4}]},
        "reading": {"attention": attention, "decoder": decoder, "decoder_units": 7}})


@pytest.mark.parametrize("attention, decoder, layer", [
    ("additive", "lstm", "bilstm"), ("multiplicative", "gru", "gru"), ("none", "lstm", "bigru")])
def test_step_by_step_decoding_equals_the_teacher_forced_model(attention, decoder, layer, tmp_path):
    config = tiny_config(attention, decoder, layer)
    model = build_reader(config, source_size=10, target_size=12, seed=3)
    assert model.output.shape[-1] == 12
    model.save(tmp_path / "model.keras")
    register_custom_objects()
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    expected = np.asarray(model.predict_on_batch([SOURCE, DECODER_INPUT]))  # (batch, T, alphabet)
    encoder, step = inference_models(reloaded, config)
    encoded, sentence, *states = encoder.predict_on_batch(SOURCE)
    for t in range(DECODER_INPUT.shape[1]):
        probabilities, alpha, *states = step.predict_on_batch(
            [DECODER_INPUT[:, t:t + 1], encoded, SOURCE != 0, sentence, *states])
        real = DECODER_INPUT[:, t] != 0  # after padding the teacher-forced decoder keeps its state; ignore those
        np.testing.assert_allclose(np.asarray(probabilities)[real, 0], expected[real, t], atol=1e-5)
        alpha = np.asarray(alpha)[:, 0]
        if attention == "none":
            assert not alpha.any()
        else:
            np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-5)
            assert not alpha[0, 4:].any()  # padding gets no weight
