"""Rank candidate feature extractors for a labelled task with EMMS, streaming features in batches.

The candidates here are synthetic stand-ins for checkpoints, built so that their true quality is known:
features that separate the task's classes well, less well, or not at all, at widths from 32 to 768,
with fewer samples (N = 400) than the widest candidate has dimensions. The F-labels are K = 3 class-name
embedding tables that mostly agree, as the paper's CLIP / BERT / GPT-2 encoders do.

Run: bash scripts/demo.sh          (or .venv/bin/python examples/solver_demo.py --n 400 --seed 0)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hf_emms import FeatureStats, emms, emms_reference


def candidates(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """name -> (N, D1) features of known quality: signal = class structure, the rest is noise."""
    n, n_classes = len(labels), labels.max() + 1

    def separable(width: int, signal: float, classes_seen: int) -> np.ndarray:
        centres = rng.standard_normal((n_classes, width))
        centres[classes_seen:] = 0.0  # classes the model cannot tell apart
        return signal * centres[labels] + rng.standard_normal((n, width))

    return {
        "strong-64": separable(64, 1.0, n_classes),
        "strong-256": separable(256, 0.6, n_classes),
        "partial-128": separable(128, 1.0, n_classes // 2),
        "weak-32": separable(32, 0.25, n_classes),
        "random-384": rng.standard_normal((n, 384)),
        "random-768": rng.standard_normal((n, 768)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400, help="samples in the task (default: 400)")
    parser.add_argument("--classes", type=int, default=8, help="number of classes (default: 8)")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per streamed batch (default: 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--svg", type=Path, help="also draw the two scores as a bar chart to this SVG file")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    labels = rng.permutation(np.arange(args.n) % args.classes)
    shared = rng.standard_normal((args.classes, 128))
    tables = [shared + 0.3 * rng.standard_normal(shared.shape) for _ in range(3)]  # K = 3 F-label encoders

    rows = []
    for name, x in candidates(labels, rng).items():
        stats = FeatureStats()
        for i in range(0, args.n, args.batch_size):  # as batches would come out of a model
            stats.update(x[i : i + args.batch_size], labels=labels[i : i + args.batch_size])
        best = emms(stats, tables)
        rows.append((name, x.shape[1], best, emms(stats, tables, rule="in_sample"), emms_reference(stats, tables)))

    rows.sort(key=lambda r: -r[2].score)
    print(f"task: N={args.n} samples, {args.classes} classes, K=3 F-label tables of width 128\n")
    print(f"{'rank':>4}  {'candidate':<12} {'width':>5}  {'EMMS (cv)':>10}  {'in-sample':>9}  {'official':>9}  weights")
    for i, (name, width, r, ins, ref) in enumerate(rows, 1):
        weights = " ".join(f"{w:.2f}" for w in r.weights)
        print(f"{i:>4}  {name:<12} {width:>5}  {r.score:>10.4f}  {ins.score:>9.4f}  {ref.score:>9.2f}  {weights}")
    print(
        "\nEMMS (cv): the ranking score, minus the out-of-sample F-label residual (higher is better)."
        "\nin-sample: the plain residual of the paper's objective; with N < width it rewards width, not quality."
        "\nofficial:  the published one-pass algorithm and scale, -(RSS / N) * D2, for comparison with papers."
    )
    if args.svg:
        args.svg.write_text(bar_chart([(f"{name} ({width}-d)", 1 + r.score, 1 + ins.score) for name, width, r, ins, _ in rows]))
        print(f"\nchart written to {args.svg}")


def bar_chart(rows: list[tuple[str, float, float]]) -> str:
    """A dependency-free SVG: for each candidate, the share of F-label variance explained out of sample
    (1 + EMMS cv score) and in sample (1 + in-sample score)."""
    left, width, bar, gap = 150, 360, 11, 10
    colours = (("#1f77b4", "out of sample (EMMS cv: the ranking)"), ("#c7c7c7", "in sample (rewards width)"))
    top = 66
    height = top + 10 + len(rows) * (2 * bar + gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="16" font-weight="bold">Share of F-label variance the features explain</text>',
    ]
    for i, (colour, label) in enumerate(colours):
        parts.append(f'<rect x="{left}" y="{26 + i * 16}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{left + 14}" y="{35 + i * 16}">{label}</text>')
    for i, (name, out_of_sample, in_sample) in enumerate(rows):
        y = top + i * (2 * bar + gap)
        parts.append(f'<text x="{left - 6}" y="{y + bar + 4}" text-anchor="end">{name}</text>')
        for j, value in enumerate((out_of_sample, in_sample)):
            w = max(value, 0.0) * width
            parts.append(f'<rect x="{left}" y="{y + j * bar}" width="{w:.1f}" height="{bar - 1}" fill="{colours[j][0]}"/>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{y + j * bar + bar - 2}" font-size="10">{value:.2f}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main()
