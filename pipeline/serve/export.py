"""``pipeline export``: a run folder as a TensorFlow SavedModel for TensorFlow Serving.

A thin adapter over the one run API: :func:`pipeline.load_run`, then :meth:`pipeline.runs.Run.export`, where the
run's task builds its signatures (``pipeline/classifier/export.py``, ``pipeline/language_model/export.py``).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import PipelineError

FORMATS = ("savedmodel",)  # a TensorFlow SavedModel folder: tf.saved_model.load, TensorFlow Serving


def export_run(model: str | Path, out: str | Path, export_format: str = "savedmodel", force: bool = False) -> dict:
    """Export run folder ``model`` to folder ``out``; returns the export's metadata (``assets.extra/export.json``).

    The target is checked before TensorFlow and the run load, so a wrong folder fails at once.
    """
    from pipeline.runs import check_export_target, load_run

    if export_format not in FORMATS:
        raise PipelineError(f"--format {export_format!r} is not supported; use one of: {', '.join(FORMATS)}")
    model, out = Path(model), Path(out)
    check_export_target(model, out, force)
    return load_run(model).export(out, force=force)


def describe(metadata: dict) -> list[str]:
    """One line per signature: ``name: input dtype shape, ... -> output dtype shape, ...``."""

    def shape(sizes: list) -> str:
        return ", ".join("batch" if size is None and axis == 0 else "?" if size is None else str(size)
                         for axis, size in enumerate(sizes))

    def tensors(specs: dict) -> str:
        return ", ".join(f"{name} {spec['dtype']} ({shape(spec['shape'])})" for name, spec in specs.items())

    return [f"{name}: {tensors(signature['inputs']) or '(no inputs)'} -> {tensors(signature['outputs'])}"
            for name, signature in metadata["signatures"].items()]
