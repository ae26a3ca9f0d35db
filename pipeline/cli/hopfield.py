"""``pipeline hopfield``: associative recall of a corrupted glyph, and the measured capacity (lecture 001)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.common import config_options, load_config


def register(commands) -> None:
    hopfield = commands.add_parser(
        "hopfield", help="Hopfield associative memory: recall a half-corrupted glyph; --capacity measures P/N",
        description="Store glyphs of [hopfield] characters (drawn in the Japanese font, glyph_size² units of ±1) "
                    "with Hebb's rule W = (1/N) Σ ξξᵀ (or rule = \"projection\"), corrupt one (its lower half "
                    "replaced by noise, as the lecture's 'T') and let the network relax. Prints the overlap "
                    "m = ξ·s/N with every stored glyph and the energy E = -½ sᵀWs after each sweep, and writes "
                    "hopfield_recall.png and hopfield.json to saved_models/<run_name>/ (default run name: hopfield). "
                    "--capacity also measures, "
                    "for random patterns, the largest load P/N still recalled with capacity_threshold of the "
                    "bits correct (theory: 0.138).")
    config_options(hopfield, tool="hopfield")
    hopfield.add_argument("--capacity", action="store_true",
                          help="also measure the capacity on random patterns (N = hopfield.capacity_units)")
    hopfield.add_argument("--json", action="store_true", help="print the result as one JSON object")
    hopfield.set_defaults(handler=command_hopfield)


def command_hopfield(args: argparse.Namespace) -> int:
    from pipeline import io as artifact_io
    from pipeline.paths import Paths
    from pipeline.tools.hopfield.glyph_memory import capacity, recall_glyph
    from pipeline.workarea import new_run

    config = load_config(args)
    out_dir = Paths.from_config(config).run
    with new_run(out_dir, "hopfield", args.force) as folder:
        result = recall_glyph(config, folder)
        if args.capacity:
            result["capacity"] = capacity(config)
        result["png"] = str(out_dir / Path(result["png"]).name)
        artifact_io.write_json(folder / "hopfield.json", result)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    characters = result["characters"]
    print(f"stored {len(characters)} glyphs ({' '.join(characters)}), N = {result['units']} units, "
          f"rule {result['rule']}; cue: {result['cue_character']} corrupted, {result['update']} updates")
    print("step  " + "  ".join(f"m({character})" for character in characters) + "    energy")
    for step in result["steps"]:
        overlaps = "  ".join(f"{step['overlaps'][character]:+6.3f}" for character in characters)
        print(f"{step['step']:>4}  {overlaps}  {step['energy']:9.3f}")
    ending = " (a 2-cycle: synchronous updates oscillate)" if result["cycle"] else ""
    if result["recalled"] == result["cue_character"] and result["final_overlap"] >= 0.99:
        print(f"recalled {result['recalled']} (m = {result['final_overlap']:.3f}){ending}")
    else:
        print(f"not recalled: ends nearest {result['recalled']}, m({result['cue_character']}) = "
              f"{result['final_overlap']:.3f}, a spurious (mixture) state{ending}")
    if args.capacity:
        measured = result["capacity"]
        for load, bits in zip(measured["loads"], measured["bits_correct"]):
            print(f"  P/N = {load:.2f}: {100 * bits:.1f}% bits correct")
        print(f"capacity: P/N = {measured['capacity']:.2f} for N = {measured['units']} "
              f"(≥ {100 * measured['threshold']:.0f}% bits correct after relaxing; theory 0.138)")
    print(f"wrote {result['png']} and {out_dir / 'hopfield.json'}")
    return 0
