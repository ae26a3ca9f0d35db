"""Tests of pipeline.seq2seq.data: readings from GiNZA, the kana-copy baseline, edit distance and encoding."""

import numpy as np
import pandas as pd
import pytest

from pipeline.sections import TokenizeConfig
from pipeline.seq2seq.data import (
    BOS,
    EOS,
    build_vocabularies,
    edit_distance,
    encode_sources,
    encode_targets,
    kana_copy,
    reading_scores,
    sentence_readings,
    split_pairs,
    to_katakana,
)
from pipeline.text.vocab import PAD_ID, UNK_ID


def test_readings_come_from_sudachi_and_tokens_without_one_keep_their_surface():
    readings = sentence_readings(["今日は清水寺へ行きました。", "スマホ 新しい", "😀です"], TokenizeConfig())
    assert readings[0] == "キョウハキヨミズテラヘイキマシタ。"
    assert readings[1] == "スマホアタラシイ"  # whitespace dropped
    assert readings[2].endswith("デス") and readings[2].startswith("😀")


def test_kana_copy_keeps_kana_as_katakana_and_drops_the_rest():
    assert to_katakana("きょうはカレー") == "キョウハカレー"
    assert kana_copy("今日は清水寺へ行きました。") == "ハヘキマシタ"
    assert kana_copy("ABC、123") == ""


@pytest.mark.parametrize("hypothesis, reference, distance", [
    ("", "", 0), ("アイウ", "", 3), ("", "アイ", 2), ("キョウ", "キョウ", 0), ("キヨウ", "キョウ", 1),
    ("kitten", "sitting", 3), ("アイウエオ", "イウエオア", 2)])
def test_edit_distance(hypothesis, reference, distance):
    assert edit_distance(hypothesis, reference) == distance
    assert edit_distance(reference, hypothesis) == distance


def test_character_error_rate_is_total_edits_over_total_reference_characters():
    scores = reading_scores(["キョウ", "アイ"], ["キョウ", "アイウエ"])
    assert scores == {"cer": 2 / 7, "exact_match": 0.5, "n": 2}
    with pytest.raises(ValueError):
        reading_scores([], [])


def test_teacher_forcing_inputs_are_the_targets_shifted_right():
    sources, alphabet = build_vocabularies(["京都", "京"], ["キョウト", "キョウ"])
    assert alphabet.tokens[:4] == ["<pad>", "<unk>", BOS, EOS]
    inputs, targets = encode_targets(["キョウト", "キョウ"], alphabet)
    assert inputs.shape == targets.shape == (2, 5)
    assert alphabet.decode(inputs[0]) == [BOS, "キ", "ョ", "ウ", "ト"]
    assert alphabet.decode(targets[0]) == ["キ", "ョ", "ウ", "ト", EOS]
    assert targets[1, -1] == inputs[1, -1] == PAD_ID
    ids = encode_sources(["京都", "都"], sources)
    np.testing.assert_array_equal(ids, [[sources.index["京"], sources.index["都"]], [sources.index["都"], PAD_ID]])
    assert encode_sources(["東"], sources)[0, 0] == UNK_ID


def test_split_pairs_reads_one_split_and_drops_long_sentences():
    table = pd.DataFrame({"text": ["今日は晴れ。", "とても長い文です。", "京都", " "],
                          "split": ["train", "train", "test", "train"]})
    texts, readings = split_pairs(table, "train", TokenizeConfig(), max_chars=6)
    assert texts == ["今日は晴れ。"] and readings == ["キョウハハレ。"]
    assert split_pairs(table, "validation", TokenizeConfig()) == ([], [])
