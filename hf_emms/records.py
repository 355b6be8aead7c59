"""The typed shape of a ranking's results: one :class:`Row` per candidate, and the run's :class:`RankingMeta`.

These are what the pipeline writes, the results store keeps, the table shows, and the model cards and the Space
read: attributes, not ad-hoc string keys. Each converts to and from plain JSON-able dicts (``to_dict`` /
``from_dict``), the form stored on disk, so records and ``ranking.json`` files stay readable by people and by older
and newer versions (unknown keys are kept aside in ``extra``, missing ones take their defaults). Item access
(``meta["dataset"]["id"]``, ``meta.get("config")``) keeps working for code written against the dicts: it is the
dict view, and gives plain dicts; attributes (``meta.dataset.id``) give the typed records.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["COLUMNS", "DatasetInfo", "RankingMeta", "Row", "RunConfig", "TaskInfo"]


class _Record:
    """Dict-like reading (``r["key"]``, ``r.get``) and dict round trips for the dataclasses below."""

    _NESTED: ClassVar[dict[str, type]] = {}

    def __getitem__(self, key: str) -> Any:
        """The dict view: nested records come back as plain dicts (JSON-able, as they are stored)."""
        if key not in self._field_names():
            if key in self.extra:  # type: ignore[attr-defined]
                return self.extra[key]  # type: ignore[attr-defined]
            raise KeyError(key)
        value = getattr(self, key)
        return value.to_dict() if isinstance(value, _Record) else value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def __contains__(self, key: str) -> bool:
        return key in self._field_names() or key in self.extra  # type: ignore[attr-defined]

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (nested records as dicts; ``extra`` keys merged back)."""
        out = {}
        for name in self._field_names():
            value = getattr(self, name)
            out[name] = value.to_dict() if isinstance(value, _Record) else value
        return {**self.extra, **out}  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        """The record of a dict written by :meth:`to_dict` (or by an older hf-emms); None/absent keys -> defaults."""
        if isinstance(data, cls):
            return data
        data = dict(data or {})
        names = cls._field_names()
        kwargs = {name: value for name in names if (value := data.pop(name, None)) is not None}
        for name, kind in cls._NESTED.items():
            if name in kwargs:
                kwargs[name] = kind.from_dict(kwargs[name])
        return cls(**kwargs, extra=data)  # type: ignore[call-arg]


@dataclass
class Row(_Record):
    """One candidate's line of a ranking.

    Attributes
    ----------
    model : str
        What people call it: the Hub id, or a local folder's name.
    revision : str or None
        The pinned revision (:attr:`hf_emms.hub.Candidate.revision`): a commit sha, or a local folder's digest.
    status : {"ok", "skipped"}
    reason : str or None
        Why a candidate was skipped.
    emms, emms_one_hot, emms_official, logme, hscore, nce : float or None
        Scores (higher is better; see the README's "What the scores mean").
    emms_se : float or None
        Standard error of ``emms`` from its cross-validation folds (:mod:`hf_emms.solver.uncertainty`).
    tied_with_best : bool or None
        The folds cannot tell this candidate's EMMS from the leader's (paired fold differences within noise);
        set by the :class:`~hf_emms.results.Ranking`, which compares the rows.
    emms_last : float or None
        EMMS of the last layer alone (the score of ``layers="last"``); ``emms`` is layer-aware when several layers
        were read (:mod:`hf_emms.solver.layerwise`).
    best_layer : str or None
        The hidden layer the candidate's features read best from (an index; ``"upper"`` for the mean of the upper
        layers), when several were read.
    recall : float or None
        The recall phase's score (``rank(recall=K)``: history and metadata, no forward pass); ``emms`` and the
        baselines are the second phase's.
    emms_weights : dict or None
        F-label encoder -> its weight lambda at the EMMS optimum.
    params, width, n_samples : int or None
        Parameter count, feature width D1, samples scored.
    seconds : float or None
        Wall time of the candidate (extraction and scoring).
    folds : dict or None
        ``{"scores", "sizes", "null"}``: EMMS per fold, held-out samples per fold, and the no-information level per
        fold (constant features): what ties are decided from, kept with the row (not a table column).
    phases : dict or None
        With ``rank(..., profile=True)``: this candidate's seconds by phase (not a table column).
    """

    model: str
    revision: str | None = None
    emms: float | None = None
    emms_se: float | None = None
    tied_with_best: bool | None = None
    emms_last: float | None = None
    best_layer: str | None = None
    recall: float | None = None
    emms_weights: dict[str, float] | None = None
    emms_one_hot: float | None = None
    emms_official: float | None = None
    logme: float | None = None
    hscore: float | None = None
    nce: float | None = None
    params: int | None = None
    width: int | None = None
    n_samples: int | None = None
    seconds: float | None = None
    status: str = "ok"
    reason: str | None = None
    folds: dict[str, list[float]] | None = field(default=None, repr=False)
    phases: dict[str, float] | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the candidate was scored."""
        return self.status == "ok"

    @classmethod
    def skipped(cls, model: str, reason: str, *, revision: str | None = None, params: int | None = None) -> Row:
        """A candidate that could not be scored, with why."""
        return cls(model=model, revision=revision, params=params, status="skipped", reason=reason)

    @classmethod
    def from_dict(cls, data: Any) -> Row:
        if isinstance(data, Row):
            return data
        data = {k: (None if _missing(v) else v) for k, v in dict(data or {}).items() if k != "rank"}
        return super().from_dict(data)


COLUMNS = ("rank", *(f.name for f in dataclasses.fields(Row) if f.name not in ("extra", "folds", "phases")))
"""The table's columns in display order (``rank`` is given by the table). Higher is better for every score."""


@dataclass
class DatasetInfo(_Record):
    """Which data was scored: where it came from and which rows.

    ``id`` (a Hub dataset), ``path`` (a local file or folder) or only ``name`` (in-memory data); ``config``,
    ``split``, ``revision`` (a Hub commit); ``fingerprint`` (of the split's content); ``rows_scored`` of
    ``rows_total`` (the budget), of which ``distinct_inputs`` hold different inputs.
    """

    name: str | None = None
    id: str | None = None
    path: str | None = None
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    fingerprint: str | None = None
    rows_scored: int | None = None
    rows_total: int | None = None
    distinct_inputs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class TaskInfo(_Record):
    """What was scored: the label ``kind``, the input ``modality`` and ``input_kind`` (one of
    :data:`hf_emms.options.INPUT_KINDS`), the columns (``input_columns``: one, or a pair in order), and the class
    names."""

    kind: str | None = None
    modality: str | None = None
    input_kind: str | None = None
    input_columns: list[str] | None = None
    input_column: str | None = None
    label_column: str | None = None
    classes: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class RunConfig(_Record):
    """How it was scored: everything that changes a score, hashed into each result's key.

    ``rows`` scored of the budget ``max_samples`` drawn with ``seed``; ``metrics``; text ``max_length``; the class
    name ``prompt``; the F-label ``encoders`` (their records); the ``score_rule``; the ``layers`` read (see
    :mod:`hf_emms.features.layers`); the ``hf_emms`` version. ``task``, ``input`` and ``label`` repeat the task's kind
    and columns.
    """

    task: str | None = None
    input: str | None = None
    label: str | None = None
    rows: int | None = None
    seed: int | None = None
    max_samples: int | None = None
    metrics: list[str] | None = None
    max_length: int | None = None
    prompt: str | None = None
    encoders: list[dict[str, Any]] | None = None
    score_rule: str | None = None
    layers: str | list[int] | None = None
    hf_emms: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class RankingMeta(_Record):
    """A ranking's provenance: the :class:`DatasetInfo`, :class:`TaskInfo`, the F-labels' record (as
    :meth:`hf_emms.labels.FLabels.to_dict` writes it) and the :class:`RunConfig`; with ``profile=True``,
    ``profile["task"]``: the seconds the ranking paid once (load_task, budget, scan, recall, label_embeddings, job)."""

    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    task: TaskInfo = field(default_factory=TaskInfo)
    flabels: dict[str, Any] = field(default_factory=dict)
    config: RunConfig = field(default_factory=RunConfig)
    profile: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    _NESTED: ClassVar[dict[str, type]] = {"dataset": DatasetInfo, "task": TaskInfo, "config": RunConfig}

    @property
    def encoders(self) -> list[dict[str, Any]]:
        """The F-label encoders' records (empty for one-hot labels)."""
        return list(self.flabels.get("encoders") or [])


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
