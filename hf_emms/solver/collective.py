"""``torch.distributed`` helpers of the statistics: where collectives run, and the all-reduce of ``FeatureStats``.

Sums taken about different shifts cannot be added (``stats.py``), so the all-reduce first agrees on one common
shift: every rank contributes N_r c_r + S1_r, the sum is broadcast from rank 0 (not every backend and algorithm
promises bit-identical all-reduce results on every rank), and each rank re-bases its sums to that global mean
with the exact identities of :func:`hf_emms.solver.shifts.move_sums` before a plain all-reduce sum. Class-indexed
tables are zero-padded to the largest class count of any rank first, so ranks that saw different class ids add
rows of the same class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .inputs import check_stats_memory

if TYPE_CHECKING:
    from .stats import FeatureStats

_F64 = torch.float64


def collective_device(dist: Any) -> torch.device:
    """Where tensors must live for the process group's collectives (NCCL: the current CUDA device)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_stats(stats: "FeatureStats") -> "FeatureStats":
    """Sum the statistics of every ``torch.distributed`` rank into ``stats``, in place (see
    :meth:`FeatureStats.all_reduce`); a no-op without a process group or with one process.

    Collective: every rank must call it, also ranks that saw no samples. Every rank raises the same error
    (from the same gathered headers) when the ranks' statistics cannot be merged.
    """
    import torch.distributed as dist

    from .kernels import _SHIFTS, _check_compatible, _pad_classes

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return stats
    headers: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(headers, stats._header())
    filled = [h for h in headers if h["n"] > 0]
    if not filled:
        return stats
    for h in filled[1:]:
        _check_compatible(filled[0], h)
    n_classes = max(h["n_classes"] or 0 for h in filled)
    if n_classes:  # the padded class tables, on every rank alike
        shapes = filled[0]["shapes"]
        check_stats_memory(shapes["sum_x"][0], shapes["fold_count"][0], n_classes=n_classes,
                           n_source=shapes["head_soft"][1] if "head_soft" in shapes else 0)
    home, device = stats.device, collective_device(dist)  # NCCL reduces CUDA tensors only
    if stats.n == 0:
        stats.kind, stats.folds = filled[0]["kind"], filled[0]["shapes"]["fold_count"][0]
        stats._t = {name: torch.zeros(shape, dtype=_F64) for name, shape in filled[0]["shapes"].items()}
    stats._t = {name: t.to(device) for name, t in stats._t.items()}
    n_total = sum(h["n"] for h in headers)
    # One shift for all ranks: the global mean. Rank 0 broadcasts its copy because not every
    # backend and algorithm promises bit-identical all-reduce results on every rank.
    shifts = {}
    for name, total in zip(_SHIFTS, ("sum_x", "sum_y")):
        if name in stats._t:
            s = stats.n * stats._t[name] + stats._t[total]
            dist.all_reduce(s)
            dist.broadcast(s, src=0)
            shifts[name] = s / n_total
    sums = _pad_classes(stats._reshifted(shifts), n_classes)
    for name in sorted(sums):  # the same order on every rank
        dist.all_reduce(sums[name])
    stats._t = {name: t.to(home or device) for name, t in {**shifts, **sums}.items()}
    stats.n = n_total
    return stats
