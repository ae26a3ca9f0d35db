"""Self-training on unlabeled text (``train.self_training``): the trained classifier labels the unlabeled
sentences, and a new classifier learns from the labelled sentences and the newly labelled ones.

Self-training (Scudder 1965; Yarowsky 1995) with a noised student (Xie et al. 2020, "noisy student"): round 0 is
the classifier the config trains on the labelled sentences, its char n-gram ensemble member included. That
teacher labels the sentences of ``corpus.unlabeled_path`` (the ``unlabeled`` split) with its most probable class.
The ones whose probability reaches ``train.self_training_threshold`` (at most ``train.self_training_unlabeled``
per training sentence, the most confident first) join the training split of a copy of the work folder's data
(:func:`write_round_data`), and the classifier is trained again from its initial weights on that, dropout being
the student's noise; with several rounds, each student is the next round's teacher. Everything that reads the
training split reads them: the recurrent model, the distillation teacher, the ensemble's char member, the class
weights. Validation and test sentences are never labelled; ``evaluate``'s baselines keep the labelled sentences.

The rounds before the last train into a scratch folder, ``work/<corpus>/self_training/<run>-<key>/``, kept until
the last round ends, so that a killed training goes on from the last complete round (each round's own training
resumes as any does); ``key`` is a digest of the train settings and the vectorized corpus (ids, vocabulary,
embedding matrix), so a changed config never reuses an old round.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline import io as artifact_io
from pipeline.config import Config
from pipeline.paths import Paths
from pipeline.resume import finished_trainings_folder
from pipeline.stages import settings_read
from pipeline.text.corpora import UNLABELED
from pipeline.text.vectors import EncodedSplits
from pipeline.training import TimeBudget

log = logging.getLogger(__name__)

SELF_TRAINING_FILE = "self_training.json"  # the rounds and what each teacher labelled, for evaluate's report
SCRATCH = "self_training"  # work/<corpus>/self_training/: the rounds before the last


def applies(config: Config, splits: EncodedSplits) -> bool:
    """Whether ``train`` self-trains: ``train.self_training`` rounds and unlabeled sentences to label."""
    return config.train.self_training > 0 and len(splits.sequences.get(UNLABELED, ())) > 0


def self_train(config: Config, paths: Paths, splits: EncodedSplits,
               fit: Callable[[Config, Paths, Path | None, float | None], dict],
               clock: Callable[[], float] = time.monotonic) -> dict:
    """Train ``config.train.self_training`` rounds with ``fit`` (one classifier training into ``paths.run``, from the
    weights of the run in its third argument when that is not ``None``: ``train.self_training_start``, for at most
    the minutes in its fourth, when not ``None``) on the vectorized corpus ``splits`` (of ``paths.ids``); the last
    round's run is ``paths.run``, which also gets ``SELF_TRAINING_FILE``. Returns the last ``fit``'s result with
    ``"self_training"``: per round, the sentences its teacher labelled.

    With ``train.time_limit_minutes`` the rounds share it (:class:`TimeBudget`, read from ``clock``): a round's
    epochs get its share less the time its training spends around them (the distillation teacher, the char member,
    saving: as long as round 0's, per sentence, when round 0 trained in this process, from its ``fit_seconds``); a
    round whose share would not hold that and one epoch does not train, and the run is the round before's."""
    settings = config.train
    scratch = finished_trainings_folder(paths, SCRATCH, {"train": settings_read("train", config)})
    budget = TimeBudget(settings.time_limit_minutes, clock)
    labelled = len(splits.sequences["train"])
    student_most = labelled + min(len(splits.sequences[UNLABELED]), int(settings.self_training_unlabeled * labelled))
    teacher = scratch / f"{paths.run.name}.round0"  # named by the run: each round's resume state is its own
    result, first, per_sentence, beside = {}, {}, None, 0.0
    if teacher.is_dir():  # complete (written atomically): a killed training goes on from here
        log.info("self-training: round 0 is already trained (%s)", teacher)
    else:
        minutes = budget.share(labelled, settings.self_training * student_most)
        log.info("self-training: round 0, the labelled sentences only%s",
                 "" if minutes is None else f" (at most {minutes:.1f} of train.time_limit_minutes)")
        started = clock()
        result = fit(config, Paths(work=paths.work, run=teacher), None, minutes)
        took = clock() - started
        epochs_took = result.get("fit_seconds", took)
        per_sentence = epochs_took / max(1, result.get("epochs", 1)) / max(1, labelled)  # an epoch's
        beside = max(0.0, took - epochs_took) / max(1, labelled)  # the distillation teacher, the char member, saving
        first = round_record(minutes, result)
    rounds = []
    for round_number in range(1, settings.self_training + 1):
        if budget.left_seconds() <= ((per_sentence or 0.0) + beside) * labelled:  # no time for any student's epoch
            rows, label_ids, confidence, of = [], [], np.zeros(0), len(splits.sequences[UNLABELED])
        else:
            rows, label_ids, confidence, of = pseudo_labels(config, paths, splits, teacher)
        rounds.append({"round": round_number, "labelled": len(rows), "of": of,
                       "mean_probability": float(confidence.mean()) if len(rows) else 0.0})
        sentences = labelled + len(rows)
        epoch = 0.0 if per_sentence is None else per_sentence * sentences  # an epoch, and the time around the epochs
        around = beside * sentences
        if budget.left_seconds() <= epoch + around:
            log.warning("self-training: %.1f minutes of train.time_limit_minutes are left, and round %d would take "
                        "about %.1f for one epoch; the run is round %d's", budget.left_seconds() / 60, round_number,
                        (epoch + around) / 60, round_number - 1)
            rounds[-1]["skipped"] = "train.time_limit_minutes"
        elif not len(rows):  # another training would learn the same sentences again: the teacher is the run
            log.warning("self-training: the classifier gave no unlabeled sentence a probability of at least %.2f "
                        "(train.self_training_threshold); the run is round %d's", settings.self_training_threshold,
                        round_number - 1)
        if not len(rows) or "skipped" in rounds[-1]:
            with artifact_io.atomic_directory(paths.run) as building:
                shutil.copytree(teacher, building, dirs_exist_ok=True)
            break
        data = write_round_data(paths, splits, rows, label_ids, scratch / f"data{round_number}")
        last = round_number == settings.self_training
        student = paths.run if last else scratch / f"{paths.run.name}.round{round_number}"
        if not last and student.is_dir():
            log.info("self-training: round %d is already trained (%s)", round_number, student)
        else:
            minutes = budget.share(sentences, (settings.self_training - round_number) * student_most)
            if minutes is not None:  # the epochs' share: what comes before and after them takes the rest
                minutes = max(minutes - around / 60, epoch / 60)
            log.info("self-training: round %d, %d training sentences and %d the round before labelled%s",
                     round_number, labelled, len(rows),
                     "" if minutes is None else f" (at most {minutes:.1f} of train.time_limit_minutes)")
            result = fit(config, Paths(work=data, run=student),
                         teacher if settings.self_training_start == "teacher" else None, minutes)
            rounds[-1].update(round_record(minutes, result))
        teacher = student
    artifact_io.write_json(paths.run / SELF_TRAINING_FILE, {
        "rounds": rounds, "threshold": settings.self_training_threshold,
        "per_training_sentence": settings.self_training_unlabeled,
        **({"time_limit_minutes": settings.time_limit_minutes} if settings.time_limit_minutes else {}),
        **({"round0": first} if first else {})})
    shutil.rmtree(scratch, ignore_errors=True)
    return {**result, "self_training": rounds}


def round_record(minutes: float | None, result: dict) -> dict:
    """What ``SELF_TRAINING_FILE`` keeps of a round's training: its share of the time limit and, where the limit
    stopped it, after which epoch."""
    record = {} if minutes is None else {"minutes": round(minutes, 2)}
    if "time_limited" in result:  # TimeLimit's own warning has said so
        record["time_limited"] = result["time_limited"]
    return record


def pseudo_labels(config: Config, paths: Paths, splits: EncodedSplits,
                  teacher: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """What the run in ``teacher`` says of the unlabeled sentences of ``splits``: their rows (increasing), label ids and
    probabilities ``(kept,)`` each, and how many there were.

    The teacher's probabilities are :mod:`pipeline.classifier.predict`'s (the ensemble's mixture when the run has
    one), read from the vectorized ids and the token table rather than tokenizing again. A sentence is kept when
    its top probability reaches ``train.self_training_threshold``; of more than ``train.self_training_unlabeled``
    per training sentence, the most confident (ties: the earlier row).
    """
    from pipeline.classifier.distill import member_probabilities
    from pipeline.classifier.ensemble import mix
    from pipeline.runs import load_run
    from pipeline.text.batches import SequenceBatches
    from pipeline.text.features import split_inputs

    settings = config.train
    sequences = splits.sequences[UNLABELED]
    run = load_run(teacher)
    extra = split_inputs(config.model, paths.tokens, {UNLABELED: sequences}, settings.max_length)[UNLABELED]
    probabilities = SequenceBatches(sequences, None, settings.batch_size, settings.max_length,
                                    **extra).predict(run.model)
    if "ensemble" in run.extras:  # model.ensemble = "char_ngram": the mixture classify gives
        member, weight = run.extras["ensemble"]
        char = member_probabilities(paths.tokens, member, UNLABELED, np.ones(len(sequences), dtype=bool),
                                    len(splits.labels))
        probabilities = mix(probabilities, char, weight)
    confidence = probabilities.max(axis=1)
    candidates = np.flatnonzero(confidence >= settings.self_training_threshold)
    limit = int(settings.self_training_unlabeled * len(splits.sequences["train"]))
    if len(candidates) > limit:  # the most confident; a stable sort keeps the earlier row of equals
        candidates = candidates[np.argsort(-confidence[candidates], kind="stable")[:limit]]
    rows = np.sort(candidates)
    log.info("self-training: the teacher labelled %d of %d unlabeled sentences (probability >= %.2f, mean %.2f; "
             "per class %s)", len(rows), len(sequences), settings.self_training_threshold,
             float(confidence[rows].mean()) if len(rows) else 0.0,
             np.bincount(probabilities[rows].argmax(axis=1), minlength=len(splits.labels)).tolist())
    return rows, probabilities[rows].argmax(axis=1).astype(np.int32), confidence[rows], len(sequences)


def write_round_data(paths: Paths, splits: EncodedSplits, rows: np.ndarray, label_ids: np.ndarray,
                     folder: Path) -> Path:
    """A work folder ``folder`` like ``paths.work`` (whose vectorized corpus is ``splits``) whose training split also
    holds the unlabeled sentences at ``rows`` (increasing), labelled ``label_ids``; returns it.

    ``tokens.parquet``: every row of the table in its order except those, then those with ``split = "train"`` and
    their label, so the training split's rows come in the order of ``ids.npz``'s training ids (the training
    sentences, then the labelled ones). ``vocab.json`` and ``embeddings.npy`` are the same files (hard links
    where the file system allows). Each file is written atomically.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    labels = np.array(splits.labels, dtype=object)
    chosen = np.zeros(len(splits.sequences[UNLABELED]), dtype=bool)
    chosen[rows] = True
    table = artifact_io.parquet_file(paths.tokens)
    seen, moved = 0, []
    with artifact_io.atomic_path(folder / paths.tokens.name, suffix=".parquet") as temporary:
        with pq.ParquetWriter(temporary, table.schema_arrow) as writer:
            for batch in table.iter_batches():
                batch = pa.Table.from_batches([batch])
                unlabeled = pc.equal(batch.column("split"), UNLABELED).to_numpy(zero_copy_only=False)
                positions = np.flatnonzero(unlabeled)
                taken = np.zeros(len(batch), dtype=bool)
                taken[positions] = chosen[seen:seen + len(positions)]
                seen += len(positions)
                writer.write_table(batch.filter(pa.array(~taken)))
                if taken.any():
                    moved.append(batch.filter(pa.array(taken)))
            if moved:
                moved_table = pa.concat_tables(moved)
                columns = {"split": pa.array(["train"] * len(moved_table), moved_table.schema.field("split").type),
                           "label": pa.array(labels[label_ids].tolist(), moved_table.schema.field("label").type)}
                for name, values in columns.items():
                    moved_table = moved_table.set_column(moved_table.schema.get_field_index(name), name, values)
                writer.write_table(moved_table)
    arrays = {"labels": np.array(splits.labels)}
    rest = np.flatnonzero(~chosen)
    for split, sequences in splits.sequences.items():
        parts, targets = [np.asarray(item) for item in sequences], [splits.targets[split]]
        if split == "train":
            parts += [np.asarray(splits.sequences[UNLABELED][row]) for row in rows]
            targets.append(label_ids)
        elif split == UNLABELED:
            parts, targets = [parts[row] for row in rest], [targets[0][rest]]
        lengths = np.array([len(part) for part in parts], dtype=np.int64)
        arrays[f"{split}_ids"] = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        arrays[f"{split}_labels"] = np.concatenate(targets).astype(np.int32)
    with artifact_io.atomic_path(folder / paths.ids.name, suffix=".npz") as temporary:
        np.savez(temporary, **arrays)
    for source in (paths.vocab, paths.embeddings):
        with artifact_io.atomic_path(folder / source.name, suffix=source.suffix) as temporary:
            try:
                os.link(source, temporary)
            except OSError:  # another file system, or no hard links
                shutil.copyfile(source, temporary)
    return folder
