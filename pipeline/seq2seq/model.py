"""The reading network: a character encoder–decoder, with or without attention.

Training (teacher forcing: the decoder reads the true previous character)::

    source ids (batch, S) -> embedding (batch, S, char_dim) -> [[model.layers]] -> h (batch, S, E)
    C = SentenceVector(h)                       (batch, E)   the encoder's final state
    s_0 = tanh(W_init C)                        (batch, U)   (h and c for an LSTM)
    target ids <s> y1 .. yn (batch, T) -> embedding -> decoder LSTM/GRU from s_0 -> s (batch, T, U)
    c_t = C for every t                         reading.attention = "none": the one fixed vector
        = sum_j alpha_tj h_j                    "additive" / "multiplicative" (DecoderAttention)
    p(y_t | y_<t, x) = softmax(W_out tanh(W_c [s_t; c_t]))     (batch, T, alphabet)

The attention follows the decoder step (Luong et al. 2015): the decoder itself is a plain
Keras LSTM/GRU, so training runs over the whole target at once. Only ``model.keras`` (this
training model) is saved; :func:`inference_models` rebuilds the encoder and the one-step decoder
from its layers, so decoding needs nothing else.
"""

from __future__ import annotations

import keras
from keras import ops

from pipeline.config import Config
from pipeline.layers.seq2seq_attention import DecoderAttention, RepeatOverTime, SentenceVector
from pipeline.models import embedding, kernel_initializer, recurrent_initializer, recurrent_stack

DECODERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def state_count(config: Config) -> int:
    """States of the decoder cell: 2 for an LSTM (h, c), 1 for a GRU."""
    return 2 if config.reading.decoder == "lstm" else 1


def encoder_directions(config: Config) -> int:
    return 2 if str(config.model.layers[-1].get("type", "")).startswith("bi") else 1


def build_reader(config: Config, source_size: int, target_size: int, seed: int) -> keras.Model:
    """The teacher-forced model ``[source (batch, S), decoder_input (batch, T)] -> (batch, T, target_size)``."""
    model, reading = config.model, config.reading
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    decoder_input = keras.Input(shape=(None,), dtype="int32", name="decoder_input")
    encoded = recurrent_stack(embedding(source_size, model.char_dim, True, name="source_embedding")(source),
                              model, seed, last_returns_sequences=True)
    sentence = SentenceVector(encoder_directions(config), name="sentence_vector")(encoded)
    initial = [keras.layers.Dense(reading.decoder_units, activation="tanh", name=f"bridge_{i}",
                                  kernel_initializer=kernel_initializer(model, seed + 300 + i))(sentence)
               for i in range(state_count(config))]
    decoder = DECODERS[reading.decoder](
        reading.decoder_units, return_sequences=True, return_state=True, name="decoder",
        kernel_initializer=kernel_initializer(model, seed + 310),
        recurrent_initializer=recurrent_initializer(model, seed + 311))
    target_embedding = embedding(target_size, model.char_dim, True, name="target_embedding")
    decoded = decoder(target_embedding(decoder_input), initial_state=initial)[0]
    context, _ = _context(config, seed, decoded, encoded, sentence, None)
    return keras.Model([source, decoder_input], _output(config, seed, target_size, decoded, context), name="reader")


def _context(config: Config, seed: int, decoded, encoded, sentence, source_mask, layers=None):
    """``(c_t (batch, T, E), alpha (batch, T, S) or None)``; ``layers``: the trained model's, to reuse them."""
    if config.reading.attention == "none":
        layer = layers.get_layer("repeat_sentence") if layers else RepeatOverTime(name="repeat_sentence")
        return layer([sentence, decoded]), None
    layer = layers.get_layer("attention") if layers else DecoderAttention(
        config.reading.attention, config.model.attention_units, name="attention",
        kernel_initializer=kernel_initializer(config.model, seed + 320),
        score_initializer=kernel_initializer(config.model, seed + 321))
    if source_mask is None:
        return layer([decoded, encoded])
    return layer([decoded, encoded], mask=[None, source_mask])


def _output(config: Config, seed: int, target_size: int, decoded, context, layers=None):
    combine = layers.get_layer("combine") if layers else keras.layers.Dense(
        config.reading.decoder_units, activation="tanh", name="combine",
        kernel_initializer=kernel_initializer(config.model, seed + 330))
    output = layers.get_layer("probabilities") if layers else keras.layers.Dense(
        target_size, activation="softmax", name="probabilities",
        kernel_initializer=kernel_initializer(config.model, seed + 331))
    joined = keras.layers.Concatenate(name="decoder_and_context")([decoded, context])
    return output(combine(joined))


def inference_models(model: keras.Model, config: Config) -> tuple[keras.Model, keras.Model]:
    """``(encoder, step)`` built from the trained model's layers (shared weights).

    encoder: ``source (batch, S) -> [h (batch, S, E), C (batch, E), s_0 ...]``.
    step: ``[previous (batch, 1), h, source_mask (batch, S), C, *states] ->
    [probabilities (batch, 1, alphabet), alpha (batch, 1, S) (zeros without attention), *new states]``.
    """
    source = model.get_layer("source_embedding").input
    encoded = model.get_layer(f"recurrent_{len(config.model.layers) - 1}").output  # h (batch, S, E)
    sentence = model.get_layer("sentence_vector").output
    initial = [model.get_layer(f"bridge_{i}").output for i in range(state_count(config))]
    encoder = keras.Model(source, [encoded, sentence, *initial], name="reader_encoder")

    decoder = model.get_layer("decoder")
    units, features = config.reading.decoder_units, encoded.shape[-1]
    previous = keras.Input(shape=(1,), dtype="int32", name="previous")
    encoded_input = keras.Input(shape=(None, features), name="encoded")
    source_mask = keras.Input(shape=(None,), dtype="bool", name="source_mask")
    sentence_input = keras.Input(shape=(features,), name="sentence")
    states = [keras.Input(shape=(units,), name=f"state_{i}") for i in range(state_count(config))]
    step_outputs = decoder(model.get_layer("target_embedding")(previous), initial_state=states)
    decoded, new_states = step_outputs[0], list(step_outputs[1:])
    context, alpha = _context(config, 0, decoded, encoded_input, sentence_input, source_mask, layers=model)
    if alpha is None:  # no attention: report zero weights so every model has the same outputs
        alpha = ops.zeros_like(ops.cast(ops.expand_dims(source_mask, 1), "float32"))
    probabilities = _output(config, 0, 0, decoded, context, layers=model)
    step = keras.Model([previous, encoded_input, source_mask, sentence_input, *states],
                       [probabilities, alpha, *new_states], name="reader_step")
    return encoder, step
