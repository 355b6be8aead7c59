"""hf-emms: which pre-trained checkpoint should you fine-tune? EMMS rankings for the Hugging Face Hub."""

from .errors import HfEmmsError, IncompatibleStatsError, InvalidInputError, StatsFileError
from .solver import (
    EMMSResult,
    FeatureStats,
    LeepPass,
    emms,
    emms_reference,
    emms_score,
    hscore,
    leep_conditional,
    leep_score,
    logme,
    nce,
)

__version__ = "0.1.0"

__all__ = [
    "EMMSResult",
    "FeatureStats",
    "HfEmmsError",
    "IncompatibleStatsError",
    "InvalidInputError",
    "LeepPass",
    "StatsFileError",
    "emms",
    "emms_reference",
    "emms_score",
    "hscore",
    "leep_conditional",
    "leep_score",
    "logme",
    "nce",
]
