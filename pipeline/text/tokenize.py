"""GiNZA tokenization: text -> surface, lemma, norm and coarse POS per token.

GiNZA's tokenizer alone (SudachiPy underneath, split mode C) already yields the
surface form, the lemma (dictionary form), the normalised form (Sudachi's
``normalized_form``: 行っ -> 行く, スマートフォン/スマホ kept apart but 附属 -> 付属)
and the Sudachi part-of-speech tag, which spaCy maps to a coarse UD POS. The
statistical components (tok2vec, morphologizer, parser, ner) cost 30 to 60
times more per sentence, so they are loaded only when the config asks for what
needs them: ``pos_source = "ud"`` (morphologizer) or ``entities = true`` (ner). Without them,
:func:`make_tokenizer` gives :class:`pipeline.text.sudachi.SudachiTokenizer`, which reads the same tokens
from SudachiPy without building spaCy Docs (about five times faster).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.errors import PipelineError
from pipeline.progress import Progress
from pipeline.sections import TokenizeConfig

log = logging.getLogger(__name__)

# SudachiPy refuses inputs longer than this many UTF-8 bytes (49,149); keep a margin.
MAX_INPUT_BYTES = 49_000
FIELDS = ("surface", "lemma", "norm", "pos")
SENTENCE_BREAK = re.compile(r"(?<=[。！？!?\n])")


@functools.lru_cache(maxsize=4)
def load_nlp(model: str, components: tuple[str, ...], vocabulary: bool = True) -> Any:
    """Load the spaCy model once per process with only ``components`` (plus the tokenizer).

    ``vocabulary = False`` (the tokenizer alone, for the SudachiPy fast path) leaves out the model's vocabulary
    from disk, its word vectors and 600k strings: ja_ginza then loads in 0.06 s instead of 0.55 s and takes about
    200 MiB less memory (439 -> 219 MiB). Strings are added as they are met; GiNZA models have no lookup tables,
    so no token attribute changes (``tests/text/test_sudachi.py`` compares with the full model's tokens).
    """
    import spacy

    try:
        meta = spacy.util.get_model_meta(spacy.util.get_package_path(model))
    except (ImportError, OSError, ModuleNotFoundError):
        raise PipelineError(
            f"spaCy model '{model}' is not installed; install it with `pip install ja-ginza` "
            "(or set tokenize.model to an installed model)"
        ) from None
    pipeline_names = list(meta.get("pipeline", []))
    keep = set(components)
    if keep:
        keep.add("tok2vec")
    exclude = [name for name in pipeline_names if name not in keep]
    if not vocabulary and not keep:
        exclude.append("vocab")
    log.info("loading spaCy model %s with components %s%s", model, sorted(keep & set(pipeline_names)) or "none",
             "" if vocabulary or keep else ", without its vocabulary")
    nlp = spacy.load(model, exclude=exclude)
    if hasattr(nlp.tokenizer, "need_subtokens"):
        # Split-A/B sub-tokens are computed for every token by default and never read here.
        nlp.tokenizer.need_subtokens = False
    return nlp


def components_for(settings: TokenizeConfig) -> tuple[str, ...]:
    """The statistical components a config needs; () means the tokenizer alone."""
    needed = []
    if settings.pos_source == "ud":
        needed.append("morphologizer")
    if settings.entities:
        needed.append("ner")
    return tuple(needed)


def chunk_text(text: str, max_bytes: int = MAX_INPUT_BYTES) -> list[str]:
    """Split ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes.

    Pieces break after sentence ends (。！？ and newlines) where possible, and
    inside a sentence only when a single sentence is longer than the limit.
    """
    if len(text.encode("utf-8")) <= max_bytes:
        return [text]
    pieces: list[str] = []
    current, current_bytes = [], 0
    for sentence in SENTENCE_BREAK.split(text):
        size = len(sentence.encode("utf-8"))
        if current and current_bytes + size > max_bytes:
            pieces.append("".join(current))
            current, current_bytes = [], 0
        while size > max_bytes:  # one sentence longer than the limit: cut by characters
            cut = len(sentence.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore"))
            pieces.append(sentence[:cut])
            sentence = sentence[cut:]
            size = len(sentence.encode("utf-8"))
        if sentence:
            current.append(sentence)
            current_bytes += size
    if current:
        pieces.append("".join(current))
    return pieces


class Tokenizer:
    """GiNZA loaded once; ``tokenize(texts)`` runs ``nlp.pipe`` in batches.

    Args:
        settings: the ``[tokenize]`` section (model, batch size, POS source, filters).

    Example:
        >>> Tokenizer(TokenizeConfig()).tokenize(["京都に行った。"])[0]["lemma"]
        ['京都', 'に', '行く', 'た', '。']
    """

    def __init__(self, settings: TokenizeConfig) -> None:
        self.settings = settings
        self.nlp = load_nlp(settings.model, components_for(settings))
        self.stop_pos = frozenset(settings.stop_pos)

    def tokenize(self, texts: Iterable[str], progress: Progress | None = None) -> list[dict[str, list[str]]]:
        """Tokens of each text: ``{"surface", "lemma", "norm", "pos"[, "entities"]}`` lists.

        Texts longer than SudachiPy's input limit are piped in chunks whose tokens are joined.
        Attributes are read in one ``Doc.to_array`` call per text (string hashes, decoded
        through a cache), which costs a fraction of creating a Python ``Token`` per token.
        ``progress`` (the stage's, see :func:`tokenize_table`) counts every text once it is done.
        """
        from spacy.attrs import IS_PUNCT, IS_SPACE, LEMMA, NORM, ORTH, POS
        from spacy.parts_of_speech import NAMES as POS_NAMES

        texts = list(texts)
        # tokenize.processes: no more workers than batches (a few sentences never pay for starting them)
        workers = min(self.settings.processes, -(-len(texts) // self.settings.batch_size))
        if workers > 1:
            return _tokenize_in_processes(self.settings, texts, workers, progress)
        chunks, owners = [], []
        for index, text in enumerate(texts):
            for piece in chunk_text(text):
                chunks.append(piece)
                owners.append(index)
        fields = token_fields(self.settings)
        results = [{field: [] for field in fields} for _ in range(owners[-1] + 1 if owners else 0)]
        strings, cache = self.nlp.vocab.strings, {}

        def text_of(key: int) -> str:
            value = cache.get(key)
            if value is None:
                value = cache[key] = strings[key]
            return value

        drop_punct, stop_pos, lowercase = self.settings.drop_punct, self.stop_pos, self.settings.lowercase
        attributes = [ORTH, LEMMA, NORM, POS, IS_SPACE, IS_PUNCT]
        done = 0  # texts whose every chunk is tokenized: those before the current chunk's owner
        for owner, doc in zip(owners, self.nlp.pipe(chunks, batch_size=self.settings.batch_size), strict=False):
            if progress is not None and owner != done:
                progress.update(owner - done)
                done = owner
            result = results[owner]
            surface, lemma, norm, pos = result["surface"], result["lemma"], result["norm"], result["pos"]
            for orth, lemma_key, norm_key, pos_id, is_space, is_punct in doc.to_array(attributes).tolist():
                tag = POS_NAMES.get(pos_id, "")
                if is_space or tag == "SPACE" or (drop_punct and (is_punct or tag == "PUNCT")) or tag in stop_pos:
                    continue
                word = text_of(orth)
                surface.append(word.lower() if lowercase else word)
                lemma.append(text_of(lemma_key))
                norm.append(text_of(norm_key))
                pos.append(tag)
            if self.settings.entities:
                result["entities"].extend(f"{ent.text}\t{ent.label_}" for ent in doc.ents)
        if progress is not None and len(results) > done:
            progress.update(len(results) - done)
        return results


@contextlib.contextmanager
def fork_pool(workers: int) -> Iterator[Any]:
    """A ``ProcessPoolExecutor`` of ``workers`` forked processes: they inherit the model :func:`load_nlp` loaded
    (spawned ones, where the platform cannot fork, load it again). While the pool lives the garbage collector
    leaves this process's objects alone (``gc.freeze``): no collection in a worker touches the inherited objects,
    so their pages stay shared instead of being copied (5% of a worker's time on the Aozora sentences)."""
    import concurrent.futures
    import gc
    import multiprocessing

    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    gc.freeze()
    try:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            yield pool
    finally:
        gc.unfreeze()


def _tokenize_part(tokenizer_class: type, settings: TokenizeConfig, texts: list[str]) -> list[dict[str, list[str]]]:
    return tokenizer_class(dataclasses.replace(settings, processes=1)).tokenize(texts)


def _tokenize_in_processes(settings: TokenizeConfig, texts: list[str], workers: int,
                           progress: Progress | None = None,
                           tokenizer_class: type | None = None) -> list[dict[str, list[str]]]:
    """``tokenize.processes``: batches of texts tokenized in forked workers, their token lists returned in order.

    Workers send back the four string lists, not spaCy ``Doc`` objects: spaCy's own ``n_process``
    serialises every Doc with GiNZA's per-token user data and ran 4-6 times *slower* than one process
    here. Forked workers inherit the GiNZA model already loaded (:func:`load_nlp` is cached) and each tokenizes
    with a ``tokenizer_class`` of its own (default :class:`Tokenizer`; the SudachiPy fast path passes its class).
    ``progress`` counts the texts of each batch when its worker returns it (in whatever order they finish).
    """
    import concurrent.futures

    parts = [texts[start:start + settings.batch_size] for start in range(0, len(texts), settings.batch_size)]
    with fork_pool(workers) as pool:
        futures = [pool.submit(_tokenize_part, tokenizer_class or Tokenizer, settings, part) for part in parts]
        if progress is not None:
            sizes = {future: len(part) for future, part in zip(futures, parts, strict=True)}
            for future in concurrent.futures.as_completed(futures):
                progress.update(sizes[future])
        return [tokens for future in futures for tokens in future.result()]


class SimpleTokenizer:
    """Characters (``method = "char"``) or whitespace-separated words (``"whitespace"``).

    For character-level language models and for text that is already tokenized
    (other languages, standard benchmarks such as the Penn Treebank). Lemma and
    norm equal the surface form; the POS is ``X``. Whitespace itself is no token.
    """

    def __init__(self, settings: TokenizeConfig) -> None:
        self.settings = settings

    def tokenize(self, texts: Iterable[str], progress: Progress | None = None) -> list[dict[str, list[str]]]:
        results = []
        for text in texts:
            if self.settings.lowercase:
                text = text.lower()
            words = [c for c in text if not c.isspace()] if self.settings.method == "char" else text.split()
            results.append({"surface": words, "lemma": list(words), "norm": list(words), "pos": ["X"] * len(words)})
            if progress is not None:
                progress.update(1)
        return results


def make_tokenizer(settings: TokenizeConfig) -> Any:
    """The tokenizer ``tokenize.method`` names (``sentencepiece``: :class:`pipeline.text.subwords.SubwordTokenizer`);
    for ``ginza``, the SudachiPy fast path wherever it gives
    GiNZA's tokens exactly (:func:`pipeline.text.sudachi.fast_path_applies`), GiNZA otherwise."""
    if settings.method == "sentencepiece":  # the model file tokenize.sp_model names (load_run sets it)
        from pipeline.text.subwords import SubwordTokenizer

        return SubwordTokenizer(settings)
    if settings.method != "ginza":
        return SimpleTokenizer(settings)
    from pipeline.text.sudachi import SudachiTokenizer, fast_path_applies

    return SudachiTokenizer(settings) if fast_path_applies(settings) else Tokenizer(settings)


def token_fields(settings: TokenizeConfig) -> tuple[str, ...]:
    """The token list columns the stage adds: :data:`FIELDS`, and ``entities`` for GiNZA with ``entities = true``."""
    return FIELDS + (("entities",) if settings.method == "ginza" and settings.entities else ())


def token_columns(texts: list[str], settings: TokenizeConfig, tokenizer: Any,
                  progress: Progress | None = None) -> dict[str, list[list[str]]]:
    """``texts`` tokenized by ``tokenizer``: one list of strings per text under each :func:`token_fields` name."""
    tokens = tokenizer.tokenize(texts, progress)
    return {field: [t[field] for t in tokens] for field in token_fields(settings)}


def log_counts(sentences: int, tokens: int, empty: int) -> None:
    """The stage's closing lines: how many sentences and tokens, and a warning for sentences left without a token."""
    if empty:
        log.warning("%d sentence(s) have no tokens left after filtering", empty)
    log.info("tokenized %d sentences into %d tokens", sentences, tokens)


def tokenize_table(table: Any, settings: TokenizeConfig, tokenizer: Any = None) -> Any:
    """Add token list columns (surface, lemma, norm, pos) to a prepared table (a pandas frame, in memory).

    ``tokenizer`` defaults to :func:`make_tokenizer`'s for ``settings`` (tests pass :class:`Tokenizer` to
    compare GiNZA's table with the fast path's). The stage tokenizes in shards (:mod:`pipeline.text.shards`).
    """
    import pandas as pd

    texts = table["text"].tolist()
    tokenizer = make_tokenizer(settings) if tokenizer is None else tokenizer
    with Progress(len(texts), "tokenize", "sentences", log) as progress:
        columns = token_columns(texts, settings, tokenizer, progress)
    result = table.reset_index(drop=True).copy()
    for field, values in columns.items():
        result[field] = pd.Series(values, dtype=object)
    log_counts(len(texts), sum(map(len, columns["surface"])), sum(1 for words in columns["surface"] if not words))
    return result
