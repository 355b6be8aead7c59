"""A cache of finished statistics, one entry per (candidate, exact revision, dataset, split, samples, targets,
pooling, dtype, text length), so that a re-run or a run after a crash recomputes nothing that was finished.

An entry is two files named by the key's hash: the statistics (``.safetensors``, written by ``FeatureStats.save``)
and the record of how they were made (``.json``). Both are written to a temporary file and renamed; the record is
written last, so an entry whose record exists is complete. Anything unreadable is a miss, never an error, and a
write that fails (a full disk, a cache folder that is a file) is a warning: the statistics are returned all the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write
from ..errors import StatsFileError
from ..solver import FeatureStats

CACHE_FORMAT = 3  # bump when what a key's statistics mean changes (pooling rules, preprocessing); 2: untrained
# poolers; 3: encoder-decoder models read through their encoder


def array_digest(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes: identifies sample indices and F-label arrays in keys."""
    a = np.ascontiguousarray(a)
    digest = hashlib.sha256(json.dumps([a.dtype.str, a.shape]).encode())
    flat = a.reshape(-1).view(np.uint8)
    for lo in range(0, flat.size, 1 << 26):  # 64 MB at a time: large F-label arrays may be memory-mapped
        digest.update(flat[lo : lo + (1 << 26)])
    return digest.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    """The hex SHA-256 of ``parts`` (JSON-serialisable), in canonical form."""
    canonical = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class StatsCache:
    """Finished statistics and their records under one folder.

    Parameters
    ----------
    root : path
        Folder of the cache (created on first write). Safe to share between processes and runs: writes are atomic
        and two writers of one key write the same content.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path]:
        base = self.root / key[:2] / key
        return base.with_suffix(".safetensors"), base.with_suffix(".json")

    def get(self, key: str) -> tuple[FeatureStats, dict[str, Any], dict[str, FeatureStats]] | None:
        """The cached statistics, record and other layers' statistics of ``key``, or None when absent or
        unreadable."""
        stats_path, record_path = self._paths(key)
        try:
            record = json.loads(record_path.read_text())
            last = str(record.get("n_layers"))
            layers = {name: FeatureStats.load(self._layer_path(stats_path, name))
                      for name in record.get("layers") or () if name != last}
            return FeatureStats.load(stats_path), record, layers
        except (OSError, ValueError, StatsFileError):
            return None

    def put(self, key: str, stats: FeatureStats, record: dict[str, Any],
            layers: dict[str, FeatureStats] | None = None) -> None:
        """Store an entry: statistics first (the last layer's, then the others'), then the record that marks it
        complete."""
        stats_path, record_path = self._paths(key)
        try:
            stats.save(stats_path)
            for name, part in (layers or {}).items():
                part.save(self._layer_path(stats_path, name))
            atomic_write(record_path, json.dumps(record, indent=1))
        except OSError as exc:  # a cache that cannot be written costs a re-extraction later, not this candidate
            warnings.warn(f"hf-emms could not write the statistics cache entry {key[:12]} under {self.root} "
                          f"({type(exc).__name__}: {exc}); the ranking goes on, and a later run extracts this "
                          "candidate again. Free disk space or choose another cache_dir.", stacklevel=2)

    @staticmethod
    def _layer_path(stats_path: Path, name: str) -> Path:
        return stats_path.with_name(f"{stats_path.stem}.layer-{name}.safetensors")
