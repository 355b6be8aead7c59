"""How many distinct inputs a split holds, and whether that (or a group column) is enough to cross-validate."""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..options import check_positive_int
from .files import _BLOCK


def distinct_inputs(dataset: Any, input_column: str | Sequence[str]) -> int:
    """The number of distinct values in ``input_column``: texts, image or audio files (by their bytes), arrays; for
    several columns (a text pair, an image and its question), distinct rows of those columns together.

    Parameters
    ----------
    dataset : datasets.Dataset
    input_column : str or sequence of str

    Returns
    -------
    int
    """
    return len(set(input_digests(dataset, input_column)))


def input_digests(dataset: Any, input_column: str | Sequence[str]) -> Iterator[bytes]:
    """One digest per row, in row order, of its value in ``input_column`` (of its values in several columns, taken
    together): rows with equal inputs, and only those, have equal digests (BLAKE2b, 128 bits).

    Streamed in batches: only the digests are kept, never the data twice. Images and audio are read undecoded, as
    their file bytes (or the bytes of the file at their path).
    """
    import datasets

    columns = [input_column] if isinstance(input_column, str) else list(input_column)
    for column in columns:
        if column not in dataset.column_names:
            raise InvalidInputError(f"input column {column!r} is not in the dataset; it has {dataset.column_names}.")
    ds = dataset.select_columns(columns)
    for column in columns:
        feature = dataset.features[column]
        if isinstance(feature, (datasets.Image, datasets.Audio)) and feature.decode:
            raw = copy.copy(feature)
            raw.decode = False  # the stored bytes or path, not decoded pixels or samples
            ds = ds.cast_column(column, raw)
    for batch in ds.iter(batch_size=1_000):
        for values in zip(*(batch[c] for c in columns)):
            h = hashlib.blake2b(digest_size=16)
            for value in values:  # one column: the same digest as before pairs existed
                _feed(h, value)
            yield h.digest()


def check_distinct(dataset: Any, input_column: str | Sequence[str], *, n_folds: int = 5,
                   distinct: int | None = None) -> int:
    """The number of distinct inputs, when there are enough to cross-validate; else :class:`InvalidInputError`.

    Rule: at least ``2 * n_folds`` distinct inputs: below 2 per fold a fold cannot estimate anything. Repeated inputs
    are otherwise fine: the copies of an input are held out together (grouped folds, ``features/groups.py``), so no
    held-out sample is predicted by memorising its copy in the training folds (before, a copy in another fold was
    exactly that: on 400 SST-2 sentences present three times each, a random-init MPNet ranked second). The scores
    then rest on the distinct inputs; the count returned, below ``len(dataset)``, is for the caller to say so.

    Parameters
    ----------
    dataset : datasets.Dataset
        The rows to be scored (after subsampling).
    input_column : str or sequence of str
        The input column, or every input column of a paired task (a row's inputs count together).
    n_folds : int
        The cross-validation folds of the score (:data:`hf_emms.solver.stats.N_FOLDS`).
    distinct : int, optional
        The count when the caller has it already (``features.groups.input_groups`` hashes the same inputs): checked,
        not computed again.

    Returns
    -------
    int
        The number of distinct inputs.
    """
    n_folds = check_positive_int("n_folds", n_folds)
    n = len(dataset)
    distinct = distinct_inputs(dataset, input_column) if distinct is None else distinct
    if distinct < 2 * n_folds:
        what = (f"the input column {input_column!r}" if isinstance(input_column, str)
                else f"the input columns {list(input_column)}")
        raise InvalidInputError(
            f"{what} holds {distinct} distinct values among {n} rows ({n - distinct} rows repeat an input): "
            f"cross-validated EMMS ({n_folds} folds, the copies of an input held out together) needs at least "
            f"{2 * n_folds} distinct inputs. Give more samples (--max-samples), or check that the input column is "
            "the one holding the inputs."
        )
    return distinct


def check_group_column(t: Any, column: str | None) -> None:
    """``group_column`` names a column of the task's data (a :class:`~hf_emms.tasks.Task`) that is neither its label
    nor its one input (one text of a pair may be: the pairs sharing a premise held out together): rows sharing its
    value are held out together (``hf_emms.features.groups``)."""
    if column is None:
        return
    if column not in t.dataset.column_names:
        raise InvalidInputError(f"group_column {column!r} is not in the dataset; its columns are "
                                f"{t.dataset.column_names}.")
    if column == t.label_column:
        raise InvalidInputError(f"group_column {column!r} is the label column: every class would be held out whole, "
                                "and no fold could learn it. Name the column that groups related rows (a speaker, "
                                "a patient, a source document).")
    if list(t.input_columns) == [column]:  # one side of a pair may group (the pairs sharing a premise): not the input
        raise InvalidInputError(f"group_column {column!r} is the input column: rows repeating an input are held out "
                                "together already. Leave group_column out, or name another column.")


def _feed(h: Any, value: Any) -> None:
    """Feed one value to a hash, typed and length-prefixed (so that 'ab','c' and 'a','bc' differ)."""
    import numpy as np

    def tag(kind: bytes, payload: bytes) -> None:
        h.update(kind + len(payload).to_bytes(8, "little") + payload)

    if value is None:
        tag(b"n", b"")
    elif isinstance(value, str):
        tag(b"s", value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        tag(b"b", bytes(value))
    elif isinstance(value, (bool, int)) or (isinstance(value, float) and not math.isnan(value)):
        tag(b"v", repr(value).encode())
    elif isinstance(value, float):
        tag(b"v", b"nan")
    elif isinstance(value, dict):
        if set(value) >= {"bytes", "path"} and value.get("bytes") is None and value.get("path"):
            path = Path(value["path"])
            if path.is_file():  # an undecoded image or audio file: its content, wherever it lies
                with open(path, "rb") as fh:
                    while block := fh.read(_BLOCK):
                        h.update(block)
                return
        if set(value) >= {"bytes", "path"} and value.get("bytes") is not None:
            tag(b"b", bytes(value["bytes"]))
            return
        tag(b"d", str(len(value)).encode())
        for key in sorted(value, key=str):
            tag(b"k", str(key).encode())
            _feed(h, value[key])
    elif isinstance(value, (list, tuple, np.ndarray)):
        try:
            arr = value if isinstance(value, np.ndarray) else np.asarray(value)
        except ValueError:  # ragged
            arr = np.empty(0, dtype=object)
        if arr.dtype.kind in "biuf":
            tag(b"a", str((arr.dtype.str, arr.shape)).encode() + np.ascontiguousarray(arr).tobytes())
        else:
            tag(b"l", str(len(value)).encode())
            for item in value:
                _feed(h, item)
    elif hasattr(value, "tobytes") and hasattr(value, "size"):  # a decoded PIL image
        tag(b"i", str((getattr(value, "mode", ""), value.size)).encode() + value.tobytes())
    else:
        tag(b"r", repr(value).encode())
