"""Kneser-Ney n-gram baseline: fit and scoring time of the NumPy model against the pure-Python one it replaced.

For each order, ``pipeline.language_model.ngram.KneserNeyModel`` (counts in NumPy arrays, a whole
text scored at once) and ``tests/kneser_ney_reference.py`` (the pure-Python ``Counter`` model it
replaced) are fitted on the same training text and score the same test text, in this process, one
after the other. The table shows fit, score and total seconds (the fastest of ``--repeats``: the
machine is shared), the test perplexity of both (equal to 1e-9: the same estimator) and the
speed-up, pure-Python total / NumPy total.

Data (``--tokens``):

* ``words`` (default): the Aozora language-model split (``../shared/corpora/aozora/lm/aozora.{train,test}.txt``
  beside the repository), one sentence per line, tokenized as the language-model task does by
  default (GiNZA's words through the SudachiPy fast path, ``pipeline.text.tokenize.make_tokenizer``;
  a few seconds), words seen fewer than ``--min-count`` times in training mapped to ``<unk>``
  (``vectorize.min_count`` of the LM configs: 2);
* ``characters``: the same files split into characters (no tokenizer);
* ``synthetic``: Zipf-distributed random words (default 1 M training tokens, 22 k vocabulary);
  no structure, so nearly every 3- and 4-gram is new: the worst case for memory and time.

Usage::

    .venv/bin/python benchmarks/ngram_speed.py                      # Aozora words, orders 3 and 4
    .venv/bin/python benchmarks/ngram_speed.py --tokens characters --orders 1 2 3 4 5
    .venv/bin/python benchmarks/ngram_speed.py --tokens synthetic --orders 4
    .venv/bin/python benchmarks/ngram_speed.py --discount 0.75      # plain KN, one fixed discount
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run from anywhere without installing
sys.path.insert(0, str(REPOSITORY / "tests"))  # the pure-Python reference model

import numpy as np  # noqa: E402
from kneser_ney_reference import ReferenceKneserNeyModel  # noqa: E402

from pipeline.language_model.ngram import KneserNeyModel  # noqa: E402

AOZORA = REPOSITORY.parent / "shared" / "corpora" / "aozora" / "lm"
IMPLEMENTATIONS = (("NumPy", KneserNeyModel), ("pure Python", ReferenceKneserNeyModel))


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=AOZORA / "aozora.train.txt",
                        help="training text, a sentence per line")
    parser.add_argument("--test", type=Path, default=AOZORA / "aozora.test.txt", help="test text, a sentence per line")
    parser.add_argument("--tokens", choices=("words", "characters", "synthetic"), default="words",
                        help="what a token is (default: words, as the LM task tokenizes)")
    parser.add_argument("--min-count", type=int, default=2, help="words: training count below which a word is <unk>")
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 4], help="n-gram orders")
    parser.add_argument("--discount", default="modified", help="'modified' (default) or a fixed discount in (0, 1]")
    parser.add_argument("--synthetic-tokens", type=int, default=1_000_000, help="synthetic: training tokens")
    parser.add_argument("--vocabulary", type=int, default=22_000, help="synthetic: vocabulary size")
    parser.add_argument("--seed", type=int, default=0, help="synthetic: random seed")
    parser.add_argument("--repeats", type=int, default=2, help="fits and scorings per model; the fastest is shown")
    return parser.parse_args(argv)


def lines_of(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def word_sentences(path: Path) -> list[list[str]]:
    """One sentence per non-empty line, as the default ``[tokenize]`` settings' surface forms."""
    from pipeline.sections import TokenizeConfig
    from pipeline.text.tokenize import make_tokenizer

    return [row["surface"] for row in make_tokenizer(TokenizeConfig()).tokenize(lines_of(path))]


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


def load_data(arguments) -> tuple[list, list, set | None, str]:
    """``(train, test, vocabulary, description)``; vocabulary ``None``: every training token."""
    if arguments.tokens == "synthetic":
        everything = synthetic_sentences(arguments.synthetic_tokens * 11 // 10, arguments.vocabulary, arguments.seed)
        cut = len(everything) * 10 // 11
        return everything[:cut], everything[cut:], None, f"synthetic Zipf words, vocabulary < {arguments.vocabulary}"
    if arguments.tokens == "characters":
        train, test = ([list(line) for line in lines_of(path)] for path in (arguments.train, arguments.test))
        return train, test, None, f"{arguments.train.name} / {arguments.test.name}, characters"
    started = time.perf_counter()
    train, test = word_sentences(arguments.train), word_sentences(arguments.test)
    counts = Counter(word for sentence in train for word in sentence)
    vocabulary = {word for word, count in counts.items() if count >= arguments.min_count}
    return train, test, vocabulary, (f"{arguments.train.name} / {arguments.test.name}, GiNZA words (tokenized in "
                                     f"{time.perf_counter() - started:.1f} s), min_count {arguments.min_count}")


def measure(model_class, order, discount, train, test, vocabulary, repeats) -> tuple[float, float, float]:
    """``(fit seconds, score seconds, test perplexity)``, the fastest of ``repeats`` fits and scorings."""
    fit_seconds, score_seconds = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        model = model_class(order=order, discount=discount).fit(train, vocabulary=vocabulary)
        fitted = time.perf_counter()
        perplexity = model.perplexity(test)
        fit_seconds.append(fitted - started)
        score_seconds.append(time.perf_counter() - fitted)
        del model
    return min(fit_seconds), min(score_seconds), perplexity


def main(argv=None):
    arguments = parse_arguments(argv)
    discount = arguments.discount if arguments.discount == "modified" else float(arguments.discount)
    train, test, vocabulary, source = load_data(arguments)
    types = len(vocabulary) if vocabulary is not None else len({token for sentence in train for token in sentence})
    print(f"data: {source}: train {len(train)} sentences, {sum(map(len, train)):,} tokens, vocabulary {types:,}; "
          f"test {len(test)} sentences, {sum(map(len, test)) + len(test):,} predicted tokens; {discount} discounts")
    print(f"{'order':>5} {'model':>12} {'fit s':>7} {'score s':>8} {'total s':>8} {'test ppl':>10} {'speed-up':>9}")
    for order in arguments.orders:
        results = {name: measure(model_class, order, discount, train, test, vocabulary, arguments.repeats)
                   for name, model_class in IMPLEMENTATIONS}
        reference_total = sum(results["pure Python"][:2])
        for name, (fit, score, perplexity) in results.items():
            print(f"{order:>5} {name:>12} {fit:>7.2f} {score:>8.2f} {fit + score:>8.2f} {perplexity:>10.4f} "
                  f"{reference_total / (fit + score):>8.1f}x", flush=True)
        difference = abs(results["NumPy"][2] / results["pure Python"][2] - 1)
        print(f"{'':>5} perplexities differ by {difference:.1e} (relative)")


if __name__ == "__main__":
    main()
