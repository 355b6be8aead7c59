"""Where a ranking's seconds go, per candidate (issue 19): ``rank(..., profile=True)`` on real checkpoints.

Part 1 (profile): the demo zoo's real checkpoints (``hf_emms.zoo``: all-MiniLM-L6-v2 and all-mpnet-base-v2, their
first layers, random-init controls) ranked on the first --samples sentences of SST-2 (../shared/data/text/sst2),
F-labels from the default CPU encoder; each candidate's seconds split into phases (pin, results I/O, resolve, load,
tokenizer, preprocess, forward, pooling, statistics, each solver metric, idle), and what the ranking pays once.
The target: everything but forward + pooling <= 15% of each candidate's time.

Part 2 (scale): 1, 8 and 32 candidates (seeded random re-initialisations of minilm-1, built once) on the same data:
seconds per candidate should stay flat or fall as candidates are added (fixed costs paid once per ranking).

Part 3 (layers, issue 18): each member ranked alone with ``layers="last"`` and with ``layers="auto"`` (up to 8
layers and their upper mean, the layer-aware score), each from a fresh cache: seconds per candidate and their ratio
(target: auto <= 1.5 x last; the forward pass is shared, the extra statistics and solver runs must not dominate).

Part 4 (overlap, issue 19): the members ranked together with ``overlap=False`` and ``overlap=True`` (each
candidate's extraction one ahead on a background thread while the previous one is solved; the default on an
accelerator), each from a fresh cache: wall seconds of each and whether every score agrees.

Every run uses a fresh cache root (results store, statistics, F-label embeddings: nothing is reused from an earlier
run, and the label embeddings are paid once per ranking, in the task's phases); only the zoo is built once, and the
zoo folders' file digests are remembered across runs like any user's (``hub/digests.py``, under ``$HF_EMMS_CACHE``):
the first ranking that meets a new zoo pays for reading its weights (the task phase ``scan``), later ones almost nothing.
Prints the tables, the configuration and the JSON
``{"candidates": {name: {"phases": {...}}}, "task": {...}, "scale": [...], "config": {...}}``.

Run:  .venv/bin/python benchmarks/rank_profile.py [--json benchmarks/results/rank_profile.json]
      [--plot benchmarks/results/rank_profile.png] [--samples 1000] [--scale 1 8 32] [--device cuda]
      [--skip-profile] [--no-layers] [--no-overlap] [--zoo DIR] [--encoders PATH ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "text" / "sst2" / "stsa.binary.train"
MEMBERS = ("mpnet-12", "mpnet-3", "minilm-6", "minilm-3", "minilm-1", "minilm-random")


def sst2(n: int):
    """The first n SST-2 training sentences as a Dataset with class labels (negative, positive)."""
    from datasets import ClassLabel, Dataset, Features, Value

    if not SST2.is_file():
        raise SystemExit(f"the benchmark data is missing: {SST2} (../shared/data beside the checkout)")
    lines = [line.split(" ", 1) for line in SST2.read_text().splitlines()[:n]]
    return Dataset.from_dict({"text": [t.strip() for _, t in lines], "label": [int(y) for y, _ in lines]},
                             features=Features({"text": Value("string"),
                                                "label": ClassLabel(names=["negative", "positive"])}))


def random_copies(source: Path, root: Path, n: int) -> list[Path]:
    """``n`` seeded random re-initialisations of the checkpoint at ``source`` (built once under ``root``)."""
    import torch
    from transformers import AutoConfig, AutoModel

    out = []
    for seed in range(n):
        dest = root / f"random-{seed}"
        if not (dest / "model.safetensors").is_file():
            torch.manual_seed(seed)
            AutoModel.from_config(AutoConfig.from_pretrained(source)).save_pretrained(dest)
            for f in source.iterdir():  # tokenizer and pooling files
                if f.is_file() and f.name not in ("config.json", "model.safetensors"):
                    shutil.copy(f, dest / f.name)
                elif f.is_dir():
                    shutil.copytree(f, dest / f.name, dirs_exist_ok=True)
        out.append(dest)
    return out


def layer_cost(hf_emms, zoo, members, data, device, common) -> list[dict]:
    """Part 3: seconds per candidate with layers="last" and layers="auto", each ranking alone from a fresh cache
    (the label embeddings are the task's, paid once per ranking and not counted in the candidate's seconds)."""
    print("\n## Layers: seconds per candidate, layers='auto' against 'last' (target: ratio <= 1.5)\n")
    print("| candidate | last s | auto s | ratio | layers read | best layer | emms_last | emms |\n"
          "|:---|---:|---:|---:|---:|:---|---:|---:|")
    out = []
    for member in members:
        seconds, rows = {}, {}
        for layers in ("last", "auto"):
            with tempfile.TemporaryDirectory() as fresh:
                (row,) = hf_emms.iter_rank(data, [str(zoo[member])], max_samples=None, device=device, layers=layers,
                                           cache_dir=Path(fresh) / "run", progress=False, **common)
            seconds[layers], rows[layers] = row.seconds, row
        auto = rows["auto"]
        read = len(auto.extra.get("layer_scores") or {}) or 1
        out.append({"candidate": member, "last_seconds": seconds["last"], "auto_seconds": seconds["auto"],
                    "ratio": seconds["auto"] / seconds["last"], "statistics_kept": read,
                    "best_layer": auto.best_layer, "emms_last": auto.emms_last, "emms": auto.emms})
        print(f"| {member} | {seconds['last']:.1f} | {seconds['auto']:.1f} | {seconds['auto'] / seconds['last']:.2f} "
              f"| {read} | {auto.best_layer} | {auto.emms_last:.4f} | {auto.emms:.4f} |")
    return out


def overlap_cost(hf_emms, zoo, members, data, device, common, repeats: int = 1) -> list[dict]:
    """Part 4: the members ranked together without and with the background extraction (the pair ``repeats`` times,
    alternating, so that neither setting always runs first), each from a fresh cache; scores compared with the first
    run without it."""
    print("\n## Overlap: the next candidate extracted while this one is solved (same rows expected)\n")
    print("| overlap | wall s | scores equal to the first run | same order | largest relative difference |\n"
          "|:---|---:|:---|:---|---:|")
    out, first = [], None
    for overlap in (False, True) * repeats:
        with tempfile.TemporaryDirectory() as fresh:
            start = time.perf_counter()
            rows = list(hf_emms.iter_rank(data, [str(zoo[m]) for m in members], max_samples=None,
                                                   device=device, cache_dir=Path(fresh) / "run", progress=False,
                                                   overlap=overlap, **common))
            wall = time.perf_counter() - start
        first = first or rows
        same = [(r.model, r.emms) for r in rows] == [(r.model, r.emms) for r in first]
        order = [r.model for r in rows] == [r.model for r in first]
        # On a GPU two threads may get different GEMM kernels (cuBLAS handles are per thread): equal to rounding only.
        plain = {r.model: r.emms for r in first}
        diffs = [abs(r.emms - plain[r.model]) / max(abs(plain[r.model]), 1e-12) for r in rows if r.ok]
        diff = max(diffs, default=0.0)
        out.append({"overlap": overlap, "wall_seconds": wall, "same_scores": same, "same_order": order,
                    "max_relative_difference": diff, "scores": {r.model: r.emms for r in rows}})
        print(f"| {overlap} | {wall:.1f} | {'yes' if same else 'NO'} | {'yes' if order else 'NO'} | {diff:.1e} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--members", nargs="+", default=list(MEMBERS))
    parser.add_argument("--scale", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--skip-profile", action="store_true", help="skip part 1")
    parser.add_argument("--no-layers", action="store_true", help="skip part 3 (layers='auto' against 'last')")
    parser.add_argument("--no-overlap", action="store_true", help="skip part 4 (overlap=False against True)")
    parser.add_argument("--overlap-repeats", type=int, default=1, help="part 4: run the pair this many times")
    parser.add_argument("--zoo", type=Path, help="folder of prebuilt member folders (default: build the zoo into the "
                        "cache; a member whose folder holds zoo.json is kept, e.g. benchmarks/gpu/timing_zoo.py's)")
    parser.add_argument("--encoders", nargs="+", help="F-label encoders, as rank(encoders=...) (default: rank's)")
    args = parser.parse_args()

    import torch

    import hf_emms
    from hf_emms.paths import cache_root
    from hf_emms.profile import overhead_share, plot_profile, profile_table
    from hf_emms.zoo import build_zoo

    zoo = build_zoo(args.zoo or cache_root() / "zoo", [*args.members, "minilm-1"], progress=False)
    common = {"encoders": args.encoders} if args.encoders else {}
    data = sst2(args.samples)
    config = {"samples": args.samples, "members": args.members, "device": args.device or "auto",
              "zoo": str(args.zoo or "hf_emms.zoo (real weights)"), "encoders": args.encoders or "rank's default",
              "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "python": platform.python_version(),
              "torch": torch.__version__, "hf_emms": hf_emms.__version__, "load_before": os.getloadavg()[0]}
    print("configuration:", json.dumps(config))
    profile, shares, wall = {}, {}, None
    if not args.skip_profile:
        with tempfile.TemporaryDirectory() as fresh:
            start = time.perf_counter()
            ranking = hf_emms.rank(data, [str(zoo[m]) for m in args.members], max_samples=None, device=args.device,
                                   cache_dir=Path(fresh) / "run", progress=False, profile=True, **common)
            wall = time.perf_counter() - start
        profile = ranking.profile()
        print(f"\n## Profile: {len(args.members)} candidates, {args.samples} SST-2 sentences, {wall:.1f} s in all\n")
        print(profile_table(profile))
        shares = {m: overhead_share(c["phases"]) for m, c in profile["candidates"].items()}
        worst = max(shares, key=shares.get)
        print(f"\nlargest share outside forward + pooling: {worst} {shares[worst]:.0%} (target <= 15%)")

    scale = []
    if args.scale:
        copies = random_copies(zoo["minilm-1"], cache_root() / "zoo" / "minilm-1-random-copies", max(args.scale))
        print("\n## Scale: seeded random re-initialisations of minilm-1\n")
        print("| candidates | seconds | seconds per candidate | task (once) |\n|---:|---:|---:|---:|")
        for n in args.scale:
            with tempfile.TemporaryDirectory() as fresh:
                start = time.perf_counter()
                run = hf_emms.rank(data, [str(c) for c in copies[:n]], max_samples=None, device=args.device,
                                   cache_dir=Path(fresh) / "run", progress=False, profile=True, **common)
                seconds = time.perf_counter() - start
            once = sum(run.profile()["task"].values())
            scale.append({"candidates": n, "seconds": seconds, "per_candidate": seconds / n, "task_once": once})
            print(f"| {n} | {seconds:.1f} | {seconds / n:.2f} | {once:.1f} |")
    layers = [] if args.no_layers else layer_cost(hf_emms, zoo, args.members, data, args.device, common)
    overlap = [] if args.no_overlap else overlap_cost(hf_emms, zoo, args.members, data, args.device, common,
                                                      args.overlap_repeats)
    config["load_after"] = os.getloadavg()[0]
    result = {**profile, "overhead_share": shares, "wall_seconds": wall, "scale": scale, "layers": layers,
              "overlap": overlap, "config": config}
    if args.json:
        from hf_emms._io import atomic_write

        atomic_write(args.json, json.dumps(result, indent=1))
    if args.plot and profile:
        plot_profile(profile, args.plot)
    print("\n" + json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
