"""``pipeline similar``: the nearest words by cosine similarity (lecture 004: テスト -> 試験, ...)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.errors import PipelineError


def register(commands) -> None:
    similar = commands.add_parser(
        "similar", help="nearest words by cosine similarity in the ja_ginza vectors or a run's embedding",
        description="For each WORD, list the --top nearest words by cosine similarity: in the static vectors "
                    "of ja_ginza, or with --model saved_models/<run> in that run's trained input embedding. "
                    "Single characters work too (--characters lists only single-character neighbours, as the "
                    "lecture's 薬 -> 剤, 毒, 医). A word not in the table is tried under its normalised form, then "
                    "its lemma (the output says which); otherwise it is an error.")
    similar.add_argument("words", nargs="+", metavar="WORD", help="query words, e.g. テスト 薬")
    similar.add_argument("--model", "-m", type=Path, help="a run folder: use its embedding instead of ja_ginza")
    similar.add_argument("--top", "-n", type=int, default=10, help="neighbours per word (default: %(default)s)")
    similar.add_argument("--characters", action="store_true", help="only single-character neighbours")
    similar.add_argument("--json", action="store_true", help="print one JSON line per query word")
    similar.set_defaults(handler=command_similar)


def command_similar(args: argparse.Namespace) -> int:
    from pipeline.tools.neighbours import similar as neighbours

    if args.top < 1:
        raise PipelineError(f"--top {args.top}: must be at least 1")
    words = [word.strip() for word in args.words]
    if not all(words):
        raise PipelineError("an empty WORD; pass words such as テスト or 薬")
    table = neighbours.run_table(args.model) if args.model is not None else neighbours.ginza_table()
    forms = neighbours.sudachi_forms(table.tokenizer_model)
    results = neighbours.similar(table, words, args.top, args.characters, forms)
    for result in results:
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
            continue
        notes = []
        if result["found_as"] != "surface":
            notes.append(f"not in the table; its {result['found_as']} {result['form']} used")
        if result["row_word"] != result["form"]:
            notes.append(f"shares the vector of {result['row_word']}")
        header = f"{result['query']} ({table.source}" + "".join(f"; {note}" for note in notes) + ")"
        print(header)
        for neighbour in result["neighbours"]:
            print(f"  {neighbour['word']}\t{neighbour['similarity']:.3f}")
    return 0
