"""Errors of feature extraction."""

from __future__ import annotations

from ..errors import HfEmmsError


class CandidateLoadError(HfEmmsError):
    """A candidate checkpoint that cannot be loaded or run on this dataset.

    The ranking pipeline records the candidate as skipped with :attr:`reason` and goes on.

    Attributes
    ----------
    candidate : str
        The candidate as given (Hub id or local folder).
    reason : str
        What went wrong and, where there is one, what to do about it.
    """

    def __init__(self, candidate: str, reason: str) -> None:
        super().__init__(f"cannot use candidate {candidate!r}: {reason}")
        self.candidate = candidate
        self.reason = reason

    def __reduce__(self):  # picklable with its two fields (it crosses process boundaries in distributed runs)
        return type(self), (self.candidate, self.reason)
