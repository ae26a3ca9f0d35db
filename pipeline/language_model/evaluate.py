"""The ``evaluate`` stage for language models: perplexity per split beside Kneser-Ney 3- and 4-gram models.

What a run reports (``metrics.json``, and the lines :func:`summary` prints after ``pipeline run`` and
``pipeline evaluate``):

* ``perplexity``: the model's, per split, over the predicted tokens of whole sentences (each
  sentence's first ``train.max_length`` of ``w1 .. wn </s>``, the tokens it was trained to predict);
* ``baselines``: interpolated modified Kneser-Ney 3- and 4-gram models
  (:mod:`pipeline.language_model.ngram`) fitted on the training split with the run's vocabulary,
  their test perplexity over exactly the same predicted tokens;
* ``kneser_ney_4gram_gap_percent``: ``100 (model / KN4 - 1)`` on test; negative: the model wins;
* ``interpolated``: the linear mixture ``lambda p_model + (1 - lambda) p_KN4`` token by token, its
  validation and test perplexity, ``lambda`` (``model_weight``) chosen to maximise the validation
  likelihood (:func:`interpolation_weight`); the test split never chooses it. Mixing helps even a
  model that beats the n-grams when the two are wrong in different places (rare words, names:
  Mikolov et al. 2011 report 10-20 % below either alone on Penn Treebank).
* ``perplexity_per_character``: per split, ``exp(total NLL / characters)`` over the same predicted tokens, the
  characters being those of their surface forms (spaces and SentencePiece's ``▁`` not counted) plus one per
  ``</s>``: comparable between tokenizers (GiNZA words, characters, SentencePiece pieces) on the same text,
  where per-token perplexities are not (:func:`predicted_characters`).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pandas as pd

from pipeline import io as artifact_io
from pipeline.config import Config
from pipeline.language_model.data import (
    PROBABILITY_FLOOR,
    LanguageModelBatches,
    Perplexity,
    TBPTTDataset,
    num_tbptt_batches,
    token_stream,
)
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


def target_log_probabilities(model: keras.Model, sequences: list, label_ids: np.ndarray | None, bos_id: int,
                             eos_id: int, max_length: int, batch_size: int = 64) -> np.ndarray:
    """``ln p(target)`` of every predicted token of whole sentences, sentence after sentence.

    Args:
        model: a language model whose output is ``(batch, timesteps, vocab)`` probabilities; with
            two inputs it is conditioned on ``label_ids``.
        sequences: sentences as token-id arrays, without ``<s>``/``</s>``.
        label_ids: ``(sentences,)`` label per sentence for a conditioned model, else ``None``.
        bos_id, eos_id: ids of ``<s>`` and ``</s>``.
        max_length: timesteps per sentence; a longer sentence is cut as in training
            (:func:`pipeline.language_model.data.teacher_forcing_pairs`).
        batch_size: sentences per forward pass.

    Returns:
        float64 ``(tokens,)``: the first ``min(len(s) + 1, max_length)`` targets of each sentence
        ``s`` (``w1 .. wn </s>``), in the order of
        ``KneserNeyModel.token_log_probabilities(sequences, max_tokens=max_length)``; probabilities
        below ``PROBABILITY_FLOOR`` count as that floor, as in the ``Perplexity`` metric.
    """
    conditioned = len(model.inputs) > 1
    batches = LanguageModelBatches(sequences, label_ids, batch_size, max_length, bos_id, eos_id,
                                   conditioned=conditioned)
    per_sentence: list = [None] * len(sequences)
    for index in range(len(batches)):
        inputs, targets = batches[index]
        probabilities = np.asarray(model.predict_on_batch(inputs))  # compiled, not eager
        chosen = np.take_along_axis(probabilities, targets[..., None], axis=-1)[..., 0].astype(np.float64)
        log_chosen = np.log(np.clip(chosen, PROBABILITY_FLOOR, 1.0))
        for row, sentence in enumerate(batches.batches[index]):  # batches may come in another order
            per_sentence[sentence] = log_chosen[row, :min(len(sequences[sentence]) + 1, max_length)]
    return np.concatenate(per_sentence) if per_sentence else np.zeros(0)


def perplexity_of(log_probabilities: np.ndarray) -> float:
    """``exp(-mean ln p)`` of per-token log-probabilities ``(tokens,)``."""
    return math.exp(-math.fsum(log_probabilities) / len(log_probabilities))


def sentence_perplexity(model: keras.Model, sequences: list, label_ids: np.ndarray | None, bos_id: int,
                        eos_id: int, max_length: int, batch_size: int = 64) -> float:
    """exp(mean cross-entropy per predicted token) over whole sentences, ``</s>`` included, padding excluded."""
    return perplexity_of(target_log_probabilities(model, sequences, label_ids, bos_id, eos_id, max_length,
                                                  batch_size))


def predicted_characters(surfaces: list, max_length: int) -> int:
    """The characters that the predicted tokens of whole sentences spell: of each sentence's first
    ``min(n, max_length)`` surface tokens (those :func:`target_log_probabilities` scores), spaces and ``▁`` left
    out, plus one for ``</s>`` when it is predicted (``n + 1 <= max_length``)."""
    total = 0
    for tokens in surfaces:
        total += sum(len(token.replace("\u2581", "").replace(" ", "")) for token in tokens[:max_length])
        total += len(tokens) + 1 <= max_length
    return total


def mixture_log_probabilities(model_weight: float, model_log_probabilities: np.ndarray,
                              baseline_log_probabilities: np.ndarray) -> np.ndarray:
    """``ln(w p_model + (1 - w) p_baseline)`` per token, computed in log space; arrays ``(tokens,)``."""
    with np.errstate(divide="ignore"):  # w = 0 or 1: ln 0 = -inf drops that member exactly
        return np.logaddexp(np.log(model_weight) + model_log_probabilities,
                            np.log1p(-model_weight) + baseline_log_probabilities)


def interpolation_weight(model_log_probabilities: np.ndarray, baseline_log_probabilities: np.ndarray,
                         tolerance: float = 1e-6) -> float:
    """The weight ``w`` in ``[0, 1]`` of the model in the mixture with the highest likelihood of these tokens.

    ``sum ln(w p_model + (1 - w) p_baseline)`` is concave in ``w`` (a log of an affine function), so
    a golden-section search finds its one maximum; an end point wins when the other member adds
    nothing. Pass validation tokens: the weight is then an honest choice for the test split.

    Args:
        model_log_probabilities, baseline_log_probabilities: ``ln p`` of the same tokens ``(tokens,)``.
        tolerance: width of the final bracket.

    Returns:
        ``w``; 1: the baseline adds nothing, 0: the model adds nothing.
    """
    def likelihood(weight: float) -> float:
        return math.fsum(mixture_log_probabilities(weight, model_log_probabilities, baseline_log_probabilities))

    ratio = (math.sqrt(5) - 1) / 2
    low, high = 0.0, 1.0
    left, right = high - ratio * (high - low), low + ratio * (high - low)
    left_value, right_value = likelihood(left), likelihood(right)
    while high - low > tolerance:
        if left_value < right_value:
            low, left, left_value = left, right, right_value
            right = low + ratio * (high - low)
            right_value = likelihood(right)
        else:
            high, right, right_value = right, left, left_value
            left = high - ratio * (high - low)
            left_value = likelihood(left)
    best = (low + high) / 2
    return max((0.0, best, 1.0), key=likelihood)  # the maximum may sit on an end point


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The members of a ``model.members`` ensemble (:func:`pipeline.language_model.model.build_ensemble`), in
    order; empty for one model."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name.startswith("member_")]


BASELINES = (("kneser_ney_trigram", 3, "trigram"), ("kneser_ney_4gram", 4, "4-gram"))  # key, order, label
LABELS = {name: label for name, _, label in BASELINES}
MIXED_BASELINE = "kneser_ney_4gram"  # the n-gram model interpolated with the neural one


def evaluate_generator(config: Config, paths: Paths) -> dict:
    """Perplexity on train/validation/test sentences beside Kneser-Ney 3- and 4-gram models and the mixture."""
    run = load_run(paths.run)
    splits = EncodedSplits.load(paths.ids)
    vocab = run.vocab
    bos, eos = start_id(config, vocab), vocab.index[EOS]
    max_length = config.train.max_length
    metrics: dict = {"perplexity": {}, "tokens": {}}
    model_scores = {}  # split -> ln p of every predicted token
    for split in ("train", "validation", "test"):
        if len(splits.sequences[split]):
            model_scores[split] = target_log_probabilities(run.model, splits.sequences[split], splits.targets[split],
                                                           bos, eos, max_length)
            metrics["perplexity"][split] = perplexity_of(model_scores[split])
            metrics["tokens"][split] = len(model_scores[split])
    members = ensemble_members(run.model)
    if members:  # model.members: what each member scores alone, beside their mean
        metrics["members"] = {split: [sentence_perplexity(member, splits.sequences[split], splits.targets[split], bos,
                                                          eos, max_length) for member in members]
                              for split in ("validation", "test") if split in model_scores}
    surfaces = pd.read_parquet(paths.tokens, columns=["split", "surface"])
    for split, scores in model_scores.items():  # the ids of a split are its rows' tokens, in table order
        rows = [list(tokens) for tokens in surfaces.loc[surfaces["split"] == split, "surface"]]
        characters = predicted_characters(rows, max_length)
        if characters and [len(tokens) for tokens in rows] == [len(ids) for ids in splits.sequences[split]]:
            metrics.setdefault("perplexity_per_character", {})[split] = math.exp(-math.fsum(scores) / characters)
            metrics.setdefault("characters", {})[split] = characters
    if config.train.regime == "tbptt":
        stream = token_stream(splits.sequences["test"], eos)
        if num_tbptt_batches(len(stream), config.train.batch_size, config.train.bptt_steps) >= 1:
            shape_only = np.zeros_like(run.model.get_layer("embedding").get_weights()[0])
            stateful = build_generator(config.model, shape_only, 0, stateful=True, batch_size=config.train.batch_size)
            stateful.set_weights(run.model.get_weights())
            metrics["stream_perplexity_test"] = stream_perplexity(stateful, stream, config.train.batch_size,
                                                                  config.train.bptt_steps)
    # The n-gram models learn from the sentences the neural model saw (cut at max_length - 1 words) and
    # score exactly its targets: the same tokens in the same order, so perplexities and mixtures line up.
    cut = max_length - 1
    train = [s[:cut] for s in splits.sequences["train"]]
    baseline_scores = {}
    for name, order, _ in BASELINES:  # modified Kneser-Ney
        ngram_model = KneserNeyModel(order=order, bos_token=vocab.index[BOS], eos_token=eos, unk_token=1,
                                     pad_token=PAD_ID).fit(train, vocabulary=range(2, len(vocab)))
        baseline_scores[name] = {split: ngram_model.token_log_probabilities(splits.sequences[split], max_length)
                                 for split in ("validation", "test") if split in model_scores}
        if "test" in model_scores:
            metrics.setdefault("baselines", {})[name] = {"perplexity": perplexity_of(baseline_scores[name]["test"])}
    if "test" in model_scores:
        metrics["kneser_ney_4gram_gap_percent"] = 100 * (
            metrics["perplexity"]["test"] / metrics["baselines"][MIXED_BASELINE]["perplexity"] - 1)
    if "validation" in model_scores and "test" in model_scores:
        mixed = baseline_scores[MIXED_BASELINE]
        weight = interpolation_weight(model_scores["validation"], mixed["validation"])
        metrics["interpolated"] = {"with": MIXED_BASELINE, "model_weight": weight, "perplexity": {
            split: perplexity_of(mixture_log_probabilities(weight, model_scores[split], mixed[split]))
            for split in ("validation", "test")}}
    history_path = RunPaths(paths.run).history
    if history_path.is_file():
        run_paths = RunPaths(paths.run)
        run_paths.plots.mkdir(exist_ok=True)
        plot_history(pd.read_csv(history_path), run_paths.plots / "training_curves.png")
    artifact_io.write_json(RunPaths(paths.run).metrics, metrics)
    return metrics


def summary(metrics: dict) -> str:
    """The lines ``pipeline run`` and ``pipeline evaluate`` print: perplexities, baselines, gap, mixture."""
    lines = ["perplexity " + "  ".join(f"{split} {value:.1f}" for split, value in metrics["perplexity"].items())]
    if "perplexity_per_character" in metrics:
        lines.append("  per character (comparable across tokenizers): " + "  ".join(
            f"{split} {value:.2f}" for split, value in metrics["perplexity_per_character"].items()))
    if "stream_perplexity_test" in metrics:
        stream = metrics["stream_perplexity_test"]
        lines.append(f"  test stream perplexity (state carried across sentences): {stream:.1f}")
    for split, values in metrics.get("members", {}).items():
        lines.append(f"  {split} perplexity of each of the {len(values)} members alone: "
                     + ", ".join(f"{value:.1f}" for value in values)
                     + f"; of their mean distribution {metrics['perplexity'][split]:.1f}")
    baselines = metrics.get("baselines", {})
    for name, _, label in BASELINES:
        if name in baselines:
            lines.append(f"  Kneser-Ney {label} baseline: test perplexity {baselines[name]['perplexity']:.1f}")
    if baselines and "test" in metrics["perplexity"]:
        model = metrics["perplexity"]["test"]
        best_name = min(baselines, key=lambda name: baselines[name]["perplexity"])
        compared = MIXED_BASELINE if MIXED_BASELINE in baselines else best_name
        label = LABELS.get(compared, compared)
        gap = 100 * (model / baselines[compared]["perplexity"] - 1)
        verdict = ""
        if model >= baselines[compared]["perplexity"]:
            verdict = f": the model does not beat the Kneser-Ney {label} baseline"
        elif model >= baselines[best_name]["perplexity"]:
            verdict = f": the model does not beat the Kneser-Ney {LABELS.get(best_name, best_name)} baseline"
        lines.append(f"  model vs Kneser-Ney {label}: test perplexity {gap:+.1f}%{verdict}")
    if "interpolated" in metrics:
        mixture = metrics["interpolated"]
        weight = mixture["model_weight"]
        label = LABELS.get(mixture["with"], mixture["with"])
        lines.append(f"  interpolated {weight:.2f} x model + {1 - weight:.2f} x Kneser-Ney {label} (weight chosen "
                     f"on validation): test perplexity {mixture['perplexity']['test']:.1f} "
                     f"(validation {mixture['perplexity']['validation']:.1f})")
    return "\n".join(lines)
