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
"""

from __future__ import annotations

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


def spacy_japanese_tokenizer(nlp: Any) -> Any | None:
    """``nlp``'s tokenizer when it is spaCy's own ``JapaneseTokenizer`` (what the fast path repeats), else None."""
    from spacy.lang.ja import JapaneseTokenizer

    return nlp.tokenizer if type(nlp.tokenizer) is JapaneseTokenizer else None


def fast_path_applies(settings: TokenizeConfig) -> bool:
    """Whether :class:`SudachiTokenizer` gives ``settings``' tokens exactly.

    True for ``method = "ginza"`` when no statistical component is needed (``pos_source = "sudachi"``,
    ``entities = false``) and the model's tokenizer is spaCy's ``JapaneseTokenizer`` (GiNZA models' is).
    Loads the model's tokenizer and vocabulary (:func:`pipeline.text.tokenize.load_nlp`, cached).
    """
    if settings.method != "ginza" or components_for(settings):
        return False
    return spacy_japanese_tokenizer(load_nlp(settings.model, ())) is not None


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
        from spacy.lang.ja import TAG_BIGRAM_MAP, TAG_ORTH_MAP

        if not fast_path_applies(settings):
            raise ValueError(f"the SudachiPy fast path does not give the tokens of {settings}")
        self.settings = settings
        self.nlp = load_nlp(settings.model, ())
        self.japanese_tokenizer = spacy_japanese_tokenizer(self.nlp)
        # GiNZA's own SudachiPy tokenizer: the dictionary and split mode of the model's config (ja_ginza: C)
        self.sudachi = self.japanese_tokenizer.tokenizer
        self.split_mode = self.japanese_tokenizer.split_mode
        self._morphemes = self.sudachi.tokenize("")  # reused for every text (read out before the next one)
        getters = self.nlp.vocab.lex_attr_getters
        self._is_space, self._is_punct = getters[IS_SPACE], getters[IS_PUNCT]  # how spaCy sets the lexeme flags
        self._tags: dict[int, str] = {}  # Sudachi POS id -> tag (名詞-普通名詞-一般)
        # tags whose POS resolve_pos reads from the surface (TAG_ORTH_MAP) or the next tag (TAG_BIGRAM_MAP);
        # any other tag has one POS whatever its neighbours, cached by tag alone
        self._orth_tags = frozenset(TAG_ORTH_MAP)
        self._context_tags = self._orth_tags | {first for first, _ in TAG_BIGRAM_MAP}
        self._tag_pos: dict[str, str | None] = {}  # tag -> POS name; None for the tags in _context_tags
        self._resolved: dict[tuple, tuple[str, int | None]] = {}  # (surface|None, tag, next tag) -> (POS, next POS)
        self._punct: dict[str, bool] = {}  # surface -> spaCy's IS_PUNCT
        dropped = {"SPACE", *settings.stop_pos} | ({"PUNCT"} if settings.drop_punct else set())
        self._dropped_pos = frozenset(dropped)  # POS names Tokenizer.tokenize drops

    def tokenize(self, texts: Iterable[str], progress: Progress | None = None) -> list[dict[str, list[str]]]:
        """Tokens of each text: ``{"surface", "lemma", "norm", "pos"}`` lists, as ``Tokenizer.tokenize``.

        Texts longer than SudachiPy's input limit are analysed in :func:`~pipeline.text.tokenize.chunk_text`
        pieces whose tokens are joined; ``tokenize.processes > 1`` forks workers over batches of texts.
        ``progress`` counts every text once it is done.
        """
        texts = list(texts)
        workers = min(self.settings.processes, -(-len(texts) // self.settings.batch_size))
        if workers > 1:
            return _tokenize_in_processes(self.settings, texts, workers, progress, SudachiTokenizer)
        results, strings = [], {}
        short = MAX_INPUT_BYTES // 4  # characters that are surely under SudachiPy's limit (4 UTF-8 bytes at most)
        for text in texts:
            result = {field: [] for field in FIELDS}
            for piece in (text,) if len(text) <= short else chunk_text(text):
                self._add_tokens(piece, result, strings)
            results.append(result)
            if progress is not None:
                progress.update(1)
        return results

    def _tokens(self, text: str) -> tuple[tuple[str, ...], list[str], tuple[str, ...], tuple[str, ...], bool]:
        """(surfaces, tags, lemmas, norms, whether any whitespace) of GiNZA's tokens of ``text``, 空白 included."""
        # the MorphemeList of the last text is overwritten (SudachiPy's ``out``): fewer allocations, ~10% faster
        morphemes = self.sudachi.tokenize(text, out=self._morphemes)
        if WHITESPACE.search(text) is None:
            # one comprehension and a transposition: a Python loop with four appends a token costs twice as much
            rows = [(morpheme.surface(), morpheme.part_of_speech_id(), morpheme.dictionary_form(),
                     morpheme.normalized_form()) for morpheme in morphemes]
            if any(not row[0] for row in rows):  # spaCy drops empty tokens (some normalised characters leave them)
                rows = [row for row in rows if row[0]]
            surfaces, pos_ids, lemmas, norms = zip(*rows) if rows else ((), (), (), ())
            # no whitespace: spaCy's alignment of tokens to text keeps them as they are when they spell it
            if "".join(surfaces) == text:
                known = self._tags
                try:
                    tags = [known[pos_id] for pos_id in pos_ids]
                except KeyError:  # a POS id not seen yet: its tag, the first four fields without *, joined by -
                    for morpheme in morphemes:
                        known.setdefault(morpheme.part_of_speech_id(), "-".join(
                            field for field in morpheme.part_of_speech()[:4] if field != "*"))
                    tags = [known[pos_id] for pos_id in pos_ids]
                return surfaces, tags, lemmas, norms, False
        from spacy.lang.ja import get_dtokens_and_spaces

        # whitespace (or tokens that do not spell the text): spaCy's own code, so its 空白 tokens are the same
        dtokens, _ = get_dtokens_and_spaces(self.japanese_tokenizer._get_dtokens(morphemes, False), text)
        return (tuple(token.surface for token in dtokens), [token.tag for token in dtokens],
                tuple(token.lemma for token in dtokens), tuple(token.norm for token in dtokens), True)

    def _pos_names(self, surfaces: tuple[str, ...], tags: list[str]) -> list[str]:
        """Coarse POS names of the tokens, as spaCy's ``JapaneseTokenizer`` sets ``token.pos``."""
        from spacy.lang.ja import resolve_pos
        from spacy.parts_of_speech import NAMES as POS_NAMES

        orth_tags, context_tags, tag_pos, resolved = self._orth_tags, self._context_tags, self._tag_pos, self._resolved
        names = []
        last = len(tags) - 1
        next_pos = None
        for index, tag in enumerate(tags):
            # spaCy's loop (JapaneseTokenizer.__call__): a POS set by the previous bigram is kept as it is
            if next_pos:
                names.append(POS_NAMES.get(next_pos, ""))
                next_pos = None
                continue
            try:
                name = tag_pos[tag]  # None for a tag that looks at its surface or the next tag
            except KeyError:
                name = tag_pos[tag] = (None if tag in context_tags
                                       else POS_NAMES.get(resolve_pos(surfaces[index], tag, None)[0], ""))
            if name is None:
                surface, next_tag = surfaces[index], tags[index + 1] if index < last else None
                key = (surface if tag in orth_tags else None, tag, next_tag)
                found = resolved.get(key)
                if found is None:
                    pos, following = resolve_pos(surface, tag, next_tag)
                    found = resolved[key] = (POS_NAMES.get(pos, ""), following)
                name, next_pos = found
            names.append(name)
        return names

    def _dropped(self, surface: str, pos: str, spaced: bool) -> bool:
        """Whether ``Tokenizer.tokenize``'s filters drop a token: IS_SPACE or SPACE, with ``drop_punct`` IS_PUNCT
        or PUNCT, ``stop_pos`` (spaCy's lexeme flags of the surface; no token of a text without whitespace is)."""
        if pos in self._dropped_pos or (spaced and self._is_space(surface)):
            return True
        if not self.settings.drop_punct:
            return False
        is_punct = self._punct.get(surface)
        if is_punct is None:
            is_punct = self._punct[surface] = self._is_punct(surface)
        return is_punct

    def _add_tokens(self, text: str, result: dict[str, list[str]], strings: dict[str, str]) -> None:
        """Append the kept tokens of ``text`` (one chunk) to ``result``'s lists; ``strings`` interns words."""
        surfaces, tags, lemmas, norms, spaced = self._tokens(text)
        names = self._pos_names(surfaces, tags)
        if spaced or self.settings.drop_punct or not self._dropped_pos.isdisjoint(names):
            keep = [index for index, (surface, name) in enumerate(zip(surfaces, names, strict=True))
                    if not self._dropped(surface, name, spaced)]
            surfaces, names = [surfaces[index] for index in keep], [names[index] for index in keep]
            lemmas, norms = [lemmas[index] for index in keep], [norms[index] for index in keep]
        if "" in lemmas:  # no dictionary form: spaCy's lemma is the surface
            lemmas = [lemma or surface for lemma, surface in zip(lemmas, surfaces, strict=True)]
        if "" in norms:  # never seen; Token.norm_ then falls back to the lexeme's norm
            norms = [norm or self.nlp.vocab[surface].norm_ for norm, surface in zip(norms, surfaces, strict=True)]
        if self.settings.lowercase:
            surfaces = [surface.lower() for surface in surfaces]
        # one object per distinct string (as the GiNZA path's string cache gives): a corpus's token lists take a
        # fraction of the memory, and workers' results pickle each distinct string once
        count, intern = len(names), strings.setdefault
        words = [intern(word, word) for word in (*surfaces, *lemmas, *norms)]
        result["surface"] += words[:count]
        result["lemma"] += words[count:2 * count]
        result["norm"] += words[2 * count:]
        result["pos"] += names
