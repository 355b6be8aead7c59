"""hf-emms: which pre-trained checkpoint should you fine-tune? EMMS rankings for the Hugging Face Hub.

>>> import hf_emms
>>> ranking = hf_emms.rank("stanfordnlp/sst2", ["sentence-transformers/all-MiniLM-L6-v2", "./my-checkpoint"])
>>> print(ranking.to_markdown())
"""

__version__ = "0.1.0"

from . import solver
from .errors import HfEmmsError, IncompatibleStatsError, InvalidInputError, StatsFileError
from .metric import load_metric
from .pipeline import rank
from .results import Ranking
from .solver import *  # noqa: F403  (the solver's public names: see solver.__all__)
from .tasks import Task, load_task

__all__ = [
    "HfEmmsError", "IncompatibleStatsError", "InvalidInputError", "Ranking", "load_metric", "StatsFileError", "Task", "load_task",
    "rank", *solver.__all__,
]
