"""F-label benchmark: encoding real labels with the offline default encoder (all-MiniLM-L6-v2), cold and cached.

Rows, on real text from ../shared/data/text (see its README):
  classes      the 77 Banking77 intent names -> per-class tables (C x D2)
  captions     the first --n SMS Spam messages as free-text labels -> per-sample F-labels (N x D2 x K)
Each row runs cold (a fresh, empty cache folder: every text is encoded, the model is loaded) and then warm (the
same call again: read from the disk cache, nothing encoded or loaded; what remains is hashing the encoder's
folder to pin its revision), after one warm-up call for imports. It reports texts, seconds, texts per second,
and the time to stream the per-sample F-labels in batches of 256 (what FeatureStats.update consumes).

Run:  .venv/bin/python benchmarks/labels.py [--n 500] [--json out.json]     (under a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"


def _rows(n: int) -> list[tuple[str, list, dict]]:
    with open(DATA / "banking77" / "banking77_train.csv", newline="") as f:
        intents = sorted({row["category"] for row in csv.DictReader(f)})
    messages = [line.split("\t", 1)[1] for line in (DATA / "sms_spam" / "SMSSpamCollection").read_text(
        encoding="utf-8", errors="replace").splitlines()[1 : n + 1]]
    return [("classes", intents, {"kind": "classification"}), ("captions", messages, {"kind": "text"})]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="SMS messages used as free-text labels")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"the real data folder {DATA} is missing (see shared/data/README.md)", file=sys.stderr)
        return 1
    import torch
    from tabulate import tabulate

    from hf_emms.labels import cpu_encoders, embed_labels

    encoders = cpu_encoders()
    embed_labels(["warm up"], kind="text", encoders=encoders, cache_dir=False, progress=False)  # imports, first load
    results = []
    with tempfile.TemporaryDirectory() as cache:
        for name, labels, options in _rows(args.n):
            for state in ("cold", "warm"):
                start = time.perf_counter()
                flabels = embed_labels(labels, encoders=encoders, cache_dir=cache, progress=False, **options)
                seconds = time.perf_counter() - start
                stream = None
                if flabels.n_samples is not None:
                    start = time.perf_counter()
                    for _ in flabels.batches(256):
                        pass
                    stream = time.perf_counter() - start
                results.append({
                    "labels": name, "cache": state, "texts": len(labels), "encoded": flabels.n_encoded,
                    "seconds": round(seconds, 3), "texts/s": round(len(labels) / seconds, 1),
                    "stream s": None if stream is None else round(stream, 4),
                    "shape": f"{len(flabels)} x {flabels.width} x {flabels.k}",
                })
    print(tabulate(results, headers="keys", tablefmt="github"))
    print(f"\nencoder: {encoders[0].model} | torch {torch.__version__}, {torch.get_num_threads()} threads | "
          f"{platform.processor() or platform.machine()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
