"""hf-emms: which pre-trained checkpoint should you fine-tune? EMMS rankings for the Hugging Face Hub."""

from . import solver
from .errors import HfEmmsError, IncompatibleStatsError, InvalidInputError, StatsFileError
from .solver import *  # noqa: F403  (the solver's public names: see solver.__all__)

__version__ = "0.1.0"

__all__ = ["HfEmmsError", "IncompatibleStatsError", "InvalidInputError", "StatsFileError", *solver.__all__]
