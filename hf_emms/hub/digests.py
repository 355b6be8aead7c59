"""File digests remembered across runs: a local folder's pin costs a read of its weights once, not every ranking.

A local checkpoint folder is pinned by a content digest (sha256 of every file, :func:`~.local.candidate_from_folder`),
so that results and statistics are never reused for changed weights. Reading 0.8 GB of weights took 1.0 s per
ranking on a 2-core CPU and 2.2 s on a GPU host, each time the same folders were ranked. :func:`file_sha256` keeps
each file's sha256 in ``<cache>/file_digests.json`` with what ``os.stat`` says of the file (size, modification and
change times in ns, inode, device), and reads the file again whenever any of them differs: the rule git's index
uses to know a file unchanged. The change time (ctime) cannot be set back by a user: any write to the file, and any
``os.utime`` that restores its mtime, moves it. A file changed in the last two seconds is not remembered, since
timestamps tick coarsely and a second write within the same tick would go unseen.

The memo is an optimisation only. An unreadable or foreign memo file is ignored, and a memo that cannot be written
is skipped without a word (the digests are computed again next time). Writers in several processes may overwrite
each other's new entries: those files are read again later, never given a wrong digest. At most ``MAX_ENTRIES``
files are remembered (the oldest entries are dropped first).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .._io import atomic_write
from ..paths import cache_root

__all__ = ["MAX_ENTRIES", "file_sha256", "memo_path", "read_only"]

MAX_ENTRIES = 20_000
_RACY_NS = 2_000_000_000  # a file changed this recently is not remembered: timestamps tick coarsely (git's "racy" rule)
_FORMAT = "hf-emms/file-digests"
_CHUNK = 1 << 20
_LOCK = threading.Lock()
_WRITE = contextvars.ContextVar("hf_emms_digest_memo_write", default=True)


def memo_path() -> Path:
    """Where the digests are remembered: ``file_digests.json`` under the cache root (``$HF_EMMS_CACHE``, ...)."""
    return cache_root() / "file_digests.json"


@contextlib.contextmanager
def read_only() -> Iterator[None]:
    """Within this block remembered digests are used but no new one is written: for callers told to write no cache
    (``embed_labels(cache_dir=False)``)."""
    token = _WRITE.set(False)
    try:
        yield
    finally:
        _WRITE.reset(token)


def file_sha256(paths: list[Path]) -> dict[Path, str]:
    """The hex sha256 of each file's content, read only for the files the memo does not know unchanged.

    Parameters
    ----------
    paths : list of Path
        Files (symbolic links are followed, as a read would).

    Returns
    -------
    dict of Path to str
        Each given path's digest.

    Raises
    ------
    OSError
        A file that cannot be read or stat'ed (the caller words it).
    """
    with _LOCK:
        memo = _load(memo_path())
        out, new = {}, {}
        for path in paths:
            key, stamp = str(Path(path).resolve()), _stamp(path)
            known = memo.get(key)
            if known is not None and known[:-1] == stamp:
                out[path] = known[-1]
                continue
            digest = _read_sha256(path)
            settled = time.time_ns() - max(stamp[1], stamp[2]) > _RACY_NS
            if settled and _stamp(path) == stamp:  # not remembered if it changed while read, or may change unseen
                new[key] = [*stamp, digest]
            out[path] = digest
        if new and _WRITE.get():
            _save(memo_path(), new)
        return out


def _stamp(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _read_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _load(path: Path) -> dict[str, list]:
    """The memo's entries, ``{resolved path: [size, mtime_ns, ctime_ns, inode, device, sha256]}``; {} when absent,
    unreadable or not ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["files"] if data.get("format") == _FORMAT else {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}
    return {k: v for k, v in entries.items() if isinstance(v, list) and len(v) == 6 and isinstance(v[-1], str)}


def _save(path: Path, new: dict[str, list]) -> None:
    """Add ``new`` to the memo on disk (read again just before, to keep other processes' entries)."""
    entries = {k: v for k, v in _load(path).items() if k not in new}
    entries.update(new)  # newest last: trimming keeps the most recent
    files = dict(list(entries.items())[-MAX_ENTRIES:])
    try:
        atomic_write(path, json.dumps({"format": _FORMAT, "files": files}))
    except OSError:  # a read-only or full cache: the digests are computed again next time
        pass
