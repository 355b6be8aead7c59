"""Metric benchmark: the ``emms`` evaluate module's ``compute`` against the solver called directly.

Two paths, on N float32 features of width D, class ids, and K class-name tables (C x D2):
  solver   hf_emms.emms_score(features, labels, class_embeddings=tables)
  metric   hf_emms.load_metric().compute(references=labels, features=features, class_embeddings=tables):
           the evaluate module, references through evaluate's Arrow writer, features as a keyword argument

Time: one subprocess warms both paths up on a tiny problem (imports, the module's first load), then calls them
in turn --repeats times and keeps the best of each, so that a load that drifts on a shared machine hits both
alike. Memory: one fresh subprocess per path, one call each (so its peak RSS is that path's alone). "input MB" is
the size of the features; "extra MB" is the peak RSS minus the RSS once the inputs exist (features are written in
place, batch by batch, so generating them adds no peak). Both paths must give the same score, bit for bit.
Targets (issue 8): metric time within 2x the solver's, metric extra memory within 2x the input's size.

Run:  .venv/bin/python benchmarks/metric.py [--json results.json]     (several minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PATHS = ("solver", "metric")
CASES = ("time", *PATHS)  # what one subprocess measures
TIME_TARGET, MEMORY_TARGET = 2.0, 2.0


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _task(cfg: dict, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class ids, float32 features (class centres plus noise, written in place) and K tables (K, C, D2)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, cfg["classes"], n)
    centres = rng.standard_normal((cfg["classes"], cfg["d"]), dtype=np.float32)
    features = np.empty((n, cfg["d"]), dtype=np.float32)
    for lo in range(0, n, 4096):
        hi = min(lo + 4096, n)
        features[lo:hi] = rng.standard_normal((hi - lo, cfg["d"]), dtype=np.float32)
        features[lo:hi] += centres[labels[lo:hi]]
    tables = rng.standard_normal((cfg["k"], cfg["classes"], cfg["d2"]))
    return labels, features, tables


def _scorer(path: str):
    """The path as a function of (labels, features, tables) returning the EMMS score."""
    if path == "solver":
        from hf_emms import emms_score

        return lambda y, x, t: emms_score(x, y, class_embeddings=t).score
    from hf_emms.metric import load_metric

    metric = load_metric()
    return lambda y, x, t: metric.compute(references=y, features=x, class_embeddings=t)["emms"]


def run_case(case: str, cfg: dict) -> dict:
    """One measurement, in this process: the alternating timing of both paths, or one path's memory."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    paths = PATHS if case == "time" else (case,)
    scorers = {path: _scorer(path) for path in paths}
    for path in paths:
        scorers[path](*_task(cfg, 64))  # warm-up
    inputs = _task(cfg, cfg["n"])
    rss = _rss_mb()
    seconds: dict[str, list[float]] = {path: [] for path in paths}
    scores = {}
    for _ in range(cfg["repeats"] if case == "time" else 1):
        for path in paths:
            start = time.perf_counter()
            scores[path] = scorers[path](*inputs)
            seconds[path].append(time.perf_counter() - start)
    return {"case": case, "seconds": {p: min(s) for p, s in seconds.items()}, "scores": scores,
            "input_mb": inputs[1].nbytes / 2**20, "extra_mb": _peak_mb() - rss}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="samples (default 50,000)")
    parser.add_argument("--d", type=int, default=2048, help="feature width (default 2,048)")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--d2", type=int, default=512, help="F-label width")
    parser.add_argument("--k", type=int, default=3, help="F-label tables")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows and the machine here")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # one row, in this process
    args = parser.parse_args(argv)
    cfg = {k: getattr(args, k) for k in ("n", "d", "classes", "d2", "k", "repeats")}
    if args.case:
        print(json.dumps(run_case(args.case, cfg)))
        return 0

    runs = {}
    for case in CASES:
        flags = [item for k, v in cfg.items() for item in (f"--{k}", str(v))]
        proc = subprocess.run([sys.executable, __file__, "--case", case, *flags], capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        runs[case] = json.loads(proc.stdout.strip().splitlines()[-1])
    timing = runs["time"]
    if timing["scores"]["metric"] != timing["scores"]["solver"]:
        print(f"the metric's score differs from the solver's: {timing['scores']}", file=sys.stderr)
        return 1
    input_mb = timing["input_mb"]
    rows = [{"path": p, "seconds": timing["seconds"][p], "extra_mb": runs[p]["extra_mb"]} for p in PATHS]
    print(f"N = {cfg['n']:,}, D = {cfg['d']:,} float32 ({input_mb:.0f} MB of features), C = {cfg['classes']}, "
          f"K = {cfg['k']} tables of width {cfg['d2']}; time: best of {cfg['repeats']}, alternating")
    print(f"| {'path':<8} | {'seconds':>8} | {'extra MB':>8} |")
    print(f"|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    for r in rows:
        print(f"| {r['path']:<8} | {r['seconds']:>8.2f} | {r['extra_mb']:>8.0f} |")
    solver, metric = rows
    time_ratio, memory_ratio = metric["seconds"] / solver["seconds"], metric["extra_mb"] / input_mb
    print(f"metric time / solver time: {time_ratio:.2f} (target <= {TIME_TARGET:g}); "
          f"metric extra memory / input size: {memory_ratio:.2f} (target <= {MEMORY_TARGET:g}); "
          f"solver extra memory / input size: {solver['extra_mb'] / input_mb:.2f}")
    if args.json:
        machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"config": cfg, "machine": machine, "rows": rows, "input_mb": input_mb,
                                         "time_ratio": time_ratio, "memory_ratio": memory_ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
