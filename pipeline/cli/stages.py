"""``pipeline run`` and one command per stage (prepare ... evaluate)."""

from __future__ import annotations

import argparse

from pipeline.cli.common import config_options, load_config

STAGE_HELP = {
    "prepare": "read the corpus, normalise (NFKC, URLs, whitespace), de-duplicate, split train/validation/test",
    "tokenize": "tokenize with GiNZA (surface, lemma, norm, POS); cached, skipped when unchanged",
    "vectorize": "build the vocabulary (training split) and the embedding matrix from the ja_ginza vectors",
    "pretrain": "with [pretrain] enabled: train a language model on the corpus text (and corpus.unlabeled_path) "
                "that the classifier's encoder starts from; cached by fingerprint",
    "train": "train the configured recurrent model; writes saved_models/<run>/",
    "evaluate": "score the run on the test split: metrics.json, confusion matrix, training curves",
}


def register(commands) -> None:
    run = commands.add_parser("run", help="run every stage (prepare ... evaluate), then classify the config's examples",
                              description="Run prepare, tokenize, vectorize, pretrain, train and evaluate in order "
                                          "(unchanged stages are skipped), print the test metrics and classify "
                                          "the sentences listed in [classify] examples.")
    config_options(run, positional=True)
    run.set_defaults(handler=command_run)
    for name, text in STAGE_HELP.items():
        stage = commands.add_parser(name, help=text, description=text + ". Out-of-date earlier stages run first.")
        config_options(stage)
        if name == "tokenize":
            shard_options(stage)
        stage.set_defaults(handler=command_stage)


def shard_options(parser: argparse.ArgumentParser) -> None:
    """``tokenize``'s ``--shard I/N`` and ``--dask ADDRESS`` (:mod:`pipeline.text.shards`, ``cluster``)."""
    parser.add_argument("--shard", metavar="I/N", default=None,
                        help="tokenize only the shards i with i %% N == I and write their files (no merge, no lock): "
                             "N processes or machines sharing the work folder split the work; a plain "
                             "`pipeline tokenize` afterwards merges them")
    parser.add_argument("--dask", metavar="ADDRESS", default=None,
                        help="tokenize the shards as Dask tasks: local:N (a local cluster of N worker processes on "
                             "127.0.0.1) or tcp://HOST:PORT (a running scheduler), then merge here")


def parse_shard(text: str) -> tuple[int, int]:
    """``--shard I/N`` -> (I, N) with 0 <= I < N; a one-line error otherwise."""
    from pipeline.errors import PipelineError

    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise PipelineError(f"--shard {text!r}: give I/N with whole numbers 0 <= I < N, e.g. --shard 0/2 and "
                            "--shard 1/2 for two processes")
    return int(index), int(count)


def command_stage(args: argparse.Namespace) -> int:
    from pipeline.stages import run_stage

    config = load_config(args)
    if getattr(args, "shard", None) is not None or getattr(args, "dask", None) is not None:
        result = command_shards(args, config)
    else:
        result = run_stage(args.command, config, force=args.force)
    if args.command == "evaluate":
        print_metrics(config)
    elif result.get("skipped"):
        print(f"{args.command}: up to date")
    return 0


def command_shards(args: argparse.Namespace, config) -> dict:
    """``tokenize --shard I/N`` (write some shards) or ``tokenize --dask ADDRESS`` (the stage, shards on Dask)."""
    from pipeline.errors import PipelineError
    from pipeline.front_end import tokenize_part
    from pipeline.stages import run_stage
    from pipeline.text.cluster import check_address, dask_runner

    if args.shard is not None and args.dask is not None:
        raise PipelineError("--shard and --dask: give one; --dask already splits every shard over its workers")
    if config.tokenize.method == "sentencepiece":
        raise PipelineError(f"--{'shard' if args.shard is not None else 'dask'}: tokenize.method = \"sentencepiece\" "
                            "learns its pieces from the whole training split first; run `pipeline tokenize` alone")
    if args.shard is not None:
        return tokenize_part(config, *parse_shard(args.shard))
    with dask_runner(check_address(args.dask)):
        return run_stage("tokenize", config, force=args.force)


def print_metrics(config) -> None:
    from pipeline import io as artifact_io
    from pipeline.paths import Paths, RunPaths
    from pipeline.stages import task_part

    run = RunPaths(Paths.from_config(config).run)
    summary = task_part(config, "summary")
    print(f"run {run.root}")
    print(summary(artifact_io.read_json(run.metrics)))


def command_run(args: argparse.Namespace) -> int:
    config = load_config(args)
    from pipeline.stages import pipeline_of, run_stage, task_part
    from pipeline.workarea import check_replace, hold

    order = pipeline_of(config)
    with hold(config) as paths:  # one process at a time on this work folder and run folder, for every stage
        check_replace(paths.run, config.model.task, args.force)  # before prepare, not after hours of training
        for name in order:  # the run folder is replaced once, when the last stage is done
            run_stage(name, config, force=args.force, upstream=False, publish=name == order[-1])
    print_metrics(config)
    after_run = task_part(config, "after_run")  # classify the examples, sample from the prompts, ...
    return after_run(config) if after_run is not None else 0
