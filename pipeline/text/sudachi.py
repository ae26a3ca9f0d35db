"""SudachiPy fast path: GiNZA's tokens (surface, lemma, norm, coarse POS) without building spaCy Docs.

With ``tokenize.pos_source = "sudachi"`` and ``entities = false``, GiNZA's part of the ``tokenize`` stage is
spaCy's ``JapaneseTokenizer`` alone (``spacy.lang.ja``; ``ja_ginza`` names it in its config with split mode
C): SudachiPy analyses the text, and the tokenizer then builds a ``Doc`` token by token (tag, POS, lemma,
norm, morphology, reading), which costs about five times the analysis itself. :class:`SudachiTokenizer`
calls the very SudachiPy tokenizer of the loaded ``ja_ginza`` (same dictionary, same split mode, read from
the model, not chosen here) and repeats only what decides the four fields the pipeline keeps:

* tokens: Sudachi's morphemes with an empty surface dropped (``JapaneseTokenizer._get_dtokens``). A text
  with whitespace goes through spaCy's own code (``_get_dtokens`` and ``get_dtokens_and_spaces``: runs of
  空白 merged, one space after a word absorbed into the word, other whitespace turned into 空白 tokens),
  since those tokens change the neighbours' POS; a text without whitespace has its morphemes as tokens.
* tag: the first four Sudachi POS fields without ``*``, joined by ``-`` (名詞-普通名詞-一般).
* coarse POS: spaCy's :func:`spacy.lang.ja.resolve_pos` (``TAG_MAP``, ``TAG_ORTH_MAP`` by surface and
  ``TAG_BIGRAM_MAP`` on the next token's tag) in spaCy's loop: a token whose POS the previous pair set
  keeps it without a lookup of its own.
* lemma: Sudachi's dictionary form, the surface when that is empty; norm: Sudachi's normalized form, the
  lexeme's norm when that is empty (``Token.norm`` falls back to it, as ``Doc.to_array(NORM)`` reads it).
* filters as :class:`pipeline.text.tokenize.Tokenizer` applies them: whitespace tokens (spaCy's ``IS_SPACE``)
  and SPACE dropped, ``drop_punct`` drops spaCy's ``IS_PUNCT`` (every character in a Unicode P* category,
  the lexeme attribute getter of the loaded vocabulary) and PUNCT, then ``stop_pos``; ``lowercase``
  lower-cases the surface only.

The tokens equal the GiNZA path's token for token (``tests/text/test_sudachi.py`` checks the shipped corpus,
arbitrary Unicode and every filter; ``benchmarks/tokenize_throughput.py`` the Aozora corpus), so tokens.parquet
is byte for byte the same whichever path ran, and no setting chooses the path (the stage's settings are
unchanged). :func:`pipeline.text.tokenize.make_tokenizer` takes the fast path wherever :func:`fast_path_applies`;
the parser, the morphologizer (``pos_source = "ud"``) and NER keep the GiNZA path.

What it costs beyond SudachiPy's analysis is Python work per token, so it does as little of it as it can:

* two fields read a morpheme, the surfaces of a text in one ``str(MorphemeList).split(" ")`` (where the tokenizer
  projects nothing: :func:`spaced_surfaces`) and the word id; (tag, lemma, norm) come from a cache by word id,
  for dictionary entries only (:func:`in_dictionary`: an OOV morpheme's or a joined one's fields are its text's);
* the texts of a batch (``tokenize.batch_size``) are worked on together, in a few passes over their tokens in C
  (``map`` over dictionaries: POS by (tag, next tag), ``list.index``), not Python code per token;
* :meth:`SudachiTokenizer.token_lists` gives a list per field and the text ends, from which the stage builds its
  Arrow columns without a list per text.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import operator
import re
from collections.abc import Iterable
from typing import Any

from pipeline.progress import Progress
from pipeline.sections import TokenizeConfig
from pipeline.text.tokenize import (
    FIELDS,
    MAX_INPUT_BYTES,
    _tokenize_in_processes,
    chunk_text,
    components_for,
    load_nlp,
)

WHITESPACE = re.compile(r"\s")  # exactly the characters of str.isspace (checked over every code point)
# SudachiPy's word id: the dictionary's number in the top 4 bits (0 system, 1-14 user dictionaries, 0xF for OOV
# morphemes), the entry's in the other 28; JOINED is the entry number of morphemes a plugin joined
OOV_DICTIONARY, JOINED = 0xF, 0x0FFF_FFFF


def in_dictionary(word_id: int) -> bool:
    """Whether ``word_id`` is one dictionary entry, whose POS, dictionary form and normalized form are then the same
    in every text (the surface is not: ｶﾀｶﾅ and カタカナ are one entry). Not so for OOV morphemes (SudachiPy's
    unknown-word handlers, numbers JoinNumeric joined and normalised: dictionary 0xF) nor katakana JoinKatakanaOov
    joined (entry JOINED of a dictionary): their fields are made from their text."""
    return word_id >> 28 != OOV_DICTIONARY and word_id & JOINED != JOINED


def spacy_japanese_tokenizer(nlp: Any) -> Any | None:
    """``nlp``'s tokenizer when it is spaCy's own ``JapaneseTokenizer`` (what the fast path repeats), else None."""
    from spacy.lang.ja import JapaneseTokenizer

    return nlp.tokenizer if type(nlp.tokenizer) is JapaneseTokenizer else None


def spaced_surfaces(sudachi: Any) -> bool:
    """Whether ``str(morphemes)`` of a ``MorphemeList`` of ``sudachi`` (a SudachiPy tokenizer) is the ``surface()``
    of its morphemes joined by spaces: then one ``str(...).split(" ")`` gives the surfaces of a text without
    whitespace (one call, the string joined in Rust) at 40% of the cost of a ``surface()`` call a morpheme.

    ``str`` joins the morphemes' text as it is, ``surface()`` gives what the tokenizer's projection makes of it
    (SudachiPy's ``projection`` setting, "surface" unless a config changes it: then the same); a probe text on
    which every other projection differs from the text (half-width katakana, an inflected verb, a noun whose
    normalized form differs) decides.
    """
    morphemes = sudachi.tokenize("ｶﾀｶﾅで打込んだ附属品")
    return str(morphemes).split(" ") == [morpheme.surface() for morpheme in morphemes]


def fast_path_applies(settings: TokenizeConfig) -> bool:
    """Whether :class:`SudachiTokenizer` gives ``settings``' tokens exactly.

    True for ``method = "ginza"`` when no statistical component is needed (``pos_source = "sudachi"``,
    ``entities = false``) and the model's tokenizer is spaCy's ``JapaneseTokenizer`` (GiNZA models' is).
    Loads the model's tokenizer (:func:`pipeline.text.tokenize.load_nlp`, cached, without the vocabulary).
    """
    if settings.method != "ginza" or components_for(settings):
        return False
    return spacy_japanese_tokenizer(load_nlp(settings.model, (), vocabulary=False)) is not None


class SudachiTokenizer:
    """GiNZA's tokens for ``pos_source = "sudachi"`` from SudachiPy directly (see the module docstring).

    One instance serves one thread at a time (it reuses one SudachiPy ``MorphemeList``; SudachiPy itself refuses
    two threads at once, see :mod:`pipeline.serve.store`). About five times the GiNZA path's speed.

    Args:
        settings: the ``[tokenize]`` section; :func:`fast_path_applies` must hold for it.

    Example:
        >>> SudachiTokenizer(TokenizeConfig()).tokenize(["京都に行った。"])[0]["pos"]
        ['PROPN', 'ADP', 'VERB', 'AUX', 'PUNCT']
    """

    def __init__(self, settings: TokenizeConfig) -> None:
        from spacy.attrs import IS_PUNCT, IS_SPACE
        from spacy.lang.ja import TAG_ORTH_MAP
        from sudachipy import Morpheme

        if not fast_path_applies(settings):
            raise ValueError(f"the SudachiPy fast path does not give the tokens of {settings}")
        self.settings = settings
        self.nlp = load_nlp(settings.model, (), vocabulary=False)  # no vectors: 0.5 s and ~200 MiB less
        self.japanese_tokenizer = spacy_japanese_tokenizer(self.nlp)
        # GiNZA's own SudachiPy tokenizer: the dictionary and split mode of the model's config (ja_ginza: C)
        self.sudachi = self.japanese_tokenizer.tokenizer
        self.split_mode = self.japanese_tokenizer.split_mode
        self._morphemes = self.sudachi.tokenize("")  # reused for every text (read out before the next one)
        self._surface_of, self._word_id_of = Morpheme.surface, Morpheme.word_id  # mapped over a MorphemeList
        self._spaced_surfaces = spaced_surfaces(self.sudachi)
        getters = self.nlp.vocab.lex_attr_getters
        self._is_space, self._is_punct = getters[IS_SPACE], getters[IS_PUNCT]  # how spaCy sets the lexeme flags
        self._tags: dict[int, str] = {}  # Sudachi POS id -> tag (名詞-普通名詞-一般)
        # word id -> (tag, dictionary form, normalized form): one field read a morpheme instead of three (for
        # in_dictionary ones only: bounded by the dictionary); _words interns their strings
        self._entries: dict[int, tuple[str, str, str]] = {}
        self._words: dict[str, str] = {}
        self._orth_tags = frozenset(TAG_ORTH_MAP)  # tags whose POS resolve_pos reads from the surface
        # (tag, next tag) -> (POS name, the next token's POS name or None): resolve_pos for the tags not in
        # _orth_tags (TAG_MAP's POS of the tag or TAG_BIGRAM_MAP's of the pair); by (surface, tag, next tag) for those
        self._pairs: dict[tuple, tuple[str, str | None]] = {}
        self._punct: dict[str, bool] = {}  # surface -> spaCy's IS_PUNCT
        dropped = {"SPACE", *settings.stop_pos} | ({"PUNCT"} if settings.drop_punct else set())
        self._dropped_pos = frozenset(dropped)  # POS names Tokenizer.tokenize drops

    def tokenize(self, texts: Iterable[str], progress: Progress | None = None) -> list[dict[str, list[str]]]:
        """Tokens of each text: ``{"surface", "lemma", "norm", "pos"}`` lists, as ``Tokenizer.tokenize``.

        Texts longer than SudachiPy's input limit are analysed in :func:`~pipeline.text.tokenize.chunk_text`
        pieces whose tokens are joined; ``tokenize.processes > 1`` forks workers over batches of texts.
        ``progress`` counts the texts as they are done.
        """
        columns, ends = self.token_lists(list(texts), progress)  # which forks the workers
        surfaces, lemmas, norms, names = (columns[field] for field in FIELDS)
        # one object per distinct surface (lemmas and norms are already): a corpus's token lists take a fraction
        # of the memory (as the GiNZA path's string cache gives) and workers' results pickle each string once
        intern = {}.setdefault
        surfaces = list(map(intern, surfaces, surfaces))
        results, start = [], 0
        for end in ends:
            results.append({"surface": surfaces[start:end], "lemma": lemmas[start:end], "norm": norms[start:end],
                            "pos": names[start:end]})
            start = end
        return results

    def token_lists(self, texts: list[str], progress: Progress | None = None) -> tuple[dict[str, list[str]], list[int]]:
        """The tokens of all ``texts`` in one list per field (:data:`~pipeline.text.tokenize.FIELDS`), and where each
        text's end: text ``i`` has tokens ``ends[i - 1]:ends[i]`` (from 0 for the first).

        What ``tokenize`` returns, without a list per text: the stage builds its Arrow columns from these (list
        offsets ``[0, *ends]``). Texts are read ``tokenize.batch_size`` at a time, the tokens of a batch then
        worked on together (a few passes over lists in C instead of Python code per token); ``progress`` counts
        the texts of each batch. ``tokenize.processes > 1`` forks workers over batches, as ``tokenize`` does.
        """
        workers = min(self.settings.processes, -(-len(texts) // self.settings.batch_size))
        if workers > 1:
            results = _tokenize_in_processes(self.settings, texts, workers, progress, SudachiTokenizer)
            ends = list(itertools.accumulate(len(result["surface"]) for result in results))
            return {field: list(itertools.chain.from_iterable(result[field] for result in results))
                    for field in FIELDS}, ends
        columns: dict[str, list[str]] = {field: [] for field in FIELDS}
        ends: list[int] = []
        strings: dict[str, str] = {}  # interns the lemmas and norms that no cached entry has
        for start in range(0, len(texts), self.settings.batch_size):
            batch = texts[start:start + self.settings.batch_size]
            kept, batch_ends = self._batch_tokens(batch, strings)
            offset = len(columns["surface"])
            for field, values in zip(FIELDS, kept, strict=True):
                columns[field] += values
            ends += [offset + end for end in batch_ends]
            if progress is not None:
                progress.update(len(batch))
        return columns, ends

    def _batch_tokens(self, texts: list[str], strings: dict[str, str]) -> tuple[tuple[list[str], ...], list[int]]:
        """((surfaces, lemmas, norms, POS names), the end of each text's tokens) of ``texts``, filtered."""
        surfaces: list[str] = []
        entries: list[tuple[str, str, str]] = []  # (tag, lemma, norm) of each token
        pieces: list[int] = []  # where each piece's tokens end: POS rules look at the next token of the same piece
        spaced: list[tuple[int, int]] = []  # the token ranges of the pieces with whitespace (their 空白 tokens)
        ends: list[int] = []
        short = MAX_INPUT_BYTES // 4  # characters that are surely under SudachiPy's limit (4 UTF-8 bytes at most)
        for text in texts:
            for piece in (text,) if len(text) <= short else chunk_text(text):
                piece_surfaces, piece_entries, piece_spaced = self._piece_tokens(piece, strings)
                if piece_spaced:
                    spaced.append((len(surfaces), len(surfaces) + len(piece_surfaces)))
                surfaces += piece_surfaces
                entries += piece_entries
                pieces.append(len(surfaces))
            ends.append(len(surfaces))
        if not surfaces:
            return ([], [], [], []), ends
        # columns by itemgetter: zip(*entries) would make an iterator per token (and the garbage collector run)
        tags, lemmas, norms = (list(map(operator.itemgetter(field), entries)) for field in range(3))
        names = self._pos_names(surfaces, tags, pieces)
        dropped = self._dropped(surfaces, names, spaced)
        if dropped:
            surfaces, lemmas, norms, names = (without(values, dropped) for values in (surfaces, lemmas, norms, names))
            ends = [end - bisect.bisect_left(dropped, end) for end in ends]
        if "" in lemmas:  # no dictionary form: spaCy's lemma is the surface
            lemmas = [lemma or surface for lemma, surface in zip(lemmas, surfaces, strict=True)]
        if "" in norms:  # never seen; Token.norm_ then falls back to the lexeme's norm
            norms = [norm or self.nlp.vocab[surface].norm_ for norm, surface in zip(norms, surfaces, strict=True)]
            norms = list(map(strings.setdefault, norms, norms))
        if self.settings.lowercase:
            surfaces = [surface.lower() for surface in surfaces]
        return (surfaces, lemmas, norms, names), ends

    def _entry(self, morpheme: Any, strings: dict[str, str]) -> tuple[str, str, str]:
        """(tag, dictionary form, normalized form) of ``morpheme``: cached by word id where :func:`in_dictionary`
        (its strings interned for good), else read each time (its strings interned in ``strings``)."""
        pos_id, word_id = morpheme.part_of_speech_id(), morpheme.word_id()
        tag = self._tags.get(pos_id)
        if tag is None:  # a POS id not seen yet: its tag, the first four fields without *, joined by -
            tag = self._tags[pos_id] = "-".join(field for field in morpheme.part_of_speech()[:4] if field != "*")
        lemma, norm = morpheme.dictionary_form(), morpheme.normalized_form()
        if not in_dictionary(word_id):
            return tag, strings.setdefault(lemma, lemma), strings.setdefault(norm, norm)
        intern = self._words.setdefault
        entry = self._entries[word_id] = tag, intern(lemma, lemma), intern(norm, norm)
        return entry

    def _piece_tokens(self, text: str, strings: dict[str, str]) -> tuple[list[str], list[tuple[str, str, str]], bool]:
        """(surfaces, (tag, lemma, norm) entries, whether any whitespace) of GiNZA's tokens of ``text`` (one piece),
        空白 included."""
        if not text:
            return [], [], False
        # the MorphemeList of the last text is overwritten (SudachiPy's ``out``): fewer allocations, ~10% faster
        morphemes = self.sudachi.tokenize(text, out=self._morphemes)
        if WHITESPACE.search(text) is None:
            surfaces = (str(morphemes).split(" ") if self._spaced_surfaces
                        else list(map(self._surface_of, morphemes)))
            # two field reads a morpheme (surface, word id): the word id's entry has the other three
            entries = list(map(self._entries.get, map(self._word_id_of, morphemes)))
            if None in entries:
                for index, entry in enumerate(entries):
                    if entry is None:
                        entries[index] = self._entry(morphemes[index], strings)
            if "" in surfaces:  # spaCy drops empty tokens (some normalised characters leave them)
                entries = [entry for entry, surface in zip(entries, surfaces, strict=True) if surface]
                surfaces = [surface for surface in surfaces if surface]
            # no whitespace: spaCy's alignment of tokens to text keeps them as they are when they spell it
            if "".join(surfaces) == text:
                return surfaces, entries, False
        from spacy.lang.ja import get_dtokens_and_spaces

        # whitespace (or tokens that do not spell the text): spaCy's own code, so its 空白 tokens are the same
        dtokens, _ = get_dtokens_and_spaces(self.japanese_tokenizer._get_dtokens(morphemes, False), text)
        intern = strings.setdefault
        return ([token.surface for token in dtokens],
                [(token.tag, intern(token.lemma, token.lemma), intern(token.norm, token.norm)) for token in dtokens],
                True)

    def _pos_names(self, surfaces: list[str], tags: list[str], pieces: list[int]) -> list[str]:
        """Coarse POS names of the tokens of pieces ending at ``pieces``, as spaCy's ``JapaneseTokenizer`` sets
        ``token.pos`` in each piece's Doc: ``resolve_pos`` of each token's surface, tag and next tag (None for a
        piece's last token), except that a token whose POS the pair before it set keeps it."""
        next_tags = [*tags[1:], None]
        for end in pieces:
            next_tags[end - 1] = None  # (an empty piece's end is the previous one's)
        # (POS name, the next token's POS name or None) of each token, cached by (tag, next tag); a miss or a tag
        # whose POS depends on its surface (TAG_ORTH_MAP) gives None, resolved one by one
        pairs = list(map(self._pairs.get, zip(tags, next_tags)))
        if None in pairs:
            for index, pair in enumerate(pairs):
                if pair is None:
                    pairs[index] = self._resolve(surfaces[index], tags[index], next_tags[index])
        names, following = list(map(operator.itemgetter(0), pairs)), list(map(operator.itemgetter(1), pairs))
        if following.count(None) < len(following):
            overridden = -1
            for index in itertools.compress(itertools.count(), map(operator.is_not, following, itertools.repeat(None))):
                if index != overridden:  # spaCy's loop: the next token takes this POS, skipping its own lookup
                    names[index + 1] = following[index]
                    overridden = index + 1
        return names

    def _resolve(self, surface: str, tag: str, next_tag: str | None) -> tuple[str, str | None]:
        """(POS name, the next token's POS name or None) of ``resolve_pos``, cached in ``_pairs`` by (tag, next tag)
        or, for a tag of ``TAG_ORTH_MAP``, by (surface, tag, next tag)."""
        from spacy.lang.ja import resolve_pos
        from spacy.parts_of_speech import NAMES as POS_NAMES

        key = (surface, tag, next_tag) if tag in self._orth_tags else (tag, next_tag)
        found = self._pairs.get(key)
        if found is None:
            pos, following = resolve_pos(surface, tag, next_tag)
            found = self._pairs[key] = (POS_NAMES.get(pos, ""), POS_NAMES.get(following, "") if following else None)
        return found

    def _dropped(self, surfaces: list[str], names: list[str], spaced: list[tuple[int, int]]) -> list[int]:
        """The tokens ``Tokenizer.tokenize``'s filters drop, in order: IS_SPACE (only pieces with whitespace,
        ``spaced``, have such tokens), SPACE and ``stop_pos``, with ``drop_punct`` PUNCT and IS_PUNCT (spaCy's
        lexeme flags of the surface)."""
        dropped = [index for start, end in spaced for index in range(start, end) if self._is_space(surfaces[index])]
        for name in self._dropped_pos.intersection(names):
            dropped += indices(names, name)
        if self.settings.drop_punct:
            dropped += [index for index, surface in enumerate(surfaces) if self._punctuation(surface)]
        return sorted(set(dropped))

    def _punctuation(self, surface: str) -> bool:
        """spaCy's IS_PUNCT of ``surface`` (cached)."""
        is_punct = self._punct.get(surface)
        if is_punct is None:
            is_punct = self._punct[surface] = self._is_punct(surface)
        return is_punct


def indices(values: list[str], value: str) -> list[int]:
    """Where ``value`` is in ``values`` (list.index: a search in C)."""
    found, index = [], -1
    with contextlib.suppress(ValueError):
        while True:
            index = values.index(value, index + 1)
            found.append(index)
    return found


def without(values: list[str], dropped: list[int]) -> list[str]:
    """``values`` without the items at the (sorted) indices ``dropped``: a slice between each two."""
    kept, start = [], 0
    for index in dropped:
        kept += values[start:index]
        start = index + 1
    kept += values[start:]
    return kept
