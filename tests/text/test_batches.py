"""Tests of pipeline.text.batches: padding, class weights, bucketing and epoch shuffling."""

import numpy as np
import pytest

from pipeline.text.batches import (
    COMPILED_BAG_MULTIPLE,
    Chained,
    Rows,
    SequenceBatches,
    backend_width_multiple,
    balanced_class_weights,
    chain_rows,
    inputs_at,
    pad,
    round_up,
    rows_up_to,
    sampled_rows,
    take_rows,
)
from pipeline.text.encoded import RaggedIds


def as_arrays(lists):
    return [np.array(values, dtype=np.int32) for values in lists]


def test_pad_right_pads_to_the_longest():
    batch = pad(as_arrays([[5, 6, 7], [8], [9, 10]]), max_length=10)
    assert batch.dtype == np.int32
    np.testing.assert_array_equal(batch, [[5, 6, 7], [8, 0, 0], [9, 10, 0]])


def test_pad_truncates_to_max_length():
    batch = pad(as_arrays([[5, 6, 7, 8], [9]]), max_length=2)
    np.testing.assert_array_equal(batch, [[5, 6], [9, 0]])


def test_pad_with_another_pad_id_and_plain_lists():
    np.testing.assert_array_equal(pad([[1], [2, 3]], max_length=5, pad_id=-1), [[1, -1], [2, 3]])


def test_pad_empty_sequences_keep_one_column():
    np.testing.assert_array_equal(pad(as_arrays([[], []]), max_length=4), [[0], [0]])
    assert pad([], max_length=4).shape == (0, 1)


def test_balanced_class_weights_by_hand():
    # n = 6, 3 classes, counts [3, 2, 1] -> 6/9, 6/6, 6/3; an absent fourth class weighs 0.
    weights = balanced_class_weights(np.array([0, 0, 0, 1, 1, 2]), 4)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, [6 / 12, 6 / 8, 6 / 4, 0.0], rtol=1e-6)
    np.testing.assert_allclose(balanced_class_weights(np.array([0, 0, 0, 1, 1, 2]), 3), [2 / 3, 1.0, 2.0], rtol=1e-6)
    # Each present class weighs n / classes in total.
    targets = np.array([0, 0, 0, 1, 1, 2])
    totals = np.bincount(targets) * balanced_class_weights(targets, 3)
    np.testing.assert_allclose(totals, [2.0, 2.0, 2.0], rtol=1e-6)


def test_no_rng_keeps_contiguous_chunks_of_the_input():
    sequences = as_arrays([[i + 1] * (1 + i % 3) for i in range(7)])
    targets = np.arange(7) * 10
    batches = SequenceBatches(sequences, targets, batch_size=3, max_length=5)
    assert len(batches) == 3
    assert sorted(rows.tolist() for rows in batches.batches) == [[0, 1, 2], [3, 4, 5], [6]]
    position = [rows.tolist() for rows in batches.batches].index([0, 1, 2])
    ids, batch_targets = batches[position]
    np.testing.assert_array_equal(ids, [[1, 0, 0], [2, 2, 0], [3, 3, 3]])
    np.testing.assert_array_equal(batch_targets, [0, 10, 20])


def test_first_two_batches_differ_in_width_so_keras_does_not_fix_the_shape():
    # Keras infers the input signature from batches 0 and 1; equal widths would fix it.
    sequences = as_arrays([[1], [2], [3], [4], [5, 5, 5, 5, 5]])
    batches = SequenceBatches(sequences, np.zeros(5, dtype=np.int32), batch_size=2, max_length=9)
    widths = [batches[i][0].shape[1] for i in range(len(batches))]
    assert widths[0] != widths[1], widths
    shuffled = SequenceBatches(sequences, np.zeros(5, dtype=np.int32), batch_size=2, max_length=9,
                               rng=np.random.default_rng(0))
    widths = [shuffled[i][0].shape[1] for i in range(len(shuffled))]
    assert widths[0] != widths[1], widths


def test_predict_returns_outputs_in_input_order_and_handles_growing_widths():
    import keras

    from pipeline.layers.pooling import MaskedGlobalPooling

    # Row i holds the id i + 1 repeated; the model returns the largest id of each row.
    lengths = [1, 1, 1, 1, 2, 2, 6, 3, 9]
    sequences = as_arrays([[i + 1] * n for i, n in enumerate(lengths)])
    ids = keras.Input(shape=(None,), dtype="int32")
    embedded = keras.layers.Embedding(12, 1, mask_zero=True,
                                      embeddings_initializer=keras.initializers.Constant(np.arange(12.0)[:, None]))(ids)
    model = keras.Model(ids, MaskedGlobalPooling("max")(embedded))
    batches = SequenceBatches(sequences, None, batch_size=2, max_length=20)
    np.testing.assert_allclose(batches.predict(model)[:, 0], np.arange(1, 10))


def test_prediction_batches_without_targets():
    batches = SequenceBatches(as_arrays([[1, 2], [3]]), None, batch_size=4, max_length=5)
    (ids,) = batches[0]
    np.testing.assert_array_equal(ids, [[1, 2], [3, 0]])


def test_sample_weights_follow_their_rows():
    sequences = as_arrays([[i + 1] * (1 + i) for i in range(6)])
    targets = np.arange(6)
    weights = np.arange(6, dtype=np.float32) / 10
    batches = SequenceBatches(sequences, targets, 2, 10, rng=np.random.default_rng(0), sample_weights=weights)
    seen = []
    for index in range(len(batches)):
        ids, batch_targets, batch_weights = batches[index]
        np.testing.assert_allclose(batch_weights, batch_targets / 10)
        np.testing.assert_array_equal(ids[:, 0], batch_targets + 1)
        seen.extend(batch_targets.tolist())
    assert sorted(seen) == list(range(6))


def mixed_lengths(seed: int = 0):
    # Lengths 1..50, four sentences each (200), in a shuffled order; sentence i holds the value i.
    lengths = np.repeat(np.arange(1, 51), 4)
    np.random.default_rng(seed).shuffle(lengths)
    return [np.full(length, index + 1, dtype=np.int32) for index, length in enumerate(lengths)], lengths


def test_bucketing_batches_sentences_of_similar_length():
    sequences, lengths = mixed_lengths()
    batches = SequenceBatches(sequences, np.zeros(200, dtype=np.int32), batch_size=8, max_length=100,
                              rng=np.random.default_rng(1))
    assert len(batches) == 25
    assert sorted(np.concatenate(batches.batches).tolist()) == list(range(200))
    # Sorted by length, every batch of 8 holds exactly two consecutive lengths (4 sentences each).
    spans = [int(lengths[rows].max() - lengths[rows].min()) for rows in batches.batches]
    assert spans == [1] * 25
    # Padded positions: 4 per batch of width L+1 (L = 1, 3, ..., 49): 1 - 5100 / 5200.
    assert batches.padding_share() == pytest.approx(1 / 52)
    ids, _ = batches[0]
    assert ids.shape[1] == lengths[batches.batches[0]].max()


def test_bucketing_pads_less_than_random_batching():
    sequences, _ = mixed_lengths()
    targets = np.zeros(200, dtype=np.int32)
    bucketed = SequenceBatches(sequences, targets, 8, 100, rng=np.random.default_rng(1), bucketing=True)
    shuffled = SequenceBatches(sequences, targets, 8, 100, rng=np.random.default_rng(1), bucketing=False)
    assert bucketed.padding_share() < 0.02
    assert shuffled.padding_share() > 0.3
    random_spans = [np.ptp(shuffled.lengths[rows]) for rows in shuffled.batches]
    assert np.mean(random_spans) > 20


def test_bucketing_orders_batches_at_random():
    sequences, lengths = mixed_lengths()
    batches = SequenceBatches(sequences, np.zeros(200, dtype=np.int32), 8, 100, rng=np.random.default_rng(1))
    first_lengths = [int(lengths[rows].min()) for rows in batches.batches]
    assert first_lengths != sorted(first_lengths)


def test_lengths_are_counted_after_truncation():
    sequences, _ = mixed_lengths()
    batches = SequenceBatches(sequences, np.zeros(200, dtype=np.int32), 8, max_length=10,
                              rng=np.random.default_rng(1))
    assert batches.lengths.max() == 10
    assert all(batches[index][0].shape[1] <= 10 for index in range(len(batches)))


def test_on_epoch_end_reshuffles_reproducibly():
    sequences, _ = mixed_lengths()
    targets = np.zeros(200, dtype=np.int32)

    def plans(bucketing: bool):
        batches = SequenceBatches(sequences, targets, 8, 100, rng=np.random.default_rng(7), bucketing=bucketing)
        epochs = []
        for _ in range(3):
            epochs.append([rows.tolist() for rows in batches.batches])
            batches.on_epoch_end()
        return epochs

    for bucketing in (True, False):
        first, again = plans(bucketing), plans(bucketing)
        assert first == again
        assert first[0] != first[1] != first[2]
        assert sorted(sum(first[1], [])) == list(range(200))


def test_epochs_of_a_set_number_of_batches_walk_through_the_same_shuffled_plans():
    """steps_per_epoch cuts the sequence of whole plans (the same rng draws) into epochs of that many batches:
    every example once per pass, the pass's order unchanged, the next pass's first batches after its end."""
    sequences, _ = mixed_lengths()  # 200 sentences, batches of 8: 25 a plan
    targets = np.zeros(200, dtype=np.int32)

    def batches(steps):
        return SequenceBatches(sequences, targets, 8, 100, rng=np.random.default_rng(7), steps_per_epoch=steps)

    whole = batches(0)
    plans = []
    for _ in range(3):
        plans += [rows.tolist() for rows in whole.batches]
        whole.on_epoch_end()
    windowed = batches(10)
    epochs = []
    for _ in range(7):
        assert len(windowed) == 10
        epochs.append([rows.tolist() for rows in windowed.batches])
        windowed.on_epoch_end()
    read = sum(epochs, [])
    # the same batches as the whole plans, in the same order except where a window moves a batch of another
    # width second (Keras infers the input shape from the first two batches)
    for start in range(0, 70, 10):
        assert sorted(map(tuple, read[start:start + 10])) == sorted(map(tuple, plans[start:start + 10]))
    assert sorted(sum(read[:25], [])) == list(range(200))  # the first pass: every sentence once
    # what a resumed training replays (pipeline.resume: one on_epoch_end per finished epoch) gives the next window
    resumed = batches(10)
    for _ in range(3):
        resumed.on_epoch_end()
    assert [rows.tolist() for rows in resumed.batches] == epochs[3]
    # at least one whole plan per epoch (or 0): whole epochs, exactly as without the option
    for steps in (0, 25, 40):
        again = batches(steps)
        assert [rows.tolist() for rows in again.batches] == plans[:25] and again.steps_per_epoch == 0
    with pytest.raises(ValueError, match="steps_per_epoch"):
        windowed.predict(None)


def test_sampled_rows_are_a_seeded_sorted_sample_or_every_row():
    rows = sampled_rows(1000, 50, np.random.default_rng(3))
    assert len(rows) == 50 == len(set(rows.tolist())) and rows.tolist() == sorted(rows.tolist())
    assert 0 <= rows.min() and rows.max() < 1000
    np.testing.assert_array_equal(rows, sampled_rows(1000, 50, np.random.default_rng(3)))
    assert not np.array_equal(rows, sampled_rows(1000, 50, np.random.default_rng(4)))
    for limit in (0, 1000, 5000):  # 0 or at least every row: no sample
        assert sampled_rows(1000, limit, np.random.default_rng(3)) is None


def test_rows_up_to_are_the_sample_or_every_rows_index():
    np.testing.assert_array_equal(rows_up_to(1000, 50, np.random.default_rng(3)),
                                  sampled_rows(1000, 50, np.random.default_rng(3)))
    for limit in (0, 1000, 5000):
        np.testing.assert_array_equal(rows_up_to(1000, limit, np.random.default_rng(3)), np.arange(1000))


def test_rows_view_items_and_lengths_of_a_ragged_or_listed_sequence():
    sentences = [np.arange(length, dtype=np.int32) + 10 * length for length in (3, 1, 4, 1, 5, 9, 2)]
    flat = np.concatenate(sentences)
    ragged = RaggedIds(flat, np.concatenate([[0], np.cumsum([len(s) for s in sentences])]))
    rows = np.array([1, 4, 5])
    for values in (ragged, sentences):
        view = take_rows(values, rows)
        assert isinstance(view, Rows) and len(view) == 3
        assert [item.tolist() for item in view] == [sentences[i].tolist() for i in rows]
        assert view.lengths().tolist() == [1, 5, 9] and view.lengths(np.array([2, 0])).tolist() == [9, 1]
    np.testing.assert_array_equal(take_rows(np.arange(7) * 2, rows), [2, 8, 10])  # arrays are indexed
    assert take_rows(sentences, None) is sentences and take_rows(None, rows) is None
    extra = {"token_inputs": {"char_ids": sentences}, "bag_inputs": {}}
    assert [item.tolist() for item in inputs_at(extra, rows)["token_inputs"]["char_ids"]] == \
        [sentences[i].tolist() for i in rows]


def test_batches_of_a_row_view_equal_those_of_the_rows_copied():
    sequences, targets = mixed_lengths()  # the lengths serve as targets
    rows = sampled_rows(len(sequences), 37, np.random.default_rng(5))
    viewed = SequenceBatches(take_rows(sequences, rows), take_rows(targets, rows), 8, 100)
    copied = SequenceBatches([sequences[i] for i in rows], targets[rows], 8, 100)
    assert len(viewed) == len(copied) == 5
    for index in range(len(copied)):
        for got, want in zip(viewed[index], copied[index]):
            np.testing.assert_array_equal(got, want)


def test_chained_rows_are_the_parts_one_after_the_other():
    """The training sentences then the unlabeled ones (train.distill_unlabeled): items, negative indices, lengths
    and batches as if the parts were concatenated; arrays are concatenated."""
    sentences = [np.arange(length, dtype=np.int32) + 10 * length for length in (3, 1, 4, 1, 5, 9, 2)]
    ragged = RaggedIds(np.concatenate(sentences[:4]), np.concatenate([[0], np.cumsum([3, 1, 4, 1])]))
    chained = chain_rows([ragged, take_rows(sentences, np.array([4, 5])), [], sentences[6:]])
    assert isinstance(chained, Chained) and len(chained) == 7
    assert [item.tolist() for item in chained] == [sentence.tolist() for sentence in sentences]
    assert chained[-1].tolist() == sentences[6].tolist() and chained[-7].tolist() == sentences[0].tolist()
    with pytest.raises(IndexError):
        chained[7]
    assert chained.lengths().tolist() == [3, 1, 4, 1, 5, 9, 2] and chained.lengths(np.array([5, 0])).tolist() == [9, 3]
    np.testing.assert_array_equal(chain_rows([np.arange(3), np.arange(2)]), [0, 1, 2, 0, 1])
    targets = np.arange(7)
    rng = np.random.default_rng
    for viewed, copied in zip(SequenceBatches(chained, targets, 3, 100, rng(1)), SequenceBatches(sentences, targets,
                                                                                                     3, 100, rng(1))):
        for got, want in zip(viewed, copied):
            np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ extra inputs (subword features)
def test_pad_keeps_the_item_shape_and_a_fixed_width():
    rows = [np.arange(1, 7, dtype=np.int32).reshape(3, 2), np.full((1, 2), 9, dtype=np.int32)]
    batch = pad(rows, max_length=10, width=2)
    assert batch.shape == (2, 2, 2)
    np.testing.assert_array_equal(batch, [[[1, 2], [3, 4]], [[9, 9], [0, 0]]])
    assert pad([np.zeros((0, 3), np.int32)], max_length=5).shape == (1, 1, 3)


def subword_batches(rng=None, max_length=3):
    lengths = [1, 2, 5, 2, 4, 1]
    sequences = [np.full(n, i + 2, dtype=np.int32) for i, n in enumerate(lengths)]
    chars = [np.full((n, 2), i + 2, dtype=np.int32) for i, n in enumerate(lengths)]
    bags = [np.full(3 * i + 1, i + 2, dtype=np.int32) for i in range(len(lengths))]
    return SequenceBatches(sequences, np.arange(6), 2, max_length, rng=rng, token_inputs={"char_ids": chars},
                           bag_inputs={"ngram_ids": bags})


def test_token_inputs_share_the_token_width_and_truncation():
    batches = subword_batches()
    for index in range(len(batches)):
        inputs, targets = batches[index]
        assert sorted(inputs) == ["char_ids", "ngram_ids", "token_ids"]
        ids, chars = inputs["token_ids"], inputs["char_ids"]
        assert chars.shape == (*ids.shape, 2) and ids.shape[1] <= 3
        np.testing.assert_array_equal(chars[..., 0], ids)  # row i holds the value i + 2 in both, padding 0
        np.testing.assert_array_equal(ids[:, 0], targets + 2)


def test_bags_are_padded_to_their_batch_and_the_first_two_widths_differ():
    for rng in (None, np.random.default_rng(3)):
        batches = subword_batches(rng)
        widths = []
        for index in range(len(batches)):
            inputs, targets = batches[index]
            bags = inputs["ngram_ids"]
            longest = int((3 * targets + 1).max())
            assert bags.shape[1] in (longest, longest + 1)
            for row, target in zip(bags, targets):
                np.testing.assert_array_equal(row[:3 * target + 1], target + 2)
                assert (row[3 * target + 1:] == 0).all()
            widths.append(bags.shape[1])
        assert widths[0] != widths[1], widths  # Keras infers shapes from the first two batches


def test_extra_inputs_reach_a_dict_input_model_in_input_order():
    import keras

    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    char_ids = keras.Input(shape=(None, 2), dtype="int32", name="char_ids")
    ngram_ids = keras.Input(shape=(None,), dtype="int32", name="ngram_ids")
    total = keras.layers.Add()([keras.ops.max(token_ids, axis=1), keras.ops.max(char_ids, axis=(1, 2)),
                                keras.ops.max(ngram_ids, axis=1)])
    model = keras.Model({"token_ids": token_ids, "char_ids": char_ids, "ngram_ids": ngram_ids}, total)
    np.testing.assert_array_equal(subword_batches().predict(model), 3 * (np.arange(6) + 2))


def ragged(sequences) -> RaggedIds:
    """``sequences`` as vectorize writes them: flat ids + offsets."""
    lengths = [len(sequence) for sequence in sequences]
    return RaggedIds(np.concatenate(sequences).astype(np.int32), np.concatenate([[0], np.cumsum(lengths)]))


@pytest.mark.parametrize("bucketing", [True, False])
def test_a_ragged_view_gives_the_same_batches_as_a_list_of_arrays(bucketing):
    """Same seed, same batches: a RaggedIds view (no list of arrays) plans and pads exactly as the list does."""
    sequences, _ = mixed_lengths()
    targets = np.arange(200, dtype=np.int32)
    listed = SequenceBatches(sequences, targets, 8, 12, rng=np.random.default_rng(5), bucketing=bucketing)
    viewed = SequenceBatches(ragged(sequences), targets, 8, 12, rng=np.random.default_rng(5), bucketing=bucketing)
    assert isinstance(viewed.sequences, RaggedIds)  # kept as a view, not copied into a list
    for _ in range(2):
        assert len(listed) == len(viewed)
        for index in range(len(listed)):
            np.testing.assert_array_equal(listed[index][0], viewed[index][0])
            np.testing.assert_array_equal(listed[index][1], viewed[index][1])
        listed.on_epoch_end()
        viewed.on_epoch_end()


def test_round_up_to_a_multiple_and_a_cap():
    assert [round_up(width, 8) for width in (1, 8, 9, 16, 17)] == [8, 8, 16, 16, 24]
    assert round_up(13, 8, cap=60) == 16 and round_up(58, 8, cap=60) == 60 and round_up(13, 1) == 13


def test_tensorflow_keeps_exact_widths():
    # the suite runs on TensorFlow, whose steps are not compiled per shape: nothing is rounded
    assert backend_width_multiple() == 1
    assert SequenceBatches(as_arrays([[1, 2, 3]]), None, batch_size=1, max_length=9)[0][0].shape == (1, 3)


def test_width_multiple_gives_few_shapes_and_the_same_masked_outputs():
    """What JAX gets (backend_width_multiple): widths on multiples of 8 (or max_length), the same rows
    in the same order, and a masked recurrent model's outputs unchanged by the extra padding."""
    import keras

    from pipeline.layers.pooling import MaskedGlobalPooling

    sequences, _ = mixed_lengths()
    targets = np.arange(200, dtype=np.int32)
    exact = SequenceBatches(sequences, targets, batch_size=8, max_length=45, rng=np.random.default_rng(2))
    rounded = SequenceBatches(sequences, targets, batch_size=8, max_length=45, rng=np.random.default_rng(2),
                              width_multiple=8)
    widths = {rounded[index][0].shape[1] for index in range(len(rounded))}
    assert widths <= {8, 16, 24, 32, 40, 45} and len(widths) < len({exact[i][0].shape[1] for i in range(25)})
    for index in range(len(rounded)):
        (ids, rows), (padded, same_rows) = exact[index], rounded[index]
        np.testing.assert_array_equal(rows, same_rows)
        np.testing.assert_array_equal(padded[:, :ids.shape[1]], ids)
        assert not padded[:, ids.shape[1]:].any()
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(None,), dtype="int32")
    states = keras.layers.GRU(4, return_sequences=True)(keras.layers.Embedding(201, 3, mask_zero=True)(inputs))
    model = keras.Model(inputs, keras.layers.Concatenate()([MaskedGlobalPooling("mean")(states),
                                                            keras.layers.GRU(2)(states)]))
    plain = [SequenceBatches(sequences, None, 8, 45), SequenceBatches(sequences, None, 8, 45, width_multiple=8)]
    np.testing.assert_allclose(plain[0].predict(model), plain[1].predict(model), rtol=1e-5, atol=1e-6)


def test_bags_are_rounded_with_the_width_multiple():
    sequences = [np.full(2, 2, dtype=np.int32)] * 4
    bags = [np.full(n, 3, dtype=np.int32) for n in (3, 40, 5, 70)]
    batches = SequenceBatches(sequences, None, 1, 9, bag_inputs={"ngram_ids": bags}, width_multiple=8)
    widths = [batches[index][0]["ngram_ids"].shape[1] for index in range(4)]
    # batch 1 is one step wider when it would equal batch 0 (Keras infers shapes from the first two)
    assert widths == [COMPILED_BAG_MULTIPLE, 2 * COMPILED_BAG_MULTIPLE, COMPILED_BAG_MULTIPLE, 96]
