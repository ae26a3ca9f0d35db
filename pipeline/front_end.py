"""The text front end's stages: ``prepare``, ``tokenize`` (in shards, and ``--shard I/N``) and ``vectorize``.

Each declares what it reads and writes and the settings that change its result (:class:`pipeline.stages.Stage`);
the work itself is in :mod:`pipeline.text`. :mod:`pipeline.stages` imports this module, so the three are
registered wherever stages run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline import registry
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.paths import Paths
from pipeline.stages import STAGES, Stage, fingerprint, is_current, register, section_values

log = logging.getLogger(__name__)


def _prepare(config: Config, paths: Paths) -> dict:
    from pipeline.text.prepare import write_prepared

    return {"sentences": write_prepared(config, paths.prepared)}


def _tokenize(config: Config, paths: Paths) -> dict:
    """Tokenize the prepared table in shards (:mod:`pipeline.text.shards`), then merge them into tokens.parquet."""
    from pipeline.text import shards

    tokenizer = None
    if config.tokenize.method == "sentencepiece":  # learn the pieces from the training split first
        import pandas as pd

        from pipeline.text import subwords

        table = pd.read_parquet(paths.prepared, columns=["text", "split"])
        model = subwords.write_model(table, config.tokenize, config.seed, subwords.model_path(paths.work))
        tokenizer = subwords.SubwordTokenizer(config.tokenize, model)
    job = tokenize_job(config, paths)
    shards.tokenize_stage(job, paths.tokens, tokenizer)
    return {"sentences": job.rows}


def tokenize_shards_folder(paths: Paths) -> Path:
    """Where ``tokenize`` keeps its finished shards until it merges them (a killed run's, to continue from)."""
    from pipeline.text.shards import SHARDS

    return paths.work / SHARDS


def tokenize_job(config: Config, paths: Paths) -> Any:
    """The tokenize stage's :class:`pipeline.text.shards.ShardJob`: its shards named by the stage's fingerprint."""
    from pipeline.text.shards import ShardJob, file_stamp

    stamp = file_stamp(paths.prepared) if paths.prepared.is_file() else None  # before the digest reads it
    digest = fingerprint(STAGES["tokenize"], config, paths)  # a missing prepared table: its error
    return ShardJob.of(paths.work, paths.prepared, config.tokenize, digest, stamp)


def tokenize_part(config: Config, index: int, count: int) -> dict:
    """``pipeline tokenize --shard I/N``: the shards ``i`` with ``i % count == index``, written, nothing merged.

    Takes no lock (several such processes share a work folder; each writes its shard files atomically) and runs
    no other stage: the prepared table must be up to date.
    """
    paths = Paths.from_config(config)
    prepare = STAGES["prepare"]
    if not is_current(prepare, config, paths, fingerprint(prepare, config, paths)):
        raise PipelineError(f"{paths.prepared}: missing or out of date for this config; run `pipeline prepare` "
                            "first (--shard processes run no other stage)")
    from pipeline.text.shards import tokenize_shards

    job = tokenize_job(config, paths)
    if is_current(STAGES["tokenize"], config, paths, job.digest):
        return {"skipped": True}
    mine = job.missing(range(index, job.count, count))
    log.info("tokenize --shard %d/%d: %d of the %d shards to write in %s", index, count, len(mine),
             len(range(index, job.count, count)), job.folder)
    tokenize_shards(job, mine)
    log.info("tokenize --shard %d/%d: done; once every part is, `pipeline tokenize` merges the shards", index, count)
    return {"skipped": False, "shards": len(mine)}


def _vectorize(config: Config, paths: Paths) -> dict:
    from pipeline.text.vectors import vectorize

    specials = registry.task(config.model.task).specials(config)
    return vectorize(config, paths.tokens, paths.vocab, paths.embeddings, paths.ids, specials)


SUBWORD_KEYS = ("sp_model_type", "sp_vocab_size", "sp_model")  # read by tokenize.method = "sentencepiece" only


def _tokenize_settings(config: Config) -> dict:
    """The ``[tokenize]`` keys that change the tokens (not ``processes``, the speed, nor ``shard_rows``, the row
    groups of tokens.parquet); the SentencePiece keys and the seed only for ``sentencepiece``."""
    subwords = config.tokenize.method == "sentencepiece"
    settings = {key: value for key, value in section_values(config, "tokenize").items()
                if key not in ("processes", "shard_rows") and (subwords or key not in SUBWORD_KEYS)}
    return {**settings, "seed": config.seed} if subwords else settings


def subword_model_files(config: Config, paths: Paths) -> list[Path]:
    """The SentencePiece model the tokenize stage writes and the run copies (``sentencepiece`` only)."""
    from pipeline.text.subwords import model_path

    return [model_path(paths.work)] if config.tokenize.method == "sentencepiece" else []


def _corpus_files(config: Config, paths: Paths) -> list[Path]:
    from pipeline.text.corpora import input_files

    return input_files(config.corpus)


register(Stage("prepare", lambda c: {"seed": c.seed, "corpus": section_values(c, "corpus")},
               _corpus_files, lambda c, p: [p.prepared], lambda c: ("pipeline.text.prepare",), _prepare))
register(Stage("tokenize", _tokenize_settings,
               lambda c, p: [p.prepared, *([Path(c.tokenize.sp_model)] if c.tokenize.sp_model else [])],
               lambda c, p: [p.tokens, *subword_model_files(c, p)], lambda c: ("pipeline.text.shards",), _tokenize,
               packages=("spacy", "ginza", "ja-ginza", "sudachipy", "sudachidict-core", "sentencepiece"),
               partial=lambda c, p: [tokenize_shards_folder(p)]))
register(Stage("vectorize",
               lambda c: {"seed": c.seed, "vectorize": section_values(c, "vectorize"), "model": c.tokenize.model,
                          "embedding_dim": c.model.embedding_dim,
                          **({"pieces": True} if c.tokenize.method == "sentencepiece" else {}),  # piece vectors
                          "specials": list(registry.task(c.model.task).specials(c))},
               lambda c, p: [p.tokens], lambda c, p: [p.vocab, p.embeddings, p.ids],
               lambda c: ("pipeline.text.vectors",), _vectorize, packages=("ja-ginza", "spacy", "numpy")))
