"""``hf-emms cache``: what the cache holds and how big it is; clear parts of it, or their old entries."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..paths import CACHE_PARTS

    parser = subparsers.add_parser(
        "cache", help="show what the hf-emms cache holds, and clear parts of it",
        description="Show each part of the hf-emms cache (statistics, F-labels, results, unpacked archives, ...) with "
        "its entries, its size and what deleting it costs; --clear deletes parts, --older-than only their entries "
        "not written for that many days. Nothing is deleted without --clear.",
        epilog="examples:\n  hf-emms cache\n  hf-emms cache --clear stats archives --older-than 30\n"
               "  hf-emms cache --clear all",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cache-dir", help="the cache (default $HF_EMMS_CACHE, else ~/.cache/hf_emms)")
    parser.add_argument("--clear", nargs="+", choices=[*CACHE_PARTS, "all"], metavar="PART",
                        help=f"parts to delete: {', '.join(CACHE_PARTS)}, or all")
    parser.add_argument("--older-than", type=float, metavar="DAYS",
                        help="with --clear: only entries not written for DAYS days")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..checks import check_folder
    from ..errors import InvalidInputError
    from ..paths import CACHE_PARTS, cache_root, cache_usage, clear_cache

    check_folder("--cache-dir", args.cache_dir)  # a file given as the cache would be listed as an empty cache
    if args.older_than is not None and (args.clear is None or not args.older_than >= 0):
        raise InvalidInputError("--older-than DAYS (>= 0) applies to --clear: e.g. --clear stats --older-than 30")
    root = cache_root(args.cache_dir)
    if args.clear:
        parts = list(CACHE_PARTS) if "all" in args.clear else list(dict.fromkeys(args.clear))
        removed, freed = clear_cache(parts, cache_dir=args.cache_dir, older_than_days=args.older_than)
        age = f" not written for {args.older_than:g} days" if args.older_than is not None else ""
        print(f"removed {removed} entries{age} ({_size(freed)}) from {', '.join(parts)} in {root}")
    usage = cache_usage(args.cache_dir)
    print(f"hf-emms cache: {root}" + ("" if usage else " (empty)"))
    if usage:
        print("\n| part | entries | size | deleting it |\n|:---|---:|---:|:---|")
        for name, (entries, size) in usage.items():
            print(f"| {name} | {entries} | {_size(size)} | {CACHE_PARTS[name]} |")
        print(f"\n{_size(sum(size for _, size in usage.values()))} in all")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
