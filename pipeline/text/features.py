"""Subword inputs of the classifier: hashed character ids per token and a hashed bag of n-grams.

Real short texts are full of names, products, katakana loanwords, numbers and English words that
neither the vocabulary nor the ``ja_ginza`` vectors know. Two signals reach them:

* **characters per token** (Ling et al. 2015; Lample et al. 2016): ``char_ids``
  ``(timesteps, max_chars)``, the first ``model.max_chars`` characters of each token's surface
  form, read by a character encoder (:mod:`pipeline.layers.char_encoder`);
* **a bag of n-grams** (fastText, Joulin et al. 2017): ``ngram_ids`` ``(n,)``, character 1–3-grams
  of the sentence and/or word uni- and bigrams, averaged by the wide head of the classifier.

Every string is mapped to an id by a stable hash, ``crc32(UTF-8 bytes) % buckets + 1`` (0 is
padding), never Python's salted ``hash()``: the ids are the same in every process, so a run folder
encodes any text, words never seen in training included, with no extra vocabulary file.

The sentence's characters are its tokens' surface forms joined (whitespace dropped), cut after the
first ``train.max_length`` tokens: the tokenizer's filters and the truncation apply to the
character n-grams exactly as they apply to the words, at training and at classify time alike.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.sections import ModelConfig
from pipeline.text.encoded import RaggedIds, StoredArray

CHAR_ORDERS = (1, 2, 3)  # character n-gram lengths of the bag (the TF-IDF char 1-3-gram baseline's)
WORD_FIELD = "surface"  # the characters a token is written with, whatever vectorize.token_field says


def uses_subword_features(settings: ModelConfig) -> bool:
    """Whether the classifier takes ``char_ids`` and/or ``ngram_ids`` besides ``token_ids``."""
    return settings.char_encoder != "none" or settings.ngram_features != "none"


def stable_id(piece: str, buckets: int) -> int:
    """``piece``'s id in ``[1, buckets]``: crc32 of its UTF-8 bytes, the same in every process."""
    return zlib.crc32(piece.encode("utf-8")) % buckets + 1


def char_ids(words: Sequence[str], max_chars: int, buckets: int) -> np.ndarray:
    """Hashed ids of the first ``max_chars`` characters of each word, int32 ``(len(words), max_chars)``.

    Shorter words are right-padded with 0; every real character gets an id >= 1, so a row is
    padding exactly when its word is.
    """
    ids = np.zeros((len(words), max_chars), dtype=np.int32)
    for row, word in enumerate(words):
        kept = word[:max_chars]
        ids[row, :len(kept)] = [stable_id(char, buckets) for char in kept]
    return ids


def char_ngrams(text: str, orders: Sequence[int] = CHAR_ORDERS) -> list[str]:
    """Every character n-gram of ``text`` for each length in ``orders``, in order of position."""
    return [text[start:start + order] for order in orders for start in range(len(text) - order + 1)]


def word_ngrams(words: Sequence[str]) -> list[str]:
    """Word unigrams and bigrams (a bigram is the two words joined by a space)."""
    return [*words, *(f"{first} {second}" for first, second in zip(words, words[1:]))]


def ngram_ids(words: Sequence[str], kind: str, buckets: int) -> np.ndarray:
    """Hashed ids of the bag of n-grams ``kind`` (``char``, ``word`` or ``both``), int32 ``(n,)``.

    Character and word n-grams are hashed in separate namespaces (``c:`` and ``w:`` prefixes), so
    the character 京 and the word 京 are different features. Repeated n-grams repeat their id: the
    bag's mean weighs them by count, as fastText does.
    """
    pieces = []
    if kind in ("char", "both"):
        pieces += ["c:" + gram for gram in char_ngrams("".join(words))]
    if kind in ("word", "both"):
        pieces += ["w:" + gram for gram in word_ngrams(words)]
    return np.fromiter((stable_id(piece, buckets) for piece in pieces), dtype=np.int32, count=len(pieces))


def sentence_inputs(settings: ModelConfig, sentences: Sequence[Sequence[str]], max_length: int) -> dict:
    """The extra inputs of :class:`pipeline.text.batches.SequenceBatches` for tokenized ``sentences``.

    Returns ``{"token_inputs": {...}, "bag_inputs": {...}}``: ``char_ids`` (one
    ``(timesteps, max_chars)`` array per sentence) when ``model.char_encoder`` is on and
    ``ngram_ids`` (one ``(n,)`` array per sentence) when ``model.ngram_features`` is on; only the
    first ``max_length`` tokens of a sentence count. Both dicts are empty when both are off. The arrays
    are made when a batch asks for them (:func:`subword_rows`).
    """
    return subword_rows(settings, SentenceWords.of(sentences), max_length)


def subword_rows(settings: ModelConfig, words: SentenceWords, max_length: int) -> dict:
    """:func:`sentence_inputs` of the sentences ``words`` holds: :class:`CharRows` and :class:`NgramRows`."""
    token_inputs, bag_inputs = {}, {}
    if settings.char_encoder != "none":
        token_inputs["char_ids"] = CharRows(words, settings.max_chars, settings.char_buckets, max_length)
    if settings.ngram_features != "none":
        bag_inputs["ngram_ids"] = NgramRows(words, settings.ngram_features, settings.ngram_buckets, max_length)
    return {"token_inputs": token_inputs, "bag_inputs": bag_inputs}


def _add_sentence(words: Sequence[str], forms: dict[str, int], codes: array, lengths: array) -> None:
    """Append a sentence's word codes to ``codes`` (new words get the next code in ``forms``) and its length."""
    codes.extend(forms.setdefault(word, len(forms)) for word in words)
    lengths.append(len(words))


def _ragged(codes: array, lengths: array) -> RaggedIds:
    return RaggedIds(np.frombuffer(codes, dtype=np.int32), np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]))


class SentenceWords(Sequence):
    """The words of many sentences in little memory: each distinct word once, a sentence as word codes.

    Item ``i`` is sentence ``i``'s list of words. Memory: the distinct words, 8 bytes a sentence and the codes
    (4 bytes a token; none when they are read from a file, as :func:`read_split_words` keeps them), so the
    training split of a corpus larger than memory fits where its token lists would not.

    Args:
        forms: the distinct words, a code's word is ``forms[code]``.
        codes: the sentences' codes, :class:`~pipeline.text.encoded.RaggedIds` (flat ``(tokens,)`` + offsets).
    """

    def __init__(self, forms: list[str], codes: RaggedIds) -> None:
        self.forms, self.codes = forms, codes

    @classmethod
    def of(cls, sentences: Sequence[Sequence[str]]) -> SentenceWords:
        """``sentences`` (lists of words) kept this way."""
        forms: dict[str, int] = {}
        codes, lengths = array("i"), array("q")
        for words in sentences:
            _add_sentence(words, forms, codes, lengths)
        return cls(list(forms), _ragged(codes, lengths))

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index: int) -> list[str]:
        forms = self.forms
        return [forms[code] for code in self.codes[index].tolist()]

    def lengths(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Words per sentence (of ``rows`` only, when given), int64."""
        return self.codes.lengths(rows)


class CharRows(Sequence):
    """``char_ids`` of each sentence of a :class:`SentenceWords`, made when a batch asks for it.

    Every distinct word's row is hashed once (``(forms, max_chars)`` int32); a sentence's array
    ``(tokens, max_chars)`` is those rows taken by its codes (its first ``max_length``), equal to
    :func:`char_ids` of its words.
    """

    def __init__(self, words: SentenceWords, max_chars: int, buckets: int, max_length: int) -> None:
        self.codes, self.max_length = words.codes, max_length
        self.table = char_ids(words.forms, max_chars, buckets)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.table[self.codes[index][:self.max_length]]


class NgramRows(Sequence):
    """``ngram_ids`` of each sentence of a :class:`SentenceWords` (its first ``max_length`` words), hashed
    when a batch asks for it: no bag is kept, so memory does not grow with the corpus (hashing costs tens of
    microseconds a sentence, a small share of a recurrent model's step)."""

    def __init__(self, words: SentenceWords, kind: str, buckets: int, max_length: int) -> None:
        self.words, self.kind, self.buckets, self.max_length = words, kind, buckets, max_length

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, index: int) -> np.ndarray:
        return ngram_ids(self.words[index][:self.max_length], self.kind, self.buckets)

    def lengths(self, rows: np.ndarray | None = None) -> np.ndarray:
        """N-grams per sentence (of ``rows`` only, when given), int64, counted from the words without hashing
        them."""
        char_lengths = np.fromiter((len(form) for form in self.words.forms), dtype=np.int64,
                                   count=len(self.words.forms))
        sentences = self.words.codes if rows is None else (self.words.codes[int(row)] for row in rows)
        counts = np.empty(len(self) if rows is None else len(rows), dtype=np.int64)
        for position, codes in enumerate(sentences):
            kept = codes[:self.max_length]
            count = 0
            if self.kind in ("char", "both"):
                characters = int(char_lengths[kept].sum())
                count += sum(max(0, characters - order + 1) for order in CHAR_ORDERS)
            if self.kind in ("word", "both"):
                count += max(0, 2 * len(kept) - 1)
            counts[position] = count
        return counts


def read_split_words(tokens_path: Path, splits: Sequence[str]) -> dict[str, SentenceWords]:
    """The surface words (:data:`WORD_FIELD`) of the rows of ``tokens.parquet`` in each of ``splits``, in file
    order (the order ``vectorize`` encoded them), read a batch of rows at a time.

    The sentences' word codes (4 bytes a token) go to an unnamed temporary file beside ``tokens.parquet`` a
    batch at a time, and are read back a sentence at a time (:class:`~pipeline.text.encoded.StoredArray`), so
    they take no memory of the process: what stays is each distinct word once and 8 bytes a sentence.
    """
    import tempfile

    import pyarrow as pa
    import pyarrow.compute as pc

    from pipeline.text.vectors import token_batches

    forms: dict[str, int] = {}
    files = {split: tempfile.TemporaryFile(dir=tokens_path.parent, prefix=".codes-") for split in splits}
    lengths: dict[str, list[np.ndarray]] = {split: [] for split in splits}
    wanted = pa.array(list(splits), pa.string())
    for batch in token_batches(tokens_path, ["split", WORD_FIELD]):
        batch = batch.filter(pc.is_in(batch.column(0), value_set=wanted))  # file order kept
        sentences = batch.column(1)
        # Arrow numbers the batch's distinct words in the order they first appear; only those few go through
        # Python, to their code in `forms` (new words get the next codes, in that order: a sentence-by-sentence
        # scan gives the same codes); every token's code is then one NumPy take
        encoded = pc.dictionary_encode(pc.list_flatten(sentences))
        new = [forms.setdefault(word, len(forms)) for word in encoded.dictionary.to_pylist()]
        codes = np.asarray(new, dtype=np.int32)[encoded.indices.to_numpy(zero_copy_only=False)]
        counts = pc.list_value_length(sentences).to_numpy(zero_copy_only=False).astype(np.int64)
        names = batch.column(0).to_numpy(zero_copy_only=False)
        for split in splits:
            rows = names == split
            files[split].write(codes[np.repeat(rows, counts)].tobytes())
            lengths[split].append(counts[rows])
    table = list(forms)  # one table of words for every split
    result = {}
    for split, handle in files.items():
        offsets = np.concatenate([[0], np.cumsum(np.concatenate([np.zeros(0, np.int64), *lengths[split]]))])
        result[split] = SentenceWords(table, RaggedIds(StoredArray.of_file(handle, np.int32, int(offsets[-1])),
                                                       offsets))
    return result


def split_inputs(settings: ModelConfig, tokens_path: Path, sequences: dict[str, Sequence[np.ndarray]],
                 max_length: int) -> dict[str, dict]:
    """The extra inputs of :class:`pipeline.text.batches.SequenceBatches` for each split of ``sequences``
    (its token ids, as ``vectorize`` wrote them): :func:`subword_rows` of the split's words, read compact
    (:func:`read_split_words`).

    The words come from ``work/<corpus>/tokens.parquet`` (read only when a subword feature is on),
    in the order ``vectorize`` encoded them; a sentence whose word count differs from its id count
    means the two files are out of step.
    """
    if not uses_subword_features(settings):
        return {split: sentence_inputs(settings, [], max_length) for split in sequences}
    if not tokens_path.is_file():
        raise PipelineError(f"{tokens_path}: not found; run `pipeline tokenize` first")
    from pipeline.text.batches import sequence_lengths

    result = {}
    for split, words in read_split_words(tokens_path, list(sequences)).items():
        if not np.array_equal(words.lengths(), sequence_lengths(sequences[split])):
            raise PipelineError(f"{tokens_path}: the {split} split does not match the vectorized ids; "
                                "run `pipeline vectorize --force`")
        result[split] = subword_rows(settings, words, max_length)
    return result
