"""Hyperparameters of the transfer space (equation numbers: :mod:`hf_emms.recall.space`), and the grid that
:mod:`hf_emms.recall.select` searches by cross-validation on the history's own tasks (fixed a priori)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GRID", "RecallConfig"]


@dataclass(frozen=True)
class RecallConfig:
    """Hyperparameters of the space (the equation numbers of the module docstring)."""

    # eq. 1: "robust" z per task, or "logrank" (exponential scores of the ranks). Not in GRID: with it there,
    # leave-one-dataset-out on the real history (selection as benchmarks/recall.py) it gave tau 0.568, top-3 recall
    # 0.533 (0.574, 0.500 without): it stays an option.
    scale: str = "robust"
    aggregate: float | None = 0.75  # eq. 2: quantile p of a model's z-scores (None: mean)
    clip: float = 2.0  # eq. 1
    shrink: float = 1.0  # eq. 5: pseudo-tasks of the metadata prior
    transfer: float = 0.0  # eq. 7: lambda, weight of similar tasks' residuals
    temperature: float = 0.1  # eq. 6
    text_weight: float = 0.0  # eq. 7: gamma, model text . task vector
    ridge: float = 10.0  # eq. 4
    id_dims: int = 16  # eq. 3
    head_dims: int = 8


GRID = {"aggregate": (None, 0.5, 0.75), "transfer": (0.0, 0.5), "text_weight": (0.0, 0.5)}
