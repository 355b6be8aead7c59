"""Independent solves side by side on the CPU's cores, one thread each.

A candidate's layers are scored independently (``layerwise.py``), and most of each solve is LAPACK on D1 x D1
matrices (five fold eigensystems). On the CPU, torch splits one eigendecomposition over its threads poorly: measured
on this project's 2-core machine (float64 Grams, ten eigendecompositions, seconds), D1 = 384: 0.100 on one thread,
0.076 on two, 0.057 as two one-thread calls side by side; D1 = 768: 0.626 / 0.374 / 0.323; D1 = 1024: 1.47 / 0.80
/ 0.77. Running whole solves side by side, one thread each, also overlaps their small numpy steps.

Each solve runs entirely on one thread, so its arithmetic (and its result, to the last bit) does not depend on which
worker ran it or when. A solve on a GPU, or with one thread, runs in the caller's thread as before. While the solves
run, torch has one thread (a global setting): with ``RunSpec.overlap`` the next candidate's forward pass, running
beside them, gets one thread for that time too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["side_by_side"]

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(fn: Callable[[T], R], items: Sequence[T], *, device: torch.device | None) -> list[R]:
    """``[fn(item) for item in items]``, on min(torch threads, len(items)) worker threads of one torch thread each
    when ``device`` is the CPU and torch has more than one thread; in order, the first exception raised."""
    threads = torch.get_num_threads()
    if device is None or device.type != "cpu" or threads < 2 or len(items) < 2:
        return [fn(item) for item in items]
    torch.set_num_threads(1)  # global: every worker's LAPACK and BLAS calls run on their own thread
    try:
        with ThreadPoolExecutor(max_workers=min(threads, len(items)), thread_name_prefix="hf-emms-solve") as pool:
            return list(pool.map(fn, items))
    finally:
        torch.set_num_threads(threads)
