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
arbitrary Unicode and every filter; ``benchmarks/tokenize_throughput.py`` the Aozora corpus), so the stage's
output and fingerprint do not depend on which path ran. The fast path is taken by
:func:`pipeline.text.tokenize.make_tokenizer` wherever :func:`fast_path_applies`; the parser, the morphologizer
(``pos_source = "ud"``) and NER keep the GiNZA path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pipeline.progress import Progress
from pipeline.sections import TokenizeConfig
from pipeline.text.tokenize import FIELDS, _tokenize_in_processes, chunk_text, components_for, load_nlp

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

    Args:
        settings: the ``[tokenize]`` section; :func:`fast_path_applies` must hold for it.

    Example:
        >>> SudachiTokenizer(TokenizeConfig()).tokenize(["京都に行った。"])[0]["pos"]
        ['PROPN', 'ADP', 'VERB', 'AUX', 'PUNCT']
    """

    def __init__(self, settings: TokenizeConfig) -> None:
        from spacy.attrs import IS_PUNCT, IS_SPACE

        if not fast_path_applies(settings):
            raise ValueError(f"the SudachiPy fast path does not give the tokens of {settings}")
        self.settings = settings
        self.nlp = load_nlp(settings.model, ())
        self.japanese_tokenizer = spacy_japanese_tokenizer(self.nlp)
        # GiNZA's own SudachiPy tokenizer: the dictionary and split mode of the model's config (ja_ginza: C)
        self.sudachi = self.japanese_tokenizer.tokenizer
        self.split_mode = self.japanese_tokenizer.split_mode
        getters = self.nlp.vocab.lex_attr_getters
        self._is_space, self._is_punct = getters[IS_SPACE], getters[IS_PUNCT]  # how spaCy sets the lexeme flags
        self._tags: dict[int, str] = {}  # Sudachi POS id -> tag (名詞-普通名詞-一般)
        self._pos: dict[tuple, tuple[int, int | None]] = {}  # resolve_pos results
        self._drop: dict[tuple[str, str], bool] = {}  # (surface, POS name) -> dropped by the filters
        self.stop_pos = frozenset(settings.stop_pos)

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
        results = []
        for text in texts:
            result = {field: [] for field in FIELDS}
            for piece in chunk_text(text):
                self._add_tokens(piece, result)
            results.append(result)
            if progress is not None:
                progress.update(1)
        return results

    def _tokens(self, text: str) -> tuple[list[str], list[str], list[str], list[str]]:
        """(surfaces, tags, lemmas, norms) of GiNZA's tokens of ``text``, whitespace tokens included."""
        morphemes = self.sudachi.tokenize(text)
        if WHITESPACE.search(text) is None:
            surfaces, tags, lemmas, norms = [], [], [], []
            known = self._tags
            for morpheme in morphemes:
                surface = morpheme.surface()
                if not surface:  # spaCy drops empty tokens (some normalised characters leave them)
                    continue
                pos_id = morpheme.part_of_speech_id()
                tag = known.get(pos_id)
                if tag is None:
                    tag = known[pos_id] = "-".join(field for field in morpheme.part_of_speech()[:4] if field != "*")
                surfaces.append(surface)
                tags.append(tag)
                lemmas.append(morpheme.dictionary_form())
                norms.append(morpheme.normalized_form())
            # no whitespace: spaCy's alignment of tokens to text keeps them as they are when they spell it
            if "".join(surfaces) == text:
                return surfaces, tags, lemmas, norms
        from spacy.lang.ja import get_dtokens_and_spaces

        # whitespace (or tokens that do not spell the text): spaCy's own code, so its 空白 tokens are the same
        dtokens, _ = get_dtokens_and_spaces(self.japanese_tokenizer._get_dtokens(morphemes, False), text)
        return ([token.surface for token in dtokens], [token.tag for token in dtokens],
                [token.lemma for token in dtokens], [token.norm for token in dtokens])

    def _add_tokens(self, text: str, result: dict[str, list[str]]) -> None:
        """Append the kept tokens of ``text`` (one chunk) to ``result``'s lists."""
        from spacy.lang.ja import TAG_ORTH_MAP, resolve_pos
        from spacy.parts_of_speech import NAMES as POS_NAMES

        surfaces, tags, lemmas, norms = self._tokens(text)
        surface_out, lemma_out, norm_out, pos_out = result["surface"], result["lemma"], result["norm"], result["pos"]
        resolved, drop = self._pos, self._drop
        last = len(tags) - 1
        next_pos = None
        for index, (surface, tag) in enumerate(zip(surfaces, tags, strict=True)):
            # spaCy's loop (JapaneseTokenizer.__call__): a POS set by the previous bigram is kept as it is
            if next_pos:
                pos, next_pos = next_pos, None
            else:
                next_tag = tags[index + 1] if index < last else None
                key = (surface if tag in TAG_ORTH_MAP else None, tag, next_tag)
                found = resolved.get(key)
                if found is None:
                    found = resolved[key] = resolve_pos(surface, tag, next_tag)
                pos, next_pos = found
            name = POS_NAMES.get(pos, "")
            dropped = drop.get((surface, name))
            if dropped is None:
                dropped = drop[(surface, name)] = self._dropped(surface, name)
            if dropped:
                continue
            surface_out.append(surface.lower() if self.settings.lowercase else surface)
            lemma_out.append(lemmas[index] or surface)
            norm = norms[index]
            norm_out.append(norm if norm else self.nlp.vocab[surface].norm_)  # never seen; as Token.norm_ falls back
            pos_out.append(name)

    def _dropped(self, surface: str, pos: str) -> bool:
        """Whether ``Tokenizer.tokenize``'s filters drop a token (spaCy's lexeme flags of its surface)."""
        if self._is_space(surface) or pos == "SPACE":
            return True
        if self.settings.drop_punct and (self._is_punct(surface) or pos == "PUNCT"):
            return True
        return pos in self.stop_pos
