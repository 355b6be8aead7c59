"""Layer-aware EMMS: choose a candidate's layer on training folds, score it on the held-out fold (nested CV).

A frozen last layer under-rates checkpoints whose useful information sits lower down (fine-tuning reshapes the upper
layers). Scoring every layer and keeping the maximum is no cure: the maximum of L noisy scores is biased upwards by
selection alone, so deep models would gain by their depth, random ones included. The layer is therefore *chosen*
and *scored* on different samples, from the same per-fold sums.

With F folds and s_l[f] layer l's share of the EMMS score on fold f (its cross-validated fold score,
``EMMSResult.fold_scores``, at that layer's own ridge and F-label weights), n_f the fold sizes,

    l*(f)  = argmax_l  sum_{g != f} n_g s_l[g] / sum_{g != f} n_g        (the choice, blind to fold f)     (N1)
    score  = sum_f n_f s_{l*(f)}[f] / sum_f n_f                          (scored on fold f only)          (N2)

and the standard error is the fold spread of the s_{l*(f)}[f] (``uncertainty.py``, (SE)). Fold f's held-out
residual was measured by a fit that never saw fold f, and (N1) never reads it: a layer that wins by chance on the
other folds is scored where its luck does not follow it. With a single layer, (N2) is that layer's own score, and
the result is exactly :func:`hf_emms.solver.emms`'s. Ties in (N1) go to the last layer, then the higher one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .scores import EMMSResult, emms, emms_with_control
from .stats import FeatureStats
from .threads import side_by_side
from .uncertainty import fold_mean_and_se

__all__ = ["LayerwiseResult", "emms_layerwise", "nested_choice"]


@dataclass(frozen=True)
class LayerwiseResult:
    """EMMS of every kept layer, and the layer-aware score chosen among them.

    Attributes
    ----------
    result : EMMSResult
        The layer-aware score (N2) with its fold scores and SE; weights, ridge and width are those of
        ``best_layer``'s fit.
    last : EMMSResult
        The last layer's EMMS: the score of a last-layer run, exactly.
    control : EMMSResult or None
        The last layer's one-hot control (class labels with F-label tables only).
    per_layer : dict of str to EMMSResult
        Every kept layer's own cross-validated EMMS.
    best_layer : str
        The layer (N1) picks with every fold in view: what the candidate's features are best read from.
    chosen : list of str
        l*(f) for each fold f.
    last_key : str
        The key of the last layer.
    """

    result: EMMSResult
    last: EMMSResult
    control: EMMSResult | None
    per_layer: dict[str, EMMSResult]
    best_layer: str
    chosen: list[str]
    last_key: str

    def among(self, keys: Sequence[str], *, margin: float = 0.0) -> EMMSResult:
        """The layer-aware score choosing among ``keys`` only (``margin``: see :func:`nested_choice`)."""
        return _choose(self.per_layer, self.last_key, keys, margin)[0]


def nested_choice(fold_scores: Mapping[str, np.ndarray], fold_sizes: np.ndarray,
                  order: Sequence[str], *, margin: float = 0.0) -> tuple[np.ndarray, list[str], str]:
    """(N1) and (N2) over per-fold scores.

    With ``margin`` > 0, (N1) keeps the first choice of ``order`` (the default: the last layer) unless another
    beats it on the other folds by more than ``margin`` standard errors of their paired fold differences (the
    "one standard error" rule for margin = 1: a switch must be supported by the folds, not by their noise).

    Parameters
    ----------
    fold_scores : mapping of str to ndarray of shape (F,)
        s_l for each choice l, on the same folds.
    fold_sizes : ndarray of shape (F,)
    order : sequence of str
        The choices by preference on ties, most preferred first.

    Returns
    -------
    nested : ndarray of shape (F,)
        s_{l*(f)}[f].
    chosen : list of str
        l*(f).
    best : str
        The choice with the best weighted mean over all folds.
    """
    n = np.asarray(fold_sizes, dtype=np.float64)
    table = np.stack([np.asarray(fold_scores[key], dtype=np.float64) for key in order])  # (L, F)
    totals = table @ n
    others = (totals[:, None] - table * n[None]) / (n.sum() - n)[None]  # (L, F): mean over the folds g != f
    if margin > 0:  # a choice other than the first must lead it by margin x the SE of its paired differences
        for f in range(n.size):
            keep = np.arange(n.size) != f
            for i in range(1, len(order)):
                mean, se = fold_mean_and_se(table[i, keep] - table[0, keep], n[keep], n_samples=n.sum())
                if not mean > margin * se:
                    others[i, f] = -np.inf
    picks = np.argmax(others, axis=0)  # the first maximum: the most preferred on ties
    nested = table[picks, np.arange(n.size)]
    return nested, [order[i] for i in picks], order[int(np.argmax(totals))]


def emms_layerwise(layers: Mapping[str, FeatureStats], class_embeddings: Any = None, *, last: str,
                   choices: Sequence[str] | None = None, control: bool = False) -> LayerwiseResult:
    """Score every layer's statistics and choose among ``choices`` by nested cross-validation.

    Parameters
    ----------
    layers : mapping of str to FeatureStats
        Statistics of the same samples (same folds) read at different layers of one candidate.
    class_embeddings : see :func:`hf_emms.solver.emms`
    last : str
        The key of the last layer.
    choices : sequence of str, optional
        The keys the layer-aware score may choose (default: every key).
    control : bool
        Also the last layer's one-hot control (class labels with tables: shares its eigensystems).

    Returns
    -------
    LayerwiseResult
    """
    if last not in layers:
        raise InvalidInputError(f"the last layer {last!r} has no statistics; the layers are {list(layers)}.")
    choices = list(layers) if choices is None else list(choices)
    unknown = sorted(set(choices) - set(layers))
    if unknown or not choices:
        raise InvalidInputError(f"layer choices {unknown or choices} are not among the layers {list(layers)}.")
    counts = {stats.n for stats in layers.values()}
    if len(counts) != 1:
        raise InvalidInputError(f"the layers' statistics hold different samples ({sorted(counts)}): one pass gives "
                                "every layer the same samples.")
    def solve(key: str) -> tuple[EMMSResult, EMMSResult | None]:
        if control and key == last:  # the control shares the last layer's eigensystems
            return emms_with_control(layers[key], class_embeddings)
        return emms(layers[key], class_embeddings), None

    keys = list(layers)  # independent solves: side by side on the CPU's cores
    solved = dict(zip(keys, side_by_side(solve, keys, device=layers[last].device)))
    per_layer = {key: solved[key][0] for key in keys}
    ctrl = solved[last][1]
    result, chosen, best = _choose(per_layer, last, choices)
    return LayerwiseResult(result, per_layer[last], ctrl, per_layer, best, chosen, last)


def _choose(per_layer: Mapping[str, EMMSResult], last: str, choices: Sequence[str],
            margin: float = 0.0) -> tuple[EMMSResult, list[str], str]:
    """(N1)-(N2) among ``choices``: the result (the best overall choice's fit, with the nested score, fold scores and
    SE), l*(f) per fold, and the best overall choice. One choice: its own result, unchanged."""
    if len(choices) == 1:
        only = per_layer[choices[0]]
        return only, [choices[0]] * only.fold_sizes.size, choices[0]
    order = sorted(choices, key=lambda k: (k != last, -_depth(k)))  # ties: the last layer, then deeper ones
    sizes = per_layer[last].fold_sizes
    nested, chosen, best = nested_choice({k: per_layer[k].fold_scores for k in order}, sizes, order, margin=margin)
    score, se = fold_mean_and_se(nested, sizes)
    return dataclasses.replace(per_layer[best], score=score, se=se, fold_scores=nested), chosen, best


def _depth(key: str) -> float:
    """A layer key's index; the combination of layers ("upper") sorts after every single layer."""
    return float(key) if key.isdigit() else -1.0
