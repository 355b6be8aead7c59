"""Candidate checkpoint + dataset -> solver statistics, streamed batch by batch, on one process or many.

:func:`extract_stats` turns one candidate (a local folder, or a Hub id at a revision) and a loaded
``datasets.Dataset`` into a :class:`~hf_emms.solver.FeatureStats` and an :class:`ExtractionRecord` of how it was
made; :func:`extract_many` does it for many candidates, data-parallel or candidate-parallel under ``accelerate``.
Features are pooled by the checkpoint's own rules (:mod:`.pooling`) and never held in memory; finished statistics
are cached (:class:`StatsCache`).
"""

from ..errors import CandidateLoadError, OutOfMemoryError
from .adaptive import HalvingBatches
from .cache import StatsCache
from .candidate import ResolvedCandidate, resolve_candidate
from .extract import extract_stats
from .parallel import choose_mode, extract_many
from .record import Extraction, ExtractionRecord
from .pooling import Pooling, declared_pooling
from .sampling import subsample

__all__ = [
    "CandidateLoadError",
    "Extraction",
    "ExtractionRecord",
    "HalvingBatches",
    "OutOfMemoryError",
    "Pooling",
    "ResolvedCandidate",
    "StatsCache",
    "choose_mode",
    "declared_pooling",
    "extract_many",
    "extract_stats",
    "resolve_candidate",
    "subsample",
]
