"""``pipeline generate``: sample text from a trained language-model run."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import print_samples
from pipeline.errors import PipelineError


def register(commands) -> None:
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

    generate.set_defaults(handler=command_generate)


def run_generate_examples(config) -> int:
    """``pipeline run`` with a generator config: samples from ``[generate] prompts`` with the new run."""
    from pipeline.paths import Paths
    from pipeline.runs import load_run

    settings = config.generate
    run = load_run(Paths.from_config(config).run)
    sampling = {"temperature": settings.temperature, "top_k": settings.top_k, "top_p": settings.top_p,
                "max_tokens": settings.max_tokens, "repetition_penalty": settings.repetition_penalty,
                "no_repeat_ngram": settings.no_repeat_ngram}
    labels = settings.labels or ("",) * len(settings.prompts)
    if settings.prompts:
        print("samples:")
    for prompt, label in zip(settings.prompts, labels):
        print_samples(run.generate(prompt, num=settings.num, seed=config.seed, label=label or None, **sampling),
                      as_json=False)
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
    from pipeline.runs import check_able, load_run, run_config

    check_able(args.model, run_config(args.model).model.task, "generate")  # refused before Keras is imported
    run = load_run(args.model)
    samples = run.generate(args.prompt, num=args.num, seed=args.seed, label=args.label,
                           temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy,
                           max_tokens=args.max_tokens, repetition_penalty=args.repetition_penalty,
                           no_repeat_ngram=args.no_repeat_ngram)
    print_samples(samples, args.json)
    return 0
