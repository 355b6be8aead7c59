"""Where a process's first ranking loses its seconds on an accelerator: the CUDA context, the first cuBLAS call, the
F-label encoder's load and first encoding, each timed in order in one fresh process.

On an H200 the first ranking of a process took 26.6-28.4 s against 12.8-13.8 s for a later one, 7.9 s of it in
the F-label embeddings (cold). This splits that cold cost: the process's first CUDA work (context, allocator, cuBLAS
handle) would be paid by the first candidate's forward pass if the encoder did not pay it, the encoder's own load
and encoding would not. Prints a table; --json writes it.

Run (a fresh process each time; on a machine with CUDA, or --device cpu to test the script):
    python3 benchmarks/gpu/cold_start.py --encoder DIR [--device cuda] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

CLASS_NAMES = ["negative", "positive"]  # SST-2's, as the quality benchmark's first task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="F-label encoder folder (e.g. the timing zoo's minilm-6)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rows: list[tuple[str, float]] = []
    start = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        rows.append((name, now - start))
        start = now

    import torch

    lap("import torch")
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.init()
        torch.zeros(1, device=args.device)
        torch.cuda.synchronize()
    lap("CUDA context and first allocation")
    a = torch.randn(512, 512, device=args.device)
    (a @ a).sum().item()
    lap("first matrix product (cuBLAS handle)")
    import hf_emms
    from hf_emms.labels import EncoderSpec, embed_labels

    lap("import hf_emms (transformers)")
    spec = EncoderSpec(args.encoder)
    for step in ("F-labels, cold cache: encoder load + encoding", "F-labels again, cold cache, same process"):
        with tempfile.TemporaryDirectory() as cache:
            embed_labels(CLASS_NAMES, kind="classification", encoders=[spec], cache_dir=cache, device=args.device,
                         progress=False)
            if cuda:
                torch.cuda.synchronize()
            lap(step)

    total = sum(s for _, s in rows)
    print(f"| step (one fresh process, device {args.device}) | seconds |\n|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")
    print(f"| total | {total:.3f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"steps": dict(rows), "total": total, "config": {
            "device": args.device, "encoder": args.encoder, "torch": torch.__version__, "hf_emms": hf_emms.__version__,
            "gpu": torch.cuda.get_device_name(0) if cuda else None}}, indent=1))


if __name__ == "__main__":
    main()
