"""Why a classifier chose its label: a weight per token, from attention or by occlusion.

:func:`explain` returns :func:`pipeline.classifier.predict.classify`'s result per text plus
``method``, ``tokens`` (``[[surface, weight], ...]`` for the tokens the model saw: the run
tokenizer's surface forms, the first ``train.max_length`` of them) and ``truncated`` (how many
tokens past ``train.max_length`` the model never saw):

- **attention** (``model.pooling = "attention"``): the attention pooling's ``alpha_t``, the
  model's own weighting of its hidden states; ``>= 0`` and summing to 1 over the sentence. It says
  where the model looked, which is not always why it decided (Jain & Wallace 2019).
- **occlusion** (every other model; Zeiler & Fergus 2014): ``p(label | sentence) - p(label |
  sentence with token t replaced by <unk>)``, all of a sentence's occluded copies in one batch.
  Positive: the token supports the label; negative: the label is more likely without it.

Model inputs are built as :func:`classify` builds them (``encode_texts``, ``text_batches``), so
whatever inputs the model takes, the explained forward pass sees what classify sees. Occlusion also
blanks the occluded token's surface form, so subword inputs (characters, n-grams) lose it too.
:func:`terminal_line` and :func:`html_page` render the weights as background colours whose
strength is the weight relative to the sentence's largest ``|weight|``.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.classifier.ensemble import mix
from pipeline.classifier.predict import encode_texts, labelled, surface_forms, text_batches, tokenize_texts
from pipeline.layers.attention import AttentionPooling
from pipeline.runs import Run
from pipeline.text.vocab import UNK_ID

# (probabilities (classes,), weight per token (timesteps,)) of one sentence's ids (timesteps,) and surface forms
Weigher = Callable[[np.ndarray, list[str]], tuple[np.ndarray, np.ndarray]]

METHOD_NOTES = {
    "attention": "attention weight alpha of each token (they sum to 1 per sentence)",
    "occlusion": "drop in the label's probability when the token is replaced by <unk> "
                 "(red: supports the label, blue: the label is more likely without it)",
}


def explain(run: Run, texts: list[str]) -> list[dict]:
    """Per text, classify's result plus ``method``, ``tokens`` and ``truncated``; or ``{"text", "error"}``."""
    tokenized = tokenize_texts(run, texts)
    sequences, errors = encode_texts(run, texts, tokenized)
    max_length = run.config.train.max_length
    attention = attention_layer(run.model)
    method = "attention" if attention is not None else "occlusion"
    weigh = attention_weigher(run, attention) if attention is not None else occlusion_weigher(run)
    results = []
    for text, cleaned, ids, words, error in zip(texts, tokenized[0], sequences, surface_forms(*tokenized), errors):
        if error:
            results.append({"text": text, "error": error})
            continue
        seen, words = ids[:max_length], words[:max_length]
        probabilities, weights = weigh(seen, words)  # the weights explain the recurrent model
        if "ensemble" in run.extras:  # the label is the ensemble's, as `classify` gives it
            member, weight = run.extras["ensemble"]
            probabilities = mix(probabilities, member.probabilities([cleaned])[0], weight)
        results.append({**labelled(run, text, probabilities, ids), "method": method,
                        "tokens": [[word, float(weight)] for word, weight in zip(words, weights)],
                        "truncated": len(ids) - len(seen)})
    return results


def attention_layer(model: Any) -> AttentionPooling | None:
    """The model's attention pooling when it keeps its weights in the graph, else None."""
    found = [layer for layer in model.layers if isinstance(layer, AttentionPooling) and layer.return_attention]
    return found[0] if len(found) == 1 else None


def model_inputs(run: Run, sequences: list[np.ndarray], words: list[list[str]]) -> Any:
    """One batch of id ``sequences`` (with their surface forms ``words``) in the form the model takes."""
    return text_batches(run, sequences, words, len(sequences))[0][0]


def attention_weigher(run: Run, layer: AttentionPooling) -> Weigher:
    """Probabilities and ``alpha`` ``(timesteps,)`` from one forward pass of a model that also outputs ``alpha``."""
    import keras

    explainer = keras.Model(run.model.input, [run.model.outputs[0], layer.output[1]])

    def weigh(ids: np.ndarray, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        probabilities, alpha = explainer.predict_on_batch(model_inputs(run, [ids], [words]))
        return np.asarray(probabilities)[0], np.asarray(alpha)[0, :len(ids)]

    return weigh


def occlusion_weigher(run: Run) -> Weigher:
    """Probabilities and the drop of the label's probability per occluded token, one batch per sentence."""

    def weigh(ids: np.ndarray, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        occluded = np.repeat(ids[None, :], len(ids), axis=0)
        np.fill_diagonal(occluded, UNK_ID)  # row t: token t replaced by <unk>
        blanked = [words[:t] + [""] + words[t + 1:] for t in range(len(words))]  # and its characters removed
        inputs = model_inputs(run, [ids, *occluded], [words, *blanked])
        probabilities = np.asarray(run.model.predict_on_batch(inputs))
        best = int(np.argmax(probabilities[0]))
        return probabilities[0], probabilities[0, best] - probabilities[1:, best]

    return weigh


def strengths(result: dict) -> list[float]:
    """Each token's weight over the sentence's largest ``|weight|``: in [-1, 1]."""
    weights = np.array([weight for _, weight in result["tokens"]], dtype=np.float64)
    scale = np.abs(weights).max(initial=0.0)
    return list(weights / scale) if scale > 0 else [0.0] * len(weights)


def ansi_background(strength: float) -> int:
    """An ANSI 256-colour code: white for 0, towards red for +1 and blue for -1 (the 6x6x6 cube)."""
    step = int(round(5 * min(abs(strength), 1.0)))
    red, green, blue = (5, 5 - step, 5 - step) if strength >= 0 else (5 - step, 5 - step, 5)
    return 16 + 36 * red + 6 * green + blue


def terminal_line(result: dict, color: bool) -> str:
    """``  method: token(0.23) ...``, or the tokens on coloured backgrounds (black text) with ``color``."""
    if color:
        shown = [f"\x1b[48;5;{ansi_background(strength)}m\x1b[38;5;16m{word}\x1b[0m"
                 for (word, _), strength in zip(result["tokens"], strengths(result))]
    else:
        shown = [f"{word}({round(weight, 2) + 0.0:.2f})" for word, weight in result["tokens"]]  # no -0.00
    cut = f" … (+{result['truncated']} tokens past train.max_length)" if result["truncated"] else ""
    return f"  {result['method']}: " + " ".join(shown) + cut


def html_page(results: list[dict], title: str) -> str:
    """One self-contained HTML page: per sentence its label, probability and tokens highlighted by weight."""
    methods = sorted({result["method"] for result in results if "method" in result})
    notes = "".join(f"<p class='note'>{method}: {html.escape(METHOD_NOTES[method])}</p>" for method in methods)
    rows = [html_row(number, result) for number, result in enumerate(results, start=1)]
    return (f"<!DOCTYPE html>\n<html lang='ja'>\n<head>\n<meta charset='utf-8'>\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n{notes}\n" + "\n".join(rows) + "\n</body>\n</html>\n")


STYLE = ("body{font-family:sans-serif;margin:2em;max-width:60em}"
         ".sentence{margin:1em 0;padding:.6em 0;border-bottom:1px solid #ddd;line-height:2}"
         ".meta{color:#444;font-size:.9em}.note{color:#444}.error{color:#b00020}"
         ".token{padding:.15em .1em;margin:0 .05em;border-radius:3px}")


def html_row(number: int, result: dict) -> str:
    if result.get("error"):
        return (f"<div class='sentence error'>line {number}: {html.escape(result['error'])}"
                f" <span class='meta'>{html.escape(result['text'])}</span></div>")
    spans = []
    for (word, weight), strength in zip(result["tokens"], strengths(result)):
        rgb = "220,38,38" if strength >= 0 else "37,99,235"
        spans.append(f"<span class='token' style='background:rgba({rgb},{abs(strength):.2f})' "
                     f"title='{weight:.4f}'>{html.escape(word)}</span>")
    cut = f" <span class='meta'>… +{result['truncated']} tokens past train.max_length</span>" \
        if result["truncated"] else ""
    return (f"<div class='sentence'><div class='meta'>line {number} · <b>{html.escape(result['label'])}</b> "
            f"{result['probability']:.3f} · {result['method']}</div><div>{''.join(spans)}{cut}</div></div>")
