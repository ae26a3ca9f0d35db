"""``pipeline export``: write a trained run as a TensorFlow SavedModel that TensorFlow Serving loads."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.serve.export import FORMATS

log = logging.getLogger("pipeline")


def register(commands) -> None:
    export = commands.add_parser(
        "export", help="write a run as a TensorFlow SavedModel for TensorFlow Serving",
        description="Write the run folder --model as a TensorFlow SavedModel folder OUT: tokenized text in, "
                    "probabilities out (a classifier's serving_default signature, a language model's next_token), "
                    "with the vocabulary lookup, the subword features and the ensemble member inside the graph; "
                    "assets.extra/export.json describes the inputs and outputs. TensorFlow Serving loads it as a "
                    "version folder (mount OUT as /models/<name>/1). OUT is written atomically; a non-empty OUT "
                    "that is not a previous export is replaced only with --force.")
    export.add_argument("--model", "-m", type=Path, required=True, help="run folder, e.g. saved_models/default")
    export.add_argument("--format", dest="export_format", choices=FORMATS, default=FORMATS[0],
                        help="export format (default: %(default)s)")
    export.add_argument("--force", action="store_true",
                        help="replace OUT even when it is a non-empty folder that is not a previous export")
    export.add_argument("out", type=Path, metavar="OUT", help="folder to write, e.g. exports/default")
    export.set_defaults(handler=command_export)


def command_export(args: argparse.Namespace) -> int:
    from pipeline.serve.export import describe, export_run

    metadata = export_run(args.model, args.out, args.export_format, force=args.force)
    log.info("exported %s (%s run) to %s", args.model, metadata["task"], args.out)
    print(f"{args.out}: TensorFlow SavedModel of {args.model}")
    for line in describe(metadata):
        print(f"  {line}")
    return 0
