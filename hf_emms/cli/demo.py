"""``hf-emms demo``: the whole pipeline offline, on real checkpoints from the package registry."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..demo import DEMO_MEMBERS

    parser = subparsers.add_parser(
        "demo", help="rank real checkpoints on a generated dataset, offline (minutes on CPU)",
        description="Rank all-mpnet-base-v2, all-MiniLM-L6-v2 (installed from the package registry), their first "
        "layers and random-init copies on six generated topics, with class names embedded by both published "
        "encoders as F-labels. Prints the table, writes ranking.{json,csv,md,png}. No Hub access needed.",
    )
    parser.add_argument("--samples", type=int, default=600, help="generated sentences (default 600)")
    parser.add_argument("--models", nargs="+", default=list(DEMO_MEMBERS), metavar="NAME",
                        help=f"zoo members (default: {' '.join(DEMO_MEMBERS)})")
    parser.add_argument("--output-dir", type=Path, default=Path("hf-emms-demo"))
    parser.add_argument("--cache-dir", type=Path, help="default $HF_EMMS_CACHE or ~/.cache/hf_emms")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    ranking = run_demo(samples=args.samples, members=args.models, output_dir=args.output_dir,
                       cache_dir=args.cache_dir, progress=not args.quiet)
    print(ranking.to_markdown())
    print(f"\nbest: {ranking.best}; table and plot in {args.output_dir}/")
    return 0
