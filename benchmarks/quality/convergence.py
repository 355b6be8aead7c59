"""Does the ground truth's recipe converge on a task? The same fine-tuning with more epochs, beside the recipe's.

A ranking is judged against fine-tuned accuracy, so a recipe that stops before training has converged makes the
ground truth measure how fast each model learns in a few hundred steps, not how well it transfers. The signs are in
the ground truth's own logs (the last epoch's training loss far above the other tasks') and in its probe column (a
fine-tuned model below a linear probe of its own frozen features). This script re-runs chosen cells with
``epochs`` raised and everything else of the recipe unchanged (seed 0, or --seed), and prints both results side by
side: the recipe's accuracy (the ground truth's mean over its seeds) and the last training loss of its run of the same
seed, where the ground truth holds one.
Its numbers are a diagnostic: they never enter ``ground_truth.json`` (one recipe for every task there).

Run:  .venv/bin/python benchmarks/quality/convergence.py --task banking77 --models mpnet-12 mpnet-12-top6-reinit
          --epochs 10 [--zoo DIR] [--json benchmarks/quality/results/convergence_banking77.json] [--threads 1]
      .venv/bin/python benchmarks/quality/convergence.py --report RUNS.json [RUNS.json ...]
          [--scores benchmarks/quality/results/quality.json]
The second form merges runs of one task and ranks the models they cover both ways: every selector of the quality
report (its scores, unchanged) against the recipe's accuracies and against the longer runs', on the same models.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the benchmark's own modules live beside it

from figures import quality  # noqa: E402
from finetune import RECIPE, finetune  # noqa: E402
from truth_file import load_ground_truth  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", help="a task folder under benchmarks/quality/tasks")
    parser.add_argument("--models", nargs="+", help="zoo members")
    parser.add_argument("--report", nargs="+", type=Path, metavar="RUNS", help="merge these runs' JSON and compare")
    parser.add_argument("--scores", type=Path, default=HERE / "results" / "quality.json",
                        help="the quality report whose selector scores --report ranks (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the longer run (recipe: %d)" % RECIPE.epochs)
    parser.add_argument("--zoo", type=Path, default=Path.home() / ".cache" / "hf_emms" / "quality-zoo",
                        help="the zoo folder (benchmarks/quality.py --build-zoo DIR)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the ground truth's CPU cells: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the longer runs (default 0)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.report:
        return report(args.report, args.scores, args.json)
    if not (args.task and args.models):
        parser.error("give --task and --models (or --report RUNS.json ...)")

    import torch

    torch.set_num_threads(args.threads)
    truth = load_ground_truth(HERE / "ground_truth.json").get(args.task, {})
    recipe = dataclasses.replace(RECIPE, epochs=args.epochs)
    out = {"task": args.task, "recipe": dataclasses.asdict(recipe), "seed": args.seed, "models": {},
           "config": {"threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
                      "cpus": os.cpu_count()}}
    print(f"| model | recipe ({RECIPE.epochs} epochs) | last train loss | {args.epochs} epochs, seed {args.seed} "
          "| last train loss |")
    print("|---|---|---|---|---|")
    for model in args.models:
        run = finetune(args.zoo / model, HERE / "tasks" / args.task, seed=args.seed, recipe=recipe, progress=False)
        given = truth.get(model, {})
        first = next((r for r in given.get("runs", []) if r.get("seed") == args.seed), {})
        before = _last_loss(first.get("log", []))
        out["models"][model] = {"recipe_acc": given.get("finetune_acc"), "recipe_last_loss": before,
                                "longer_acc": run["finetune_acc"], "longer_last_loss": _last_loss(run["log"]),
                                "seconds": run["seconds"], "log": run["log"]}
        print(f"| {model} | {given.get('finetune_acc', float('nan')):.3f} | {before} | {run['finetune_acc']:.3f} "
              f"| {_last_loss(run['log'])} |", flush=True)
        if args.json:  # after every model: a long run stopped early keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=1))


def report(runs: list[Path], scores_path: Path, out: Path | None) -> None:
    """Every selector's weighted tau and top-1 regret on the models the runs cover: against the recipe's accuracies
    and against the longer runs', side by side."""
    merged: dict = {}
    for path in runs:
        part = json.loads(path.read_text())
        if merged and part["task"] != merged["task"]:
            raise SystemExit(f"{path} is a run of {part['task']}, not {merged['task']}: one task per report")
        if merged and part.get("seed", 0) != merged.get("seed", 0):
            raise SystemExit(f"{path} holds seed {part.get('seed', 0)} runs, the others seed {merged.get('seed', 0)}: "
                             "one seed per report (each model's longer run would silently replace another's)")
        merged = {**part, "models": {**merged.get("models", {}), **part["models"]}}
    task, models = merged["task"], merged["models"]
    scores = json.loads(scores_path.read_text())["tasks"][task]["scores"]
    recipe = {m: r["recipe_acc"] for m, r in models.items() if r["recipe_acc"] is not None}
    longer = {m: r["longer_acc"] for m, r in models.items()}
    both = {name: quality({m: a for m, a in truth.items() if m in scores}, scores)
            for name, truth in (("recipe", recipe), ("longer", longer))}
    epochs = merged["recipe"]["epochs"]
    print(f"{task}: {len(longer)} models fine-tuned for {epochs} epochs (seed {merged.get('seed', 0)}) beside the "
          f"recipe's {RECIPE.epochs}\n")
    print(f"| selector | weighted tau, recipe | weighted tau, {epochs} epochs | regret, recipe | regret, {epochs} epochs |")
    print("|---|---|---|---|---|")
    for sel in both["longer"]:
        a, b = both["recipe"].get(sel, {}), both["longer"][sel]
        print(f"| {sel} | {a.get('weighted_tau', float('nan')):.2f} | {b['weighted_tau']:.2f} | "
              f"{100 * a.get('regret', float('nan')):.1f} | {100 * b['regret']:.1f} |")
    best = {name: max(truth, key=truth.get) for name, truth in (("recipe", recipe), ("longer", longer))}
    print(f"\nbest fine-tuned: {best['recipe']} (recipe), {best['longer']} ({epochs} epochs); EMMS's leader: "
          f"{max((m for m in longer if m in scores), key=lambda m: scores[m]['emms'])}")
    means = _means_with(json.loads(scores_path.read_text())["tasks"], task, both["longer"])
    if means:
        print(f"\nMean over the report's {means['n_tasks']} tasks with {task}'s inputs, {task} judged by the recipe "
              f"(as in the report) or by the {epochs}-epoch runs (every other task unchanged):\n")
        print(f"| selector | weighted tau, recipe | weighted tau, {task} at {epochs} epochs | regret, recipe "
              f"| regret, {task} at {epochs} epochs |")
        print("|---|---|---|---|---|")
        for sel, row in means["selectors"].items():
            print(f"| {sel} | {row['recipe']['weighted_tau']:.3f} | {row['longer']['weighted_tau']:.3f} | "
                  f"{100 * row['recipe']['regret']:.2f} | {100 * row['longer']['regret']:.2f} |")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**merged, "quality": both, "best": best, "task_means": means}, indent=1))


def _means_with(tasks: dict, task: str, longer: dict) -> dict | None:
    """Each selector's mean weighted tau and regret over the report's tasks of ``task``'s input kind, with ``task``'s
    own figures from the report (the recipe) or from ``longer`` (the longer runs, on the models they cover)."""
    if "quality" not in tasks[task]:  # scores alone, not a judged report: nothing to average
        return None
    peers = [t for t, r in tasks.items() if "quality" in r and r.get("inputs") == tasks[task].get("inputs")]
    selectors = [s for s in longer if all(s in tasks[t]["quality"] for t in peers)]
    if not selectors:
        return None
    out = {}
    for sel in selectors:
        rows = {name: [(longer if (t == task and name == "longer") else tasks[t]["quality"])[sel] for t in peers]
                for name in ("recipe", "longer")}
        out[sel] = {name: {m: sum(r[m] for r in rs) / len(rs) for m in ("weighted_tau", "regret")}
                    for name, rs in rows.items()}
    return {"tasks": peers, "n_tasks": len(peers), "selectors": out}


def _last_loss(log: list[str]) -> float | None:
    """The last epoch's mean training loss from a fine-tuning log."""
    losses = [float(line.split("train loss ")[1].split()[0]) for line in log if "train loss" in line]
    return losses[-1] if losses else None


if __name__ == "__main__":
    main()
