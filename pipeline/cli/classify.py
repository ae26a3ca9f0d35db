"""``pipeline classify``: label sentences with a trained classifier run, optionally explained."""

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
    classify = commands.add_parser(
        "classify", help="label sentences with a trained classifier run",
        description="Label sentences given as arguments, or read one a line from --file or stdin. "
                    "Prints label, probability and text per line; --json prints JSON lines with every class "
                    "probability. An empty line gets an error for that line; the others are still classified "
                    "(exit status 2 when any line failed).")
    classify.add_argument("--model", "-m", type=Path, required=True, help="run folder, e.g. saved_models/default")
    classify.add_argument("texts", nargs="*", help="sentences to classify")
    classify.add_argument("--file", "-f", type=Path,
                          help="read sentences from this UTF-8 file, one a line ('-': stdin)")
    classify.add_argument("--json", action="store_true", help="print JSON lines with all class probabilities")
    classify.add_argument("--explain", action="store_true",
                          help="a weight per token: the attention weights of a model with model.pooling = "
                               "\"attention\", else occlusion (the drop of the label's probability when the token "
                               "is replaced by <unk>); --json adds [token, weight] pairs")
    classify.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                          help="--explain: colour tokens by weight (auto: when stdout is a terminal)")
    classify.add_argument("--html", type=Path, metavar="FILE",
                          help="--explain: also write one self-contained HTML page of the highlighted sentences "
                               "(implies --explain)")

    classify.set_defaults(handler=command_classify)


def print_classifications(results: list[dict], as_json: bool, color: bool = False) -> int:
    failures = 0
    for number, result in enumerate(results, start=1):
        if "error" in result and result["error"]:
            failures += 1
            if as_json:
                failed = {"line": number, "text": result["text"], "error": result["error"]}
                print(json.dumps(failed, ensure_ascii=False))
            else:
                print(f"error: line {number}: {result['error']}", file=sys.stderr)
            continue
        if as_json:
            print(json.dumps({"line": number, **{k: v for k, v in result.items() if k != "error"}}, ensure_ascii=False))
        else:
            print(f"{result['label']}\t{result['probability']:.3f}\t{result['text']}")
            if "tokens" in result:  # classify --explain
                from pipeline.classifier.explain import terminal_line

                print(terminal_line(result, color))
    return 2 if failures else 0


def command_classify(args: argparse.Namespace) -> int:
    # user errors first, then Keras (load_run), then the classifier code: a mistake costs no Keras import
    from pipeline.runs import load_run, run_config

    if args.html is not None and args.html.is_dir():
        raise PipelineError(f"{args.html}: a folder; pass a file name to --html, e.g. --html explain.html")
    task = run_config(args.model).model.task  # a missing or corrupt folder's one-line error, before reading stdin
    if task != "classifier":
        raise PipelineError(f"{args.model}: a {task} run, not a classifier; use `pipeline generate`")
    texts = read_texts(args)
    run = load_run(args.model)
    if args.explain or args.html is not None:
        return explain_classifications(run, texts, args)
    return print_classifications(run.classify(texts), args.json)


def explain_classifications(run, texts: list[str], args: argparse.Namespace) -> int:
    from pipeline import io as artifact_io
    from pipeline.classifier.explain import html_page

    results = run.explain(texts)
    if args.html is not None:
        try:
            artifact_io.write_text(args.html, html_page(results, f"pipeline classify --explain: {run.folder.name}"))
        except OSError as error:
            raise PipelineError(f"{args.html}: cannot write the HTML page ({error.strerror}); "
                                "pass a writable path to --html") from None
        log.info("wrote %s", args.html)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    return print_classifications(results, args.json, color)


def run_classify_examples(config) -> int:
    """``pipeline run`` with a classifier config: classify ``[classify] examples`` with the new run."""
    if not config.classify.examples:
        return 0
    from pipeline.paths import Paths
    from pipeline.runs import load_run

    print("examples:")
    return print_classifications(load_run(Paths.from_config(config).run).classify(config.classify.examples),
                                 as_json=False)
