"""Quiet checkpoint loading: transformers' load report and its "Loading weights" / "Writing model shards" bars off
while hf-emms loads (or, building its zoo, saves) a model.

hf-emms loads checkpoints with ``AutoModel`` on purpose, so a checkpoint's task head (``lm_head``, ``cls.*``, a
classifier) is reported by transformers as UNEXPECTED weights in a table per candidate, which reads like a fault to
someone ranking 20 checkpoints. What does matter is checked by hf-emms itself and given as a reason: most weights
missing (``features.candidate``), sizes that do not match (transformers raises). Warnings at error level still show.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["quiet_loading"]

_lock = threading.Lock()
_depth = 0  # blocks open, in any thread: the settings are process-wide, restored when the last one closes
_saved: tuple[int, bool] | None = None


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' warnings and its weight-loading bar off for the block, and as they were after the last block
    still open (safe when candidates load on a background thread while the main thread loads another)."""
    global _depth, _saved
    import transformers.utils.logging as tf_logging

    with _lock:
        if _depth == 0:
            _saved = (tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled())
            tf_logging.set_verbosity_error()
            tf_logging.disable_progress_bar()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                verbosity, bar_on = _saved
                tf_logging.set_verbosity(verbosity)
                if bar_on:
                    tf_logging.enable_progress_bar()
                _saved = None
