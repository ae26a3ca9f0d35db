"""The spaCy pipeline component ``ja_rnn_textcat``: a classifier run's probabilities in ``doc.cats``.

Example:
    >>> import spacy  # doctest: +SKIP
    >>> nlp = spacy.load("ja_ginza")
    >>> nlp.add_pipe("ja_rnn_textcat", config={"model": "saved_models/default"})
    >>> nlp("週末は嵐山で紅葉を見ました。").cats
    {'Gourmet': 0.01, 'Keitai': 0.02, 'Kyoto': 0.95, 'Sports': 0.02}

spaCy finds the factory through the ``spacy_factories`` entry point (``pyproject.toml``), so a script that
imports only spaCy can add it. spaCy imports this module whenever it creates any pipeline: it imports nothing
heavy; the run (TensorFlow) loads in ``add_pipe``.

**No second tokenization.** ``run.classify`` normalises a text as ``prepare`` does
(:func:`~pipeline.text.corpora.normalize`: NFKC, URLs removed, whitespace collapsed) and tokenizes that. When the
Doc's text is its normalised text up to half- and full-width forms (ｻｯｶｰ, ＡＢＣ１２３, ！: :func:`same_analysis`),
SudachiPy has already seen the same words (it applies NFKC itself before its dictionary look-up), and the run's
token fields are built from the Doc's tokens exactly as :mod:`pipeline.text.tokenize` builds them:

* surface: NFKC of ``token.text`` (lower-cased with ``tokenize.lowercase``); lemma ``token.lemma_`` and norm
  ``token.norm_`` (Sudachi's, already those of the normalised word: ｽﾏﾎ -> スマホ);
* the coarse POS (``tokenize.pos_source = "sudachi"``) is the tokenizer's: spaCy's Japanese tag-to-POS rules
  (:func:`spacy.lang.ja.resolve_pos`, which look at the next token's tag too) rerun on ``token.tag_``, because
  GiNZA's morphologizer has since overwritten ``token.pos_`` with its UD guess; with ``pos_source = "ud"`` it
  is ``token.pos_`` from the pipeline's morphologizer, used only when the Doc's text is already normalised
  (the morphologizer's guess depends on the characters it saw);
* then the run's filters (``drop_punct``, ``stop_pos``, whitespace), vocabulary (``vectorize.token_field``) and
  ``train.max_length``, in :func:`pipeline.classifier.predict.classify_tokens`, the code ``classify`` runs;
  the char n-gram ensemble member reads the normalised text.

Any other change that normalisation makes changes Sudachi's words around it: whitespace is a word of its own to
Sudachi (``ま\tせん`` gives せ|ん where ``ま せん`` gives せん, and the tag-to-POS rules look at the neighbour),
a removed URL changes the neighbours' analysis, and compatibility characters such as … and Ⅲ are not normalised
by Sudachi as by NFKC. Such a Doc (a URL, a line break, a tab, an ideographic space, two spaces, …) is tokenized
again, by the run's own tokenizer from its normalised text, so ``doc.cats`` are ``run.classify``'s in every case.
On the shipped corpus, with half-width katakana, full-width ASCII and every character of the half- and
full-width block inserted, the Doc's tokens gave the run tokenizer's fields for every sentence.

**Matching tokenizer** (checked in ``add_pipe``, a :class:`ComponentError` otherwise): the run tokenizes with
``tokenize.method = "ginza"`` (a char or whitespace run reads no GiNZA tokens: use ``run.classify``); the
pipeline's tokenizer is spaCy's SudachiPy ``JapaneseTokenizer`` with the split mode of the run's
``tokenize.model`` (``ja_ginza``: C; ``spacy.blank("ja")`` splits in mode A) and nothing before this component
retokenizes (GiNZA's ``compound_splitter`` in another mode, ``merge_*``); for ``pos_source = "ud"``, the pipeline
is the run's ``tokenize.model`` (same name and version) with its morphologizer.

**Saving.** The run is referenced, not copied: ``nlp.to_disk`` writes the ``model`` path in ``config.cfg`` and,
in the component's folder, ``run.json`` (the run folder's absolute path, its labels and a SHA-256 of
``model.keras`` and ``labels.json``); ``spacy.load`` of the saved pipeline loads the run from that path (relative
to the current directory: give an absolute one for a pipeline loaded elsewhere) and ``from_disk`` refuses a run
folder that has been retrained since. ``to_bytes``/``from_bytes`` do the same. Multiprocess ``nlp.pipe``
(``n_process > 1``) is not supported.
"""

import hashlib
import json
import logging
import unicodedata
from pathlib import Path

from spacy.language import Language
from spacy.util import minibatch

from pipeline import io as artifact_io
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

FACTORY = "ja_rnn_textcat"
SPACY_JAPANESE_TOKENIZER = "spacy.ja.JapaneseTokenizer"  # the @tokenizers name of GiNZA models' tokenizer
RETOKENIZERS = ("merge_entities", "merge_noun_chunks", "merge_subtokens")  # factories that change the tokens
REFERENCE_FILE = "run.json"
HALF_AND_FULL_WIDTH = ("\uff00", "\uffef")  # the Unicode block whose NFKC Sudachi's own normalisation matches


class ComponentError(PipelineError, ValueError):
    """The component cannot use this run with this pipeline; a ValueError as spaCy's own config errors are."""


@Language.factory(FACTORY, assigns=["doc.cats"], default_config={"model": "saved_models/default"})
def make_textcat(nlp: Language, name: str, model: str):
    """spaCy's factory: ``nlp.add_pipe("ja_rnn_textcat", config={"model": "<run folder>"})``."""
    return RunTextCategorizer(nlp, name, model)


class RunTextCategorizer:
    """Sets ``doc.cats`` (every label of the run -> its probability) from a classifier run folder.

    Args:
        nlp: the pipeline it joins (its tokenizer must match the run's, see the module docstring).
        name: the component's name in the pipeline.
        model: the run folder, e.g. ``saved_models/default``.

    A Doc with nothing to classify (an empty text, no token left after the run's filters) gets ``doc.cats = {}``.
    """

    def __init__(self, nlp: Language, name: str, model: str) -> None:
        from pipeline import registry
        from pipeline.runs import load_run

        self.name = name
        if not Path(model).is_dir():
            raise ComponentError(f"{FACTORY}: run folder {model} not found; config={{\"model\": ...}} must name a "
                                 "classifier run folder (saved_models/<run>, trained with `pipeline run`)")
        try:
            self.run = load_run(model)
        except PipelineError as error:
            raise ComponentError(f"{FACTORY}: {error}") from None
        if "classify_tokens" not in registry.task(self.run.task).api:
            raise ComponentError(f"{FACTORY}: {model} is a {self.run.task} run, not a classifier; "
                                 f"config={{\"model\": ...}} must name a classifier run folder")
        check_tokenizer(nlp, self.run)
        self.settings = self.run.config.tokenize
        self.labels = list(self.run.labels)

    def __call__(self, doc):
        self.set_cats([doc])
        return doc

    def pipe(self, docs, batch_size: int = 128):
        """``nlp.pipe``: the Docs classified ``batch_size`` at a time (one model call per batch), in order."""
        for batch in minibatch(docs, size=batch_size):
            self.set_cats(batch)
            yield from batch

    def set_cats(self, docs: list) -> None:
        """Classify ``docs`` in one :meth:`pipeline.runs.Run.classify_tokens` call and set their ``cats``."""
        from pipeline.text.corpora import normalize

        texts = [normalize(doc.text) for doc in docs]
        tokens = [doc_tokens(doc, text, self.settings) for doc, text in zip(docs, texts, strict=True)]
        again = sum(fields is None for fields in tokens)
        if again:  # a Doc whose tokens do not map onto its normalised text's: the run's tokenizer (None) reads it
            log.debug("%s: %d Doc(s) tokenized again from their normalised text", FACTORY, again)
        for doc, result in zip(docs, self.run.classify_tokens(texts, tokens, batch_size=max(len(docs), 1)),
                               strict=True):
            doc.cats = dict(result.get("probabilities", {}))

    # ------------------------------------------------------------------ serialization (by reference)
    def reference(self) -> dict:
        """What ``to_disk`` records: the run folder, its labels and a digest of its model and labels."""
        return {"model": str(Path(self.run.folder).resolve()), "labels": self.labels, "sha256": run_digest(self.run)}

    def check_reference(self, saved: dict) -> None:
        if saved.get("sha256") != run_digest(self.run):
            raise ComponentError(f"{FACTORY}: the run folder {self.run.folder} is not the run this pipeline was "
                                 f"saved with ({saved.get('model')}: its model.keras or labels.json changed); "
                                 "add the component again with the run you want and save the pipeline again")

    def to_disk(self, path, exclude=tuple()) -> None:
        """``nlp.to_disk``: ``<path>/run.json``, the reference to the run (:meth:`reference`)."""
        Path(path).mkdir(parents=True, exist_ok=True)
        artifact_io.write_json(Path(path) / REFERENCE_FILE, self.reference())

    def from_disk(self, path, exclude=tuple()):
        """``spacy.load`` of a saved pipeline: the run loaded from ``model`` must be the one it was saved with."""
        reference = Path(path) / REFERENCE_FILE
        if reference.is_file():
            self.check_reference(artifact_io.read_json(reference))
        return self

    def to_bytes(self, exclude=tuple()) -> bytes:
        return json.dumps(self.reference(), ensure_ascii=False).encode("utf-8")

    def from_bytes(self, data: bytes, exclude=tuple()):
        self.check_reference(json.loads(data.decode("utf-8")))
        return self


def run_digest(run) -> str:
    """SHA-256 of the run's ``model.keras`` and ``labels.json``: the same run, or a retrained one."""
    from pipeline.paths import RunPaths

    paths = RunPaths(Path(run.folder))
    digest = hashlib.sha256()
    for path in (paths.model, paths.labels):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------ the tokenizer check
def check_tokenizer(nlp: Language, run) -> None:
    """A :class:`ComponentError` unless ``nlp``'s tokens are those the run's tokenizer makes (module docstring)."""
    settings, folder = run.config.tokenize, run.folder
    if settings.method != "ginza":
        raise ComponentError(f"{FACTORY}: {folder} was trained with tokenize.method = {settings.method!r}, "
                             "which does not read a GiNZA pipeline's tokens; only a run with tokenize.method = "
                             "\"ginza\" can be a spaCy component (classify with load_run(...).classify instead)")
    from spacy.lang.ja import JapaneseTokenizer

    expected = run_split_mode(settings.model)
    tokenizer = nlp.tokenizer
    if not isinstance(tokenizer, JapaneseTokenizer):
        raise ComponentError(f"{FACTORY}: the pipeline's tokenizer is {type(tokenizer).__name__} "
                             f"({nlp.lang!r} pipeline), not the SudachiPy JapaneseTokenizer that {folder} was "
                             f"tokenized with; use spacy.load({settings.model!r})")
    actual = tokenizer.split_mode or "A"
    if actual != expected:
        raise ComponentError(f"{FACTORY}: the pipeline's tokenizer splits in Sudachi mode {actual}, {folder} was "
                             f"tokenized in mode {expected} ({settings.model}); use spacy.load({settings.model!r}) "
                             f"or a tokenizer with split_mode = {expected!r}")
    for name in nlp.pipe_names:
        factory = nlp.get_pipe_meta(name).factory
        split_mode = getattr(nlp.get_pipe(name), "split_mode", None) if factory == "compound_splitter" else None
        if factory in RETOKENIZERS or split_mode not in (None, expected):
            raise ComponentError(f"{FACTORY}: the pipeline's component {name!r} ({factory}"
                                 f"{f', split_mode {split_mode!r}' if split_mode else ''}) changes the tokens "
                                 f"{folder} was trained on; remove it (nlp.remove_pipe({name!r}))")
    if settings.pos_source == "ud":
        package = f"{nlp.meta.get('lang')}_{nlp.meta.get('name')}"
        installed = model_meta(settings.model).get("version")
        factories = [nlp.get_pipe_meta(name).factory for name in nlp.pipe_names]
        if package != settings.model or nlp.meta.get("version") != installed or "morphologizer" not in factories:
            raise ComponentError(f"{FACTORY}: {folder} reads the UD POS of {settings.model} {installed}'s "
                                 f"morphologizer (tokenize.pos_source = \"ud\"); the pipeline is {package} "
                                 f"{nlp.meta.get('version')} with {factories}: use spacy.load({settings.model!r})")


def model_meta(model: str) -> dict:
    """``meta.json`` of the installed spaCy model package ``model``."""
    import spacy

    try:
        return spacy.util.get_model_meta(spacy.util.get_package_path(model))
    except (ImportError, OSError, ModuleNotFoundError):
        raise ComponentError(f"{FACTORY}: the run's tokenize.model {model!r} is not installed; install it "
                             "(pip install ja-ginza)") from None


def run_split_mode(model: str) -> str:
    """The Sudachi split mode of the installed spaCy model ``model``'s tokenizer (what the run tokenized with)."""
    import spacy

    meta = model_meta(model)
    data = spacy.util.get_package_path(model) / f"{meta['lang']}_{meta['name']}-{meta['version']}"
    tokenizer = spacy.util.load_config(data / "config.cfg", interpolate=False)["nlp"]["tokenizer"]
    if tokenizer.get("@tokenizers") != SPACY_JAPANESE_TOKENIZER:
        raise ComponentError(f"{FACTORY}: the run's tokenize.model {model!r} does not tokenize with SudachiPy "
                             f"({tokenizer.get('@tokenizers')}); only GiNZA/SudachiPy runs are supported")
    return tokenizer.get("split_mode") or "A"


# ------------------------------------------------------------------ Doc tokens -> the run's token fields
def doc_tokens(doc, text: str, settings) -> dict[str, list[str]] | None:
    """The run tokenizer's fields (surface, lemma, norm, pos, after its filters) of ``doc``'s normalised ``text``,
    built from ``doc``'s tokens; None when the Doc's tokens are not those of ``text`` (then it is tokenized again).

    See the module docstring for how each field is derived; every step mirrors
    :meth:`pipeline.text.tokenize.Tokenizer.tokenize` on the Doc GiNZA makes of ``text``.
    """
    from spacy.lang.ja import resolve_pos
    from spacy.parts_of_speech import NAMES as POS_NAMES

    if not text:  # nothing to classify, whatever the Doc holds (whitespace)
        return {"surface": [], "lemma": [], "norm": [], "pos": []}
    if not same_analysis(doc.text, text) or (settings.pos_source == "ud" and doc.text != text):
        return None
    forms = [unicodedata.normalize("NFKC", token.text) for token in doc]
    if "".join(form + token.whitespace_ for token, form in zip(doc, forms)) != text \
            or any(char.isspace() for form in forms for char in form):
        return None  # NFKC joined characters of two tokens, or made a space inside one (¨ -> " ̈")
    if settings.pos_source == "ud":
        tags = [token.pos_ for token in doc]
    else:  # the tokenizer's POS, as JapaneseTokenizer.__call__ assigns it from the tags (the next one's too)
        tags, next_pos = [], None
        for index, (token, form) in enumerate(zip(doc, forms)):
            if next_pos:
                pos, next_pos = next_pos, None
            else:
                following = doc[index + 1].tag_ if index + 1 < len(doc) else None
                pos, next_pos = resolve_pos(form, token.tag_, following)
            tags.append(POS_NAMES.get(pos, ""))
    fields = {"surface": [], "lemma": [], "norm": [], "pos": []}
    stop_pos = frozenset(settings.stop_pos)
    for token, form, tag in zip(doc, forms, tags):
        lexeme = doc.vocab[form]  # IS_SPACE, IS_PUNCT: attributes of the normalised form
        if lexeme.is_space or tag == "SPACE" or (settings.drop_punct and (lexeme.is_punct or tag == "PUNCT")) \
                or tag in stop_pos:
            continue
        fields["surface"].append(form.lower() if settings.lowercase else form)
        fields["lemma"].append(token.lemma_)
        fields["norm"].append(token.norm_)
        fields["pos"].append(tag)
    return fields


def same_analysis(raw: str, text: str) -> bool:
    """Whether SudachiPy analyses ``raw`` as it analyses ``text``, its normalisation: they differ only by NFKC of
    half-width and full-width forms (ｻｯｶｰ, ＡＢＣ１２３, ！, ～), which Sudachi normalises itself before it looks
    words up. Anything else that normalisation changes changes Sudachi's words: a URL it removes, whitespace
    it collapses (a newline, a tab, an ideographic space, two spaces: Sudachi reads whitespace as a word),
    other compatibility characters (… -> ..., Ⅲ -> III, ㈱ -> (株)) and combining marks."""
    if unicodedata.normalize("NFKC", raw) != text:
        return False
    return all(char == " " if char.isspace() else
               HALF_AND_FULL_WIDTH[0] <= char <= HALF_AND_FULL_WIDTH[1]
               or (unicodedata.normalize("NFKC", char) == char and not unicodedata.combining(char))
               for char in raw)
