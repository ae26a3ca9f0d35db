"""A trained classifier's scores on the validation split: what ``pipeline tune`` maximises.

The test split stays untouched until the search is over (``pipeline run`` on the best config scores
it). The scores are those of the run as it classifies: with ``model.ensemble = "char_ngram"`` the
mixture of the recurrent model and the character n-gram member, with the weight the run chose.
"""

from __future__ import annotations

import pandas as pd

from pipeline.classifier.ensemble import CharNgramModel, ensemble_weight, mix
from pipeline.classifier.evaluate import classification_metrics
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import Paths
from pipeline.runs import load_run
from pipeline.text.batches import SequenceBatches
from pipeline.text.features import split_inputs
from pipeline.text.vectors import EncodedSplits


def validation_scores(config: Config, paths: Paths) -> dict[str, float]:
    """``{"macro_f1", "accuracy"}`` of the run ``paths.run`` on the validation split of ``paths.ids``."""
    splits = EncodedSplits.load(paths.ids)
    sequences, targets = splits.sequences.get("validation", []), splits.targets.get("validation")
    if not len(sequences):
        raise PipelineError(f"{config.corpus.path}: no validation split to score trials on; set "
                            "corpus.validation_fraction > 0")
    extra = split_inputs(config.model, paths.tokens, {"validation": sequences}, config.train.max_length)
    batches = SequenceBatches(sequences, None, config.train.batch_size, config.train.max_length,
                              **extra["validation"])
    probabilities = batches.predict(load_run(paths.run).model)  # (validation, classes)
    if config.model.ensemble == "char_ngram":
        tokens = pd.read_parquet(paths.tokens, columns=["text", "split"])
        texts = tokens.loc[tokens["split"] == "validation", "text"].tolist()
        member = CharNgramModel.load(paths.run)
        probabilities = mix(probabilities, member.probabilities(texts), ensemble_weight(paths.run))
    scores = classification_metrics(targets, probabilities.argmax(axis=1), splits.labels)
    return {"macro_f1": scores["macro_f1"], "accuracy": scores["accuracy"]}
