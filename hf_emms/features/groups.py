"""Rows with the same input share one cross-validation fold (grouped K-fold).

EMMS is scored on folds the fit never saw (``solver/cross_validation.py``). A fold is picked from each row's id, so two
rows holding the same text (a dataset with repeated sentences, an augmented one, tweets retweeted) would usually land
in different folds: the held-out copy was then fitted as a training row, and a candidate with room to memorise its
training rows scores as if it generalised. Measured on 400 SST-2 sentences, each present three times: every score
rose from about -0.7 to between -0.03 and -0.24, and a random-init MPNet was ranked second and "tied with the best",
above the trained MiniLMs. Grouped K-fold (scikit-learn's ``GroupKFold`` idea) removes the leak: every row takes the
fold of the first row of its input, so the copies of an input are held out together.

Inputs are compared as ``tasks.distinct`` counts them (the note a ranking prints): texts exactly, both texts of a pair
together, images and audio by their file bytes. Rows whose inputs are all distinct keep their own ids: their folds, and
their statistics, are exactly those of a run without grouping. With a group column (``rank(group_column=...)``), rows
sharing its value are linked too (utterances of one speaker, scans of one patient), as in ``GroupKFold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..tasks.distinct import input_digests
from .inputs import InputSpec

__all__ = ["InputGroups", "input_groups"]


@dataclass(frozen=True)
class InputGroups:
    """Rows held out with an earlier scored row (the same input, or the same group), and that row.

    Attributes
    ----------
    rows : ndarray of int of shape (M,)
        Dataset rows linked to an earlier scored row, ascending.
    first : ndarray of int of shape (M,)
        For each, the first scored row of its set: the id that picks its fold.
    distinct : int
        Distinct inputs among the scored rows.
    units : int
        Sets of rows held out together (each set's rows share a fold): the distinct inputs, fewer with a group column.
    ungrouped : int
        Scored rows without a value in the group column (None, NaN): each is grouped by its input alone.
    """

    rows: np.ndarray
    first: np.ndarray
    distinct: int
    units: int
    ungrouped: int = 0

    @property
    def repeated(self) -> int:
        """Scored rows that take an earlier row's fold."""
        return int(self.rows.size)

    def fold_ids(self, ids: np.ndarray) -> np.ndarray:
        """The ids that pick the folds of dataset rows ``ids``: the first scored row of each one's set."""
        ids = np.asarray(ids)
        if self.rows.size == 0:
            return ids
        at = np.searchsorted(self.rows, ids).clip(max=self.rows.size - 1)
        return np.where(self.rows[at] == ids, self.first[at], ids)


def input_groups(dataset: Any, spec: InputSpec, rows: np.ndarray, *, group_column: str | None = None) -> InputGroups:
    """Group the scored ``rows`` of ``dataset`` by their input (``spec.columns`` together) and, with
    ``group_column``, by that column's value too (a missing value groups nothing): rows linked by either, directly or
    through other rows, share the fold of the first of them. See the module docstring."""
    order = np.sort(np.asarray(rows, dtype=np.int64))
    if order.size == 0:
        return InputGroups(order, order, 0, 0)
    part = dataset if order.size == len(dataset) and order[-1] == order.size - 1 else dataset.select(order)
    parent = list(range(order.size))  # union-find over positions; the root of a set is its smallest position

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def link(keys: Any) -> int:
        first: dict[Any, int] = {}
        for i, key in enumerate(keys):
            if key is None:
                continue
            j = first.setdefault(key, i)
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
        return len(first)

    distinct = link(input_digests(part, list(spec.columns)))
    ungrouped = 0
    if group_column is not None:
        keys = _group_keys(part, group_column)
        ungrouped = sum(key is None for key in keys)
        link(keys)
    firsts = np.array([order[root(i)] for i in range(order.size)], dtype=np.int64)
    moved = firsts != order
    return InputGroups(order[moved], firsts[moved], distinct, int(np.unique(firsts).size), ungrouped)


def _group_keys(dataset: Any, column: str) -> list[Any]:
    """The values of ``column`` as keys (None where missing: None, NaN); a list or dict value by its text."""
    if column not in dataset.column_names:
        raise InvalidInputError(f"group_column {column!r} is not in the dataset; its columns are "
                                f"{dataset.column_names}.")
    return [None if v is None or (isinstance(v, float) and v != v) else v if isinstance(v, (str, int, float, bool))
            else repr(v) for v in dataset[column]]
