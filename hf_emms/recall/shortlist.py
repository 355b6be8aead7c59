"""The recall phase's entry points: a task from what the user has, a space from every history, and the short list.

``shortlist(space, candidates, task, k)`` is what ``rank(..., recall=K)`` calls before any candidate is loaded:
one batched embedding of the unseen candidates' metadata texts, then one matrix product.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..paths import cache_root
from .history import (
    History, ModelMeta, TaskText, history_from_candidates, history_from_model_index, history_from_store, merge,
    read_history,
)
from .config import RecallConfig
from .space import TransferSpace

__all__ = ["build_space", "default_space_path", "shortlist", "task_from", "task_vector"]

SIGNALS = {"history": "measured history", "transfer": "similar tasks", "prior": "metadata prior",
           "text": "name/task similarity"}


def default_space_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """``recall/space.safetensors`` under the hf-emms cache root (``$HF_EMMS_CACHE``, ...)."""
    return cache_root(cache_dir) / "recall" / "space.safetensors"


def task_from(task: Any, *, n_samples: int = 32) -> TaskText:
    """What a task offers for its vector, from a :class:`TaskText`, a description string, a mapping with the
    TaskText fields, or a loaded :class:`hf_emms.tasks.Task` (its name, class names and up to ``n_samples`` text
    inputs). Never reads labels' values or any accuracy.
    """
    if isinstance(task, TaskText):
        return task
    if isinstance(task, str):
        if not task.strip():
            raise InvalidInputError("the task description is empty: give a dataset or a few words describing it.")
        return TaskText(task, task)
    if isinstance(task, Mapping):
        return TaskText(str(task.get("name") or task.get("description") or "task"), str(task.get("description", "")),
                        tuple(task.get("class_names") or ()), tuple(task.get("samples") or ()))
    if hasattr(task, "class_names") and hasattr(task, "dataset"):  # hf_emms.tasks.Task (duck-typed: no import)
        source = getattr(task, "source", {}) or {}
        name = str(source.get("id") or source.get("name") or "dataset")
        name = f"{name}/{source['config']}" if source.get("config") else name
        samples: tuple[str, ...] = ()
        if getattr(task, "modality", None) == "text":
            column = task.dataset[task.input_column][: max(n_samples, 0)]
            samples = tuple(" ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for v in column)
        return TaskText(name, name.split("/")[-1].replace("_", " "), tuple(task.class_names or ()), samples)
    raise InvalidInputError(f"cannot describe a task from {type(task).__name__}: give a TaskText, a description, a "
                            "dict with name/description/class_names/samples, or an hf_emms.tasks.Task.")


def task_vector(space: TransferSpace, task: Any) -> np.ndarray:
    """v of eq. 7 for ``task`` (anything :func:`task_from` takes): ndarray (space.dim,), float32."""
    return space.task_vector(task_from(task))


def _meta(candidate: Any) -> ModelMeta:
    if isinstance(candidate, ModelMeta):
        return candidate
    if isinstance(candidate, str):
        return ModelMeta(candidate)
    if hasattr(candidate, "model_id"):  # hf_emms.hub.Candidate
        return ModelMeta.from_candidate(candidate)
    raise InvalidInputError(f"a recall candidate is a hub.Candidate, a ModelMeta or a model id; got "
                            f"{type(candidate).__name__}.")


def shortlist(space: TransferSpace, candidates: Sequence[Any], task: Any, k: int,
              ) -> tuple[list[Any], np.ndarray, list[str]]:
    """The ``k`` candidates the space expects to transfer best to ``task``, best first.

    Parameters
    ----------
    space : TransferSpace
    candidates : sequence of hub.Candidate, ModelMeta or str
    task : TaskText, str, dict or hf_emms.tasks.Task
        See :func:`task_from`.
    k : int
        Length of the short list (all candidates when there are fewer).

    Returns
    -------
    kept : list
        The chosen candidates themselves (same objects as given), best first.
    scores : ndarray of shape (len(kept),), float32
        u . v (eq. 7): a standardised-score scale, comparable within one call only.
    reasons : list of str
        Per kept candidate, the signal that contributed most, and each block's share.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"recall k must be an integer >= 1, got {k!r}.")
    if not candidates:
        return [], np.zeros(0, np.float32), []
    metas = [_meta(c) for c in candidates]
    vectors = space.vectors_for(metas)  # (N, D): one embedder call for the unseen ones
    v = task_vector(space, task)  # (D,)
    scores = space.score(vectors, v)  # (N,): the one product
    top = np.argsort(-scores, kind="stable")[: int(k)]
    parts = space.contributions(vectors[top], v)
    reasons = []
    for row, i in enumerate(top):
        shares = {b: float(parts[b][row]) for b in parts if space.layout[b].stop > space.layout[b].start}
        n = int(space.n_measured[space._row[metas[i].model_id]]) if metas[i].model_id in space._row else 0
        signals = [b for b in shares if n or b not in ("history", "transfer")]  # unmeasured: no history share
        main = max(signals, key=lambda b: abs(shares[b]))
        detail = ", ".join(f"{b} {s:+.2f}" for b, s in shares.items())
        seen = f"measured on {n} tasks" if n else "never measured"
        reasons.append(f"{SIGNALS[main]} ({seen}; {detail})")
    return [candidates[i] for i in top], scores[top], reasons


def build_space(*, history: Iterable[str | os.PathLike] = (), store: str | os.PathLike | None = None,
                cards: Mapping[str, Mapping[str, Any]] | None = None, candidates: Sequence[Any] = (),
                path: str | os.PathLike | None = None,
                embed: Callable | None = None, config: RecallConfig | str | None = "auto",
                exclude_tasks: Iterable[str] = ()) -> TransferSpace:
    """Fit a space from every source given and save it (``path``, default :func:`default_space_path`).

    Parameters
    ----------
    history : iterable of path
        Transfer-history folders (:func:`read_history`).
    store : path, optional
        A results store root: every past ranking's EMMS scores.
    cards : dict, optional
        Model id -> card metadata with a ``model-index``.
    candidates : sequence of hub.Candidate
        Scanned candidates: their model-card results (``eval_results``) and their metadata with head labels
        (:func:`history_from_candidates`); the history folders' metadata wins where both describe a model.
    exclude_tasks : iterable of str
        Tasks whose scores are left out of every source (a held-out dataset).

    A source that cannot be read is reported in ``space.messages`` and skipped; with none left, the space is the
    metadata prior alone.
    """
    from .space import check_space_path

    path = check_space_path(path or default_space_path())  # before the fit's minutes, not after them
    parts: list[History] = [history_from_candidates(candidates)] if candidates else []
    parts += [read_history(folder, exclude_tasks=exclude_tasks) for folder in history]
    if store is not None:
        from ..results import ResultsStore

        parts.append(history_from_store(ResultsStore(store).records()))
    if cards:
        parts.append(history_from_model_index(cards))
    merged = merge(*parts).without_tasks(exclude_tasks) if parts else History(
        messages=("no history given: recall uses the metadata prior only",))
    if merged.n_measured == 0 and _measured_tasks(path):  # a typo in a folder would replace history with nothing
        why = "; ".join(merged.messages) or "no source given"
        raise InvalidInputError(
            f"the sources given hold no measured scores ({why}): the space at {path}, learned from "
            f"{_measured_tasks(path)} tasks, is kept. Give the history folder(s), or delete that file to start from "
            "the metadata prior alone."
        )
    space = TransferSpace.fit(merged, embed=embed, config=config)
    space.save(path)
    return space


def _measured_tasks(path: Path) -> int:
    """How many tasks the recall space saved at ``path`` learned from (0: none there, or not readable as one)."""
    from .space import space_info

    info = space_info(path)
    return len(info.get("tasks", ())) if info else 0
