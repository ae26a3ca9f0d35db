"""The config section of the reading task: ``[reading]``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.sections import check, one_of


@dataclass(frozen=True)
class ReadingConfig:
    """``model.task = "reading"``: the sentence -> katakana reading encoder–decoder (``pipeline.seq2seq``).

    The encoder is ``[[model.layers]]`` over ``model.char_dim`` character embeddings; the additive
    score's size is ``model.attention_units``; ``train.max_length`` caps the training sentences' characters.
    """

    attention: str = "additive"  # none (one fixed vector C, Sutskever et al. 2014) | additive | multiplicative
    decoder: str = "lstm"  # lstm | gru
    decoder_units: int = 128
    beam_size: int = 4  # evaluate and `pipeline read`; 1 = greedy
    length_penalty: float = 0.6  # beam score = log p / length ** length_penalty; 0: raw log p (favours short)
    examples: tuple[str, ...] = ()  # sentences `pipeline run` reads aloud after evaluating

    def validate(self) -> None:
        one_of("reading.attention", self.attention, ("none", "additive", "multiplicative"))
        one_of("reading.decoder", self.decoder, ("lstm", "gru"))
        check(self.decoder_units >= 1, "reading.decoder_units", self.decoder_units, ">= 1")
        check(self.beam_size >= 1, "reading.beam_size", self.beam_size, ">= 1")
        check(0 <= self.length_penalty <= 2, "reading.length_penalty", self.length_penalty, "in [0, 2]")
