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
  python benchmarks/quality.py --rejudge benchmarks/quality/results/quality.json [--out FILE.json]
                                                                     that report's scores against the ground truth
                                                                     again, after runs were added (nothing scored)
"""

from __future__ import annotations

import argparse
import datetime
import json
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

from finetune import plan, run_cells, verify  # noqa: E402  (the benchmark's own modules live beside it)
from truth_file import (  # noqa: E402
    META, GroundTruthError, accuracies, load_ground_truth, merge_files, ran_on, write_json,
)
from ceiling import mean_ceiling, noise_ceiling, rerun_gaps  # noqa: E402
from figures import (  # noqa: E402
    DEPTH_CREDIT, PRIORS, SCORES, SELECTORS, VARIANTS, average, kendall_tau, quality, tied_set, top1_regret, versus,
    weighted_tau,
)
from layer_credit import depth_credit  # noqa: E402
from presenting import markdown, plot  # noqa: E402

from sources import SOURCES as SOURCE_MEMBERS, build_source_member, source_task  # noqa: E402
from task_splits import TASK_DIR, TASKS, build_splits, read_task_info  # noqa: E402

from hf_emms.paths import cache_root  # noqa: E402

__all__ = [  # the figures and their presentation live in quality/figures.py and quality/presenting.py
    "DEPTH_CREDIT", "PRIORS", "SCORES", "SELECTORS", "VARIANTS", "average", "kendall_tau", "main", "markdown", "plot",
    "quality", "report", "score_task", "tied_set", "top1_regret", "weighted_tau",
]

GROUND_TRUTH = HERE / "quality" / "ground_truth.json"
RESULTS = HERE / "quality" / "results"
ZOO_DIR = cache_root() / "quality-zoo"  # $HF_EMMS_CACHE or ~/.cache/hf_emms, as for every hf-emms cache
# Cheapest first, so that a run stopped by a deadline has the most cells.
COST_ORDER = ("minilm-1", "minilm-3", "paraphrase-minilm-3", "minilm-random", "minilm-6", "minilm-6-top3-reinit",
              "sre-minilm-6", "minilm-6-banking77", "mpnet-3", "mpnet-6", "mpnet-6-trec", "mpnet-random", "mpnet-12",
              "mpnet-12-top6-reinit", "mpnet-12-sms")


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
            if row.folds:  # the per-fold scores: ties can be judged again under another rule without re-scoring
                scores[row.model]["emms_folds"] = {k: [float(v) for v in vals] for k, vals in row.folds.items()}
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
        tasks[name] = _judged(name, scores, ground_truth, device, scoring_seconds=seconds,
                              rank_config=ranking.meta.get("config"),
                              inputs="text pair" if len(read_task_info(task_dir)["inputs"]) == 2 else "text")
    return _summary(tasks, {
        "hf_emms": hf_emms.__version__, "device": device, "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "load_average": os.getloadavg(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "ground_truth_meta": ground_truth.get(META), "zoo_dir": str(zoo_dir)})


def rejudge(previous: Mapping[str, Any], ground_truth: Mapping[str, Any]) -> dict[str, Any]:
    """An earlier report's scores judged again against ``ground_truth`` (e.g. after more seeds were added), with no
    model scored again: the selectors' scores do not depend on the ground truth. Every task must have the same
    models in both (a model the report did not score needs a new report)."""
    tasks = {}
    for name, old in previous["tasks"].items():
        truth = accuracies(ground_truth, name)
        if sorted(truth) != sorted(old["models"]):
            raise GroundTruthError(f"task {name!r}: the ground truth has models {sorted(truth)}, the report scored "
                                   f"{sorted(old['models'])}; run the report again to score the new ones.")
        tasks[name] = _judged(name, old["scores"], ground_truth, previous["meta"]["device"],
                              scoring_seconds=old["scoring_seconds"], rank_config=old.get("rank_config"),
                              inputs=old["inputs"])
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return _summary(tasks, {**previous["meta"], "ground_truth_meta": ground_truth.get(META),
                            "rejudged": {"date": now, "note": "scores from the report of meta.date, judged "
                                                              "against the ground truth of this date"}})


def _judged(name: str, scores: Mapping[str, Any], ground_truth: Mapping[str, Any], device: str, *,
            scoring_seconds: float, rank_config: Any, inputs: str) -> dict[str, Any]:
    """One task's entry of the report: its selectors' ``scores`` compared with the ground truth."""
    truth = accuracies(ground_truth, name)
    models = sorted(truth)
    entry = {"models": models, "truth": truth, "scores": scores, "quality": quality(truth, scores),
             "scoring_seconds": scoring_seconds,
             "finetune_seconds": _finetune_seconds(ground_truth, name, models, device),
             "finetune_std": {m: ground_truth[name][m].get("finetune_std") for m in models},
             "seeds": {m: ground_truth[name][m].get("seeds") for m in models},
             "probe_acc": {m: ground_truth[name][m].get("probe_acc") for m in models},
             "rank_config": rank_config, "inputs": inputs,
             "tied_set": tied_set(truth, {m: v.get("tied_with_best") for m, v in scores.items()})}
    entry["ceiling"] = noise_ceiling(truth, entry["finetune_std"], entry["seeds"])
    # Each selector minus the default on this task, and how far a second fine-tuning would move that gap.
    entry["rerun_gaps"] = rerun_gaps(truth, entry["finetune_std"], entry["seeds"], scores, SELECTORS)
    return entry


def _summary(tasks: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The report from its tasks' entries: the averages over tasks (and per input kind) and the ceilings."""
    kinds = sorted({v["inputs"] for v in tasks.values()})
    return {
        "ceiling": mean_ceiling([v["ceiling"] for v in tasks.values()]),
        "tasks": tasks, "average": average({t: v["quality"] for t, v in tasks.items()}),
        "average_by_inputs": {k: average({t: v["quality"] for t, v in tasks.items() if v["inputs"] == k})
                              for k in kinds} if len(kinds) > 1 else {},
        # Differences from the default, paired by task, with their SE over tasks: which gaps the tasks can resolve.
        "versus_default": {k: versus({t: v["quality"] for t, v in tasks.items() if k == "all" or v["inputs"] == k})
                           for k in ["all", *(kinds if len(kinds) > 1 else [])]},
        "meta": meta,
    }


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
    mode.add_argument("--rejudge", type=Path, metavar="REPORT",
                      help="judge this earlier report's scores against --ground-truth again (after runs were added), "
                           "scoring nothing; written to --out")
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
        if args.rejudge:
            result = rejudge(json.loads(args.rejudge.read_text()), ground_truth)
        else:
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
