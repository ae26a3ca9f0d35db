"""Tests of pipeline.text.tokenize with the real ja_ginza model (loaded once per process, lru_cached)."""

import re

import pandas as pd
import pytest

from pipeline.errors import PipelineError
from pipeline.sections import TokenizeConfig
from pipeline.text.tokenize import (
    FIELDS,
    MAX_INPUT_BYTES,
    Tokenizer,
    chunk_text,
    components_for,
    load_nlp,
    tokenize_table,
)

SUDACHI_LIMIT = 49_149  # bytes; SudachiPy refuses longer inputs


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer(TokenizeConfig())


def test_surface_lemma_norm_and_pos(tokenizer):
    [tokens] = tokenizer.tokenize(["京都に行った。"])
    assert tokens == {
        "surface": ["京都", "に", "行っ", "た", "。"],
        "lemma": ["京都", "に", "行く", "た", "。"],
        "norm": ["京都", "に", "行く", "た", "。"],
        "pos": ["PROPN", "ADP", "VERB", "AUX", "PUNCT"],
    }


def test_several_texts_keep_their_order(tokenizer):
    results = tokenizer.tokenize(["昨日、友達と東京へ行っちゃった！", "ＡＢＣのスマホを買いました。"])
    assert results[0]["surface"] == ["昨日", "、", "友達", "と", "東京", "へ", "行っ", "ちゃっ", "た", "！"]
    assert results[0]["lemma"][6:8] == ["行く", "ちゃう"]
    assert results[1]["surface"] == ["ＡＢＣ", "の", "スマホ", "を", "買い", "まし", "た", "。"]
    assert results[1]["norm"][0] == "ABC"
    assert results[1]["lemma"][4:6] == ["買う", "ます"]


def test_drop_punct_and_stop_pos():
    dropped = Tokenizer(TokenizeConfig(drop_punct=True)).tokenize(["京都に、行った。"])[0]
    assert dropped["surface"] == ["京都", "に", "行っ", "た"]
    filtered = Tokenizer(TokenizeConfig(drop_punct=True, stop_pos=("ADP", "AUX"))).tokenize(["京都に行った。"])[0]
    assert filtered == {"surface": ["京都", "行っ"], "lemma": ["京都", "行く"], "norm": ["京都", "行く"],
                        "pos": ["PROPN", "VERB"]}


def test_spaces_are_dropped_and_lowercase_applies_to_surface_only():
    [tokens] = Tokenizer(TokenizeConfig(lowercase=True)).tokenize(["Apple の 新製品"])
    assert " " not in tokens["surface"] and "SPACE" not in tokens["pos"]
    assert tokens["surface"][0] == "apple"
    assert len({len(tokens[field]) for field in FIELDS}) == 1


def test_empty_text_and_no_texts(tokenizer):
    assert tokenizer.tokenize([""]) == [{"surface": [], "lemma": [], "norm": [], "pos": []}]
    assert tokenizer.tokenize(["", "京都"])[1]["surface"] == ["京都"]
    assert tokenizer.tokenize([]) == []


def test_chunk_text_short_text_is_one_piece():
    assert chunk_text("京都に行った。") == ["京都に行った。"]
    assert chunk_text("") == [""]


def test_chunk_text_breaks_at_sentence_ends_under_the_limit():
    sentence = "京都の寺に友達と行きました。"  # 14 characters, 42 bytes
    text = sentence * 1300  # 54,600 bytes: more than SudachiPy accepts
    assert len(text.encode("utf-8")) > SUDACHI_LIMIT
    pieces = chunk_text(text)
    assert "".join(pieces) == text
    assert len(pieces) == 2
    assert all(len(piece.encode("utf-8")) <= MAX_INPUT_BYTES < SUDACHI_LIMIT for piece in pieces)
    assert all(piece.endswith("。") for piece in pieces)
    # 49,000 // 42 = 1166 whole sentences fit in the first piece.
    assert pieces[0] == sentence * 1166


def test_chunk_text_cuts_a_single_overlong_sentence_by_characters():
    text = "あ" * 100 + "。" + "い" * 10
    pieces = chunk_text(text, max_bytes=30)  # 10 characters of 3 bytes each
    assert "".join(pieces) == text
    assert all(len(piece.encode("utf-8")) <= 30 for piece in pieces)
    assert pieces[:10] == ["あ" * 10] * 10
    assert pieces[10:] == ["。", "い" * 10]


def test_chunk_text_breaks_at_newlines():
    pieces = chunk_text("ab\ncd\nef", max_bytes=4)
    assert pieces == ["ab\n", "cd\n", "ef"]


def test_tokenize_a_text_longer_than_sudachi_accepts(tokenizer):
    sentence = "京都の寺に友達と行きました。"
    text = sentence * 1300
    [tokens] = tokenizer.tokenize([text, "短い文。"])[:1]
    [one] = tokenizer.tokenize([sentence])
    assert len(one["surface"]) == 10
    for field in FIELDS:
        assert tokens[field] == one[field] * 1300
    pieces = tokenizer.tokenize(chunk_text(text))
    assert tokens["surface"] == [token for piece in pieces for token in piece["surface"]]


def test_components_for():
    assert components_for(TokenizeConfig()) == ()
    assert components_for(TokenizeConfig(pos_source="ud")) == ("morphologizer",)
    assert components_for(TokenizeConfig(entities=True)) == ("ner",)
    assert components_for(TokenizeConfig(pos_source="ud", entities=True)) == ("morphologizer", "ner")


def test_default_loads_the_tokenizer_alone_once(tokenizer):
    assert tokenizer.nlp.pipe_names == []
    assert load_nlp("ja_ginza", ()) is tokenizer.nlp
    assert Tokenizer(TokenizeConfig(drop_punct=True)).nlp is tokenizer.nlp


def test_pos_source_ud_loads_the_morphologizer():
    ud = Tokenizer(TokenizeConfig(pos_source="ud"))
    assert "morphologizer" in ud.nlp.pipe_names
    assert "parser" not in ud.nlp.pipe_names and "ner" not in ud.nlp.pipe_names
    [tokens] = ud.tokenize(["京都に行った。"])
    assert tokens["surface"] == ["京都", "に", "行っ", "た", "。"]
    assert tokens["pos"][0] == "PROPN" and tokens["pos"][2] == "VERB" and tokens["pos"][-1] == "PUNCT"


def test_missing_model_is_a_pipeline_error():
    with pytest.raises(PipelineError, match="'no_such_model_xx' is not installed"):
        load_nlp("no_such_model_xx", ())


def test_tokenize_table_adds_token_columns(tokenizer):
    table = pd.DataFrame({"text": ["京都に行った。", "電池が切れた。"], "label": ["Kyoto", "Keitai"]}, index=[5, 9])
    result = tokenize_table(table, TokenizeConfig())
    assert list(result.columns) == ["text", "label", *FIELDS]
    assert list(result.index) == [0, 1]
    assert result.loc[0, "lemma"] == ["京都", "に", "行く", "た", "。"]
    assert result.loc[1, "surface"] == ["電池", "が", "切れ", "た", "。"]
    assert list(table.columns) == ["text", "label"]  # input untouched


def test_entities_adds_an_entity_list():
    tokenizer = Tokenizer(TokenizeConfig(entities=True))
    assert "ner" in tokenizer.nlp.pipe_names and "parser" not in tokenizer.nlp.pipe_names
    [tokens] = tokenizer.tokenize(["昨日、山田さんと京都に行った。"])
    assert set(tokens) == {*FIELDS, "entities"}
    assert "京都\tProvince" in tokens["entities"]


def test_two_processes_give_the_tokens_of_one(tokenizer):
    """tokenize.processes = 2 (forked workers): the same tokens, in the same order, as one process."""
    texts = [f"{n}番目の文です。京都に行った！" if n % 3 else f"スマホを{n}台買いました。" for n in range(40)]
    texts.insert(7, "")  # an empty text keeps its place
    two = Tokenizer(TokenizeConfig(processes=2, batch_size=8))
    assert two.tokenize(texts) == tokenizer.tokenize(texts)


def progress_counts(caplog) -> list[tuple[int, int]]:
    """(done, total) of each ``tokenize: done/total sentences`` progress line."""
    found = [re.match(r"tokenize: (\d+)/(\d+) sentences \(\d+%\)", record.getMessage()) for record in caplog.records]
    return [(int(match[1]), int(match[2])) for match in found if match]


def test_tokenize_table_logs_progress_per_sentence(tokenizer, progress_log):
    """Off a terminal, progress lines count sentences: a text cut into two chunks for SudachiPy counts once (the
    fast path counts a batch at a time: batches of one here)."""
    long_text = "京都の寺に友達と行きました。" * 1200  # 50,400 bytes: two chunks
    table = pd.DataFrame({"text": ["京都に行った。", long_text, "", "電池が切れた。"], "label": ["a"] * 4})
    tokenize_table(table, TokenizeConfig(batch_size=1))
    assert progress_counts(progress_log) == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_tokenize_in_processes_logs_progress_per_batch(tokenizer, progress_log):
    """tokenize.processes = 2: a line when each worker's batch comes back, the sentences of all batches summed."""
    table = pd.DataFrame({"text": [f"{n}番目の文です。" for n in range(10)], "label": ["a"] * 10})
    tokenize_table(table, TokenizeConfig(processes=2, batch_size=4))
    counts = progress_counts(progress_log)
    done = [count for count, _ in counts]
    assert {total for _, total in counts} == {10} and done[-1] == 10
    batches = [after - before for before, after in zip([0, *done[:-1]], done, strict=True)]
    assert sorted(batches) == [2, 4, 4]  # batches of 4, 4 and 2 sentences


def test_tokenize_table_quiet_shows_no_progress(tokenizer, quiet_terminal, caplog):
    """pipeline --quiet (level WARNING): no progress lines and no bar, even on a terminal."""
    tokenize_table(pd.DataFrame({"text": ["京都に行った。", "電池が切れた。"], "label": ["a", "b"]}), TokenizeConfig())
    assert progress_counts(caplog) == [] and quiet_terminal.getvalue() == ""
