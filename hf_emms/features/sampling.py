"""Which samples are used: an optional stratified, seeded subsample, and each process's shard of it."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError


def subsample(n: int, max_samples: int | None, *, labels: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Row indices to use, sorted: all ``n`` rows, or a seeded subsample of ``max_samples`` of them.

    With class ``labels`` the subsample is stratified: each class keeps its share of the rows (largest-remainder
    rounding, at least one row per class while the budget allows), so that rare classes are not lost.

    Parameters
    ----------
    n : int
        Rows in the dataset.
    max_samples : int, optional
        Budget; None or >= n keeps every row.
    labels : ndarray of int of shape (n,), optional
        Class ids to stratify by.
    seed : int
        The same seed and inputs give the same indices on every machine.

    Returns
    -------
    ndarray of int64 of shape (min(n, max_samples),)
    """
    if max_samples is not None and (not isinstance(max_samples, (int, np.integer)) or max_samples < 2):
        raise InvalidInputError(f"max_samples must be an integer >= 2 (or None for all rows); got {max_samples!r}.")
    if max_samples is None or max_samples >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, size=max_samples, replace=False)).astype(np.int64)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = _allocate(counts, max_samples)
    picked = [
        rng.choice(np.flatnonzero(inverse == c), size=q, replace=False) for c, q in enumerate(quota) if q > 0
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _allocate(counts: np.ndarray, budget: int) -> np.ndarray:
    """Per-class sample counts summing to ``budget``: proportional, largest remainders first, a floor of one per class
    while the budget covers every class, never more than a class has."""
    share = counts * budget / counts.sum()
    quota = np.floor(share).astype(np.int64)
    if budget >= len(counts):
        quota = np.maximum(quota, 1)
    quota = np.minimum(quota, counts)
    # Give or take the difference by remainder: largest remainders gain a row, smallest lose one.
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    while quota.sum() < budget:
        room = order[quota[order] < counts[order]]
        quota[room[: budget - quota.sum()]] += 1
    while quota.sum() > budget:
        spare = order[::-1][quota[order[::-1]] > 1]
        quota[spare[: quota.sum() - budget]] -= 1
    return quota


def shard(rows: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """The contiguous part of ``rows`` that process ``rank`` of ``world_size`` handles (sizes differ by at most one).

    Contiguous, so that each process reads one range of rows; every process orders its own shard by length
    afterwards, which keeps the work balanced (sorting first would give one process all the long texts).
    """
    bounds = np.linspace(0, len(rows), world_size + 1).round().astype(np.int64)
    return rows[bounds[rank] : bounds[rank + 1]]
