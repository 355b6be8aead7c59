"""Label kinds: what each kind of label becomes before any encoder runs.

Every kind is parsed into a :class:`LabelPlan`: the distinct texts to embed, and for per-sample kinds a
sparse (N x U) weight matrix saying which texts make up each sample's F-label (a mean), plus numeric
targets used as they are. What each kind becomes:

================  ==============================================  ==================================================
kind              labels                                          F-label
================  ==============================================  ==================================================
classification    ``classes``: ClassLabel, list of names, or      per-class tables (C x D2 per encoder) of the cleaned,
                  ``{id: name}``                                  prompted class names, for ``emms(class_embeddings=)``
multilabel        per sample: class ids or names (``classes``     per sample: the mean of its classes' embeddings
                  gives the names)                                (a sample with no class: zeros)
regression        numbers, shape (N,) or (N, T)                   the targets themselves (N, T); with ``encode=True``
                                                                  also the numbers written out and embedded
text              per sample: a string, or several references     per sample: the mean of its references' embeddings
                  (captions, answers)
boxes             per sample: a box (4,), boxes (M, 4), or        box geometry (cx, cy, w, h) normalised to [0, 1],
                  ``{"boxes": ..., "texts": ...}`` (referring     averaged over the sample's boxes; with texts also
                  expressions or class names, one per box or one  the mean of the texts' embeddings
                  for all)
================  ==============================================  ==================================================
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError, LabelError
from ..options import BOX_FORMATS, TASK_KINDS
from ..solver.inputs import check_magnitude
from .names import class_names_from, clean_class_name, is_generic_name

LABEL_KINDS = TASK_KINDS  # every task kind has F-labels


@dataclass(frozen=True)
class LabelPlan:
    """Parsed labels.

    Attributes
    ----------
    texts : list of str
        U distinct texts to embed (task prompt applied). For classification: one per class, in id order.
    n_samples : int or None
        N (None for classification, whose F-labels are per class).
    indptr, indices, weights : ndarray or None
        Per-sample kinds with texts: CSR rows of the (N x U) matrix averaging text embeddings into samples.
    targets : ndarray of shape (N, T) or None
        Numeric targets used directly (regression values, box geometry).
    class_names : list of str or None
        Cleaned class names (classification, multilabel).
    """

    texts: list[str]
    n_samples: int | None = None
    indptr: np.ndarray | None = None
    indices: np.ndarray | None = None
    weights: np.ndarray | None = None
    targets: np.ndarray | None = None
    class_names: list[str] | None = None


def apply_prompt(prompt: str, text: str) -> str:
    return prompt.replace("{}", text, 1)


def _class_texts(classes: Any, prompt: str, clean: bool) -> tuple[list[str], list[str]]:
    names = class_names_from(classes)
    generic = [n for n in names if is_generic_name(n)]
    if generic:
        warnings.warn(
            f"class names such as {generic[0]!r} are placeholders: their embeddings say nothing about the classes. "
            "Pass the real names (classes=ClassLabel, a list, or an {id: name} mapping).",
            stacklevel=4,
        )
    cleaned = [clean_class_name(n) if clean else n.strip() for n in names]
    if len(set(cleaned)) < len(cleaned):
        dup = next(n for n in cleaned if cleaned.count(n) > 1)
        warnings.warn(f"two classes share the name {dup!r} (after cleaning): their F-labels are identical.", stacklevel=4)
    return cleaned, [apply_prompt(prompt, n) for n in cleaned]


def _csr(rows: list[list[int]], n_texts: int) -> dict[str, np.ndarray]:
    """Row-mean CSR arrays for rows of text ids (an empty row averages nothing: zeros)."""
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = np.array([i for r in rows for i in r], dtype=np.int64)
    weights = np.repeat(1.0 / np.maximum(counts, 1), counts)
    return {"indptr": indptr, "indices": indices, "weights": weights}


def _check_text(text: Any, where: str) -> str:
    if text is None:
        raise LabelError(f"{where} is None: every label needs a value (drop or fill the missing samples first).")
    if not isinstance(text, str):
        raise LabelError(f"{where} is {text!r} of type {type(text).__name__}; expected a string.")
    if not text.strip():
        raise LabelError(f"{where} is an empty string: there is nothing to embed (drop or fill those samples).")
    return text.strip()


def _as_samples(labels: Any, kind: str) -> list[Any]:
    if labels is None or isinstance(labels, (str, bytes, Mapping)) or not hasattr(labels, "__len__"):
        raise LabelError(f"{kind} labels must be a sequence with one entry per sample; got {type(labels).__name__}.")
    samples = list(labels)
    if not samples:
        raise LabelError(f"there are no {kind} labels: give one entry per sample.")
    return samples


class _Vocabulary:
    """Distinct texts in first-seen order, with their ids."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        return self.ids.setdefault(text, len(self.ids))

    @property
    def texts(self) -> list[str]:
        return list(self.ids)


def plan_classification(classes: Any, *, prompt: str = "{}", clean: bool = True) -> LabelPlan:
    names, texts = _class_texts(classes, prompt, clean)
    return LabelPlan(texts=texts, class_names=names)


def plan_multilabel(labels: Any, classes: Any, *, prompt: str = "{}", clean: bool = True) -> LabelPlan:
    if classes is None:
        raise LabelError("multilabel F-labels need classes= (a ClassLabel, a list of names, or an {id: name} mapping).")
    raw_names = class_names_from(classes)
    names, texts = _class_texts(raw_names, prompt, clean)
    by_name = {n: i for i, n in enumerate(raw_names)} | {n: i for i, n in enumerate(names)}
    rows = []
    for s, sample in enumerate(_as_samples(labels, "multilabel")):
        if sample is None or isinstance(sample, (str, bytes)) or not hasattr(sample, "__iter__"):
            raise LabelError(
                f"sample {s}: multilabel labels must be a list of class ids or names per sample; got {sample!r}."
            )
        items = list(np.asarray(sample).tolist()) if isinstance(sample, np.ndarray) else list(sample)
        if len({isinstance(i, str) for i in items}) > 1:
            raise LabelError(f"sample {s} mixes class ids and names ({items!r}): use one or the other.")
        row = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (str, numbers.Integral)):
                raise LabelError(f"sample {s}: {item!r} is not a class id (int) or class name (str).")
            if isinstance(item, str):
                if item not in by_name:
                    raise LabelError(f"sample {s}: unknown class name {item!r}; known: {raw_names[:10]}...")
                row.append(by_name[item])
            elif not 0 <= int(item) < len(names):
                raise LabelError(f"sample {s}: class id {item} is outside 0..{len(names) - 1} (there are {len(names)} classes).")
            else:
                row.append(int(item))
        rows.append(sorted(set(row)))
    return LabelPlan(texts=texts, n_samples=len(rows), class_names=names, **_csr(rows, len(texts)))


def _numeric(values: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except ValueError as exc:  # ragged
        raise LabelError(f"{what} must be a rectangular array of numbers: {exc}") from None
    if arr.dtype == object:
        bad = next((v for v in arr.ravel() if v is None or isinstance(v, (str, bytes))), None)
        if bad is not None or not all(isinstance(v, numbers.Real) for v in arr.ravel()):
            raise LabelError(f"{what} must all be numbers; found {bad!r}. Fill or drop missing values first.")
        arr = arr.astype(np.float64)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise LabelError(f"{what} must be numbers; got an array of dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise LabelError(f"{what} contain NaN or inf (first at flat index {int(np.argmin(np.isfinite(arr)))}).")
    try:
        check_magnitude(torch.from_numpy(arr), what)  # 1e300 is finite, but its square is not
    except InvalidInputError as exc:
        raise LabelError(str(exc)) from None
    return arr


def plan_regression(labels: Any, *, encode: bool = False, prompt: str = "{}") -> LabelPlan:
    targets = _numeric(_as_samples(labels, "regression"), "regression targets")
    if targets.ndim == 1:
        targets = targets[:, None]
    if targets.ndim != 2:
        raise LabelError(f"regression targets must have shape (N,) or (N, T); got {targets.shape}.")
    if not encode:
        return LabelPlan(texts=[], n_samples=len(targets), targets=targets)
    vocab = _Vocabulary()
    rows = [[vocab(apply_prompt(prompt, ", ".join(f"{v:.6g}" for v in row)))] for row in targets]
    return LabelPlan(texts=vocab.texts, n_samples=len(rows), targets=targets, **_csr(rows, len(vocab.ids)))


def plan_text(labels: Any, *, prompt: str = "{}") -> LabelPlan:
    vocab = _Vocabulary()
    rows = []
    for s, sample in enumerate(_as_samples(labels, "text")):
        refs = [sample] if isinstance(sample, str) or sample is None else sample
        if not isinstance(refs, Sequence) or isinstance(refs, bytes):
            raise LabelError(f"sample {s}: a text label is a string or a list of strings; got {type(sample).__name__}.")
        if not refs:
            raise LabelError(f"sample {s} has no reference text: every sample needs at least one.")
        rows.append([vocab(apply_prompt(prompt, _check_text(r, f"sample {s} reference {j}"))) for j, r in enumerate(refs)])
    return LabelPlan(texts=vocab.texts, n_samples=len(rows), **_csr(rows, len(vocab.ids)))


def _box_geometry(boxes: np.ndarray, size: Any, box_format: str, s: int) -> np.ndarray:
    """(M, 4) boxes in ``box_format`` -> (M, 4) normalised (cx, cy, w, h)."""
    if box_format == "xywh":
        boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    elif box_format == "cxcywh":
        boxes = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
    if size is not None:
        w, h = _numeric(size, f"image size of sample {s}")
        if w <= 0 or h <= 0:
            raise LabelError(f"sample {s}: image size must be positive (width, height); got {(w, h)}.")
        boxes = boxes / np.array([w, h, w, h])
    tol = 1e-6
    if ((boxes < -tol) | (boxes > 1 + tol)).any():
        raise LabelError(
            f"sample {s}: box coordinates {boxes.tolist()} are outside [0, 1]. Normalise them, or pass "
            "image_sizes= (width, height per sample) for pixel coordinates."
        )
    if (boxes[:, 2:] < boxes[:, :2] - tol).any():
        raise LabelError(f"sample {s}: a box ends before it starts ({boxes.tolist()} as x0, y0, x1, y1); check box_format=.")
    return np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1)


def _sample_boxes(sample: Any, s: int) -> tuple[np.ndarray, Any]:
    """One sample's boxes (M, 4) as given (no format applied) and its texts (None when it has none)."""
    texts = None
    if isinstance(sample, Mapping):
        unknown = set(sample) - {"boxes", "box", "texts", "text"}
        if unknown or not ({"boxes", "box"} & set(sample)):
            raise LabelError(f"sample {s}: a box label is a mapping with 'boxes' (or 'box') and optional 'texts' "
                             f"(or 'text'); got keys {sorted(sample)}.")
        texts = sample.get("texts", sample.get("text"))
        sample = sample.get("boxes", sample.get("box"))
    if sample is not None and (isinstance(sample, (str, bytes)) or not hasattr(sample, "__len__")):
        raise LabelError(f"sample {s}: a box label is 4 numbers (one box), a list of such boxes, or a mapping "
                         f"with 'boxes' and optional 'texts'; got {type(sample).__name__} {sample!r}. Is this "
                         "column the boxes (label_column=), and is task='boxes' right?")
    boxes = _numeric(sample, f"boxes of sample {s}") if sample is not None and len(sample) else np.zeros((0, 4))
    boxes = boxes[None] if boxes.ndim == 1 else boxes
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise LabelError(f"sample {s}: boxes must have shape (4,) or (M, 4); got {boxes.shape}.")
    return boxes, texts


def boxes_in_pixels(labels: Any) -> bool:
    """Whether any box coordinate is above 1: pixel coordinates, to be divided by each image's size (normalised
    coordinates are in [0, 1])."""
    samples = _as_samples(labels, "boxes")
    return any(len(b) and float(np.max(b)) > 1 + 1e-6 for b in (_sample_boxes(x, i)[0] for i, x in enumerate(samples)))


def plan_boxes(
    labels: Any, *, prompt: str = "{}", image_sizes: Any = None, box_format: str = "xyxy"
) -> LabelPlan:
    if box_format not in BOX_FORMATS:
        raise LabelError(f"box_format must be one of {BOX_FORMATS}; got {box_format!r}.")
    samples = _as_samples(labels, "boxes")
    if image_sizes is not None and len(image_sizes) != len(samples):
        raise LabelError(f"image_sizes has {len(image_sizes)} entries for {len(samples)} samples.")
    vocab, rows, geometry, with_texts = _Vocabulary(), [], [], set()
    for s, sample in enumerate(samples):
        boxes, texts = _sample_boxes(sample, s)
        size = None if image_sizes is None else image_sizes[s]
        geo = _box_geometry(boxes, size, box_format, s) if len(boxes) else np.zeros((0, 4))
        geometry.append(geo.mean(0) if len(geo) else np.zeros(4))
        texts = [texts] if isinstance(texts, str) else texts
        with_texts.add(texts is not None)
        if texts is not None and len(texts) not in (1, len(boxes)):
            raise LabelError(f"sample {s} has {len(boxes)} boxes and {len(texts)} texts: give one text per box, or one for all.")
        rows.append([vocab(apply_prompt(prompt, _check_text(t, f"sample {s} text {j}"))) for j, t in enumerate(texts or [])])
    if len(with_texts) > 1:
        raise LabelError("some samples have texts with their boxes and some do not: give texts for every sample or none.")
    targets = np.stack(geometry)
    if not vocab.ids:
        return LabelPlan(texts=[], n_samples=len(samples), targets=targets)
    return LabelPlan(texts=vocab.texts, n_samples=len(samples), targets=targets, **_csr(rows, len(vocab.ids)))
