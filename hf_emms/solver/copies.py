"""Repeated feature rows: the ids that hold the copies of a sample out together.

EMMS is cross-validated (``cross_validation.py``): a fold is picked from each sample's id. Two copies of one sample
(the same text twice in a dataset) with different ids usually land in different folds, and the held-out copy is then
predicted by memorising its twin: the score measures memorisation (``hf_emms.features.groups`` measured it on a real
ranking, and groups a ranking's rows by their inputs). When only features are given (:func:`hf_emms.emms_score`, the
``evaluate`` metric), equal feature rows are usually such copies, and :func:`first_copies` gives the ids that hold
them out together: each row the position of the first row equal to it. ``emms_score`` only warns when it finds
some: a degenerate candidate maps different inputs to equal features too (a constant one, all of them), and grouping
those would leave nothing to cross-validate.

Cost: one projection of the rows on a fixed random direction (N x D1 flops, in the features' precision: 0.01 s for
20,000 x 1024 float32 rows) finds the candidates; only rows whose projections are equal are compared exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["first_copies"]


def first_copies(features: Any) -> np.ndarray | None:
    """For each row of ``features`` (N, D1), the position of the first row exactly equal to it; None when every row
    differs from every other (the default ids, positions 0..N-1, are then the answer)."""
    x = features if isinstance(features, torch.Tensor) else torch.as_tensor(np.asarray(features))
    if x.ndim != 2 or x.shape[0] < 2 or not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
        return None  # checked and named by the accumulator
    x = x.detach()
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    direction = torch.from_numpy(_direction(x.shape[1])).to(x.device, dtype)
    projection = torch.cat([x[i : i + 4096].to(dtype) @ direction  # equal rows: equal projections (in the features'
                            for i in range(0, x.shape[0], 4096)]).cpu().numpy()  # precision; ties are checked below)
    if not np.isfinite(projection).all():
        return None  # NaN or inf features: refused by the accumulator
    _, first, inverse = np.unique(projection, return_index=True, return_inverse=True)
    ids = first[inverse.reshape(-1)]  # the first row with the same projection
    moved = np.flatnonzero(ids != np.arange(ids.size))
    if moved.size == 0:
        return None

    def pick(rows: np.ndarray) -> np.ndarray:
        return x[torch.from_numpy(rows).to(x.device)].cpu().numpy()

    unequal = moved[~(pick(moved) == pick(ids[moved])).all(axis=1)]  # equal projections, different rows: rare
    for row in unequal:  # compare with the earlier rows of the same projection, exactly
        earlier = np.flatnonzero(projection[:row] == projection[row])
        same = earlier[(pick(earlier) == pick(np.array([row]))).all(axis=1)]
        ids[row] = same[0] if same.size else row
    return None if np.array_equal(ids, np.arange(ids.size)) else ids


def _direction(width: int) -> np.ndarray:
    """The fixed random direction rows are projected on (seeded: the same ids on every run)."""
    return np.random.default_rng(0).standard_normal(width)
