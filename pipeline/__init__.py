"""A Japanese NLP pipeline on Keras: corpus -> GiNZA tokens -> vectors -> recurrent models.

From Python, everything starts with :func:`load_run`::

    from pipeline import load_run

    run = load_run("saved_models/default")
    run.classify(["週末は嵐山で紅葉を見ました。"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["load_run", "__version__"]

if TYPE_CHECKING:
    from pathlib import Path

    from pipeline.runs import Run


def load_run(folder: str | Path) -> Run:
    """Load a run folder (``saved_models/<run>/``) once; its methods classify, explain, generate or read.

    TensorFlow and the tokenizer load here, not at ``import pipeline``. A missing or damaged folder raises
    :class:`pipeline.errors.PipelineError` with a one-line message. See :class:`pipeline.runs.Run`.
    """
    from pipeline.runs import load_run as load

    return load(folder)
