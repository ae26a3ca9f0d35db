"""Tests of pipeline.text.prepare (prepare a chunk at a time) and the pieces it shares with corpora.prepare_table:
the hash deduplication, the per-document tally of the split, text read a line at a time."""

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline import config as config_loader
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.sections import CorpusConfig
from pipeline.text import corpora, encodings, prepare
from pipeline.text.splits import DocumentTally

REPOSITORY = Path(__file__).resolve().parents[2]


def config_for(path: Path, seed: int = 42, **corpus_settings) -> Config:
    return Config(seed=seed, corpus=CorpusConfig(path=str(path), **corpus_settings))


def streamed_and_whole(config: Config, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(prepared.parquet written a chunk at a time; the table prepare_table builds in memory, written as the
    prepare stage wrote it before it streamed), both read back."""
    prepare.write_prepared(config, tmp_path / "prepared.parquet")
    corpora.write_table(corpora.prepare_table(config), tmp_path / "whole.parquet")
    return pd.read_parquet(tmp_path / "prepared.parquet"), pd.read_parquet(tmp_path / "whole.parquet")


def write_text_corpus(path: Path) -> Path:
    """Ten paragraphs (documents) of five lines: repeats, blank and whitespace-only lines, full-width text, a URL."""
    paragraphs = []
    for number in range(10):
        lines = [f"第{number}段落の{line}行目です。" for line in range(4)] + ["繰り返しの行。"]
        if number == 3:
            lines[1] = "ＡＢＣ　https://example.com を見た。"
        paragraphs.append("\n".join(lines))
    path.write_text("\n\n   \n".join(paragraphs) + "\r\n最後の行\r\n", encoding="utf-8")
    return path


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(prepare, "PREPARE_CHUNK_ROWS", 7)


def test_a_text_corpus_streamed_in_chunks_is_the_table_built_in_memory(tmp_path, small_chunks):
    config = config_for(write_text_corpus(tmp_path / "corpus.txt"), format="text", validation_fraction=0.2,
                        test_fraction=0.2)
    streamed, whole = streamed_and_whole(config, tmp_path)
    assert streamed.equals(whole)
    assert len(whole) == 42 and (whole["text"] == "繰り返しの行。").sum() == 1  # 40 + 1 repeat kept once + the last
    assert set(whole["split"]) == {"train", "validation", "test"}
    assert pq.ParquetFile(tmp_path / "prepared.parquet").num_row_groups > 1  # written a chunk at a time
    assert sorted(path.name for path in tmp_path.iterdir()) == ["corpus.txt", "prepared.parquet", "whole.parquet"]


def test_unlabeled_text_follows_the_streamed_rows(tmp_path, small_chunks):
    corpus = write_text_corpus(tmp_path / "corpus.txt")
    (tmp_path / "extra.txt").write_text("第0段落の0行目です。\n新しい文だ。\n新しい文だ。\n", encoding="utf-8")
    config = config_for(corpus, format="text", unlabeled_path=str(tmp_path / "extra.txt"))
    streamed, whole = streamed_and_whole(config, tmp_path)
    assert streamed.equals(whole)
    assert streamed.loc[streamed["split"] == "unlabeled", "text"].tolist() == ["新しい文だ。"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_labelled_table_streamed_in_chunks_is_the_table_built_in_memory(tmp_path, small_chunks, suffix):
    rng = np.random.default_rng(0)
    rows = [{"text": f"文{int(rng.integers(40))}です", "label": ["A", "B", "C"][number % 3],
             "doc": f"d{number // 4}"} for number in range(90)]
    rows[5]["label"] = "Ａ"  # NFKC: the same label as "A"
    path = tmp_path / f"corpus{suffix}"
    if suffix == ".csv":
        path.write_text("text,label,doc\n" + "".join(f"{r['text']},{r['label']},{r['doc']}\n" for r in rows),
                        encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    config = config_for(path, seed=3, format="table", doc_column="doc")
    streamed, whole = streamed_and_whole(config, tmp_path)
    assert streamed.equals(whole)
    assert whole["text"].is_unique and set(whole["label"]) == {"A", "B", "C"}


def test_streamed_errors_are_the_in_memory_ones(tmp_path, small_chunks):
    path = tmp_path / "corpus.csv"
    path.write_text("text,label\n" + "".join(f"文{n},{'A' if n % 5 else ''}\n" for n in range(20)), encoding="utf-8")
    for write in (lambda config: prepare.write_prepared(config, tmp_path / "p.parquet"), corpora.prepare_table):
        with pytest.raises(PipelineError, match=r"corpus.csv: 4 row\(s\) have an empty label"):
            write(config_for(path, format="table"))
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(PipelineError, match="no sentences left after reading and cleaning"):
        prepare.write_prepared(config_for(tmp_path / "blank.txt", format="text"), tmp_path / "p.parquet")
    assert not (tmp_path / "p.parquet").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_given_split_is_prepared_in_memory(tmp_path):
    path = tmp_path / "corpus.csv"
    path.write_text("text,label,split\n" + "".join(f"文{n},{'AB'[n % 2]},{['train', 'train', 'test'][n % 3]}\n"
                                                   for n in range(12)), encoding="utf-8")
    config = config_for(path, format="table", split_column="split")
    assert prepare.streamed_rows(config.corpus) is None
    streamed, whole = streamed_and_whole(config, tmp_path)
    assert streamed.equals(whole)


def test_the_shipped_text_corpus_is_prepared_as_before():
    """corpora/blog_text (configs/zaremba_small.toml): the streamed table is the in-memory one, and its split
    sizes are those the in-memory prepare gave before it streamed (seed 42)."""
    config = config_loader.load(REPOSITORY / "configs" / "zaremba_small.toml",
                                [f'corpus.path="{REPOSITORY / "corpora" / "blog_text"}"'])
    assert prepare.streamed_rows(config.corpus) is not None
    whole = corpora.prepare_table(config)
    assert whole["split"].value_counts().to_dict() == {"train": 995, "validation": 125, "test": 121}


def test_seen_texts_keep_the_first_of_each_text_across_chunks():
    seen = corpora.SeenTexts()
    assert seen.first(["a", "b", "a", "c"]).tolist() == [True, True, False, True]
    assert seen.first(["c", "d", "d", "a", "e"]).tolist() == [False, True, False, False, True]
    assert seen.first([]).tolist() == []
    assert len(seen.hashes) == 5 and np.all(seen.hashes[1:] > seen.hashes[:-1])  # sorted, each once


def test_document_tally_main_label_ties_go_to_the_label_seen_first():
    table = pd.DataFrame({"doc_id": ["d1", "d1", "d1", "d1", "d2", "d3", "d4", "d5", "d6"],
                          "label": ["B", "A", "A", "B", "A", "A", "B", "B", "A"]})
    tally = DocumentTally()
    tally.add(table["doc_id"], table["label"])
    main = table.groupby("doc_id", sort=True)["label"].agg(lambda labels: labels.value_counts().index[0])
    assert main["d1"] == "B"  # as value_counts orders a tie
    assert tally.sizes.tolist() == [4, 1, 1, 1, 1, 1]
    assert tally.mixed == {0: {tally.labels["B"]: 2, tally.labels["A"]: 2}}


def test_text_lines_are_what_splitlines_gives_on_the_whole_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeff一\r\n二\r三\n\n四\x85五\u2028六\n\x0c七".encode())
    assert list(encodings.text_lines(path)) == encodings.read_text_file(path).splitlines()
    path.write_bytes("一行目\n二行目\n".encode("euc-jp"))
    assert list(encodings.text_lines(path)) == ["一行目", "二行目"]


def test_text_lines_name_the_line_of_a_bad_byte(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("京都に行きました。\n金閣寺を見ました。\n".encode() + b"abc\x85\x40\xff\n")
    with pytest.raises(PipelineError, match=rf"^{path}:3: bytes that are not valid utf-8, euc-jp, cp932"):
        list(encodings.text_lines(path))
    with pytest.raises(PipelineError, match=rf"^{path}:3: bytes that are not valid utf-8;"):
        list(encodings.text_lines(path, "utf-8"))


def test_finding_the_encoding_holds_a_block_of_the_file_not_all_of_it(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes("京都に行きました。\n".encode() * 900_000)  # 25 MB
    tracemalloc.start()
    try:
        assert encodings.file_encoding(path) == "utf-8-sig"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * encodings.DECODE_BLOCK_BYTES  # a few blocks (the old list of blocks held all 25)


def test_seen_texts_in_sealed_blocks_drop_what_drop_duplicates_drops(monkeypatch):
    monkeypatch.setattr(corpora, "SEEN_BLOCK_HASHES", 4)
    texts = [f"文{number}" for number in np.random.default_rng(0).integers(0, 30, 200)]
    seen = corpora.SeenTexts()
    kept = np.concatenate([seen.first(texts[start:start + 9]) for start in range(0, len(texts), 9)])
    assert kept.tolist() == (~pd.Series(texts).duplicated()).tolist()
    assert len(seen.sealed) > 1 and all(np.all(block[1:] > block[:-1]) for block in [*seen.sealed, seen.hashes])
