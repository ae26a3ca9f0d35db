"""Kneser-Ney n-gram baseline: fit and scoring time, perplexity, modified against fixed discounts.

For each order, ``pipeline.language_model.ngram.KneserNeyModel`` is fitted on the training text
and scored on the test text twice: with modified discounts (three per order, estimated from the
count-of-counts; the default) and with the reference, one fixed discount 0.75 at every order
(plain interpolated Kneser-Ney, this module's model before). The ratio column is modified /
fixed perplexity: below 1 means the modified discounts predict the test text better. Each
variant is fitted and scored ``--repeats`` times; the fastest time is shown (the machine is shared).

Data:

* default: the Aozora language-model split (``../shared/corpora/aozora/lm/aozora.{train,test}.txt``
  beside the repository), one sentence per line, split into *characters* (no tokenizer needed);
* ``--synthetic``: Zipf-distributed random words (default 1 M training tokens, 22 k vocabulary,
  the size of the word-level benchmark corpus); no structure, so nearly every 3- and 4-gram is
  new: the worst case for memory and time.

Usage::

    .venv/bin/python benchmarks/ngram_speed.py                      # orders 3 and 4, about a minute on 2 cores
    .venv/bin/python benchmarks/ngram_speed.py --orders 1 2 3 4 5
    .venv/bin/python benchmarks/ngram_speed.py --synthetic --orders 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run from anywhere without installing

import numpy as np  # noqa: E402

from pipeline.language_model.ngram import KneserNeyModel  # noqa: E402

AOZORA = REPOSITORY.parent / "shared" / "corpora" / "aozora" / "lm"


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=AOZORA / "aozora.train.txt",
                        help="training text, a sentence per line")
    parser.add_argument("--test", type=Path, default=AOZORA / "aozora.test.txt", help="test text, a sentence per line")
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 4], help="n-gram orders to compare")
    parser.add_argument("--fixed-discount", type=float, default=0.75, help="the reference's fixed discount")
    parser.add_argument("--synthetic", action="store_true", help="Zipf random words instead of the text files")
    parser.add_argument("--tokens", type=int, default=1_000_000, help="--synthetic: training tokens")
    parser.add_argument("--vocabulary", type=int, default=22_000, help="--synthetic: vocabulary size")
    parser.add_argument("--seed", type=int, default=0, help="--synthetic: random seed")
    parser.add_argument("--repeats", type=int, default=3, help="fits and scorings per variant; the fastest is shown")
    return parser.parse_args(argv)


def character_sentences(path: Path) -> list[list[str]]:
    """One sentence per non-empty line, as a list of characters."""
    return [list(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def synthetic_sentences(tokens: int, vocabulary: int, seed: int) -> list[list[int]]:
    """Sentences of 5-40 Zipf(1.1)-distributed word ids below ``vocabulary``, ``tokens`` words in all."""
    rng = np.random.default_rng(seed)
    words = rng.zipf(1.1, size=tokens * 2)
    words = words[words < vocabulary][:tokens].tolist()
    lengths = rng.integers(5, 41, size=tokens // 5 + 1)
    sentences, start = [], 0
    for length in lengths:
        if start >= len(words):
            break
        sentences.append(words[start:start + int(length)])
        start += int(length)
    return sentences


def main(argv=None):
    arguments = parse_arguments(argv)
    if arguments.synthetic:
        everything = synthetic_sentences(arguments.tokens * 11 // 10, arguments.vocabulary, arguments.seed)
        cut = len(everything) * 10 // 11
        train, test = everything[:cut], everything[cut:]
        source = f"synthetic Zipf words, vocabulary < {arguments.vocabulary}"
    else:
        train, test = character_sentences(arguments.train), character_sentences(arguments.test)
        source = f"{arguments.train.name} / {arguments.test.name}, characters"
    vocabulary = {token for sentence in train for token in sentence}
    print(f"data: {source}: train {len(train)} sentences, {sum(map(len, train))} tokens, "
          f"vocabulary {len(vocabulary)}; test {len(test)} sentences, {sum(map(len, test)) + len(test)} "
          f"predicted tokens")
    print(f"{'order':>5} {'discount':>9} {'fit s':>7} {'score s':>8} {'test ppl':>9} {'ratio':>6}")
    for order in arguments.orders:
        perplexities = {}
        for discount in (arguments.fixed_discount, "modified"):
            fit_seconds, score_seconds = [], []
            for _ in range(arguments.repeats):
                started = time.perf_counter()
                model = KneserNeyModel(order=order, discount=discount).fit(train)
                fitted = time.perf_counter()
                perplexities[discount] = model.perplexity(test)
                scored = time.perf_counter()
                fit_seconds.append(fitted - started)
                score_seconds.append(scored - fitted)
                del model
            ratio = perplexities[discount] / perplexities[arguments.fixed_discount]
            print(f"{order:>5} {discount:>9} {min(fit_seconds):>7.2f} {min(score_seconds):>8.2f} "
                  f"{perplexities[discount]:>9.3f} {ratio:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
