"""``hf-emms annotate``: add a ranking's EMMS scores to the candidates' Hub model cards (dry run, or pull requests)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "annotate", help="add EMMS scores to the ranked models' Hub cards (model-index), as pull requests",
        description="For each Hub model scored in a ranking, add its EMMS score to the model card's `model-index` "
        "metadata: the dataset (Hub id, config, split, revision), the task, the score, and the configuration "
        "(F-label encoders, score rule, samples, seed, hf-emms version, scored commit). Other results are kept; an "
        "earlier EMMS result on the same dataset is replaced. By default this is a dry run that prints each card's "
        "diff and changes nothing; --create-pr opens one pull request per model. Skipped candidates and local "
        "checkpoints are listed as not annotated. The ranking must be on a Hub dataset. The Hub token comes from "
        "HF_TOKEN or `hf auth login` (never a flag).",
        epilog="examples:\n"
        "  hf-emms annotate hf-emms-results/sst2                       # show the diffs\n"
        "  hf-emms annotate hf-emms-results/sst2/ranking.json --models org/a --create-pr",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", type=Path, metavar="RESULTS",
                        help="ranking.json written by `hf-emms rank`, or the folder holding it")
    parser.add_argument("--create-pr", action="store_true",
                        help="open a pull request on each card (needs a token with write access); default: dry run")
    parser.add_argument("--models", nargs="+", metavar="ID", help="only these models of the ranking (default: all)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per Hub request (default 10)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError
    from ..cards import ChangeStatus, annotate
    from ..hub.retry import RetryPolicy

    if args.timeout <= 0:
        raise InvalidInputError("--timeout must be > 0")
    changes = annotate(args.results, create_pr=args.create_pr, models=args.models,
                       retry=RetryPolicy(timeout=args.timeout), progress=not args.quiet)
    for change in changes:
        if change.status is ChangeStatus.PROPOSED:
            print(f"{change.model}: card change proposed (dry run)")
        elif change.status is ChangeStatus.OPENED:
            print(f"{change.model}: pull request opened: {change.pr_url}")
        elif change.status is ChangeStatus.UNCHANGED:
            print(f"{change.model}: the card already holds this result; nothing to change")
        if change.reason and change.status in (ChangeStatus.PROPOSED, ChangeStatus.OPENED):
            print(f"  note: {change.reason}")
        if change.diff and change.status is ChangeStatus.PROPOSED:
            print(change.diff)
    left = [c for c in changes if c.status in (ChangeStatus.NOT_ANNOTATED, ChangeStatus.FAILED)]
    if left:
        print(f"\nnot annotated ({len(left)}):")
        for change in left:
            print(f"  {change.model}: {'failed: ' if change.status is ChangeStatus.FAILED else ''}{change.reason}")
    proposed = sum(c.status is ChangeStatus.PROPOSED for c in changes)
    if proposed:
        print(f"\ndry run: nothing was written. Re-run with --create-pr to open {proposed} pull request(s).")
    return 1 if any(c.status is ChangeStatus.FAILED for c in changes) else 0
