"""Streaming sufficient statistics of (features, targets): the only thing EMMS needs from the data.

EMMS, LogME and H-score depend on the samples only through sums over samples:
the count N, the feature sums and Gram matrix, and either per-class feature sums (class labels) or
feature x F-label cross products (per-sample F-labels). ``FeatureStats`` folds batches into those
sums as they come out of a model, so features are never stored: memory is
O(D1^2 + C*D1) for class labels and O(D1^2 + D1*D2*K) for per-sample F-labels, whatever N is.

Numerics. Sums are kept in float64 about a shift c (the first batch's mean): S1 = sum(x - c),
S2 = sum((x - c)(x - c)^T). Centring afterwards, S2 - S1 S1^T / N, then subtracts two numbers of
the size of the spread, not of the offset, so features sitting at 1e4 x their spread keep their
digits. Sums taken about different shifts cannot be added, so merging first moves both operands
to one common shift c' with the exact identity, for delta = c - c',

    sum((x - c')(x - c')^T) = S2 + delta S1^T + S1 delta^T + N delta delta^T,

and across ``torch.distributed`` ranks that common shift (the global mean) is broadcast from rank 0
before the plain all-reduce sum, so every rank adds the same kind of number.

Folds. Besides the totals, the sums that ridge regression needs are also kept per fold (F = 5 by
default; a sample's fold is a hash of its id), so that the EMMS score can be the exact K-fold
cross-validated residual (``cross_validation.py``): training sums are totals minus a fold's sums.
Pass ``sample_ids`` (e.g. dataset row indices) to make folds independent of batch order and sharding.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_write
from ..errors import IncompatibleStatsError, InvalidInputError, StatsFileError

_FORMAT = "hf-emms/feature-stats"
_VERSION = 2
_F64 = torch.float64
N_FOLDS = 5

# What each kind holds. Shifts are re-based, never added; every other tensor is an additive sum.
#   sum_x (D1), gram_x (D1, D1): sum of (x - c) and of (x - c)(x - c)^T
#   cubic_x (D1), quartic_x (): sum of |x - c|^2 (x - c) and of |x - c|^4 (Ledoit-Wolf shrinkage needs them)
#   class_count (C), class_sum_x (C, D1): per class id, count and sum of (x - c)
#   head_hard (C, Z), head_soft (C, Z): optional, from a source classifier head with Z classes: counts of
#       (target class, argmax source class) for NCE, and sums of source probabilities per target class for LEEP
#   sum_y (D2, K), cross_xy (D1, D2, K), gram_y (D2, K, K): per-sample F-label sums, feature x F-label
#       cross products, and per-column F-label x F-label products
#   fold_<name>: the same sums per fold (leading dim F) for count, sum_x, gram_x, class_count, class_sum_x,
#       sum_y, cross_xy, gram_y: what cross-validation needs
_SHIFTS = ("shift_x", "shift_y")
_TARGET_SUMS = {"classes": ("class_count", "class_sum_x"), "embeddings": ("sum_y", "cross_xy", "gram_y")}
_REQUIRED = {
    kind: ("shift_x", "sum_x", "gram_x", "cubic_x", "quartic_x", *(("shift_y",) if kind == "embeddings" else ()),
           *sums, "fold_count", "fold_sum_x", "fold_gram_x", *(f"fold_{name}" for name in sums))
    for kind, sums in _TARGET_SUMS.items()
}
_HEAD = ("head_hard", "head_soft")
# Indexed by class id (on this dim): they grow as new ids appear.
_CLASS_DIM = {"class_count": 0, "class_sum_x": 0, "head_hard": 0, "head_soft": 0, "fold_class_count": 1, "fold_class_sum_x": 1}
_MAX_CLASS_TABLE_BYTES = 8 * 2**30  # a class id that needs more is a raw label value, not an id


@dataclass(frozen=True)
class CenteredStats:
    """Statistics centred at the sample mean, as float64 numpy arrays: what solvers consume.

    Attributes
    ----------
    n : int
        Number of samples N.
    mean_x : ndarray of shape (D1,)
        Feature means.
    scatter_x : ndarray of shape (D1, D1)
        sum_i (x_i - mean)(x_i - mean)^T.
    quartic_x : float
        sum_i |x_i - mean|^4.
    class_count : ndarray of shape (C,) or None
        Samples per class id (class-label statistics only).
    class_scatter : ndarray of shape (C, D1) or None
        sum over samples of class c of (x_i - mean): the centred class sums.
    head_hard, head_soft : ndarray of shape (C, Z) or None
        From a source classifier head: counts of (class, argmax source class), and summed source
        probabilities per class. Present when batches came with ``head_logits``.
    mean_y : ndarray of shape (D2, K) or None
        F-label means (per-sample F-label statistics only).
    cross : ndarray of shape (D1, D2, K) or None
        sum_i (x_i - mean_x)(y_ik - mean_yk)^T for each F-label k.
    scatter_y : ndarray of shape (D2, K, K) or None
        Per F-label column j: sum_i (y_ijk - mean_jk)(y_ijl - mean_jl).
    """

    n: int
    mean_x: np.ndarray
    scatter_x: np.ndarray
    quartic_x: float
    class_count: np.ndarray | None = None
    class_scatter: np.ndarray | None = None
    head_hard: np.ndarray | None = None
    head_soft: np.ndarray | None = None
    mean_y: np.ndarray | None = None
    cross: np.ndarray | None = None
    scatter_y: np.ndarray | None = None


class FeatureStats:
    """Streaming accumulator of the sufficient statistics of EMMS.

    Feed it batches with :meth:`update`; combine accumulators with :meth:`merge` (or ``+``) or,
    inside a ``torch.distributed`` job, with :meth:`all_reduce`. Each accumulator holds one kind of
    target, fixed by its first batch: class ids (``labels``) or per-sample F-labels
    (``label_embeddings``).

    Tensors stay on the device of the first features given (CUDA tensors are accumulated on the GPU),
    in float64.

    Parameters
    ----------
    folds : int
        Cross-validation folds the sums are also kept for (memory: about ``folds + 1`` copies of the
        D1 x D1 Gram).

    Examples
    --------
    >>> stats = FeatureStats()
    >>> for x, y in batches:                      # x: (B, D1) features, y: (B,) class ids
    ...     stats.update(x, labels=y)
    >>> emms(stats, class_embeddings=[clip_table, bert_table]).score
    """

    def __init__(self, *, folds: int = N_FOLDS) -> None:
        if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
            raise InvalidInputError(f"folds must be an integer >= 2; got {folds!r}.")
        self.folds = folds
        self.n: int = 0
        self.kind: str | None = None  # "classes" | "embeddings", set by the first batch
        self._t: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ shape facts
    @property
    def dim(self) -> int | None:
        """Feature width D1 (None before the first batch)."""
        return int(self._t["sum_x"].shape[0]) if self._t else None

    @property
    def n_classes(self) -> int | None:
        """Number of class ids seen (largest id + 1), for class-label statistics."""
        return int(self._t["class_count"].shape[0]) if self.kind == "classes" else None

    @property
    def label_shape(self) -> tuple[int, int] | None:
        """(D2, K) of the per-sample F-labels, for F-label statistics."""
        return tuple(self._t["sum_y"].shape) if self.kind == "embeddings" else None  # type: ignore[return-value]

    @property
    def n_source_classes(self) -> int | None:
        """Z, the classes of the candidate's own classifier head, when ``head_logits`` were given."""
        return int(self._t["head_soft"].shape[1]) if "head_soft" in self._t else None

    @property
    def device(self) -> torch.device | None:
        return self._t["sum_x"].device if self._t else None

    def __repr__(self) -> str:
        detail = {"classes": f"n_classes={self.n_classes}", "embeddings": f"label_shape={self.label_shape}"}
        return f"FeatureStats(n={self.n}, dim={self.dim}, kind={self.kind!r}" + (
            f", {detail[self.kind]})" if self.kind else ")"
        )

    # ------------------------------------------------------------------ accumulation
    def update(
        self, features: Any, labels: Any = None, label_embeddings: Any = None, *, head_logits: Any = None,
        sample_ids: Any = None,
    ) -> "FeatureStats":
        """Fold one batch into the statistics.

        Parameters
        ----------
        features : array-like of shape (B, D1)
            Pooled features of B samples (torch tensor on any device, or numpy array).
        labels : array-like of int of shape (B,), optional
            Class ids in ``[0, C)``. Give either ``labels`` or ``label_embeddings``.
        label_embeddings : array-like of shape (B, D2, K) or (B, D2), optional
            Per-sample F-labels: the sample's label embedded by K foundation models (a 2-D array is
            K = 1). Regression targets are F-labels too: shape (B, 1).
        head_logits : array-like of shape (B, Z), optional
            With ``labels``: the candidate's own classifier-head logits over its Z source classes, for
            NCE and LEEP. Give them with every batch or with none.
        sample_ids : array-like of int of shape (B,), optional
            Stable ids of the samples (dataset row indices): they pick each sample's cross-validation
            fold, so statistics do not depend on batch order or on how samples are sharded over processes.
            Default: the running count of samples this accumulator has seen.

        Returns
        -------
        self

        Raises
        ------
        InvalidInputError
            Wrong shapes, non-integer or negative labels, NaN/inf values, or a target kind other
            than the one of the earlier batches. The statistics are left unchanged.
        """
        x = as_tensor(features, "features", device=self.device)
        if x.ndim != 2:
            raise InvalidInputError(
                f"features must be 2-D (batch, dim); got shape {tuple(x.shape)}. "
                "Pool token/patch features first; reshape a single sample with x[None]."
            )
        if x.shape[1] == 0:
            raise InvalidInputError("features have width 0: there is nothing to score.")
        if self._t and x.shape[1] != self.dim:
            raise InvalidInputError(f"features have width {x.shape[1]}, earlier batches had {self.dim}.")
        kind = "classes" if labels is not None else "embeddings"
        logits = self._check_head(x, kind, head_logits)
        kind, y = self._check_targets(x, labels, label_embeddings, None if logits is None else logits.shape[1])
        fold = self._fold_of(sample_ids, x)
        if x.shape[0] == 0:
            return self
        xc = _work_buffer("xc", tuple(x.shape), x.device).copy_(x)
        shift_x = self._t["shift_x"] if self._t else xc.mean(0)
        xc.sub_(shift_x)
        batch = {"sum_x": xc.sum(0)}
        if not torch.isfinite(batch["sum_x"]).all():
            _raise_not_finite(x, "features")
        f_count, d1 = self.folds, x.shape[1]
        batch["fold_count"] = torch.bincount(fold, minlength=f_count).to(_F64)
        batch["fold_sum_x"] = torch.zeros(f_count, d1, dtype=_F64, device=x.device).index_add_(0, fold, xc)
        sq_norm = torch.linalg.vector_norm(xc, dim=1).square_()
        batch["cubic_x"] = sq_norm @ xc
        batch["quartic_x"] = sq_norm @ sq_norm
        if not (torch.isfinite(batch["quartic_x"]) and torch.isfinite(sq_norm.sum())):  # sum |x - c|^2 = tr(Gram)
            raise InvalidInputError(
                "features are too large: their squares or fourth powers overflow float64. Rescale them "
                "(EMMS standardises columns, so the scale does not change its score)."
            )

        new = {"shift_x": shift_x}
        shapes = {"gram_x": (d1, d1), "fold_gram_x": (f_count, d1, d1)}  # summed fold by fold below
        if kind == "classes":
            n_classes = max(int(y.max()) + 1, self.n_classes or 0)
            cell = fold * n_classes + y
            batch["fold_class_count"] = torch.bincount(cell, minlength=f_count * n_classes).to(_F64).reshape(f_count, n_classes)
            batch["fold_class_sum_x"] = (
                torch.zeros(f_count * n_classes, d1, dtype=_F64, device=xc.device).index_add_(0, cell, xc)
                .reshape(f_count, n_classes, d1)
            )
            batch["class_count"] = batch["fold_class_count"].sum(0)
            batch["class_sum_x"] = batch["fold_class_sum_x"].sum(0)
            if logits is not None:
                batch.update(head_tables(logits, y, n_classes))
        else:
            shift_y = self._t["shift_y"] if self._t else y.to(_F64).mean(0)
            yc = y.to(_F64) - shift_y
            batch["sum_y"] = yc.sum(0)
            if not torch.isfinite(batch["sum_y"]).all():
                _raise_not_finite(y, "label_embeddings")
            _, d2, k = yc.shape
            batch["fold_sum_y"] = torch.zeros(f_count, d2, k, dtype=_F64, device=xc.device).index_add_(0, fold, yc)
            shapes.update(cross_xy=(d1, d2, k), fold_cross_xy=(f_count, d1, d2, k), gram_y=(d2, k, k),
                          fold_gram_y=(f_count, d2, k, k))
            new["shift_y"] = shift_y

        # Everything is checked: commit (a batch with bad input leaves no trace). The Gram and cross products go
        # straight into the sums fold by fold: one fold's rows at a time is all the extra memory they take, and
        # together the folds cost what one Gram of the batch costs.
        if not self._t:
            self.kind = kind
            self._t = {**new, **{name: torch.zeros_like(t) for name, t in batch.items()},
                       **{name: torch.zeros(shape, dtype=_F64, device=x.device) for name, shape in shapes.items()}}
        if kind == "classes":
            self._t.update(_pad_classes(self._t, batch["class_count"].shape[0]))
        for name, t in batch.items():
            self._t[name] += t
        t = self._t
        for f in torch.unique(fold).tolist():
            rows = (fold == f).nonzero().squeeze(1)
            xf = xc.index_select(0, rows)
            g = _gram(xf, out=_work_buffer("gram", (d1, d1), x.device))
            t["fold_gram_x"][f] += g
            t["gram_x"] += g
            if kind == "embeddings":
                yf = yc.index_select(0, rows)
                cross = xf.T @ yf.reshape(len(rows), d2 * k)
                t["fold_cross_xy"][f] += cross.reshape(d1, d2, k)
                t["cross_xy"] += cross.reshape(d1, d2, k)
                gy = torch.bmm(yf.permute(1, 2, 0), yf.permute(1, 0, 2))  # (D2, K, K)
                t["fold_gram_y"][f] += gy
                t["gram_y"] += gy
        self.n += int(x.shape[0])
        return self

    def _fold_of(self, sample_ids: Any, x: torch.Tensor) -> torch.Tensor:
        """Each sample's fold: a multiplicative hash of its id (so folds do not follow periodic row orders)."""
        b = x.shape[0]
        if sample_ids is None:
            ids = torch.arange(self.n, self.n + b, device=x.device)
        else:
            ids = as_tensor(sample_ids, "sample_ids", device=x.device)
            if ids.shape != (b,) or (b and (torch.is_floating_point(ids) or ids.dtype == torch.bool or int(ids.min()) < 0)):
                raise InvalidInputError(f"sample_ids must be {b} integers >= 0 (one per feature row); got {tuple(ids.shape)} {ids.dtype}.")
        return fold_of(ids.long(), self.folds)

    def _check_head(self, x: torch.Tensor, kind: str, head_logits: Any) -> torch.Tensor | None:
        if self._t and (head_logits is None) != (self.n_source_classes is None):
            raise InvalidInputError(
                "give head_logits with every batch or with none: "
                + ("earlier batches had them." if head_logits is None else "earlier batches had none.")
            )
        if head_logits is None:
            return None
        if kind != "classes":
            raise InvalidInputError("head_logits go with class labels (NCE and LEEP score class-label tasks).")
        z = as_tensor(head_logits, "head_logits", device=x.device)
        if z.ndim != 2 or z.shape[0] != x.shape[0] or z.shape[1] < 1:
            raise InvalidInputError(
                f"head_logits must have shape ({x.shape[0]}, Z) for Z source classes; got {tuple(z.shape)}."
            )
        if self._t and z.shape[1] != self.n_source_classes:
            raise InvalidInputError(f"head_logits have {z.shape[1]} source classes, earlier batches had {self.n_source_classes}.")
        z = z.to(_F64)
        if not torch.isfinite(z.sum(0)).all():
            _raise_not_finite(z, "head_logits")
        return z

    def _check_targets(
        self, x: torch.Tensor, labels: Any, label_embeddings: Any, head_width: int | None
    ) -> tuple[str, torch.Tensor]:
        if (labels is None) == (label_embeddings is None):
            raise InvalidInputError(
                "give exactly one target: labels= (class ids, shape (B,)) or "
                "label_embeddings= (per-sample F-labels, shape (B, D2, K))."
            )
        kind = "classes" if labels is not None else "embeddings"
        if self.kind is not None and kind != self.kind:
            raise InvalidInputError(
                f"this accumulator holds {self.kind} statistics; a batch with {kind} cannot join it. "
                "Use one FeatureStats per target kind."
            )
        b = x.shape[0]
        if kind == "classes":
            y = as_tensor(labels, "labels", device=x.device)
            if y.ndim != 1 or y.shape[0] != b:
                raise InvalidInputError(f"labels must have shape ({b},) to match features; got {tuple(y.shape)}.")
            if b == 0:
                return kind, y.long()  # np.asarray([]) is float: an empty batch has no dtype to check
            if torch.is_floating_point(y) or y.dtype == torch.bool:
                raise InvalidInputError(
                    f"labels must hold integer class ids; got dtype {y.dtype}. "
                    "For regression targets or other per-sample F-labels pass label_embeddings= instead."
                )
            y = y.long()
            if int(y.min()) < 0:
                raise InvalidInputError(f"labels must be class ids >= 0; got {int(y.min())}.")
            width = x.shape[1] + (head_width or 0)
            if (int(y.max()) + 1) * width * 8 > _MAX_CLASS_TABLE_BYTES:
                raise InvalidInputError(
                    f"class id {int(y.max())} would need class tables of {(int(y.max()) + 1) * width * 8 / 2**30:.0f} GiB: "
                    "class ids must be 0..C-1. Map raw label values to consecutive ids first."
                )
            return kind, y
        y = as_tensor(label_embeddings, "label_embeddings", device=x.device)
        if y.ndim == 2:
            y = y[:, :, None]
        if y.ndim != 3 or y.shape[0] != b:
            raise InvalidInputError(
                f"label_embeddings must have shape ({b}, D2, K) (or ({b}, D2) for K = 1); got {tuple(y.shape)}."
            )
        if 0 in y.shape[1:]:
            raise InvalidInputError(f"label_embeddings need D2 >= 1 and K >= 1; got shape {tuple(y.shape)}.")
        if self._t and tuple(y.shape[1:]) != self.label_shape:
            raise InvalidInputError(
                f"label_embeddings have (D2, K) = {tuple(y.shape[1:])}, earlier batches had {self.label_shape}."
            )
        return kind, y

    # ------------------------------------------------------------------ combining
    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Statistics of the union of both sample sets (neither operand is modified)."""
        if not isinstance(other, FeatureStats):
            raise TypeError(f"can only merge FeatureStats with FeatureStats, not {type(other).__name__}.")
        if other.n == 0 or self.n == 0:
            return (self if self.n else other).copy()
        _check_compatible(self._header(), other._header())
        shifts = _common_shifts([self, other])
        n_classes = max(self.n_classes or 0, other.n_classes or 0)
        a, b = (_pad_classes(p._reshifted(shifts), n_classes) for p in (self, other))
        out = FeatureStats(folds=self.folds)
        out.n, out.kind = self.n + other.n, self.kind
        out._t = {**shifts, **{name: a[name] + b[name].to(a[name].device) for name in a}}
        return out

    def __add__(self, other: "FeatureStats") -> "FeatureStats":
        return self.merge(other) if isinstance(other, FeatureStats) else NotImplemented

    def __radd__(self, other: Any) -> "FeatureStats":
        """``sum(list_of_stats)`` starts from 0."""
        return self.copy() if isinstance(other, int) and other == 0 else NotImplemented

    def copy(self) -> "FeatureStats":
        out = FeatureStats(folds=self.folds)
        out.n, out.kind, out._t = self.n, self.kind, {k: v.clone() for k, v in self._t.items()}
        return out

    def _reshifted(self, shifts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The additive sums re-based from this accumulator's shifts to ``shifts``."""
        dev = self.device
        return self._moved(*(self._t[k] - shifts[k].to(dev) if k in self._t else None for k in _SHIFTS))

    def _moved(self, dx: torch.Tensor, dy: torch.Tensor | None, *, folds: bool = True) -> dict[str, torch.Tensor]:
        """The additive sums taken about (c - dx, d - dy) instead of (c, d): exact identities in the old sums
        (see :func:`move_sums`), plus, with u = x - c, a = |u|^2, b = u . dx and e = |dx|^2 (so that
        |x - c + dx|^2 = a + 2b + e), the higher moments Ledoit-Wolf needs:
          sum |u + dx|^2 (u + dx) = cubic + 2 G dx + e S1 + (tr G + 2 dx . S1 + N e) dx
          sum |u + dx|^4 = quartic + 4 dx^T G dx + N e^2 + 4 dx . cubic + 2 e tr G + 4 e dx . S1
        """
        t, n = self._t, self.n
        s1, g = t["sum_x"], t["gram_x"]
        e, tr, dxs = dx @ dx, torch.trace(g), dx @ s1
        # Without ``folds`` (centring for the solvers) the per-fold sums are left out: F more Grams not copied.
        out = {k: v.clone() for k, v in t.items() if k not in _SHIFTS and (folds or not k.startswith("fold_"))}
        out.update(move_sums({k: v for k, v in t.items() if k in _MOVABLE}, torch.tensor(float(n), dtype=_F64, device=s1.device), dx, dy))
        if folds:
            moved = move_sums({k[5:]: v for k, v in t.items() if k.startswith("fold_") and k != "fold_count"}, t["fold_count"], dx, dy)
            out.update({f"fold_{k}": v for k, v in moved.items()})
        out["cubic_x"] = t["cubic_x"] + 2 * (g @ dx) + e * s1 + (tr + 2 * dxs + n * e) * dx
        out["quartic_x"] = t["quartic_x"] + 4 * (dx @ g @ dx) + n * e**2 + 4 * (dx @ t["cubic_x"]) + 2 * e * tr + 4 * e * dxs
        return out

    def all_reduce(self) -> "FeatureStats":
        """Sum the statistics of every ``torch.distributed`` rank, in place; a no-op without a process group.

        Collective: every rank must call it, also ranks that saw no samples. Ranks first agree on
        shapes, then rank 0 broadcasts one common shift (the global mean), every rank re-bases its
        sums to it, and a plain all-reduce sum merges them. Works with the gloo (CPU) and NCCL
        (CUDA) backends, hence under ``accelerate`` and ``torchrun``.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        headers: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(headers, self._header())
        filled = [h for h in headers if h["n"] > 0]
        if not filled:
            return self
        for h in filled[1:]:
            _check_compatible(filled[0], h)
        n_classes = max(h["n_classes"] or 0 for h in filled)
        home, device = self.device, collective_device(dist)  # NCCL reduces CUDA tensors only
        if self.n == 0:
            self.kind, self.folds = filled[0]["kind"], filled[0]["shapes"]["fold_count"][0]
            self._t = {name: torch.zeros(shape, dtype=_F64) for name, shape in filled[0]["shapes"].items()}
        self._t = {name: t.to(device) for name, t in self._t.items()}
        n_total = sum(h["n"] for h in headers)
        # One shift for all ranks: the global mean. Rank 0 broadcasts its copy because not every
        # backend and algorithm promises bit-identical all-reduce results on every rank.
        shifts = {}
        for name, total in zip(_SHIFTS, ("sum_x", "sum_y")):
            if name in self._t:
                s = self.n * self._t[name] + self._t[total]
                dist.all_reduce(s)
                dist.broadcast(s, src=0)
                shifts[name] = s / n_total
        sums = _pad_classes(self._reshifted(shifts), n_classes)
        for name in sorted(sums):  # the same order on every rank
            dist.all_reduce(sums[name])
        self._t = {name: t.to(home or device) for name, t in {**shifts, **sums}.items()}
        self.n = n_total
        return self

    def _header(self) -> dict[str, Any]:
        return {
            "n": self.n, "kind": self.kind, "n_classes": self.n_classes,
            "shapes": {name: tuple(t.shape) for name, t in self._t.items()},
        }

    # ------------------------------------------------------------------ views for solvers
    def centered(self) -> CenteredStats:
        """Statistics about the sample mean, as float64 numpy arrays (see :class:`CenteredStats`)."""
        if self.n == 0:
            raise InvalidInputError("no samples were accumulated: call update() with at least one batch first.")
        t = self._t
        # Moving the shift to the mean is the centring: dx = c - mean = -S1 / N.
        moved = self._moved(-t["sum_x"] / self.n, -t["sum_y"] / self.n if "sum_y" in t else None, folds=False)
        c = {k: v.detach().cpu().numpy() for k, v in moved.items()}
        mean = {k: (self._t[k] + self._t[s] / self.n).detach().cpu().numpy() for k, s in zip(_SHIFTS, ("sum_x", "sum_y")) if k in t}
        return CenteredStats(
            n=self.n, mean_x=mean["shift_x"], scatter_x=c["gram_x"], quartic_x=float(c["quartic_x"]),
            class_count=c.get("class_count"), class_scatter=c.get("class_sum_x"),
            head_hard=c.get("head_hard"), head_soft=c.get("head_soft"),
            mean_y=mean.get("shift_y"), cross=c.get("cross_xy"), scatter_y=c.get("gram_y"),
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the statistics to one safetensors file (tensors + JSON metadata), atomically.

        The file appears complete or not at all: it is written beside ``path`` and renamed.
        """
        from safetensors.torch import save_file

        if self.n == 0:
            raise InvalidInputError("refusing to save empty statistics: no batch was accumulated.")
        path = Path(path)
        meta = {"format": _FORMAT, "version": _VERSION, "n": self.n, "kind": self.kind}
        tensors = {k: v.detach().cpu().contiguous() for k, v in self._t.items()}
        return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"hf_emms": json.dumps(meta)}))

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> "FeatureStats":
        """Read statistics written by :meth:`save`."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise StatsFileError(f"no statistics file at {path}.")
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as f:
                meta = json.loads((f.metadata() or {}).get("hf_emms", "null"))
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, json.JSONDecodeError) as e:
            raise StatsFileError(f"{path} is not a readable safetensors file ({e}); re-run the extraction.") from e
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise StatsFileError(f"{path} was not written by FeatureStats.save (no '{_FORMAT}' metadata).")
        if meta.get("version") != _VERSION:
            raise StatsFileError(f"{path} has statistics format version {meta.get('version')}; this hf-emms reads {_VERSION}.")
        required = set(_REQUIRED.get(meta.get("kind"), ()))
        optional = set(_HEAD) if meta.get("kind") == "classes" else set()
        present = set(tensors) - required
        if not required or not required <= set(tensors) or present not in (set(), optional):
            raise StatsFileError(f"{path} holds tensors {sorted(tensors)}; expected {sorted(required)}, with both or none of {_HEAD}.")
        n = meta.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise StatsFileError(f"{path} records n = {n!r}; expected a sample count >= 1.")
        problem = _shape_problem({k: tuple(v.shape) for k, v in tensors.items()})
        if problem:
            raise StatsFileError(f"{path} is inconsistent: {problem}.")
        out = cls(folds=int(tensors["fold_count"].shape[0]))
        out.n, out.kind, out._t = n, meta["kind"], {k: v.to(_F64) for k, v in tensors.items()}
        return out


def as_tensor(a: Any, name: str, *, device: torch.device | None) -> torch.Tensor:
    """A torch view (or copy) of numeric array-like input, on ``device`` when one is given."""
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":
            raise InvalidInputError(f"{name} must be real numbers; got an array of dtype {arr.dtype}.")
        if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:  # long double: torch has no such type
            arr = arr.astype(np.float64)
        # torch needs native byte order and warns on read-only memory (mmap), though we only read it.
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    if torch.is_complex(t):
        raise InvalidInputError(f"{name} must be real-valued; got dtype {t.dtype}.")
    return t if device is None else t.to(device)


_WORK = threading.local()


def _work_buffer(name: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A float64 work buffer reused across batches and accumulators (one set per thread, as large as the
    largest batch seen): fresh batch-sized allocations cost more in page faults than the arithmetic
    they hold (measured: 10 ms vs 1.6 ms to convert a 4096 x 1024 float32 batch)."""
    buffers = _WORK.__dict__.setdefault("buffers", {})
    buf = buffers.get((name, device))
    if buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
        buf = buffers[(name, device)] = torch.empty(shape, dtype=_F64, device=device)
    return buf[: shape[0]]


def _gram(xc: torch.Tensor, out: torch.Tensor, blocks: int = 4) -> torch.Tensor:
    """xc^T xc into ``out``, computing only the upper block triangle and mirroring it: 10/16 of the flops
    of one matmul (torch has no BLAS syrk; calling numpy's from here fights torch's threads for the cores)."""
    d = xc.shape[1]
    step = max(-(-d // blocks), 1)
    for lo in range(0, d, step):
        torch.mm(xc[:, lo : lo + step].T, xc[:, lo:], out=out[lo : lo + step, lo:])
    for lo in range(step, d, step):
        out[lo : lo + step, :lo] = out[:lo, lo : lo + step].T
    return out


_MOVABLE = ("sum_x", "gram_x", "class_count", "class_sum_x", "sum_y", "cross_xy", "gram_y")


def move_sums(t: dict[str, torch.Tensor], n: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Sums about the shifts (c - dx, d - dy) from sums about (c, d), for any subset of ``_MOVABLE``.

    Every tensor may carry leading batch dims L (e.g. one entry per fold), shared by the count ``n`` (L),
    ``dx`` (L, D1) or (D1,), and ``dy`` (L, D2, K) or (D2, K). With S1 = sum(x - c), G = sum (x - c)(x - c)^T:
      S1' = S1 + n dx,   G' = G + dx S1^T + S1 dx^T + n dx dx^T,   class sums' = class sums + n_c dx,
    and likewise for the F-label sums and the feature x F-label cross products. Counts do not move.
    """
    out = dict(t)
    if "sum_x" in t:
        s1 = t["sum_x"]
        out["sum_x"] = s1 + n[..., None] * dx
        if "gram_x" in t:
            out["gram_x"] = (
                t["gram_x"] + dx[..., :, None] * s1[..., None, :] + s1[..., :, None] * dx[..., None, :]
                + n[..., None, None] * dx[..., :, None] * dx[..., None, :]
            )
    if "class_sum_x" in t:
        out["class_sum_x"] = t["class_sum_x"] + t["class_count"][..., None] * dx[..., None, :]
    if "sum_y" in t:
        sy = t["sum_y"]
        out["sum_y"] = sy + n[..., None, None] * dy
        if "cross_xy" in t:
            out["cross_xy"] = (
                t["cross_xy"] + dx[..., :, None, None] * sy[..., None, :, :] + t["sum_x"][..., :, None, None] * dy[..., None, :, :]
                + n[..., None, None, None] * dx[..., :, None, None] * dy[..., None, :, :]
            )
        if "gram_y" in t:
            out["gram_y"] = (
                t["gram_y"] + dy[..., :, :, None] * sy[..., :, None, :] + sy[..., :, :, None] * dy[..., :, None, :]
                + n[..., None, None, None] * dy[..., :, :, None] * dy[..., :, None, :]
            )
    return out


def fold_of(ids: torch.Tensor, folds: int) -> torch.Tensor:
    """Fold of each sample id: Knuth's multiplicative hash modulo 2^32, then modulo ``folds``."""
    return (ids * 2654435761) % 2**32 % folds


def _raise_not_finite(a: torch.Tensor, name: str) -> None:
    bad = (~torch.isfinite(a.to(_F64))).reshape(a.shape[0], -1).any(1).nonzero()
    where = f" (first at batch row {int(bad[0])})" if len(bad) else " (the batch sums overflow float64)"
    raise InvalidInputError(
        f"{name} contain NaN or inf{where}. Check the model outputs (fp16 overflow?) or the data before scoring; "
        "the statistics were left unchanged."
    )


def _pad_classes(t: dict[str, torch.Tensor], n_classes: int) -> dict[str, torch.Tensor]:
    """Class-indexed tensors zero-padded to ``n_classes`` rows (class ids appear as batches come)."""
    out = dict(t)
    for name, dim in _CLASS_DIM.items():
        if name in t and t[name].shape[dim] < n_classes:
            shape = list(t[name].shape)
            shape[dim] = n_classes - shape[dim]
            out[name] = torch.cat([t[name], t[name].new_zeros(shape)], dim)
    return out


def head_tables(logits: torch.Tensor, y: torch.Tensor, n_classes: int) -> dict[str, torch.Tensor]:
    """(class, argmax source class) counts for NCE and per-class summed source probabilities for LEEP."""
    z = logits.shape[1]
    hard = torch.bincount(y * z + logits.argmax(1), minlength=n_classes * z).reshape(n_classes, z).to(_F64)
    soft = torch.zeros(n_classes, z, dtype=_F64, device=logits.device).index_add_(0, y, torch.softmax(logits, 1))
    return {"head_hard": hard, "head_soft": soft}


def _check_compatible(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Headers of two non-empty accumulators: same kind, same shapes but for the number of classes."""
    def shapes(h: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        return {k: tuple(d for i, d in enumerate(v) if i != _CLASS_DIM.get(k)) for k, v in h["shapes"].items()}

    if a["kind"] != b["kind"] or shapes(a) != shapes(b):
        describe = lambda h: {k: v for k, v in shapes(h).items() if k in ("sum_x", "sum_y", "fold_count", *_HEAD)}  # noqa: E731
        raise IncompatibleStatsError(
            f"cannot merge {a['kind']} statistics {describe(a)} with {b['kind']} statistics {describe(b)}: they must "
            "come from features of one width, one kind of labels, one number of folds, and head logits on both "
            "sides or neither."
        )


def _common_shifts(parts: list[FeatureStats]) -> dict[str, torch.Tensor]:
    """The pooled mean of the parts: the shift their merged sums are taken about."""
    n = sum(p.n for p in parts)
    dev = parts[0].device
    return {
        name: sum(p.n * p._t[name].to(dev) + p._t[total].to(dev) for p in parts) / n
        for name, total in zip(_SHIFTS, ("sum_x", "sum_y"))
        if name in parts[0]._t
    }


def _shape_problem(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """What is inconsistent about a set of statistics' shapes, or None."""
    d1 = shapes["sum_x"][0] if len(shapes["sum_x"]) == 1 else -1
    c = shapes["class_count"][0] if "class_count" in shapes else None
    z = shapes["head_soft"][1] if len(shapes.get("head_soft", ())) == 2 else None
    d2k = shapes.get("sum_y")
    f = shapes["fold_count"][0] if len(shapes.get("fold_count", ())) == 1 and shapes["fold_count"][0] >= 2 else -1
    expected = {
        "shift_x": (d1,), "sum_x": (d1,), "gram_x": (d1, d1), "cubic_x": (d1,), "quartic_x": (),
        "class_count": (c,), "class_sum_x": (c, d1), "head_hard": (c, z), "head_soft": (c, z),
    }
    if d2k is not None and len(d2k) == 2:
        d2, k = d2k
        expected.update(shift_y=(d2, k), sum_y=(d2, k), cross_xy=(d1, d2, k), gram_y=(d2, k, k))
    expected.update({f"fold_{name}": (f, *expected[name]) for name in _MOVABLE if name in expected})
    expected["fold_count"] = (f,)
    for name, shape in shapes.items():
        if d1 < 1 or expected.get(name) != shape:
            return f"{name} has shape {shape}, expected {expected.get(name)}"
    return None


def collective_device(dist: Any) -> torch.device:
    """Where tensors must live for the process group's collectives (NCCL: the current CUDA device)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
