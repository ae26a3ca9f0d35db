"""A run folder ``saved_models/<run>/``: what it holds, how it is written and loaded.

A run folder is self-contained: ``model.keras`` (loaded with ``safe_mode``),
the resolved ``config.json`` (how to tokenize, which task), ``vocab.json`` and
``labels.json`` (and ``sentencepiece.model`` for ``tokenize.method = "sentencepiece"``: the pieces new text is
cut into). Nothing from ``work/`` or ``corpora/`` is needed to reload it.
Training writes it inside :func:`pipeline.io.atomic_directory`, so it appears
complete or not at all; ``pipeline run`` builds it (train, then evaluate) in a
staging folder that replaces the old run folder in one rename (:mod:`pipeline.workarea`).

:meth:`Run.export` writes a run as a TensorFlow SavedModel (``pipeline export``): the task builds the graph
(``registry.Task.api["export"]``), this module writes it, atomically, with ``assets.extra/export.json``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import config as config_module
from pipeline import io as artifact_io
from pipeline import registry
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import Paths, RunPaths
from pipeline.text import subwords
from pipeline.text.vocab import Vocabulary

# The frame's modules whose custom layers must be registered before a .keras file is deserialised; each task
# adds its own (registry.Task.custom_objects).
CUSTOM_OBJECT_MODULES = ("pipeline.models", "pipeline.layers.elman", "pipeline.layers.esn", "pipeline.layers.pooling",
                         "pipeline.layers.attention", "pipeline.layers.seq2seq_attention",
                         "pipeline.layers.char_encoder", "pipeline.layers.jordan", "pipeline.layers.deep_transition",
                         "pipeline.layers.adaptive_softmax", "pipeline.layers.regularization",
                         "pipeline.layers.weight_drop", "pipeline.layers.embedding")
# Beside saved_model.pb: what an export holds (signatures, labels or vocabulary, what the graph contains). The
# SavedModel convention's folder for files the graph does not read; TensorFlow Serving ignores it.
EXPORT_METADATA = Path("assets.extra") / "export.json"


def register_custom_objects() -> None:
    task_modules = [name for task in registry.tasks().values() for name in task.custom_objects]
    for name in (*CUSTOM_OBJECT_MODULES, *task_modules):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise


@dataclass
class ExportGraph:
    """What a task's ``export`` function (:attr:`pipeline.registry.Task.api`) builds from a run for
    :meth:`Run.export` to save.

    Attributes:
        module: a ``tf.Module`` that tracks every variable and lookup table the signatures use.
        signatures: name -> concrete ``tf.function``; ``serving_default`` is what TensorFlow Serving calls.
        metadata: the signatures' inputs and outputs, the labels or vocabulary, ``contains`` (what the graph does).
    """

    module: Any
    signatures: dict[str, Any]
    metadata: dict[str, Any]


@dataclass
class Run:
    """Everything a saved run holds, and what it does: the one entry point for Python code, the CLI, the
    service, the spaCy component and the export.

    Example:
        >>> from pipeline import load_run
        >>> run = load_run("saved_models/default")  # doctest: +SKIP
        >>> run.classify(["週末は嵐山で紅葉を見ました。"])[0]["label"]  # doctest: +SKIP
        'Kyoto'

    Each method belongs to a task (:attr:`pipeline.registry.Task.api`): ``classify`` and ``explain`` to a
    classifier, ``generate`` to a language model, ``read`` to a reading model; calling another task's
    method is a :class:`PipelineError` that says which run to use.
    """

    folder: Path
    model: Any
    config: Config
    vocab: Vocabulary
    labels: list[str]
    extras: dict[str, Any] = field(default_factory=dict)  # what the task loads besides (registry.Task.load_extras)

    @property
    def task(self) -> str:
        """The run's kind: ``classifier``, ``generator``, ``reading``."""
        return self.config.model.task

    @property
    def conditioned(self) -> bool:
        """True when :meth:`generate` needs a ``label`` (a model trained with ``model.conditioning``); a run
        that is not conditioned refuses one."""
        return self.config.model.conditioning != "none"

    def classify(self, texts: Sequence[str], batch_size: int = 64) -> list[dict]:
        """One result per text, in order: ``{"text", "label", "probability", "probabilities" (every label),
        "unknown_token_share"}``, or ``{"text", "error"}`` for a text with no tokens."""
        return self._task_function("classify")(self, list(texts), batch_size=batch_size)

    def classify_tokens(self, texts: Sequence[str], tokens: Sequence[dict[str, list[str]] | None],
                        batch_size: int = 64) -> list[dict]:
        """:meth:`classify` for texts already normalised and tokenized as the run's tokenizer does (the spaCy
        component's Docs): ``tokens[i]`` holds ``texts[i]``'s ``surface``, ``lemma``, ``norm``, ``pos`` lists
        after the run's filters, or None to let the run's tokenizer read it;
        :func:`pipeline.classifier.predict.classify_tokens`."""
        return self._task_function("classify_tokens")(self, list(texts), list(tokens), batch_size=batch_size)

    def explain(self, texts: Sequence[str]) -> list[dict]:
        """:meth:`classify` plus ``"tokens": [[token, weight], ...]`` and ``"method"`` (attention or occlusion)."""
        return self._task_function("explain")(self, list(texts))

    def generate(self, prompt: str, *, num: int = 1, seed: int = 0, label: str | None = None,
                 **sampling: Any) -> list[dict]:
        """``num`` samples continuing ``prompt``: ``{"text", "tokens", "probabilities", ...}`` each. ``sampling``:
        the fields of :class:`pipeline.language_model.generate.Sampling` (temperature, top_k, top_p, greedy,
        max_tokens, repetition_penalty, no_repeat_ngram)."""
        return self._task_function("generate")(self, prompt, num=num, seed=seed, label=label, **sampling)

    def read(self, texts: Sequence[str], beam_size: int | None = None,
             length_penalty: float | None = None) -> list[dict]:
        """The katakana reading of each text: ``{"text", "reading", "log_probability", "source", "output",
        "attention"}``; beam size and length penalty default to the run's ``[reading]``."""
        return self._task_function("read")(self, list(texts), beam_size=beam_size, length_penalty=length_penalty)

    def export(self, out: str | Path, *, force: bool = False) -> dict:
        """Write this run as a TensorFlow SavedModel folder ``out`` that TensorFlow Serving loads (mount it as a
        version folder, ``/models/<name>/1``) and ``tf.saved_model.load`` reads without this package.

        The task builds the signatures (a classifier's ``serving_default``, a language model's ``next_token``);
        ``assets.extra/export.json`` describes them. ``out`` appears complete or not at all. A non-empty ``out``
        that is not a previous export is replaced only with ``force``; the run folder itself never is.
        Returns the metadata written to ``export.json``.
        """
        build = self._task_function("export")
        out = Path(out)
        check_export_target(self.folder, out, force)
        import tensorflow as tf

        from pipeline import __version__

        exported = build(self)
        # every variable the signatures may read, tracked: Keras' recurrent cells draw a dropout mask even when
        # not training (and do not apply it), so the graph reads their seed generators' state, which Keras' own
        # tracking does not hand to tf.saved_model.save (a model with recurrent dropout failed to export)
        exported.module.keras_variables = list(self.model.variables)
        metadata = {"exported_by": "pipeline", "pipeline_version": __version__, "format": "savedmodel",
                    "task": self.task, "run": self.folder.name, **exported.metadata}
        try:
            with artifact_io.atomic_directory(out) as staging:
                tf.saved_model.save(exported.module, str(staging), signatures=exported.signatures)
                artifact_io.write_json(staging / EXPORT_METADATA, metadata)
        except OSError as error:
            raise PipelineError(f"{out}: cannot write the export ({error.strerror or error}); "
                                "choose a writable folder") from None
        return metadata

    def _task_function(self, name: str) -> Any:
        check_able(self.folder, self.task, name)
        return registry.resolve(registry.task(self.task).api[name])


def is_export(folder: Path) -> bool:
    """Whether ``folder`` holds an export that :meth:`Run.export` wrote."""
    return (folder / "saved_model.pb").is_file() and (folder / EXPORT_METADATA).is_file()


def check_export_target(run_folder: Path, out: Path, force: bool) -> None:
    """A one-line error unless ``out`` may receive an export: missing, empty, a previous export or ``force``;
    never a file, the run folder or a folder that holds it."""
    if out.exists() and not out.is_dir():
        raise PipelineError(f"{out}: a file, not a folder; pass a folder for the export")
    target, run = out.resolve(), run_folder.resolve()
    if target == run or target in run.parents:
        raise PipelineError(f"{out}: would replace the run folder {run_folder}; export to another folder")
    if out.is_dir() and any(out.iterdir()) and not is_export(out) and not force:
        raise PipelineError(f"{out}: a non-empty folder that is not a previous export; choose another folder or "
                            "pass --force to replace it")


def run_config(folder: str | Path) -> Config:
    """The config a run folder was trained with, read without Keras (milliseconds): a missing, incomplete or
    corrupt folder is a one-line PipelineError before a command pays for importing the backend."""
    folder = Path(folder)
    run = RunPaths(folder)
    if not folder.is_dir():
        raise PipelineError(f"{folder}: run folder not found; train one with `pipeline train --config ...` "
                            "or pass --model saved_models/<run>")
    for path in (run.model, run.config, run.vocab, run.labels):
        if not path.is_file():
            raise PipelineError(f"{folder}: incomplete run folder, {path.name} is missing; retrain with --force")
    try:
        config = config_module.from_dict(artifact_io.read_json(run.config), where=str(run.config))
    except ValueError as error:
        raise PipelineError(f"{run.config}: corrupt run metadata ({error}); retrain with --force") from None
    return config


def check_able(folder: Path, task_name: str, name: str) -> None:
    """A one-line PipelineError unless a run of ``task_name`` offers the API function ``name``."""
    if name not in registry.task(task_name).api:
        doers = sorted(other.name for other in registry.tasks().values() if name in other.api)
        raise PipelineError(f"{folder}: a {task_name} run cannot {name}; use a {' or '.join(doers)} run")


def load_run(folder: str | Path) -> Run:
    """Load ``saved_models/<run>/``; a missing or corrupt folder is a one-line PipelineError."""
    folder = Path(folder)
    run = RunPaths(folder)
    config = run_config(folder)
    try:
        labels = artifact_io.read_json(run.labels)
    except ValueError as error:
        raise PipelineError(f"{run.labels}: corrupt label list ({error}); retrain with --force") from None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise PipelineError(f"{run.labels}: expected a JSON list of label strings; retrain with --force")
    if config.tokenize.method == "sentencepiece":  # new text is cut by the run's copy of the model
        pieces = subwords.model_path(folder)
        if not pieces.is_file():
            raise PipelineError(f"{folder}: incomplete run folder, {pieces.name} is missing; retrain with --force")
        config = config.replace(tokenize=dataclasses.replace(config.tokenize, sp_model=str(pieces)))
    vocab = Vocabulary.load(run.vocab)
    import keras

    register_custom_objects()
    try:
        model = keras.saving.load_model(run.model, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PipelineError(f"{run.model}: cannot load the model ({first_line[:200]}); retrain with --force") from None
    task = registry.task(config.model.task)
    extras = registry.resolve(task.load_extras)(folder, config, model, labels) if task.load_extras else {}
    return Run(folder, model, config, vocab, labels, extras)


def write_run_metadata(folder: Path, config: Config, vocab: Vocabulary, labels: list[str]) -> None:
    """The resolved config, vocabulary and labels (and the SentencePiece model that the tokenize stage wrote, for
    ``tokenize.method = "sentencepiece"``): with model.keras, all a run needs to reload."""
    run = RunPaths(folder)
    if config.tokenize.method == "sentencepiece":
        source = subwords.model_path(Paths.from_config(config).work)
        if not source.is_file():
            raise PipelineError(f"{source}: not found; run `pipeline tokenize` first")
        with artifact_io.atomic_path(subwords.model_path(folder), suffix=".model") as temporary:
            temporary.write_bytes(source.read_bytes())
    artifact_io.write_json(run.config, config.to_dict())
    vocab.save(run.vocab)
    artifact_io.write_json(run.labels, labels)
