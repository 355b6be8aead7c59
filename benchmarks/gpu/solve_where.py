"""Where one layer's cross-validated EMMS solve is faster: statistics on the GPU (the device solve of ``cv_problem``)
or on the CPU (LAPACK on every core), at the widths of the demo zoo (384, 768) and 1024.

For each width: the same float32 features (N rows, C classes, one class-name table of width D2) accumulated into
statistics on each device, then ``emms`` timed (best of --repeats, after a warm-up) and the fold eigensystems alone
(``symmetric_eigh`` of five D1 x D1 matrices). Prints a table and, with --json, writes it.

Run (on a machine with CUDA):  python3 benchmarks/gpu/solve_where.py [--n 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def best(repeats: int, fn) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--d2", type=int, default=384)
    parser.add_argument("--widths", type=int, nargs="+", default=[384, 768, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    from hf_emms.solver import FeatureStats, emms
    from hf_emms.solver.spectrum import symmetric_eigh

    gen = torch.Generator().manual_seed(0)
    table = torch.randn(args.classes, args.d2, generator=gen, dtype=torch.float64).numpy()
    rows = []
    print(f"| width | device | emms s | 5 fold eighs s |  (N={args.n}, C={args.classes}, D2={args.d2}, "
          f"{torch.get_num_threads()} CPU threads)\n|---:|:---|---:|---:|")
    for d1 in args.widths:
        x = torch.randn(args.n, d1, generator=gen)
        y = torch.randint(0, args.classes, (args.n,), generator=gen)
        for device in [d for d in ("cuda", "cpu") if d == "cpu" or torch.cuda.is_available()]:
            stats = FeatureStats().update(x.to(device), labels=y)
            score = emms(stats, table).score

            def solve(stats=stats, device=device):
                emms(stats, table)
                if device == "cuda":
                    torch.cuda.synchronize()

            grams = stats._t["fold_gram_x"]

            def eighs(grams=grams, device=device):
                for g in grams:
                    symmetric_eigh(g)
                if device == "cuda":
                    torch.cuda.synchronize()

            row = {"width": d1, "device": device, "emms_seconds": best(args.repeats, solve),
                   "fold_eigh_seconds": best(args.repeats, eighs), "score": score}
            rows.append(row)
            print(f"| {d1} | {device} | {row['emms_seconds']:.3f} | {row['fold_eigh_seconds']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "classes": args.classes, "d2": args.d2,
                                         "cpu_threads": torch.get_num_threads(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
