"""Disk cache of raw text embeddings, so repeated rankings never encode the same text twice.

Layout: ``<root>/<encoder key>/`` per encoder configuration, where the key is a digest of (encoder id,
resolved revision, kind, pooling, max length). ``manifest.json`` there names the configuration for a
human; each ``<uuid>.safetensors`` shard holds ``digest`` (n, 32) uint8, the SHA-256 of each encoded
text (the prompt already applied), and ``embedding`` (n, D) float32, the encoder's raw pooled output
(before normalisation and width mapping, so one entry serves every F-label width).

Every file is written to a temporary name in the same folder and renamed into place: readers never see
half a shard, and concurrent writers (several processes ranking at once) each add their own shard.
No pickle anywhere: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write
from ..paths import cache_root

_FORMAT = 1


def default_cache_dir() -> Path:
    """``labels/`` under the hf-emms cache root (see :func:`hf_emms.paths.cache_root`)."""
    return cache_root() / "labels"


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Raw embeddings of one encoder configuration, on disk under ``root`` (or in memory only if None).

    Parameters
    ----------
    root : Path or None
        The cache root (see :func:`default_cache_dir`); None keeps entries for this object's lifetime only.
    config : dict
        The encoder configuration that keys the entries (JSON-serialisable: id, revision, kind, pooling, ...).
    """

    def __init__(self, root: Path | None, config: dict[str, Any]) -> None:
        key = hashlib.sha256(json.dumps({"format": _FORMAT, **config}, sort_keys=True).encode()).hexdigest()[:32]
        self.config = config
        self.folder = None if root is None else Path(root) / key
        self._memory: dict[bytes, np.ndarray] = {}
        self._index: dict[bytes, Path] | None = None  # digest -> shard, read on first lookup

    def _shard_index(self) -> dict[bytes, Path]:
        if self._index is None:
            self._index = {}
            for shard in sorted(self.folder.glob("*.safetensors")) if self.folder and self.folder.is_dir() else ():
                try:
                    from safetensors import safe_open

                    with safe_open(str(shard), framework="numpy") as f:
                        digests = f.get_tensor("digest")
                except Exception as exc:  # a foreign or damaged file: set aside (kept, never read again), encode again
                    aside = shard.with_name(shard.name + ".unreadable")
                    try:
                        shard.replace(aside)
                        where = f"; moved to {aside.name}"
                    except OSError:
                        where = ""
                    warnings.warn(f"ignoring unreadable F-label cache shard {shard}: {_first_line(exc)}{where}; its "
                                  "labels are encoded again", stacklevel=3)
                    continue
                self._index.update((bytes(d), shard) for d in digests)
        return self._index

    def get(self, texts: Sequence[str]) -> dict[int, np.ndarray]:
        """The cached embeddings of those ``texts`` that have one, by position in ``texts``."""
        digests = [text_digest(t) for t in texts]
        found = {i: self._memory[d] for i, d in enumerate(digests) if d in self._memory}
        if self.folder is None:
            return found
        index = self._shard_index()
        wanted: dict[Path, list[int]] = {}
        for i, d in enumerate(digests):
            if i not in found and d in index:
                wanted.setdefault(index[d], []).append(i)
        from safetensors.numpy import load_file

        for shard, positions in wanted.items():
            data = load_file(str(shard))
            rows = {bytes(d): r for r, d in enumerate(data["digest"])}
            for i in positions:
                found[i] = self._memory[digests[i]] = data["embedding"][rows[digests[i]]]
        return found

    def put(self, texts: Sequence[str], embeddings: np.ndarray) -> None:
        """Store the embeddings (n, D) of ``texts``: in memory, and as one new shard on disk."""
        digests = [text_digest(t) for t in texts]
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self._memory.update(zip(digests, embeddings))
        if self.folder is None or not texts:
            return
        from safetensors.numpy import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self.folder / "manifest.json"
        if not manifest.exists():
            atomic_write(manifest, lambda p: Path(p).write_text(json.dumps(self.config, indent=2, sort_keys=True)))
        shard = self.folder / f"{uuid.uuid4().hex}.safetensors"
        tensors = {"digest": np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 32), "embedding": embeddings}
        atomic_write(shard, lambda p: save_file(tensors, p, metadata={"format": str(_FORMAT)}))
        if self._index is not None:
            self._index.update((d, shard) for d in digests)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
