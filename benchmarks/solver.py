"""Solver benchmark: time and peak memory of EMMS from in-memory features to the score.

Rows, each measured in a fresh subprocess (so peak RSS belongs to that row alone):
  classes            FeatureStats + emms, class labels and K class-name tables (C x D2)
  per-sample         FeatureStats + emms, per-sample F-labels (N x D2 x K)
  dense one-pass     the published algorithm on dense arrays (numpy lstsq), as the official code does it:
                     on the class task it first expands Y_k = E_k[y], on the per-sample task it takes Y
  streamed           the class path fed batch by batch from a generator, at N and at --stream-n,
                     to show that memory does not grow with N
  baselines          LogME (one-vs-rest), H-score, shrinkage H-score: FeatureStats + the score;
                     NCE: FeatureStats with Z-way classifier-head logits + the score;
                     LEEP: both passes over in-memory head logits (leep_score)

Each row runs after a warm-up call on a tiny problem; hf-emms rows report the best of --repeats runs,
the dense rows (over ten seconds each) one run, in float64. Time includes accumulation (float32 features
-> float64 statistics) and the solve. Input generation is excluded, except in the streamed rows, where
batches are generated on the fly (that is the point).
"peak MB" is the process's peak RSS; "extra MB" is that peak minus the RSS once the inputs exist.

Run:  .venv/bin/python benchmarks/solver.py [--json results.json] [--device cuda]    (about 3 minutes on 2 cores)
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

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _task(cfg: dict, n: int, seed: int = 0):
    """Labels, class tables, and a function giving float32 features (and F-labels) for rows [lo, hi)."""
    rng = np.random.default_rng(seed)
    c, d1, d2, k = cfg["classes"], cfg["d1"], cfg["d2"], cfg["k"]
    labels = rng.integers(0, c, n)
    centres = rng.standard_normal((c, d1), dtype=np.float32)
    tables = [rng.standard_normal((c, d2)) for _ in range(k)]

    def rows(lo: int, hi: int, with_y: bool = False):
        r = np.random.default_rng([seed, lo])
        x = centres[labels[lo:hi]] + r.standard_normal((hi - lo, d1), dtype=np.float32)
        if not with_y:
            return x
        y = np.stack([t[labels[lo:hi]] for t in tables], axis=2).astype(np.float32)
        return x, y + r.standard_normal(y.shape, dtype=np.float32)

    return labels, tables, rows


def run_case(case: str, cfg: dict) -> dict:
    """One measurement, in this process."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    sys.path.insert(0, str(ROOT / "tests"))
    from _dense import official_one_pass  # the transcription the tests check emms_reference against

    from hf_emms import FeatureStats, emms, emms_score, hscore, leep_score, logme, nce

    n = cfg["stream_n"] if case == "streamed-large" else cfg["n"]
    labels, tables, rows = _task(cfg, n)
    x = y = logits = None
    if case in ("classes", "dense-classes", "logme", "hscore", "hscore-shrinkage", "nce"):
        x = rows(0, n)
    elif case in ("per-sample", "dense-per-sample"):
        x, y = rows(0, n, with_y=True)
    on = torch.device(cfg["device"])
    if on.type != "cpu" and not case.startswith("dense"):  # features as a forward pass leaves them: on the device
        x = None if x is None else torch.from_numpy(x).to(on)
        y = None if y is None else torch.from_numpy(y).to(on)
    if case in ("nce", "leep"):  # a head that half knows the classes
        r = np.random.default_rng(2)
        logits = r.standard_normal((cfg["classes"], cfg["source_classes"]), dtype=np.float32)[labels]
        logits += 2 * r.standard_normal((n, cfg["source_classes"]), dtype=np.float32)

    def stats_of(**extra):
        stats = FeatureStats()
        for lo in range(0, n, cfg["batch_size"]):
            sl = slice(lo, lo + cfg["batch_size"])
            stats.update(x[sl], labels=labels[sl], **{k: v[sl] for k, v in extra.items()})
        return stats
    # Warm-up on a tiny problem, so that one-time library initialisation (thread pools, lazy imports)
    # is not charged to whichever row runs first.
    tiny = np.random.default_rng(1).standard_normal((64, 8))
    emms_score(tiny, np.arange(64) % 2, class_embeddings=[t[:2, :4] for t in tables])
    official_one_pass(tiny, tiny[:, :4, None])
    rss_inputs = _rss_mb()

    def once() -> float:
        if case == "classes":
            return emms_score(x, labels, class_embeddings=tables).score
        if case == "per-sample":
            return emms_score(x, label_embeddings=y).score
        if case == "dense-classes":
            return official_one_pass(x.astype(np.float64), np.stack([t[labels] for t in tables], axis=2))
        if case == "dense-per-sample":
            return official_one_pass(x.astype(np.float64), y.astype(np.float64))
        if case == "logme":
            return logme(stats_of())
        if case.startswith("hscore"):
            return hscore(stats_of(), shrinkage=case == "hscore-shrinkage")
        if case == "nce":
            return nce(stats_of(head_logits=logits))
        if case == "leep":
            return leep_score(logits, labels)
        stats = FeatureStats()  # streamed-*: batches come from a generator; the full matrix never exists
        for lo in range(0, n, cfg["batch_size"]):
            hi = min(lo + cfg["batch_size"], n)
            stats.update(torch.from_numpy(rows(lo, hi)).to(on), labels=labels[lo:hi])
        return emms(stats, tables).score

    times = []
    for _ in range(1 if case.startswith("dense") else cfg["repeats"]):
        t0 = time.perf_counter()
        score = once()
        times.append(time.perf_counter() - t0)
    peak = _peak_mb()
    return {"case": case, "n": n, "seconds": min(times), "runs": len(times), "peak_mb": peak,
            "extra_mb": peak - rss_inputs, "score": float(score)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="samples (default: 20000)")
    parser.add_argument("--d1", type=int, default=1024, help="feature width (default: 1024)")
    parser.add_argument("--d2", type=int, default=1024, help="F-label width (default: 1024)")
    parser.add_argument("--k", type=int, default=3, help="number of F-labels (default: 3)")
    parser.add_argument("--classes", type=int, default=100, help="classes (default: 100)")
    parser.add_argument("--source-classes", type=int, default=1000, help="classes of the head for NCE/LEEP (default: 1000)")
    parser.add_argument("--stream-n", type=int, default=200_000, help="samples of the large streamed run (default: 200000)")
    parser.add_argument("--batch-size", type=int, default=4096, help="rows per streamed batch (default: 4096)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each hf-emms row, best kept (default: 3)")
    parser.add_argument("--device", default="cpu",
                        help="where hf-emms rows hold the features, accumulate and solve: cpu or cuda (default: cpu; "
                             "the dense rows are numpy on the CPU either way)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case and print JSON
    args = parser.parse_args()
    cfg = {k: getattr(args, k) for k in ("n", "d1", "d2", "k", "classes", "source_classes", "stream_n", "batch_size", "repeats",
                                         "device")}

    if args.case:
        print(json.dumps(run_case(args.case, cfg)))
        return

    cases = ["classes", "per-sample", "dense-classes", "dense-per-sample", "streamed", "streamed-large",
             "logme", "hscore", "hscore-shrinkage", "nce", "leep"]
    results = {}
    for case in cases:
        cmd = [sys.executable, __file__, "--case", case] + [f"--{k.replace('_', '-')}={v}" for k, v in cfg.items()]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
        results[case] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  ran {case:<17} {results[case]['seconds']:8.2f} s", file=sys.stderr)

    import torch

    env = {
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name() if cfg["device"].startswith("cuda") else None,
    }
    print(f"\nEMMS solver benchmark: N={cfg['n']:,}  D1={cfg['d1']}  D2={cfg['d2']}  K={cfg['k']}  C={cfg['classes']}  "
          f"Z={cfg['source_classes']}  "
          f"batch={cfg['batch_size']}  streamed N={cfg['stream_n']:,}  best of {cfg['repeats']} (dense: 1 run)  "
          f"device={cfg['device']}")
    print(f"python {env['python']}  torch {env['torch']}  numpy {env['numpy']}  {env['cores']} cores ({env['cpu']})\n")
    print(f"| {'path':<34} | {'N':>7} | {'seconds':>8} | {'speed-up':>8} | {'peak MB':>8} | {'extra MB':>8} |")
    print(f"|{'-' * 36}|{'-' * 9}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    labels = {
        "classes": "classes (stats + exact EMMS)", "dense-classes": "dense one-pass, class task",
        "per-sample": "per-sample F-labels (stats + EMMS)", "dense-per-sample": "dense one-pass, per-sample task",
        "streamed": "classes, streamed", "streamed-large": "classes, streamed",
        "logme": "LogME, one-vs-rest (stats)", "hscore": "H-score (stats)",
        "hscore-shrinkage": "H-score, Ledoit-Wolf (stats)", "nce": f"NCE, {cfg['source_classes']}-way head (stats)",
        "leep": f"LEEP, {cfg['source_classes']}-way head (2 passes)",
    }
    baseline = {"classes": "dense-classes", "per-sample": "dense-per-sample"}
    for case in cases:
        r = results[case]
        ref = baseline.get(case)
        speed = f"{results[ref]['seconds'] / r['seconds']:.1f}x" if ref else ""
        print(f"| {labels[case]:<34} | {r['n']:>7,} | {r['seconds']:>8.2f} | {speed:>8} | {r['peak_mb']:>8.0f} | {r['extra_mb']:>8.0f} |")
    ratios = {
        "classes_speedup": results["dense-classes"]["seconds"] / results["classes"]["seconds"],
        "per_sample_speedup": results["dense-per-sample"]["seconds"] / results["per-sample"]["seconds"],
        "streamed_peak_ratio": results["streamed-large"]["peak_mb"] / results["streamed"]["peak_mb"],
    }
    print(f"\nclass path {ratios['classes_speedup']:.1f}x faster than dense (target >= 30x); per-sample "
          f"{ratios['per_sample_speedup']:.1f}x (target >= 3x); streamed peak memory at N={cfg['stream_n']:,} is "
          f"{ratios['streamed_peak_ratio']:.2f}x that at N={cfg['n']:,} (target <= 1.1x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"config": cfg, "environment": env, "results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
