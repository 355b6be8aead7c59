"""Where extraction's seconds go on a GPU: one ``extract_stats`` run under ``torch.profiler`` (CPU and CUDA).

Prints the operators by self CUDA time and by CPU time (top --top each), the count of device-to-host reads
(``aten::item``, ``aten::_local_scalar_dense``: each waits for the queued GPU work), and the wall time of the
profiled run beside an unprofiled one. A diagnostic for the statistics' share of the forward pass (issue 19).

Run (on a machine with CUDA):  python3 benchmarks/gpu/trace_extraction.py --model DIR [--n 4000] [--layers last]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--layers", default="last")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import datasets
    import torch
    from extraction import sentences
    from torch.profiler import ProfilerActivity, profile

    from hf_emms.features import extract_stats

    texts, labels = sentences(args.n)
    ds = datasets.Dataset.from_dict({"text": texts, "label": labels})

    def run():
        out = extract_stats(args.model, ds, text_column="text", label_column="label", batch_size=args.batch_size,
                            device="cuda", layers=args.layers, progress=False)
        torch.cuda.synchronize()
        return out

    run()  # warm-up
    start = time.perf_counter()
    plain = run()
    plain_s = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        run()
        traced_s = time.perf_counter() - start
    averages = prof.key_averages()
    by_cuda = averages.table(sort_by="self_cuda_time_total", row_limit=args.top)
    by_cpu = averages.table(sort_by="cpu_time_total", row_limit=args.top)
    reads = ("aten::item", "aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize",
             "cudaMemcpyAsync")
    syncs = {e.key: e.count for e in averages if e.key in reads}
    total_cuda = sum(e.self_device_time_total for e in averages) / 1e6
    print(f"model {args.model.name}, {args.n} sentences, batch {args.batch_size}, layers={args.layers}: "
          f"{plain_s:.2f} s unprofiled, {traced_s:.2f} s profiled; GPU busy {total_cuda:.2f} s (sum of kernel times)")
    print("timings of the unprofiled run:", json.dumps({k: round(v, 3) for k, v in plain.record.timings.items()}))
    print("host reads and copies:", json.dumps(syncs))
    print("\n## by self CUDA time\n" + by_cuda + "\n## by CPU time (inclusive)\n" + by_cpu)
    if args.json:
        args.json.write_text(json.dumps({"model": args.model.name, "n": args.n, "batch_size": args.batch_size,
                                         "layers": args.layers, "seconds": plain_s, "profiled_seconds": traced_s,
                                         "gpu_kernel_seconds": total_cuda, "timings": plain.record.timings,
                                         "host_reads": syncs}, indent=1))


if __name__ == "__main__":
    main()
