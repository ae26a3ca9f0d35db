"""Character n-gram ranges for the linear member and baseline: TF-IDF + logistic regression per range, one table.

The ensemble's char member and the strongest cheap baseline use TF-IDF of character 1-3-grams
(``pipeline.classifier.ensemble.char_vectorizer``). This checks that choice on a tokenized corpus: for each
range (and sklearn's word-bounded ``char_wb``), the same sublinear TF-IDF and the same ``saga`` logistic
regression, C chosen from the same grid (``C_GRID``) by validation macro-F1, then test accuracy and macro-F1.
It reads ``tokens.parquet`` of a work folder (its ``text``, ``label`` and ``split`` columns, the split the
pipeline made), so run ``pipeline tokenize`` with the config first.

Usage::

    .venv/bin/python benchmarks/char_ngram_ranges.py work/knb_blog
    .venv/bin/python benchmarks/char_ngram_ranges.py WORK/authors     # after configs/aozora_authors.toml's tokenize
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run from anywhere without installing

RANGES = (("char", (1, 3)), ("char", (1, 4)), ("char", (1, 5)), ("char", (2, 5)), ("char_wb", (1, 4)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a work folder holding tokens.parquet (work/<corpus>)")
    arguments = parser.parse_args(argv)

    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from pipeline.classifier.ensemble import C_GRID

    table = pd.read_parquet(arguments.work / "tokens.parquet", columns=["text", "label", "split"])
    index = {label: number for number, label in enumerate(sorted(table["label"].unique()))}
    parts = {split: table[table["split"] == split] for split in ("train", "validation", "test")}
    targets = {split: part["label"].map(index).to_numpy() for split, part in parts.items()}
    print(f"{arguments.work}: {', '.join(f'{len(part)} {split}' for split, part in parts.items())} sentences, "
          f"{len(index)} labels; C from {C_GRID} by validation macro-F1")
    print(f"{'features':<14} {'count':>9} {'C':>6} {'val F1':>7} {'test acc':>9} {'test F1':>8} {'seconds':>8}")
    for analyzer, orders in RANGES:
        started = time.perf_counter()
        vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=orders, sublinear_tf=True)
        features = {split: vectorizer.fit_transform(part["text"]) if split == "train" else
                    vectorizer.transform(part["text"]) for split, part in parts.items()}
        classifier = LogisticRegression(solver="saga", max_iter=1000, warm_start=True, random_state=0)
        best = None
        for inverse_regularization in C_GRID:
            classifier.set_params(C=inverse_regularization).fit(features["train"], targets["train"])
            score = f1_score(targets["validation"], classifier.predict(features["validation"]), average="macro")
            if best is None or score > best[0]:
                predicted = classifier.predict(features["test"])
                best = (score, inverse_regularization, accuracy_score(targets["test"], predicted),
                        f1_score(targets["test"], predicted, average="macro"))
        name = f"{analyzer} {orders[0]}-{orders[1]}"
        print(f"{name:<14} {features['train'].shape[1]:>9} {best[1]:>6g} {best[0]:>7.3f} {best[2]:>9.3f} "
              f"{best[3]:>8.3f} {time.perf_counter() - started:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
