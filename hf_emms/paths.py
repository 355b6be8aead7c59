"""Where hf-emms keeps what it caches (statistics, F-labels, result records, zoo sources): one rule for all."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "HF_EMMS_CACHE"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` when given, else ``$HF_EMMS_CACHE``, else ``$XDG_CACHE_HOME/hf_emms``, else ``~/.cache/hf_emms``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "hf_emms"
