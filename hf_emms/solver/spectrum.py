"""From centred statistics to the spectral form of EMMS: everything the scores need, in K x K pieces.

Notation (all columns standardised over the N samples: zero mean, unit variance):
X (N x D1) features, Y_k (N x D2) the k-th F-label, G = X^T X, B_k = X^T Y_k, G = V diag(s) V^T.
Writing X = U diag(sqrt(s)) V^T, the projection of Y_k on direction i is u_i^T Y_k = v_i^T B_k / sqrt(s_i),
so for any weights lambda the fit of Y(lambda) = sum_k lambda_k Y_k decomposes over directions:

    ||u_i^T Y(lambda)||^2 = lambda^T Q_i lambda,   Q_i[k, l] = (v_i^T B_k)(v_i^T B_l)^T / s_i,
    ||Y(lambda)||_F^2      = lambda^T T lambda,     T[k, l]   = tr(Y_k^T Y_l).

Least squares, ridge and their residuals are then sums of Q_i with scalar weights (``scores.py``).
Nothing here is N x anything: the inputs are the sums of ``FeatureStats``.

Class labels (Y_k = onehot(y) E_k, E_k the C x D2 class-name embedding table): E_k's columns are
standardised with class-frequency weights p_c = n_c / N, which is standardising Y_k over samples;
then B_k = D_x^-1 (S - mu n^T) E~_k from the centred class sums, and T[k, l] = sum_c n_c e~_kc . e~_lc.

Constant columns (variance below ``_CONSTANT`` of the raw second moment) standardise to zero: they
carry no information, and dividing by a rounding-level spread would amplify noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError
from .inputs import check_class_space_memory
from .centered import CenteredStats

_CONSTANT = 1e-20  # variance below this fraction of mean^2 + variance: constant (spread < 1e-10 x offset)
_RANK_TOL = 1e-10  # eigenvalues of the standardised Gram below this fraction of the largest are zero


@dataclass(frozen=True)
class Spectrum:
    """Standardised EMMS quantities of one (features, F-labels) pair.

    Attributes
    ----------
    n, d1, d2, k : int
        Samples, feature width, F-label width, number of F-labels.
    d2_varying : int
        F-label columns that vary over the samples for at least one F-label: what scores average over
        (a constant column, e.g. the one-hot column of a class id with no samples, has nothing to explain).
    eigvals : ndarray of shape (r,)
        Non-zero eigenvalues s_i of the standardised Gram X^T X (r = numerical rank).
    q : ndarray of shape (r, K, K)
        Q_i: F-label energy along each eigendirection (see module docstring).
    t : ndarray of shape (K, K)
        tr(Y_k^T Y_l).
    n_constant : int
        Feature columns that were constant (standardised to zero).
    """

    n: int
    d1: int
    d2: int
    d2_varying: int
    k: int
    eigvals: np.ndarray
    q: np.ndarray
    t: np.ndarray
    n_constant: int

    @property
    def rank(self) -> int:
        return int(self.eigvals.size)

    @property
    def outside_span(self) -> np.ndarray:
        """M = T - sum_i Q_i: the least-squares residual quadratic (K, K), i.e. the F-label energy
        outside the features' span. Exactly 0 when the features span every centred vector (r = N - 1)."""
        if self.rank >= self.n - 1:
            return np.zeros_like(self.t)
        return self.t - self.q.sum(0)


def spectrum(
    c: CenteredStats, class_embeddings: Any = None, *, std_offset: float = 0.0
) -> Spectrum:
    """Standardise the centred statistics and take the eigensystem of the feature Gram.

    Parameters
    ----------
    c : CenteredStats
        From ``FeatureStats.centered()``.
    class_embeddings : array-like of shape (C, D2), (K, C, D2), or a sequence of K (C, D2) arrays
        Class-name F-label tables, for class-label statistics. None uses one-hot labels (K = 1, D2 = C).
    std_offset : float
        Added to every standard deviation before dividing, as the official EMMS code does (1e-8);
        0 standardises exactly.
    """
    n = c.n
    if n < 2:
        raise InvalidInputError(f"EMMS needs at least 2 samples; got N = {n}.")
    x_scale = _inverse_std(np.diag(c.scatter_x) / n, c.mean_x, std_offset)
    # Constant columns have scale 0: their rows and columns of G vanish and eigh_psd drops them.
    s, v = eigh_psd(c.scatter_x * np.outer(x_scale, x_scale), n - 1)
    if c.class_count is not None:
        e = _standardised_tables(c.class_count, class_embeddings, std_offset)  # (K, C, D2)
        varying = int(np.any(e != 0, axis=(0, 1)).sum())
        # B_k = D^-1 (S - mu n^T) E~_k : project the C class directions first, then apply E~_k.
        f = c.class_scatter * x_scale  # (C, D1): centred class sums, standardised
        proj = _mm(_mm(v.T, f.T)[None], e)  # v_i^T B_k: (K, r, D2)
        t = np.einsum("c,kcj,lcj->kl", c.class_count, e, e, optimize=True)
        d2 = e.shape[2]
    else:
        if class_embeddings is not None:
            raise InvalidInputError(
                "class_embeddings apply to statistics accumulated with class labels; these were "
                "accumulated with per-sample label_embeddings, which already are the F-labels."
            )
        d2, k = c.mean_y.shape
        var_y = np.einsum("jkk->jk", c.scatter_y) / n
        y_scale = _inverse_std(var_y, c.mean_y, std_offset)  # (D2, K), zero on constant columns
        if not np.any(y_scale):
            raise InvalidInputError("every F-label column is constant over the samples: there is nothing to explain.")
        t = np.einsum("jkl,jk,jl->kl", c.scatter_y, y_scale, y_scale)
        varying = int(np.any(y_scale != 0, axis=1).sum())
        b = c.cross * x_scale[:, None, None] * y_scale[None]  # (D1, D2, K)
        proj = _mm(v.T, b.reshape(b.shape[0], d2 * k)).reshape(v.shape[1], d2, k).transpose(2, 0, 1)  # v_i^T B_k
    # Q_i = P_i P_i^T / s_i with P_i the (K, D2) block of direction i: one batched matmul.
    p_i = proj.transpose(1, 0, 2)
    q = _mm(p_i, p_i.transpose(0, 2, 1)) / s[:, None, None]
    return Spectrum(
        n=n, d1=c.mean_x.shape[0], d2=d2, d2_varying=varying, k=t.shape[0], eigvals=s, q=q, t=t,
        n_constant=int((x_scale == 0).sum()),
    )


def _inverse_std(var: np.ndarray, mean: np.ndarray, offset: float) -> np.ndarray:
    """1 / (std + offset) per column, and 0 for constant columns: those whose variance is below
    ``_CONSTANT`` of their raw second moment (mean^2 + variance), i.e. at rounding level."""
    var = np.maximum(var, 0)
    keep = var > _CONSTANT * (var + mean**2)
    scale = np.zeros_like(var)
    scale[keep] = 1.0 / (np.sqrt(var[keep]) + offset)
    return scale


# Below this width an eigendecomposition runs on one thread. Measured with torch's LAPACK on a 2-core machine
# (float64 Gram, seconds, 2 threads / 1 thread): quiet, D = 384: 0.015 / 0.009, 512: 0.034 / 0.018, 768: 0.032 /
# 0.055; with both cores busy elsewhere, D = 384: 0.95-2.3 / 0.009-0.017 and 512: 1.34 / 0.040 (threads spinning at
# a barrier for a core they cannot get), 768 and 1024 unaffected. One thread is faster below 640 either way.
_SERIAL_EIGH_BELOW = 640


def symmetric_eigh(g: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray] | tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors of a symmetric matrix, through torch's LAPACK (cuSOLVER for a tensor
    on a GPU); on the CPU one thread when the matrix is narrower than ``_SERIAL_EIGH_BELOW`` (see there), the
    caller's threads otherwise. A numpy array gives numpy arrays, a tensor tensors on its device."""
    given = torch.from_numpy(g) if isinstance(g, np.ndarray) else g
    threads = torch.get_num_threads()
    serial = given.device.type == "cpu" and given.shape[0] < _SERIAL_EIGH_BELOW and threads > 1
    if serial:
        torch.set_num_threads(1)
    try:
        s, v = torch.linalg.eigh(given)
    finally:
        if serial:
            torch.set_num_threads(threads)
    return (s.numpy(), v.numpy()) if isinstance(g, np.ndarray) else (s, v)


def eigh_psd(g: np.ndarray | torch.Tensor, max_rank: int,
             rtol: float = _RANK_TOL) -> tuple[np.ndarray, np.ndarray] | tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of a PSD Gram (numpy, or a tensor on any device), keeping eigenvalues above ``rtol`` of the
    largest, and at most ``max_rank`` of them (N samples span at most N dimensions, N - 1 once centred)."""
    if g.shape[0] == 0:
        return g.diagonal()[:0], g[:, :0]
    s, v = symmetric_eigh(g)
    top = float(s[-1])
    keep = s > rtol * top if top > 0 else s > np.inf  # nothing is kept when the Gram is zero
    keep[: max(len(s) - max_rank, 0)] = False
    return s[keep], v[:, keep]


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul(a, b) through torch: the statistics were just accumulated by torch, and numpy's BLAS
    threads would contend with torch's still-spinning OpenMP threads (measured: ~20% slower end to end)."""
    return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()


def _standardised_tables(count: np.ndarray, tables: Any, offset: float, *, folds: int = 0) -> np.ndarray:
    """Class-name embedding tables (K, C, D2), columns standardised with class-frequency weights (after checking
    that they and the class-space pieces of ``folds`` cross-validation folds fit the memory budget)."""
    n_classes = count.shape[0]
    if int((count > 0).sum()) < 2:
        present = np.flatnonzero(count > 0).tolist()
        raise InvalidInputError(
            f"only one class is present (class id {present}); EMMS compares how well features separate "
            "classes and needs at least two."
        )
    k, d2 = (1, n_classes) if tables is None else (len(items := _table_items(tables, n_classes)), items[0].shape[1])
    check_class_space_memory(n_classes, k, d2, folds)
    e = as_tables(tables, n_classes)
    p = count / count.sum()
    mean = np.einsum("c,kcj->kj", p, e)
    var = np.einsum("c,kcj->kj", p, (e - mean[:, None]) ** 2)
    scale = _inverse_std(var, mean, offset)
    if not np.any(scale):
        raise InvalidInputError(
            "the class embeddings are identical for every class present: they cannot tell classes apart."
        )
    return (e - mean[:, None]) * scale[:, None]


def _table_items(tables: Any, n_classes: int) -> list[np.ndarray]:
    """The K tables of ``class_embeddings`` as 2-D real arrays with at least ``n_classes`` rows (not copied)."""
    if hasattr(tables, "detach"):
        tables = tables.detach().cpu().numpy()
    try:  # one (C, D2) table, or K of them as a (K, C, D2) array or nested lists
        stacked = np.asarray(tables)
        items = [stacked] if stacked.ndim == 2 else list(stacked) if stacked.ndim == 3 else None
    except (ValueError, TypeError):  # ragged: K tables of different shapes, reported below
        items = None
    if items is None:
        try:
            items = [np.asarray(t.detach().cpu() if hasattr(t, "detach") else t) for t in tables]
        except (ValueError, TypeError) as e:  # not iterable, or ragged rows within one table
            raise InvalidInputError(f"class_embeddings must be K tables of shape (C, D2) of real numbers ({e}).") from None
    if not items:
        raise InvalidInputError("class_embeddings is empty: give K >= 1 tables of shape (C, D2), one per F-label encoder.")
    for i, t in enumerate(items):
        if t.ndim != 2:
            raise InvalidInputError(f"class_embeddings[{i}] must be 2-D (n_classes, D2); got shape {t.shape}.")
        if t.dtype.kind not in "biuf":
            raise InvalidInputError(f"class_embeddings[{i}] must be real numbers; got dtype {t.dtype}.")
        if t.shape[0] < n_classes:
            raise InvalidInputError(
                f"labels use class ids up to {n_classes - 1}, but class_embeddings[{i}] has only {t.shape[0]} rows."
            )
    return items


def take_class_rows(tables: Any, classes: np.ndarray) -> list[np.ndarray] | None:
    """The rows of the class ids ``classes`` (C,) of each table: tables indexed by original class ids, for labels
    re-indexed to ``0..C-1`` in ``classes`` order (:func:`hf_emms.solver.inputs.compact_class_ids`). None stays
    None (one-hot labels: one column per class present either way)."""
    if tables is None:
        return None
    return [t[classes] for t in _table_items(tables, int(classes[-1]) + 1)]


def as_tables(tables: Any, n_classes: int) -> np.ndarray:
    """Class-name embedding tables as one float64 array (K, C, D2), validated; None is one-hot."""
    if tables is None:
        return np.eye(n_classes)[None]
    items = _table_items(tables, n_classes)
    for i, t in enumerate(items):
        if not np.isfinite(t).all():
            raise InvalidInputError(f"class_embeddings[{i}] contains NaN or inf.")
    widths = [t.shape[1] for t in items]
    if len(set(widths)) > 1:
        raise InvalidInputError(
            f"all F-label tables must share one width D2; got widths {widths}. "
            "Project them to a common width (the paper uses 1024) before scoring."
        )
    # Rows beyond the largest id seen belong to classes with no samples: weight 0 either way.
    return np.stack([t[:n_classes].astype(np.float64) for t in items])
