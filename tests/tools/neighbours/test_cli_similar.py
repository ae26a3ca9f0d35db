"""End to end: ``pipeline similar`` through the real CLI, in ja_ginza's vectors and in a trained run's embedding."""

import json
from pathlib import Path

from helpers import assert_success, assert_user_error, cli, cli_here

WORDS = ["京都", "大阪", "奈良", "携帯", "電話", "スマホ", "犬"]  # the tiny run's words after <pad>, <unk>


def lines(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


def test_lecture_examples_in_the_ja_ginza_vectors():
    result = cli_here("-q", "similar", "テスト", "--top", "5")
    assert_success(result)
    output = lines(result)
    assert output[0] == "テスト (ja_ginza)"
    assert output[1].split() == ["試験", "0.527"]  # the lecture's first neighbour, here too (cos 0.830 there)
    assert len(output) == 6
    result = cli_here("-q", "similar", "--characters", "--json", "薬", "すし")
    assert_success(result)
    medicine, sushi = (json.loads(line) for line in lines(result))
    characters = [neighbour["word"] for neighbour in medicine["neighbours"]]
    assert len(characters) == 10 and all(len(word) == 1 for word in characters)
    assert {"剤", "毒", "医"} <= set(characters)  # as in the lecture's 薬 -> 剤, 毒, 医, ...
    similarities = [neighbour["similarity"] for neighbour in medicine["neighbours"]]
    assert similarities == sorted(similarities, reverse=True)
    assert (sushi["found_as"], sushi["form"]) == ("norm", "寿司")  # すし is not in the table, its norm is


def test_unknown_word_is_a_one_line_error():
    assert_user_error(cli("similar", "ぴゃらぽ"), "'ぴゃらぽ'", "ja_ginza", stdout_empty=True)
    assert_user_error(cli("similar", "テスト", "--top", "0"), "--top")


def train_tiny_run(folder: Path) -> Path:
    """A classifier run trained for one epoch on frozen ja_ginza vectors of a few words, saved like `pipeline train`."""
    import numpy as np

    from pipeline import config as config_module
    from pipeline.classifier.model import build_classifier
    from pipeline.paths import RunPaths
    from pipeline.runs import write_run_metadata
    from pipeline.text.embeddings import ginza_lookup
    from pipeline.text.vocab import Vocabulary

    config = config_module.from_dict({"run_name": folder.name, "model": {
        "task": "classifier", "trainable_embeddings": False, "layers": [{"type": "gru", "units": 4}]}})
    vocab = Vocabulary(["<pad>", "<unk>", *WORDS])
    lookup, dimension = ginza_lookup("ja_ginza")
    matrix = np.zeros((len(vocab), dimension), np.float32)
    matrix[2:] = [lookup(word) for word in WORDS]
    model = build_classifier(config.model, matrix, 2, seed=0)
    ids = np.random.default_rng(0).integers(2, len(vocab), size=(16, 5))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(ids, (ids[:, 0] < 5).astype(np.int32), epochs=1, verbose=0)
    folder.mkdir(parents=True)
    model.save(RunPaths(folder).model)
    write_run_metadata(folder, config, vocab, ["旅行", "機械"])
    return folder


def test_neighbours_in_a_trained_run(tmp_path):
    run = train_tiny_run(tmp_path / "tiny")
    result = cli_here("-q", "similar", "--model", str(run), "--json", "--top", "2", "京都", "携帯", "スマホ")
    assert_success(result)
    kyoto, mobile, smartphone = (json.loads(line) for line in lines(result))
    # frozen ja_ginza vectors: the other place names are nearest to 京都, the phones to 携帯
    assert {n["word"] for n in kyoto["neighbours"]} == {"大阪", "奈良"}
    assert {n["word"] for n in mobile["neighbours"]} == {"電話", "スマホ"}
    assert all(not n["word"].startswith("<") for n in smartphone["neighbours"])  # <pad>, <unk> never listed
