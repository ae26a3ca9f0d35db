"""A subword vocabulary learned from the corpus: ``tokenize.method = "sentencepiece"``.

The ``tokenize`` stage trains a SentencePiece model (Kudo & Richardson 2018; ``tokenize.sp_model_type``:
``unigram``, Kudo 2018, or ``bpe``) on the training split's text, plus the unlabelled text that the
vocabulary also learns from (``corpus.unlabeled_path``), never on validation or test sentences, writes it
to ``work/<corpus>/sentencepiece.model`` and cuts every sentence into its pieces. The run folder keeps a
copy (:func:`pipeline.runs.write_run_metadata`) that :func:`pipeline.runs.load_run` points
``tokenize.sp_model`` at, so ``classify``, ``generate`` and ``serve`` cut new text the same way.
``tokenize.sp_model`` set by the user tokenizes with that model instead of learning one.

Choices (the ``TrainerSpec`` options of :func:`train_model`):

* no normalisation of its own (``normalization_rule_name = "identity"``, extra whitespace kept): ``prepare``
  already applied NFKC and collapsed whitespace, and the pieces then join into the prepared text exactly;
* no dummy prefix (``add_dummy_prefix = False``): Japanese has no spaces between words, so a sentence does not
  start with ``▁``; a space inside the text (a Latin word, a number) is the ``▁`` that starts the next piece
  (``split_by_whitespace``), so ``"".join(pieces).replace("▁", " ")`` gives the text back;
* ``character_coverage = 0.9995`` (SentencePiece's advice for Japanese and Chinese): the rarest characters are
  left out of the model, and a run of them becomes one piece that the vocabulary maps to ``<unk>``;
* one thread and every training sentence in table order: the same corpus and options give the same model
  bytes; ``seed`` seeds SentencePiece's generator besides (it samples nothing with these options).

Pieces become the surface, lemma and norm of each token, with POS ``X``; their vectors come from their
characters (:func:`pipeline.text.vectors.vectorize`).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline import io as artifact_io
from pipeline.errors import PipelineError
from pipeline.progress import Progress
from pipeline.sections import TokenizeConfig

log = logging.getLogger(__name__)

MODEL_FILE = "sentencepiece.model"  # in the work folder (the tokenize stage's) and in the run folder (its copy)
SPACE_MARK = "\u2581"  # ▁: SentencePiece's mark for a space; a piece that follows a space starts with it
TRAINING_SPLITS = ("train", "unlabeled")  # the splits the vocabulary learns from (pipeline.text.vectors)
MAX_SENTENCE_BYTES = 1 << 16  # longer training sentences are skipped by SentencePiece (its default: 4,192 bytes)
_TOO_LARGE = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def model_path(folder: str | Path) -> Path:
    """Where a work or run ``folder`` keeps its SentencePiece model."""
    return Path(folder) / MODEL_FILE


def training_texts(table: Any, settings: TokenizeConfig) -> list[str]:
    """The texts the model learns from: rows of :data:`TRAINING_SPLITS`, in table order (lower-cased with
    ``tokenize.lowercase``, as :class:`SubwordTokenizer` sees them)."""
    texts = table.loc[table["split"].isin(TRAINING_SPLITS), "text"].tolist()
    return [text.lower() for text in texts] if settings.lowercase else texts


def _train(texts: list[str], settings: TokenizeConfig, vocab_size: int) -> bytes:
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, model_type=settings.sp_model_type,
        vocab_size=vocab_size, character_coverage=0.9995, normalization_rule_name="identity",
        add_dummy_prefix=False, remove_extra_whitespaces=False, split_by_whitespace=True,
        max_sentence_length=MAX_SENTENCE_BYTES, num_threads=1, minloglevel=2)
    return model.getvalue()


def train_model(texts: list[str], settings: TokenizeConfig, seed: int) -> bytes:
    """The serialised SentencePiece model (``ModelProto`` bytes) learned from ``texts``.

    Every character kept (``character_coverage``) is a piece of its own, so the vocabulary must hold at least
    those (about 1,300 on the shipped corpus): a smaller ``tokenize.sp_vocab_size`` is a one-line error.

    ``tokenize.sp_vocab_size`` larger than the corpus allows (SentencePiece refuses it and names the most it can
    build) gives that largest feasible size instead, with a warning.
    """
    import sentencepiece

    if not any(text.strip() for text in texts):
        raise PipelineError("tokenize.method = \"sentencepiece\": the training split has no text to learn pieces "
                            "from; check the corpus")
    sentencepiece.set_random_generator_seed(seed)
    try:
        return _train(texts, settings, settings.sp_vocab_size)
    except RuntimeError as error:
        too_large, too_small = _TOO_LARGE.search(str(error)), _TOO_SMALL.search(str(error))
        if too_small is not None:  # every character kept (character_coverage) must be a piece of its own
            raise PipelineError(f"tokenize.sp_vocab_size = {settings.sp_vocab_size} is smaller than the "
                                f"{too_small.group(2)} pieces the training split's characters need; set it above "
                                f"{too_small.group(2)}") from None
        if too_large is None:
            raise PipelineError(f"tokenize.sp_vocab_size = {settings.sp_vocab_size}: SentencePiece cannot train "
                                f"({str(error).strip().splitlines()[-1][:200]}); change it or the corpus") from None
        feasible = int(too_large.group(2))
    log.warning("tokenize.sp_vocab_size = %d is more than the training split allows; learning %d pieces",
                settings.sp_vocab_size, feasible)
    sentencepiece.set_random_generator_seed(seed)
    try:
        return _train(texts, settings, feasible)
    except RuntimeError as error:  # BPE may refuse the size it named: give up with the key to change
        raise PipelineError(f"tokenize.sp_vocab_size = {settings.sp_vocab_size}: too large for this corpus and "
                            f"{feasible} failed too ({str(error).strip().splitlines()[-1][:120]}); set a smaller "
                            "value") from None


def write_model(table: Any, settings: TokenizeConfig, seed: int, path: Path) -> Path:
    """The tokenize stage's model at ``path`` (atomically): learned from ``table``'s training split, or a copy of
    ``tokenize.sp_model`` when the config names one."""
    if settings.sp_model:
        source = Path(settings.sp_model)
        if not source.is_file():
            raise PipelineError(f"tokenize.sp_model = {settings.sp_model!r}: no such file; give a SentencePiece "
                                "model file or leave it empty to learn one from the corpus")
        model = source.read_bytes()
    else:
        texts = training_texts(table, settings)
        log.info("learning a %s SentencePiece model of %d pieces from %d training sentences",
                 settings.sp_model_type, settings.sp_vocab_size, len(texts))
        model = train_model(texts, settings, seed)
    with artifact_io.atomic_path(path, suffix=".model") as temporary:
        temporary.write_bytes(model)
    return path


class SubwordTokenizer:
    """Text -> SentencePiece pieces as tokens (surface = lemma = norm = piece, POS ``X``).

    Args:
        settings: the ``[tokenize]`` section; ``lowercase`` lower-cases the text first.
        model: the model file (default ``tokenize.sp_model``: what :func:`pipeline.runs.load_run` sets).

    Example:
        >>> SubwordTokenizer(settings, "work/knb_blog/sentencepiece.model").tokenize(["京都に行った。"])[0]["surface"]
        ... # doctest: +SKIP
        ['京都', 'に行', 'った', '。']
    """

    def __init__(self, settings: TokenizeConfig, model: str | Path | None = None) -> None:
        import sentencepiece

        self.settings = settings
        path = Path(model or settings.sp_model)
        if not str(model or settings.sp_model) or not path.is_file():
            raise PipelineError(f"tokenize.method = \"sentencepiece\": no model file at {str(path)!r}; run "
                                "`pipeline tokenize` (it learns one), load the run with load_run, or set "
                                "tokenize.sp_model")
        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(path))

    def tokenize(self, texts: Iterable[str], progress: Progress | None = None) -> list[dict[str, list[str]]]:
        """Pieces of each text: ``{"surface", "lemma", "norm", "pos"}`` lists of equal length."""
        results = []
        for text in texts:
            pieces = self.processor.encode(text.lower() if self.settings.lowercase else text, out_type=str)
            results.append({"surface": pieces, "lemma": list(pieces), "norm": list(pieces), "pos": ["X"] * len(pieces)})
            if progress is not None:
                progress.update(1)
        return results


def detokenize(pieces: Iterable[str]) -> str:
    """The text that ``pieces`` cut: joined, each ``▁`` back to a space."""
    return "".join(pieces).replace(SPACE_MARK, " ")
