"""Tests of pipeline.text.vocab: special ids, ordering, limits, encoding, files."""

import pytest

from pipeline.errors import PipelineError
from pipeline.text.vocab import PAD, PAD_ID, UNK, UNK_ID, Vocabulary

SENTENCES = [["猫", "が", "鳴く"], ["犬", "が", "鳴く"], ["猫", "と", "犬", "が"], ["鳥"]]
# counts: が 3, 猫 2, 犬 2, 鳴く 2, と 1, 鳥 1


def test_pad_and_unknown_come_first():
    vocab = Vocabulary.build(SENTENCES)
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert vocab.tokens[:2] == [PAD, UNK]
    assert vocab.encode([PAD, UNK]) == [0, 1]


def test_ordering_by_count_then_alphabetical():
    vocab = Vocabulary.build(SENTENCES)
    # Ties (2: 犬 U+72AC < 猫 U+732B < 鳴く U+9CF4; 1: と U+3068 < 鳥 U+9CE5) in code-point order.
    assert vocab.tokens == [PAD, UNK, "が", "犬", "猫", "鳴く", "と", "鳥"]
    assert vocab.counts == {"が": 3, "犬": 2, "猫": 2, "鳴く": 2, "と": 1, "鳥": 1}
    assert len(vocab) == 8


def test_the_same_counts_in_another_order_give_the_same_ids():
    assert Vocabulary.build(list(reversed(SENTENCES))).tokens == Vocabulary.build(SENTENCES).tokens


def test_min_count_and_max_size():
    assert Vocabulary.build(SENTENCES, min_count=2).tokens == [PAD, UNK, "が", "犬", "猫", "鳴く"]
    assert Vocabulary.build(SENTENCES, min_count=3).tokens == [PAD, UNK, "が"]
    assert Vocabulary.build(SENTENCES, max_size=4).tokens == [PAD, UNK, "が", "犬"]
    assert Vocabulary.build(SENTENCES, max_size=2).tokens == [PAD, UNK]
    assert Vocabulary.build(SENTENCES, min_count=2, max_size=5).tokens == [PAD, UNK, "が", "犬", "猫"]


def test_specials_follow_pad_and_unknown_and_count_towards_max_size():
    vocab = Vocabulary.build(SENTENCES, max_size=5, specials=("<s>", "</s>"))
    assert vocab.tokens == [PAD, UNK, "<s>", "</s>", "が"]


def test_special_tokens_in_the_text_are_not_duplicated():
    vocab = Vocabulary.build([[UNK, "a", PAD, "a"]])
    assert vocab.tokens == [PAD, UNK, "a"]


def test_encode_unknown_words_and_decode():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.encode(["猫", "が", "泳ぐ", "鳥"]) == [4, 2, UNK_ID, 7]
    assert vocab.encode([]) == []
    assert vocab.decode([4, 2, 1, 0]) == ["猫", "が", UNK, PAD]
    assert "猫" in vocab and "泳ぐ" not in vocab


def test_encode_forms_falls_back_to_the_other_forms_in_order():
    """vectorize.form_fallback: a word outside the vocabulary takes its norm's id, else its lemma's, else <unk>;
    a word inside keeps its own id whatever its other forms are."""
    vocab = Vocabulary([PAD, UNK, "言う", "苺", "行く"])
    words, norms = ["言い", "いちご", "行く", "謎"], ["言う", "苺", "苺", "謎"]
    lemmas = ["言う", "いちご", "行く", "謎"]
    assert vocab.encode_forms(words, norms, lemmas) == [2, 3, 4, UNK_ID]
    assert vocab.encode_forms(words, lemmas) == [2, UNK_ID, 4, UNK_ID]
    assert vocab.encode_forms(words) == vocab.encode(words) == [UNK_ID, UNK_ID, 4, UNK_ID]


def test_extended_appends_new_words_once_without_counts():
    vocab = Vocabulary([PAD, UNK, "猫"], {"猫": 3})
    longer = vocab.extended(["犬", "猫", "鳥", "犬"])
    assert longer.tokens == [PAD, UNK, "猫", "犬", "鳥"] and longer.counts == {"猫": 3}
    assert vocab.tokens == [PAD, UNK, "猫"]  # a new vocabulary; this one is unchanged


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary.build(SENTENCES, specials=("<s>",))
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded.tokens == vocab.tokens
    assert loaded.counts == vocab.counts
    assert loaded.encode(["鳴く", "x"]) == vocab.encode(["鳴く", "x"])
    assert "猫" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("content", [
    "{not json",
    '{"counts": {}}',
    '["<pad>", "<unk>"]',
    '{"tokens": ["a", "b"]}',
    '{"tokens": ["<pad>", "<unk>", "x", "x"]}',
    '{"tokens": 5}',
    "",
])
def test_corrupt_file_is_a_pipeline_error(tmp_path, content):
    path = tmp_path / "vocab.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PipelineError, match="not a valid vocabulary file") as caught:
        Vocabulary.load(path)
    assert str(path) in str(caught.value)


def test_file_that_is_not_utf8_is_a_pipeline_error(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_bytes(b'{"tokens": ["<pad>", "<unk>", "\xff\xfe"]}')
    with pytest.raises(PipelineError, match="not a valid vocabulary file"):
        Vocabulary.load(path)


def test_missing_file_names_the_stage(tmp_path):
    with pytest.raises(PipelineError, match="run `pipeline vectorize` first"):
        Vocabulary.load(tmp_path / "vocab.json")


def test_constructor_checks_are_programming_errors():
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        Vocabulary([PAD, UNK, "a", "a"])
