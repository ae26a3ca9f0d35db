"""``pipeline lsm``: a Liquid State Machine beside an Echo State Network with the same number of units."""

from __future__ import annotations

import argparse

from pipeline.cli.common import config_options, load_config


def register(commands) -> None:
    lsm = commands.add_parser(
        "lsm", help="Liquid State Machine vs ESN: jittered spike patterns and rate-coded Mackey-Glass",
        description="Build a liquid of leaky integrate-and-fire neurons and an ESN with the same number of units "
                    "([lsm] units), train ridge readouts on both and print: the test accuracy on a generated "
                    "jittered spike-pattern classification task, and the one-step NRMSE on the Mackey-Glass "
                    "series (rate coded for the liquid) beside the persistence baseline. Writes metrics.json "
                    "and raster.png to saved_models/<run_name>/ (default run name: lsm).")
    config_options(lsm, tool="lsm")
    lsm.set_defaults(handler=command_lsm)


def command_lsm(args: argparse.Namespace) -> int:
    from pipeline import io as artifact_io
    from pipeline.paths import Paths, RunPaths
    from pipeline.tools.lsm.compare import compare
    from pipeline.tools.lsm.plots import plot_spike_raster
    from pipeline.workarea import new_run

    config = load_config(args)
    result = compare(config.lsm, config.seed)
    metrics = result["metrics"]
    run = RunPaths(Paths.from_config(config).run)
    with new_run(run.root, "lsm", args.force) as folder:
        artifact_io.write_json(RunPaths(folder).metrics, {**metrics, "seed": config.seed,
                                                          "config": config.to_dict()["lsm"]})
        plot_spike_raster(result["raster"], folder / "raster.png")
    patterns, series = metrics["patterns"], metrics["mackey_glass"]
    units = config.lsm.units
    print(f"jittered spike patterns ({config.lsm.classes} classes, jitter {config.lsm.jitter:g} ms), "
          f"test accuracy with {units} units:")
    print(f"  lsm: {patterns['lsm_accuracy']:.3f}   esn: {patterns['esn_accuracy']:.3f}   "
          f"spike counts only: {patterns['spike_count_accuracy']:.3f}   "
          f"majority class: {patterns['majority_class_accuracy']:.3f}")
    print(f"Mackey-Glass one step ahead (sample interval {config.lsm.sample_interval:g}), test NRMSE:")
    print(f"  lsm (rate coded): {series['lsm_nrmse']:.4f}   esn: {series['esn_nrmse']:.4f}   "
          f"persistence: {series['persistence_nrmse']:.4f}")
    print(f"wrote {run.metrics} and {run.root / 'raster.png'}")
    return 0
