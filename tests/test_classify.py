"""Tests of ``load_run`` and ``classify`` through the Python API on a tiny GRU trained on the shipped corpus.

The corpus is vectorized once per session into pytest's temporary folder (the same
folder ``tests/test_train.py`` uses: whichever module comes second finds the
stages up to date); one run is trained per module and copied before any damage.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline import config as config_module
from pipeline.classify import classify, load_run
from pipeline.errors import PipelineError
from pipeline.paths import Paths, RunPaths
from pipeline.stages import run_stage
from pipeline.train import train_classifier

REPOSITORY = Path(__file__).resolve().parents[1]
SMALL_CONFIG = REPOSITORY / "tests" / "configs" / "small.toml"
LABELS = ["Gourmet", "Keitai", "Kyoto", "Sports"]
SENTENCES = [
    "新しいスマホのバッテリーがすぐ切れて困っています。",
    "週末は嵐山で紅葉を見てから湯豆腐を食べました。",
    "昨日の試合は延長戦の末にサヨナラ勝ちでした！",
    "駅前の新しいラーメン屋は、スープが濃厚で麺ももちもちしていて、何度でも通いたくなる味でした。",
    "雨。",
]


def small_config(work_dir: Path, models_dir: Path, *overrides: str):
    return config_module.load(SMALL_CONFIG, [
        f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"',
        f'work_dir="{work_dir}"',
        f'models_dir="{models_dir}"',
        *overrides,
    ])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(config, run folder) of the small config, trained once for this module."""
    work_dir = tmp_path_factory.getbasetemp() / "small-work"  # shared with tests/test_train.py
    config = small_config(work_dir, tmp_path_factory.mktemp("classify-models"))
    run_stage("vectorize", config)
    train_classifier(config, Paths.from_config(config))
    return config, Paths.from_config(config).run


@pytest.fixture(scope="module")
def run(trained):
    return load_run(trained[1])


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A copy of the trained run folder that a test may damage."""
    return Path(shutil.copytree(trained[1], tmp_path / "run"))


# ------------------------------------------------------------------ load_run
def test_load_run_restores_model_config_vocab_and_labels(trained, run):
    config, folder = trained
    assert run.folder == folder
    assert run.config == config
    assert run.labels == LABELS
    assert run.vocab.tokens[:2] == ["<pad>", "<unk>"]
    assert run.model.output_shape == (None, len(LABELS))


def assert_one_line_error(folder: Path, match: str) -> str:
    with pytest.raises(PipelineError) as error:
        load_run(folder)
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    assert match in message, message
    return message


def test_load_run_missing_folder(tmp_path):
    message = assert_one_line_error(tmp_path / "no-such-run", "run folder not found")
    assert "no-such-run" in message


def test_load_run_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(tmp_path / "empty", "model.keras")


def test_load_run_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"PK")
    assert_one_line_error(tmp_path / "model.keras", "run folder not found")


@pytest.mark.parametrize("name", ["model.keras", "config.json", "vocab.json", "labels.json"])
def test_load_run_missing_file(run_copy, name):
    (run_copy / name).unlink()
    assert_one_line_error(run_copy, name)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "truncated-model": ("model.keras", truncate),
    "empty-model": ("model.keras", lambda path: path.write_bytes(b"")),
    "text-model": ("model.keras", lambda path: path.write_text("not a keras archive\n", encoding="utf-8")),
    "truncated-config": ("config.json", truncate),
    "config-unknown-key": ("config.json", lambda path: path.write_text(
        json.dumps({**json.loads(path.read_text(encoding="utf-8")), "sed": 1}), encoding="utf-8")),
    "truncated-labels": ("labels.json", truncate),
    "truncated-vocab": ("vocab.json", truncate),
    "vocab-not-a-table": ("vocab.json", lambda path: path.write_text("[1, 2, 3]", encoding="utf-8")),
    "labels-not-a-list": ("labels.json", lambda path: path.write_text('{"Gourmet": 0}', encoding="utf-8")),
    "labels-fewer-than-outputs": ("labels.json", lambda path: path.write_text('["Gourmet"]', encoding="utf-8")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_load_run_corrupt_file(run_copy, damage):
    name, spoil = DAMAGE[damage]
    spoil(run_copy / name)
    assert_one_line_error(run_copy, name)


def test_load_run_leaves_a_corrupt_folder_untouched(run_copy):
    truncate(run_copy / "model.keras")
    before = {path.name: path.read_bytes() for path in run_copy.iterdir() if path.is_file()}
    with pytest.raises(PipelineError):
        load_run(run_copy)
    assert {path.name: path.read_bytes() for path in run_copy.iterdir() if path.is_file()} == before


# ------------------------------------------------------------------ classify
def assert_classified(result: dict, text: str, labels: list[str]) -> None:
    assert result["text"] == text
    assert not result.get("error")
    probabilities = result["probabilities"]
    assert list(probabilities) == labels
    values = np.array(list(probabilities.values()))
    assert np.all(values >= 0) and abs(values.sum() - 1.0) < 1e-5
    assert result["label"] == labels[int(values.argmax())]
    assert result["probability"] == pytest.approx(values.max(), abs=1e-7)
    assert 0.0 <= result["unknown_token_share"] <= 1.0


def test_classify_returns_a_label_and_probabilities_that_sum_to_one(run):
    results = classify(run, SENTENCES)
    assert len(results) == len(SENTENCES)
    for text, result in zip(SENTENCES, results):
        assert_classified(result, text, LABELS)


def test_empty_texts_get_an_error_and_the_others_are_still_classified(run):
    texts = [SENTENCES[0], "", SENTENCES[1], "   \t ", SENTENCES[2]]
    results = classify(run, texts)
    assert len(results) == len(texts)
    for position in (1, 3):
        assert results[position]["text"] == texts[position]
        assert "empty" in results[position]["error"]
        assert "label" not in results[position]
    for position in (0, 2, 4):
        assert_classified(results[position], texts[position], LABELS)
    alone = classify(run, [SENTENCES[0], SENTENCES[1], SENTENCES[2]])
    for got, want in zip([results[0], results[2], results[4]], alone):
        np.testing.assert_allclose(list(got["probabilities"].values()), list(want["probabilities"].values()),
                                   atol=1e-5)


def test_only_empty_texts(run):
    results = classify(run, ["", " "])
    assert [bool(result["error"]) for result in results] == [True, True]


def test_classify_is_deterministic_and_independent_of_batching(run):
    """Padding a sentence into a batch of longer ones must not change its probabilities (masking)."""
    one_by_one = [classify(run, [text])[0]["probabilities"] for text in SENTENCES]
    batched = [result["probabilities"] for result in classify(run, SENTENCES, batch_size=64)]
    for alone, together in zip(one_by_one, batched):
        np.testing.assert_allclose(list(alone.values()), list(together.values()), atol=1e-5)


def test_classify_batches_of_different_lengths(run):
    """Two first batches of equal width, then a wider one: every batch must be accepted.

    Keras infers the input signature of a PyDataset from its first two batches; when both have the
    same number of timesteps that width becomes fixed and a longer later batch is rejected.
    """
    texts = ["雨。"] * 4 + [SENTENCES[3]]
    results = classify(run, texts, batch_size=2)
    for text, result in zip(texts, results):
        assert_classified(result, text, LABELS)


def test_classify_normalises_like_the_training_data(run):
    """Full-width Latin letters and digits are NFKC-normalised before tokenizing, as in `prepare`."""
    wide, narrow = classify(run, ["ｉＰｈｏｎｅ１５を買いました。", "iPhone15を買いました。"])
    np.testing.assert_allclose(list(wide["probabilities"].values()), list(narrow["probabilities"].values()),
                               atol=1e-6)


def test_classify_a_run_folder_moved_elsewhere(run_copy, tmp_path):
    moved = shutil.move(str(run_copy), str(tmp_path / "moved" / "run"))
    assert RunPaths(Path(moved)).model.is_file()
    results = classify(load_run(moved), SENTENCES[:2])
    for text, result in zip(SENTENCES[:2], results):
        assert_classified(result, text, LABELS)
