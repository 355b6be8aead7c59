"""``hf-emms install-metric``: put the EMMS evaluate module where ``evaluate.load("emms")`` finds it from anywhere."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "install-metric",
        help='make evaluate.load("emms") work from any directory',
        description='Install the EMMS evaluate module into evaluate\'s module cache, so that evaluate.load("emms") '
        "finds it from any working directory, offline. Re-run after upgrading hf-emms to install the new version.",
    )
    parser.add_argument(
        "--modules-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="evaluate's module cache (default: $HF_MODULES_CACHE, else $HF_HOME/modules, else "
        "~/.cache/huggingface/modules: where evaluate looks)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..metric import install_metric

    script = install_metric(modules_cache=args.modules_cache)
    print(f"Installed the EMMS metric at {script}")
    print('Load it from any directory with: evaluate.load("emms")')
    return 0
