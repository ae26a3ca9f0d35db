"""The ``evaluate`` stage for the reading model: character error rate and exact match on the test split.

Every test sentence is read twice, greedily and with beam search (``reading.beam_size``,
``reading.length_penalty``), and scored against GiNZA's reading beside a baseline that copies
the kana (hiragana as katakana) and drops everything else: what a reader who knows no kanji
gets right. The summary says plainly when the model loses to it. ``metrics.json`` keeps a few
examples; ``plots/`` the training curves and, with attention, the heat map of the first test sentence.
"""

from __future__ import annotations

import logging

import pandas as pd

from pipeline import io as artifact_io
from pipeline.config import Config
from pipeline.paths import Paths, RunPaths
from pipeline.plots import plot_history
from pipeline.runs import load_run
from pipeline.seq2seq.data import kana_copy, reading_scores, split_pairs
from pipeline.seq2seq.decode import Reader
from pipeline.seq2seq.plots import plot_attention

log = logging.getLogger(__name__)
EXAMPLES = 5  # test sentences kept in metrics.json with their readings


def evaluate_reader(config: Config, paths: Paths) -> dict:
    """Score the run on the test split: ``metrics.json`` and ``plots/*.png`` in the run folder."""
    run = load_run(paths.run)
    folder = RunPaths(paths.run)
    table = pd.read_parquet(paths.tokens, columns=["text", "split"])
    texts, references = split_pairs(table, "test", config.tokenize)
    if not texts:
        texts, references = split_pairs(table, "validation", config.tokenize)  # tiny corpora: no test split
    reader = Reader(run)
    greedy = reader.read(texts, beam_size=1)
    beam = reader.read(texts, config.reading.beam_size, config.reading.length_penalty)
    metrics = {
        "split": "test" if table["split"].eq("test").any() else "validation",
        "attention": config.reading.attention,
        "beam_size": config.reading.beam_size,
        "length_penalty": config.reading.length_penalty,
        "greedy": reading_scores([r["reading"] for r in greedy], references),
        "beam": reading_scores([r["reading"] for r in beam], references),
        "kana_copy": reading_scores([kana_copy(text) for text in texts], references),
        "examples": [{"text": text, "reference": reference, "reading": result["reading"]}
                     for text, reference, result in list(zip(texts, references, beam))[:EXAMPLES]],
    }
    artifact_io.write_json(folder.metrics, metrics)
    if folder.history.is_file():
        plot_history(pd.read_csv(folder.history), folder.plots / "history.png")
    if beam and beam[0]["attention"] is not None:
        plot_attention(beam[0]["attention"], beam[0]["source"], beam[0]["output"], folder.plots / "attention.png")
    log.info("test CER %.3f (beam %d), kana-copy baseline %.3f", metrics["beam"]["cer"],
             config.reading.beam_size, metrics["kana_copy"]["cer"])
    return {"cer": metrics["beam"]["cer"]}


def summary(metrics: dict) -> str:
    """Printed by ``pipeline evaluate`` and ``pipeline run``: the scores beside the baseline, and the gap."""
    beam, greedy, baseline = metrics["beam"], metrics["greedy"], metrics["kana_copy"]
    lines = [
        f"{metrics['split']} character error rate {beam['cer']:.3f}  exact match {beam['exact_match']:.3f}  "
        f"(beam {metrics['beam_size']}, attention {metrics['attention']}, n={beam['n']})",
        f"  greedy: character error rate {greedy['cer']:.3f}  exact match {greedy['exact_match']:.3f}",
        f"  kana-copy baseline: character error rate {baseline['cer']:.3f}  exact match {baseline['exact_match']:.3f}",
    ]
    gap = beam["cer"] - baseline["cer"]
    verdict = "the model beats the baseline" if gap < 0 else "the model LOSES to the kana-copy baseline"
    lines.append(f"  model − kana copy: character error rate {gap:+.3f} ({verdict})")
    for example in metrics.get("examples", [])[:3]:
        lines.append(f"  {example['text']} → {example['reading']}  (GiNZA: {example['reference']})")
    return "\n".join(lines)
