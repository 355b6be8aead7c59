"""Atomic file writes: a file appears complete or not at all.

Every file hf-emms writes that someone may read back later (statistics, F-label shards, result records, rankings,
plots, the zoo's checkpoints) goes through :func:`atomic_write`: the content is written to a temporary file in the
same folder, flushed, then renamed onto the target. ``os.replace`` is atomic on POSIX and Windows within one
filesystem, so a reader (or a run that was killed half-way) never sees half a file, and a failed write leaves
nothing behind.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_dir", "atomic_write"]


def atomic_write(path: str | os.PathLike, content: str | bytes | Callable[[str], object]) -> Path:
    """Write ``content`` to ``path`` atomically and return the path.

    Parameters
    ----------
    path : path
        The target; its folder is created when missing.
    content : str, bytes or callable
        Text (UTF-8), bytes, or a function called with the temporary file's path that writes the file itself
        (e.g. ``lambda tmp: safetensors.torch.save_file(tensors, tmp)`` or ``fig.savefig``).

    Notes
    -----
    The file gets the permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask), not the
    ``0o600`` of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if callable(content):
            os.close(fd)
            content(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(0o666 & ~_umask()))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_dir(path: str | os.PathLike, fill: Callable[[Path], object]) -> Path:
    """Build a folder with ``fill(tmp_folder)`` in a temporary sibling, then rename it onto ``path``.

    The folder appears complete or not at all; on failure the temporary folder is removed. ``path`` must not exist.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(tmp)
        os.chmod(tmp, stat.S_IMODE(0o777 & ~_umask()))
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


@functools.cache
def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: do it once, before any thread writes, and put it back
    os.umask(mask)
    return mask


_umask()
