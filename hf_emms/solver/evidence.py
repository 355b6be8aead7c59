"""LogME: the log marginal evidence of a Bayesian linear model on the features (You et al., ICML 2021).

For one target y (N) and features F (N x D), with prior w ~ N(0, alpha^-1 I) and noise y ~ N(F w, beta^-1 I),
the evidence is (paper, Eq. 2)

    log p(y | F, alpha, beta) = D/2 log alpha + N/2 log beta - N/2 log 2 pi
                                - beta/2 |y - F m|^2 - alpha/2 |m|^2 - 1/2 log det(alpha I + beta F^T F),
    m = beta (alpha I + beta F^T F)^-1 F^T y,

maximised over alpha, beta by MacKay's fixed point (the 2021 follow-up, arXiv 2110.10545, Alg. 2):
with F^T F = V diag(s) V^T, x_i = v_i^T F^T y / sqrt(s_i) (y's coordinates along the left singular
vectors) and t = alpha / beta,

    gamma = sum_i s_i / (s_i + t),   |m|^2 = sum_i s_i x_i^2 / (s_i + t)^2,
    |y - F m|^2 = sum_i x_i^2 t^2 / (s_i + t)^2 + (|y|^2 - sum_i x_i^2),
    alpha <- gamma / |m|^2,          beta <- (N - gamma) / |y - F m|^2.

Everything is a function of F^T F, F^T y and |y|^2: sums over samples, so LogME comes from the same
statistics as EMMS. As in the published code, features and targets are used raw (no centring, no
scaling), classification uses one-vs-rest indicator targets, and the score is the evidence per sample
averaged over targets. Higher is better.

Two deliberate differences from the published code: the iteration runs to convergence (relative change
of t below 1e-10) rather than at most 11 steps to 1e-3; and log det keeps the (D - r) log alpha of the
directions F does not span (rank r < D, e.g. N < D), which the published code drops.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .spectrum import as_tables, eigh_psd
from .stats import FeatureStats

_MAX_STEPS = 1000
_TOL = 1e-10


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
    gram = c.scatter_x + n * np.outer(mu, mu)  # F^T F, raw
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
    return float(np.mean(_evidence(gram, fty, yy, n)))


def _evidence(gram: np.ndarray, fty: np.ndarray, yy: np.ndarray, n: int) -> np.ndarray:
    """Maximised log evidence per sample of each target (column of ``fty``), vectorised over targets.

    When the data prefer no signal at all, the fixed point runs off to alpha -> infinity (w = 0); the
    evidence then tends to its supremum 1/2 (log(N / |y|^2) - log 2 pi - 1) (beta = N / |y|^2), which
    is compared with the fixed point's value for every target.
    """
    if np.any(yy <= 0):
        raise InvalidInputError("a LogME target is zero for every sample: its evidence is unbounded. Drop that column.")
    d = gram.shape[0]
    s, v = eigh_psd(gram, max_rank=n)
    x2 = (v.T @ fty) ** 2 / s[:, None]  # (r, T): squared coordinates along the left singular vectors
    outside = np.maximum(yy - x2.sum(0), 0.0)  # |y|^2 outside the span of F
    floor = 1e-12 * yy  # keeps a target that F fits exactly finite
    s = s[:, None]

    def moments(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        gamma = (s / (s + t)).sum(0)
        m2 = np.maximum((s * x2 / (s + t) ** 2).sum(0), floor)
        res2 = np.maximum((x2 * t**2 / (s + t) ** 2).sum(0) + outside, floor)
        return gamma, m2, res2

    alpha, beta = np.ones_like(yy), np.ones_like(yy)
    active = np.ones(yy.shape, bool)
    for _ in range(_MAX_STEPS):
        t = alpha / beta
        gamma, m2, res2 = moments(t)
        new_alpha, new_beta = gamma / m2, (n - gamma) / res2
        alpha, beta = np.where(active, new_alpha, alpha), np.where(active, new_beta, beta)
        t_new = alpha / beta
        # Converged, or running off to alpha = infinity (handled by the limit below).
        active &= (np.abs(t_new - t) > _TOL * t) & (t_new < 1e12 * (s.max() if s.size else 1.0))
        if not active.any():
            break
    gamma, m2, res2 = moments(alpha / beta)
    log_det = np.log(alpha + beta * s).sum(0) + (d - s.shape[0]) * np.log(alpha)
    evidence = (
        d / 2 * np.log(alpha) + n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi)
        - beta / 2 * res2 - alpha / 2 * m2 - log_det / 2
    ) / n
    no_signal = 0.5 * (np.log(n / yy) - np.log(2 * np.pi) - 1)
    return np.maximum(evidence, no_signal)
