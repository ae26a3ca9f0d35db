"""The config section of ``pipeline hopfield``: ``[hopfield]``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.sections import check, fraction, one_of


@dataclass(frozen=True)
class HopfieldConfig:
    """``pipeline hopfield``: store glyphs in a Hopfield network, recall one from a corrupted cue (lecture 001)."""

    characters: str = "カナ"  # one glyph each; Hebb's rule needs glyphs that overlap little (README)
    cue_character: str = ""  # the glyph to corrupt and recall; "" = the first of characters
    glyph_size: int = 24  # glyphs are glyph_size x glyph_size pixels: N = glyph_size² units
    stroke_width: float = 0.06  # outline added to the strokes, a fraction of the glyph box (more ink, less overlap)
    rule: str = "hebbian"  # hebbian (W = 1/N Σ ξξᵀ) | projection (W = X X⁺, recalls correlated glyphs too)
    corruption: str = "half"  # half: the lower half replaced by noise (the lecture's 'T') | random
    noise_fraction: float = 0.3  # corruption = "random": share of pixels set to random ±1
    update: str = "asynchronous"  # asynchronous (energy never rises) | synchronous (may 2-cycle)
    max_steps: int = 10  # sweeps (or synchronous steps) at most
    capacity_units: int = 100  # --capacity: N for the random-pattern measurement
    capacity_max_load: float = 0.25  # --capacity: loads α = P/N tried from capacity_load_step up to this
    capacity_load_step: float = 0.01
    capacity_trials: int = 10  # --capacity: independent networks per load
    capacity_threshold: float = 0.99  # --capacity: share of bits still correct after relaxing from a stored pattern

    def validate(self) -> None:
        check(len(self.characters) >= 1, "hopfield.characters", self.characters, "one or more characters")
        check(len(set(self.characters)) == len(self.characters), "hopfield.characters", self.characters,
               "characters without repeats")
        check(self.cue_character == "" or (len(self.cue_character) == 1 and self.cue_character in self.characters),
               "hopfield.cue_character", self.cue_character, "\"\" or one of hopfield.characters")
        check(4 <= self.glyph_size <= 64, "hopfield.glyph_size", self.glyph_size, "in [4, 64]")
        check(0 <= self.stroke_width <= 0.5, "hopfield.stroke_width", self.stroke_width, "in [0, 0.5]")
        one_of("hopfield.rule", self.rule, ("hebbian", "projection"))
        one_of("hopfield.corruption", self.corruption, ("half", "random"))
        fraction("hopfield.noise_fraction", self.noise_fraction, high_open=False)
        one_of("hopfield.update", self.update, ("asynchronous", "synchronous"))
        check(self.max_steps >= 1, "hopfield.max_steps", self.max_steps, ">= 1")
        check(self.capacity_units >= 10, "hopfield.capacity_units", self.capacity_units, ">= 10")
        check(0 < self.capacity_load_step <= self.capacity_max_load <= 1, "hopfield.capacity_max_load",
               self.capacity_max_load, "in [capacity_load_step, 1]")
        check(self.capacity_trials >= 1, "hopfield.capacity_trials", self.capacity_trials, ">= 1")
        fraction("hopfield.capacity_threshold", self.capacity_threshold, low_open=True, high_open=False)
