"""Batches that shrink on out-of-memory: the first batch that does not fit is split in halves and retried, and the
smaller size is kept for the batches after it, so a run adapts to the device instead of failing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import OutOfMemoryError


class HalvingBatches:
    """Runs a function over a batch in chunks of at most :attr:`size` samples, halving :attr:`size` on out-of-memory.

    Parameters
    ----------
    size : int
        Starting chunk size (the DataLoader's batch size).
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, fn: Callable[[dict[str, torch.Tensor]], Any], inputs: dict[str, torch.Tensor]) -> list[Any]:
        """``fn`` applied to consecutive row chunks of ``inputs`` (tensors sharing their first dimension), in order.

        Raises
        ------
        OutOfMemoryError
            When a single sample does not fit.
        """
        total = len(next(iter(inputs.values())))
        outputs, lo = [], 0
        while lo < total:
            step = min(self.size, total - lo)
            try:
                outputs.append(fn({k: v[lo : lo + step] for k, v in inputs.items()}))
            except torch.OutOfMemoryError as e:
                if step == 1:
                    raise OutOfMemoryError(
                        "one sample does not fit in device memory: use a smaller max_length, dtype='bfloat16', "
                        "or a device with more memory."
                    ) from e
                self.size = step // 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()  # give the failed attempt's blocks back before retrying smaller
                continue
            lo += step
        return outputs
