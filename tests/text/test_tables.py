"""Tests of pipeline.text.tables: CSV, TSV and JSONL corpora, their columns and their errors."""

import json

import pandas as pd
import pytest

from pipeline.errors import PipelineError
from pipeline.sections import CorpusConfig
from pipeline.text import tables


def rows_of(table: pd.DataFrame) -> list[tuple]:
    return list(table[["text", "label", "doc_id"]].itertuples(index=False, name=None))



def test_csv_reader_with_configured_columns(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('id,本文,カテゴリ,記事\n1,"美味しい, 安い",グルメ,a1\n2,速い,携帯,\n3,"改行\nあり",グルメ,a1\n',
                    encoding="utf-8")
    corpus = CorpusConfig(format="table", path=str(path), text_column="本文", label_column="カテゴリ",
                          doc_column="記事")
    table = tables.read_table(path, corpus)
    assert rows_of(table) == [("美味しい, 安い", "グルメ", "a1"), ("速い", "携帯", "row3"),
                              ("改行\nあり", "グルメ", "a1")]


def test_tsv_reader_with_default_columns_and_no_doc_column(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("label\ttext\nA\t一つ目\nB\t二つ目\n", encoding="utf-8")
    table = tables.read_table(path, CorpusConfig(format="table", path=str(path)))
    assert rows_of(table) == [("一つ目", "A", "row2"), ("二つ目", "B", "row3")]
    assert table["doc_id"].is_unique


def test_tsv_reader_in_shift_jis(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_bytes("text\tlabel\nスマホを買った。\t携帯\n".encode("cp932"))
    table = tables.read_table(path, CorpusConfig(format="table", path=str(path)))
    assert rows_of(table) == [("スマホを買った。", "携帯", "row2")]


def test_jsonl_reader_with_configured_columns(tmp_path):
    path = tmp_path / "data.jsonl"
    records = [{"body": "京都に行った。", "topic": "Kyoto", "doc": 7},
               {"body": "電池が切れた。", "topic": "Keitai"},
               {"body": 12, "topic": None, "doc": "d2"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n", encoding="utf-8")
    corpus = CorpusConfig(format="table", path=str(path), text_column="body", label_column="topic",
                          doc_column="doc")
    table = tables.read_table(path, corpus)
    assert rows_of(table) == [("京都に行った。", "Kyoto", "7"), ("電池が切れた。", "Keitai", "row2"), ("12", "", "d2")]


def test_unlabelled_table(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text\nこんにちは\n", encoding="utf-8")
    table = tables.read_table(path, CorpusConfig(format="table", path=str(path), label_column=""))
    assert rows_of(table) == [("こんにちは", "", "row2")]


@pytest.mark.parametrize("suffix, content", [
    (".csv", "sentence,category,extra\nあ,A,x\n"),
    (".tsv", "sentence\tcategory\textra\nあ\tA\tx\n"),
    (".jsonl", '{"sentence": "あ", "category": "A", "extra": "x"}\n'),
])
def test_missing_column_lists_the_available_columns(tmp_path, suffix, content):
    path = tmp_path / f"data{suffix}"
    path.write_text(content, encoding="utf-8")
    corpus = CorpusConfig(format="table", path=str(path), text_column="sentence")  # label_column "label" is missing
    with pytest.raises(PipelineError) as caught:
        tables.read_table(path, corpus)
    message = str(caught.value)
    assert "no column 'label' (corpus.label_column)" in message
    assert "available: sentence, category, extra" in message


def test_invalid_json_line_names_the_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "あ", "label": "A"}\n\n{"text": "い", "label": \n', encoding="utf-8")
    with pytest.raises(PipelineError, match=r"data\.jsonl:3: invalid JSON"):
        tables.read_table(path, CorpusConfig(format="table", path=str(path)))


def test_json_line_that_is_not_an_object_names_the_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "あ", "label": "A"}\n["い", "B"]\n', encoding="utf-8")
    with pytest.raises(PipelineError, match=r"data\.jsonl:2: expected a JSON object"):
        tables.read_table(path, CorpusConfig(format="table", path=str(path)))


def test_unknown_table_type_and_missing_table(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"unknown table type '\.xlsx'"):
        tables.read_table(path, CorpusConfig(format="table", path=str(path)))
    with pytest.raises(PipelineError, match="table file not found"):
        tables.read_table(tmp_path / "none.csv", CorpusConfig(format="table", path="none.csv"))


def test_a_jsonl_table_is_read_once_and_its_columns_are_every_objects_keys(tmp_path, monkeypatch):
    """The label key only in the second object: still a column (the first row's label is empty); the file's
    lines are read once, the columns checked as they come."""
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "あ"}\n{"text": "い", "label": "B"}\n', encoding="utf-8")
    reads = []
    original = tables.decoded_lines

    def counted(*arguments, **options):
        reads.append(arguments[0])
        return original(*arguments, **options)

    monkeypatch.setattr(tables, "decoded_lines", counted)
    table = tables.read_table(path, CorpusConfig(format="table", path=str(path)))
    assert table[["text", "label"]].values.tolist() == [["あ", ""], ["い", "B"]]
    assert reads == [path]
