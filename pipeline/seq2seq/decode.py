"""Reading sentences aloud with a trained run: greedy decoding and beam search, batched over sentences.

The encoder runs once per batch of sentences; then the one-step decoder extends every live
hypothesis by one character at a time, feeding back its own output (no teacher forcing now).
Beam search keeps the ``beam_size`` best partial readings per sentence by total log
probability; a hypothesis ends at ``</s>`` and is ranked by its length-normalised score
``log p / length ** length_penalty`` (``length`` counts ``</s>``; Wu et al. 2016 use a similar
penalty): without it the sum of negative log probabilities favours short readings. A sentence
is done when the worst of its ``beam_size`` best finished readings scores at least what the best
live one would if it ended at the next step (the rule of Hugging Face's ``BeamHypotheses``), or
at :func:`max_output_length` characters. Greedy decoding is the beam search with ``beam_size = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.seq2seq.data import BOS, EOS, encode_sources
from pipeline.seq2seq.model import inference_models
from pipeline.text.vocab import PAD_ID, UNK_ID, Vocabulary

BATCH_SENTENCES = 64  # sentences decoded together: one step call for all their hypotheses


def max_output_length(source_length: int) -> int:
    """A reading has at most ~4 kana per character (承る ウケタマワル, 123 イチニサン); a margin more."""
    return 4 * source_length + 8


@dataclass
class Hypothesis:
    ids: list[int]
    log_probability: float
    attention: np.ndarray  # (output steps, source_length): one row per output step, </s> included when ended
    ended: bool = True  # False: cut at the maximum length before </s>


class Reader:
    """A run folder's model split into its encoder and one-step decoder, ready to read sentences.

    Args:
        run: a loaded reading run (:func:`pipeline.runs.load_run`): its vocabulary holds the source
            characters, its labels the target alphabet.
    """

    def __init__(self, run: Any) -> None:
        if run.config.model.task != "reading":
            raise PipelineError(f"{run.folder}: a {run.config.model.task} run, not a reading model; "
                                "train one with `pipeline run configs/reading.toml`")
        self.config, self.source_vocab = run.config, run.vocab
        self.alphabet = Vocabulary(run.labels)
        if BOS not in self.alphabet or EOS not in self.alphabet:
            raise PipelineError(f"{run.folder}: labels.json lacks {BOS} or {EOS}; retrain with --force")
        self.encoder, self.step = inference_models(run.model, run.config)
        self.has_attention = run.config.reading.attention != "none"

    def read(self, texts: list[str], beam_size: int = 1, length_penalty: float = 0.0) -> list[dict]:
        """``[{"text", "reading", "log_probability", "source", "output", "attention"}]`` per text.

        ``output``: the characters written, then ``</s>`` (unless cut at the maximum length);
        ``attention``: ``(len(output), source characters)``, or None for a model without attention.
        """
        results = []
        for start in range(0, len(texts), BATCH_SENTENCES):
            batch = texts[start:start + BATCH_SENTENCES]
            for text, best in zip(batch, self._beam_search(batch, beam_size, length_penalty)):
                output = self.alphabet.decode(best.ids)
                results.append({"text": text, "reading": "".join(output), "log_probability": best.log_probability,
                                "source": list(text), "output": output + ([EOS] if best.ended else []),
                                "attention": best.attention[:, :len(text)] if self.has_attention else None})
        return results

    def _beam_search(self, texts: list[str], beam_size: int, length_penalty: float) -> list[Hypothesis]:
        count, width = len(texts), beam_size
        source_ids = encode_sources(texts, self.source_vocab)
        encoded, sentence, *states = (np.asarray(x) for x in self.encoder.predict_on_batch(source_ids))
        steps = max(max_output_length(len(text)) for text in texts)
        lengths = np.array([len(text) for text in texts])

        def tile(array: np.ndarray) -> np.ndarray:  # (count, ...) -> (count * width, ...), beams adjacent
            return np.repeat(array, width, axis=0)

        encoded, sentence, source_mask = tile(encoded), tile(sentence), tile(source_ids != PAD_ID)
        states = [tile(state) for state in states]
        scores = np.full((count, width), -np.inf)
        scores[:, 0] = 0.0  # one live hypothesis per sentence at the start
        histories = np.zeros((count, width, 0), dtype=np.int64)
        attention = np.zeros((count, width, 0, source_ids.shape[1]), dtype=np.float32)
        previous = np.full((count * width, 1), self.alphabet.index[BOS], dtype=np.int32)
        finished: list[list[tuple[float, Hypothesis]]] = [[] for _ in range(count)]
        done = np.zeros(count, dtype=bool)
        banned = [PAD_ID, UNK_ID, self.alphabet.index[BOS]]  # never produced
        eos = self.alphabet.index[EOS]
        for t in range(steps):
            probabilities, alpha, *states = self.step.predict_on_batch(
                [previous, encoded, source_mask, sentence, *states])
            log_p = np.log(np.maximum(np.asarray(probabilities)[:, 0, :], 1e-12)).reshape(count, width, -1)
            log_p[:, :, banned] = -np.inf
            alpha = np.asarray(alpha)[:, 0, :].reshape(count, width, -1)
            total = (scores[:, :, None] + log_p).reshape(count, -1)  # (count, width * alphabet)
            candidates = np.argsort(-total, axis=1)[:, :2 * width]  # enough to keep `width` that do not end
            new_scores = np.full((count, width), -np.inf)
            parents = np.zeros((count, width), dtype=np.int64)
            tokens = np.full((count, width), eos, dtype=np.int64)
            for b in range(count):
                if done[b]:
                    continue
                kept = 0
                for flat in candidates[b]:
                    parent, token, score = divmod(int(flat), log_p.shape[2]) + (total[b, flat],)
                    if not np.isfinite(score):
                        break
                    if token == eos or t == steps - 1 or t + 1 >= max_output_length(lengths[b]):
                        ids = [int(i) for i in histories[b, parent]] + ([] if token == eos else [token])
                        rows = np.concatenate([attention[b, parent], alpha[b, parent][None]], axis=0)
                        normalised = score / max(1, len(ids) + 1) ** length_penalty
                        finished[b].append((normalised, Hypothesis(ids, float(score), rows, token == eos)))
                    else:
                        new_scores[b, kept], parents[b, kept], tokens[b, kept] = score, parent, token
                        kept += 1
                    if kept == width:
                        break
                finished[b] = sorted(finished[b], key=lambda pair: -pair[0])[:width]
                # Done when the worst kept reading beats what the best live one would score if it ended next step.
                best_live = new_scores[b].max() / (t + 2) ** length_penalty if kept else -np.inf
                done[b] = kept == 0 or (len(finished[b]) >= width and finished[b][-1][0] >= best_live)
            if done.all():
                break
            rows = parents + np.arange(count)[:, None] * width  # (count, width) indexes into the flat beams
            histories = np.concatenate([histories[np.arange(count)[:, None], parents], tokens[:, :, None]], axis=2)
            attention = np.concatenate([attention[np.arange(count)[:, None], parents],
                                        alpha[np.arange(count)[:, None], parents][:, :, None]], axis=2)
            states = [np.asarray(state)[rows.reshape(-1)] for state in states]
            scores, previous = new_scores, tokens.reshape(-1, 1).astype(np.int32)
        return [max(hypotheses, key=lambda pair: pair[0])[1] for hypotheses in finished]


def read(run: Any, texts: list[str], beam_size: int | None = None, length_penalty: float | None = None) -> list[dict]:
    """:meth:`pipeline.runs.Run.read`: the reading of each text with the run's :class:`Reader` (built once per
    loaded run); ``beam_size`` and ``length_penalty`` default to the run's ``[reading]``."""
    reader = run.extras.get("reader")
    if reader is None:
        reader = run.extras["reader"] = Reader(run)
    settings = run.config.reading
    if beam_size is not None and beam_size < 1:
        raise PipelineError(f"beam size must be an integer >= 1, got {beam_size}")
    if length_penalty is not None and not 0 <= length_penalty <= 2:
        raise PipelineError(f"length penalty must be in [0, 2], got {length_penalty}")
    return reader.read(texts, settings.beam_size if beam_size is None else beam_size,
                       settings.length_penalty if length_penalty is None else length_penalty)
