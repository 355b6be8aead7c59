"""Independent solves side by side on the CPU's cores, one thread each.

A candidate's layers are scored independently (``layerwise.py``), and most of each solve is LAPACK on D1 x D1
matrices (five fold eigensystems). On the CPU, torch splits one eigendecomposition over its threads poorly: measured
on this project's 2-core machine (float64 Grams, ten eigendecompositions, seconds), D1 = 384: 0.100 on one thread,
0.076 on two, 0.057 as two one-thread calls side by side; D1 = 768: 0.626 / 0.374 / 0.323; D1 = 1024: 1.47 / 0.80
/ 0.77. Running whole solves side by side, one thread each, also overlaps their small numpy steps.

Each solve runs entirely on one thread, so its arithmetic (and its result, to the last bit) does not depend on which
worker ran it or when. A solve on a GPU, or with one thread, runs in the caller's thread as before. While the solves
run, torch has one thread (a global setting): with ``RunSpec.overlap`` the next candidate's forward pass, running
beside them, gets one thread for that time too; two rankings solving at once in one process share the setting, and
the thread count from before the first is restored when the last ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["side_by_side"]

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(fn: Callable[[T], R], items: Sequence[T], *, device: torch.device | None) -> list[R]:
    """``[fn(item) for item in items]``, on min(torch threads, len(items)) worker threads of one torch thread each
    when ``device`` is the CPU and torch has more than one thread; in order, the first exception raised."""
    if device is None or device.type != "cpu" or len(items) < 2:
        return [fn(item) for item in items]
    with _one_torch_thread() as threads:
        if threads < 2:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(threads, len(items)), thread_name_prefix="hf-emms-solve") as pool:
            return list(pool.map(fn, items))


_LOCK = threading.Lock()
_HELD = {"count": 0, "threads": 1}  # solves running side by side in this process, and torch's threads before them


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[int]:
    """torch on one thread while any caller is inside (the setting is global: two rankings of one process, e.g. two
    Space visitors, may solve at once), and its thread count from before the first one entered back when the last
    leaves. Yields that count (how many workers the machine's threads allow)."""
    with _LOCK:
        if _HELD["count"] == 0:
            _HELD["threads"] = torch.get_num_threads()
            torch.set_num_threads(1)  # every worker's LAPACK and BLAS calls on their own thread
        _HELD["count"] += 1
        threads = _HELD["threads"]
    try:
        yield threads
    finally:
        with _LOCK:
            _HELD["count"] -= 1
            if _HELD["count"] == 0:
                torch.set_num_threads(_HELD["threads"])
