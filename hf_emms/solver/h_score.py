"""H-score (Bao et al., ICIP 2019) and its shrinkage version (Ibrahim et al., ICLR 2023).

With Sigma_f the feature covariance and Sigma_g = cov(E[f | y]) the covariance of the class means,

    H = tr(Sigma_f^+ Sigma_g)                                              (Bao et al., Def. 2)

measures how much of the feature variance the classes explain, in units the features cannot scale
away. Both covariances are sums over samples: Sigma_f = S / N from the centred Gram, and
Sigma_g = sum_c n_c (mu_c - mu)(mu_c - mu)^T / N = sum_c s_c s_c^T / (n_c N) from the centred class
sums s_c. With Sigma_f = V diag(sigma) V^T and p_ic = v_i^T s_c / sqrt(n_c N),

    H = sum_i sum_c p_ic^2 / sigma_i.

In high dimensions Sigma_f^+ amplifies noise. The shrinkage H-score (Ibrahim, Ponomareva & Mazumder,
"Newer is not always better", Eq. 4) replaces Sigma_f by the Ledoit-Wolf estimate
(1 - a) Sigma_f + a mu I, mu = tr(Sigma_f) / D, and Sigma_g by (1 - a) Sigma_g:

    H_a = (1 - a) sum_i sum_c p_ic^2 / ((1 - a) sigma_i + a mu),

with the Ledoit-Wolf (2004) intensity a = min(b, d) / d, d = |Sigma_f - mu I|_F^2 / D,
b = (sum_i |x_i - mean|^4 / N - |Sigma_f|_F^2) / (D N): the fourth moment is one more sum over samples.
Higher is better for both. Covariances are normalised by N throughout (the published shrinkage code
mixes N for Sigma_f with N - 1 for Sigma_g, a factor N / (N - 1) common to all candidates).
The pseudo-inverse drops eigenvalues below 1e-10 of the largest (the published plain H-score uses
1e-15, which inverts rounding noise when features are rank-deficient).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError
from .spectrum import eigh_psd
from .stats import FeatureStats


def hscore(stats: FeatureStats, *, shrinkage: bool = False) -> float:
    """H-score of class-label statistics (higher is better).

    Parameters
    ----------
    stats : FeatureStats
        Statistics accumulated with class ``labels``.
    shrinkage : bool
        False: the plain H-score. True: the shrinkage H-score with the Ledoit-Wolf intensity.
    """
    c = stats.centered()
    if c.class_count is None:
        raise InvalidInputError("H-score needs class labels; these statistics hold per-sample F-labels.")
    n = c.n
    present = c.class_count > 0
    if n < 2 or present.sum() < 2:
        raise InvalidInputError(f"H-score needs at least 2 samples in at least 2 classes; got N = {n}, {int(present.sum())} class(es).")
    cov = c.scatter_x / n
    sigma, v = eigh_psd(cov, max_rank=n - 1)
    p2 = ((v.T @ c.class_scatter[present].T) ** 2 / (c.class_count[present] * n)).sum(1)  # sum_c p_ic^2
    if not shrinkage:
        return float((p2 / sigma).sum())
    a, mu = ledoit_wolf_shrinkage(cov, c.quartic_x, n)
    return float((1 - a) * (p2 / ((1 - a) * sigma + a * mu)).sum())


def ledoit_wolf_shrinkage(cov: np.ndarray, quartic: float, n: int) -> tuple[float, float]:
    """Ledoit-Wolf intensity a and target scale mu for a (D, D) covariance (normalised by N) of centred data
    whose sum of |x_i - mean|^4 is ``quartic``. Same estimator as ``sklearn.covariance.ledoit_wolf_shrinkage``."""
    d = cov.shape[0]
    mu = np.trace(cov) / d
    if mu <= 0:
        return 0.0, 0.0
    # The intensity is scale-free: compute it on cov / mu (and quartic / mu^2) so that nothing overflows.
    frob2 = float(((cov / mu) ** 2).sum())
    delta = (frob2 - d) / d  # |cov - mu I|_F^2 / (D mu^2)
    beta = min((quartic / mu**2 / n - frob2) / (d * n), delta)
    return (0.0 if beta <= 0 else beta / delta), mu
