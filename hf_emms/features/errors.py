"""Errors of feature extraction (defined in :mod:`hf_emms.errors`, re-exported here for the old import path)."""

from ..errors import CandidateLoadError, OutOfMemoryError

__all__ = ["CandidateLoadError", "OutOfMemoryError"]
