"""``pipeline read``: the katakana reading of sentences with a trained reading run (``model.task = "reading"``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pipeline.cli.common import read_texts
from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")


def register(commands) -> None:
    read = commands.add_parser(
        "read", help="write the katakana reading of sentences with a trained reading run",
        description="Read sentences given as arguments, or one a line from --file or stdin, with a character "
                    "encoder-decoder (model.task = \"reading\"): prints the reading, a tab and the text per line. "
                    "Beam search keeps the best --beam partial readings and ranks finished ones by "
                    "log p / length ** --length-penalty; --greedy takes the most probable character each step. "
                    "An empty line gets an error for that line; the others are still read (exit status 2 when "
                    "any line failed).")
    read.add_argument("--model", "-m", type=Path, required=True, help="run folder, e.g. saved_models/reading")
    read.add_argument("texts", nargs="*", help="sentences to read")
    read.add_argument("--file", "-f", type=Path, help="read sentences from this UTF-8 file, one a line ('-': stdin)")
    read.add_argument("--beam", type=int, help="beam size (default: the run's reading.beam_size)")
    read.add_argument("--greedy", action="store_true", help="greedy decoding (the same as --beam 1)")
    read.add_argument("--length-penalty", type=float,
                      help="in [0, 2]; 0 ranks by raw log p (favours short readings), 1 by log p per character "
                           "(default: the run's reading.length_penalty)")
    read.add_argument("--json", action="store_true",
                      help="JSON lines: reading, log probability, input and output characters and the attention "
                           "matrix (one row per output character and </s>, one column per input character; "
                           "null without attention)")
    read.add_argument("--plot", type=Path, metavar="FILE.png",
                      help="write the attention heat map as PNG (several sentences: FILE_1.png, FILE_2.png, ...)")
    read.set_defaults(handler=command_read)


def command_read(args: argparse.Namespace) -> int:
    # Options first: a bad value fails at once, before TensorFlow and the run load.
    if args.beam is not None and args.beam < 1:
        raise PipelineError(f"--beam must be an integer >= 1, got {args.beam}")
    if args.length_penalty is not None and not 0 <= args.length_penalty <= 2:
        raise PipelineError(f"--length-penalty must be in [0, 2], got {args.length_penalty}")
    if args.plot is not None and args.plot.is_dir():
        raise PipelineError(f"{args.plot}: a folder; pass a file name to --plot, e.g. --plot attention.png")
    texts = read_texts(args, "read")
    from pipeline.runs import load_run, run_config

    task = run_config(args.model).model.task  # before Keras is imported
    if task != "reading":
        raise PipelineError(f"{args.model}: a {task} run, not a reading model; train one with "
                            "`pipeline run configs/reading.toml`")
    run = load_run(args.model)
    if args.plot is not None and run.config.reading.attention == "none":
        raise PipelineError(f"{args.model}: a model without attention (reading.attention = \"none\"), nothing to "
                            "plot; drop --plot or use a run with attention")
    beam = 1 if args.greedy else args.beam
    good = [i for i, text in enumerate(texts) if text.strip()]
    results = dict(zip(good, run.read([texts[i].strip() for i in good], beam, args.length_penalty)))
    plotted = good if args.plot is not None else []
    for number in plotted:
        _plot(results[number], args.plot if len(texts) == 1 else
              args.plot.with_name(f"{args.plot.stem}_{number + 1}{args.plot.suffix or '.png'}"))
    for number, text in enumerate(texts):
        if number not in results:
            message = "empty line; nothing to read"
            if args.json:
                print(json.dumps({"line": number + 1, "text": text, "error": message}, ensure_ascii=False))
            else:
                print(f"error: line {number + 1}: {message}", file=sys.stderr)
            continue
        result = results[number]
        if args.json:
            attention = result["attention"]
            print(json.dumps({"line": number + 1, "text": result["text"], "reading": result["reading"],
                              "log_probability": round(result["log_probability"], 4), "source": result["source"],
                              "output": result["output"],
                              "attention": None if attention is None else attention.round(4).tolist()},
                             ensure_ascii=False))
        else:
            print(f"{result['reading']}\t{result['text']}")
    return 2 if len(results) < len(texts) else 0


def _plot(result: dict, path: Path) -> None:
    from pipeline.seq2seq.plots import plot_attention

    try:
        plot_attention(result["attention"], result["source"], result["output"], path)
    except OSError as error:
        raise PipelineError(f"{path}: cannot write the heat map ({error.strerror}); pass a writable path "
                            "to --plot") from None
    log.info("wrote %s", path)


def run_read_examples(config) -> int:
    """``pipeline run`` with a reading config: read ``[reading] examples`` aloud with the new run."""
    from pipeline.paths import Paths
    from pipeline.runs import load_run

    examples = list(config.reading.examples)
    if examples:
        print("examples:")
        for result in load_run(Paths.from_config(config).run).read(examples):
            print(f"{result['reading']}\t{result['text']}")
    return 0
