"""Every exception hf-emms raises on purpose, in one hierarchy.

Each error names the problem and what to do about it. Errors caused by a bad argument or bad data subclass
``ValueError`` (through :class:`InvalidInputError`), so ``except ValueError`` in user code keeps working. The old
import paths (``hf_emms.hub.errors``, ``hf_emms.features.errors``, ``hf_emms.labels.errors``, ...) re-export these.

::

    HfEmmsError
    ├── InvalidInputError (ValueError)        bad features, labels, options, datasets
    │   ├── IncompatibleStatsError            statistics that cannot be merged
    │   ├── LabelError                        labels that cannot become F-labels
    │   ├── CandidateError                    a checkpoint that cannot be found, read, loaded or run (= skipped row)
    │   └── AnnotationError                   a ranking that cannot annotate model cards
    ├── StatsFileError (ValueError)           a statistics file that is missing, truncated or foreign
    ├── CardFormatError (ValueError)          a model card whose metadata cannot be merged
    ├── EncoderLoadError                      an F-label encoder that cannot be loaded
    ├── OutOfMemoryError                      one sample does not fit on the device
    ├── HubError                              talking to the Hub
    │   ├── CandidateNotFoundError (LookupError)      404
    │   ├── HubAccessError (PermissionError)          401/403
    │   └── HubUnavailableError (ConnectionError)     5xx/429/timeouts after every retry
    ├── ZooUnavailableError                   a source checkpoint of the demo zoo is not installed
    └── MetricModuleError                     the evaluate module cannot be found or installed
"""

from __future__ import annotations

__all__ = [
    "AnnotationError", "CandidateError", "CandidateLoadError", "CandidateNotFoundError", "CardFormatError",
    "EncoderLoadError", "HfEmmsError", "HubAccessError", "HubError", "HubUnavailableError", "IncompatibleStatsError",
    "InvalidCandidateError", "InvalidInputError", "LabelError", "MetricModuleError", "OutOfMemoryError",
    "StatsFileError", "ZooUnavailableError",
]


class HfEmmsError(Exception):
    """Base class of every error hf-emms raises on purpose."""


class InvalidInputError(HfEmmsError, ValueError):
    """Features, labels, options or data that cannot be scored (NaN, wrong shape, one class, unknown choice, ...)."""


class IncompatibleStatsError(InvalidInputError):
    """Two sets of statistics that cannot be merged (different feature widths or label kinds)."""


class StatsFileError(HfEmmsError, ValueError):
    """A saved statistics file that is missing, truncated, or not written by hf-emms."""


class LabelError(InvalidInputError):
    """Labels that cannot be turned into F-labels: empty or missing names, unknown class ids, mixed types."""


class EncoderLoadError(HfEmmsError):
    """An F-label encoder that cannot be resolved or loaded (not found, no safetensors weights, remote code)."""


class CandidateError(InvalidInputError):
    """A candidate checkpoint that cannot be used: a bad reference, a folder that is not a checkpoint, unreadable or
    broken files, weights transformers cannot build, or a model that cannot run on this dataset.

    The ranking pipeline records the candidate as skipped with :attr:`reason` and goes on.

    Parameters
    ----------
    candidate : str
        The candidate as given (Hub id, reference or local folder); or, called with one argument, the whole message.
    reason : str, optional
        What went wrong and, where there is one, what to do about it.

    Attributes
    ----------
    candidate : str or None
    reason : str
    """

    def __init__(self, candidate: str, reason: str | None = None) -> None:
        if reason is None:  # one argument: a message that names the candidate itself
            super().__init__(candidate)
            self.candidate, self.reason = None, candidate
        else:
            super().__init__(f"cannot use candidate {candidate!r}: {reason}")
            self.candidate, self.reason = candidate, reason

    def __reduce__(self):  # picklable with its fields (it crosses process boundaries in distributed runs)
        return type(self), ((self.reason,) if self.candidate is None else (self.candidate, self.reason))


# One failure, formerly two names: both stay importable.
CandidateLoadError = CandidateError
InvalidCandidateError = CandidateError


class AnnotationError(InvalidInputError):
    """A ranking that cannot annotate cards: not a ranking, scored on data that is not on the Hub, unknown models."""


class CardFormatError(HfEmmsError, ValueError):
    """A model card whose metadata cannot be merged (YAML that does not parse, a malformed ``model-index``)."""


class OutOfMemoryError(HfEmmsError):
    """Even one sample at a time does not fit on the device."""


class HubError(HfEmmsError):
    """Base class of the errors about talking to the Hub."""


class CandidateNotFoundError(HubError, LookupError):
    """The model, revision or file does not exist on the Hub (HTTP 404), or is private and no token grants it."""


class HubAccessError(HubError, PermissionError):
    """The Hub refused access (HTTP 401/403): a gated or private repo, and no token with access was given."""


class HubUnavailableError(HubError, ConnectionError):
    """The Hub kept failing (HTTP 5xx or 429) or timing out after every retry."""


class ZooUnavailableError(HfEmmsError):
    """A source checkpoint of the zoo is not installed."""


class MetricModuleError(HfEmmsError):
    """The evaluate module cannot be found or installed (evaluate missing, or an installation without it)."""
