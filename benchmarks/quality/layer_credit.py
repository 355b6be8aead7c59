"""Depth-credit variants of the layer-aware EMMS score, measured beside the default (issue 18, item 2).

Fine-tuning trains every layer; the frozen score reads one. A model whose best layer sits low has trainable depth
above it that the score never credits, which is one candidate explanation of the errors the quality benchmark shows
(a shallow prefix scored like its deeper parent). These variants put a number on that idea from what one
``rank(layers="auto")`` row already holds: ``layer_scores`` (``{layer: held-out EMMS score}``, layer keys are
hidden-state indices, ``"upper"`` the fixed mean of the upper half, ``"last"`` a model read at its last layer only)
and ``best_layer`` (the layer nested CV chose). Nothing here is fitted: there is no constant to tune.

Notation: s_l the held-out score of layer l, l0 the shallowest layer read, L the deepest (the last layer), l* the
chosen layer ("upper" and "last" count as L), s* = s_{l*} the default score ``emms``.

    depth_extrap    s* + (L - l*) * max(0, (s* - s_{l0}) / (l* - l0))
                    the mean per-layer gain below the chosen layer, continued through the layers above it
    depth_headroom  s* + (L - l*) / L * max(0, s* - s_{l0})
                    the gain below the chosen layer, scaled by the share of the depth left above it
    max_layer       max_l s_l
                    the best layer picked in-sample: what nested CV exists to avoid (selection over many layers
                    inflates deep models' scores), measured to show how much it would move the ranking
"""
from __future__ import annotations

from collections.abc import Mapping

VARIANTS = ("emms_depth_extrap", "emms_depth_headroom", "emms_max_layer")


def _depths(layer_scores: Mapping[str, float]) -> tuple[dict[int, float], int]:
    """Scores by integer depth (``"last"`` alone: depth 1), and the deepest layer L."""
    numbered = {int(k): float(v) for k, v in layer_scores.items() if k.isdigit()}
    if not numbered:
        return {1: float(layer_scores["last"])}, 1
    return numbered, max(numbered)


def depth_credit(layer_scores: Mapping[str, float] | None, best_layer: str | None,
                 score: float) -> dict[str, float | None]:
    """The three variants for one candidate.

    Parameters
    ----------
    layer_scores : mapping or None
        ``{layer key: held-out EMMS score}`` of one row; None (a run with ``layers="last"``) gives None variants.
    best_layer : str or None
        The key nested CV chose.
    score : float
        The row's ``emms`` (s*).

    Returns
    -------
    dict
        ``{name: value}`` for the names in ``VARIANTS``.
    """
    if not layer_scores:
        return dict.fromkeys(VARIANTS)
    by_depth, deepest = _depths(layer_scores)
    chosen = int(best_layer) if best_layer and best_layer.isdigit() else deepest
    shallowest = min(by_depth)
    gain = max(0.0, score - by_depth[shallowest])
    per_layer = gain / (chosen - shallowest) if chosen > shallowest else 0.0
    return {
        "emms_depth_extrap": score + (deepest - chosen) * per_layer,
        "emms_depth_headroom": score + (deepest - chosen) / deepest * gain,
        "emms_max_layer": max(float(v) for v in layer_scores.values()),
    }
