"""The offline demo: real pretrained checkpoints ranked on a dataset we generate, with no Hub access.

Candidates come from :mod:`hf_emms.zoo` (all-MiniLM-L6-v2 and all-mpnet-base-v2 from the package registry, their
first layers, and random-init controls); the data is :func:`hf_emms.demo_data.topics_dataset`; the F-labels are the
class names embedded by the two published encoders. The table's ``emms_one_hot`` column is the control that
uses class identity alone, so it shows what the foundation encoders add.
"""

from __future__ import annotations

import os
from pathlib import Path

from .results import Ranking

__all__ = ["DEMO_MEMBERS", "run_demo"]

ENCODERS = ("minilm-6", "mpnet-12")  # zoo names of the two published encoders
DEMO_MEMBERS = ("mpnet-12", "mpnet-3", "mpnet-random", "minilm-6", "minilm-3", "minilm-1", "minilm-random")


def run_demo(
    *,
    samples: int = 600,
    members: tuple[str, ...] | list[str] = DEMO_MEMBERS,
    output_dir: str | os.PathLike | None = "hf-emms-demo",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Ranking:
    """Build the zoo members, generate the dataset, rank, and save the table and plot.

    Parameters
    ----------
    samples : int
        Generated sentences (six balanced topics).
    members : sequence of str
        Zoo names to rank (see :data:`hf_emms.zoo.ZOO`).
    output_dir : path or None
        Where ranking.{json,csv,md,png} go.
    cache_dir : path, optional
        Root of the zoo, statistics, embeddings and records (default ``$HF_EMMS_CACHE`` or ``~/.cache/hf_emms``).
    progress : bool
    """
    from .demo_data import topics_dataset
    from .paths import cache_root
    from .pipeline import rank
    from .zoo import build_zoo

    root = cache_root(cache_dir)
    zoo = build_zoo(root / "zoo", [*ENCODERS, *members], progress=progress)
    print(f"F-label encoders: {' and '.join(ENCODERS)} (all-MiniLM-L6-v2, all-mpnet-base-v2 as published) embed the "
          "class names; the column emms_one_hot is the control with class identity alone.")
    return rank(
        topics_dataset(samples), [str(zoo[m]) for m in members], encoders=[str(zoo[e]) for e in ENCODERS], max_samples=None,
        metrics=("emms", "emms_official", "logme", "hscore"), output_dir=None if output_dir is None else Path(output_dir),
        cache_dir=root, progress=progress,
    )
