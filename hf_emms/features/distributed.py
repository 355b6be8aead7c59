"""The distributed details of extraction, behind a few functions: which process this is, which device it gets, and
the small collectives that keep every process's decisions the same.

Under ``accelerate launch`` or ``torchrun`` (``torch.distributed`` initialised by accelerate) every process calls the
same code; statistics are summed with :meth:`hf_emms.solver.FeatureStats.all_reduce`. In a plain run these answer
(0, 1), the CPU or the one GPU, and the collectives are not called. On CPU-only machines set ``ACCELERATE_USE_CPU=1``
so that processes see each other (see the project's HF notes).
"""

from __future__ import annotations

from typing import Any

import torch

from ..solver.stats import collective_device

__all__ = ["accelerate_state", "all_ranks_agree", "first_across", "process_rank", "resolve_device", "sum_across"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device``, or the one ``accelerate`` assigns this process (``cuda:LOCAL_RANK`` on GPUs, else CPU)."""
    return torch.device(device) if device is not None else accelerate_state().device


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process: from ``accelerate`` (which sets up ``torch.distributed`` when launched
    by ``accelerate launch`` or ``torchrun``), (0, 1) in a plain run."""
    state = accelerate_state()
    return state.process_index, state.num_processes


def accelerate_state() -> Any:
    """accelerate's process state. ``ACCELERATE_USE_CPU=1`` makes CPU processes one job (as ``Accelerator`` reads it;
    ``PartialState`` alone would leave each process on its own)."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def all_ranks_agree(flag: bool, world_size: int) -> bool:
    """True when ``flag`` holds on every process (a cache hit must be one on all of them, or all recompute)."""
    if world_size == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([int(flag)], device=collective_device(dist))
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def sum_across(value: int) -> int:
    """``value`` summed over every process."""
    import torch.distributed as dist

    t = torch.tensor([value], device=collective_device(dist))
    dist.all_reduce(t)
    return int(t.item())


def first_across(value: Any) -> Any:
    """The first non-None ``value`` across processes, in rank order (e.g. the pooling chosen by the first process
    that saw a batch: all choose alike, but one may have had no rows)."""
    import torch.distributed as dist

    chosen: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(chosen, value)
    return next(v for v in chosen if v is not None)
