"""Ranking-quality benchmark: does EMMS rank checkpoints the way fine-tuning them would?

For each task (a folder with ``train.jsonl`` and ``test.jsonl``, ``{"text", "label"}`` lines) the candidates are
scored through the public API, ``hf_emms.rank(train.jsonl, candidates=<checkpoint folders>, max_samples=None)``, as
a user would score them, and every selector's ranking is compared with the fine-tuned test accuracies of a
ground-truth file (``{task: {model: {"finetune_acc": x}}}``; model names are the checkpoint folders' names):

  selectors    emms (exact, K-fold CV), emms_official (the paper's one pass), logme, hscore, and two static priors
               any selector must beat: params (parameter count) and width (feature width)
  per task     weighted Kendall tau (``scipy.stats.weightedtau``, hyperbolic weights, the average of both
               rankings' weightings), Kendall tau (tau-b), top-1 regret (best fine-tuned accuracy minus the accuracy
               of the checkpoint ranked first; ties at the top count against the selector), over the checkpoints
               that have both a score and a ground-truth accuracy; a selector constant over them (width within one
               family) has no tau (NaN, "-" in the table) but a regret
  average      the mean of each over the tasks
  time         wall time of scoring every candidate of a task (``rank()``, label embeddings and feature
               extraction included, from an empty cache) against fine-tuning them all once (the ground truth's
               mean seconds per run, summed)

The zoo (``hf_emms.zoo``): mpnet-12, mpnet-6, mpnet-3, mpnet-random, minilm-6, minilm-3, minilm-1, minilm-random
(all-mpnet-base-v2 / all-MiniLM-L6-v2 as published, their first layers, and random-init controls), and, so that
size does not predict: paraphrase-minilm-3 (paraphrase-MiniLM-L3-v2, converted from ONNX), sre-minilm-6
(sre-embedding-model: all-MiniLM-L6-v2 tuned on SRE pairs), minilm-6-top3-reinit and mpnet-12-top6-reinit (top layers
re-initialised, seed 0); built from the installed pip packages. Source-task members (quality/sources.py:
minilm-6-banking77, mpnet-6-trec, mpnet-12-sms) are zoo members fine-tuned on one of the tasks with the ground-truth
recipe, candidates for every other task. Every selector is scored from one ``rank(layers="auto")`` run: ``emms``
(layer-aware) and its variants beside ``emms_last`` (the last layer). The tasks' fixed splits (six single-text tasks
and SICK's sentence pairs as entailment classes and relatedness regression) are in benchmarks/quality/tasks (see
quality/task_splits.py), the ground truth's recipe in quality/finetune.py.

Run (CPU figures: add --threads 1 on a shared machine; fine-tuning is hours per seed on two cores):
  python benchmarks/quality.py --build-zoo DIR                      build the zoo's checkpoints into DIR
  python benchmarks/quality.py --make-splits                        (re)write benchmarks/quality/tasks
  python benchmarks/quality.py --finetune [--models ..] [--tasks ..] [--seeds 0 1 2] [--stop-by 08:35]
                                                                     compute missing ground-truth cells, resumable
  python benchmarks/quality.py --verify                             recompute the cheapest stored cell, compare
  python benchmarks/quality.py [--task-dir DIR ...] [--ground-truth FILE] [--out FILE.json]
                                                                     the report (table, JSON, plot)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "quality"))

from finetune import (  # noqa: E402  (the benchmark's own modules live beside it)
    META, GroundTruthError, accuracies, load_ground_truth, merge_files, plan, ran_on, run_cells,
    verify, write_json,
)
from ceiling import noise_ceiling  # noqa: E402
from layer_credit import VARIANTS as DEPTH_CREDIT, depth_credit  # noqa: E402
from sources import SOURCES as SOURCE_MEMBERS, build_source_member, source_task  # noqa: E402
from task_splits import TASK_DIR, TASKS, build_splits, read_task_info  # noqa: E402

from hf_emms.paths import cache_root  # noqa: E402

GROUND_TRUTH = HERE / "quality" / "ground_truth.json"
RESULTS = HERE / "quality" / "results"
ZOO_DIR = cache_root() / "quality-zoo"  # $HF_EMMS_CACHE or ~/.cache/hf_emms, as for every hf-emms cache
SCORES = ("emms", "emms_official", "logme", "hscore")
# The layer-aware variants of one rank(layers=...) run (hf_emms.solver.layerwise): the last layer alone, the layer
# chosen by nested CV among single layers (and with the one-SE rule: a lower layer only when the folds support it),
# the fixed mean of the upper layers, and nested CV over both; and LogME / H-score on the layer EMMS chose.
VARIANTS = ("emms_last", "emms_layer", "emms_layer_1se", "emms_upper", "emms_nested", "logme_layer", "hscore_layer")
PRIORS = ("params", "width")
# Measured, not used by hf-emms: depth-credit terms and the in-sample best layer (quality/layer_credit.py).
SELECTORS = SCORES + VARIANTS + DEPTH_CREDIT + PRIORS
# Cheapest first, so that a run stopped by a deadline has the most cells.
COST_ORDER = ("minilm-1", "minilm-3", "paraphrase-minilm-3", "minilm-random", "minilm-6", "minilm-6-top3-reinit",
              "sre-minilm-6", "minilm-6-banking77", "mpnet-3", "mpnet-6", "mpnet-6-trec", "mpnet-random", "mpnet-12",
              "mpnet-12-top6-reinit", "mpnet-12-sms")


# ---------------------------------------------------------------------------------------------- ranking quality
def _paired(truth: Mapping[str, float], score: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    models = sorted(set(truth) & set(score))
    if len(models) < 2:
        raise ValueError(f"ranking quality needs at least 2 models with both a score and an accuracy; got {models}.")
    return np.array([truth[m] for m in models], float), np.array([score[m] for m in models], float)


def weighted_tau(truth: Mapping[str, float], score: Mapping[str, float]) -> float:
    """Weighted Kendall tau (``scipy.stats.weightedtau``, defaults) between accuracies and scores, in [-1, 1]."""
    from scipy.stats import weightedtau

    return float(weightedtau(*_paired(truth, score)).statistic)


def kendall_tau(truth: Mapping[str, float], score: Mapping[str, float]) -> float:
    """Kendall tau-b between accuracies and scores, in [-1, 1] (NaN when either side is constant)."""
    from scipy.stats import kendalltau

    return float(kendalltau(*_paired(truth, score)).statistic)


def top1_regret(truth: Mapping[str, float], score: Mapping[str, float]) -> float:
    """Best accuracy minus the accuracy of the model scored highest; among tied top scores, the worst one's."""
    acc, s = _paired(truth, score)
    return float(acc.max() - acc[s == s.max()].min())


def quality(truth: Mapping[str, float], scores: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Each selector's weighted tau, Kendall tau and top-1 regret against ``truth`` (model -> accuracy).

    Parameters
    ----------
    truth : mapping of model -> fine-tuned accuracy
    scores : mapping of model -> {selector: score}

    Returns
    -------
    dict
        selector -> {"weighted_tau", "kendall_tau", "regret", "n_models"}.
    """
    out = {}
    for sel in SELECTORS:
        column = {m: float(v[sel]) for m, v in scores.items() if v.get(sel) is not None and math.isfinite(v[sel])}
        if len(set(truth) & set(column)) < 2:
            continue
        out[sel] = {"weighted_tau": weighted_tau(truth, column), "kendall_tau": kendall_tau(truth, column),
                    "regret": top1_regret(truth, column), "n_models": len(set(truth) & set(column))}
    return out


def tied_set(truth: Mapping[str, float], tied: Mapping[str, bool | None]) -> dict[str, Any] | None:
    """How the candidates EMMS cannot tell from its leader (``tied_with_best``) fare after fine-tuning.

    Returns ``{"size", "n_models", "holds_best", "regret"}``: the set's size among the models with a fine-tuned
    result, whether it holds the fine-tuned best, and its regret (best accuracy minus the best in the set: what a
    person who fine-tunes the whole tied set loses); None when no model carries the flag (no fold scores).
    """
    members = [m for m in truth if tied.get(m)]
    if not members:
        return None
    best, best_in_set = max(truth.values()), max(truth[m] for m in members)
    return {"size": len(members), "n_models": len(truth), "holds_best": best_in_set == best,
            "regret": float(best - best_in_set)}


def _nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there is none (a selector constant on every task has no tau)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def average(per_task: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of each selector's figures over the tasks that have them, NaN (a constant selector's tau) left out,
    with the task count."""
    out = {}
    for sel in SELECTORS:
        rows = [q[sel] for q in per_task.values() if sel in q]
        if rows:
            out[sel] = {k: _nanmean([r[k] for r in rows]) for k in ("weighted_tau", "kendall_tau", "regret")}
            out[sel]["n_tasks"] = len(rows)
    return out


# ---------------------------------------------------------------------------------------------- scoring
def score_task(task_dir: Path, checkpoints: Mapping[str, Path], *, cache_dir: str | os.PathLike | None = None,
               progress: bool = True, layers: str = "auto") -> tuple[dict[str, dict[str, float]], float, Any]:
    """Score the checkpoints on a task's training split through ``hf_emms.rank``.

    The task folder's ``task.json`` names its inputs (a text pair is passed as ``input_column=[first, second]``) and
    its label kind (``task="regression"`` for a numeric label); without one, both are detected as a user's would be.

    Returns
    -------
    scores : dict
        model -> {selector: value, "emms_se": SE, "tied_with_best": bool} for the scored (status "ok") candidates.
    seconds : float
        Wall time of the ``rank()`` call.
    ranking : hf_emms.Ranking
    """
    import hf_emms

    info = read_task_info(task_dir)
    given = {"input_column": info["inputs"], "label_column": info["label"], "task": info["kind"]}
    if len(info["inputs"]) == 1 and info["kind"] == "classification":
        given = {}  # one text and class names: detected, as a user's would be (and as the first six tasks always were)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hf-emms-quality-") as fresh:
        run = hf_emms.iter_rank(str(task_dir / "train.jsonl"), candidates=[str(p) for p in checkpoints.values()],
                                metrics=SCORES, max_samples=None, cache_dir=cache_dir or fresh, progress=progress,
                                layers=layers, **given)
        rows = list(run)  # the rows themselves: the variants travel with them, beside the table's columns
    seconds = time.perf_counter() - start
    ranking = run.ranking()
    tied = {r.model: r.tied_with_best for r in ranking.rows}  # decided over the whole ranking, not per row
    scores = {}
    for row in rows:
        if row.ok:
            scores[row.model] = {sel: None if row.get(sel) is None else float(row.get(sel))
                                 for sel in SELECTORS if sel not in DEPTH_CREDIT}
            scores[row.model].update(depth_credit(row.get("layer_scores"), row.get("best_layer"), row.get("emms")))
            scores[row.model].update(emms_se=row.get("emms_se"), tied_with_best=tied.get(row.model))
    return scores, seconds, ranking


def _checkpoints(models: Sequence[str], zoo_dir: Path, *, task_root: Path = TASK_DIR,
                 progress: bool = True) -> dict[str, Path]:
    """Folder of each model: ``zoo_dir/<name>``, zoo members built there when missing (source-task members by
    fine-tuning their base on their source task: minutes each on a CPU)."""
    from hf_emms.zoo import ZOO, build_zoo

    missing = [m for m in models if not (zoo_dir / m).is_dir()]
    unknown = [m for m in missing if m not in ZOO and m not in SOURCE_MEMBERS]
    if unknown:
        raise GroundTruthError(f"no checkpoint folder for {unknown} in {zoo_dir}: the ground truth names models by "
                               f"their folder in --zoo (zoo members {list(ZOO) + list(SOURCE_MEMBERS)} are built "
                               "automatically).")
    if [m for m in missing if m in ZOO]:
        build_zoo(zoo_dir, [m for m in missing if m in ZOO], progress=progress)
    for m in missing:
        if m in SOURCE_MEMBERS:
            build_source_member(m, zoo_dir, task_root=task_root, progress=progress,
                                build_base=lambda names: build_zoo(zoo_dir, names, progress=progress))
    return {m: zoo_dir / m for m in models}


def _finetune_seconds(ground_truth: Mapping[str, Any], task: str, models: Sequence[str], device: str) -> float | None:
    """Fine-tuning every model once (mean seconds of its runs on ``device``'s kind, summed); None when a model has
    no run on that kind of device: a CPU fine-tune and a GPU score (or the reverse) are no comparison."""
    secs = []
    for m in models:
        runs = [r["seconds"] for r in ground_truth[task][m].get("runs", []) if ran_on(r, device)]
        if not runs:
            return None
        secs.append(float(np.mean(runs)))
    return float(sum(secs))


def report(task_dirs: Sequence[Path], ground_truth: Mapping[str, Any], *, zoo_dir: Path = ZOO_DIR,
           cache_dir: str | os.PathLike | None = None, progress: bool = True, layers: str = "auto") -> dict[str, Any]:
    """Score every task's checkpoints and compare the rankings with the ground truth.

    Parameters
    ----------
    task_dirs : sequence of Path
        Task folders; a task's name is its folder's name, as in the ground truth.
    ground_truth : dict
        ``{task: {model: {"finetune_acc": x, ...}}}``.
    zoo_dir : Path
        Holds one checkpoint folder per model name.
    cache_dir : path, optional
        hf-emms cache to reuse; by default each task is scored from an empty one (honest timing).

    Returns
    -------
    dict
        ``tasks`` (per task: models, truth, scores, quality, scoring and fine-tuning seconds), ``average``, ``meta``.
    """
    import hf_emms
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"  # where rank() extracts by default
    tasks = {}
    for task_dir in task_dirs:
        name = task_dir.name
        truth = accuracies(ground_truth, name)
        if len(truth) < 2:
            raise GroundTruthError(f"the ground truth has {len(truth)} model(s) for task {name!r}; ranking quality "
                                   "needs at least 2. Add them, or leave the task out.")
        for split in ("train.jsonl", "test.jsonl"):
            if not (task_dir / split).is_file():
                raise GroundTruthError(f"{task_dir / split} is missing: a task folder holds train.jsonl and "
                                       "test.jsonl.")
        scores, seconds, ranking = score_task(task_dir, _checkpoints(sorted(truth), zoo_dir),
                                              cache_dir=cache_dir, progress=progress, layers=layers)
        tasks[name] = {"models": sorted(truth), "truth": truth, "scores": scores, "quality": quality(truth, scores),
                       "scoring_seconds": seconds,
                       "finetune_seconds": _finetune_seconds(ground_truth, name, sorted(truth), device),
                       "finetune_std": {m: ground_truth[name][m].get("finetune_std") for m in sorted(truth)},
                       "seeds": {m: ground_truth[name][m].get("seeds") for m in sorted(truth)},
                       "probe_acc": {m: ground_truth[name][m].get("probe_acc") for m in sorted(truth)},
                       "rank_config": ranking.meta.get("config"),
                       "inputs": "text pair" if len(read_task_info(task_dir)["inputs"]) == 2 else "text",
                       "tied_set": tied_set(truth, {m: v.get("tied_with_best") for m, v in scores.items()})}
        tasks[name]["ceiling"] = noise_ceiling(truth, tasks[name]["finetune_std"], tasks[name]["seeds"])
    kinds = sorted({v["inputs"] for v in tasks.values()})
    known = [v["ceiling"] for v in tasks.values() if v["ceiling"]]
    return {
        "ceiling": {k: float(np.mean([c[k] for c in known])) for k in ("exact", "rerun")} | {"n_tasks": len(known)}
        if known else None,
        "tasks": tasks, "average": average({t: v["quality"] for t, v in tasks.items()}),
        "average_by_inputs": {k: average({t: v["quality"] for t, v in tasks.items() if v["inputs"] == k})
                              for k in kinds} if len(kinds) > 1 else {},
        "meta": {"hf_emms": hf_emms.__version__, "device": device, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                 "load_average": os.getloadavg(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                 "ground_truth_meta": ground_truth.get(META), "zoo_dir": str(zoo_dir)},
    }


# ---------------------------------------------------------------------------------------------- presenting
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
        known = [result["tasks"][t]["ceiling"] for t in tasks
                 if result["tasks"][t]["inputs"] == kind and result["tasks"][t].get("ceiling")]
        ceilings[f"mean, {kind} tasks"] = {k: float(np.mean([c[k] for c in known])) for k in ("exact", "rerun")
                                           } if known else None
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
    md = {"disable_numparse": True}  # the cells are formatted strings already ("82.6 ± 0.4")
    per_task = "".join(f"\n{t}\n\n{_task_table(v).to_markdown(**md)}\n" for t, v in result["tasks"].items())
    return (f"Weighted Kendall tau per task (selector rows; the ceiling rows: what a selector knowing each expected "
            f"accuracy, and a second fine-tuning of every cell, would reach against this ground truth's seed noise, "
            f"averaged over the tasks with several seeds per model)\n\n{wt.to_markdown(**md)}\n\n"
            f"Average over tasks\n\n{summary.to_markdown(**md)}\n\nWall time, all candidates of a task, scored "
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


# ---------------------------------------------------------------------------------------------- command line
def _deadline(hhmm: str | None) -> float | None:
    """Today's HH:MM UTC (tomorrow's when already past) as a timestamp."""
    if hhmm is None:
        return None
    now = datetime.datetime.now(datetime.timezone.utc)
    hour, minute = map(int, hhmm.split(":"))
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return (at if at > now else at + datetime.timedelta(days=1)).timestamp()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--build-zoo", type=Path, metavar="DIR", help="build the zoo's checkpoints into DIR and stop")
    mode.add_argument("--make-splits", action="store_true", help="write the six tasks' splits (--tasks-root)")
    mode.add_argument("--finetune", action="store_true", help="compute the missing ground-truth cells")
    mode.add_argument("--verify", action="store_true", help="recompute the cheapest stored cell and compare")
    mode.add_argument("--merge", nargs="+", type=Path, metavar="FILE",
                      help="add the runs of these ground-truth files (e.g. parallel workers') to --ground-truth")
    p.add_argument("--task-dir", type=Path, action="append", metavar="DIR",
                   help="a task folder (train.jsonl, test.jsonl); repeatable; default: every task of the ground truth "
                        "under --tasks-root")
    p.add_argument("--tasks-root", type=Path, default=TASK_DIR, help="folder of task folders (default: %(default)s)")
    p.add_argument("--ground-truth", type=Path, default=GROUND_TRUTH, help="default: %(default)s")
    p.add_argument("--zoo", type=Path, default=ZOO_DIR, help="checkpoint folders by model name (default: %(default)s)")
    p.add_argument("--out", type=Path, default=RESULTS / "quality.json", help="report JSON; .md and .png beside it")
    p.add_argument("--cache-dir", type=Path, help="reuse this hf-emms cache (default: an empty one per task)")
    p.add_argument("--models", nargs="+", default=list(COST_ORDER), help="--finetune: models, cheapest first")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help="--finetune: tasks")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="--finetune: seeds")
    p.add_argument("--stop-by", metavar="HH:MM", help="--finetune: start no cell that would end after HH:MM UTC")
    p.add_argument("--device", default="cpu", help="--finetune/--verify: torch device")
    p.add_argument("--tolerance", type=float, default=0.02, help="--verify: allowed accuracy difference")
    p.add_argument("--threads", type=int, help="torch threads (1 leaves the other cores to others)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--layers", default="auto", help="rank(layers=...): auto (default), last or all")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    progress = not args.quiet
    if args.quiet:
        import transformers

        transformers.utils.logging.disable_progress_bar()  # its per-load "Loading weights" bars
    try:
        if args.build_zoo:
            for name, folder in _checkpoints(args.models, args.build_zoo, task_root=args.tasks_root,
                                             progress=progress).items():
                print(f"{name:20s} {folder}")
            return 0
        if args.make_splits:
            for task, folder in build_splits(args.tasks_root).items():
                print(f"{task:10s} -> {folder}")
            return 0
        if args.finetune:
            # SIGTERM (kill, a job scheduler's time limit) unwinds like Ctrl-C, so the lock file is released; a
            # cell cut short is simply not written.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
            zoo = _checkpoints(args.models, args.zoo, task_root=args.tasks_root, progress=progress)
            deadline = _deadline(args.stop_by)
            if deadline is not None:
                at = datetime.datetime.fromtimestamp(deadline, datetime.timezone.utc)
                print(f"starting no cell that would end after {at:%Y-%m-%d %H:%M} UTC")
            cells = [c for c in plan(args.tasks, args.models, args.seeds) if source_task(c[1]) != c[0]]
            done = run_cells(cells, ground_truth=args.ground_truth,
                             task_root=args.tasks_root, zoo=zoo, device=args.device, deadline=deadline,
                             progress=progress, say=lambda line: print(time.strftime("%H:%M:%S"), line, flush=True))
            print(f"{len(done)} cell(s) computed; ground truth in {args.ground_truth}")
            return 0
        if args.merge:
            added = merge_files(args.ground_truth, args.merge)
            print(f"{len(added)} run(s) added to {args.ground_truth}")
            return 0
        ground_truth = load_ground_truth(args.ground_truth)
        if args.verify:
            models = sorted({m for t, ms in ground_truth.items() if t != META for m in ms})
            check = verify(args.ground_truth, task_root=args.tasks_root, zoo=_checkpoints(models, args.zoo),
                           device=args.device, tolerance=args.tolerance, progress=progress)
            print(json.dumps(check, indent=1))
            return 0 if check["ok"] else 1
        task_dirs = args.task_dir or [args.tasks_root / t for t in ground_truth if t != META
                                      and len(accuracies(ground_truth, t)) >= 2]
        result = report(task_dirs, ground_truth, zoo_dir=args.zoo, cache_dir=args.cache_dir, progress=progress,
                        layers=args.layers)
    except (GroundTruthError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_json(args.out, result)
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table)
    plot(result, args.out.with_suffix(".png"))
    print(table)
    print(f"report: {args.out} (+ .md, .png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
