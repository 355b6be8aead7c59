"""Which column is the label, which the input, and what kind of task the label column makes (the detection
rules are in :mod:`hf_emms.tasks`).
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInputError
from ..options import TASK_KINDS
from .files import _SHOWN

# "score" last: a score beside a label is not the label (sentence-transformers/stsb: a text pair and its score)
_LABEL_NAMES = ("label", "labels", "target", "targets", "class", "category", "intent", "y", "fine_label", "coarse_label",
                "score")
_TEXT_NAMES = ("text", "sentence", "content", "question", "review", "document", "sms", "utterance", "caption", "prompt")


def _feature_type(feature: Any) -> str:
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return "classlabel"
    if isinstance(feature, (datasets.Sequence, getattr(datasets, "List", datasets.Sequence), list)):
        inner = feature[0] if isinstance(feature, list) else feature.feature
        return "list:" + _feature_type(inner)
    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, datasets.Audio):
        return "audio"
    if isinstance(feature, datasets.Value):
        dtype = feature.dtype
        if dtype in ("string", "large_string"):
            return "string"
        if dtype.startswith(("int", "uint")) or dtype == "bool":
            return "int"
        if dtype.startswith("float"):
            return "float"
    return "other"

def missing_rows(ds: Any, column: str, *, blank: bool) -> tuple[int, list[int]]:
    """How many rows of ``column`` hold no value, and the first few of them (counted from 0).

    None always counts; with ``blank`` also NaN, an empty or blank string and a ``ClassLabel``'s -1 (the datasets
    convention for "no label"). Read in Arrow batches: nothing is decoded (images stay bytes).
    """
    import datasets
    import pyarrow as pa
    import pyarrow.compute as pc

    feature = ds.features[column]
    missing, shown, offset = 0, [], 0
    for batch in ds.select_columns([column]).with_format("arrow").iter(batch_size=10_000):
        values = batch.column(column)
        mask = values.is_null()
        if not blank:
            pass  # None only
        elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            mask = pc.or_kleene(mask, pc.equal(pc.utf8_trim_whitespace(values), ""))
        elif pa.types.is_floating(values.type):
            mask = pc.or_kleene(mask, pc.is_nan(values))
        elif isinstance(feature, datasets.ClassLabel):
            mask = pc.or_kleene(mask, pc.less(values, 0))
        rows = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()
        missing += len(rows)
        shown += [offset + r for r in rows[: _SHOWN - len(shown)]]
        offset += len(values)
    return missing, shown


def _pick_label(ds: Any, label_column: str | None) -> str:
    if label_column is not None:
        if label_column not in ds.column_names:
            raise InvalidInputError(f"label column {label_column!r} is not in the dataset; it has {ds.column_names}.")
        return label_column
    types = {c: _feature_type(ds.features[c]) for c in ds.column_names}
    for c in ds.column_names:
        if types[c] in ("classlabel", "list:classlabel"):
            return c
    for name in _LABEL_NAMES:
        for c in ds.column_names:
            if c.lower() == name:
                return c
    # One column named like "<something>_label" (SICK's entailment_label, MNLI's gold_label): that is the label.
    suffixed = [c for c in ds.column_names if c.lower().endswith(("_label", "_labels"))]
    if len(suffixed) == 1:
        return suffixed[0]
    raise InvalidInputError(
        f"no label column found among {ds.column_names} (looked for a ClassLabel feature, a column named one of "
        f"{_LABEL_NAMES}, or a single one named '*_label'{f'; {suffixed} are several' if suffixed else ''}). "
        "Pass label_column=."
    )


def _categories(distinct: int, rows: int) -> bool:
    """Whether ``distinct`` values over ``rows`` repeat enough to be categories (spam/ham, intents, class ids), not
    free text or measured numbers: at most half as many as rows (at least 2 allowed, at most 1,000)."""
    return distinct <= max(2, min(1000, rows // 2))


def number_or_none(value: Any) -> float | None:
    """A string such as ``" 3.47"`` or ``"1e-3"`` as a finite float; None when it is not one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number - number == 0 else None  # NaN and inf are not measurements


LIST_SEPARATORS = (",", ";", "|")


def list_literal(value: Any) -> list[Any] | None:
    """A list written into a CSV cell (``"['sports', 'politics']"``: pandas' ``to_csv`` of a list column, or JSON
    ``'["a", "b"]'``) as the list, else None. Only literals: nothing is evaluated."""
    import ast
    import json

    text = str(value).strip() if value is not None else ""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(parsed, list) and all(isinstance(v, (str, int, float)) for v in parsed):
            return parsed
    return None


def literal_lists(values: list[Any]) -> list[list[Any] | None] | None:
    """Every value of a string column as the list it writes (None for an empty cell), or None unless they all do."""
    out = []
    for v in values:
        if v is None or not str(v).strip():
            out.append(None)
        elif (parsed := list_literal(v)) is None:
            return None
        else:
            out.append(parsed)
    return out if any(r is not None for r in out) else None


def list_separator(values: list[Any], *, evidence: bool = True) -> str | None:
    """The separator of labels written as lists in one string (``"sports,politics"``: a CSV's multi-label column),
    or None.

    With ``evidence`` (detection), only when the column shows it: some value with the separator is made only of
    names that are labels on their own elsewhere (``"sports"`` alone, and ``"sports,politics"``). A class name that
    merely holds a comma (``"Arts, Culture"``) is not split. Without it (``task="multilabel"`` was asked for), the
    separator found in most values.
    """
    texts = [str(v).strip() for v in values if v is not None and str(v).strip()]
    counts = {sep: sum(sep in t for t in texts) for sep in LIST_SEPARATORS}
    for sep in sorted(LIST_SEPARATORS, key=lambda x: -counts[x]):
        if not counts[sep]:
            return None
        if not evidence:
            return sep
        alone = {t for t in texts if sep not in t}
        if any(all(part.strip() in alone for part in t.split(sep) if part.strip()) for t in texts if sep in t):
            return sep
    return None


def multi_hot_width(rows: list[Any]) -> int | None:
    """The number of classes of a multi-hot column (``[0, 1, 0, 1]``: one 0/1 flag per class, sklearn's
    ``MultiLabelBinarizer`` output), or None when the rows are not that.

    Evidence: every row a list of the same length L >= 2 holding only 0 and 1, and some row repeating a value (a
    list of class ids never names a class twice; by length 3 every flag vector repeats one).
    """
    lists = [r for r in rows if r is not None]
    if not lists or not all(isinstance(r, (list, tuple)) for r in lists):
        return None
    width = len(lists[0])
    if width < 2 or any(len(r) != width for r in lists):
        return None
    if not all(v in (0, 1) and not isinstance(v, str) for r in lists for v in r):
        return None
    return width if any(len(set(r)) < len(r) for r in lists) else None


def _detect_kind(ds: Any, column: str) -> str:
    kind = _feature_type(ds.features[column])
    if kind == "classlabel":
        return "classification"
    if kind == "int":
        # Class ids repeat; prices, counts and years mostly do not (300 house prices were 300 classes of one row
        # each). The rule whole-number floats follow; task="classification" keeps them ids.
        return "classification" if _categories(len(ds.unique(column)), len(ds)) else "regression"
    if kind == "list:classlabel":
        return "multilabel"
    if kind == "float":
        # Whole numbers, repeated (0.0/1.0: an id column pandas read as floats because it once held a NaN): class
        # ids, as scikit-learn's type_of_target reads them and as integer columns are read here. task="regression"
        # keeps them numbers.
        values = [v for v in ds.unique(column) if v is not None and v == v]
        whole = bool(values) and all(float(v).is_integer() for v in values)
        return "classification" if whole and _categories(len(values), len(ds)) else "regression"
    if kind in ("list:int", "list:float") and multi_hot_width(ds[column]):
        # flags per class; exactly one flag a row is one-hot (one class each); a list of class ids is read as such
        # with task="multilabel"
        one_hot = all(r is None or sum(r) == 1 for r in ds[column])
        return "classification" if one_hot else "multilabel"
    if kind == "list:string":
        # Lists of names that repeat (["toxic", "insult"]: tags) are classes; lists of mostly distinct strings
        # (several captions of an image) are reference texts.
        rows = [r for r in ds[column] if r]
        names = {v for r in rows for v in r if v is not None}
        return "multilabel" if names and _categories(len(names), len(rows)) else "text"
    if kind == "string":
        values = ds[column]
        lists = literal_lists(values)
        if lists is not None:  # "['sports', 'politics']" in every cell: lists written as text, read as lists
            if multi_hot_width(lists):
                return "multilabel"
            names = {str(v) for r in lists if r for v in r}
            return "multilabel" if names and _categories(len(names), sum(1 for r in lists if r)) else "text"
        if list_separator(values):  # "sports,politics" beside "sports": several classes a row, not one class each
            return "multilabel"
        if _categories(len(set(values)), len(values)):
            return "classification"
        # Numbers written as strings (a JSON export, a CSV column with one stray unit): targets, not captions
        numeric = all(number_or_none(v) is not None or str(v).strip().lower() == "nan"  # pandas' str(NaN): no target
                      for v in values if v is not None and str(v).strip())
        return "regression" if numeric else "text"
    types = sorted({type(v).__name__ for v in ds.select(range(min(len(ds), 10_000)))[column] if v is not None})
    if len(types) > 1:  # a JSON column of ints and strings: datasets keeps it as raw JSON
        raise InvalidInputError(
            f"the label column {column!r} mixes {' and '.join(types)} values: give every row the same kind of label "
            "(all class names, or all class ids)."
        )
    feature = ds.features[column]
    if kind == "list:int":
        hint = (" For a list of class ids per row pass task='multilabel' (flags per class, [0, 1, 0, 1], are read "
                "as such without it).")
    elif isinstance(feature, dict):  # SQuAD's answers: {"text": [...], "answer_start": [...]}
        fields = ", ".join(f"'{column}.{k}'" for k in feature)
        hint = f" It holds fields: flatten them (dataset = dataset.flatten()) and pass one as label_column= ({fields})."
    else:
        hint = ""
    ask = "" if isinstance(feature, dict) else f" Pass task= (one of {TASK_KINDS})."
    raise InvalidInputError(
        f"cannot tell the task from the label column {column!r} (feature {feature}).{ask}{hint}"
    )

def _pick_input(ds: Any, input_column: str | None, label_column: str) -> tuple[str, str]:
    types = {c: _feature_type(ds.features[c]) for c in ds.column_names if c != label_column}
    modality_of = {"image": "image", "audio": "audio", "string": "text"}
    if input_column is not None:
        if input_column not in ds.column_names:
            raise InvalidInputError(f"input column {input_column!r} is not in the dataset; it has {ds.column_names}.")
        if input_column == label_column:
            raise InvalidInputError(f"the input column and the label column are both {input_column!r}.")
        t = types[input_column]
        if t in modality_of:
            return input_column, modality_of[t]
        if t == "list:float" or "audio" in input_column.lower():
            return input_column, "audio"  # raw waveforms as float lists
        raise InvalidInputError(f"input column {input_column!r} holds {ds.features[input_column]}, not text, images or audio.")
    for wanted in ("image", "audio"):
        for c, t in types.items():
            if t == wanted:
                return c, modality_of[t]
    strings = [c for c, t in types.items() if t == "string"]
    for name in _TEXT_NAMES:
        for c in strings:
            if c.lower() == name:
                return c, "text"
    if strings:
        return strings[0], "text"
    raise InvalidInputError(
        f"no input column found among {list(types)} (looked for an Image, Audio or string column). Pass input_column=."
    )
