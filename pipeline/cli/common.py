"""What several commands share: config options and loading, reading sentences, printing samples."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.errors import PipelineError


def config_options(parser: argparse.ArgumentParser, positional: bool = False, tool: str | None = None) -> None:
    """Add the config file (positional or ``--config``), ``--set KEY=VALUE`` and ``--force``.

    A ``tool`` command (not a stage) runs on the built-in settings when no ``--config`` is given, with
    ``run_name = tool``: its run folder never lands on a model run such as ``saved_models/default``.
    """
    if positional:
        parser.add_argument("config", type=Path, help="TOML config file, e.g. configs/default.toml")
    elif tool is not None:
        parser.add_argument("--config", "-c", type=Path, default=None,
                            help=f"TOML config file (default: the built-in settings, run_name = \"{tool}\")")
        parser.set_defaults(default_run_name=tool)  # the tool's name: its default run name and its config's owner
    else:
        parser.add_argument("--config", "-c", type=Path, default=Path("configs/default.toml"),
                            help="TOML config file (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.epochs=3 (repeatable)")
    parser.add_argument("--force", action="store_true",
                        help="re-run even when inputs are unchanged; replace a run folder of another kind")


def load_config(args: argparse.Namespace):
    from pipeline import config

    tool = getattr(args, "default_run_name", None)  # a tool's config holds its sections, not a task's
    if args.config is None:  # a tool on its built-in settings
        defaults = {"run_name": tool}
        loaded = config.from_dict(config.apply_overrides(defaults, args.overrides), where="--set", owner=tool)
    else:
        loaded = config.load(args.config, args.overrides, owner=tool)
    if args.command in ("run", "train") and loaded.train.distribute != "none":
        from pipeline.distribution import make_distribution

        make_distribution(loaded.train.distribute, loaded.train.batch_size)  # before TensorFlow's first op
    if args.command in ("run", "train", "evaluate"):
        from pipeline.models import check_layers

        check_layers(loaded.model)  # a bad [[model.layers]] value fails before prepare, not after vectorize
    return loaded


def read_texts(args: argparse.Namespace, what: str = "classify") -> list[str]:
    """Sentences from the arguments, ``--file`` (``-`` for stdin) or piped stdin, one a line."""
    texts = list(args.texts)
    if args.file is not None:
        if str(args.file) == "-":
            texts.extend(sys.stdin.read().splitlines())
        elif not args.file.is_file():
            raise PipelineError(f"{args.file}: file not found; pass an existing UTF-8 text file, one sentence a line")
        else:
            try:
                texts.extend(args.file.read_text(encoding="utf-8").splitlines())
            except UnicodeDecodeError as error:
                raise PipelineError(f"{args.file}: not UTF-8 (byte {error.start}); convert it to UTF-8") from None
    elif not texts and not sys.stdin.isatty():
        texts = sys.stdin.read().splitlines()
    if not texts:
        raise PipelineError(f"no text to {what}; pass sentences as arguments, --file FILE, or pipe them on stdin")
    return texts


def print_samples(samples: list[dict], as_json: bool) -> None:
    for sample in samples:
        print(json.dumps(sample, ensure_ascii=False) if as_json else sample["text"])
