"""The config section of ``pipeline diagnose``: ``[diagnose]``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.sections import check


@dataclass(frozen=True)
class DiagnoseConfig:
    """``pipeline diagnose gradients``: the norm of dL/dh_t over time on a long-memory task."""

    architectures: tuple[str, ...] = ("elman", "simple_rnn", "lstm", "gru")
    timesteps: int = 100  # sequence length; the target depends on the first memory_steps inputs only
    features: int = 8
    units: int = 32
    batch_size: int = 32
    memory_steps: int = 3
    train_steps: int = 20  # SGD steps before measuring again (0: only at initialisation)
    learning_rate: float = 0.05
    clipnorm: float = 1.0  # also measure after training with global-norm clipping; 0: off

    def validate(self) -> None:
        check(len(self.architectures) >= 1, "diagnose.architectures", self.architectures, "a non-empty list")
        for key in ("timesteps", "features", "units", "batch_size", "memory_steps"):
            check(getattr(self, key) >= 1, f"diagnose.{key}", getattr(self, key), ">= 1")
        check(self.memory_steps <= self.timesteps, "diagnose.memory_steps", self.memory_steps, "<= timesteps")
        check(self.train_steps >= 0, "diagnose.train_steps", self.train_steps, ">= 0")
        check(self.learning_rate > 0, "diagnose.learning_rate", self.learning_rate, "> 0")
        check(self.clipnorm >= 0, "diagnose.clipnorm", self.clipnorm, ">= 0")
