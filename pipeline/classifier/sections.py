"""The config section of the classifier task: ``[classify]``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassifyConfig:
    """Sentences ``pipeline run`` classifies after training, to show the model at work."""

    examples: tuple[str, ...] = ()

    def validate(self) -> None:
        pass
