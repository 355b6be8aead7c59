"""Numerics only (no Hub imports): streamed statistics, EMMS, the simplex QP."""

from .scores import EMMSResult, emms, emms_reference, emms_score
from .simplex import simplex_qp, sparsemax
from .stats import CenteredStats, FeatureStats

__all__ = [
    "CenteredStats",
    "EMMSResult",
    "FeatureStats",
    "emms",
    "emms_reference",
    "emms_score",
    "simplex_qp",
    "sparsemax",
]
