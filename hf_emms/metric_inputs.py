"""The inputs of :func:`hf_emms.metric.compute`, checked and turned into what the solver takes: the references
counted, the features shaped, the class ids, class tables or per-sample F-labels from whichever source was given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InvalidInputError

# Floats hold every whole number exactly up to 2**53; past it, two class ids can be the same float.
_MAX_FLOAT_ID = 2**53


def check_references(references: Any) -> int:
    """The number of references, when they are a non-empty sequence; else :class:`InvalidInputError`.

    The ``emms`` evaluate module calls it before handing anything to ``evaluate`` (which fails on an empty list
    with an IndexError, and on a missing one with an error about its cache files).
    """
    if references is None:
        raise InvalidInputError("references= is required: one label per sample, in the order of the feature rows.")
    if isinstance(references, (str, bytes, Mapping)) or not hasattr(references, "__len__"):
        raise InvalidInputError(
            f"references must be a sequence with one label per sample (a list or an array); got "
            f"{type(references).__name__}."
        )
    try:
        n = len(references)
    except TypeError:  # a 0-d array
        raise InvalidInputError("references must be a sequence with one label per sample; got a single value.") from None
    if n == 0:
        raise InvalidInputError("references are empty: EMMS needs one label per sample, at least two samples.")
    return n

def _features(features: Any, n: int) -> Any:
    if features is None:
        raise InvalidInputError(
            "features= is required: the candidate's pooled features, an array of shape (N, D1) with one row per "
            "reference."
        )
    try:
        x = features if isinstance(features, np.ndarray) or hasattr(features, "detach") else np.asarray(features)
    except (ValueError, TypeError) as exc:  # ragged rows
        raise InvalidInputError(f"features must be an (N, D1) array of numbers with rows of one width: {exc}") from None
    if isinstance(x, np.ndarray) and x.dtype.kind not in "biuf":
        raise InvalidInputError(f"features must be numbers; got an array of dtype {x.dtype}.")
    if x.ndim != 2:
        raise InvalidInputError(
            f"features must be 2-D (samples, dim); got shape {tuple(x.shape)}. Pool token or patch features first."
        )
    if x.shape[0] != n:
        raise InvalidInputError(
            f"features have {x.shape[0]} rows but there are {n} references: give one row per reference, in order."
        )
    if n == 0:
        raise InvalidInputError("there are no references: EMMS needs at least two samples.")
    return x

def _targets(
    references: Sequence[Any],
    class_embeddings: Any,
    label_embeddings: Any,
    class_names: Sequence[str] | None,
    encoders: Any,
    label_kind: str,
    label_options: Mapping[str, Any],
) -> tuple[np.ndarray | None, Any, Any]:
    """(class ids, class tables, per-sample F-labels) for the solver, from whichever F-label source was given."""
    if label_embeddings is not None:
        given = [name for name, v in (("class_embeddings", class_embeddings), ("class_names", class_names),
                                      ("encoders", encoders)) if v is not None]
        if given:
            raise InvalidInputError(
                f"label_embeddings are complete per-sample F-labels; {', '.join(given)} would describe another "
                "target. Give one F-label source."
            )
        if len(label_embeddings) != len(references):
            raise InvalidInputError(
                f"label_embeddings have {len(label_embeddings)} rows but there are {len(references)} references: "
                "give one row per reference, in order."
            )
        return None, None, label_embeddings
    if label_kind != "classification" and (class_embeddings is not None or class_names is not None):
        raise InvalidInputError(f"class_embeddings and class_names describe classes; label_kind is {label_kind!r}.")
    values = _references(references)
    if label_kind == "regression":
        if values.dtype.kind not in "biuf" or encoders is not None:
            raise InvalidInputError("regression references must be numbers, used as they are (no encoders).")
        return None, None, values.astype(np.float64)[:, None]
    if label_kind == "text":
        if encoders is None or values.dtype.kind != "U":
            raise InvalidInputError(
                "text references are embedded per sample: give strings with encoders=, or the F-labels themselves "
                "as label_embeddings= (N, D2, K)."
            )
        return None, None, _embed(list(values), "text", encoders, label_options).to_array()
    ids, names = _class_ids(values, class_names, class_embeddings)
    if encoders is not None:
        if class_embeddings is not None:
            raise InvalidInputError("give class_embeddings or encoders, not both: each is a set of class F-labels.")
        if names is None:
            raise InvalidInputError(
                "encoders= embed class names, but the references are class ids: pass class_names= "
                "(the name of class id i at position i, e.g. ClassLabel.names)."
            )
        class_embeddings = _embed(names, "classification", encoders, label_options).tables
    return ids, class_embeddings, None

def _references(references: Sequence[Any]) -> np.ndarray:
    """References as one numpy array: strings (kind 'U') or numbers; clear errors for gaps and mixed types."""
    values = references.tolist() if hasattr(references, "tolist") else list(references)
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        raise InvalidInputError(f"references[{missing[0]}] is missing (None), {len(missing)} in all: give every sample a label.")
    is_text = [isinstance(v, str) for v in values]
    if any(is_text) and not all(is_text):
        i = is_text.index(not is_text[0])
        raise InvalidInputError(
            f"references mix types: references[0] is {values[0]!r} but references[{i}] is {values[i]!r}. "
            "Give all class ids or all class names."
        )
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):  # ragged lists, or integers numpy cannot hold
        arr = np.asarray(values, dtype=object)
    if arr.ndim != 1 or not (arr.dtype.kind in "biuf" or all(is_text)):
        raise InvalidInputError(
            f"references must hold one class id, name, text or number per sample; got an array of shape {arr.shape} "
            f"and dtype {arr.dtype}. For several labels per sample give label_embeddings= (N, D2, K)."
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInputError("references contain NaN or inf.")
    return arr

def _class_ids(
    values: np.ndarray, class_names: Sequence[str] | None, class_embeddings: Any
) -> tuple[np.ndarray, list[str] | None]:
    """Class ids (N,) and the class names of ids 0..C-1, when known."""
    names = None if class_names is None else list(class_names)
    if names is not None and (not names or not all(isinstance(n, str) for n in names) or len(set(names)) < len(names)):
        raise InvalidInputError("class_names must be a non-empty sequence of distinct strings (the name of class id i at i).")
    if values.dtype.kind == "U":
        if names is None and class_embeddings is not None:
            raise InvalidInputError(
                "the references are class names: pass class_names= to say which row of class_embeddings belongs "
                "to which name."
            )
        names = names if names is not None else sorted(set(values.tolist()))
        index = {name: i for i, name in enumerate(names)}
        unknown = sorted(set(values.tolist()) - index.keys())
        if unknown:
            raise InvalidInputError(f"references name classes missing from class_names: {unknown[:5]}.")
        return np.array([index[v] for v in values.tolist()], dtype=np.int64), names
    if values.dtype.kind == "f" and not (values == np.round(values)).all():
        raise InvalidInputError(
            "classification references must be class ids (whole numbers) or names; got fractional numbers. "
            "For numeric targets pass label_kind='regression'."
        )
    if values.dtype.kind == "f" and np.abs(values).max() > _MAX_FLOAT_ID:
        raise InvalidInputError(
            f"references hold {float(values[np.argmax(np.abs(values))])!r}, not a class id: numbers past 2**53 are not whole "
            "numbers exactly (and evaluate stores references as floats). Give class ids 0..C-1, or class names."
        )
    if values.dtype.kind == "u" and values.max() > np.iinfo(np.int64).max:
        raise InvalidInputError(f"references hold {int(values.max())}, past the largest class id (2**63 - 1). "
                                "Give class ids 0..C-1, or class names.")
    ids = values.astype(np.int64)
    if ids.min() < 0:  # the solver names it (-1 marks unlabelled rows in datasets)
        return ids, names
    if names is not None and not ids.max() < len(names):
        raise InvalidInputError(f"references hold class ids up to {ids.max()}, but class_names has {len(names)} names.")
    if names is None and class_embeddings is not None:
        rows = _table_rows(class_embeddings)
        if rows is not None and not ids.max() < rows:
            raise InvalidInputError(
                f"references hold class ids up to {ids.max()}, but class_embeddings have {rows} rows (one per class "
                "id 0..C-1)."
            )
    if names is None and class_embeddings is None:
        # One-hot labels do not depend on which ids the classes have (absent ids are empty classes, which the
        # solver leaves out): ids other than 0..C-1 (5 and 10**8) become the classes present, in order, so that
        # nothing is sized by the largest id.
        present, inverse = np.unique(ids, return_inverse=True)
        if not (present[0] == 0 and present[-1] == len(present) - 1):
            ids = inverse.astype(np.int64).reshape(-1)
    return ids, names

def _table_rows(class_embeddings: Any) -> int | None:
    """C, the rows of class-name tables given as (C, D2), (K, C, D2) or a sequence of K (C, D2) arrays."""
    try:
        first = class_embeddings[0] if isinstance(class_embeddings, (list, tuple)) else class_embeddings
        shape = tuple(getattr(first, "shape", None) or np.shape(first))
    except Exception:  # left to the solver, which names what it expected
        return None
    return shape[-2] if len(shape) >= 2 else None

def _embed(texts: list[str], kind: str, encoders: Any, options: Mapping[str, Any]) -> Any:
    """F-labels by :func:`hf_emms.labels.embed_labels`, imported on first use (it loads transformers)."""
    from .labels import embed_labels

    return embed_labels(texts, kind=kind, encoders=encoders, **options)
