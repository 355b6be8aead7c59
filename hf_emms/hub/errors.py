"""The scanner's errors (defined in :mod:`hf_emms.errors`, re-exported here for the old import path)."""

from ..errors import CandidateNotFoundError, HubAccessError, HubError, HubUnavailableError, InvalidCandidateError

__all__ = ["CandidateNotFoundError", "HubAccessError", "HubError", "HubUnavailableError", "InvalidCandidateError"]
