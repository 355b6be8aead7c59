"""Hyperparameters of the transfer space by leave-one-task-out cross-validation on the history's own tasks.

For each configuration of :data:`GRID` and each task j of the history with at least :data:`MIN_MODELS` measured
models, the space is fitted on the history without task j's scores and scores j's models from j's text alone; the
configuration with the best mean weighted Kendall tau over the tasks wins, and the report gives its mean recall of the
true top-3 within the predicted top-10 too. (Selecting by tau + that recall instead was measured on the real transfer
history, leave-one-dataset-out: tau 0.537 and recall 0.500 against 0.574 and 0.500 by tau alone; a top-3 of nine tasks
is too few hits to choose by.) The grid is fixed a priori (it is not adjusted to any evaluation); a history of fewer
than :data:`MIN_TASKS` tasks keeps the defaults.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .config import GRID, RecallConfig
from .history import History, ModelMeta, TaskText
from .rankings import top_k_recall, weighted_tau

MIN_TASKS, MIN_MODELS = 3, 5


def cross_validate(history: History, embed: Callable, config: RecallConfig, space_cls: type
                   ) -> tuple[float, float]:
    """Mean weighted tau and mean top-3-in-top-10 recall of ``config`` over the history's tasks, each held out in
    turn: (tau, recall), NaN when no task qualifies."""
    taus, recalls = [], []
    for task in history.tasks:
        truth = history.column(task)
        if len(truth) < MIN_MODELS:
            continue
        space = space_cls.fit(history.without_tasks([task]), embed=embed, config=config)
        models = list(truth)
        u = space.vectors_for([history.meta.get(m) or ModelMeta(m) for m in models])
        s = space.score(u, space.task_vector(history.tasks_text.get(task) or TaskText(task, task)))
        t = np.array([truth[m] for m in models])
        taus.append(weighted_tau(t, s))
        recalls.append(top_k_recall(t, s))

    def mean(values: list[float]) -> float:
        return float(np.nanmean(values)) if values and np.isfinite(values).any() else float("nan")

    return mean(taus), mean(recalls)


def select_config(history: History, embed: Callable, space_cls: type) -> tuple[RecallConfig, list[str]]:
    """The best configuration of :data:`GRID` (others at their defaults) by cross-validated weighted tau, and a
    one-line report.

    ``space_cls`` is :class:`~hf_emms.recall.space.TransferSpace` (passed in: this module does not import it).
    """
    usable = [t for t in history.tasks if len(history.column(t)) >= MIN_MODELS]
    if len(usable) < MIN_TASKS:
        return RecallConfig(), [f"{len(usable)} tasks with >= {MIN_MODELS} measured models: hyperparameters at "
                                "their defaults (cross-validation needs 3)"]
    best, best_cv = RecallConfig(), (-np.inf, np.nan)
    for values in itertools.product(*GRID.values()):
        config = replace(RecallConfig(), **dict(zip(GRID, values)))
        tau, recall = cross_validate(history, embed, config, space_cls)
        if np.isfinite(tau) and tau > best_cv[0] + 1e-9:
            best, best_cv = config, (tau, recall)
    chosen = ", ".join(f"{k}={'mean' if k == 'aggregate' and best.aggregate is None else getattr(best, k)}"
                       for k in GRID)
    return best, [f"hyperparameters by leave-one-task-out CV on {len(usable)} history tasks: {chosen} "
                  f"(mean weighted tau {best_cv[0]:.3f}, top-3 in top-10 {best_cv[1]:.3f})"]
