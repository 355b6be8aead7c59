"""``hf-emms recall``: a short list of candidates from transfer history and metadata, before any forward pass."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InvalidInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recall", help="short-list candidates from transfer history and metadata (no weights downloaded)",
        description="Phase one of a Hub-scale selection: score a pool of checkpoints for a task by one dot product "
        "each in a transfer space learned from fine-tuning histories, past rankings and model cards; then rank the "
        "short list with EMMS (`hf-emms rank --models ...`). The space is built once with --build.",
    )
    parser.add_argument("task", nargs="?", help="a dataset (Hub id or local file/folder) or, with --describe, words "
                        "describing the task")
    parser.add_argument("--describe", action="store_true", help="TASK is a description, not a dataset")
    parser.add_argument("--classes", nargs="+", default=[], metavar="NAME", help="class names (with --describe)")
    parser.add_argument("--config", help="dataset config")
    parser.add_argument("--split", help="dataset split")
    parser.add_argument("-k", "--top", type=int, default=10, help="length of the short list (default 10)")
    parser.add_argument("--space", help="the space file (default: recall/space.safetensors in the hf-emms cache)")
    pool = parser.add_argument_group("pool (default: the models of the space's history)")
    pool.add_argument("--tags", nargs="+", default=[], metavar="TAG", help="list Hub models carrying every tag")
    pool.add_argument("--pipeline-tag", help="e.g. text-classification")
    pool.add_argument("--limit", type=int, default=1000, help="models to list from the Hub (default 1000)")
    pool.add_argument("--ids", nargs="+", default=[], metavar="ID", help="Hub ids, taken as named (no request)")
    build = parser.add_argument_group("building the space")
    build.add_argument("--build", action="store_true", help="(re)build the space from the sources below, then save; "
                       "with --tags/--pipeline-tag the listed models' card results (model-index) and head labels "
                       "are learned from too")
    build.add_argument("--history", nargs="+", default=[], metavar="DIR", help="transfer-history folders")
    build.add_argument("--store", help="a results store folder (past rankings)")
    parser.add_argument("--json", action="store_true", help="print the short list as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..recall import History, TaskText, TransferSpace, build_space, default_space_path, shortlist, task_from

    if args.top < 1 or args.limit < 1:
        raise InvalidInputError("-k/--top and --limit must be >= 1")
    path = args.space or default_space_path()
    absent = [folder for folder in args.history if not Path(folder).expanduser().is_dir()]
    if absent:  # a mistyped path: refused before a space learned from nothing replaces the one already saved
        raise InvalidInputError(f"--history {absent[0]!r} is not a folder: give a folder holding records.csv and "
                                "models.csv (datasets.csv, logme.csv optional), e.g. ../shared/data/transfer_history.")
    scanned = None
    if args.tags or args.pipeline_tag:  # listed before building: their model cards are history too
        from ..hub import scan

        scanned = scan(tags=[t for v in args.tags for t in v.split(",") if t], pipeline_tag=args.pipeline_tag,
                       limit=args.limit, dedupe=False).kept
    if args.build:
        sources = [*args.history, *([args.store] if args.store else []), *(["the listed cards"] if scanned else [])]
        print(f"building the transfer space from {', '.join(map(str, sources)) or 'metadata alone'} (its settings "
              "are chosen by cross-validation over the history's tasks: about half a minute for ten)...",
              file=sys.stderr)
        space = build_space(history=args.history, store=args.store, candidates=scanned or (), path=path)
        for message in space.messages:
            print(f"note: {message}", file=sys.stderr)
        print(f"recall space: {len(space.models)} models x {len(space.tasks)} tasks, {space.dim} dimensions -> {path}",
              file=sys.stderr)
    elif args.space is None and not Path(path).is_file():  # never built: the metadata prior, as rank(recall=K) does
        if not (args.ids or scanned):
            raise InvalidInputError(f"no transfer space at {path} yet, and no pool to rank: build one with `hf-emms "
                                    "recall --build --history DIR`, or give --tags or --ids to rank by metadata alone.")
        space = TransferSpace.fit(History(messages=("no transfer space built",)))
        unknown = " (ids given with --ids carry no metadata: their order is kept)" if args.ids and not scanned else ""
        print(f"note: no transfer space at {path} (build one from history with `hf-emms recall --build --history "
              f"DIR`): {space.messages[-1]}{unknown}.", file=sys.stderr)
    else:
        space = TransferSpace.load(path)
    if args.task is None:
        if not args.build:
            raise InvalidInputError("give a TASK (a dataset, or --describe 'words'), or --build a space")
        return 0
    if args.describe:
        task = TaskText(args.task, args.task, tuple(args.classes))
    else:
        from ..tasks import load_task

        task = task_from(load_task(args.task, config=args.config, split=args.split))
    if scanned is not None:
        pool = scanned
    else:
        pool = list(args.ids) or list(space.models)
    if not pool:
        raise InvalidInputError("the pool is empty: give --tags, --ids, or a space built from a history")
    kept, scores, reasons = shortlist(space, pool, task, args.top)
    names = [getattr(c, "model_id", c) for c in kept]
    if args.json:
        print(json.dumps([{"model": n, "score": float(s), "signal": r} for n, s, r in zip(names, scores, reasons)],
                         indent=2))
        return 0
    print(f"Top {len(kept)} of {len(pool)} for {task.name!r} (recall: history + metadata, no forward pass)\n")
    print("| rank | model | score | signal |\n|---:|:---|---:|:---|")
    for i, (n, s, r) in enumerate(zip(names, scores, reasons), 1):
        print(f"| {i} | {n} | {s:+.3f} | {r} |")
    return 0
