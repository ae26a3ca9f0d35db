"""Training pairs for the reading model: a sentence and its katakana reading, from GiNZA for free.

SudachiPy (under GiNZA's tokenizer, no statistical component needed) gives every token a
``Reading`` in its morphology (``token.morph.get("Reading")``): 今日 -> キョウ, 行き -> イキ. The
reading of a sentence is the readings of its tokens joined; a token without one (some symbols,
unknown words) keeps its surface, whitespace is dropped. So any corpus the pipeline reads becomes
pairs ``今日は清水寺へ行きました。`` -> ``キョウハキヨミズテラヘイキマシタ。``.

Both sides are character sequences: the source vocabulary is the characters of the training
split (``<pad>``, ``<unk>`` first), the target alphabet the reading characters with ``<s>``
(start of decoding) and ``</s>`` (end).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.errors import PipelineError
from pipeline.sections import TokenizeConfig
from pipeline.text.vocab import BOS, EOS, PAD_ID, Vocabulary

log = logging.getLogger(__name__)

HIRAGANA_START, HIRAGANA_END, KATAKANA_OFFSET = 0x3041, 0x3096, 0x60


def sentence_readings(texts: Sequence[str], settings: TokenizeConfig) -> list[str]:
    """The katakana reading of each text (GiNZA's tokenizer only; see the module docstring)."""
    from pipeline.text.tokenize import chunk_text, load_nlp

    nlp = load_nlp(settings.model, ())
    pieces, owners = [], []
    for index, text in enumerate(texts):
        for piece in chunk_text(text):
            pieces.append(piece)
            owners.append(index)
    readings = [[] for _ in texts]
    for owner, doc in zip(owners, nlp.pipe(pieces, batch_size=settings.batch_size)):
        for token in doc:
            if token.is_space or not token.text.strip():
                continue
            reading = token.morph.get("Reading")
            readings[owner].append(reading[0] if reading and reading[0] else token.text)
    return ["".join(parts) for parts in readings]


def to_katakana(text: str) -> str:
    """Hiragana -> katakana (the same sound, 0x60 code points higher); everything else unchanged."""
    return "".join(chr(ord(c) + KATAKANA_OFFSET) if HIRAGANA_START <= ord(c) <= HIRAGANA_END else c for c in text)


def is_kana(character: str) -> bool:
    """Hiragana, katakana or the long-vowel mark ー."""
    code = ord(character)
    return 0x3041 <= code <= 0x3096 or 0x30A1 <= code <= 0x30FA or character == "ー"


def kana_copy(text: str) -> str:
    """The baseline: copy the kana (hiragana as katakana), drop everything else (kanji, punctuation, ...)."""
    return to_katakana("".join(c for c in text if is_kana(c)))


def edit_distance(hypothesis: str, reference: str) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning one into the other."""
    previous = list(range(len(reference) + 1))
    for row, h in enumerate(hypothesis, start=1):
        current = [row]
        for column, r in enumerate(reference, start=1):
            current.append(min(previous[column] + 1, current[column - 1] + 1, previous[column - 1] + (h != r)))
        previous = current
    return previous[-1]


def reading_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Character error rate (total edit distance / total reference characters) and exact-sentence match."""
    if len(hypotheses) != len(references) or not references:
        raise ValueError("reading_scores needs as many hypotheses as references, at least one")
    errors = sum(edit_distance(h, r) for h, r in zip(hypotheses, references))
    characters = sum(len(r) for r in references)
    exact = sum(h == r for h, r in zip(hypotheses, references))
    return {"cer": errors / max(1, characters), "exact_match": exact / len(references), "n": len(references)}


def build_vocabularies(sources: Iterable[str], targets: Iterable[str]) -> tuple[Vocabulary, Vocabulary]:
    """Source characters and target alphabet (``<s>``, ``</s>`` after ``<pad>``, ``<unk>``) of the training pairs."""
    return Vocabulary.build(list(sources), max_size=100_000), Vocabulary.build(list(targets), max_size=100_000,
                                                                               specials=(BOS, EOS))


def encode_sources(texts: Sequence[str], vocab: Vocabulary) -> np.ndarray:
    """Character ids ``(sentences, longest)``, padded with ``PAD_ID`` at the end; unseen characters are ``<unk>``."""
    longest = max((len(text) for text in texts), default=1)
    ids = np.full((len(texts), max(1, longest)), PAD_ID, dtype=np.int32)
    for row, text in enumerate(texts):
        ids[row, :len(text)] = vocab.encode(text)
    return ids


def encode_targets(readings: Sequence[str], alphabet: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Teacher forcing: decoder inputs ``<s> y1 .. yn`` and targets ``y1 .. yn </s>``, both ``(sentences, n + 1)``."""
    bos, eos = alphabet.index[BOS], alphabet.index[EOS]
    longest = max((len(reading) for reading in readings), default=0) + 1
    inputs = np.full((len(readings), longest), PAD_ID, dtype=np.int32)
    targets = np.full((len(readings), longest), PAD_ID, dtype=np.int32)
    for row, reading in enumerate(readings):
        ids = alphabet.encode(reading)
        inputs[row, :len(ids) + 1] = [bos, *ids]
        targets[row, :len(ids) + 1] = [*ids, eos]
    return inputs, targets


def split_pairs(table, split: str, settings: TokenizeConfig, max_chars: int = 0) -> tuple[list[str], list[str]]:
    """``(texts, readings)`` of one split of a prepared/tokenized table; ``max_chars`` > 0 drops longer texts."""
    texts = [text for text in table.loc[table["split"] == split, "text"].tolist() if text.strip()]
    if max_chars:
        kept = [text for text in texts if len(text) <= max_chars]
        if len(kept) < len(texts):
            log.info("%s: %d of %d sentences longer than train.max_length = %d characters left out", split,
                     len(texts) - len(kept), len(texts), max_chars)
        texts = kept
    if not texts and split == "train":
        raise PipelineError(f"the train split has no sentence of at most train.max_length = {max_chars} characters; "
                            "raise train.max_length")
    return texts, sentence_readings(texts, settings) if texts else []
