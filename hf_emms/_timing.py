"""Seconds per named phase of a run, for ``rank(..., profile=True)``: where every second of a candidate goes.

:class:`Phases` adds wall time to named phases; on a CUDA device the clock is read after the device's queued work is
done (kernels run asynchronously: the time of a launch is not the time of the work).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["Phases", "now"]


def now(device: Any = None) -> float:
    """``time.perf_counter()``, after ``device``'s queued kernels have finished when it is a CUDA device."""
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.synchronize(device)
    return time.perf_counter()


class Phases:
    """Seconds by phase name, in the order phases first appear.

    Examples
    --------
    >>> phases = Phases()
    >>> with phases("forward"):
    ...     model(**inputs)
    >>> phases.add("statistics", 0.25)
    >>> phases.as_dict()
    {'forward': ..., 'statistics': 0.25}
    """

    def __init__(self, device: Any = None) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self._last = now(device)

    def lap(self, name: str) -> None:
        """Add the time since the previous lap (or since this object was made) to ``name``: for straight-line code."""
        t = now(self.device)
        self.add(name, t - self._last)
        self._last = t

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = now(self.device)
        try:
            yield
        finally:
            self.add(name, now(self.device) - start)

    def merge(self, other: dict[str, float], prefix: str = "") -> None:
        """Add every phase of ``other`` (seconds by name), with ``prefix`` before each name."""
        for name, seconds in other.items():
            self.add(prefix + name, seconds)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def as_dict(self) -> dict[str, float]:
        return dict(self.seconds)
