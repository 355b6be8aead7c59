"""Which hidden layers of a candidate get statistics, and their memory bound.

Fine-tuning reshapes a model's upper layers, so the frozen last layer can under-rate a checkpoint whose useful
information sits lower down. One forward pass with ``output_hidden_states=True`` gives every layer; each selected
layer is pooled by the candidate's own rule and streamed into its own :class:`~hf_emms.solver.FeatureStats`. The
layer-aware score (:mod:`hf_emms.solver.layerwise`) then chooses among them by nested cross-validation.

Indices follow ``hidden_states``: 0 is the embeddings' output, L (the model's layer count) the last layer; a negative
index counts from the end (-1 = L). The options:

=========  ==========================================================================================
"last"     L only: the statistics, and so every score, are exactly those of a last-layer run
"auto"     L and up to 7 more, evenly spaced over the transformer layers 1..L-1 (the embeddings' output, a
           lookup table with no context, is left out)
"all"      0..L
list       those indices (L is always added: ``emms_last`` is reported beside the layer-aware score)
=========  ==========================================================================================

Pooling: layer L is pooled exactly as a last-layer run pools it (``pooler_output`` included); a lower layer by the
same rule over its positions, except that a trained pooler belongs to the last layer only, so lower layers of a
``pooler_output`` checkpoint are mean-pooled. The combination ``"upper"`` is the mean of the pooled features of the
selected layers in the upper half of the model (index >= L / 2): a fixed average that needs no choice.

Memory: the statistics of one layer of width D1 hold about ``(folds + 2) x D1^2`` float64 numbers (the Gram, one
per fold, a work buffer) plus the class or F-label tables (:func:`hf_emms.solver.inputs.stats_bytes`); layers add
up. A 13-layer 768-wide model with 5 folds and 77 classes takes under 0.5 GB (measured bound: 0.47 GiB). A request over ``max_stats_memory`` is
refused before any accumulation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import InvalidInputError
from ..solver.inputs import max_stats_bytes, stats_bytes

__all__ = ["AUTO_EXTRA", "UPPER", "check_layers_memory", "layer_keys", "select_layers"]

AUTO_EXTRA = 7  # "auto": layers besides the last
UPPER = "upper"  # the key of the fixed combination: the mean of the selected upper-half layers


def select_layers(option: str | tuple[int, ...], n_layers: int) -> tuple[int, ...]:
    """The hidden-state indices an option selects for a model with ``n_layers`` layers, sorted, the last included.

    Parameters
    ----------
    option : {"auto", "last", "all"} or tuple of int
        As checked by :func:`hf_emms.options.check_layers`.
    n_layers : int
        L: the model returns L + 1 hidden states (the embeddings' output, then one per layer).
    """
    last = n_layers
    if option == "last" or n_layers < 1:
        return (last,)
    if option == "all":
        return tuple(range(last + 1))
    if option == "auto":
        spread = np.round(np.linspace(1, last, min(AUTO_EXTRA + 1, last))).astype(int)
        return tuple(sorted({*map(int, spread), last}))
    outside = [i for i in option if not -(last + 1) <= i <= last]
    if outside:
        raise InvalidInputError(f"layers {outside} are outside this model's hidden states 0..{last} (0 = the "
                                f"embeddings' output, {last} = the last layer, -1 also the last).")
    chosen = {i + last + 1 if i < 0 else i for i in option}
    return tuple(sorted(chosen | {last}))


def layer_keys(layers: tuple[int, ...], n_layers: int, widths: Mapping[int, int] | None = None) -> list[str]:
    """The statistics a run keeps: one per selected layer (its index as a string) and, with at least two selected
    layers in the upper half (of the last layer's width, see :func:`upper_half`), their mean :data:`UPPER`."""
    keys = [str(i) for i in layers]
    if len(upper_half(layers, n_layers, widths)) >= 2:
        keys.append(UPPER)
    return keys


def upper_half(layers: tuple[int, ...], n_layers: int, widths: Mapping[int, int] | None = None) -> tuple[int, ...]:
    """The selected layers with index >= L / 2 (the ones :data:`UPPER` averages); with ``widths`` (hidden-state index
    -> pooled width) only those as wide as the last layer: a CNN's stages widen (ResNet: 256 to 2,048 channels), and
    features of different widths have no mean. Each layer keeps its own statistics whatever its width."""
    return tuple(i for i in layers if 2 * i >= n_layers and (widths is None or widths[i] == widths[n_layers]))


def check_layers_memory(widths: Mapping[str, int], folds: int, *, n_classes: int = 0, n_source: int = 0,
                        label_shape: tuple[int, int] | None = None, budget: int | None = None) -> int:
    """Bytes the statistics of these layers take together; a clear ``InvalidInputError`` when over ``budget``.

    Parameters
    ----------
    widths : mapping of str to int
        Feature width D1 of each kept statistic (:func:`layer_keys`).
    folds, n_classes, n_source, label_shape :
        As for :func:`hf_emms.solver.inputs.stats_bytes` (the source head's tables count once: only the last
        layer keeps them).
    budget : int, optional
        Default :func:`hf_emms.solver.inputs.max_stats_bytes`.
    """
    budget = max_stats_bytes() if budget is None else budget
    need = sum(stats_bytes(d1, folds, n_classes=n_classes, label_shape=label_shape) for d1 in widths.values())
    need += stats_bytes(0, folds, n_classes=n_classes, n_source=n_source) - stats_bytes(0, folds, n_classes=n_classes)
    if need > budget:
        gib = 2**30
        raise InvalidInputError(
            f"statistics of {len(widths)} layers (widths {sorted(set(widths.values()))}) need {need / gib:.3g} GiB, "
            f"over the max_stats_memory budget of {budget / gib:.3g} GiB. Select fewer layers (layers='auto' keeps at "
            f"most 8, layers='last' one) or raise max_stats_memory."
        )
    return need
