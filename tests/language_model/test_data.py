import math

import keras
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.language_model.data import (
    LanguageModelBatches,
    Perplexity,
    TBPTTDataset,
    num_tbptt_batches,
    perplexity,
    perplexity_from_probabilities,
    tbptt_batches,
    teacher_forcing_pairs,
    token_stream,
)

BOS, EOS = 2, 3


# ------------------------------------------------------------------ teacher forcing
def test_teacher_forcing_pairs_by_hand():
    inputs, targets = teacher_forcing_pairs([[5, 6, 7], [8]], bos_id=BOS, eos_id=EOS)
    # <s> 5 6 7 </s>  and  <s> 8 </s>, right-padded with 0
    np.testing.assert_array_equal(inputs, [[2, 5, 6, 7], [2, 8, 0, 0]])
    np.testing.assert_array_equal(targets, [[5, 6, 7, 3], [8, 3, 0, 0]])
    assert inputs.dtype == np.int32 and targets.dtype == np.int32


def test_teacher_forcing_pairs_max_length_cuts_and_drops_eos_of_cut_sentences():
    inputs, targets = teacher_forcing_pairs([[5, 6, 7], [8], []], bos_id=BOS, eos_id=EOS, max_length=2)
    np.testing.assert_array_equal(inputs, [[2, 5], [2, 8], [2, 0]])
    np.testing.assert_array_equal(targets, [[5, 6], [8, 3], [3, 0]])  # row 0 cut: no </s>


def test_teacher_forcing_pairs_max_length_pads_to_fixed_width():
    inputs, targets = teacher_forcing_pairs([[5]], bos_id=BOS, eos_id=EOS, pad_id=0, max_length=4)
    np.testing.assert_array_equal(inputs, [[2, 5, 0, 0]])
    np.testing.assert_array_equal(targets, [[5, 3, 0, 0]])


def test_teacher_forcing_pairs_rejects_bad_arguments():
    with pytest.raises(PipelineError, match="max_length"):
        teacher_forcing_pairs([[5]], bos_id=BOS, eos_id=EOS, max_length=0)
    with pytest.raises(ValueError, match="pad_id"):
        teacher_forcing_pairs([[5]], bos_id=0, eos_id=EOS)


def test_token_stream_puts_eos_after_every_sentence():
    stream = token_stream([[5, 6], [], [7]], eos_id=EOS)
    np.testing.assert_array_equal(stream, [5, 6, 3, 3, 7, 3])
    assert stream.dtype == np.int32


# ------------------------------------------------------------------ truncated BPTT
def test_tbptt_batches_token_by_token():
    stream = np.arange(23)
    batches = list(tbptt_batches(stream, batch_size=3, bptt_steps=2))
    # L = 23 // 3 = 7: tracks 0..6, 7..13, 14..20 (21, 22 dropped); (7 - 1) // 2 = 3 windows.
    assert len(batches) == 3 == num_tbptt_batches(23, 3, 2)
    expected_inputs = [
        [[0, 1], [7, 8], [14, 15]],
        [[2, 3], [9, 10], [16, 17]],
        [[4, 5], [11, 12], [18, 19]],
    ]
    for (inputs, targets), expected in zip(batches, expected_inputs):
        np.testing.assert_array_equal(inputs, expected)
        np.testing.assert_array_equal(targets, np.asarray(expected) + 1)  # next token in the stream
    for (previous, _), (current, _) in zip(batches, batches[1:]):
        # every track continues exactly where it stopped in the previous batch
        np.testing.assert_array_equal(current[:, 0], previous[:, -1] + 1)


def test_tbptt_batches_drop_the_last_partial_window():
    # L = 25 // 3 = 8 tokens per track, 7 usable as inputs: 3 windows of 2, 1 input token dropped.
    assert num_tbptt_batches(25, 3, 2) == 3
    batches = list(tbptt_batches(np.arange(100, 125), batch_size=3, bptt_steps=2))
    assert len(batches) == 3
    assert all(inputs.shape == targets.shape == (3, 2) for inputs, targets in batches)
    np.testing.assert_array_equal(batches[-1][0][:, -1], [105, 113, 121])


def test_tbptt_batches_checks_arguments_eagerly():
    with pytest.raises(PipelineError, match="too short"):
        tbptt_batches(np.arange(5), batch_size=3, bptt_steps=2)
    with pytest.raises(PipelineError, match="bptt_steps"):
        tbptt_batches(np.arange(50), batch_size=3, bptt_steps=0)
    with pytest.raises(PipelineError, match="batch_size"):
        num_tbptt_batches(50, 0, 2)


def test_tbptt_dataset_same_batches_same_order_every_epoch():
    stream = np.arange(23)
    dataset = TBPTTDataset(stream, batch_size=3, bptt_steps=2)
    assert len(dataset) == 3
    expected = list(tbptt_batches(stream, 3, 2))
    for _epoch in range(2):
        for index in range(len(dataset)):
            inputs, targets = dataset[index]
            np.testing.assert_array_equal(inputs, expected[index][0])
            np.testing.assert_array_equal(targets, expected[index][1])
            assert inputs.dtype == np.int32
    with pytest.raises(IndexError):
        dataset[3]


def test_tbptt_dataset_trains_a_stateful_model_and_perplexity_is_exp_loss():
    keras.utils.set_random_seed(0)
    vocab_size, batch_size, bptt_steps = 7, 3, 4
    stream = np.random.default_rng(0).integers(1, vocab_size, size=200)
    dataset = TBPTTDataset(stream, batch_size=batch_size, bptt_steps=bptt_steps)
    model = keras.Sequential([
        keras.Input(batch_shape=(batch_size, bptt_steps), dtype="int32"),
        keras.layers.Embedding(vocab_size, 4),
        keras.layers.SimpleRNN(5, stateful=True, return_sequences=True),
        keras.layers.Dense(vocab_size, activation="softmax"),
    ])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=[Perplexity(pad_id=0)])
    history = model.fit(dataset, epochs=1, shuffle=False, verbose=0)
    # No padding in the stream and equal batch sizes: perplexity = exp(mean loss).
    assert history.history["perplexity"][0] == pytest.approx(math.exp(history.history["loss"][0]), rel=1e-5)


# ------------------------------------------------------------------ perplexity
def tiny_probabilities():
    # one row, three steps, vocabulary of 3; the last target is padding
    probabilities = np.array([[[0.2, 0.3, 0.5], [0.25, 0.25, 0.5], [0.9, 0.05, 0.05]]], dtype=np.float32)
    targets = np.array([[2, 1, 0]])
    return probabilities, targets


def test_perplexity_by_hand():
    # p(targets) = 0.5, 0.25 -> mean CE = (ln 2 + ln 4) / 2 = 1.5 ln 2 -> perplexity 2 ** 1.5
    probabilities, targets = tiny_probabilities()
    assert perplexity_from_probabilities(probabilities, targets, pad_id=0) == pytest.approx(2**1.5, rel=1e-6)
    assert perplexity(math.log(2) + math.log(4), 2) == pytest.approx(2**1.5, rel=1e-12)
    with pytest.raises(PipelineError, match="token_count"):
        perplexity(1.0, 0)


def uniform_batch(vocab_size=11, seed=0):
    rng = np.random.default_rng(seed)
    targets = rng.integers(1, vocab_size, size=(4, 6))
    targets[0, 3:] = 0  # padding, excluded
    targets[2, 1:] = 0
    probabilities = np.full((4, 6, vocab_size), 1.0 / vocab_size, dtype=np.float32)
    return probabilities, targets


def test_uniform_model_has_perplexity_vocab_size():
    probabilities, targets = uniform_batch()
    assert perplexity_from_probabilities(probabilities, targets) == pytest.approx(11, rel=1e-6)


def test_keras_metric_uniform_with_padding_is_vocab_size():
    probabilities, targets = uniform_batch()
    metric = Perplexity(pad_id=0)
    metric.update_state(targets, probabilities)
    assert float(metric.result()) == pytest.approx(11, rel=1e-5)
    assert float(metric.token_count) == np.count_nonzero(targets)


def test_keras_metric_by_hand_and_accumulates_over_batches():
    probabilities, targets = tiny_probabilities()
    metric = Perplexity(pad_id=0)
    metric.update_state(targets, probabilities)
    assert float(metric.result()) == pytest.approx(2**1.5, rel=1e-5)
    # all-padding batch: changes nothing; then one real target with p = 0.25:
    # exp((ln 2 + ln 4 + ln 4) / 3) = 2 ** (5 / 3), not the mean of the batch perplexities
    metric.update_state(np.array([[0, 0, 0]]), probabilities)
    metric.update_state(np.array([[0, 1, 0]]), probabilities)
    expected = 2 ** (5 / 3)
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    metric.reset_state()
    assert math.isnan(float(metric.result()))


def test_keras_metric_from_logits_and_sample_weight():
    probabilities, targets = tiny_probabilities()
    logits = np.log(probabilities) + 3.0  # a shift leaves the softmax unchanged
    metric = Perplexity(pad_id=0, from_logits=True)
    metric.update_state(targets, logits)
    assert float(metric.result()) == pytest.approx(2**1.5, rel=1e-5)
    weighted = Perplexity(pad_id=0)
    weighted.update_state(targets[..., None], probabilities, sample_weight=np.array([[1.0, 0.0, 1.0]]))
    assert float(weighted.result()) == pytest.approx(2.0, rel=1e-5)  # only p = 0.5 counts


def test_keras_metric_serializes():
    metric = Perplexity(pad_id=4, from_logits=True, name="ppl")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert isinstance(restored, Perplexity)
    assert (restored.pad_id, restored.from_logits, restored.name) == (4, True, "ppl")
    assert keras.saving.get_registered_object("pipeline>Perplexity") is Perplexity


# ------------------------------------------------------------------ LanguageModelBatches
def test_language_model_batches_shift_by_one_and_pad_in_order():
    batches = LanguageModelBatches([[5, 6, 7], [8], [9, 10]], np.array([0, 1, 0]), batch_size=2, max_length=10,
                                   bos_id=BOS, eos_id=EOS)
    assert len(batches) == 2
    inputs, targets = batches[0]
    np.testing.assert_array_equal(inputs, [[2, 5, 6, 7], [2, 8, 0, 0]])
    np.testing.assert_array_equal(targets, [[5, 6, 7, 3], [8, 3, 0, 0]])
    inputs, targets = batches[1]
    np.testing.assert_array_equal(inputs, [[2, 9, 10]])
    np.testing.assert_array_equal(targets, [[9, 10, 3]])


def test_language_model_batches_cut_long_sentences_and_drop_their_end():
    inputs, targets = LanguageModelBatches([[5, 6, 7, 8, 9], [4]], None, batch_size=2, max_length=3,
                                           bos_id=BOS, eos_id=EOS)[0]
    np.testing.assert_array_equal(inputs, [[2, 5, 6], [2, 4, 0]])
    np.testing.assert_array_equal(targets, [[5, 6, 7], [4, 3, 0]])


def test_language_model_batches_round_widths_for_compiling_backends():
    """With a width multiple (JAX's, pipeline.text.batches.backend_width_multiple) the pairs are padded
    further, up to the timesteps at most: the padded targets are PAD, which the loss masks."""
    batches = LanguageModelBatches([[5, 6, 7], [8], [9] * 12], None, batch_size=2, max_length=10,
                                   bos_id=BOS, eos_id=EOS, width_multiple=8)
    inputs, targets = batches[0]
    np.testing.assert_array_equal(inputs, [[2, 5, 6, 7, 0, 0, 0, 0], [2, 8, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(targets, [[5, 6, 7, 3, 0, 0, 0, 0], [8, 3, 0, 0, 0, 0, 0, 0]])
    inputs, targets = batches[1]  # 13 tokens with <s> rounds to 16, cut to the 10 timesteps
    assert inputs.shape == targets.shape == (1, 10)


def test_language_model_batches_with_labels_for_conditioned_models():
    (inputs, labels), targets = LanguageModelBatches([[5, 6], [8]], np.array([1, 0], np.int32), batch_size=2,
                                                     max_length=10, bos_id=BOS, eos_id=EOS, conditioned=True)[0]
    np.testing.assert_array_equal(labels, [1, 0])
    np.testing.assert_array_equal(inputs, [[2, 5, 6], [2, 8, 0]])
    np.testing.assert_array_equal(targets, [[5, 6, 3], [8, 3, 0]])


def test_shuffled_language_model_batches_cover_every_sentence_once():
    rng = np.random.default_rng(0)
    sentences = [list(rng.integers(4, 30, size=rng.integers(1, 9))) for _ in range(23)]
    batches = LanguageModelBatches(sentences, np.arange(23), batch_size=4, max_length=50, bos_id=BOS, eos_id=EOS,
                                   rng=np.random.default_rng(1), conditioned=True)
    seen = []
    for index in range(len(batches)):
        (inputs, labels), targets = batches[index]
        assert inputs.shape == targets.shape
        real = targets != 0
        assert (inputs[:, 0] == BOS).all()
        # the target at t is the input at t + 1 wherever both are real tokens
        both = real[:, :-1] & (inputs[:, 1:] != 0)
        np.testing.assert_array_equal(targets[:, :-1][both], inputs[:, 1:][both])
        for row, label in enumerate(labels):
            sentence = list(targets[row][real[row]])
            assert sentence == [*sentences[label], EOS]
            seen.append(int(label))
    assert sorted(seen) == list(range(23))
