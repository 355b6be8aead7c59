"""K-fold cross-validated EMMS residual, exactly, from per-fold sufficient statistics.

Why not GCV. GCV replaces each sample's leverage h_ii by their mean. When N <= D1 a ridge fit nearly
interpolates and leverages spread out (measured on 300 sentences: h_ii from 0.92 to 1.00 for a random-init
encoder at a small ridge): GCV then reported 0.03 of the F-label variance as unexplained where leave-one-out
gave 1.74, and ranked the random control first. Duplicated samples break it outright (RSS = 0 with
tr(H) < N, so GCV = 0). K-fold CV has neither failure and is still a function of sums: for fold f, the
training sums are the totals minus the fold's sums (``FeatureStats`` keeps both).

For fold f with training part (n_t samples) and held-out part (n_f samples):
features are standardised with the training mean and standard deviations, x~ = D^-1 (x - mean_t); F-label
columns are centred at the training mean and scaled by their full-sample standard deviation (a fixed unit,
the same for every candidate). With the eigensystem G~_t = V diag(s) V^T of the standardised training Gram,
B_k = X~_t^T Y_k,t and the ridge a = alpha * n_t (alpha is per sample, on unit-variance features),

    theta_k(a) = V diag(d) V^T B_k,   d_i = 1 / (s_i + a),

and the held-out residual of the mix Y(lambda) is lambda^T R_f(a) lambda with, writing Z_k = V^T B_k,
W_k = V^T X~_f^T Y_k,f and A = V^T G~_f V (held-out sums taken about the training mean),

    R_f(a)[k, l] = T_f[k, l] - <d o Z_k, W_l> - <d o Z_l, W_k> + <d o Z_k, A (d o Z_l)>,           (CV)

where <P, Q> = sum_ij P_ij Q_ij pairs the same F-label column j. Summing over folds gives the K x K
quadratic CV(a, lambda) = lambda^T R(a) lambda: minimised exactly over the simplex for each a and over
log alpha by grid + golden section. score = -CV / (N * D2), D2 counting the varying F-label columns:
minus the share of F-label variance the features fail to predict on samples they were not fitted on.

Class labels: Y_k = onehot(y) E~_k, so with o_i = e_(y_i) - p_t (p_t the training class frequencies) the whole
computation runs in class space, once for all K tables: with Z = V^T S~_t^T (S~ the standardised centred class
sums), W = V^T (S~_f^T - s~_f p_t^T) and O_f = diag(n_f) - n_f p_t^T - p_t n_f^T + |f| p_t p_t^T,

    Omega(a) = sum_f O_f - Z^T D W - W^T D Z + Z^T D A D Z   (C x C, D = diag(d)),   R(a)[k, l] = tr(E~_k^T Omega(a) E~_l),

so a ridge costs r^2 C per fold whatever the number and width of the tables: nothing per sample.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError
from .kernels import _gram
from .spectrum import _inverse_std, _standardised_tables, eigh_psd
from .shifts import move_sums
from .stats import FeatureStats

_F64 = torch.float64
_PRECOMPUTE_BYTES = 2**30  # per-sample F-labels: sum the columns out once when the K x K x r x r terms fit in this


@dataclass(frozen=True)
class _Fold:
    """The pieces of (CV) for one fold, in the eigenbasis of its training Gram (r directions).
    Per-sample F-labels: z, w of shape (K, r, D2) and t (K, K). Class labels: z, w of shape (1, r, C) in
    class space and t = O_f (C, C)."""

    n_train: int
    n_held: int  # samples held out (the fold's size n_f)
    s: np.ndarray  # (r,) eigenvalues of the standardised training Gram
    z: np.ndarray  # training cross-products
    w: np.ndarray  # held-out cross-products
    a: np.ndarray  # (r, r) held-out Gram in the eigenbasis
    t: np.ndarray  # held-out target energy about the training mean
    # Per-sample F-labels, when they fit in memory: (CV)'s terms with the F-label columns summed out once, so a
    # ridge costs K^2 r^2 instead of K r^2 D2: <d o Z_k, W_l> = d . c[k, l] and <d o Z_k, A (d o Z_l)> = d^T p[k, :, l, :] d.
    c: np.ndarray | None = None  # (K, K, r)
    p: np.ndarray | None = None  # (K, r, K, r): p[k, :, l, :] = A o (Z_k Z_l^T)


@dataclass(frozen=True)
class CVProblem:
    """Everything the cross-validated score needs, for any ridge."""

    n: int
    d1: int
    d2: int
    d2_varying: int
    k: int
    folds: list[_Fold]
    n_constant: int
    tables: np.ndarray | None = None  # (K, C, J) standardised class tables, for class labels

    @functools.cached_property
    def table_products(self) -> np.ndarray:
        """E~_k E~_l^T for every pair: (K, K, C, C)."""
        e = torch.from_numpy(self.tables)
        return (e[:, None] @ e[None].transpose(-1, -2)).numpy()

    @property
    def fold_sizes(self) -> np.ndarray:
        """(F,) samples held out by each fold used, n_f."""
        return np.array([f.n_held for f in self.folds], dtype=np.float64)

    def residual(self, alpha: float) -> np.ndarray:
        """sum_f R_f(alpha * n_t): the (K, K) held-out residual quadratic over the F-label weights."""
        return self.fold_residuals(alpha).sum(0)

    def fold_residuals(self, alpha: float) -> np.ndarray:
        """R_f(alpha * n_t) of (CV) for every fold: (F, K, K), symmetric; alpha = inf gives the targets alone."""
        return self.fold_residuals_at(np.array([alpha]))[0]

    def fold_residuals_at(self, alphas: np.ndarray) -> np.ndarray:
        """R_f(alpha_g * n_t) of (CV) for G ridges at once: (G, F, K, K). The G products A (d_g o Z) of a fold are
        one matrix product (the same arithmetic as G separate ones, in fewer, larger calls)."""
        alphas = np.asarray(alphas, dtype=np.float64)
        out = []
        for f in self.folds:
            d = np.where(np.isinf(alphas)[:, None], 0.0, 1.0 / (f.s[None] + alphas[:, None] * f.n_train))  # (G, r)
            if f.p is not None:
                cross = f.c @ d.T  # (K, K, G)
                dt, (k, rank) = torch.from_numpy(np.ascontiguousarray(d.T)), f.p.shape[:2]
                pd = (torch.from_numpy(f.p).reshape(k * rank * k, rank) @ dt).reshape(k, rank, k, dt.shape[1])  # P[k, :, l, :] d_g
                quad = torch.einsum("krlg,rg->klg", pd, dt).numpy()
                r = (f.t[..., None] - cross - cross.transpose(1, 0, 2) + quad).transpose(2, 0, 1)
                out.append(r)
                continue
            g, (kz, rank, cols) = d.shape[0], f.z.shape
            dz = torch.from_numpy(f.z[None] * d[:, None, :, None])  # (G, K', r, J): d_g o Z
            # Explicit sizes: a fold whose training features do not vary has rank 0, and reshape(0, -1) is ambiguous.
            adz = (torch.from_numpy(f.a) @ dz.permute(2, 0, 1, 3).reshape(rank, g * kz * cols)).reshape(rank, g, kz, cols)
            adz = adz.permute(1, 2, 0, 3)  # A (d_g o Z)
            w = torch.from_numpy(f.w)
            if self.tables is None:  # pair the same F-label column of Z_k and W_l
                cross = torch.einsum("gkrj,lrj->gkl", dz, w).numpy()
                quad = torch.einsum("gkrj,glrj->gkl", dz, adz).numpy()
            else:  # class space: (C, C) pieces of Omega
                cross, quad = (dz[:, 0].transpose(1, 2) @ w[0]).numpy(), (dz[:, 0].transpose(1, 2) @ adz[:, 0]).numpy()
            out.append(f.t[None] - cross - cross.transpose(0, 2, 1) + quad)
        total = np.stack(out, axis=1)  # (G, F, ., .)
        if self.tables is not None:  # R_f[k, l] = tr(E~_k^T Omega_f E~_l) = sum_cd Omega_f[c, d] (E~_k E~_l^T)[c, d]
            total = np.einsum("klcd,gfcd->gfkl", self.table_products, total)
        return (total + total.transpose(0, 1, 3, 2)) / 2

    def dof(self, alpha: float) -> float:
        """Mean over folds of tr(H) = 1 + sum_i s_i / (s_i + a): the fit's effective parameters."""
        return float(np.mean([1.0 + np.sum(f.s / (f.s + alpha * f.n_train)) for f in self.folds]))


def cv_problem(stats: FeatureStats, class_embeddings: Any = None) -> CVProblem:
    """Per-fold pieces of the cross-validated residual from statistics with folds.

    Parameters
    ----------
    stats : FeatureStats
        Accumulated statistics (they carry per-fold sums).
    class_embeddings : see :func:`hf_emms.emms`.
    """
    t = stats._t
    if stats.n == 0:
        raise InvalidInputError("no samples were accumulated: call update() with at least one batch first.")
    if stats.n < 2:
        raise InvalidInputError(f"EMMS needs at least 2 samples; got N = {stats.n}.")
    fold_n = t["fold_count"].cpu().numpy()
    used = [f for f in range(len(fold_n)) if 0 < fold_n[f] <= stats.n - 2]
    if len(used) < 2:
        raise InvalidInputError(
            f"cross-validation needs samples in at least 2 of the {len(fold_n)} folds with 2 left to train on; "
            f"N = {stats.n} gives fold sizes {fold_n.astype(int).tolist()}. Score more samples, or use rule='gcv'."
        )
    kind = stats.kind
    full = stats.centered()
    # F-label units from the full sample: the same for every candidate.
    if kind == "classes":
        e = _standardised_tables(full.class_count, class_embeddings, 0.0, folds=len(used))  # (K, C, D2)
        d2 = e.shape[2]
        varying = int(np.any(e != 0, axis=(0, 1)).sum())
    else:
        if class_embeddings is not None:
            raise InvalidInputError(
                "class_embeddings apply to statistics accumulated with class labels; these were "
                "accumulated with per-sample label_embeddings, which already are the F-labels."
            )
        d2 = full.mean_y.shape[0]
        y_scale = _inverse_std(np.einsum("jkk->jk", full.scatter_y) / full.n, full.mean_y, 0.0)  # (D2, K)
        if not np.any(y_scale):
            raise InvalidInputError("every F-label column is constant over the samples: there is nothing to explain.")
        varying = int(np.any(y_scale != 0, axis=1).sum())

    names = [n for n in t if n.startswith("fold_") and n != "fold_count"]
    folds, n_constant = [], 0
    for f in used:
        held = {n[5:]: t[n][f] for n in names}
        train = {k: t[k] - v for k, v in held.items()}
        n_t, n_f = stats.n - fold_n[f], fold_n[f]
        # Re-centre both parts at the training mean (exact identities; sums were about the common shift).
        dx = -train["sum_x"] / n_t
        dy = -train["sum_y"] / n_t if kind == "embeddings" else None
        on = dx.device  # statistics accumulated on a GPU stay there until the K x K pieces are taken
        train = move_sums(train, torch.tensor(n_t, dtype=_F64, device=on), dx, dy)
        held = move_sums(held, torch.tensor(n_f, dtype=_F64, device=on), dx, dy)
        # The D1 x D1 work (the eigensystem, the held-out Gram in its basis, the cross-products) runs where the
        # statistics are, a GPU included; what leaves the device is r-wide (s, A, Z, W), for the ridge search.
        mean_t = (t["shift_x"] - dx).cpu().numpy()
        x_scale = _inverse_std(torch.diagonal(train["gram_x"]).cpu().numpy() / n_t, mean_t, 0.0)
        n_constant = max(n_constant, int((x_scale == 0).sum()))
        xs = torch.from_numpy(x_scale).to(on)
        outer = xs[:, None] * xs[None]
        s, v = eigh_psd(train["gram_x"] * outer, int(n_t) - 1)
        vt = v.T.contiguous()
        a = _numpy(vt @ (held["gram_x"] * outer) @ v)
        if kind == "classes":
            p = train["class_count"] / n_t
            z = (vt @ (train["class_sum_x"] * xs).T)[None]  # V^T S~_t^T: (1, r, C)
            w = (vt @ ((held["class_sum_x"] - p[:, None] * held["sum_x"][None]) * xs).T)[None]  # V^T (S~_f^T - s~_f p^T)
            z, w, p, n_c = _numpy(z), _numpy(w), _numpy(p), _numpy(held["class_count"])
            tt = np.diag(n_c) - np.outer(n_c, p) - np.outer(p, n_c) + n_f * np.outer(p, p)  # O_f
        else:
            k = y_scale.shape[1]
            ys = torch.from_numpy(y_scale).to(on)
            b_t = train["cross_xy"] * xs[:, None, None] * ys[None]  # (D1, D2, K)
            b_f = held["cross_xy"] * xs[:, None, None] * ys[None]
            z = _numpy((vt @ b_t.reshape(len(x_scale), -1)).reshape(-1, d2, k).permute(2, 0, 1))
            w = _numpy((vt @ b_f.reshape(len(x_scale), -1)).reshape(-1, d2, k).permute(2, 0, 1))
            tt = np.einsum("jkl,jk,jl->kl", _numpy(held["gram_y"]), y_scale, y_scale)
            if k * k * s.numel()**2 * len(used) * 8 <= _PRECOMPUTE_BYTES:
                zt = torch.from_numpy(np.ascontiguousarray(z))
                c = torch.einsum("krj,lrj->klr", zt, torch.from_numpy(np.ascontiguousarray(w))).numpy()
                # Z_k Z_l^T for every pair at once: the (K r x K r) Gram of the stacked Z_k, upper block triangle only
                # (K (K + 1) / 2 of the K^2 products; the lower blocks are their transposes).
                kr = zt.shape[0] * zt.shape[1]
                zz = _gram(zt.reshape(kr, zt.shape[2]).T, torch.empty(kr, kr, dtype=_F64), blocks=zt.shape[0])
                zz = zz.reshape(zt.shape[0], zt.shape[1], zt.shape[0], zt.shape[1])
                p = (torch.from_numpy(a)[None, :, None] * zz).numpy()  # P[k, :, l, :] = A o (Z_k Z_l^T)
                folds.append(_Fold(n_train=int(n_t), n_held=int(n_f), s=_numpy(s), z=z[:, :0], w=w[:, :0], a=a[:0],
                                   t=tt, c=c, p=p))
                continue
        folds.append(_Fold(n_train=int(n_t), n_held=int(n_f), s=_numpy(s), z=np.ascontiguousarray(z), w=np.ascontiguousarray(w), a=a, t=tt))
    return CVProblem(
        n=stats.n, d1=stats.dim, d2=d2, d2_varying=varying, k=e.shape[0] if kind == "classes" else y_scale.shape[1],
        folds=folds, n_constant=n_constant, tables=e if kind == "classes" else None,
    )


def _numpy(x: torch.Tensor) -> np.ndarray:
    """A float64 tensor from any device as a contiguous numpy array."""
    return np.ascontiguousarray(x.cpu().numpy())


def for_tables(problem: CVProblem, stats: FeatureStats, class_embeddings: Any = None) -> CVProblem:
    """``problem`` (class labels) scored against other class tables: the fold pieces of (CV) in class space (z, w,
    a, t: eigensystems, cross-products, held-out energies) do not depend on the tables, so only the standardised
    tables change, and no fold's eigensystem is computed again. Equal to ``cv_problem(stats, class_embeddings)``."""
    if problem.tables is None:
        raise InvalidInputError("for_tables applies to statistics accumulated with class labels.")
    e = _standardised_tables(stats.centered().class_count, class_embeddings, 0.0, folds=len(problem.folds))
    return dataclasses.replace(problem, tables=e, d2=e.shape[2], d2_varying=int(np.any(e != 0, axis=(0, 1)).sum()),
                               k=e.shape[0])
