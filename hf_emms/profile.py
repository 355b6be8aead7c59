"""The profile of a ranking (``rank(..., profile=True)``, ``hf-emms rank --profile``): a table and a stacked bar plot
of where each candidate's seconds went, and the share of everything but the forward pass and pooling.

Phases of a candidate: ``pin`` (resolving a Hub reference), ``results_io`` (the results store), ``resolve`` (the
statistics cache's answer), ``load`` (weights to the device), ``tokenizer`` (loading the preprocessor),
``preprocess`` (tokenising batches), ``forward``, ``pooling``, ``statistics``, ``all_reduce``, ``solver:<metric>``,
``extraction_other`` and ``idle`` (what no phase accounts for). Phases of the task, paid once per ranking:
``load_task``, ``budget``, ``scan``, ``recall``, ``label_embeddings``, ``job``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._io import atomic_write

__all__ = ["CORE_PHASES", "overhead_share", "plot_profile", "profile_table"]

CORE_PHASES = ("forward", "pooling")
"""The work a selector cannot avoid: everything else is overhead to remove."""


def overhead_share(phases: dict[str, float]) -> float:
    """Share of a candidate's seconds spent outside :data:`CORE_PHASES` (0 when nothing was timed)."""
    total = sum(phases.values())
    return 0.0 if total <= 0 else 1.0 - sum(phases.get(p, 0.0) for p in CORE_PHASES) / total


def profile_table(profile: dict[str, Any]) -> str:
    """A markdown table: one row per candidate, one column per phase (seconds), the total and the overhead share;
    then the task's one-off phases."""
    candidates = profile["candidates"]
    names = list(dict.fromkeys(p for c in candidates.values() for p in c["phases"]))
    head = ["candidate", *names, "total", "not forward/pooling"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, c in candidates.items():
        p = c["phases"]
        cells = [f"{p.get(n, 0.0):.2f}" for n in names]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {sum(p.values()):.2f} | {overhead_share(p):.0%} |")
    task = profile.get("task") or {}
    if task:
        lines += ["", "once per ranking: " + ", ".join(f"{k} {v:.2f} s" for k, v in task.items())]
    return "\n".join(lines)


def plot_profile(profile: dict[str, Any], path: str | os.PathLike) -> Path:
    """A stacked horizontal bar per candidate (seconds by phase), written as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    candidates = profile["candidates"]
    names = list(dict.fromkeys(p for c in candidates.values() for p in c["phases"]))
    models = list(candidates)[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(models), 1) + 1.8), dpi=120)
    left = [0.0] * len(models)
    colours = plt.get_cmap("tab20").colors
    for i, phase in enumerate(names):
        widths = [candidates[m]["phases"].get(phase, 0.0) for m in models]
        ax.barh(models, widths, left=left, label=phase, color=colours[i % len(colours)])
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel("seconds")
    ax.set_title("Where each candidate's time goes")
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)
