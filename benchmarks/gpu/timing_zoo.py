"""A timing zoo: the demo zoo's architectures with random weights, for speed measurements where the real weights
cannot travel (a lent GPU machine takes 64 MiB per call; all-mpnet-base-v2 alone is 404 MB).

Wall time of a forward pass, of the statistics, of the solver and of a fine-tuning run depends on the architecture
(config: layers, width, heads), the tokenizer (sequence lengths) and the recipe (steps), not on the weights' values:
a member built here has the real member's config (``num_hidden_layers`` cut as in ``hf_emms.zoo``), the family's
real tokenizer and pooling files, and seeded random weights. Its scores mean nothing; only its seconds are used.
Each folder's ``zoo.json`` says ``"timing_only": true``.

Here (real sources installed):  .venv/bin/python benchmarks/gpu/timing_zoo.py export DIR
On the device:                  python3 benchmarks/gpu/timing_zoo.py build DIR ZOO [--members NAME ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

MEMBERS = ("minilm-1", "minilm-3", "minilm-6", "minilm-random", "mpnet-3", "mpnet-6", "mpnet-12", "mpnet-random")


def export(dest: Path) -> None:
    """Copy each family's config and tokenizer/pooling files (no weights) into ``dest/<family>``."""
    from hf_emms.zoo_sources import source_folder, tokenizer_files

    for family in ("minilm", "mpnet"):
        out = dest / family
        files = {"config.json": source_folder(family) / "config.json", **tokenizer_files(family)}
        for rel, path in files.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / rel)
        print(family, sorted(files))


def build(families: Path, zoo: Path, members: list[str]) -> None:
    """Members of ``hf_emms.zoo.ZOO`` as random-weight folders ``zoo/<name>`` with the real configs and tokenizers."""
    import torch
    from transformers import AutoConfig, AutoModel

    from hf_emms.zoo import ZOO

    for name in members:
        member = ZOO[name]
        dest = zoo / name
        if (dest / "zoo.json").is_file():
            continue
        src = families / member.family
        config = AutoConfig.from_pretrained(src)
        if member.layers:
            config.num_hidden_layers = member.layers
        torch.manual_seed(len(name))
        model = AutoModel.from_config(config)
        model.save_pretrained(dest)
        for path in src.rglob("*"):
            rel = path.relative_to(src)
            if path.is_file() and rel != Path("config.json"):  # 1_Pooling/config.json is the pooling rule: kept
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest / rel)
        (dest / "zoo.json").write_text(json.dumps({
            "name": name, "family": member.family, "timing_only": True, "layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size, "parameters": sum(p.numel() for p in model.parameters()),
            "description": f"{member.describe()} -- architecture and tokenizer only, random weights (timing only)",
        }, indent=2) + "\n")
        print("built", name, config.num_hidden_layers, "layers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("export").add_argument("dest", type=Path)
    b = sub.add_parser("build")
    b.add_argument("families", type=Path)
    b.add_argument("zoo", type=Path)
    b.add_argument("--members", nargs="+", default=list(MEMBERS))
    args = parser.parse_args()
    if args.command == "export":
        export(args.dest)
    else:
        build(args.families, args.zoo, args.members)


if __name__ == "__main__":
    main()
