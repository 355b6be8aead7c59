"""hf-emms: which pre-trained checkpoint should you fine-tune? EMMS rankings for the Hugging Face Hub.

>>> import hf_emms
>>> ranking = hf_emms.rank("stanfordnlp/sst2", ["sentence-transformers/all-MiniLM-L6-v2", "./my-checkpoint"])
>>> print(ranking.to_markdown())

The top-level names: :func:`rank` (and :func:`iter_rank`, one row at a time), :class:`Ranking`, :func:`load_task` /
:class:`Task`, :func:`load_metric`, the solver (:class:`FeatureStats`, :func:`emms`, :func:`emms_score`, the
baselines) and the errors. Subpackages: ``hf_emms.hub`` (candidates), ``hf_emms.labels`` (F-labels),
``hf_emms.features`` (extraction), ``hf_emms.solver`` (numerics), ``hf_emms.options`` (run specs).
"""

from ._version import __version__
from .errors import HfEmmsError, IncompatibleStatsError, InvalidInputError, StatsFileError
from .metric import load_metric
from .pipeline import iter_rank, rank
from .results import Ranking
from .solver import (
    CenteredStats, EMMSResult, FeatureStats, LeepPass, emms, emms_reference, emms_score, hscore, leep_conditional,
    leep_score, logme, nce, simplex_qp, sparsemax,
)
from .tasks import Task, load_task

__all__ = [
    "CenteredStats", "EMMSResult", "FeatureStats", "HfEmmsError", "IncompatibleStatsError", "InvalidInputError",
    "LeepPass", "Ranking", "StatsFileError", "Task", "__version__", "emms", "emms_reference", "emms_score", "hscore",
    "iter_rank", "leep_conditional", "leep_score", "load_metric", "load_task", "logme", "nce", "rank", "simplex_qp",
    "sparsemax",
]
