"""Tests of pipeline.text.splits: split names in values and file names, deduplication and checks of a given split."""

from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import PipelineError
from pipeline.text import splits


@pytest.mark.parametrize("value, expected", [("train", "train"), (" Train ", "train"), ("valid", "validation"),
                                             ("VALIDATION", "validation"), ("dev", "validation"), ("test", "test"),
                                             ("", None), ("training", None), ("holdout", None)])
def test_split_name(value, expected):
    assert splits.split_name(value) == expected


@pytest.mark.parametrize("name, expected", [("ptb.train.txt", "train"), ("ptb.valid.txt", "validation"),
                                            ("test.txt", "test"), ("news-dev.jsonl", "validation"),
                                            ("my_validation.csv", "validation"), ("TRAIN.CSV", "train"),
                                            ("contest.csv", None), ("devices.tsv", None), ("notes.csv", None)])
def test_predefined_split_reads_whole_pieces_of_the_file_name(name, expected):
    assert splits.predefined_split(Path("corpus") / name) == expected


def test_split_files_leaves_out_unnamed_files():
    files = [Path("a/train.csv"), Path("a/readme.csv"), Path("a/test.csv")]
    assert splits.split_files(files) == {Path("a/train.csv"): "train", Path("a/test.csv"): "test"}


def given(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame([(text, label, f"d{i}", split) for i, (text, label, split) in enumerate(rows)],
                        columns=["text", "label", "doc_id", "split"])


def test_deduplicate_within_splits_warns_about_validation_and_test_repeats(caplog):
    table = given([("a", "x", "train"), ("a", "x", "train"), ("a", "x", "validation"), ("a", "x", "test"),
                   ("b", "x", "test"), ("b", "x", "test")])
    with caplog.at_level("WARNING"):
        kept = splits.deduplicate_within_splits(table)
    assert list(zip(kept["text"], kept["split"])) == [("a", "train"), ("a", "validation"), ("a", "test"),
                                                      ("b", "test")]
    assert "1 validation row(s) repeat a training sentence" in caplog.text
    assert "1 test row(s) repeat a training sentence" in caplog.text


def test_check_splits_accepts_a_usable_split_and_names_a_document_without_a_source():
    splits.check_splits(given([("a", "x", "train"), ("b", "y", "train"), ("c", "x", "test")]), "c.csv", "file names")
    with pytest.raises(PipelineError) as caught:
        splits.check_splits(given([("a", "x", "train"), ("c", "z", "validation"), ("d", "x", "test")]), "c.csv",
                            "file names")
    assert str(caught.value).startswith("c.csv: document d1: label 'z' of this validation row never occurs")
