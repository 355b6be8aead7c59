"""Downloads overlapped with scoring (issue 19): a ranking of Hub candidates with and without ``RunSpec.prefetch``.

A person ranking Hub checkpoints pays each one's download before its forward pass. With prefetch (the default) the
next candidate's files are fetched on a background thread while the current one is scored, so a ranking costs
about the first download plus, per candidate, the larger of its scoring and the next download, instead of the sum.

The demo zoo's real checkpoints (``hf_emms.zoo``) are served by the local Hub-API server of the tests
(``tests/hub_server.py``, real HTTP); each weights file is held back for ``size / --bandwidth`` seconds before it is
sent, a network of that speed (default 50 MB/s). Each ranking runs in a fresh process with an empty HF cache and an
empty hf-emms cache (``HF_ENDPOINT`` must be set before huggingface_hub is imported), on the first ``--samples``
SST-2 sentences. Prints a table, the configuration and the JSON
``{"runs": {"prefetch": {...}, "no_prefetch": {...}}, "saving": s, "config": {...}}``.

Run:  .venv/bin/python benchmarks/prefetch.py [--json benchmarks/results/prefetch.json] [--samples 500]
      [--bandwidth 50] [--members minilm-6 mpnet-3 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MEMBERS = ("minilm-6", "mpnet-3", "minilm-3", "mpnet-6", "minilm-1", "mpnet-12")


def worker(members: list[str], samples: int, prefetch: bool, out: Path) -> None:
    """One ranking of ``bench/<member>`` from the Hub at HF_ENDPOINT; writes wall time and per-candidate phases."""
    sys.path.insert(0, str(HERE))
    from rank_profile import sst2

    import hf_emms
    from hf_emms.options import RankSpec

    spec = RankSpec.from_options(max_samples=None, progress=False, profile=True, prefetch=prefetch)
    start = time.perf_counter()
    ranking = hf_emms.iter_rank(sst2(samples), [f"bench/{m}" for m in members], spec=spec)
    rows = list(ranking)
    wall = time.perf_counter() - start
    profile = ranking.ranking().profile() or {}
    out.write_text(json.dumps({
        "wall_seconds": wall, "scored": sum(r.ok for r in rows),
        "emms": {r.model: r.emms for r in rows},
        # load_candidate fetches a Hub candidate's files first: its "load" phase holds the download it waited for
        "load_seconds": {m: c["phases"].get("load", 0.0) for m, c in profile.get("candidates", {}).items()},
        "task_seconds": sum((profile.get("task") or {}).values()),
    }))


def run(hub, members: list[str], sizes: dict[str, int], bandwidth: float, samples: int, prefetch: bool) -> dict:
    for m in members:  # each weights file held back as a network of this speed would (consumed by one request)
        hub.delay(f"/bench/{m}/resolve/.*model.safetensors", sizes[m] / (bandwidth * 1e6), method="GET")
    with tempfile.TemporaryDirectory(prefix="prefetch-bench-") as tmp:
        out = Path(tmp) / "run.json"
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(Path(tmp) / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
                   HF_EMMS_CACHE=str(Path(tmp) / "cache"), HF_HUB_DISABLE_XET="1")
        env.pop("HF_TOKEN", None)
        cmd = [sys.executable, __file__, "--worker", "--samples", str(samples), "--members", *members, "--json",
               str(out)] + ([] if prefetch else ["--no-prefetch"])
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise SystemExit(f"the ranking failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--members", nargs="+", default=list(MEMBERS))
    parser.add_argument("--bandwidth", type=float, default=50.0, help="simulated network speed, MB/s")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-prefetch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.members, args.samples, not args.no_prefetch, args.json)

    import torch

    import hf_emms
    from hf_emms.paths import cache_root
    from hf_emms.zoo import build_zoo

    sys.path.insert(0, str(ROOT / "tests"))
    from hub_server import HubServer

    zoo = build_zoo(cache_root() / "zoo", args.members, progress=False)
    sizes = {m: (zoo[m] / "model.safetensors").stat().st_size for m in args.members}
    config = {"samples": args.samples, "members": args.members, "bandwidth_mb_s": args.bandwidth,
              "weights_mb": {m: round(s / 1e6, 1) for m, s in sizes.items()}, "cpus": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
              "hf_emms": hf_emms.__version__, "load_before": os.getloadavg()[0]}
    print("configuration:", json.dumps(config))
    hub = HubServer().start()
    try:
        for m in args.members:
            hub.add_model(f"bench/{m}", zoo[m])
        runs = {}
        for name, on in (("no_prefetch", False), ("prefetch", True)):
            runs[name] = run(hub, args.members, sizes, args.bandwidth, args.samples, on)
    finally:
        hub.stop()
    config["load_after"] = os.getloadavg()[0]
    download = sum(sizes.values()) / (args.bandwidth * 1e6)
    print(f"\n## {len(args.members)} Hub candidates, {args.samples} SST-2 sentences, {args.bandwidth:g} MB/s "
          f"(all weights: {download:.1f} s of transfer)\n")
    print("| run | wall s | load s, download waited for included (all candidates) | scored |\n|:---|---:|---:|---:|")
    for name, r in runs.items():
        print(f"| {name} | {r['wall_seconds']:.1f} | {sum(r['load_seconds'].values()):.1f} | {r['scored']} |")
    saving = runs["no_prefetch"]["wall_seconds"] - runs["prefetch"]["wall_seconds"]
    same = runs["prefetch"]["emms"] == runs["no_prefetch"]["emms"]
    print(f"\nprefetch saved {saving:.1f} s ({saving / runs['no_prefetch']['wall_seconds']:.0%}); "
          f"identical scores: {same}")
    result = {"runs": runs, "saving": saving, "identical_scores": same, "config": config}
    if args.json:
        from hf_emms._io import atomic_write

        atomic_write(args.json, json.dumps(result, indent=1))
    print("\n" + json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
