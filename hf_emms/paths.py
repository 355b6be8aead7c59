"""Where hf-emms keeps what it caches (statistics, F-labels, result records, zoo sources): one rule for all."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import InvalidInputError

CACHE_ENV = "HF_EMMS_CACHE"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` when given, else ``$HF_EMMS_CACHE``, else ``$XDG_CACHE_HOME/hf_emms``, else ``~/.cache/hf_emms``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "hf_emms"


# What each part of the cache holds, and what deleting it costs (``hf-emms cache`` prints and clears them).
CACHE_PARTS = {
    "stats": "feature statistics per candidate, dataset and layer: a later re-score needs the forward passes again",
    "labels": "F-label embeddings: encoded again by the next ranking that needs them",
    "results": "finished rows of past rankings: a repeated or interrupted ranking computes them again",
    "archives": "unpacked image zips: unpacked again when read",
    "tables": "datasets' Arrow copies of local data files (CSV, JSON, parquet, image folders): written again when read",
    "recall": "the recall transfer space: rebuild it with `hf-emms recall --build`",
    "digests": "remembered hashes of local checkpoint files: read again when a folder is next pinned",
    "zoo": "the demo's checkpoints: rebuilt from the installed packages by `hf-emms demo`",
    "zoo-sources": "checkpoints extracted from the installed packages: extracted again when the zoo is built",
    "quality-zoo": "the quality benchmark's checkpoints: rebuilt by `benchmarks/quality.py --build-zoo`",
}
_PART_PATHS = {"digests": "file_digests.json"}  # parts whose path is not their name
_WHOLE_FOLDERS = ("archives", "tables", "zoo", "zoo-sources", "quality-zoo")  # each top-level folder is one entry
_USED = ".used"  # touched in an archive's or a table's folder each time it is read: pruning by age spares it


def data_entry(part: str, digest: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of one local dataset's entry in ``part`` ("archives", "tables"), named by its content ``digest``,
    marked as used now when it exists (its files keep the time they were written; reading them changes nothing)."""
    folder = cache_root(cache_dir) / part / digest[:32]
    if folder.is_dir():
        with contextlib.suppress(OSError):  # a read-only cache is still read
            (folder / _USED).touch()
    return folder


def _entries(root: Path, name: str) -> dict[str, list[Path]]:
    """The files of a cache part grouped into entries: a top-level folder of the zoo-like parts and ``archives``
    is one entry; elsewhere the files sharing a name up to its first dot (a statistics entry's record, statistics
    and layer files) are one."""
    part = root / _PART_PATHS.get(name, name)
    if part.is_file():
        return {part.name: [part]}
    groups: dict[str, list[Path]] = {}
    for path in sorted(p for p in part.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(part)
        key = relative.parts[0] if name in _WHOLE_FOLDERS else str(relative.parent / path.name.split(".")[0])
        groups.setdefault(key, []).append(path)
    return groups


def cache_usage(cache_dir: str | os.PathLike | None = None) -> dict[str, tuple[int, int]]:
    """Entries and bytes of each part of the cache that exists: ``{part: (entries, bytes)}``."""
    root = cache_root(cache_dir)
    usage = {}
    for name in CACHE_PARTS:
        if (root / _PART_PATHS.get(name, name)).exists():
            groups = _entries(root, name)
            usage[name] = (len(groups), sum(p.stat().st_size for files in groups.values() for p in files))
    return usage


def _check_dedicated(root: Path, *, default: bool) -> None:
    """Refuse to clear parts of a folder that holds more than the cache (``--cache-dir ~/project``): its own
    ``results/`` or ``stats/`` would be deleted as cache parts. The default root is hf-emms's by its name."""
    if default or not root.is_dir():
        return
    known = {_PART_PATHS.get(name, name) for name in CACHE_PARTS}
    other = sorted(p.name for p in root.iterdir() if p.name not in known and not p.name.startswith("."))
    if other:
        shown = ", ".join(other[:4]) + (", ..." if len(other) > 4 else "")
        raise InvalidInputError(
            f"{root} holds more than an hf-emms cache ({shown}): nothing was deleted, since its folders named like "
            f"cache parts may be yours. Clear only a folder that holds the cache alone (the --cache-dir rankings "
            "used), or delete the entries by hand."
        )


def clear_cache(parts: list[str], *, cache_dir: str | os.PathLike | None = None,
                older_than_days: float | None = None) -> tuple[int, int]:
    """Delete the entries of ``parts`` (all of them, or those not written for ``older_than_days``): the entries and
    bytes removed. A statistics entry's record goes first, so an entry half deleted is a miss, never a wrong hit."""
    import time

    root, removed, freed = cache_root(cache_dir), 0, 0
    _check_dedicated(root, default=cache_dir is None and not os.environ.get(CACHE_ENV))
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    for name in parts:
        if not (root / _PART_PATHS.get(name, name)).exists():
            continue
        for files in _entries(root, name).values():
            stats = [p.stat() for p in files]
            if cutoff is not None and max(s.st_mtime for s in stats) > cutoff:
                continue
            for path in sorted(files, key=lambda p: p.suffix != ".json"):
                path.unlink(missing_ok=True)
            removed, freed = removed + 1, freed + sum(s.st_size for s in stats)
        if (root / name).is_dir():  # folders left empty (an archive's tree, a statistics shard's prefix)
            for folder in sorted((p for p in (root / name).rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                if not any(folder.iterdir()):
                    folder.rmdir()
    return removed, freed
