"""Ranking agreement in numpy (the recall package needs no scipy): weighted Kendall tau and top-k recall.

:func:`weighted_tau` is the statistic of ``scipy.stats.weightedtau(x, y)`` with its defaults (hyperbolic weigher
1/(r+1), additive pair weights, rank=True: the mean of the values obtained ranking by x and by y), the one
``benchmarks/quality.py`` reports; ``tests/test_recall.py`` checks that the two agree on data without ties.
"""

from __future__ import annotations

import numpy as np

__all__ = ["top_k_recall", "weighted_tau"]


def _tau_ranked_by(a: np.ndarray, b: np.ndarray) -> float:
    """Vigna's weighted tau with element weights 1/(r+1), r the rank by decreasing (a, b) lexicographically."""
    n = len(a)
    order = np.lexsort((-b, -a))  # decreasing a, ties broken by decreasing b
    rank = np.empty(n, int)
    rank[order] = np.arange(n)
    w = 1.0 / (rank + 1.0)
    pair = w[:, None] + w[None, :]  # additive pair weights
    da, db = np.sign(a[:, None] - a[None, :]), np.sign(b[:, None] - b[None, :])
    upper = np.triu(np.ones((n, n), bool), 1)
    num = (pair * da * db)[upper].sum()
    den = np.sqrt((pair * (da != 0))[upper].sum() * (pair * (db != 0))[upper].sum())
    return float(num / den) if den > 0 else float("nan")


def weighted_tau(truth: np.ndarray, score: np.ndarray) -> float:
    """Weighted Kendall tau between ``truth`` (n,) and ``score`` (n,) over pairs where both are finite, in [-1, 1].

    O(n^2) memory and time: meant for the few hundred models of a history, not for the Hub.
    """
    truth, score = np.asarray(truth, float), np.asarray(score, float)
    ok = np.isfinite(truth) & np.isfinite(score)
    if ok.sum() < 2:
        return float("nan")
    x, y = truth[ok], score[ok]
    return 0.5 * (_tau_ranked_by(x, y) + _tau_ranked_by(y, x))


def top_k_recall(truth: np.ndarray, score: np.ndarray, *, true_k: int = 3, k: int = 10) -> float:
    """Share of the ``true_k`` best by ``truth`` that are among the ``k`` best by ``score`` (finite pairs only)."""
    truth, score = np.asarray(truth, float), np.asarray(score, float)
    ok = np.flatnonzero(np.isfinite(truth) & np.isfinite(score))
    if len(ok) == 0:
        return float("nan")
    best = set(ok[np.argsort(-truth[ok], kind="stable")[:true_k]])
    shortlisted = set(ok[np.argsort(-score[ok], kind="stable")[:k]])
    return len(best & shortlisted) / len(best)
