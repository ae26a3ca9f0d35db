"""``pipeline tune``: search a task's hyperparameters on the validation split; write the best config."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.errors import PipelineError


def register(commands) -> None:
    tune = commands.add_parser(
        "tune", help="search the hyperparameters of a config on the validation split (Optuna); write the best config",
        description="Train trials of the config with sampled hyperparameters (TPE seeded from the config's seed; "
                    "trials below the median validation curve stop early), score each on the validation split "
                    "(the test split is left out), and write best_config.toml, trials.csv, search.png and "
                    "tune.json to saved_models/<run_name>-tune/. The search space is the task's default "
                    "(classifier: units, dropouts, learning rate, embedding fine-tuning, ensemble; language "
                    "model: units, dropouts, learning rate), changed by an optional [tune] table. The study "
                    "is kept in the work folder: the same command again continues it up to --trials.")
    tune.add_argument("config", type=Path, help="TOML config of a classifier or generator, e.g. configs/default.toml")
    tune.add_argument("--trials", type=int, required=True, metavar="N",
                      help="finished trials the study should hold (a rerun adds only the missing ones)")
    tune.add_argument("--time-limit", type=float, default=None, metavar="MIN",
                      help="start no trial after MIN minutes; a running trial stops after its current batch")
    tune.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config key, e.g. --set train.epochs=5 or --set tune.pruner=\"none\"")
    tune.add_argument("--force", action="store_true",
                      help="re-run the front end stages; replace a run folder of another kind")
    tune.set_defaults(handler=command_tune)


def command_tune(args: argparse.Namespace) -> int:
    if args.trials < 1:
        raise PipelineError(f"--trials {args.trials}: must be at least 1 (the finished trials the study should hold)")
    if args.time_limit is not None and not args.time_limit > 0:
        raise PipelineError(f"--time-limit {args.time_limit:g}: must be a positive number of minutes")
    import pipeline.tune.plugin  # noqa: F401  (registers [tune] and the tool when no entry point did)
    from pipeline.paths import Paths
    from pipeline.tune.report import BEST_CONFIG, PLOT, TRIALS, write_outputs
    from pipeline.tune.study import finished, load_job, search
    from pipeline.workarea import new_run

    job = load_job(args.config, args.overrides)
    study, study_folder = search(job, args.trials, args.time_limit, args.force)
    if not any(trial.state.name == "COMPLETE" for trial in finished(study)):
        raise PipelineError(f"{args.config}: no trial finished (the study is kept in {study_folder}); raise "
                            "--time-limit or --trials, or set tune.pruner = \"none\"")
    folder = Paths.from_config(job.config).run.with_name(f"{job.config.run_name}-tune")
    with new_run(folder, "tune", args.force) as building:
        summary = write_outputs(study, job, study_folder, building)
    counts = ", ".join(f"{count} {state}" for state, count in summary["trials"].items())
    own = summary["config_value"]
    print(f"{sum(summary['trials'].values())} trials ({counts}); best validation {job.metric} "
          f"{summary['best_value']:.4f} (trial {summary['best_trial']})"
          + (f", the config as given {own:.4f}" if own is not None else ""))
    for key, value in summary["best_params"].items():
        print(f"  {key} = {value:.4g}" if isinstance(value, float) else f"  {key} = {value}")
    print(f"wrote {folder / BEST_CONFIG}, {folder / TRIALS} and {folder / PLOT}")
    print(f"next: pipeline run {folder / BEST_CONFIG} --set run_name=\"{job.config.run_name}-tuned\"")
    return 0
