"""Optimisation over the probability simplex: the exact K x K quadratic of EMMS, and sparsemax.

For fixed F-label weights lambda, the best linear map from features to F-labels leaves the residual
lambda^T M lambda (``scores.py``), with M a K x K positive semi-definite matrix. The weights then solve

    min_lambda  lambda^T M lambda   subject to  lambda >= 0,  sum(lambda) = 1.            (QP)

K is the number of F-label encoders (3 in the paper), so we solve (QP) exactly by active sets:
the optimum lies in the relative interior of some face {lambda_i = 0 for i not in S}, where it is a
stationary point of the equality-constrained problem on S, i.e. solves the KKT system

    [2 M_SS  1] [lambda_S]   [0]
    [1^T     0] [   nu   ] = [1].

Enumerating the 2^K - 1 supports and keeping the feasible solution of least objective gives the
global optimum (the problem is convex; an extreme point of the optimal set has a support whose KKT
system pins lambda_S down uniquely). K <= 12 keeps this below a few thousand 13 x 13 solves.
"""

from __future__ import annotations

from functools import cache
from itertools import combinations

import numpy as np

from ..errors import InvalidInputError

MAX_K = 12


def simplex_qp(m: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact minimiser of ``lam @ m @ lam`` over the probability simplex.

    Parameters
    ----------
    m : ndarray of shape (K, K)
        Symmetric positive semi-definite matrix.

    Returns
    -------
    lam : ndarray of shape (K,)
        Optimal weights (non-negative, summing to one); among optimal supports the smallest wins.
    value : float
        ``lam @ m @ lam`` at the optimum.
    """
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0 or not np.isfinite(m).all():
        raise InvalidInputError(f"simplex_qp needs a finite, square (K, K) matrix with K >= 1; got shape {m.shape}.")
    k = m.shape[0]
    if k > MAX_K:
        raise InvalidInputError(f"the exact simplex solver takes at most {MAX_K} F-labels; got K = {k}.")
    # The optimiser does not depend on the scale of m; unit scale keeps the KKT systems well conditioned.
    scale = max(float(np.abs(m).max()), np.finfo(float).tiny)
    m = (m + m.T) / (2 * scale)
    best, best_value = None, np.inf
    for s in _supports(k):
        size = len(s)
        kkt = np.zeros((size + 1, size + 1))
        kkt[:size, :size] = 2 * m[s][:, s]
        kkt[:size, size] = kkt[size, :size] = 1.0
        rhs = np.zeros(size + 1)
        rhs[size] = 1.0
        try:
            sol = np.linalg.solve(kkt, rhs)[:size]
        except np.linalg.LinAlgError:  # singular: M_SS is flat along the face; any solution will do
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]
        if sol.min() < -1e-10 or abs(sol.sum() - 1) > 1e-8:
            continue  # outside the simplex, or the KKT system was inconsistent
        lam = np.zeros(k)
        lam[s] = np.clip(sol, 0, None)
        lam /= lam.sum()
        value = float(lam @ m @ lam)
        # Strictly better by more than rounding: ties keep the smaller support found first.
        if value < best_value - 1e-13:
            best, best_value = lam, value
    assert best is not None  # a single-vertex support is always feasible
    return best, best_value * scale


@cache
def _supports(k: int) -> list[list[int]]:
    """Every non-empty subset of range(k), smallest first."""
    return [list(c) for size in range(1, k + 1) for c in combinations(range(k), size)]


def sparsemax(z: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``z`` (shape (K,)) onto the probability simplex (Martins & Astudillo, 2016).

    With z sorted decreasingly, k(z) = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)}, the threshold is
    tau = (sum_{j<=k(z)} z_(j) - 1) / k(z), and the projection is max(z - tau, 0).
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 1 or z.size == 0 or not np.isfinite(z).all():
        raise InvalidInputError(f"sparsemax needs a finite 1-D vector with at least one entry; got shape {z.shape}.")
    zs = np.sort(z)[::-1]
    cum = np.cumsum(zs)
    ks = np.arange(1, z.size + 1)
    k_z = ks[1 + ks * zs > cum][-1]
    tau = (cum[k_z - 1] - 1) / k_z
    return np.maximum(z - tau, 0.0)
