"""``pipeline diagnose gradients``: vanishing gradients, the norm of dL/dh_t against the distance from the loss."""

from __future__ import annotations

import argparse

from pipeline.cli.common import config_options, load_config


def register(commands) -> None:
    diagnose = commands.add_parser(
        "diagnose", help="measure vanishing gradients: ||dL/dh_t|| against distance from the loss",
        description="On a long-sequence task whose target depends on the first inputs only, measure the norm "
                    "of dL/dh_t at every step for each architecture in [diagnose] (elman, simple_rnn, lstm, gru), "
                    "at initialisation and after training with and without global-norm clipping. Writes "
                    "gradient_norms.csv and gradient_norms.png to saved_models/<run_name>/ (default run name: "
                    "diagnose).")
    diagnose.add_argument("what", choices=["gradients"], help="what to diagnose")
    config_options(diagnose, tool="diagnose")
    diagnose.set_defaults(handler=command_diagnose)


def command_diagnose(args: argparse.Namespace) -> int:
    from pipeline.paths import Paths
    from pipeline.tools.diagnose.gradients import run_gradient_diagnostics
    from pipeline.workarea import new_run

    config = load_config(args)
    settings = config.diagnose
    run_folder = Paths.from_config(config).run
    with new_run(run_folder, "diagnose", args.force) as folder:
        written = run_gradient_diagnostics(
            list(settings.architectures), folder, timesteps=settings.timesteps, features=settings.features,
            units=settings.units, batch_size=settings.batch_size, memory_steps=settings.memory_steps,
            train_steps=settings.train_steps, learning_rate=settings.learning_rate,
            clipnorm=settings.clipnorm or None, seed=config.seed)
        import pandas as pd

        table = pd.read_csv(written["csv"])
    initial = table[table["phase"] == "initial"]
    print("||dL/dh_t|| at initialisation, by distance from the loss:")
    distances = sorted({0, settings.timesteps // 4, settings.timesteps // 2, settings.timesteps - 1})
    pivot = initial.pivot_table(index="architecture", columns="distance_from_loss", values="grad_norm")
    print(pivot[distances].to_string(float_format=lambda value: f"{value:.2e}"))
    print(f"wrote {run_folder / written['csv'].name} and {run_folder / written['png'].name}")
    return 0
