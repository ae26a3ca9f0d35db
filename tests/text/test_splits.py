"""Tests of pipeline.text.splits: split names in values and file names, deduplication and checks of a given split,
the drawn split counted a chunk at a time (DocumentTally) against the split it drew before."""

from pathlib import Path

import numpy as np
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


def adversarial_table(seed: int) -> pd.DataFrame:
    """Documents that come back after others, 12 labels, ids whose order is not their first appearance's (d10 <
    d9, full-width, composed and decomposed é, an astral character), and two documents with a 2-2 label tie."""
    rng = np.random.default_rng(seed)
    ids = ["d10", "d9", "d1", "Ｄ1", "文書", "a", "A", "\xe9", "e\u0301", "\U0001F600", "d01",
           *(f"doc{n}" for n in range(30))]
    labels = [f"ラベル{n}" for n in range(12)]
    weights = rng.dirichlet(np.full(len(labels), 3.0))
    docs = [ids[n] for n in rng.integers(0, len(ids), 600)]
    rows = [labels[n] for n in rng.choice(len(labels), 600, p=weights)]
    docs += ["tie", "tie", "tie", "tie", "tie2", "tie2"]  # ties: the label seen first in the document wins
    rows += [labels[1], labels[0], labels[0], labels[1], labels[2], labels[3]]
    return pd.DataFrame({"doc_id": docs, "label": rows})


def tally_in_chunks(table: pd.DataFrame, seed: int) -> splits.DocumentTally:
    """``table`` counted in chunks of random sizes (empty ones too)."""
    tally = splits.DocumentTally()
    cuts = np.sort(np.random.default_rng(seed).integers(0, len(table) + 1, 12))
    for rows in np.split(np.arange(len(table)), cuts):
        tally.add(table["doc_id"].iloc[rows], table["label"].iloc[rows])
    return tally


# the split the tally drew before its counts were numpy records (a dict and a Counter a document), same seeds
SPLITS_BEFORE = {
    (0, 0.1, 0.2): {"d9": "test", "doc0": "validation", "doc1": "test", "doc10": "validation", "doc15": "test",
                    "doc18": "test", "doc19": "test", "doc20": "test", "doc24": "test", "doc26": "test",
                    "doc29": "test", "doc3": "validation", "doc9": "validation", "e\u0301": "test",
                    "tie2": "validation"},
    (1, 0.25, 0.0): {"d01": "validation", "doc0": "validation", "doc1": "validation", "doc14": "validation",
                     "doc2": "validation", "doc21": "validation", "doc24": "validation", "doc4": "validation",
                     "doc7": "validation", "e\u0301": "validation", "tie2": "validation", "\xe9": "validation"},
    (2, 0.0, 0.3): {"d10": "test", "doc18": "test", "doc2": "test", "doc20": "test", "doc25": "test",
                    "doc28": "test", "doc29": "test", "doc8": "test", "\xe9": "test", "\U0001f600": "test"},
}


@pytest.mark.parametrize("seed, validation_fraction, test_fraction", list(SPLITS_BEFORE))
def test_the_tally_counted_in_chunks_draws_the_split_it_drew_before(monkeypatch, seed, validation_fraction,
                                                                     test_fraction):
    monkeypatch.setattr(splits, "MERGE_RECORDS", 3)  # merges after nearly every chunk
    table = adversarial_table(seed)
    drawn = tally_in_chunks(table, seed).splits(validation_fraction, test_fraction, np.random.default_rng(seed),
                                                "t", 1)
    assignment = dict(zip(table["doc_id"], drawn.of(table["doc_id"]), strict=True))
    assert {doc: split for doc, split in assignment.items() if split != "train"} == \
        SPLITS_BEFORE[seed, validation_fraction, test_fraction]
    assert splits.assign_splits(table, validation_fraction, test_fraction, np.random.default_rng(seed), "t",
                                1).tolist() == [assignment[doc] for doc in table["doc_id"]]


def test_the_tally_counts_what_the_whole_table_holds(monkeypatch):
    monkeypatch.setattr(splits, "MERGE_RECORDS", 3)
    table = adversarial_table(5)
    tally = tally_in_chunks(table, 5)
    documents = list(dict.fromkeys(table["doc_id"]))  # in the order first seen
    assert tally.sizes.tolist() == table.groupby("doc_id", sort=False).size()[documents].tolist()
    expected = {}
    for position, doc in enumerate(documents):
        labels = table.loc[table["doc_id"] == doc, "label"]
        counts = {tally.labels[label]: int(count) for label, count in labels.value_counts(sort=False).items()}
        if len(counts) > 1:
            expected[position] = counts
    assert tally.mixed == expected
    assert [list(counts) for counts in tally.mixed.values()] == [list(counts) for counts in expected.values()]
    assert tally.rows == len(table) and list(tally.labels) == list(dict.fromkeys(table["label"]))


def test_two_document_ids_with_one_hash_are_an_error_naming_both(monkeypatch):
    monkeypatch.setattr(splits, "document_hashes", lambda ids: np.array([len(doc) for doc in ids], np.uint64))
    for chunks in ([["ab", "cd"]], [["ab"], ["x", "cd"]]):  # in one chunk, in two
        tally = splits.DocumentTally()
        for doc_ids in chunks:
            tally.add(doc_ids, ["A"] * len(doc_ids))
        with pytest.raises(PipelineError, match="^documents 'ab' and 'cd' have the same 64-bit hash"):
            tally.splits(0.0, 0.0, np.random.default_rng(0), "t", 1)


def test_a_document_the_tally_never_counted_is_training():
    tally = splits.DocumentTally()
    tally.add(["d1", "d2", "d3"], ["A", "A", "A"])
    drawn = tally.splits(0.0, 0.4, np.random.default_rng(0), "t", 1)
    assert drawn.of(["d1", "d2", "d3", "elsewhere"]).tolist().count("test") == 1
    assert drawn.of(["elsewhere"]).tolist() == ["train"]
