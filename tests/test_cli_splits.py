"""A user's own test set through the real CLI: a folder with train/dev/test tables, scored exactly as given.

``pipeline run`` on a table corpus split by file name (rows from the shipped KNB corpus) must keep
every test row, a test sentence that repeats a training sentence included (with a warning), score
exactly those rows, and print the character n-gram baseline and the model's gap to it.
"""

import json
import re

import pandas as pd
import pytest
from helpers import REPOSITORY, TEST_CONFIGS, assert_success, cli_here, folders

from pipeline.text.corpora import normalize, read_knb


def write_user_split(root):
    """train.csv / dev.csv / test.csv from the shipped corpus, split by document; returns the test texts."""
    rows = read_knb(REPOSITORY / "corpora" / "knb_blog")
    document_number = rows["doc_id"].rank(method="dense").astype(int)
    parts = {"test": rows[document_number % 6 == 0], "dev": rows[document_number % 6 == 1],
             "train": rows[document_number % 6 > 1]}
    parts["test"] = pd.concat([parts["test"], parts["train"].head(1)])  # a test row that repeats a training row
    root.mkdir()
    for name, part in parts.items():
        part[["text", "label"]].to_csv(root / f"{name}.csv", index=False)
    return [normalize(text) for text in parts["test"]["text"]]


@pytest.mark.slow
def test_run_scores_exactly_the_users_test_rows(tmp_path):
    test_texts = write_user_split(tmp_path / "corpus")
    result = cli_here("run", str(TEST_CONFIGS / "e2e.toml"), *folders(tmp_path), "--set", 'corpus.format="table"',
                      "--set", f'corpus.path="{tmp_path / "corpus"}"', "--set", "train.epochs=2",
                      "--set", "classify.examples=[]")
    assert_success(result)
    assert "1 test row(s) repeat a training sentence; kept in test" in result.stderr
    prepared = pd.read_parquet(tmp_path / "work" / "corpus" / "prepared.parquet")
    assert prepared.loc[prepared["split"] == "test", "text"].tolist() == test_texts
    metrics = json.loads((tmp_path / "models" / "e2e" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["test_size"] == len(test_texts)
    char = metrics["baselines"]["char_tfidf_logistic_regression"]
    assert char["C_chosen_on"] == "validation" and 0.5 < char["accuracy"] <= 1
    assert re.search(rf"^  char 1-3-gram TF-IDF \+ logistic regression \(C={char['C']:g}, validation\): "
                     rf"accuracy {char['accuracy']:.3f}  macro-F1 {char['macro_f1']:.3f}$", result.stdout, re.M)
    gap = metrics["accuracy"] - char["accuracy"]
    assert "  model − char TF-IDF: accuracy " + f"{gap:+.3f}".replace("-", "−") in result.stdout
