"""What the solver's entry points accept: array conversion, class-id checks, and the memory budget of statistics.

Every check here runs before anything is allocated or accumulated, so bad input gets one clear
``InvalidInputError`` (never an ``OverflowError``, ``IndexError`` or an allocator failure), and a batch that
fails leaves the statistics unchanged.

Class ids. Labels are positions in per-class tables (``FeatureStats`` keeps ``folds + 1`` tables of C x D1
sums, C = largest id + 1), so they must be integers in ``[0, MAX_CLASSES)``; raw label values (years, hashes,
sparse codes such as [0, 10**7]) are refused by the streaming accumulator with the fix in the message. The
in-memory entry points, which see every label at once (``emms_score``, ``leep_score``), re-index sparse ids to
the classes present themselves (:func:`compact_class_ids`) and take the matching rows of the class-embedding
tables, so they score such labels as if they were dense.

Memory budget. The statistics of one accumulator may take at most :func:`max_stats_bytes` bytes: the
environment variable ``HF_EMMS_MAX_STATS_BYTES`` (read at each check; e.g. ``16e9``), else
``DEFAULT_MAX_STATS_BYTES`` (8 GiB). :func:`stats_bytes` counts what an accumulator allocates (the totals, the
per-fold copies, the batch's own tables and the work buffers); a batch whose statistics would exceed the
budget is refused before anything is allocated, naming the sizes and what to do (fewer feature dimensions,
class ids re-encoded to 0..C-1, or a larger budget).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError

_F64 = torch.float64
MAX_CLASSES = 2**18  # class ids must be below this (262,144 classes): C x D1 tables are kept per fold
DEFAULT_MAX_STATS_BYTES = 8 * 2**30
BUDGET_ENV = "HF_EMMS_MAX_STATS_BYTES"
_GIB = 2**30
RE_ENCODE = (
    "Re-encode the labels to consecutive ids 0..C-1 (datasets: dataset.class_encode_column(column); numpy: "
    "classes, y = np.unique(y, return_inverse=True), with class_embeddings rows in `classes` order), or score "
    "in memory with emms_score, which does this itself."
)


def as_tensor(a: Any, name: str, *, device: torch.device | None) -> torch.Tensor:
    """A torch view (or copy) of numeric array-like input, on ``device`` when one is given."""
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError, OverflowError) as e:  # ragged nested lists, unconvertible objects
            raise InvalidInputError(f"{name} must be a rectangular array of real numbers ({e}).") from None
        if arr.dtype.kind not in "biuf":
            raise InvalidInputError(f"{name} must be real numbers; got an array of dtype {arr.dtype}.")
        if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:  # long double: torch has no such type
            arr = arr.astype(np.float64)
        if arr.dtype.kind == "u" and arr.dtype.itemsize >= 2:  # torch has no general uint16-64 arithmetic
            if arr.size and int(arr.max()) > np.iinfo(np.int64).max:
                raise InvalidInputError(f"{name} hold values up to {int(arr.max())}, beyond int64.")
            arr = arr.astype(np.int64)
        # torch needs native byte order and warns on read-only memory (mmap), though we only read it.
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    if torch.is_complex(t):
        raise InvalidInputError(f"{name} must be real-valued; got dtype {t.dtype}.")
    if t.dtype in (torch.uint16, torch.uint32, torch.uint64):
        t = t.to(torch.int64)
    return t if device is None else t.to(device)


_MAX_ABS = 1e100  # larger values overflow the sums of squares (and of fourth powers) that the scores take


def check_magnitude(t: torch.Tensor, name: str) -> None:
    """Refuse finite values so large that sums of their squares overflow float64 (NaN/inf are reported later,
    naming the row)."""
    # float32/16 and bfloat16 cannot hold a finite value above _MAX_ABS (their largest is about 3.4e38): nothing to
    # check, and skipping saves a masked copy of every batch.
    if t.numel() and torch.is_floating_point(t) and torch.finfo(t.dtype).max > _MAX_ABS:
        finite = t[torch.isfinite(t)]
        if finite.numel() and float(finite.abs().max()) > _MAX_ABS:
            raise InvalidInputError(
                f"{name} are too large (values up to {float(finite.abs().max()):.3g}): their squares overflow float64. Rescale "
                "them (EMMS standardises columns, so the scale does not change its score)."
            )


def check_batch_sums(x: torch.Tensor, y: torch.Tensor, sums: dict[str, torch.Tensor],
                     sq_norm: torch.Tensor) -> None:
    """The finiteness checks of one batch's sums, with one read of the device for all of them (each read waits for
    the queued work), raised in order of precedence: NaN/inf features, squares or fourth powers that overflow
    float64, NaN/inf F-labels (when ``sums`` holds ``sum_y``). ``sq_norm``: each row's |x - c|^2."""
    checks = [torch.isfinite(sums["sum_x"]).all(),
              torch.isfinite(sums["quartic_x"]) & torch.isfinite(sq_norm.sum())]  # sum |x - c|^2 = tr(Gram)
    if "sum_y" in sums:
        checks.append(torch.isfinite(sums["sum_y"]).all())
    finite_x, small_x, *finite_y = torch.stack(checks).tolist()
    if not finite_x:
        raise_not_finite(x, "features")
    if not small_x:
        raise InvalidInputError(
            "features are too large: their squares or fourth powers overflow float64. Rescale them "
            "(EMMS standardises columns, so the scale does not change its score)."
        )
    if finite_y and not finite_y[0]:
        raise_not_finite(y, "label_embeddings")


def raise_not_finite(a: torch.Tensor, name: str) -> None:
    """Raise the error for NaN/inf values in ``a`` (B, ...), naming the first bad row."""
    bad = (~torch.isfinite(a.to(_F64))).reshape(a.shape[0], -1).any(1).nonzero()
    where = f" (first at batch row {int(bad[0])})" if len(bad) else " (the batch sums overflow float64)"
    raise InvalidInputError(
        f"{name} contain NaN or inf{where}. Check the model outputs (fp16 overflow?) or the data before scoring; "
        "the statistics were left unchanged."
    )


def check_class_ids(labels: Any, b: int, *, device: torch.device | None = None) -> torch.Tensor:
    """Class ids of one batch as int64, shape (B,), each in ``[0, MAX_CLASSES)``.

    Parameters
    ----------
    labels : array-like of int of shape (B,)
    b : int
        Rows the labels must have (the batch's features).

    Raises
    ------
    InvalidInputError
        Wrong shape, non-integer dtype (float, bool), negative ids, or ids that are raw label values
        (>= ``MAX_CLASSES``): the message names the largest id and the number of distinct classes.
    """
    y = as_tensor(labels, "labels", device=device)
    if y.ndim != 1 or y.shape[0] != b:
        raise InvalidInputError(f"labels must have shape ({b},) to match features; got {tuple(y.shape)}.")
    if b == 0:
        return y.long()  # np.asarray([]) is float: an empty batch has no dtype to check
    if torch.is_floating_point(y) or y.dtype == torch.bool:
        raise InvalidInputError(
            f"labels must hold integer class ids; got dtype {y.dtype}. "
            "For regression targets or other per-sample F-labels pass label_embeddings= instead."
        )
    y = y.long()
    if int(y.min()) < 0:
        raise InvalidInputError(f"labels must be class ids >= 0; got {int(y.min())}.")
    top = int(y.max())
    if top >= MAX_CLASSES:
        raise InvalidInputError(
            f"labels hold class id {top} but only {len(torch.unique(y))} distinct classes in this batch: class ids "
            f"index per-class tables and must be 0..C-1 with C <= {MAX_CLASSES}. " + RE_ENCODE
        )
    return y


def compact_class_ids(labels: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """All class ids of an in-memory task, re-indexed to the classes present when they are sparse.

    Parameters
    ----------
    labels : array-like of int of shape (N,)

    Returns
    -------
    ids : ndarray of int64, shape (N,)
        The labels unchanged when they are dense (largest id + 1 at most twice the number of distinct ids,
        and below ``MAX_CLASSES``: today's layout), else their positions in ``classes``.
    classes : ndarray of int64, shape (C,), or None
        The original id of each re-indexed class (sorted), None when the labels were kept as they are.
    """
    y = as_tensor(labels, "labels", device=None)
    if y.ndim != 1:
        raise InvalidInputError(f"labels must be 1-D (one class id per sample); got shape {tuple(y.shape)}.")
    if len(y) and (torch.is_floating_point(y) or y.dtype == torch.bool):
        raise InvalidInputError(
            f"labels must hold integer class ids; got dtype {y.dtype}. "
            "For regression targets or other per-sample F-labels pass label_embeddings= instead."
        )
    y = y.long().cpu().numpy()
    if not len(y):
        return y, None
    if int(y.min()) < 0:
        raise InvalidInputError(f"labels must be class ids >= 0; got {int(y.min())}.")
    classes, inverse = np.unique(y, return_inverse=True)
    if int(classes[-1]) < min(MAX_CLASSES, 2 * len(classes)):
        return y, None
    return inverse.astype(np.int64).reshape(-1), classes


def max_stats_bytes() -> int:
    """The memory budget of one accumulator's statistics, in bytes (see the module docstring)."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_STATS_BYTES
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (np.isfinite(value) and value >= 1):
        raise InvalidInputError(f"{BUDGET_ENV} must be a number of bytes >= 1 (e.g. 16e9); got {raw!r}.")
    return int(value)


def stats_bytes(
    d1: int, folds: int, *, n_classes: int = 0, n_source: int = 0, label_shape: tuple[int, int] | None = None,
    batch: int = 0,
) -> int:
    """Bytes of float64 memory an accumulator with these shapes holds while it folds a batch in.

    Counts the totals and the ``folds`` per-fold copies of every sum (Gram (D1, D1), class tables (C, D1) and
    counts, head tables (C, Z), F-label cross products (D1, D2, K) and products (D2, K, K)), the batch's own
    copies of the class and head tables (it builds them before adding), and the work buffers (the float64 batch
    (B, D1) and its rows sorted by fold, one (D1, D1) Gram, one (D1, D2 K) cross product).
    """
    copies = folds + 1
    words = 3 * d1 + 1 + folds + folds * d1 + copies * d1 * d1  # shift, sum, cubic, quartic; fold counts and sums; Grams
    words += 2 * batch * d1 + d1 * d1  # work buffers
    if n_classes:
        tables = copies * n_classes * (d1 + 1) + 2 * n_classes * n_source
        words += 2 * tables  # the sums and the batch's tables
    if label_shape is not None:
        d2k = label_shape[0] * label_shape[1]
        words += (2 + folds) * d2k + copies * d1 * d2k + copies * d2k * label_shape[1]
        words += 2 * batch * d2k + 2 * d1 * d2k  # the centred batch and its fold order, one fold's cross product x 2
    return 8 * words


def check_stats_memory(
    d1: int, folds: int, *, n_classes: int = 0, n_source: int = 0, label_shape: tuple[int, int] | None = None,
    batch: int = 0,
) -> None:
    """Raise a clear ``InvalidInputError`` when :func:`stats_bytes` exceeds :func:`max_stats_bytes`."""
    need, limit = stats_bytes(d1, folds, n_classes=n_classes, n_source=n_source, label_shape=label_shape, batch=batch), max_stats_bytes()
    if need <= limit:
        return
    gram = 8 * (folds + 2) * d1 * d1
    tables = 8 * 2 * ((folds + 1) * n_classes * (d1 + 1) + 2 * n_classes * n_source)
    sizes = f"{need / _GIB:.3g} GiB needed, the limit is {limit / _GIB:.3g} GiB ({BUDGET_ENV})"
    if tables > gram:
        raise InvalidInputError(
            f"statistics for {n_classes} class ids (largest {n_classes - 1}) of {d1}-dim features with {folds} folds "
            f"do not fit: {sizes}. " + RE_ENCODE + f" Or raise {BUDGET_ENV}."
        )
    raise InvalidInputError(
        f"features of width {d1} are too wide: their {folds} + 2 float64 Gram matrices of {d1} x {d1} take "
        f"{gram / _GIB:.3g} GiB; {sizes}. Pool or project the features to fewer dimensions (e.g. a random or PCA "
        f"projection to a few thousand), or raise {BUDGET_ENV}."
    )


def check_class_space_memory(n_classes: int, k: int, d2: int, folds: int) -> None:
    """Raise a clear ``InvalidInputError`` when the solvers' class-space pieces exceed :func:`max_stats_bytes`.

    With class labels the solvers work in class space: per fold a (C, C) target matrix and its residual
    Omega, the (K, K, C, C) products of the tables, and the tables themselves (K, C, D2; one-hot: D2 = C).
    """
    need, limit = 8 * (n_classes * n_classes * (folds + 2 + k * k) + 2 * k * n_classes * d2), max_stats_bytes()
    if need > limit:
        raise InvalidInputError(
            f"scoring {n_classes} class ids (largest {n_classes - 1}) with {k} table(s) of width {d2} needs "
            f"{need / _GIB:.3g} GiB of (C, C) class-space matrices; the limit is {limit / _GIB:.3g} GiB ({BUDGET_ENV}). "
            "Class ids with no samples count too: " + RE_ENCODE + f" Or raise {BUDGET_ENV}."
        )


def check_sample_ids(sample_ids: Any, b: int, *, start: int, device: torch.device) -> torch.Tensor:
    """Sample ids of one batch as int64 (B,); None is the running count ``start .. start + B - 1``."""
    if sample_ids is None:
        return torch.arange(start, start + b, device=device)
    ids = as_tensor(sample_ids, "sample_ids", device=device)
    if ids.shape != (b,) or (b and (torch.is_floating_point(ids) or ids.dtype == torch.bool or int(ids.min()) < 0)):
        raise InvalidInputError(f"sample_ids must be {b} integers >= 0 (one per feature row); got {tuple(ids.shape)} {ids.dtype}.")
    return ids.long()


def check_head_logits(x: torch.Tensor, head_logits: Any, kind: str, *, started: bool, seen: int | None) -> torch.Tensor | None:
    """Classifier-head logits of one batch as float64 (B, Z), or None; ``seen``: Z of earlier batches (None: none)."""
    if started and (head_logits is None) != (seen is None):
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
    if started and z.shape[1] != seen:
        raise InvalidInputError(f"head_logits have {z.shape[1]} source classes, earlier batches had {seen}.")
    z = z.to(_F64)
    if not torch.isfinite(z.sum(0)).all():
        raise_not_finite(z, "head_logits")
    return z


def check_targets(
    x: torch.Tensor, labels: Any, label_embeddings: Any, *, seen_kind: str | None,
    seen_label_shape: tuple[int, int] | None, seen_classes: int, folds: int, head_width: int | None,
) -> tuple[str, torch.Tensor]:
    """The batch's target kind ("classes" or "embeddings") and targets: class ids (B,) on the CPU, or F-labels
    (B, D2, K) on the features' device.

    Also checks that the statistics the batch makes the accumulator hold fit the memory budget
    (:func:`check_stats_memory`), before anything is allocated.
    """
    if (labels is None) == (label_embeddings is None):
        raise InvalidInputError(
            "give exactly one target: labels= (class ids, shape (B,)) or "
            "label_embeddings= (per-sample F-labels, shape (B, D2, K))."
        )
    kind = "classes" if labels is not None else "embeddings"
    if seen_kind is not None and kind != seen_kind:
        raise InvalidInputError(
            f"this accumulator holds {seen_kind} statistics; a batch with {kind} cannot join it. "
            "Use one FeatureStats per target kind."
        )
    b, d1 = x.shape
    if kind == "classes":  # class ids stay on the host: the index bookkeeping of FeatureStats.update is done there
        y = check_class_ids(labels, b, device=torch.device("cpu"))
        n_classes = max(int(y.max()) + 1 if b else 0, seen_classes)
        check_stats_memory(d1, folds, n_classes=n_classes, n_source=head_width or 0, batch=b)
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
    check_magnitude(y, "label_embeddings")
    if seen_label_shape is not None and tuple(y.shape[1:]) != seen_label_shape:
        raise InvalidInputError(
            f"label_embeddings have (D2, K) = {tuple(y.shape[1:])}, earlier batches had {seen_label_shape}."
        )
    check_stats_memory(d1, folds, label_shape=tuple(y.shape[1:]), batch=b)
    return kind, y
