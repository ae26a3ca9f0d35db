"""``pipeline forecast``: a time series forecast with an ESN or any recurrent kind, against baselines."""

from __future__ import annotations

import argparse

from pipeline.cli.common import config_options, load_config


def register(commands) -> None:
    forecast = commands.add_parser(
        "forecast", help="forecast a time series with an ESN or any recurrent kind; compare with baselines",
        description="method = \"reservoir\": fit an ESN readout by ridge regression to predict a series one "
                    "step ahead, then let it run free for N steps on its own predictions; prints NRMSE. "
                    "method = \"windowed\": train forecast.kind (lstm, gru, simple_rnn, elman, esn, ...) on "
                    "sliding windows, forecast the test part one step and horizon steps ahead (recursive), and "
                    "print RMSE / MAE / NRMSE against the persistence and seasonal-naive baselines. The series "
                    "is Mackey-Glass, a CSV column or a data set shipped with statsmodels (co2, sunspots, "
                    "elnino, nile). Writes metrics.json and forecast.png to saved_models/<run_name>/ (default run "
                    "name: forecast).")
    config_options(forecast, tool="forecast")
    forecast.set_defaults(handler=command_forecast)


def command_forecast(args: argparse.Namespace) -> int:
    from pipeline import io as artifact_io
    from pipeline.forecast import timeseries
    from pipeline.forecast.plots import plot_forecast
    from pipeline.forecast.run import check_windowed, load_series, run_windowed, summary_lines
    from pipeline.paths import Paths, RunPaths
    from pipeline.workarea import new_run

    config = load_config(args)
    settings = config.forecast
    run = RunPaths(Paths.from_config(config).run)
    if settings.method == "windowed":
        series = check_windowed(settings)  # a user error leaves no folder behind
        with new_run(run.root, "forecast", args.force) as folder:
            result = run_windowed(settings, series, config.seed, folder, config.to_dict()["forecast"])
        print("\n".join(summary_lines(result)))
        print(f"wrote {run.metrics}, {run.root / 'predictions.csv'} and {run.root / 'forecast.png'}")
        return 0
    series = load_series(settings)
    options = {key: getattr(settings, key) for key in (
        "units", "leak_rate", "spectral_radius", "input_scaling", "connectivity", "input_connectivity",
        "bias_scaling", "ridge", "washout", "train_length", "test_length", "generative_steps")}
    result = timeseries.forecast(series, seed=config.seed, **options)
    with new_run(run.root, "forecast", args.force) as folder:
        artifact_io.write_json(RunPaths(folder).metrics, {**result["metrics"], "config": config.to_dict()["forecast"]})
        plot_forecast(result, folder / "forecast.png")
    for key, value in result["metrics"].items():
        print(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")
    print(f"wrote {run.metrics} and {run.root / 'forecast.png'}")
    return 0
