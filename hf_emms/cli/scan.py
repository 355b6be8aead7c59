"""``hf-emms scan``: list candidate checkpoints for a dataset, and with ``--explain`` why others were left out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InvalidInputError
from ..options import MODALITIES, SORTS
from .units import parse_count

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scan", help="find candidate checkpoints (Hub tags, ids, folders, cache) and filter them",
        description="Find candidate checkpoints and keep those that can be ranked: loadable by transformers, "
        "matching the dataset's input, small enough, safetensors weights, no remote code, accessible, allowed "
        "licence, no duplicate weights. The Hub token comes from HF_TOKEN or `hf auth login` (never a flag, so it "
        "stays out of shell history and process lists).",
    )
    hub = parser.add_argument_group("Hub listing (made when any of these is given)")
    hub.add_argument("--tags", nargs="+", default=[], metavar="TAG",
                     help="tags every model must carry, e.g. sentence-transformers; comma-separated also works")
    hub.add_argument("--pipeline-tag", help="e.g. feature-extraction, image-classification")
    hub.add_argument("--search", help="substring of the model id")
    hub.add_argument("--author", help="user or organisation")
    hub.add_argument("--sort", default="downloads", choices=SORTS)
    hub.add_argument("--limit", type=int, default=20, help="models to list from the Hub (default 20)")
    other = parser.add_argument_group("other sources")
    other.add_argument("--models", nargs="+", default=[], metavar="ID_OR_DIR",
                       help="as `hf-emms rank --models`: Hub ids and checkpoint folders, told apart by what exists")
    other.add_argument("--ids", nargs="+", default=[], metavar="ID", help="org/name or org/name@revision")
    other.add_argument("--folders", nargs="+", default=[], metavar="DIR",
                       help="checkpoint folders, or folders of checkpoint folders")
    other.add_argument("--cache", nargs="?", const=True, default=False, metavar="DIR",
                       help="add the model snapshots of the local HF cache (or of DIR)")
    filters = parser.add_argument_group("filters")
    filters.add_argument("--modality", choices=MODALITIES, help="the dataset's input")
    filters.add_argument("--max-params", type=parse_count, metavar="N", help="largest parameter count, e.g. 150M")
    filters.add_argument("--license", dest="licenses", nargs="+", metavar="ID",
                         help="allowed licences, e.g. apache-2.0 mit")
    filters.add_argument("--allow-remote-code", action="store_true",
                         help="keep checkpoints that need trust_remote_code (runs the repo's code)")
    filters.add_argument("--allow-pickle", action="store_true", help="keep checkpoints without safetensors weights")
    filters.add_argument("--keep-duplicates", action="store_true", help="do not collapse identical weights")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per Hub request (default 10)")
    parser.add_argument("--retries", type=int, default=3, help="retries on 5xx/timeouts (default 3)")
    parser.add_argument("--explain", action="store_true", help="also list rejected candidates with their reason")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub import Criteria, RetryPolicy, scan  # imported here: `hf-emms --help` stays fast

    if args.limit < 1 or args.retries < 0 or args.timeout <= 0:
        raise InvalidInputError("--limit must be >= 1, --retries >= 0 and --timeout > 0")
    result = scan(
        tags=[tag for value in args.tags for tag in value.split(",") if tag],
        pipeline_tag=args.pipeline_tag, sort=args.sort, limit=args.limit, search=args.search, author=args.author,
        ids=[*args.ids, *(m for m in args.models if not Path(m).expanduser().is_dir())],
        folders=[*args.folders, *(m for m in args.models if Path(m).expanduser().is_dir())], cache=args.cache,
        criteria=Criteria(modality=args.modality, max_params=args.max_params, licenses=args.licenses,
                          allow_remote_code=args.allow_remote_code, allow_pickle=args.allow_pickle),
        dedupe=not args.keep_duplicates, retry=RetryPolicy(attempts=args.retries + 1, timeout=args.timeout),
    )
    if args.json:
        data = result.to_dict()
        if not args.explain:
            data.pop("rejected")
        print(json.dumps(data, indent=2))
        return 0
    _print_kept(result.kept)
    if args.explain:
        _print_rejected(result.rejected)
    else:
        print(f"\n{len(result.rejected)} rejected (--explain lists them with the reason)")
    return 0


def _print_kept(kept) -> None:
    from tabulate import tabulate

    rows = [
        (i, c.model_id, c.revision[:12], c.source.value, "+".join(c.modalities) or "?",
         _count(c.num_parameters), c.license or "-", "-" if c.downloads is None else f"{c.downloads:,}")
        for i, c in enumerate(kept, 1)
    ]
    print(f"{len(kept)} candidate(s) kept")
    if rows:
        print(tabulate(rows, headers=["#", "model", "revision", "source", "input", "params", "licence", "downloads"]))


def _print_rejected(rejected) -> None:
    from tabulate import tabulate

    print(f"\n{len(rejected)} rejected")
    if rejected:
        print(tabulate([(r.reference, r.reason.value, r.detail) for r in rejected],
                       headers=["candidate", "reason", "why"], maxcolwidths=[None, None, 70]))


def _count(n: int | None) -> str:
    if n is None:
        return "?"
    for suffix, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}"
    return str(n)
