"""The ``evaluate`` stage for language models: perplexity per split beside a Kneser-Ney trigram model."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline.config import Config
from pipeline.language_model.data import LanguageModelBatches, Perplexity, TBPTTDataset, num_tbptt_batches, token_stream
from pipeline.language_model.model import BOS, EOS, build_generator, start_id
from pipeline.language_model.ngram import KneserNeyModel
from pipeline.paths import Paths, RunPaths
from pipeline.plots import plot_history
from pipeline.runs import load_run
from pipeline.text.vectors import EncodedSplits
from pipeline.text.vocab import PAD_ID


def reset_states(model: keras.Model) -> None:
    for layer in model.layers:
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_state"):
            layer.reset_state()


def stream_perplexity(model: keras.Model, stream: np.ndarray, batch_size: int, bptt_steps: int) -> float:
    """Perplexity of a stateful model over a stream, state carried across windows, then reset."""
    metric = Perplexity(pad_id=-1)
    reset_states(model)
    for inputs, targets in TBPTTDataset(stream, batch_size, bptt_steps):
        metric.update_state(targets, model.predict_on_batch(inputs))  # compiled, not eager
    reset_states(model)
    return float(metric.result())


def sentence_perplexity(model: keras.Model, sequences: list, label_ids: np.ndarray | None, bos_id: int,
                        eos_id: int, max_length: int, batch_size: int = 64) -> float:
    """exp(mean cross-entropy per predicted token) over whole sentences, ``</s>`` included, padding excluded."""
    metric = Perplexity(pad_id=PAD_ID)
    conditioned = len(model.inputs) > 1
    batches = LanguageModelBatches(sequences, label_ids, batch_size, max_length, bos_id, eos_id,
                                   conditioned=conditioned)
    for index in range(len(batches)):
        inputs, targets = batches[index]
        metric.update_state(targets, model.predict_on_batch(inputs))  # compiled, not eager
    return float(metric.result())


def evaluate_generator(config: Config, paths: Paths) -> dict:
    """Perplexity on train/validation/test sentences beside an interpolated Kneser-Ney trigram model."""
    run = load_run(paths.run)
    splits = EncodedSplits.load(paths.ids)
    vocab = run.vocab
    bos, eos = start_id(config, vocab), vocab.index[EOS]
    metrics: dict = {"perplexity": {}, "tokens": {}}
    for split in ("train", "validation", "test"):
        if len(splits.sequences[split]):
            metrics["perplexity"][split] = sentence_perplexity(
                run.model, splits.sequences[split], splits.targets[split], bos, eos, config.train.max_length)
            metrics["tokens"][split] = int(sum(min(len(s) + 1, config.train.max_length)
                                               for s in splits.sequences[split]))
    if config.train.regime == "tbptt":
        stream = token_stream(splits.sequences["test"], eos)
        if num_tbptt_batches(len(stream), config.train.batch_size, config.train.bptt_steps) >= 1:
            shape_only = np.zeros_like(run.model.get_layer("embedding").get_weights()[0])
            stateful = build_generator(config.model, shape_only, 0, stateful=True, batch_size=config.train.batch_size)
            stateful.set_weights(run.model.get_weights())
            metrics["stream_perplexity_test"] = stream_perplexity(stateful, stream, config.train.batch_size,
                                                                  config.train.bptt_steps)
    cut = config.train.max_length - 1  # the neural model scores at most max_length tokens per sentence
    for name, order in (("kneser_ney_trigram", 3), ("kneser_ney_4gram", 4)):  # modified Kneser-Ney
        ngram_model = KneserNeyModel(order=order, bos_token=vocab.index[BOS], eos_token=eos, unk_token=1,
                                     pad_token=PAD_ID)
        ngram_model.fit([list(s[:cut]) for s in splits.sequences["train"]], vocabulary=range(2, len(vocab)))
        if len(splits.sequences["test"]):
            metrics.setdefault("baselines", {})[name] = {
                "perplexity": ngram_model.perplexity([list(s[:cut]) for s in splits.sequences["test"]])}
    history_path = RunPaths(paths.run).history
    if history_path.is_file():
        run_paths = RunPaths(paths.run)
        run_paths.plots.mkdir(exist_ok=True)
        plot_history(pd.read_csv(history_path), run_paths.plots / "training_curves.png")
    artifact_io.write_json(RunPaths(paths.run).metrics, metrics)
    return metrics


def summary(metrics: dict) -> str:
    lines = ["perplexity " + "  ".join(f"{split} {value:.1f}" for split, value in metrics["perplexity"].items())]
    if "stream_perplexity_test" in metrics:
        stream = metrics["stream_perplexity_test"]
        lines.append(f"  test stream perplexity (state carried across sentences): {stream:.1f}")
    for name, label in (("kneser_ney_trigram", "trigram"), ("kneser_ney_4gram", "4-gram")):
        if name in metrics.get("baselines", {}):
            lines.append(f"  Kneser-Ney {label} baseline: test perplexity "
                         f"{metrics['baselines'][name]['perplexity']:.1f}")
    baselines = [b["perplexity"] for b in metrics.get("baselines", {}).values()]
    if baselines and "test" in metrics["perplexity"]:
        model, best = metrics["perplexity"]["test"], min(baselines)
        lines.append(f"  model vs best Kneser-Ney: test perplexity {100 * (model / best - 1):+.1f}%"
                     + ("" if model < best else ": the model does not beat the n-gram baseline"))
    return "\n".join(lines)
