"""hf-emms: which pre-trained checkpoint should you fine-tune? EMMS rankings for the Hugging Face Hub."""

from .errors import HfEmmsError, IncompatibleStatsError, InvalidInputError, StatsFileError
from .solver import EMMSResult, FeatureStats, emms, emms_reference, emms_score

__version__ = "0.1.0"

__all__ = [
    "EMMSResult",
    "FeatureStats",
    "HfEmmsError",
    "IncompatibleStatsError",
    "InvalidInputError",
    "StatsFileError",
    "emms",
    "emms_reference",
    "emms_score",
]
