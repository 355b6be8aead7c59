"""Numerics only (no Hub imports): streamed statistics, EMMS, the simplex QP, and the baselines
(LogME, H-score, NCE, LEEP) computed from the same statistics."""

from .head import LeepPass, leep_conditional, leep_score, nce
from .h_score import hscore
from .evidence import logme
from .scores import EMMSResult, emms, emms_reference, emms_score
from .simplex import simplex_qp, sparsemax
from .stats import CenteredStats, FeatureStats
from .uncertainty import Comparison, compare

__all__ = [
    "CenteredStats",
    "Comparison",
    "EMMSResult",
    "FeatureStats",
    "compare",
    "LeepPass",
    "emms",
    "emms_reference",
    "emms_score",
    "hscore",
    "leep_conditional",
    "leep_score",
    "logme",
    "nce",
    "simplex_qp",
    "sparsemax",
]
