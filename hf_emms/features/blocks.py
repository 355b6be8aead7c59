"""Pooled batches -> per-layer streamed statistics: the accumulation step of :func:`.extract.run_candidate`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..solver import FeatureStats
from ..solver.stats import N_FOLDS
from .layers import check_layers_memory

__all__ = ["Blocks"]


class Blocks:
    """Pooled batches gathered into blocks of about ``rows`` samples, then folded into the statistics: one
    :class:`FeatureStats` per kept layer (:mod:`.layers`), created at the first block, after the memory check.

    ``FeatureStats.update`` costs a few dozen tensor operations whatever the batch size; at model batch sizes
    (32-64 samples) that fixed cost, not arithmetic, dominates. Blocks of 1,024 samples (4,096 on an accelerator,
    where the cost is kernel launches) pay it once per block; they hold rows x D1 pooled features per layer (4 MB
    for 1,024 x 1,024 in float32), not the dataset's, and a block is folded in early once its features take
    ``max_bytes`` (many wide layers).
    """

    def __init__(self, job: Any, rows: int = 1024, max_bytes: int = 256 * 2**20) -> None:  # job: an .extract.Job
        self.job, self.rows, self.max_bytes = job, rows, max_bytes
        self.held = 0  # bytes of the features gathered so far
        self.stats: dict[str, FeatureStats] = {}
        self.features: dict[str, list[torch.Tensor]] = {}
        self.logits: list[torch.Tensor] = []
        self.ids: list[np.ndarray] = []
        self.last = ""

    def add(self, features: dict[str, torch.Tensor], logits: torch.Tensor | None, ids: np.ndarray, *,
            last: str) -> None:
        self.last = last
        for key, x in features.items():
            self.features.setdefault(key, []).append(x)
            self.held += x.numel() * x.element_size()
        self.ids.append(ids)
        if logits is not None:
            self.logits.append(logits)
        if sum(len(i) for i in self.ids) >= self.rows or self.held >= self.max_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.ids:
            return
        ids = np.concatenate(self.ids)  # dataset row ids: cross-validation folds follow the rows, not order or shard
        # rows held out together (the same input, or group: groups.py) take the first one's id, hence its fold
        fold_ids = ids if self.job.groups is None else self.job.groups.fold_ids(ids)
        logits = torch.cat(self.logits) if self.logits else None
        if not self.stats:
            self._start({key: parts[0].shape[1] for key, parts in self.features.items()}, logits)
        labels = None if self.job.labels is None else self.job.labels[ids]  # read once for every layer
        targets = None if labels is not None else np.asarray(self.job.label_embeddings[ids])
        for key, parts in self.features.items():
            x = torch.cat(parts)
            if labels is not None:  # the source head's tables: with the last layer's statistics only
                self.stats[key].update(x, labels=labels, head_logits=logits if key == self.last else None,
                                       sample_ids=fold_ids)
            else:
                self.stats[key].update(x, label_embeddings=targets, sample_ids=fold_ids)
        self.features, self.logits, self.ids, self.held = {}, [], [], 0

    def _start(self, widths: dict[str, int], logits: torch.Tensor | None) -> None:
        """One accumulator per kept layer, once the layers' statistics are known to fit the memory budget."""
        settings = self.job.settings
        if len(widths) > 1 or settings.max_stats_memory is not None:
            labels, embeddings = self.job.labels, self.job.label_embeddings
            shape = None if embeddings is None else (tuple(embeddings.shape[1:]) + (1,))[:2]
            check_layers_memory(widths, N_FOLDS, n_classes=0 if labels is None else int(labels.max()) + 1,
                                n_source=0 if logits is None else logits.shape[1], label_shape=shape,
                                budget=settings.max_stats_memory)
        self.stats = {key: FeatureStats() for key in widths}
