"""A trained language model's validation perplexity: what ``pipeline tune`` minimises.

Training already measures it after every epoch (``val_perplexity`` in ``history.csv``); the run keeps
the best epoch's weights (early stopping restores them, the checkpoint saves them), so the score is
that epoch's value. The test split is never read.
"""

from __future__ import annotations

import math

import pandas as pd

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import Paths, RunPaths


def validation_scores(config: Config, paths: Paths) -> dict[str, float]:
    """``{"perplexity"}``: the lowest per-epoch validation perplexity in the run's ``history.csv``."""
    history = pd.read_csv(RunPaths(paths.run).history)
    if "val_perplexity" not in history:
        raise PipelineError(f"{config.corpus.path}: no validation split to score trials on; set "
                            "corpus.validation_fraction > 0")
    values = [value for value in history["val_perplexity"] if math.isfinite(value)]
    return {"perplexity": min(values) if values else math.inf}
