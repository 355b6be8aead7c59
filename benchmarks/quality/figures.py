"""Ranking-quality figures of the benchmark: how one selector's scores order the models against fine-tuned
results (weighted Kendall tau, Kendall tau, top-1 regret), the tied set against fine-tuning, and their means.
The selectors the report compares are named here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from layer_credit import VARIANTS as DEPTH_CREDIT

SCORES = ("emms", "emms_official", "logme", "hscore")
# The layer-aware variants of one rank(layers=...) run (hf_emms.solver.layerwise): the last layer alone, the layer
# chosen by nested CV among single layers (and with the one-SE rule: a lower layer only when the folds support it),
# the fixed mean of the upper layers, and nested CV over both; and LogME / H-score on the layer EMMS chose.
VARIANTS = ("emms_last", "emms_layer", "emms_layer_1se", "emms_upper", "emms_nested", "logme_layer", "hscore_layer")
PRIORS = ("params", "width")
# Measured, not used by hf-emms: depth-credit terms and the in-sample best layer (quality/layer_credit.py).
SELECTORS = SCORES + VARIANTS + DEPTH_CREDIT + PRIORS


def _paired(truth: Mapping[str, float], score: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    models = sorted(set(truth) & set(score))
    if len(models) < 2:
        raise ValueError(f"ranking quality needs at least 2 models with both a score and an accuracy; got {models}.")
    return np.array([truth[m] for m in models], float), np.array([score[m] for m in models], float)


def weighted_tau(truth: Mapping[str, float], score: Mapping[str, float]) -> float:
    """Weighted Kendall tau (``scipy.stats.weightedtau``, defaults) between accuracies and scores, in [-1, 1]."""
    from scipy.stats import weightedtau

    return float(weightedtau(*_paired(truth, score)).statistic)


def kendall_tau(truth: Mapping[str, float], score: Mapping[str, float]) -> float:
    """Kendall tau-b between accuracies and scores, in [-1, 1] (NaN when either side is constant)."""
    from scipy.stats import kendalltau

    return float(kendalltau(*_paired(truth, score)).statistic)


def top1_regret(truth: Mapping[str, float], score: Mapping[str, float]) -> float:
    """Best accuracy minus the accuracy of the model scored highest; among tied top scores, the worst one's."""
    acc, s = _paired(truth, score)
    return float(acc.max() - acc[s == s.max()].min())


def quality(truth: Mapping[str, float], scores: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Each selector's weighted tau, Kendall tau and top-1 regret against ``truth`` (model -> accuracy).

    Parameters
    ----------
    truth : mapping of model -> fine-tuned accuracy
    scores : mapping of model -> {selector: score}

    Returns
    -------
    dict
        selector -> {"weighted_tau", "kendall_tau", "regret", "n_models"}.
    """
    out = {}
    for sel in SELECTORS:
        column = {m: float(v[sel]) for m, v in scores.items() if v.get(sel) is not None and math.isfinite(v[sel])}
        if len(set(truth) & set(column)) < 2:
            continue
        out[sel] = {"weighted_tau": weighted_tau(truth, column), "kendall_tau": kendall_tau(truth, column),
                    "regret": top1_regret(truth, column), "n_models": len(set(truth) & set(column))}
    return out


def tied_set(truth: Mapping[str, float], tied: Mapping[str, bool | None]) -> dict[str, Any] | None:
    """How the candidates EMMS cannot tell from its leader (``tied_with_best``) fare after fine-tuning.

    Returns ``{"size", "n_models", "holds_best", "regret"}``: the set's size among the models with a fine-tuned
    result, whether it holds the fine-tuned best, and its regret (best accuracy minus the best in the set: what a
    person who fine-tunes the whole tied set loses); None when no model carries the flag (no fold scores).
    """
    members = [m for m in truth if tied.get(m)]
    if not members:
        return None
    best, best_in_set = max(truth.values()), max(truth[m] for m in members)
    return {"size": len(members), "n_models": len(truth), "holds_best": best_in_set == best,
            "regret": float(best - best_in_set)}


def _nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there is none (a selector constant on every task has no tau)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def average(per_task: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of each selector's figures over the tasks that have them, NaN (a constant selector's tau) left out,
    with the task count."""
    out = {}
    for sel in SELECTORS:
        rows = [q[sel] for q in per_task.values() if sel in q]
        if rows:
            out[sel] = {k: _nanmean([r[k] for r in rows]) for k in ("weighted_tau", "kendall_tau", "regret")}
            out[sel]["n_tasks"] = len(rows)
    return out


def versus(per_task: Mapping[str, Mapping[str, Mapping[str, float]]], reference: str = "emms") -> dict[str, dict]:
    """Each selector's weighted tau minus ``reference``'s, paired by task: the mean difference over the T tasks that
    have both and its standard error sd / sqrt(T) (ddof 1; NaN for one task). Two selectors whose means differ by
    less than about two of it are not told apart by these tasks, whatever their means say.

    Returns
    -------
    dict
        selector -> {"difference", "se", "n_tasks", "better_on"} (``better_on``: tasks where it is above the
        reference).
    """
    out = {}
    for sel in SELECTORS:
        pairs = [(q[sel]["weighted_tau"], q[reference]["weighted_tau"]) for q in per_task.values()
                 if sel in q and reference in q]
        d = np.array([a - b for a, b in pairs if math.isfinite(a) and math.isfinite(b)], float)
        if d.size:
            out[sel] = {"difference": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1
                        else math.nan, "n_tasks": int(d.size), "better_on": int((d > 0).sum())}
    return out

