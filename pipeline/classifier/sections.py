"""The config section of the classifier task: ``[classify]``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.sections import check


@dataclass(frozen=True)
class ClassifyConfig:
    """The classifier task's own settings: sentences ``pipeline run`` classifies after training, and how many
    training sentences the linear models (the char n-gram ensemble member, the TF-IDF baselines) are fitted on.

    The linear models hold their whole training matrix: about 1 KB a sentence for character 1-3-grams, and
    logistic regression goes over it once per iteration. ``linear_max_rows`` bounds both, so that memory does
    not grow with the corpus; past it they are fitted on a seeded uniform sample of that many training
    sentences, and tuned (C, the ensemble's weight) on as many validation sentences (test rows are all scored,
    a chunk at a time). 0 reads every row.
    """

    examples: tuple[str, ...] = ()
    linear_max_rows: int = 100_000

    def validate(self) -> None:
        check(self.linear_max_rows >= 0, "classify.linear_max_rows", self.linear_max_rows, ">= 0 (0: every row)")
