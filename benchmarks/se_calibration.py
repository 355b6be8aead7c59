"""Is EMMS's standard error the size of the score's actual spread? Real features, disjoint samples.

The fold SE (``hf_emms/solver/uncertainty.py``) promises how far a score, and the paired difference of two
candidates' scores, would move on other samples of the same data. This checks the promise on real data: the SST-2
training sentences (6,920, ``../shared/data``) are split into disjoint draws of n rows; on each draw two real zoo
members (``minilm-3`` and ``minilm-1``, mean-pooled last layers) are scored with class-name F-label tables, and the
spread of their scores (and of their difference) over the draws is set beside the mean SE the folds gave.
A ratio near 1 is a calibrated SE; below 1, ties are declared too rarely. The uncorrected K-fold SE is the corrected
one / 1.5 (5 folds).

    .venv/bin/python benchmarks/se_calibration.py --json benchmarks/results/se_calibration.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "text" / "sst2" / "stsa.binary.train"
MEMBERS = ("minilm-3", "minilm-1")


def features(zoo: dict, texts: list[str], batch: int = 256) -> dict[str, np.ndarray]:
    """Mean-pooled last-layer features of every text, per member: (N, D) float32."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from hf_emms._loading import quiet_loading

    out = {}
    for name in MEMBERS:
        with quiet_loading():
            tok, model = AutoTokenizer.from_pretrained(zoo[name]), AutoModel.from_pretrained(zoo[name]).eval()
        parts = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch):
                enc = tok(texts[i:i + batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
                mask = enc["attention_mask"].unsqueeze(-1).float()
                parts.append(((model(**enc).last_hidden_state * mask).sum(1) / mask.sum(1)).numpy())
        out[name] = np.concatenate(parts)
    return out


def calibration(feats: dict[str, np.ndarray], labels: np.ndarray, n: int, seed: int = 0) -> dict:
    """Scores, SEs and paired differences over the disjoint draws of n rows."""
    from hf_emms import emms_score
    from hf_emms.solver.uncertainty import fold_mean_and_se

    order = np.random.default_rng(seed).permutation(len(labels))
    tables = np.random.default_rng(seed + 1).standard_normal((int(labels.max()) + 1, 64))
    scores, ses, diffs, diff_ses = [], [], [], []
    for k in range(len(labels) // n):
        rows = order[k * n:(k + 1) * n]
        with warnings.catch_warnings():  # a few sentences repeat: the copies' warning, said once per draw, not here
            warnings.simplefilter("ignore", UserWarning)
            a, b = (emms_score(feats[m][rows], labels[rows], class_embeddings=tables) for m in MEMBERS)
        scores.append(a.score)
        ses.append(a.se)
        diffs.append(a.score - b.score)
        diff_ses.append(fold_mean_and_se(a.fold_scores - b.fold_scores, a.fold_sizes)[1])
    spread, diff_spread = float(np.std(scores, ddof=1)), float(np.std(diffs, ddof=1))
    return {"n": n, "draws": len(scores), "score_spread": spread, "mean_se": float(np.mean(ses)),
            "se_ratio": float(np.mean(ses)) / spread, "difference": float(np.mean(diffs)),
            "difference_spread": diff_spread, "mean_difference_se": float(np.mean(diff_ses)),
            "difference_se_ratio": float(np.mean(diff_ses)) / diff_spread}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 300, 500], help="rows per draw")
    parser.add_argument("--rows", type=int, help="use the first ROWS sentences only (default: all 6,920)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if not SST2.is_file():
        raise SystemExit(f"the benchmark data is missing: {SST2} (../shared/data beside the checkout)")
    from hf_emms.paths import cache_root
    from hf_emms.zoo import build_zoo

    start = time.perf_counter()
    zoo = build_zoo(cache_root() / "zoo", list(MEMBERS), progress=False)
    lines = [line.split(" ", 1) for line in SST2.read_text().splitlines()][:args.rows]
    texts, labels = [t.strip() for _, t in lines], np.array([int(y) for y, _ in lines])
    feats = features(zoo, texts)
    rows = [calibration(feats, labels, n) for n in args.sizes]
    config = {"data": f"SST-2 train ({len(texts):,} sentences)", "members": list(MEMBERS), "folds": 5, "f_label_tables":
              "one random (2, 64) table", "python": platform.python_version(), "cpus": os.cpu_count(),
              "seconds": round(time.perf_counter() - start, 1)}
    print("configuration:", json.dumps(config))
    print("\n| rows per draw | draws | score spread | mean SE | SE / spread (uncorrected) | difference spread | "
          "mean SE of the difference | SE / spread (uncorrected) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']} | {r['draws']} | {r['score_spread']:.4f} | {r['mean_se']:.4f} | {r['se_ratio']:.2f} "
              f"({r['se_ratio'] / 1.5:.2f}) | {r['difference_spread']:.4f} | {r['mean_difference_se']:.4f} | "
              f"{r['difference_se_ratio']:.2f} ({r['difference_se_ratio'] / 1.5:.2f}) |")
    report = {"rows": rows, "config": config}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print("\n" + json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
