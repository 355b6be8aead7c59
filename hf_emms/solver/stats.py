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

Beside this module: ``inputs.py`` (checks of every batch, class ids, the memory budget), ``kernels.py`` (the
batch arithmetic), ``centered.py`` (``CenteredStats``), ``stats_io.py`` (the file format of ``save``/``load``)
and ``collective.py`` (``all_reduce`` over ``torch.distributed``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidInputError
from .centered import CenteredStats
from .collective import all_reduce_stats, collective_device
from .inputs import (
    as_tensor, check_batch_sums, check_head_logits, check_magnitude, check_sample_ids, check_stats_memory, check_targets,
)
from .kernels import _CLASS_DIM, _HEAD, _MOVABLE, _SHIFTS, _TARGET_SUMS, _check_compatible, _gram, _pad_classes, _work_buffer, fold_of, head_tables, to_device  # noqa: F401
from .shifts import move_sums

__all__ = [  # with the names that moved out and stay importable from here
    "N_FOLDS", "CenteredStats", "FeatureStats", "as_tensor", "collective_device", "fold_of", "head_tables", "move_sums",
]

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



def on_float64_device(t: Any) -> Any:
    """``t``, moved to the host when it lives on a device without float64 (Apple's ``mps``): the sums are float64,
    so a ranking with ``device="mps"`` runs its forward passes there and accumulates on the CPU."""
    device = getattr(t, "device", None)
    return t.cpu() if getattr(device, "type", None) == "mps" else t


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
        features, head_logits = on_float64_device(features), on_float64_device(head_logits)
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
        check_magnitude(x, "features")
        logits = check_head_logits(x, head_logits, "classes" if labels is not None else "embeddings",
                                   started=bool(self._t), seen=self.n_source_classes)
        kind, y = check_targets(
            x, labels, label_embeddings, seen_kind=self.kind, seen_label_shape=self.label_shape,
            seen_classes=self.n_classes or 0, folds=self.folds, head_width=None if logits is None else logits.shape[1],
        )
        # Index bookkeeping (sample ids, folds, class ids, their counts, the rows of each fold) is done on the host,
        # where the ids and labels come from, and reaches the device in one asynchronous copy: on a GPU each
        # bincount, unique or nonzero of a device tensor, like each copy from pageable memory, would wait for the
        # queued forward passes (a host sync) and leave the device idle while the next batch is launched.
        host, dev = torch.device("cpu"), x.device
        fold_h = fold_of(check_sample_ids(sample_ids, x.shape[0], start=self.n, device=host), self.folds)
        if x.shape[0] == 0:
            return self
        f_count, d1 = self.folds, x.shape[1]
        count_h = torch.bincount(fold_h, minlength=f_count)
        order_h = torch.argsort(fold_h, stable=True)  # the rows of fold 0, then of fold 1, ..., each in batch order
        if kind == "classes":
            n_classes = max(int(y.max()) + 1, self.n_classes or 0)
            cell_h = fold_h * n_classes + y
            order, count, cell, class_count = to_device(
                dev, order_h, count_h, cell_h, torch.bincount(cell_h, minlength=f_count * n_classes))
        else:
            fold, order, count = to_device(dev, fold_h, order_h, count_h)
        xc = _work_buffer("xc", tuple(x.shape), dev).copy_(x)
        shift_x = self._t["shift_x"] if self._t else xc.mean(0)
        xc.sub_(shift_x)
        batch = {"sum_x": xc.sum(0)}
        batch["fold_count"] = count.to(_F64)
        batch["fold_sum_x"] = None  # class labels: the fold x class sums summed over classes (below), one scatter less
        if kind != "classes":
            batch["fold_sum_x"] = torch.zeros(f_count, d1, dtype=_F64, device=dev).index_add_(0, fold, xc)
        sq_norm = torch.linalg.vector_norm(xc, dim=1).square_()
        batch["cubic_x"] = sq_norm @ xc
        batch["quartic_x"] = sq_norm @ sq_norm

        new = {"shift_x": shift_x}
        shapes = {"gram_x": (d1, d1), "fold_gram_x": (f_count, d1, d1)}  # summed fold by fold below
        if kind == "classes":
            batch["fold_class_count"] = class_count.reshape(f_count, n_classes).to(_F64)
            batch["fold_class_sum_x"] = (
                torch.zeros(f_count * n_classes, d1, dtype=_F64, device=dev).index_add_(0, cell, xc)
                .reshape(f_count, n_classes, d1)
            )
            batch["fold_sum_x"] = batch["fold_class_sum_x"].sum(1)
            batch["class_count"] = batch["fold_class_count"].sum(0)
            batch["class_sum_x"] = batch["fold_class_sum_x"].sum(0)
            if logits is not None:
                batch.update(head_tables(logits, y.to(dev, non_blocking=True), n_classes))
        else:
            shift_y = self._t["shift_y"] if self._t else y.to(_F64).mean(0)
            yc = y.to(_F64) - shift_y
            batch["sum_y"] = yc.sum(0)
            _, d2, k = yc.shape
            batch["fold_sum_y"] = torch.zeros(f_count, d2, k, dtype=_F64, device=dev).index_add_(0, fold, yc)
            shapes.update(cross_xy=(d1, d2, k), fold_cross_xy=(f_count, d1, d2, k), gram_y=(d2, k, k),
                          fold_gram_y=(f_count, d2, k, k))
            new["shift_y"] = shift_y
        check_batch_sums(x, y, batch, sq_norm)

        # Everything is checked: commit (a batch with bad input leaves no trace). The Gram and cross products go
        # straight into the sums fold by fold: one fold's rows at a time is all the extra memory they take, and
        # together the folds cost what one Gram of the batch costs.
        if not self._t:
            self.kind = kind
            self._t = {**new, **{name: torch.zeros_like(t) for name, t in batch.items()},
                       **{name: torch.zeros(shape, dtype=_F64, device=dev) for name, shape in shapes.items()}}
        if kind == "classes":
            self._t.update(_pad_classes(self._t, batch["class_count"].shape[0]))
        for name, t in batch.items():
            self._t[name] += t
        t = self._t
        blocks = 1 if dev.type == "cuda" else 4  # a GPU gains nothing from the half-Gram blocks; it pays their launches
        xs = torch.index_select(xc, 0, order, out=_work_buffer("by_fold", tuple(x.shape), dev))
        ys = None if kind != "embeddings" else yc.index_select(0, order)
        end = 0
        for f, rows in enumerate(count_h.tolist()):
            if not rows:
                continue
            end += rows
            xf = xs[end - rows : end]  # fold f's rows, contiguous
            g = _gram(xf, out=_work_buffer("gram", (d1, d1), dev), blocks=blocks)
            t["fold_gram_x"][f] += g
            t["gram_x"] += g
            if kind == "embeddings":
                yf = ys[end - rows : end]
                cross = xf.T @ yf.reshape(rows, d2 * k)
                t["fold_cross_xy"][f] += cross.reshape(d1, d2, k)
                t["cross_xy"] += cross.reshape(d1, d2, k)
                gy = torch.bmm(yf.permute(1, 2, 0), yf.permute(1, 0, 2))  # (D2, K, K)
                t["fold_gram_y"][f] += gy
                t["gram_y"] += gy
        self.n += int(x.shape[0])
        return self

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
        if n_classes:
            check_stats_memory(self.dim, self.folds, n_classes=n_classes, n_source=self.n_source_classes or 0)
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
        (see :func:`move_sums`), plus, with u = x - c,
        a = |u|^2, b = u . dx and e = |dx|^2 (so that |x - c + dx|^2 = a + 2b + e), the higher moments Ledoit-Wolf
        needs:
          sum |u + dx|^2 (u + dx) = cubic + 2 G dx + e S1 + (tr G + 2 dx . S1 + N e) dx
          sum |u + dx|^4 = quartic + 4 dx^T G dx + N e^2 + 4 dx . cubic + 2 e tr G + 4 e dx . S1
        """
        t, n = self._t, self.n
        s1, g = t["sum_x"], t["gram_x"]
        e, tr, dxs = dx @ dx, torch.trace(g), dx @ s1
        # Without ``folds`` (centring for the solvers) the per-fold sums are left out: F more Grams not copied.
        out = {k: v.clone() for k, v in t.items() if k not in _SHIFTS and (folds or not k.startswith("fold_"))}
        count = torch.tensor(float(n), dtype=_F64, device=s1.device)
        out.update(move_sums({k: v for k, v in t.items() if k in _MOVABLE}, count, dx, dy))
        if folds:
            moved = move_sums({k[5:]: v for k, v in t.items() if k.startswith("fold_") and k != "fold_count"},
                              t["fold_count"], dx, dy)
            out.update({f"fold_{k}": v for k, v in moved.items()})
        out["cubic_x"] = t["cubic_x"] + 2 * (g @ dx) + e * s1 + (tr + 2 * dxs + n * e) * dx
        out["quartic_x"] = t["quartic_x"] + 4 * (dx @ g @ dx) + n * e**2 + 4 * (dx @ t["cubic_x"]) + 2 * e * tr + 4 * e * dxs
        return out

    def all_reduce(self) -> "FeatureStats":
        """Sum the statistics of every ``torch.distributed`` rank, in place; a no-op without a process group.

        Collective: every rank must call it, also ranks that saw no samples. Ranks first agree on
        shapes, then rank 0 broadcasts one common shift (the global mean), every rank re-bases its
        sums to it, and a plain all-reduce sum merges them. Works with the gloo (CPU) and NCCL
        (CUDA) backends, hence under ``accelerate`` and ``torchrun`` (``collective.py``).
        """
        return all_reduce_stats(self)

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

    # ------------------------------------------------------------------ persistence (``stats_io.py``)
    def save(self, path: str | os.PathLike) -> Path:
        """Write the statistics to one safetensors file (tensors + JSON metadata), atomically.

        The file appears complete or not at all: it is written beside ``path`` and renamed.
        """
        from .stats_io import save_stats

        return save_stats(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> "FeatureStats":
        """Read statistics written by :meth:`save`."""
        from .stats_io import load_stats

        return load_stats(path, device=device, cls=cls)


def _common_shifts(parts: list[FeatureStats]) -> dict[str, torch.Tensor]:
    """The pooled mean of the parts: the shift their merged sums are taken about."""
    n = sum(p.n for p in parts)
    dev = parts[0].device
    return {
        name: sum(p.n * p._t[name].to(dev) + p._t[total].to(dev) for p in parts) / n
        for name, total in zip(_SHIFTS, ("sum_x", "sum_y"))
        if name in parts[0]._t
    }


