"""A zip of an image folder, unpacked once, safely, where ``datasets`` reads it right.

``load_dataset("imagefolder", data_files="data.zip")`` labels every image inside an archive with the name of the
folder that holds the archive, not the image's own subfolder, and then fails ("Invalid string class label ...";
huggingface/datasets#8419, open): the layout the Space asks visitors for, one subfolder per class, could not be read.
The archive is therefore unpacked into ``<cache>/archives/<content digest>/`` (reused while the zip is the same) and
read as a folder. Unpacking refuses members that would land outside that folder (absolute paths, ``..``) and archives
that would not fit on the disk; the folder appears complete or not at all (:func:`hf_emms._io.atomic_dir`).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from .._io import atomic_dir
from ..errors import InvalidInputError
from ..paths import data_entry

_SPARE_BYTES = 1 << 30  # unpacking must leave this much of the disk free


def unpacked(archive: Path, digest: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding ``archive``'s members, unpacked on first use into the cache (``cache_dir``, default the
    hf-emms cache; ``digest``: the archive's content digest, which names the folder).

    Raises
    ------
    InvalidInputError
        Not a zip archive, a member that would escape the folder, or too little disk space.
    """
    target = data_entry("archives", digest, cache_dir)
    if target.is_dir():
        return target
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            for m in members:
                parts = PurePosixPath(m.filename.replace("\\", "/")).parts
                if m.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    raise InvalidInputError(f"{archive.name} holds {m.filename!r}, a path outside the archive's "
                                            "folder: repack it with relative paths.")
            size = sum(m.file_size for m in members)
            target.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(target.parent).free
            if size + _SPARE_BYTES > free:
                raise InvalidInputError(f"{archive.name} unpacks to {size / 2**30:.1f} GiB and {target.parent} has "
                                        f"{free / 2**30:.1f} GiB free: free some space or unpack it yourself and "
                                        "give the folder.")

            def fill(folder: Path) -> None:
                for m in members:
                    zf.extract(m, folder)

            try:
                return atomic_dir(target, fill)
            except OSError:
                if target.is_dir():  # another process unpacked the same archive meanwhile
                    return target
                raise
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"{archive.name} is not a readable zip archive ({exc}).") from None
