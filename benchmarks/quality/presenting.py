"""The quality report as people read it: markdown tables and the bar plot, from ``report()``'s result or its JSON
read back."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ceiling import mean_ceiling
from figures import PRIORS, SELECTORS, VARIANTS

def markdown(result: Mapping[str, Any]) -> str:
    """The report as markdown: weighted tau per task, the averages, scoring vs fine-tuning time, and per task the
    accuracies and scores of every model. ``result`` is :func:`report`'s, or its JSON read back (NaN as null)."""
    import pandas as pd

    tasks = list(result["tasks"])

    def cell(q: Mapping[str, Any], key: str, scale: float = 1.0) -> str:
        return f"{q[key] * scale:.2f}" if q and q[key] is not None and math.isfinite(q[key]) else "-"

    per_group = ({t: result["tasks"][t]["quality"] for t in tasks} | {"average": result["average"]}
                 | {f"mean, {k} tasks": q for k, q in result.get("average_by_inputs", {}).items()})
    wt = pd.DataFrame({g: {s: cell(q.get(s), "weighted_tau") for s in SELECTORS} for g, q in per_group.items()})
    ceilings = {t: result["tasks"][t].get("ceiling") for t in tasks} | {"average": result.get("ceiling")}
    for kind in result.get("average_by_inputs", {}):
        ceilings[f"mean, {kind} tasks"] = mean_ceiling([result["tasks"][t].get("ceiling") for t in tasks
                                                        if result["tasks"][t]["inputs"] == kind])
    for kind in ("exact", "rerun"):  # the noise ceilings (quality/ceiling.py); "average": over the tasks that have one
        wt.loc[f"ceiling: {kind}"] = {g: cell(c, kind) if c else "-" for g, c in ceilings.items()}
    wt = wt.fillna("-")
    summary = pd.DataFrame({s: {"weighted tau": cell(result["average"].get(s), "weighted_tau"),
                                "Kendall tau": cell(result["average"].get(s), "kendall_tau"),
                                "top-1 regret (acc. points)": cell(result["average"].get(s), "regret", 100)}
                            for s in SELECTORS}).T
    times = pd.DataFrame({t: {"models": len(v["models"]), "scoring s": f"{v['scoring_seconds']:.0f}",
                              "fine-tuning s (same device, 1 seed)":
                                  "-" if v["finetune_seconds"] is None else f"{v['finetune_seconds']:.0f}"}
                          for t, v in result["tasks"].items()}).T
    sets = {t: v.get("tied_set") for t, v in result["tasks"].items()}
    unsure = pd.DataFrame({t: {"tied with the leader": f"{q['size']} of {q['n_models']}",
                               "holds the fine-tuned best": "yes" if q["holds_best"] else "no",
                               "regret of the set (points)": f"{100 * q['regret']:.2f}"}
                           for t, q in sets.items() if q}).T
    def gap(v: Mapping[str, Any]) -> str:  # the JSON read back holds null for a NaN SE (one task)
        if v["se"] is None or not math.isfinite(v["se"]):
            return f"{v['difference']:+.2f}"
        return f"{v['difference']:+.2f} ± {v['se']:.2f} (above on {v['better_on']} of {v['n_tasks']})"

    versus = pd.DataFrame({f"{g} tasks": {s: gap(v) for s, v in diffs.items()}
                           for g, diffs in result.get("versus_default", {}).items()}).fillna("-")
    def moved(g: Mapping[str, Any] | None) -> str:
        return "-" if not g else f"{g['gap']:+.2f} ({g['rerun_mean']:+.2f} ± {g['rerun_sd']:.2f})"

    per_task_gaps = pd.DataFrame({s: {t: moved((v.get("rerun_gaps") or {}).get(s)) for t, v in result["tasks"].items()}
                                  for s in (*VARIANTS[:1], *PRIORS)})
    md = {"disable_numparse": True}  # the cells are formatted strings already ("82.6 ± 0.4")
    per_task = "".join(f"\n{t}\n\n{_task_table(v).to_markdown(**md)}\n" for t, v in result["tasks"].items())
    return (f"Weighted Kendall tau per task (selector rows; the ceiling rows: what a selector knowing each expected "
            f"accuracy, and a second fine-tuning of every cell, would reach against this ground truth's seed noise, "
            f"averaged over the tasks with several seeds per model)\n\n{wt.to_markdown(**md)}\n\n"
            f"Average over tasks\n\n{summary.to_markdown(**md)}\n\n"
            f"Weighted tau minus the default's (emms), paired by task: mean ± its standard error over the tasks (a gap "
            f"below about two of it is not resolved by these tasks)\n\n"
            f"{versus.to_markdown(**md) if len(versus) else '(not computed)'}\n\n"
            f"Per task, weighted tau minus the default's: as measured (and its mean ± standard deviation over "
            f"simulated second fine-tunings of every cell, the noise of the re-run ceiling; a gap that moves by more "
            f"than itself is not this task's to resolve)\n\n{per_task_gaps.to_markdown(**md)}\n\n"
            f"Wall time, all candidates of a task, scored "
            f"on {result['meta'].get('device', 'cpu')}\n\n"
            f"{times.to_markdown(**md)}\n\nEMMS's own uncertainty against fine-tuning: the candidates its folds cannot "
            f"tell from its leader (tied_with_best), and whether fine-tuning's best is among them\n\n"
            f"{unsure.to_markdown(**md) if len(unsure) else '(no fold scores)'}\n\n"
            f"Accuracies (%) and scores per task, best fine-tuned first\n{per_task}")


def _task_table(task: Mapping[str, Any]) -> Any:
    """One row per model: fine-tuned accuracy (mean ± spread, seed count), probe accuracy, every selector's score."""
    import pandas as pd

    rows = {}
    for m in sorted(task["models"], key=lambda m: -task["truth"][m]):
        std, seeds, probe = task["finetune_std"].get(m), task["seeds"].get(m) or [], task["probe_acc"].get(m)
        spread = (f" ± {100 * std:.1f} ({len(seeds)} seeds)" if len(seeds) > 1
                  else f" (seed {seeds[0]})" if seeds else "")
        rows[m] = {"fine-tuned": f"{100 * task['truth'][m]:.1f}{spread}",
                   "probe": "-" if probe is None else f"{100 * probe:.1f}",
                   **{sel: "-" if task["scores"].get(m, {}).get(sel) is None else f"{task['scores'][m][sel]:.4g}"
                      for sel in SELECTORS}}
        score = task["scores"].get(m, {})
        rows[m]["emms_se"] = "-" if score.get("emms_se") is None else f"{score['emms_se']:.2g}"
        rows[m]["tied_with_best"] = {True: "yes", False: "no"}.get(score.get("tied_with_best"), "-")
    return pd.DataFrame(rows).T


def plot(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Grouped bars per task and on average: each selector's weighted tau (top) and top-1 regret (bottom).
    ``result`` is :func:`report`'s, or its JSON read back."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*result["tasks"], "average"]
    values = {g: (result["average"] if g == "average" else result["tasks"][g]["quality"]) for g in groups}
    labels = [f"{g}\n({len(result['tasks'][g]['models'])} models)" if g in result["tasks"] else g for g in groups]
    width = 0.8 / len(SELECTORS)
    fig, axes = plt.subplots(2, 1, figsize=(1.4 * len(groups) + 2, 7.5), sharex=True)
    for ax, key, scale, ylabel in ((axes[0], "weighted_tau", 1, "weighted Kendall tau\nvs fine-tuned accuracy"),
                                   (axes[1], "regret", 100, "top-1 regret\n(accuracy points, lower is better)")):
        for i, sel in enumerate(SELECTORS):
            ys = [np.nan if v is None else v * scale for v in (values[g].get(sel, {}).get(key) for g in groups)]
            ax.bar(np.arange(len(groups)) + (i - (len(SELECTORS) - 1) / 2) * width, ys, width, label=sel,
                   hatch="//" if sel in PRIORS else None)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(groups)), labels)
        ax.set_ylabel(ylabel)
    axes[0].set_ylim(-1.05, 1.05)
    axes[0].legend(ncol=3, fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
