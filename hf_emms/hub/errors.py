"""Errors of the Hub scanner. Each names the model, what went wrong, and what to do about it."""

from __future__ import annotations

from ..errors import HfEmmsError, InvalidInputError


class HubError(HfEmmsError):
    """Base class of the scanner's errors about talking to the Hub."""


class CandidateNotFoundError(HubError, LookupError):
    """The model, revision or file does not exist on the Hub (HTTP 404), or is private and no token grants it."""


class HubAccessError(HubError, PermissionError):
    """The Hub refused access (HTTP 401/403): a gated or private repo, and no token with access was given."""


class HubUnavailableError(HubError, ConnectionError):
    """The Hub kept failing (HTTP 5xx or 429) or timing out after every retry."""


class InvalidCandidateError(InvalidInputError):
    """A candidate reference or folder that cannot be a checkpoint (bad id, no ``config.json``, unreadable files)."""
