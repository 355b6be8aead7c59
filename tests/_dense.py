"""Dense brute-force references: every formula written out on the N x D matrices, no statistics.

They are deliberately naive (two-pass centring, lstsq on the full data, N x N hat matrices, a
general-purpose optimiser over the simplex) so that they share no code and no shortcut with hf_emms.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar

CONSTANT = 1e-10  # relative spread below which a column counts as constant (hf_emms: 1e-10 too)


def standardize(a: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Columns to zero mean, unit variance (population std); constant columns to zero."""
    a = np.asarray(a, dtype=np.float64)
    mean = a.mean(0)
    c = a - mean
    std = np.sqrt((c**2).mean(0))
    keep = std > CONSTANT * np.sqrt(std**2 + mean**2)
    out = np.zeros_like(c)
    out[:, keep] = c[:, keep] / (std[keep] + offset)
    return out


def f_labels(label_embeddings: np.ndarray, offset: float = 0.0) -> list[np.ndarray]:
    """(N, D2, K) per-sample F-labels -> K standardised (N, D2) matrices."""
    return [standardize(label_embeddings[:, :, k], offset) for k in range(label_embeddings.shape[2])]


def residual_matrix(x: np.ndarray, ys: list[np.ndarray]) -> np.ndarray:
    """M_kl = <R_k, R_l> with R_k = Y_k - X lstsq(X, Y_k): the in-sample residual quadratic."""
    rs = [y - x @ np.linalg.lstsq(x, y, rcond=None)[0] for y in ys]
    return np.array([[np.sum(a * b) for b in rs] for a in rs])


def simplex_min(m: np.ndarray, starts: int = 8, seed: int = 0) -> float:
    """min lam^T m lam over the simplex by SLSQP from several starts (vertices, centre, random)."""
    k = m.shape[0]
    rng = np.random.default_rng(seed)
    x0s = [np.eye(k)[i] for i in range(k)] + [np.full(k, 1 / k)] + list(rng.dirichlet(np.ones(k), starts))
    best = min(float(m[i, i]) for i in range(k))
    for x0 in x0s:
        res = minimize(
            lambda lam: lam @ m @ lam, x0, jac=lambda lam: 2 * m @ lam, method="SLSQP",
            bounds=[(0, 1)] * k, constraints=[{"type": "eq", "fun": lambda lam: lam.sum() - 1}],
            options={"ftol": 1e-16, "maxiter": 500},
        )
        lam = np.clip(res.x, 0, None)
        lam /= lam.sum()
        best = min(best, float(lam @ m @ lam))
    return best


def ridge_gcv(x: np.ndarray, ys: list[np.ndarray], lam: np.ndarray, a: float) -> tuple[float, float]:
    """GCV of a ridge fit (penalty a, unpenalised intercept) of Y(lam) on x, with an N x N hat matrix.

    Returns (GCV / D2, tr H).
    """
    n, d1 = x.shape
    y = sum(l * yk for l, yk in zip(lam, ys))
    hat = np.full((n, n), 1.0 / n) + x @ np.linalg.pinv(x.T @ x + a * np.eye(d1), hermitian=True) @ x.T
    r = y - hat @ y
    tr = np.trace(hat)
    return n * np.sum(r**2) / (n - tr) ** 2 / y.shape[1], tr


def folds_of(n: int, folds: int = 5) -> np.ndarray:
    """The documented fold of sample id i: Knuth's multiplicative hash, (i * 2654435761) mod 2^32 mod F."""
    return (np.arange(n, dtype=np.int64) * 2654435761) % 2**32 % folds


def ridge_kfold(x: np.ndarray, label_embeddings: np.ndarray, alpha: float, folds: np.ndarray) -> np.ndarray:
    """M_kl = sum over held-out samples of <R_k, R_l>, R_k the residual of F-label k predicted by a ridge fit
    (penalty alpha * n_train, unpenalised intercept) on the other folds: features standardised with the
    training mean and std, F-labels centred at the training mean and scaled by their full-sample std
    (constant columns dropped). The K-fold residual of Y(lam) is lam^T M lam."""
    y_scale = label_embeddings.std(0)  # (D2, K)
    keep = y_scale > CONSTANT * np.sqrt(y_scale**2 + label_embeddings.mean(0) ** 2)
    y = np.where(keep, label_embeddings / np.where(keep, y_scale, 1), 0)  # (N, D2, K)
    n, d2, k = y.shape
    m = np.zeros((k, k))
    for f in np.unique(folds):
        tr, ho = folds != f, folds == f
        if tr.sum() < 2:
            continue
        mean, std = x[tr].mean(0), x[tr].std(0)
        ok = std > CONSTANT * np.sqrt(std**2 + mean**2)
        xt = (x[tr][:, ok] - mean[ok]) / std[ok]
        xh = (x[ho][:, ok] - mean[ok]) / std[ok]
        yt = (y[tr] - y[tr].mean(0)).reshape(-1, d2 * k)
        theta = np.linalg.pinv(xt.T @ xt + alpha * tr.sum() * np.eye(xt.shape[1]), rcond=1e-10, hermitian=True) @ xt.T @ yt
        r = ((y[ho] - y[tr].mean(0)).reshape(-1, d2 * k) - xh @ theta).reshape(-1, d2, k)
        m += np.einsum("njk,njl->kl", r, r)
    return m


def official_one_pass(x: np.ndarray, label_embeddings: np.ndarray) -> float:
    """The published EMMS algorithm, step by step on dense arrays (least squares at uniform weights,
    least squares for the weights, sparsemax, stale theta, score -sum(res**2) / N * D2)."""
    n, d2, k = label_embeddings.shape
    xs = standardize(x, 1e-8)
    y = np.stack(f_labels(label_embeddings, 1e-8), axis=2)
    lam = np.full(k, 1.0 / k)
    theta = np.linalg.lstsq(xs, y @ lam, rcond=None)[0]
    fitted = xs @ theta
    lam = np.linalg.lstsq(y.reshape(n * d2, k), fitted.reshape(n * d2), rcond=None)[0]
    lam = sparsemax_by_bisection(lam)
    res = fitted - y @ lam
    return -np.sum(res**2) / n * d2


def sparsemax_by_bisection(z: np.ndarray) -> np.ndarray:
    """Projection on the simplex, found by bisection on the threshold tau: sum(max(z - tau, 0)) = 1."""
    lo, hi = z.min() - 1.0, z.max()
    for _ in range(200):
        tau = (lo + hi) / 2
        lo, hi = (tau, hi) if np.maximum(z - tau, 0).sum() > 1 else (lo, tau)
    return np.maximum(z - (lo + hi) / 2, 0)


def logme_evidence(f: np.ndarray, y: np.ndarray, log_alpha: float, log_beta: float) -> float:
    """LogME's log evidence per sample at (alpha, beta), with the D x D posterior precision written out."""
    n, d = f.shape
    alpha, beta = np.exp(log_alpha), np.exp(log_beta)
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    evidence = (
        d / 2 * np.log(alpha) + n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi)
        - beta / 2 * np.sum((y - f @ m) ** 2) - alpha / 2 * np.sum(m**2) - np.linalg.slogdet(a)[1] / 2
    )
    return evidence / n


def logme_max(f: np.ndarray, y: np.ndarray) -> float:
    """max over (alpha, beta) of the dense evidence. For a given t = alpha / beta the best beta is
    N / (|y - F m|^2 + t |m|^2) (m does not depend on beta); t is then searched on a grid over 24
    decades and refined by a bounded scalar search, and the alpha -> infinity limit is compared too."""
    n, d = f.shape
    gram, fty = f.T @ f, f.T @ y

    def at(log_t: float) -> float:
        t = 10.0**log_t
        m = np.linalg.solve(t * np.eye(d) + gram, fty)
        beta = n / (np.sum((y - f @ m) ** 2) + t * np.sum(m**2))
        return logme_evidence(f, y, np.log(t * beta), np.log(beta))

    top = np.log10(np.linalg.eigvalsh(gram)[-1])
    grid = top + np.arange(-16.0, 8.0, 0.1)
    values = [at(g) for g in grid]
    i = int(np.argmax(values))
    res = minimize_scalar(lambda g: -at(g), bounds=(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]),
                          method="bounded", options={"xatol": 1e-12})
    no_signal = 0.5 * (np.log(n / np.sum(y**2)) - np.log(2 * np.pi) - 1)
    return max(-res.fun, values[i], no_signal)


def hscore(f: np.ndarray, labels: np.ndarray) -> float:
    """The published H-score (class means per sample, np.cov, pinv), with the pinv cutoff at 1e-10."""
    g = np.zeros_like(f)
    for c in np.unique(labels):
        g[labels == c] = f[labels == c].mean(0)
    return float(np.trace(np.linalg.pinv(np.cov(f, rowvar=False), rcond=1e-10, hermitian=True) @ np.cov(g, rowvar=False)))


def hscore_shrinkage(f: np.ndarray, labels: np.ndarray) -> float:
    """Shrinkage H-score with scikit-learn's Ledoit-Wolf estimator; both covariances normalised by N."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf(assume_centered=False).fit(f)
    g = np.zeros_like(f)
    for c in np.unique(labels):
        g[labels == c] = f[labels == c].mean(0)
    cov_g = np.cov(g, rowvar=False, bias=True)
    return float(np.trace(np.linalg.pinv(lw.covariance_, hermitian=True) @ ((1 - lw.shrinkage_) * cov_g)))


def nce(logits: np.ndarray, labels: np.ndarray) -> float:
    """NCE written out: joint counts of (label, argmax source class), sum P(y, z) log P(y | z)."""
    z = logits.argmax(1)
    total = 0.0
    for y in np.unique(labels):
        for s in np.unique(z):
            p_yz = np.mean((labels == y) & (z == s))
            if p_yz > 0:
                total += p_yz * np.log(p_yz / np.mean(z == s))
    return total


def leep(logits: np.ndarray, labels: np.ndarray) -> float:
    """LEEP written out (Nguyen et al. 2020, Eq. 1-2)."""
    theta = np.exp(logits - logits.max(1, keepdims=True))
    theta /= theta.sum(1, keepdims=True)
    n_classes = labels.max() + 1
    joint = np.stack([theta[labels == y].sum(0) for y in range(n_classes)]) / len(labels)
    conditional = joint / joint.sum(0, keepdims=True)
    return float(np.mean(np.log((theta * conditional[labels]).sum(1))))
