"""Exceptions raised by hf-emms.

Every error names the problem and what to do about it. They subclass ``ValueError`` where the
cause is a bad argument, so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations


class HfEmmsError(Exception):
    """Base class of every error hf-emms raises on purpose."""


class InvalidInputError(HfEmmsError, ValueError):
    """Features, labels or F-label embeddings that cannot be scored (NaN, wrong shape, one class, ...)."""


class IncompatibleStatsError(InvalidInputError):
    """Two sets of statistics that cannot be merged (different feature widths or label kinds)."""


class StatsFileError(HfEmmsError, ValueError):
    """A saved statistics file that is missing, truncated, or not written by hf-emms."""
