"""The command line: the only place that parses arguments.

Every user error is a :class:`PipelineError`, caught once here: one line on
stderr, exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline import __version__
from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")

STAGE_HELP = {
    "prepare": "read the corpus, normalise (NFKC, URLs, whitespace), de-duplicate, split train/validation/test",
    "tokenize": "tokenize with GiNZA (surface, lemma, norm, POS); cached, skipped when unchanged",
    "vectorize": "build the vocabulary (training split) and the embedding matrix from the ja_ginza vectors",
    "pretrain": "with [pretrain] enabled: train a language model on the corpus text (and corpus.unlabeled_path) "
                "that the classifier's encoder starts from; cached by fingerprint",
    "train": "train the configured recurrent model; writes saved_models/<run>/",
    "evaluate": "score the run on the test split: metrics.json, confusion matrix, training curves",
}


def _config_options(parser: argparse.ArgumentParser, positional: bool = False) -> None:
    if positional:
        parser.add_argument("config", type=Path, help="TOML config file, e.g. configs/default.toml")
    else:
        parser.add_argument("--config", "-c", type=Path, default=Path("configs/default.toml"),
                            help="TOML config file (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.epochs=3 (repeatable)")
    parser.add_argument("--force", action="store_true", help="re-run even when inputs are unchanged")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="A Japanese NLP pipeline: corpus -> GiNZA tokens -> ja_ginza vectors -> recurrent models. "
                    "Stages run in order and are skipped when their inputs, settings and code are unchanged.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--quiet", "-q", action="store_true", help="only warnings and results")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run every stage (prepare ... evaluate), then classify the config's examples",
                              description="Run prepare, tokenize, vectorize, pretrain, train and evaluate in order "
                                          "(unchanged stages are skipped), print the test metrics and classify "
                                          "the sentences listed in [classify] examples.")
    _config_options(run, positional=True)

    for name, text in STAGE_HELP.items():
        stage = commands.add_parser(name, help=text, description=text + ". Out-of-date earlier stages run first.")
        _config_options(stage)

    classify = commands.add_parser(
        "classify", help="label sentences with a trained classifier run",
        description="Label sentences given as arguments, or read one a line from --file or stdin. "
                    "Prints label, probability and text per line; --json prints JSON lines with every class "
                    "probability. An empty line gets an error for that line; the others are still classified "
                    "(exit status 2 when any line failed).")
    classify.add_argument("--model", "-m", type=Path, required=True, help="run folder, e.g. saved_models/default")
    classify.add_argument("texts", nargs="*", help="sentences to classify")
    classify.add_argument("--file", "-f", type=Path, help="read sentences from this UTF-8 file, one a line ('-': stdin)")
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

    generate = commands.add_parser(
        "generate", help="sample text from a trained language-model run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Continue a prompt with a trained language model, one sample a line.\n\n"
                    "Temperature T rescales the model's distribution before sampling (p^(1/T), renormalised):\n"
                    "  T < 1 (e.g. 0.5) sharpens it: safer, more repetitive text; T -> 0 approaches greedy.\n"
                    "  T = 1 samples from the model as trained.\n"
                    "  T > 1 (e.g. 1.5) flattens it: more varied, more surprising, more errors.\n"
                    "top-k keeps only the k most probable tokens; top-p (nucleus) keeps the smallest set\n"
                    "whose probability reaches p; --greedy always takes the most probable token.\n\n"
                    "Against loops, both looking at the text so far, prompt included (applied before temperature):\n"
                    "  --repetition-penalty P (>= 1) turns the probability p of every token already in the text\n"
                    "  into p^P (CTRL's rule on log-probabilities), then renormalises.\n"
                    "  --no-repeat-ngram N gives probability 0 to any token that would repeat an N-gram of the\n"
                    "  text; on a step where that would rule out every token, it is ignored.")
    generate.add_argument("--model", "-m", type=Path, required=True, help="run folder, e.g. saved_models/generator")
    generate.add_argument("--prompt", "-p", default="", help="text to continue (default: start a new sentence)")
    generate.add_argument("--temperature", "-t", type=float, default=1.0, help="> 0; see above (default: 1.0)")
    generate.add_argument("--top-k", type=int, default=0, help="sample among the k most probable tokens (0: off)")
    generate.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold in (0, 1] (1: off)")
    generate.add_argument("--greedy", action="store_true", help="always take the most probable token")
    generate.add_argument("--repetition-penalty", type=float, default=1.0, metavar="P",
                          help=">= 1: p -> p^P for tokens already in the text; see above (default: 1.0, off)")
    generate.add_argument("--no-repeat-ngram", type=int, default=0, metavar="N",
                          help="never repeat an n-gram of N tokens of the text; see above (default: 0, off)")
    generate.add_argument("--max-tokens", type=int, default=40, help="stop after this many tokens (default: 40)")
    generate.add_argument("--num", "-n", type=int, default=1, help="number of samples (default: 1)")
    generate.add_argument("--seed", type=int, default=0, help="seed of the sampler: same seed, same text")
    generate.add_argument("--label", help="label to condition on (conditional models), e.g. Gourmet")
    generate.add_argument("--json", action="store_true", help="JSON lines with tokens and their probabilities")

    diagnose = commands.add_parser(
        "diagnose", help="measure vanishing gradients: ||dL/dh_t|| against distance from the loss",
        description="On a long-sequence task whose target depends on the first inputs only, measure the norm "
                    "of dL/dh_t at every step for each architecture in [diagnose] (elman, simple_rnn, lstm, gru), "
                    "at initialisation and after training with and without global-norm clipping. Writes "
                    "gradient_norms.csv and gradient_norms.png to saved_models/<run_name>/.")
    diagnose.add_argument("what", choices=["gradients"], help="what to diagnose")
    _config_options(diagnose)

    forecast = commands.add_parser(
        "forecast", help="train an Echo State Network on a time series; one-step and free-running NRMSE",
        description="Fit an ESN readout by ridge regression to predict a series one step ahead (the "
                    "Mackey-Glass series with tau = 17, or a column of a CSV file, per [forecast]), then let it "
                    "run free for N steps on its own predictions. Prints NRMSE (RMSE / std of the target) and "
                    "writes metrics.json and forecast.png to saved_models/<run_name>/.")
    _config_options(forecast)
    return parser


def configure_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(levelname).1s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def load_config(args: argparse.Namespace):
    from pipeline import config

    loaded = config.load(args.config, args.overrides)
    if args.command in ("run", "train", "evaluate"):
        from pipeline.models import check_layers

        check_layers(loaded.model)  # a bad [[model.layers]] value fails before prepare, not after vectorize
    return loaded


def print_classifications(results: list[dict], as_json: bool, color: bool = False) -> int:
    failures = 0
    for number, result in enumerate(results, start=1):
        if "error" in result and result["error"]:
            failures += 1
            if as_json:
                print(json.dumps({"line": number, "text": result["text"], "error": result["error"]}, ensure_ascii=False))
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


def command_stage(args: argparse.Namespace) -> int:
    from pipeline.stages import run_stage

    config = load_config(args)
    result = run_stage(args.command, config, force=args.force)
    if args.command == "evaluate":
        print_metrics(config)
    elif result.get("skipped"):
        print(f"{args.command}: up to date")
    return 0


def print_metrics(config) -> None:
    from pipeline import io as artifact_io
    from pipeline.paths import Paths, RunPaths
    from pipeline.stages import task_part

    run = RunPaths(Paths.from_config(config).run)
    summary = task_part(config, "summary")
    print(f"run {run.root}")
    print(summary(artifact_io.read_json(run.metrics)))


def print_samples(samples: list[dict], as_json: bool) -> None:
    for sample in samples:
        print(json.dumps(sample, ensure_ascii=False) if as_json else sample["text"])


def command_run(args: argparse.Namespace) -> int:
    config = load_config(args)
    from pipeline.classifier.predict import classify
    from pipeline.paths import Paths
    from pipeline.runs import load_run
    from pipeline.stages import PIPELINE, run_stage

    for name in PIPELINE:
        run_stage(name, config, force=args.force, upstream=False)
    print_metrics(config)
    if config.model.task == "generator":
        return run_generate_examples(config)
    if config.classify.examples:
        print("examples:")
        return print_classifications(classify(load_run(Paths.from_config(config).run), list(config.classify.examples)),
                                     as_json=False)
    return 0


def run_generate_examples(config) -> int:
    from pipeline.language_model.generate import Sampling, generate
    from pipeline.paths import Paths
    from pipeline.runs import load_run

    settings = config.generate
    run = load_run(Paths.from_config(config).run)
    sampling = Sampling(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p,
                        max_tokens=settings.max_tokens, repetition_penalty=settings.repetition_penalty,
                        no_repeat_ngram=settings.no_repeat_ngram)
    labels = settings.labels or ("",) * len(settings.prompts)
    if settings.prompts:
        print("samples:")
    for prompt, label in zip(settings.prompts, labels):
        print_samples(generate(run, prompt, sampling, settings.num, config.seed, label or None), as_json=False)
    return 0


def command_generate(args: argparse.Namespace) -> int:
    # Settings first: a typo fails at once, before TensorFlow and the run load.
    if args.max_tokens < 1 or args.num < 1:
        raise PipelineError("--max-tokens and --num must be >= 1")
    if not 1 <= args.repetition_penalty < float("inf"):
        raise PipelineError(f"--repetition-penalty must be a finite number >= 1 (1: off), "
                            f"got {args.repetition_penalty}")
    if args.no_repeat_ngram < 0:
        raise PipelineError(f"--no-repeat-ngram must be an integer >= 0 (0: off), got {args.no_repeat_ngram}")
    from pipeline.language_model.sampling import check_settings

    check_settings(args.temperature, args.top_k, args.top_p)
    from pipeline.language_model.generate import Sampling, generate
    from pipeline.runs import load_run

    sampling = Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy,
                        max_tokens=args.max_tokens, repetition_penalty=args.repetition_penalty,
                        no_repeat_ngram=args.no_repeat_ngram)
    run = load_run(args.model)
    print_samples(generate(run, args.prompt, sampling, args.num, args.seed, args.label), args.json)
    return 0


def command_diagnose(args: argparse.Namespace) -> int:
    from pipeline.diagnose import run_gradient_diagnostics
    from pipeline.paths import Paths

    config = load_config(args)
    settings = config.diagnose
    out_dir = Paths.from_config(config).run
    written = run_gradient_diagnostics(
        list(settings.architectures), out_dir, timesteps=settings.timesteps, features=settings.features,
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
    print(f"wrote {written['csv']} and {written['png']}")
    return 0


def command_forecast(args: argparse.Namespace) -> int:
    from pipeline import io as artifact_io
    from pipeline.forecast import timeseries
    from pipeline.paths import Paths, RunPaths
    from pipeline.plots import plot_forecast

    config = load_config(args)
    settings = config.forecast
    if settings.series == "csv":
        series = timeseries.read_series_csv(Path(settings.csv_path), settings.column)
    else:
        series = timeseries.mackey_glass(settings.n_steps, tau=settings.tau)
    options = {key: getattr(settings, key) for key in (
        "units", "leak_rate", "spectral_radius", "input_scaling", "connectivity", "input_connectivity",
        "bias_scaling", "ridge", "washout", "train_length", "test_length", "generative_steps")}
    result = timeseries.forecast(series, seed=config.seed, **options)
    run = RunPaths(Paths.from_config(config).run)
    with artifact_io.atomic_directory(run.root) as folder:
        artifact_io.write_json(RunPaths(folder).metrics, {**result["metrics"], "config": config.to_dict()["forecast"]})
        plot_forecast(result, folder / "forecast.png")
    for key, value in result["metrics"].items():
        print(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")
    print(f"wrote {run.metrics} and {run.root / 'forecast.png'}")
    return 0


def read_texts(args: argparse.Namespace) -> list[str]:
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
        raise PipelineError("no text to classify; pass sentences as arguments, --file FILE, or pipe them on stdin")
    return texts


def command_classify(args: argparse.Namespace) -> int:
    from pipeline.classifier.predict import classify
    from pipeline.runs import load_run

    if args.html is not None and args.html.is_dir():
        raise PipelineError(f"{args.html}: a folder; pass a file name to --html, e.g. --html explain.html")
    run = load_run(args.model)
    if run.config.model.task != "classifier":
        raise PipelineError(f"{args.model}: a {run.config.model.task} run, not a classifier; use `pipeline generate`")
    if args.explain or args.html is not None:
        return explain_classifications(run, read_texts(args), args)
    return print_classifications(classify(run, read_texts(args)), args.json)


def explain_classifications(run, texts: list[str], args: argparse.Namespace) -> int:
    from pipeline import io as artifact_io
    from pipeline.classifier.explain import explain, html_page

    results = explain(run, texts)
    if args.html is not None:
        try:
            artifact_io.write_text(args.html, html_page(results, f"pipeline classify --explain: {run.folder.name}"))
        except OSError as error:
            raise PipelineError(f"{args.html}: cannot write the HTML page ({error.strerror}); "
                                "pass a writable path to --html") from None
        log.info("wrote %s", args.html)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    return print_classifications(results, args.json, color)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.quiet)
    handlers = {"run": command_run, "classify": command_classify, "generate": command_generate,
                "diagnose": command_diagnose, "forecast": command_forecast}
    handler = handlers.get(args.command, command_stage)
    try:
        return handler(args)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return PipelineError.exit_status
    except KeyboardInterrupt:
        print("interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
