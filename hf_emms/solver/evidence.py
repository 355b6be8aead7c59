"""LogME: the log marginal evidence of a Bayesian linear model on the features (You et al., ICML 2021).

For one target y (N) and features F (N x D), with prior w ~ N(0, alpha^-1 I) and noise y ~ N(F w, beta^-1 I),
the evidence is (paper, Eq. 2)

    log p(y | F, alpha, beta) = D/2 log alpha + N/2 log beta - N/2 log 2 pi
                                - beta/2 |y - F m|^2 - alpha/2 |m|^2 - 1/2 log det(alpha I + beta F^T F),
    m = beta (alpha I + beta F^T F)^-1 F^T y,

maximised over alpha and beta. With F^T F = V diag(s) V^T (rank r), x_i = v_i^T F^T y / sqrt(s_i)
(y's coordinates along the left singular vectors) and t = alpha / beta, the residual and weight terms
combine into |y - F m|^2 + t |m|^2 = sum_i x_i^2 t / (s_i + t) + (|y|^2 - sum_i x_i^2), the best beta
for a given t is N over that, and the evidence becomes a function of t alone:

    L(t) = r/2 log t - 1/2 sum_i log(t + s_i) - N/2 log(sum_i x_i^2 t / (s_i + t) + |y|^2 - sum_i x_i^2)
           + N/2 log N - N/2 (1 + log 2 pi).

MacKay's fixed point of the 2021 follow-up (arXiv 2110.10545, Alg. 2) finds a stationary point of the
same function; we take its global maximum over t instead (a log grid over 20 decades, then golden
section), which is the same number when the fixed point converges to the right stationary point, and
the right number when it does not (features far from the origin, N < D).

Everything is a function of F^T F, F^T y and |y|^2: sums over samples, so LogME comes from the same
statistics as EMMS. As in the published code, features and targets are used raw (no centring, no
scaling), classification uses one-vs-rest indicator targets, and the score is the evidence per sample
averaged over targets. Higher is better.

A deliberate difference from the published code, besides the global maximisation: log det keeps the
(D - r) log alpha of the directions F does not span (rank r < D, e.g. N < D); the published code drops
it. Where both are right (full rank, a well-behaved fixed point) they agree to about 1e-8.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError
from .line_search import grid_golden_max
from .spectrum import as_tables, symmetric_eigh
from .stats import FeatureStats

_GRID = np.linspace(-14.0, 6.0, 81)  # log10 of t relative to the largest eigenvalue of F^T F
_GOLDEN_STEPS = 40


def logme(stats: FeatureStats, class_embeddings: Any = None) -> float:
    """LogME of the features for the statistics' targets (higher is better).

    Parameters
    ----------
    stats : FeatureStats
        Class-label or per-sample F-label statistics.
    class_embeddings : array-like of shape (C, D2), (K, C, D2) or a sequence of K (C, D2) arrays, optional
        For class-label statistics: score regression on the F-label columns E_k[y] instead of the
        one-vs-rest class indicators (the default, the published classification LogME).

    Returns
    -------
    float
        Mean over targets of the maximised log evidence per sample.
    """
    c = stats.centered()
    n, mu = c.n, c.mean_x
    if n < 2:
        raise InvalidInputError(f"LogME needs at least 2 samples; got N = {n}.")
    s, v = _raw_gram_eigh(c.scatter_x, mu, n)
    if c.class_count is not None:
        sums = c.class_scatter + c.class_count[:, None] * mu  # per class: sum of raw features (C, D1)
        present = c.class_count > 0
        if present.sum() < 2:
            raise InvalidInputError("only one class is present; LogME needs at least two.")
        if class_embeddings is None:  # one-vs-rest indicators: F^T y_c = class sum, |y_c|^2 = n_c
            fty, yy = sums[present].T, c.class_count[present]
        else:
            e = as_tables(class_embeddings, c.class_count.shape[0])  # (K, C, D2)
            e = e.transpose(1, 0, 2).reshape(e.shape[1], -1)  # (C, K * D2): one target per column
            fty, yy = sums.T @ e, c.class_count @ e**2
    else:
        if class_embeddings is not None:
            raise InvalidInputError("class_embeddings apply to class-label statistics, not per-sample F-labels.")
        d2, k = c.mean_y.shape
        fty = (c.cross + n * mu[:, None, None] * c.mean_y[None]).reshape(len(mu), d2 * k)
        yy = (np.einsum("jkk->jk", c.scatter_y) + n * c.mean_y**2).reshape(d2 * k)
    # A target that is 0 for every sample (e.g. a zero-padded embedding column) has unbounded evidence
    # and says nothing about the features: leave it out.
    used = yy > 0
    if not used.any():
        raise InvalidInputError("every LogME target is zero for every sample: there is nothing to explain.")
    return float(np.mean(_evidence(s, v, fty[:, used], yy[used], n)))


def _raw_gram_eigh(scatter: np.ndarray, mu: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of the raw Gram F^T F = S + N mu mu^T (S the centred scatter), without forming it.

    Forming it would bury the spread under the offset: with features at 1e4 x their spread, its
    entries are 1e8 times the small eigenvalues, which eigh then gets to only ~1e-8 relative. Instead,
    with S = U diag(e) U^T, F^T F = L^T L for L = [diag(sqrt(e)) U^T; sqrt(N) mu^T], and the SVD of L gives
    the eigenvalues (its squared singular values) to near full relative precision.
    """
    e, u = symmetric_eigh(scatter)
    factor = np.vstack([np.sqrt(np.maximum(e, 0))[:, None] * u.T, np.sqrt(n) * mu[None]])
    _, sv, vt = (t.numpy() for t in torch.linalg.svd(torch.from_numpy(factor), full_matrices=False))
    s = sv**2
    # Rounding in S is the noise floor: cut eigenvalues below it, and keep at most N (rank of N samples).
    keep = s > 10 * len(mu) * np.finfo(float).eps * max(e[-1], 0.0) + np.finfo(float).tiny
    keep[n:] = False
    return s[keep], vt[keep].T


def _evidence(s: np.ndarray, v: np.ndarray, fty: np.ndarray, yy: np.ndarray, n: int) -> np.ndarray:
    """Maximised log evidence per sample of each target (column of ``fty``), vectorised over targets;
    ``s``, ``v``: the non-zero eigenpairs of F^T F."""
    x2 = (v.T @ fty) ** 2 / s[:, None]  # (r, T): squared coordinates along the left singular vectors
    outside = np.maximum(yy - x2.sum(0), 0.0)  # |y|^2 outside the span of F
    s_col = s[:, None]
    const = n / 2 * np.log(n) - n / 2 * (1 + np.log(2 * np.pi))

    def profile(log_t: np.ndarray) -> np.ndarray:  # L(t) per sample, one t per target
        t = 10.0**log_t
        fit = (x2 * t / (s_col + t)).sum(0) + outside
        return (s.size / 2 * np.log(t) - np.log(t + s_col).sum(0) / 2 - n / 2 * np.log(fit) + const) / n

    scale = np.log10(s.max()) if s.size else 0.0
    _, best = grid_golden_max(profile, scale + _GRID, len(yy), _GOLDEN_STEPS)
    # t -> infinity (no signal: w = 0) is a limit, not a grid point.
    no_signal = 0.5 * (np.log(n / yy) - np.log(2 * np.pi) - 1)
    return np.maximum(best, no_signal)
