"""Transfer history: measured scores of checkpoints on tasks, from files, past rankings and model cards.

A :class:`History` is a score matrix S (M models x T tasks, NaN where nothing was measured; higher is better) with
what the recall phase knows of each model (:class:`ModelMeta`) and of each task (:class:`TaskText`). Three readers
fill it, and :func:`merge` joins them:

- :func:`read_history`: a folder in the transfer-history format (``records.csv``: model, dataset, method,
  eval_accuracy; ``models.csv``: model, architectures, model_type, number_of_parameters, number_of_labels, labels;
  ``datasets.csv``: dataset, description, class_names as a JSON list; ``logme.csv`` optional). Any modality.
- :func:`history_from_store`: every past ``rank()`` run, ``ResultsStore(root).records()`` (EMMS score per
  candidate and dataset).
- :func:`history_from_model_index`: ``model-index`` results of model cards (``{model: card metadata}``).
- :func:`history_from_candidates`: the same results as the Hub scanner read them (``Candidate.eval_results``), with
  each candidate's metadata and head labels.

Bad or missing input never raises here: what cannot be read becomes a message in :attr:`History.messages`, and an
empty history makes the transfer space fall back to its metadata prior.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["History", "ModelMeta", "TaskText", "history_from_candidates", "history_from_model_index",
           "history_from_store", "merge", "read_history"]


@dataclass(frozen=True)
class ModelMeta:
    """What is known of a checkpoint without loading it (the cold-start side of its vector).

    Attributes
    ----------
    model_id : str
    model_type : str or None
        ``config.model_type`` (e.g. "bert").
    architectures : tuple of str
    num_parameters : int or None
    labels : tuple of str
        The labels of its own head (``config.id2label``): its source task. Placeholders such as LABEL_0 carry none.
    tags : tuple of str
        Hub tags.
    """

    model_id: str
    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    num_parameters: int | None = None
    labels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @classmethod
    def from_candidate(cls, candidate: Any, labels: Iterable[str] = ()) -> ModelMeta:
        """From a :class:`hf_emms.hub.Candidate`: head ``labels`` as given, else the ones the scanner read from its
        config (``candidate.labels``: ``id2label``)."""
        labels = tuple(labels) or tuple(getattr(candidate, "labels", ()) or ())
        return cls(candidate.model_id, candidate.model_type, tuple(candidate.architectures),
                   candidate.num_parameters, labels, tuple(candidate.tags))


@dataclass(frozen=True)
class TaskText:
    """What a task offers before any candidate is loaded: a name, a description, class names, sample inputs."""

    name: str
    description: str = ""
    class_names: tuple[str, ...] = ()
    samples: tuple[str, ...] = ()


@dataclass(frozen=True)
class History:
    """Scores of M models on T tasks, and what is known of each.

    Attributes
    ----------
    models : tuple of str, length M
    tasks : tuple of str, length T
    scores : ndarray of shape (M, T), float64
        Higher is better; NaN where unmeasured. Scores of different tasks need not share a scale (the space
        standardises each task's column).
    meta : dict of str to ModelMeta
        For models with metadata (not necessarily every model of ``models``; others may be listed too).
    tasks_text : dict of str to TaskText
    messages : tuple of str
        What could not be read, and what was done instead.
    """

    models: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    meta: dict[str, ModelMeta] = field(default_factory=dict)
    tasks_text: dict[str, TaskText] = field(default_factory=dict)
    messages: tuple[str, ...] = ()

    @property
    def n_measured(self) -> int:
        return int(np.isfinite(self.scores).sum())

    def without_tasks(self, tasks: Iterable[str]) -> History:
        """The history with the columns of ``tasks`` removed (their text is kept: a held-out task stays describable)."""
        drop = set(tasks)
        keep = [j for j, t in enumerate(self.tasks) if t not in drop]
        return replace(self, tasks=tuple(self.tasks[j] for j in keep), scores=self.scores[:, keep])

    def without_models(self, models: Iterable[str]) -> History:
        """The history with the rows (and metadata) of ``models`` removed."""
        drop = set(models)
        keep = [i for i, m in enumerate(self.models) if m not in drop]
        return replace(self, models=tuple(self.models[i] for i in keep), scores=self.scores[keep],
                       meta={k: v for k, v in self.meta.items() if k not in drop})

    def column(self, task: str) -> dict[str, float]:
        """Measured scores of one task: model -> score."""
        j = self.tasks.index(task)
        return {m: float(s) for m, s in zip(self.models, self.scores[:, j]) if np.isfinite(s)}


def _matrix(triples: Iterable[tuple[str, str, float]]) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """(model, task, score) triples -> models, tasks, (M, T) matrix; repeated pairs are averaged (seeds)."""
    sums: dict[tuple[str, str], list[float]] = {}
    for model, task, score in triples:
        if isinstance(score, (int, float)) and math.isfinite(score):
            sums.setdefault((model, task), []).append(float(score))
    models = tuple(sorted({m for m, _ in sums}))
    tasks = tuple(sorted({t for _, t in sums}))
    mi, ti = {m: i for i, m in enumerate(models)}, {t: j for j, t in enumerate(tasks)}
    scores = np.full((len(models), len(tasks)), np.nan)
    for (m, t), values in sums.items():
        scores[mi[m], ti[t]] = float(np.mean(values))
    return models, tasks, scores


def _parse_list(text: Any) -> tuple[str, ...]:
    """A JSON or Python-literal list of strings in a CSV cell; () when empty or unreadable."""
    if not isinstance(text, str) or not text.strip():
        return ()
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError):
            continue
        if isinstance(value, (list, tuple)):
            return tuple(str(v) for v in value)
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _int(value: Any) -> int | None:
    try:
        out = int(float(value))
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None


def read_history(folder: str | Path, *, method: str | None = "full", exclude_tasks: Iterable[str] = ()) -> History:
    """Read a transfer-history folder (see the module docstring for its files).

    Parameters
    ----------
    folder : path
    method : str or None
        Keep only records of this fine-tuning ``method`` (when the column exists); None keeps all.
    exclude_tasks : iterable of str
        Tasks whose records are not read at all (a held-out dataset).

    Returns
    -------
    History
        Empty, with a message saying why, when the folder or ``records.csv`` is missing or unreadable.
    """
    import pandas as pd

    folder, drop = Path(folder), set(exclude_tasks)
    messages: list[str] = []

    def read(name: str, required: tuple[str, ...]) -> Any:
        path = folder / name
        if not path.is_file():
            messages.append(f"{path} is missing")
            return None
        try:
            df = pd.read_csv(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file degrades, never crashes
            messages.append(f"{path} is unreadable ({type(exc).__name__}: {exc})")
            return None
        lacking = [c for c in required if c not in df.columns]
        if lacking:
            messages.append(f"{path} lacks the columns {lacking}")
            return None
        return df

    records = read("records.csv", ("model", "dataset", "eval_accuracy"))
    if records is None:
        return History(messages=tuple(messages) + ("no measured scores: recall uses the metadata prior only",))
    if method is not None and "method" in records.columns:
        records = records[records["method"] == method]
    records = records[~records["dataset"].isin(drop)]
    values = pd.to_numeric(records["eval_accuracy"], errors="coerce")
    models, tasks, scores = _matrix(zip(records["model"].astype(str), records["dataset"].astype(str), values))
    meta: dict[str, ModelMeta] = {}
    if (table := read("models.csv", ("model",))) is not None:
        for row in table.to_dict("records"):
            meta[str(row["model"])] = ModelMeta(
                str(row["model"]), row.get("model_type") if isinstance(row.get("model_type"), str) else None,
                _parse_list(row.get("architectures")) or ((row["architectures"],) if isinstance(
                    row.get("architectures"), str) and row["architectures"] else ()),
                _int(row.get("number_of_parameters")), _parse_list(row.get("labels")))
    text: dict[str, TaskText] = {}
    if (table := read("datasets.csv", ("dataset",))) is not None:
        for row in table.to_dict("records"):
            desc = row.get("description") if isinstance(row.get("description"), str) else ""
            text[str(row["dataset"])] = TaskText(str(row["dataset"]), desc, _parse_list(row.get("class_names")),
                                                 _parse_list(row.get("samples")))
    return History(models, tasks, scores, meta, text, tuple(messages))


def read_logme(folder: str | Path) -> dict[tuple[str, str], float]:
    """``logme.csv`` of a history folder: (model, dataset) -> LogME (repeats averaged); {} when absent."""
    import pandas as pd

    path = Path(folder) / "logme.csv"
    try:
        df = pd.read_csv(path)
        models, tasks, scores = _matrix(zip(df["model"].astype(str), df["dataset"].astype(str),
                                            pd.to_numeric(df["logme"], errors="coerce")))
    except Exception:  # noqa: BLE001 - optional file
        return {}
    return {(m, t): float(scores[i, j]) for i, m in enumerate(models) for j, t in enumerate(tasks)
            if np.isfinite(scores[i, j])}


def history_from_store(records: Iterable[Mapping[str, Any]], *, score: str = "emms") -> History:
    """Past rankings as history: each record's ``row[score]`` on its dataset (id or name, with config).

    Parameters
    ----------
    records : iterable of dict
        ``hf_emms.results.ResultsStore(root).records()``.
    score : str
        The row's score to learn from.
    """
    triples, messages = [], []
    for record in records:
        row, data = record.get("row") or {}, record.get("dataset") or {}
        name = data.get("id") or data.get("name") or data.get("path")
        if not name or row.get("status", "ok") != "ok" or not isinstance(row.get(score), (int, float)):
            continue
        if str(row.get("revision") or "").startswith("sha256:"):
            continue  # a local checkpoint (its revision a content digest): no Hub model to recall later
        task = f"{name}/{data['config']}" if data.get("config") else str(name)
        triples.append((str(row.get("model")).partition("@")[0], task, float(row[score])))  # org/m@<commit>: org/m
    if not triples:
        messages.append(f"the results store holds no scored record with {score!r}")
    models, tasks, scores = _matrix(triples)
    return History(models, tasks, scores, {}, {t: TaskText(t, t) for t in tasks}, tuple(messages))


_FRACTIONS = frozenset({"accuracy", "f1", "precision", "recall", "exact_match"})  # in [0, 1] by definition


def _card_value(metric: str, value: float) -> float | None:
    """A card's value on the scale of the history: cards write accuracy as 0.912 or as 91.2 (percent), and a task's
    column standardised over both would put every percent above every fraction. None for a value no reading fits."""
    if metric not in _FRACTIONS:
        return value
    if 1.0 < value <= 100.0:
        return value / 100.0
    return value if 0.0 <= value <= 1.0 else None


def history_from_model_index(cards: Mapping[str, Mapping[str, Any]], *, metric: str = "accuracy") -> History:
    """``model-index`` results of model cards: {model id: card metadata (the YAML header as a dict)}.

    Every result whose metric type is ``metric`` becomes one score on its dataset (``type``, with ``config``); cards
    without a readable ``model-index`` are skipped and counted in the messages.
    """
    triples, bad = [], 0
    for model, card in cards.items():
        try:
            for entry in card.get("model-index") or ():
                for result in entry.get("results") or ():
                    data = result.get("dataset") or {}
                    task = data.get("type") or data.get("name")
                    task = f"{task}/{data['config']}" if task and data.get("config") else task
                    for m in result.get("metrics") or ():
                        value = _card_value(metric, float(m["value"])) if task and m.get("type") == metric else None
                        if value is not None:
                            triples.append((model, str(task), value))
        except (AttributeError, TypeError, ValueError, KeyError):
            bad += 1
    models, tasks, scores = _matrix(triples)
    messages = (f"{bad} model cards have an unreadable model-index",) if bad else ()
    return History(models, tasks, scores, {}, {t: TaskText(t, t) for t in tasks}, messages)


def history_from_candidates(candidates: Iterable[Any], *, metric: str = "accuracy") -> History:
    """Scanned candidates as history: each :class:`hf_emms.hub.Candidate`'s model-card results
    (``candidate.eval_results``: (dataset, metric type, value), read by the scanner from ``model-index``) whose
    metric type is ``metric`` become scores, and every candidate's metadata (with its head labels) joins ``meta``.
    """
    triples, meta = [], {}
    for candidate in candidates:
        meta[candidate.model_id] = ModelMeta.from_candidate(candidate)
        triples += [(candidate.model_id, task, value) for task, kind, raw in
                    getattr(candidate, "eval_results", ()) or () if kind == metric
                    and (value := _card_value(metric, raw)) is not None]
    models, tasks, scores = _matrix(triples)
    messages = () if triples else (f"no scanned candidate reports {metric!r} in its model card",)
    return History(models, tasks, scores, meta, {t: TaskText(t, t) for t in tasks}, messages)


def merge(*histories: History) -> History:
    """One history from several: a (model, task) measured in several is averaged.

    A task measured in more than one history is put on one scale first: each history's column becomes z-scores over
    the models it measured (a past ranking's EMMS, about -1 to 0, and a card's accuracy, 0 to 1, are not one scale;
    averaged raw, a model's standing would depend on which source measured it). A task of one history keeps its
    scores (the space standardises each task's column).
    """
    sources: dict[str, int] = {}
    for h in histories:
        for j, t in enumerate(h.tasks):
            sources[t] = sources.get(t, 0) + int(np.isfinite(h.scores[:, j]).any())
    triples, meta, text, messages = [], {}, {}, []
    for h in histories:
        for j, t in enumerate(h.tasks):
            column = h.scores[:, j]
            if sources[t] > 1:
                seen = column[np.isfinite(column)]
                spread = float(seen.std()) if seen.size > 1 else 0.0
                column = (column - seen.mean()) / spread if spread > 0 else np.where(np.isfinite(column), 0.0, np.nan)
            triples += [(m, t, column[i]) for i, m in enumerate(h.models) if np.isfinite(column[i])]
        meta.update(h.meta)
        text.update({k: v for k, v in h.tasks_text.items() if k not in text or v.class_names})
        messages += h.messages
    models, tasks, scores = _matrix(triples)
    return History(models, tasks, scores, meta, text, tuple(messages))
