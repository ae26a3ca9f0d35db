"""``tokenize.method = "sentencepiece"`` through the real CLI: ``pipeline run`` learns the pieces from the training
split and keeps the model in the run folder; ``pipeline classify`` on that run cuts a sentence full of words the
corpus never had with the same model (the run folder alone: the work folder is deleted first)."""

import json
import shutil

import pytest
from helpers import KNB_LABELS, TEST_CONFIGS, assert_success, cli_here, folders

UNSEEN = "ヴィトゲンシュタインの論理哲学論考を鸚鵡と読みました。"


@pytest.mark.slow
def test_run_then_classify_new_text_with_the_runs_pieces(tmp_path):
    overrides = ["--set", 'tokenize.method="sentencepiece"', "--set", "tokenize.sp_vocab_size=2000",
                 "--set", "classify.examples=[]"]
    result = cli_here("run", str(TEST_CONFIGS / "small.toml"), *folders(tmp_path), *overrides)
    assert_success(result)
    work_model = tmp_path / "work" / "knb_blog" / "sentencepiece.model"
    run_folder = tmp_path / "models" / "small"
    assert (run_folder / "sentencepiece.model").read_bytes() == work_model.read_bytes()
    assert json.loads((run_folder / "config.json").read_text())["tokenize"]["method"] == "sentencepiece"

    shutil.rmtree(tmp_path / "work")  # the run folder is enough to cut new text
    result = cli_here("classify", "--model", str(run_folder), "--json", UNSEEN)
    assert_success(result)
    classified = json.loads(result.stdout.strip().splitlines()[0])
    assert classified["text"] == UNSEEN and classified["label"] in KNB_LABELS
    assert 0 < classified["unknown_token_share"] < 1  # 鸚鵡: characters no training piece holds
