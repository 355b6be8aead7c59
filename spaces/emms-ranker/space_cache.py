"""Keeping a hosted Space's disk bounded: before each ranking, what earlier rankings left and nobody has used for
``Limits.cache_days`` is deleted, from the hf-emms cache (statistics, F-labels, results, unpacked uploads and their
Arrow copies) and, where ``Limits.prune_hf_cache`` (on a Space), from the server's Hugging Face caches (the Hub
repos of candidates, encoders and datasets; ``datasets``' Arrow copies of Hub datasets).
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path

from hf_emms.errors import InvalidInputError
from hf_emms.paths import clear_cache
from space_limits import Limits

__all__ = ["prune_caches", "prune_hf_caches"]

_PARTS = ["stats", "labels", "results", "archives", "tables"]


def prune_caches(*, cache_dir: str | os.PathLike | None, limits: Limits) -> None:
    """The hf-emms cache's old entries, then (``limits.prune_hf_cache``) the Hugging Face caches'
    (:func:`prune_hf_caches`). A cache folder shared with other files is never pruned, and that is no visitor's
    error: a server warning."""
    try:
        clear_cache(_PARTS, cache_dir=cache_dir, older_than_days=limits.cache_days)
    except InvalidInputError as exc:
        warnings.warn(f"cache not pruned: {exc}", stacklevel=3)
    if limits.prune_hf_cache:
        prune_hf_caches(limits.cache_days)


def prune_hf_caches(older_than_days: float, *, hub_cache: str | os.PathLike | None = None,
                    datasets_cache: str | os.PathLike | None = None) -> tuple[int, int]:
    """Delete the Hub repos of ``huggingface_hub``'s cache not accessed nor modified for ``older_than_days`` (a
    repo's newest use, so a model every ranking reads stays), and the top-level folders of ``datasets``' cache (one
    per Hub dataset) whose newest file is that old. Returns the entries and bytes removed.

    ``hub_cache`` and ``datasets_cache`` default to the caches this process uses (``HF_HUB_CACHE``,
    ``HF_DATASETS_CACHE``).
    """
    import datasets
    from huggingface_hub import constants, scan_cache_dir

    cutoff = time.time() - older_than_days * 86400
    removed = freed = 0
    hub = Path(hub_cache or constants.HF_HUB_CACHE)
    if hub.is_dir():
        info = scan_cache_dir(hub)
        old = [r for r in info.repos if max(r.last_accessed, r.last_modified) < cutoff]
        if old:
            strategy = info.delete_revisions(*[rev.commit_hash for r in old for rev in r.revisions])
            strategy.execute()
            removed, freed = removed + len(old), freed + strategy.expected_freed_size
    tables = Path(datasets_cache or datasets.config.HF_DATASETS_CACHE)
    for folder in sorted(p for p in tables.iterdir() if p.is_dir()) if tables.is_dir() else ():
        files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
        stats = [p.stat() for p in files]
        if max((s.st_mtime for s in stats), default=folder.stat().st_mtime) < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed, freed = removed + 1, freed + sum(s.st_size for s in stats)
    return removed, freed
