"""Does an F-label encoder favour candidates of its own family?

EMMS regresses a candidate's features on class names embedded by foundation models. When a candidate is (or shares
a family with) the encoder, its features and the F-labels live in related spaces; if that helped, the default
encoder (all-MiniLM-L6-v2 on a CPU) would lift the MiniLM candidates. This ranks the same zoo members on the same
Banking77 rows (77 intents: class names with real geometry, where F-labels matter most) under three targets: the
default MiniLM encoder, all-mpnet-base-v2 (the zoo's ``mpnet-12`` folder) as the encoder, and one-hot labels (no
encoder), and prints each member's score, SE and gap to the leader under each.

Run:  .venv/bin/python benchmarks/encoder_bias.py [--samples 1000] [--json benchmarks/results/encoder_bias.json]
      (about 3 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BANKING77 = ROOT.parent / "shared" / "data" / "text" / "banking77" / "banking77_train.csv"
MEMBERS = ("mpnet-12", "mpnet-3", "minilm-6", "minilm-3", "minilm-1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import datasets
    import torch

    import hf_emms
    from hf_emms.paths import cache_root
    from hf_emms.zoo import build_zoo

    if not BANKING77.is_file():
        raise SystemExit(f"the benchmark data is missing: {BANKING77} (../shared/data beside the checkout)")
    rows = list(csv.DictReader(BANKING77.open()))
    data = datasets.Dataset.from_dict({"text": [r["text"] for r in rows], "label": [r["category"] for r in rows]})
    zoo = build_zoo(cache_root() / "zoo", list(MEMBERS), progress=False)
    targets = {"minilm (default)": "default", "mpnet-12 as encoder": [str(zoo["mpnet-12"])], "one-hot": None}
    config = {"samples": args.samples, "members": list(MEMBERS), "data": "banking77_train.csv", "layers": "last",
              "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "python": platform.python_version(),
              "torch": torch.__version__, "hf_emms": hf_emms.__version__}
    print("configuration:", json.dumps(config))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, encoders in targets.items():
        with tempfile.TemporaryDirectory() as fresh:
            ranking = hf_emms.rank(data, [str(zoo[m]) for m in MEMBERS], encoders=encoders, max_samples=args.samples,
                                   layers="last", cache_dir=fresh, progress=False)
        best = max(row.emms for row in ranking.rows if row.ok)
        out[name] = {row.model: {"emms": row.emms, "emms_se": row.emms_se, "gap": best - row.emms}
                     for row in ranking.rows if row.ok}
    print("\n| member | " + " | ".join(f"{t}: emms (se), gap" for t in targets) + " |")
    print("|---|" + "---|" * len(targets))
    for member in MEMBERS:
        cells = [f"{out[t][member]['emms']:.4f} ({out[t][member]['emms_se']:.4f}), {out[t][member]['gap']:.4f}"
                 for t in targets]
        print(f"| {member} | " + " | ".join(cells) + " |")
    orders = {t: sorted(out[t], key=lambda m: -out[t][m]["emms"]) for t in targets}
    same = len({tuple(o) for o in orders.values()}) == 1
    print(f"\nthe same order under every target: {'yes' if same else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps({"config": config, "scores": out, "orders": orders, "same_order": same},
                                        indent=1))


if __name__ == "__main__":
    main()
