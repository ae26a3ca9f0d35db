"""``pipeline hopfield``: glyphs stored in a Hopfield network and recalled from a corrupted cue (lecture 001).

Each character of ``[hopfield] characters`` is drawn in the Japanese font as a
``glyph_size x glyph_size`` bitmap of ±1 (:func:`pipeline.tools.hopfield.glyphs.render_glyphs`), flattened to a
pattern of ``N = glyph_size²`` units and stored (:class:`pipeline.layers.hopfield.HopfieldNetwork`).
One glyph is corrupted (its lower half replaced by random pixels, as the lecture's 'T', or a share
of random pixels) and the network relaxes from it; after every sweep the overlap
``m = (1/N) ξ · s`` with each stored glyph and the energy ``E = -½ sᵀ W s`` are recorded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline import seeds
from pipeline.config import Config
from pipeline.layers.hopfield import HopfieldNetwork, corrupt, measure_capacity, overlap

log = logging.getLogger(__name__)


def recall_glyph(config: Config, out_dir: Path) -> dict:
    """Store the glyphs, recall the cue glyph, write ``hopfield_recall.png``; the per-step table.

    Returns ``{"characters", "cue_character", "units", "steps": [{"step", "overlaps", "energy"}],
    "recalled", "final_overlap", "cycle", "png"}``; ``overlaps`` maps each character to its ``m``.
    """
    from pipeline.tools.hopfield.glyphs import plot_hopfield_recall, render_glyphs

    settings = config.hopfield
    glyphs = render_glyphs(settings.characters, settings.glyph_size, settings.stroke_width)
    patterns = glyphs.reshape(len(glyphs), -1)
    network = HopfieldNetwork(patterns.shape[1]).store(patterns, settings.rule)
    cue_character = settings.cue_character or settings.characters[0]
    cue_index = settings.characters.index(cue_character)
    target = patterns[cue_index]
    cue = corrupt(target, settings.noise_fraction, seeds.rng(config.seed, "hopfield_cue"),
                  half=settings.corruption == "half")
    states = network.recall(cue, settings.update, settings.max_steps, seeds.rng(config.seed, "hopfield_updates"))
    steps = [{"step": index,
              "overlaps": dict(zip(settings.characters, np.round(overlap(state, patterns), 4).tolist())),
              "energy": round(float(network.energy(state)), 4)} for index, state in enumerate(states)]
    final = steps[-1]["overlaps"]
    cycle = (settings.update == "synchronous" and len(states) >= 3 and np.array_equal(states[-1], states[-3]))
    png = out_dir / "hopfield_recall.png"
    titles = ["cue"] + [f"step {index}" for index in range(1, len(states))]
    titles = [f"{title}\nm = {step['overlaps'][cue_character]:.2f}" for title, step in zip(titles, steps)]
    plot_hopfield_recall([state.reshape(glyphs.shape[1:]) for state in states], glyphs[cue_index], titles, png)
    return {"characters": settings.characters, "cue_character": cue_character, "units": int(patterns.shape[1]),
            "rule": settings.rule, "update": settings.update, "steps": steps,
            "recalled": max(final, key=final.get), "final_overlap": final[cue_character], "cycle": bool(cycle),
            "png": str(png)}


def capacity(config: Config) -> dict:
    """The random-pattern capacity of :func:`pipeline.layers.hopfield.measure_capacity` under ``[hopfield]``."""
    settings = config.hopfield
    count = int(round(settings.capacity_max_load / settings.capacity_load_step))
    loads = np.round(settings.capacity_load_step * np.arange(1, count + 1), 6)
    result = measure_capacity(settings.capacity_units, loads, seeds.rng(config.seed, "hopfield_capacity"),
                              settings.capacity_trials, settings.capacity_threshold)
    return result.to_dict()
