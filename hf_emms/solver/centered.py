"""What solvers consume: the statistics centred at the sample mean, as float64 numpy arrays
(``FeatureStats.centered()`` builds them; ``spectrum.py``, ``evidence.py``, ``h_score.py`` and ``head.py`` read them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CenteredStats:
    """Statistics centred at the sample mean, as float64 numpy arrays: what solvers consume.

    Attributes
    ----------
    n : int
        Number of samples N.
    mean_x : ndarray of shape (D1,)
        Feature means.
    scatter_x : ndarray of shape (D1, D1)
        sum_i (x_i - mean)(x_i - mean)^T.
    quartic_x : float
        sum_i |x_i - mean|^4.
    class_count : ndarray of shape (C,) or None
        Samples per class id (class-label statistics only).
    class_scatter : ndarray of shape (C, D1) or None
        sum over samples of class c of (x_i - mean): the centred class sums.
    head_hard, head_soft : ndarray of shape (C, Z) or None
        From a source classifier head: counts of (class, argmax source class), and summed source
        probabilities per class. Present when batches came with ``head_logits``.
    mean_y : ndarray of shape (D2, K) or None
        F-label means (per-sample F-label statistics only).
    cross : ndarray of shape (D1, D2, K) or None
        sum_i (x_i - mean_x)(y_ik - mean_yk)^T for each F-label k.
    scatter_y : ndarray of shape (D2, K, K) or None
        Per F-label column j: sum_i (y_ijk - mean_jk)(y_ijl - mean_jl).
    """

    n: int
    mean_x: np.ndarray
    scatter_x: np.ndarray
    quartic_x: float
    class_count: np.ndarray | None = None
    class_scatter: np.ndarray | None = None
    head_hard: np.ndarray | None = None
    head_soft: np.ndarray | None = None
    mean_y: np.ndarray | None = None
    cross: np.ndarray | None = None
    scatter_y: np.ndarray | None = None
