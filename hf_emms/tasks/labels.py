"""Label values: rows without a label refused, class ids encoded to 0..C-1, class names (the rules are in
:mod:`hf_emms.tasks`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..options import TASK_KINDS
from .columns import _feature_type, list_separator, literal_lists, missing_rows, multi_hot_width, number_or_none
from .files import _SHOWN

_MAX_MULTILABEL_IDS = 100_000  # ids of a multilabel column without names become names 0..max: bounded
_DOMINANT_SHARE = 0.5  # half a regression target's variance in 1% of its rows: the score is about those rows


def _check_labels(ds: Any, column: str, name: str) -> None:
    """Refuse rows without a label (None, NaN, an empty or blank string, a ``ClassLabel`` -1), counted and named."""
    missing, shown = missing_rows(ds, column, blank=True)
    if missing:
        raise InvalidInputError(
            f"{missing} of {len(ds)} rows of {name} have no label in column {column!r} (empty, blank, None, NaN or "
            f"-1; rows {_rows(shown, missing)}, counted from 0): drop or fill them first, e.g. "
            f"dataset.filter(lambda r: r[{column!r}] is not None and str(r[{column!r}]).strip() not in ('', 'nan')), "
            "or pass label_column= if this is not the label."
        )


def _check_references(ds: Any, column: str, name: str) -> None:
    """Refuse text-task rows whose list of reference texts is empty (every sample needs one to be embedded), counted
    and named before any candidate loads. (An empty list is a label in a multilabel task: no class applies.)"""
    empty = [i for i, refs in enumerate(ds[column]) if isinstance(refs, list) and not any(
        isinstance(r, str) and r.strip() for r in refs)]
    if empty:
        raise InvalidInputError(
            f"{len(empty)} of {len(ds)} rows of {name} have no reference text in column {column!r} (an empty list; "
            f"rows {_rows(empty[:_SHOWN], len(empty))}, counted from 0): drop them first, e.g. "
            f"dataset.filter(lambda r: any(t and t.strip() for t in r[{column!r}])), or pass task='multilabel' if "
            "the lists hold class names."
        )


def _check_inputs(ds: Any, columns: tuple[str, ...], name: str) -> None:
    """Refuse rows whose input is missing (None: an empty CSV cell, a JSON null, an image never stored), counted and
    named, before any candidate is loaded. An empty string is a text (the tokenizer encodes it) and is kept."""
    for column in columns:
        missing, shown = missing_rows(ds, column, blank=False)
        if missing:
            raise InvalidInputError(
                f"{missing} of {len(ds)} rows of {name} have no input in column {column!r} (None: an empty CSV cell "
                f"or a JSON null; rows {_rows(shown, missing)}, counted from 0): drop or fill them first, e.g. "
                f"dataset.filter(lambda r: r[{column!r}] is not None), or dataset.map(lambda r: "
                f"{{{column!r}: r[{column!r}] or ''}}) to score them as empty texts."
            )


def _rows(shown: list[int], missing: int) -> str:
    return ", ".join(map(str, shown)) + (", ..." if missing > len(shown) else "")


def _encode_classes(ds: Any, column: str) -> tuple[Any, list[Any] | None]:
    """The dataset with class ids 0..C-1 in ``column``, and the original label of each id (None for names).

    Strings: ``class_encode_column`` (names in sorted order). Booleans: False -> 0, True -> 1. Integers (or
    whole floats) already 0..C-1 are kept; others (sparse, huge or negative ids) are re-encoded to the classes
    present, in numeric order, named by their original value: never sized by the largest id.
    """
    import datasets

    feature = ds.features[column]
    kind = _feature_type(feature)
    if kind in ("list:int", "list:float") and multi_hot_width(ds[column]) and all(sum(r) == 1 for r in ds[column]):
        # one-hot rows ([0, 0, 1, 0]): the class is the flag's position
        width = len(ds[0][column])
        features = ds.features.copy()
        features[column] = datasets.ClassLabel(names=[str(i) for i in range(width)])
        ds = ds.map(lambda batch: {column: [max(range(width), key=r.__getitem__) for r in batch[column]]},
                    batched=True, features=features, desc=f"reading {column!r} as one-hot classes")
        feature, kind = ds.features[column], "classlabel"
    if kind == "classlabel":
        _check_two_classes(ds.unique(column), column, feature.names)
        return ds, None
    if kind == "string":
        names = ds.unique(column)
        _check_two_classes(names, column)
        _warn_near_duplicates(names, column)
        return ds.class_encode_column(column), None
    if kind not in ("int", "float"):
        raise InvalidInputError(
            f"classification needs one class id or name per row, but column {column!r} holds {feature}. "
            f"Pass task= (one of {TASK_KINDS}) or another label_column=."
        )
    values = ds.unique(column)
    if kind == "float":
        fractional = [v for v in values if not float(v).is_integer()]
        if fractional:
            raise InvalidInputError(
                f"classification labels must be class ids or names, but column {column!r} holds fractional numbers "
                f"(e.g. {fractional[0]!r}). Pass task='regression' for numeric targets."
            )
    booleans = isinstance(feature, datasets.Value) and feature.dtype == "bool"
    originals: list[Any] = [False, True] if booleans else sorted(int(v) for v in values)
    _check_two_classes(values, column)
    names = [str(v) for v in originals]
    if kind == "int" and not booleans and originals == list(range(len(originals))):  # [False, True] == [0, 1]
        return ds, originals  # already the ids 0..C-1
    index = {v: i for i, v in enumerate(originals)}
    features = ds.features.copy()
    features[column] = datasets.ClassLabel(names=names)
    encoded = ds.map(
        lambda batch: {column: [index[v if isinstance(v, bool) else int(v)] for v in batch[column]]},
        batched=True, features=features, desc=f"encoding {column!r}",
    )
    return encoded, originals

def _warn_near_duplicates(names: list[Any], column: str) -> None:
    """Warn about class names that differ only in case or surrounding spaces ("positive", "positive "): ranked as
    different classes, as the data says, but most often a typo in the labels."""
    groups: dict[str, list[str]] = {}
    for name in names:
        if isinstance(name, str):
            groups.setdefault(" ".join(name.split()).casefold(), []).append(name)
    alike = [sorted(g) for g in groups.values() if len(g) > 1]
    if alike:
        import warnings

        shown = "; ".join(" / ".join(map(repr, g)) for g in alike[:3]) + ("; ..." if len(alike) > 3 else "")
        warnings.warn(f"label column {column!r} holds class names that differ only in case or spaces ({shown}): "
                      "they are ranked as different classes. Clean the labels if they are one class.", stacklevel=4)


def _check_two_classes(values: list[Any], column: str, names: list[str] | None = None) -> None:
    if len(values) < 2:
        only = names[values[0]] if names and values and 0 <= values[0] < len(names) else (values[0] if values else None)
        raise InvalidInputError(
            f"the label column {column!r} holds one class only ({only!r}): ranking needs at least 2 classes. "
            "Check the label column (label_column=) or the split."
        )

def _numeric_targets(ds: Any, column: str) -> Any:
    """``ds`` with a string regression column as float64 (``"3.47"`` -> 3.47), or as it is when already numeric.

    Raises
    ------
    InvalidInputError
        A value that is not a number, named with its row.
    """
    import datasets

    kind = _feature_type(ds.features[column])
    if kind == "float":
        _check_finite(ds, column)
    if kind != "string":
        return ds
    nan = [row for row, value in enumerate(ds[column]) if str(value).strip().lower() == "nan"]
    if nan:  # what pandas writes for a missing number: rows without a target
        raise InvalidInputError(
            f"{len(nan)} of {len(ds)} rows have no regression target in column {column!r} ('nan'; rows "
            f"{_rows(nan[:_SHOWN], len(nan))}, counted from 0): drop or fill them first."
        )
    for row, value in enumerate(ds[column]):
        if value is not None and str(value).strip() and number_or_none(value) is None:
            raise InvalidInputError(
                f"regression targets must be numbers, but column {column!r} holds {value!r} (row {row}, counted "
                "from 0). Fix or drop that row, or pass task= for labels that are not numbers."
            )
    features = ds.features.copy()
    features[column] = datasets.Value("float64")
    return ds.map(lambda batch: {column: [number_or_none(v) for v in batch[column]]}, batched=True,
                  features=features, desc=f"reading {column!r} as numbers")


def _check_finite(ds: Any, column: str) -> None:
    """Refuse a float regression column holding inf or -inf (a CSV's ``inf`` cell parses as one), counted and named:
    an infinite target has no finite regression to score. (NaN is refused earlier, as a row without a label.)"""
    import pyarrow.compute as pc

    infinite, offset = [], 0
    for batch in ds.select_columns([column]).with_format("arrow").iter(batch_size=10_000):
        values = batch.column(column)
        infinite += [offset + r for r in pc.indices_nonzero(pc.fill_null(pc.is_inf(values), False)).to_pylist()]
        offset += len(values)
    if infinite:
        raise InvalidInputError(
            f"{len(infinite)} of {len(ds)} rows hold an infinite regression target in column {column!r} (rows "
            f"{_rows(infinite[:_SHOWN], len(infinite))}, counted from 0): fix or drop them first, e.g. "
            f"dataset.filter(lambda r: abs(r[{column!r}]) != float('inf'))."
        )


def _label_lists(ds: Any, column: str) -> Any:
    """``ds`` with a multilabel column as lists of classes: multi-hot rows (``[0, 1, 0, 1]``, also written as text in
    a cell) as the ids of their flags (``[1, 3]``; see :func:`~.columns.multi_hot_width`); lists written as text
    (``"['sports', 'politics']"``) as those lists; joined names (``"sports,politics"``) split at the separator the
    column uses (see :func:`~.columns.list_separator`). Lists of names or class ids are kept as they are."""
    import datasets

    as_list = getattr(datasets, "List", datasets.Sequence)
    kind = _feature_type(ds.features[column])
    if kind in ("list:int", "list:float"):
        rows = ds[column]
    elif kind == "string":
        rows = literal_lists(ds[column])
    else:
        return ds
    width = multi_hot_width(rows) if rows is not None else None
    if width:
        lists = [None if r is None else [i for i, v in enumerate(r) if v] for r in rows]
        feature = as_list(datasets.ClassLabel(names=[str(i) for i in range(width)]))
    elif kind != "string":
        return ds  # lists of class ids
    elif rows is not None:
        lists, feature = [None if r is None else [str(v) for v in r] for r in rows], as_list(datasets.Value("string"))
    else:
        sep = list_separator(ds[column], evidence=False)
        lists = [None if v is None else [p.strip() for p in (str(v).split(sep) if sep else [str(v)]) if p.strip()]
                 for v in ds[column]]
        feature = as_list(datasets.Value("string"))
    features = ds.features.copy()
    features[column] = feature
    return ds.map(lambda batch, idx: {column: [lists[i] for i in idx]}, batched=True, with_indices=True,
                  features=features, desc=f"reading {column!r} as lists of classes")


def _check_varies(ds: Any, column: str) -> None:
    """Refuse a numeric regression target with one value (every candidate would be skipped after its forward pass:
    there is nothing to explain)."""
    if _feature_type(ds.features[column]) in ("int", "float"):
        values = ds.unique(column)
        if len(values) < 2:
            raise InvalidInputError(
                f"the regression target {column!r} holds one value only ({values[0]!r}): there is nothing to rank "
                "on. Check the label column (label_column=) or the split."
            )


def _class_names(ds: Any, column: str, kind: str) -> list[str] | None:
    import datasets

    feature = ds.features[column]
    if kind == "classification":
        if isinstance(feature, datasets.ClassLabel):
            return list(feature.names)
        return [str(i) for i in sorted(ds.unique(column))]  # ids 0..C-1 (see _encode_classes)
    if kind == "multilabel":
        inner = feature[0] if isinstance(feature, list) else getattr(feature, "feature", None)
        if isinstance(inner, datasets.ClassLabel):
            return list(inner.names)
        return _multilabel_names(ds, column, _feature_type(inner) if inner is not None else "other")
    return None


def _multilabel_names(ds: Any, column: str, kind: str) -> list[str] | None:
    """The classes of a multilabel column without a ClassLabel: its distinct names (sorted), or ids 0..max as
    names; None when it holds neither (the F-label planner then says what it needs)."""
    values = {v for row in ds[column] if row is not None for v in row}
    if kind == "string":
        return sorted(values)
    if kind == "int" and values:
        top = max(values)
        if min(values) < 0 or top >= _MAX_MULTILABEL_IDS:
            raise InvalidInputError(
                f"multilabel column {column!r} holds class ids from {min(values)} to {top}: ids must be 0..C-1 with "
                f"C < {_MAX_MULTILABEL_IDS}. Re-encode them, or give a Sequence(ClassLabel) feature with the names."
            )
        return [str(i) for i in range(top + 1)]
    return None


def dominated_target(values: Any, column: str) -> str | None:
    """A warning when 1% of the rows (at least one) hold half or more of a regression target's variance, else None.

    EMMS scores the share of the target's variance a candidate's features explain on held-out rows; when a few
    extreme values hold most of it (one price of 1e6 among prices near 1), every candidate's score measures how well
    it predicts those rows (usually not at all: every candidate ties at the no-information level), whatever the
    features say about the rest. A normal target's top 1% hold about 5% of its variance.
    """
    try:
        y = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    except (TypeError, ValueError):
        return None
    if y.shape[0] < 2 or not np.isfinite(y).all():
        return None
    spread = ((y - y.mean(0)) ** 2).sum(1)
    total = spread.sum()
    if not total > 0:
        return None
    k = max(1, y.shape[0] // 100)
    top = np.argsort(-spread, kind="stable")[:k]
    share = spread[top].sum() / total
    if share < _DOMINANT_SHARE:
        return None
    worst = int(top[0])
    shown = f"{y[worst, 0]:g}" if y.shape[1] == 1 else str(y[worst].tolist())
    return (f"{k} of {y.shape[0]} scored rows hold {share:.0%} of the variance of the target {column!r} (row {worst} "
            f"of the scored rows: {shown}): EMMS scores the share of that variance a candidate explains, so these "
            "scores are about those rows. Transform the target (e.g. log1p for prices or counts) or drop the "
            "outliers, then rank again.")
