"""The command line: the only place that parses arguments.

One module a command or command group (``stages``, ``classify``, ``generate``, ``forecast``, ...); each has
``register(commands)``, which adds its subparsers and sets ``handler`` on them. Every user
error is a :class:`PipelineError`, caught once in :func:`main`: one line on stderr, exit
status 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from pipeline import __version__
from pipeline.errors import PipelineError
from pipeline.paths import keep_jax_programs

# Command modules in help order; a new command is a new module here plus its name in this list.
COMMAND_MODULES = ("stages", "classify", "generate", "diagnose", "forecast", "hopfield", "lsm", "similar", "read",
                   "serve", "export", "tune")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="A Japanese NLP pipeline: corpus -> GiNZA tokens -> ja_ginza vectors -> recurrent models. "
                    "Stages run in order and are skipped when their inputs, settings and code are unchanged.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--quiet", "-q", action="store_true", help="only warnings and results")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"pipeline.cli.{name}").register(commands)
    return parser


def configure_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(levelname).1s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("absl", "tensorflow", "jax", "h5py", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # a real command line (not a test calling main([...])): hide TensorFlow's native chatter
        from pipeline import interrupts
        from pipeline.cli.native_stderr import filter_native_stderr

        filter_native_stderr()
        interrupts.install()  # a Ctrl-C is never lost (pipeline.interrupts)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keep_jax_programs(os.environ)  # under JAX, a step compiled once is not compiled again in another run
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.quiet)
    try:
        return args.handler(args)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return PipelineError.exit_status
    except KeyboardInterrupt:
        from pipeline.interrupts import unfinished_training

        saved = unfinished_training()  # None: no training saved an epoch (reading runs save no state)
        resumes = f" (training resumes after epoch {saved[1]}, the last one it finished)" if saved else ""
        print("interrupted; finished artifacts and the previous run folder are kept, run the same command again "
              f"to continue{resumes}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
