"""Tests of pipeline.text.corpora: readers, encoding detection, normalisation, cleaning and the split."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPOSITORY

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.sections import CorpusConfig
from pipeline.text import corpora, encodings
from pipeline.text.splits import assign_splits, split_name
from pipeline.text.unlabeled import iter_unlabeled

SHIPPED_KNB = REPOSITORY / "corpora" / "knb_blog"

# A tiny KNB corpus2: two themes, four documents each, three sentences a document.
KNB_THEMES = {
    "Kyoto": [
        ("KN001_Kyoto_1", ["金閣寺に行きました。", "とても混んでいました。", "また行きたいです。"]),
        ("KN002_Kyoto_2", ["嵐山の紅葉がきれいでした。", "湯豆腐を食べました。", "川沿いを歩きました。"]),
        ("KN003_Kyoto_3", ["祇園祭を見に行った。", "山鉾が立派だった。", "人が多くて疲れた。"]),
        ("KN004_Kyoto_4", ["清水寺の舞台から景色を見た。", "坂道の店で八ツ橋を買った。", "夕方には帰った。"]),
    ],
    "Keitai": [
        ("KN101_Keitai_1", ["新しい携帯を買いました。", "画面が大きいです。", "電池が長持ちします。"]),
        ("KN102_Keitai_2", ["充電器を忘れた。", "電池が切れそうだ。", "駅で充電した。"]),
        ("KN103_Keitai_3", ["機種変更の手続きをした。", "店員さんが親切だった。", "料金プランも見直した。"]),
        ("KN104_Keitai_4", ["写真がきれいに撮れる。", "夜景もはっきり写る。", "動画も撮ってみた。"]),
    ],
}


def knb_lines(documents) -> str:
    lines = []
    for doc_id, sentences in documents:
        for number, sentence in enumerate(sentences, start=1):
            lines.append(f"{doc_id}-1-1-{number:02d}\t{sentence}\t\t\t\t")
    return "\n".join(lines) + "\n"


def write_knb(root: Path, encoding: str = "utf-8", encodings: dict | None = None) -> Path:
    folder = root / "corpus2"
    folder.mkdir(parents=True)
    for theme, documents in KNB_THEMES.items():
        file_encoding = (encodings or {}).get(theme, encoding)
        (folder / f"{theme}.tsv").write_bytes(knb_lines(documents).encode(file_encoding))
    return root


def expected_knb_rows():
    rows = []
    for theme in sorted(KNB_THEMES):
        for doc_id, sentences in KNB_THEMES[theme]:
            rows.extend((sentence, theme, doc_id) for sentence in sentences)
    return rows


def rows_of(table: pd.DataFrame) -> list[tuple]:
    return list(table[["text", "label", "doc_id"]].itertuples(index=False, name=None))


def config_for(path: Path, seed: int = 42, **corpus_settings) -> Config:
    return Config(seed=seed, corpus=CorpusConfig(path=str(path), **corpus_settings))


# --- KNB layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "euc-jp", "cp932"])
def test_read_knb_detects_the_encoding(tmp_path, encoding):
    root = write_knb(tmp_path / "knb", encoding)
    table = corpora.read_knb(root)
    assert list(table.columns) == ["text", "label", "doc_id"]
    assert rows_of(table) == expected_knb_rows()


def test_read_knb_with_files_in_different_encodings_and_a_bom(tmp_path):
    root = write_knb(tmp_path / "knb", encodings={"Kyoto": "euc-jp", "Keitai": "utf-8"})
    keitai = root / "corpus2" / "Keitai.tsv"
    keitai.write_bytes(b"\xef\xbb\xbf" + keitai.read_bytes())
    assert rows_of(corpora.read_knb(root)) == expected_knb_rows()


def test_read_knb_with_an_explicit_encoding(tmp_path):
    root = write_knb(tmp_path / "knb", "euc-jp")
    assert rows_of(corpora.read_knb(root, "euc-jp")) == expected_knb_rows()


def test_knb_doc_id_is_the_sentence_id_up_to_the_first_dash(tmp_path):
    folder = tmp_path / "knb"
    folder.mkdir()
    (folder / "Sports.tsv").write_text(
        "KN201_Sports_1-1-1-01\t勝った。\t\t\nKN201_Sports_1-1-2-01\t負けた。\n\nKN202_Sports_2-1-1-01\t引き分け。\n",
        encoding="utf-8",
    )
    table = corpora.read_knb(folder)  # the .tsv files directly in the folder also work
    assert rows_of(table) == [
        ("勝った。", "Sports", "KN201_Sports_1"),
        ("負けた。", "Sports", "KN201_Sports_1"),
        ("引き分け。", "Sports", "KN202_Sports_2"),
    ]


def test_knb_line_without_a_tab_names_file_and_line(tmp_path):
    root = write_knb(tmp_path / "knb")
    kyoto = root / "corpus2" / "Kyoto.tsv"
    kyoto.write_text(kyoto.read_text(encoding="utf-8") + "タブのない行\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"Kyoto\.tsv:13: expected 'sentence id<TAB>sentence'"):
        corpora.read_knb(root)


def test_knb_missing_folder_and_folder_without_files(tmp_path):
    with pytest.raises(PipelineError, match=r"nothere: KNB corpus folder not found"):
        corpora.read_knb(tmp_path / "nothere")
    (tmp_path / "empty" / "corpus2").mkdir(parents=True)
    with pytest.raises(PipelineError, match=r"no corpus2/<Theme>\.tsv files"):
        corpora.read_knb(tmp_path / "empty")


# --- encodings ----------------------------------------------------------------------------------


def test_undecodable_bytes_with_an_explicit_encoding_name_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("一行目\n二行目\n".encode() + b"abc\xff\n")
    with pytest.raises(PipelineError) as caught:
        encodings.read_text_file(path, "utf-8")
    message = str(caught.value)
    assert message.startswith(f"{path}:3:")
    assert "utf-8" in message and "corpus.encoding" in message


def test_undecodable_bytes_with_auto_detection_name_the_line_of_the_bad_byte(tmp_path):
    # Two clean UTF-8 lines, then a byte that is invalid in UTF-8: the error must point at line 3,
    # where the file stops being UTF-8, not where a later guess (EUC-JP, cp932) gave up.
    path = tmp_path / "bad.txt"
    path.write_bytes("京都に行きました。\n金閣寺を見ました。\n".encode() + b"abc\x85\x40\xff\n")
    with pytest.raises(PipelineError) as caught:
        encodings.read_text_file(path)
    assert str(caught.value).startswith(f"{path}:3:")


def test_undecodable_bytes_in_a_knb_file_name_it(tmp_path):
    root = write_knb(tmp_path / "knb")
    (root / "corpus2" / "Kyoto.tsv").write_bytes(b"KN1-1\t\x85\x40\n")
    with pytest.raises(PipelineError, match=r"Kyoto\.tsv:1: bytes that are not valid utf-8, euc-jp, cp932"):
        corpora.read_knb(root)


def test_missing_file_is_a_pipeline_error(tmp_path):
    with pytest.raises(PipelineError, match="file not found"):
        encodings.read_text_file(tmp_path / "none.txt")


# --- folders and plain text -----------------------------------------------------------------------


def write_folders(root: Path) -> Path:
    (root / "sports").mkdir(parents=True)
    (root / "food").mkdir()
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.txt").write_text("無視\n", encoding="utf-8")
    (root / "sports" / "a.txt").write_text("タイトル行\n2024-01-01\n勝った！嬉しい。\n次も頑張る\n", encoding="utf-8")
    (root / "food" / "b.txt").write_text("見出し\n日付\nラーメンを食べた。美味しかった？\n", encoding="euc-jp")
    (root / "food" / "notes.md").write_text("読まない\n", encoding="utf-8")
    return root


def test_folder_reader_skips_header_lines_and_splits_sentences(tmp_path):
    root = write_folders(tmp_path / "folders")
    corpus = CorpusConfig(format="folders", path=str(root), header_lines=2, split_sentences=True)
    assert rows_of(corpora.read_folders(root, corpus)) == [
        ("ラーメンを食べた。", "food", "food/b.txt"),
        ("美味しかった？", "food", "food/b.txt"),
        ("勝った！", "sports", "sports/a.txt"),
        ("嬉しい。", "sports", "sports/a.txt"),
        ("次も頑張る", "sports", "sports/a.txt"),
    ]


def test_folder_reader_keeps_a_document_whole_without_splitting(tmp_path):
    root = write_folders(tmp_path / "folders")
    corpus = CorpusConfig(format="folders", path=str(root), header_lines=1)
    assert rows_of(corpora.read_folders(root, corpus)) == [
        ("日付 ラーメンを食べた。美味しかった？", "food", "food/b.txt"),
        ("2024-01-01 勝った！嬉しい。 次も頑張る", "sports", "sports/a.txt"),
    ]


def test_folder_reader_without_label_folders(tmp_path):
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    with pytest.raises(PipelineError, match="no label sub-folders"):
        corpora.read_folders(tmp_path, CorpusConfig(format="folders", path=str(tmp_path)))


def test_plain_text_reader_lines_and_paragraphs(tmp_path):
    path = tmp_path / "novel.txt"
    path.write_text("一行目です。\n二行目。三文目！\n\n\n新しい段落。\n", encoding="utf-8")
    table = corpora.read_plain_text(path, CorpusConfig(format="text", path=str(path)))
    assert rows_of(table) == [
        ("一行目です。", "", "novel.txt:0"),
        ("二行目。三文目！", "", "novel.txt:0"),
        ("新しい段落。", "", "novel.txt:2"),
    ]
    split = corpora.read_plain_text(path, CorpusConfig(format="text", path=str(path), split_sentences=True))
    assert split["text"].tolist() == ["一行目です。", "二行目。", "三文目！", "新しい段落。"]


def test_plain_text_reader_reads_a_folder_of_text_files(tmp_path):
    (tmp_path / "b.txt").write_text("びー\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("えー\n", encoding="utf-8")
    (tmp_path / "skip.md").write_text("no\n", encoding="utf-8")
    table = corpora.read_plain_text(tmp_path, CorpusConfig(format="text", path=str(tmp_path)))
    assert table["text"].tolist() == ["びー", "えー"]
    assert corpora.input_files(CorpusConfig(format="text", path=str(tmp_path))) == [tmp_path / "b.txt",
                                                                                   tmp_path / "sub" / "a.txt"]


def test_input_files_per_format(tmp_path):
    root = write_knb(tmp_path / "knb")
    assert corpora.input_files(CorpusConfig(path=str(root))) == [root / "corpus2" / "Keitai.tsv",
                                                                root / "corpus2" / "Kyoto.tsv"]
    folders = write_folders(tmp_path / "folders")
    listed = corpora.input_files(CorpusConfig(format="folders", path=str(folders)))
    assert {folders / "food" / "b.txt", folders / "sports" / "a.txt"} <= set(listed)
    assert folders / "food" / "notes.md" not in listed
    table = tmp_path / "t.csv"
    table.write_text("text,label\n", encoding="utf-8")
    assert corpora.input_files(CorpusConfig(format="table", path=str(table))) == [table]


# --- normalisation and cleaning ------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ("ＡＢＣ１２３", "ABC123"),
    ("ｶﾀｶﾅとﾊﾞｲｸ", "カタカナとバイク"),
    ("全角　スペース", "全角 スペース"),
    ("  前後の  空白\t\nと改行  ", "前後の 空白 と改行"),
    ("詳細は https://example.com/a?b=1 を見て", "詳細は を見て"),
    ("www.example.jp/page と ftp://files.example.org/x", "と"),
    ("（笑）！？", "(笑)!?"),
    ("京都に行った。", "京都に行った。"),
    ("", ""),
])
def test_normalize(raw, expected):
    assert corpora.normalize(raw) == expected


def test_split_sentences():
    assert corpora.split_sentences("晴れた。散歩した！楽しい？\n次の行 Yes! OK") == [
        "晴れた。", "散歩した！", "楽しい？", "次の行 Yes!", "OK"]
    assert corpora.split_sentences("\n\n") == []


def test_clean_normalises_drops_empty_rows_and_duplicates():
    table = pd.DataFrame({
        "text": ["ＡＢＣです", "ABCです", " ", "http://x.jp", "別の文", "ABC です"],
        "label": ["Ａ", "A", "A", "B", "B", "B"],
        "doc_id": ["d1", "d2", "d3", "d4", "d5", "d6"],
    })
    cleaned = corpora.clean(table)
    assert rows_of(cleaned) == [("ABCです", "A", "d1"), ("別の文", "B", "d5"), ("ABC です", "B", "d6")]
    assert list(cleaned.index) == [0, 1, 2]
    kept = corpora.clean(table, deduplicate=False)
    assert kept["text"].tolist() == ["ABCです", "ABCです", "別の文", "ABC です"]


# --- prepare_table errors --------------------------------------------------------------------------


def test_empty_corpus_is_an_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n , A\nhttp://only.a.url, B\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="no sentences left after reading and cleaning"):
        corpora.prepare_table(config_for(path, format="table"))


def test_empty_knb_files_are_an_empty_corpus(tmp_path):
    (tmp_path / "knb").mkdir()
    (tmp_path / "knb" / "Kyoto.tsv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="no sentences left"):
        corpora.prepare_table(config_for(tmp_path / "knb"))


def test_empty_label_is_an_error(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text,label\n一,A\n二,\n三,A\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"1 row\(s\) have an empty label"):
        corpora.prepare_table(config_for(path, format="table"))


def test_label_with_too_few_examples_is_an_error(tmp_path):
    path = tmp_path / "data.csv"
    lines = ["text,label"] + [f"文{i},多い" for i in range(10)] + ["一つ目,少ない", "二つ目,少ない"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        corpora.prepare_table(config_for(path, format="table"))
    message = str(caught.value)
    assert "label '少ない' has 2 example(s) in 2 document(s)" in message
    assert "at least 3 in 3 documents" in message


def test_label_in_too_few_documents_is_an_error(tmp_path):
    path = tmp_path / "data.csv"
    lines = ["text,label,doc"] + [f"文{i},A,d{i % 2}" for i in range(10)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"label 'A' has 10 example\(s\) in 2 document\(s\)"):
        corpora.prepare_table(config_for(path, format="table", doc_column="doc"))


# --- split ----------------------------------------------------------------------------------------


def split_table(labels: int = 3, docs_per_label: int = 12, sentences_per_doc: int = 4) -> pd.DataFrame:
    rows = []
    for label in range(labels):
        for doc in range(docs_per_label):
            rows.extend((f"L{label}D{doc}S{s}", f"label{label}", f"L{label}D{doc}") for s in range(sentences_per_doc))
    return pd.DataFrame(rows, columns=["text", "label", "doc_id"])


def test_split_is_stratified_grouped_and_sized_by_hand():
    # Per label: 12 documents of 4 sentences = 48 rows; test 0.25 -> 12 rows = 3 documents,
    # validation 0.25 -> 3 more documents; the remaining 6 documents (24 rows) train.
    table = split_table()
    split = assign_splits(table, 0.25, 0.25, np.random.default_rng(0), "t")
    counts = pd.crosstab(table["label"], split)
    assert counts.to_dict("index") == {f"label{i}": {"test": 12, "train": 24, "validation": 12} for i in range(3)}
    assert (table.assign(split=split).groupby("doc_id")["split"].nunique() == 1).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_prepare_on_tiny_knb_puts_every_label_in_every_split(tmp_path, seed):
    root = write_knb(tmp_path / "knb", "euc-jp")
    table = corpora.prepare_table(config_for(root, seed=seed, validation_fraction=0.2, test_fraction=0.2))
    assert list(table.columns) == corpora.COLUMNS
    assert len(table) == 24
    assert set(zip(table["label"], table["split"])) == {(label, split) for label in KNB_THEMES
                                                        for split in corpora.SPLITS}
    assert (table.groupby("doc_id")["split"].nunique() == 1).all()
    # 4 documents per label, 3 splits: exactly one document in test, one in validation, two in train.
    assert pd.crosstab(table["label"], table["split"]).to_dict("index") == {
        theme: {"test": 3, "train": 6, "validation": 3} for theme in KNB_THEMES}


def test_split_with_zero_fractions():
    table = split_table(labels=2, docs_per_label=3, sentences_per_doc=1)
    only_train = assign_splits(table, 0.0, 0.0, np.random.default_rng(0), "t")
    assert set(only_train) == {"train"}
    no_test = assign_splits(table, 0.3, 0.0, np.random.default_rng(0), "t")
    assert pd.crosstab(table["label"], no_test).to_dict("index") == {
        "label0": {"train": 2, "validation": 1}, "label1": {"train": 2, "validation": 1}}


def test_split_never_puts_one_document_in_two_splits_even_across_labels():
    # A document (one review) whose sentences carry different labels (per-sentence sentiment):
    # the docstring promises sentences of one document never land in two splits.
    rows = []
    for doc in range(10):
        rows.extend((f"D{doc} good {s}", "positive", f"D{doc}") for s in range(2))
        rows.extend((f"D{doc} bad {s}", "negative", f"D{doc}") for s in range(2))
    table = pd.DataFrame(rows, columns=["text", "label", "doc_id"])
    split = assign_splits(table, 0.2, 0.2, np.random.default_rng(3), "t")
    splits_per_document = table.assign(split=split).groupby("doc_id")["split"].nunique()
    assert (splits_per_document == 1).all(), splits_per_document[splits_per_document > 1].to_dict()


@pytest.fixture(scope="module")
def shipped_corpus_config():
    return Config(corpus=CorpusConfig(path=str(SHIPPED_KNB), validation_fraction=0.1, test_fraction=0.15))


def test_split_is_reproducible_and_depends_on_the_seed(shipped_corpus_config):
    first = corpora.prepare_table(shipped_corpus_config)
    again = corpora.prepare_table(shipped_corpus_config)
    pd.testing.assert_frame_equal(first, again)
    other = corpora.prepare_table(replace(shipped_corpus_config, seed=7))
    assert first["text"].tolist() == other["text"].tolist()
    assert (first["split"] != other["split"]).sum() > 100


def test_split_fractions_on_the_shipped_corpus(shipped_corpus_config):
    table = corpora.prepare_table(shipped_corpus_config)
    assert 1200 <= len(table) <= 1300
    assert sorted(table["label"].unique()) == ["Gourmet", "Keitai", "Kyoto", "Sports"]
    assert table["doc_id"].str.fullmatch(r"KN\d+_[A-Za-z]+_\d+").all()
    assert (table.groupby("doc_id")["split"].nunique() == 1).all()
    shares = table["split"].value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.15, abs=0.025)
    assert shares["validation"] == pytest.approx(0.10, abs=0.025)
    # Per label the split is off by at most one document (the largest document of that label).
    for label, rows in table.groupby("label"):
        largest_document = rows.groupby("doc_id").size().max() / len(rows)
        label_shares = rows["split"].value_counts(normalize=True)
        assert abs(label_shares["test"] - 0.15) <= largest_document, label
        assert abs(label_shares["validation"] - 0.10) <= largest_document, label


# --- artifacts ------------------------------------------------------------------------------------


def test_write_and_read_table_artifact(tmp_path):
    table = pd.DataFrame({"text": ["京都"], "label": ["Kyoto"], "doc_id": ["d"], "split": ["train"]})
    corpora.write_table(table, tmp_path / "prepared.parquet")
    pd.testing.assert_frame_equal(corpora.read_table_artifact(tmp_path / "prepared.parquet", "prepare"), table)
    assert [p.name for p in tmp_path.iterdir()] == ["prepared.parquet"]
    with pytest.raises(PipelineError, match=r"run `pipeline prepare` first"):
        corpora.read_table_artifact(tmp_path / "missing.parquet", "prepare")


# --- unlabelled text for pretraining ---------------------------------------------------------------


def test_unlabeled_text_joins_the_table_as_its_own_split(tmp_path):
    root = write_knb(tmp_path / "knb")
    extra = tmp_path / "blogs"
    extra.mkdir()
    (extra / "a.txt").write_text("今日は雨でした。明日は晴れるといいな。\n\n金閣寺に行きました。\n", encoding="utf-8")
    (extra / "b.txt").write_text("ｽﾏﾎを買った。\n", encoding="utf-8")
    config = config_for(root, unlabeled_path=str(extra), split_sentences=True)
    table = corpora.prepare_table(config)
    unlabeled = table[table["split"] == corpora.UNLABELED]
    # sentences split and normalised like the corpus; a sentence already in the labelled corpus is dropped
    assert unlabeled["text"].tolist() == ["今日は雨でした。", "明日は晴れるといいな。", "スマホを買った。"]
    assert (unlabeled["label"] == "").all()
    labelled = table[table["split"] != corpora.UNLABELED]
    assert labelled.equals(corpora.prepare_table(config_for(root)).reset_index(drop=True).loc[labelled.index])
    assert set(corpora.input_files(config.corpus)) >= {extra / "a.txt", extra / "b.txt"}


def test_missing_unlabeled_path_names_the_key(tmp_path):
    root = write_knb(tmp_path / "knb")
    with pytest.raises(PipelineError, match="corpus.unlabeled_path"):
        corpora.prepare_table(config_for(root, unlabeled_path=str(tmp_path / "nothing")))


def test_unlabeled_text_is_streamed_in_chunks_without_held_out_sentences(tmp_path):
    root = write_knb(tmp_path / "knb")
    labelled = corpora.prepare_table(config_for(root))
    held_out = labelled.loc[labelled["split"].isin(["validation", "test"]), "text"].tolist()
    assert held_out
    extra = tmp_path / "more.txt"
    lines = [f"新しい文その{i}です。" for i in range(25)] + held_out + ["新しい文その3です。"]
    extra.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = config_for(root, unlabeled_path=str(extra))
    chunks = list(iter_unlabeled(config.corpus, labelled["text"], chunk_lines=10))
    assert len(chunks) >= 3 and all(len(chunk) <= 10 for chunk in chunks)  # 10 lines at a time
    texts = pd.concat(chunks)["text"].tolist()
    # no validation or test sentence of the labelled corpus; the repeated line once
    assert texts == [f"新しい文その{i}です。" for i in range(25)]
    table = corpora.prepare_table(config)
    assert table.loc[table["split"] == corpora.UNLABELED, "text"].tolist() == texts


@pytest.mark.parametrize("content", [b"\xe4\xbb\x8a\xe6\x97\xa5\n\xa4\xb3\xa4\xf3\n", b"ok\ntext\n\x00\x01binary\n"],
                         ids=["euc-jp", "binary"])
def test_unlabeled_text_that_is_not_utf8_names_the_file_and_line(tmp_path, content):
    root = write_knb(tmp_path / "knb")
    (tmp_path / "extra").mkdir()
    bad = tmp_path / "extra" / "bad.txt"
    bad.write_bytes(content)
    with pytest.raises(PipelineError, match=rf"{bad}:[23]: not utf-8 text \(corpus.unlabeled_path\)"):
        corpora.prepare_table(config_for(root, unlabeled_path=str(tmp_path / "extra")))


# --- a user's own split: a split column, or one table per split ------------------------------------


def write_split_table(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A CSV with text, label and split columns."""
    path.write_text("text,label,split\n" + "".join(f"{t},{label},{s}\n" for t, label, s in rows), encoding="utf-8")
    return path


USER_ROWS = [("京都の寺に行った。", "Kyoto", "train"), ("電池が切れた。", "Keitai", "TRAIN"),
             ("祇園祭を見た。", "Kyoto", "train"), ("嵐山を歩いた。", "Kyoto", "dev"),
             ("機種変更した。", "Keitai", "valid"), ("画面が大きい。", "Keitai", "test"),
             ("清水寺に登った。", "Kyoto", "Test")]


def test_split_column_keeps_the_users_split(tmp_path):
    path = write_split_table(tmp_path / "data.csv", USER_ROWS)
    table = corpora.prepare_table(config_for(path, format="table", split_column="split"))
    assert list(table.columns) == corpora.COLUMNS
    assert dict(zip(table["text"], table["split"])) == {
        "京都の寺に行った。": "train", "電池が切れた。": "train", "祇園祭を見た。": "train",
        "嵐山を歩いた。": "validation", "機種変更した。": "validation",
        "画面が大きい。": "test", "清水寺に登った。": "test"}
    # the fractions and the seed draw nothing: another seed gives the same table
    other = corpora.prepare_table(config_for(path, seed=7, format="table", split_column="split", test_fraction=0.5))
    pd.testing.assert_frame_equal(table, other)


def test_jsonl_split_column(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": label, "part": s}, ensure_ascii=False) + "\n"
                            for t, label, s in USER_ROWS), encoding="utf-8")
    table = corpora.prepare_table(config_for(path, format="table", split_column="part"))
    assert table.groupby("split").size().to_dict() == {"test": 2, "train": 3, "validation": 2}


def test_unknown_split_value_names_file_line_and_key(tmp_path):
    path = write_split_table(tmp_path / "data.csv", USER_ROWS[:2] + [("三つ目。", "Kyoto", "holdout")])
    with pytest.raises(PipelineError) as caught:
        corpora.prepare_table(config_for(path, format="table", split_column="split"))
    message = str(caught.value)
    assert f"{path}:4: unknown split 'holdout' in column 'split' (corpus.split_column)" in message
    assert "train, validation (or valid, dev) or test" in message and "\n" not in message


def test_missing_split_column_lists_the_columns(tmp_path):
    path = write_split_table(tmp_path / "data.csv", USER_ROWS)
    with pytest.raises(PipelineError, match=r"no column 'fold' \(corpus.split_column\); available: text, label, split"):
        corpora.prepare_table(config_for(path, format="table", split_column="fold"))


@pytest.mark.parametrize("missing, fragment", [("train", "no training rows"), ("test", "no test rows")])
def test_a_missing_train_or_test_split_is_an_error(tmp_path, missing, fragment):
    rows = [(t, label, s) for t, label, s in USER_ROWS if split_name(s) != missing]
    path = write_split_table(tmp_path / "data.csv", rows)
    with pytest.raises(PipelineError) as caught:
        corpora.prepare_table(config_for(path, format="table", split_column="split"))
    assert str(caught.value).startswith(f"{path}: {fragment} (column 'split' (corpus.split_column))")
    if missing == "test":
        assert "`pipeline evaluate` scores exactly the test rows" in str(caught.value)


def test_no_validation_rows_is_fine(tmp_path):
    rows = [(t, label, s) for t, label, s in USER_ROWS if split_name(s) != "validation"]
    table = corpora.prepare_table(config_for(write_split_table(tmp_path / "d.csv", rows), format="table",
                                             split_column="split"))
    assert set(table["split"]) == {"train", "test"}


def test_a_test_label_unseen_in_training_names_the_row(tmp_path):
    path = write_split_table(tmp_path / "data.csv", USER_ROWS + [("試合に勝った。", "Sports", "test"),
                                                                 ("延長戦だった。", "Sports", "dev")])
    with pytest.raises(PipelineError) as caught:
        corpora.prepare_table(config_for(path, format="table", split_column="split"))
    assert str(caught.value).startswith(f"{path}:9: label 'Sports' of this test row never occurs in the training "
                                        "rows (2 such row(s))")


def test_duplicates_are_dropped_within_a_split_and_kept_across_splits(tmp_path, caplog):
    rows = USER_ROWS + [("京都の寺に行った。", "Kyoto", "train"), ("京都の寺に行った。", "Kyoto", "test"),
                        ("ｷｮｳﾄの寺に行った。", "Kyoto", "test"), ("京都の寺に行った。", "Kyoto", "test")]
    path = write_split_table(tmp_path / "data.csv", rows)
    with caplog.at_level("WARNING"):
        table = corpora.prepare_table(config_for(path, format="table", split_column="split"))
    counts = table[table["text"] == "京都の寺に行った。"].groupby("split").size().to_dict()
    assert counts == {"train": 1, "test": 1}  # one copy per split; the test row stays
    assert "キョウトの寺に行った。" in set(table.loc[table["split"] == "test", "text"])
    assert "1 test row(s) repeat a training sentence" in caplog.text
    kept = corpora.prepare_table(config_for(path, format="table", split_column="split", deduplicate=False))
    assert len(kept) == len(rows)


def write_split_folder(root: Path) -> Path:
    root.mkdir()
    write_csv_rows = [(t, label) for t, label, s in USER_ROWS if split_name(s) == "train"]
    (root / "corpus.train.csv").write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in write_csv_rows),
                                           encoding="utf-8")
    (root / "dev.tsv").write_text("text\tlabel\n嵐山を歩いた。\tKyoto\n機種変更した。\tKeitai\n", encoding="utf-8")
    (root / "sub").mkdir()
    (root / "sub" / "news_test.jsonl").write_text(
        '{"text": "画面が大きい。", "label": "Keitai"}\n{"text": "清水寺に登った。", "label": "Kyoto"}\n',
        encoding="utf-8")
    (root / "notes.csv").write_text("not,a,split\n", encoding="utf-8")  # no split in its name: not read
    return root


def test_a_folder_with_one_table_per_split_keeps_those_splits(tmp_path):
    root = write_split_folder(tmp_path / "tables")
    config = config_for(root, format="table")
    table = corpora.prepare_table(config)
    assert table.groupby("split")["text"].apply(sorted).to_dict() == {
        "train": sorted(["京都の寺に行った。", "電池が切れた。", "祇園祭を見た。"]),
        "validation": ["嵐山を歩いた。", "機種変更した。"], "test": ["清水寺に登った。", "画面が大きい。"]}
    assert table["doc_id"].is_unique  # row numbers of different files are different documents
    assert corpora.input_files(config.corpus) == [root / "corpus.train.csv", root / "dev.tsv",
                                                  root / "sub" / "news_test.jsonl"]


def test_a_folder_of_tables_without_a_test_file_or_with_a_split_column(tmp_path):
    root = write_split_folder(tmp_path / "tables")
    with pytest.raises(PipelineError, match="takes each row's split from its file's name"):
        corpora.prepare_table(config_for(root, format="table", split_column="split"))
    (root / "sub" / "news_test.jsonl").unlink()
    with pytest.raises(PipelineError, match=r"no test rows \(file names\)"):
        corpora.prepare_table(config_for(root, format="table"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "data.csv").write_text("text,label\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="no table named for a split; name the files like train.csv"):
        corpora.prepare_table(config_for(empty, format="table"))


def test_split_column_needs_the_table_format():
    with pytest.raises(PipelineError, match="config key 'corpus.split_column'"):
        CorpusConfig(format="knb", split_column="split").validate()


def test_a_text_folder_with_train_dev_test_files_keeps_its_splits_and_repeated_lines(tmp_path):
    for name, lines in (("lm.train.txt", "a b\na b\nc d\n"), ("lm.dev.txt", "e f\n"), ("lm.test.txt", "a b\n")):
        (tmp_path / name).write_text(lines, encoding="utf-8")
    table = corpora.prepare_table(config_for(tmp_path, format="text"))
    assert list(zip(table["text"], table["split"])) == [("e f", "validation"), ("a b", "test"), ("a b", "train"),
                                                        ("a b", "train"), ("c d", "train")]
