"""Calls to the Hub with a timeout, retries with exponential backoff on 5xx/429/timeouts, and clear errors.

``huggingface_hub``'s HTTP client has no default timeout, and only some of its calls retry: every Hub call the
scanner makes goes through :func:`call_hub`, so a slow or flaky Hub costs bounded time and never hangs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TypeVar

import httpx2
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .errors import CandidateNotFoundError, HubAccessError, HubError, HubUnavailableError

T = TypeVar("T")

# Status codes worth a retry: rate limiting and server-side errors, as huggingface_hub's own `http_backoff`.
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for the Hub and how often to try again.

    Parameters
    ----------
    attempts : int
        Tries per request, the first included (>= 1).
    timeout : float
        Seconds to wait for each answer (connection and each read).
    backoff : float
        Seconds before the first retry; doubled each retry, capped at ``max_backoff``.
    max_backoff : float
        Longest wait between two tries.
    """

    attempts: int = 4
    timeout: float = 10.0
    backoff: float = 1.0
    max_backoff: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.timeout <= 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError(f"invalid retry policy {self}: attempts >= 1, timeout > 0, waits >= 0")

    def wait(self, retry: int) -> float:
        """Seconds to sleep before retry number ``retry`` (0-based)."""
        return min(self.backoff * 2**retry, self.max_backoff)


def call_hub(call: Callable[[], T], *, what: str, policy: RetryPolicy) -> T:
    """Run ``call`` (one Hub request, made with ``timeout=policy.timeout``), retrying transient failures.

    Parameters
    ----------
    call : callable
        Makes the request and returns its parsed result; raises huggingface_hub's HTTP errors.
    what : str
        What is being fetched, for error messages (e.g. ``"model info of org/name"``).
    policy : RetryPolicy
        Attempts, timeout and backoff.

    Raises
    ------
    CandidateNotFoundError
        HTTP 404 (repo, revision or file), or a private repo without access.
    HubAccessError
        HTTP 401/403: a gated repo without access, or a token the Hub refused.
    HubUnavailableError
        5xx, 429 or timeouts on every attempt; or offline mode (``HF_HUB_OFFLINE``), not retried.
    HubError
        Any other HTTP error (the request itself is wrong: not worth retrying).
    """
    for attempt in range(policy.attempts):
        try:
            return call()
        except OfflineModeIsEnabled:
            raise HubUnavailableError(f"{what}: offline mode (HF_HUB_OFFLINE) is on; unset it to reach the Hub, or "
                                      "scan only local folders and the cache") from None
        except GatedRepoError as exc:
            who = "no token was given" if _status(exc) == 401 else "the token has no access"
            raise HubAccessError(
                f"{what}: the repo is gated and {who}; request access on the model's Hub page, then pass a token "
                "that has it (HF_TOKEN or token=...)"
            ) from None
        except RepositoryNotFoundError as exc:
            raise CandidateNotFoundError(
                f"{what}: repository not found (HTTP {_status(exc)}); check the id, or pass a token with read access "
                "if it is private"
            ) from None
        except RevisionNotFoundError:
            raise CandidateNotFoundError(f"{what}: revision not found; check the branch, tag or commit sha") from None
        except RemoteEntryNotFoundError:
            raise CandidateNotFoundError(f"{what}: file not found in the repo") from None
        except HfHubHTTPError as exc:
            status = _status(exc)
            if status in (401, 403):
                raise HubAccessError(f"{what}: the Hub refused access (HTTP {status}); pass a token with access "
                                     "(HF_TOKEN or token=...), or check that it is still valid") from None
            if status == 404:
                raise CandidateNotFoundError(f"{what}: not found (HTTP 404); check the id and revision") from None
            if status not in _RETRY_STATUS:
                raise HubError(f"{what}: the Hub answered HTTP {status}: {exc}") from None
            failure = f"HTTP {status}"
        except (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError) as exc:
            failure = f"{type(exc).__name__} (timeout {policy.timeout:g} s)"
        if attempt + 1 < policy.attempts:
            time.sleep(policy.wait(attempt))
    raise HubUnavailableError(
        f"{what}: failed {policy.attempts} times, last with {failure}; the Hub (HF_ENDPOINT) is unreachable or "
        "overloaded: retry later, or allow more time (RetryPolicy(timeout=..., attempts=...), hf-emms scan --timeout)"
    )


def _status(exc: HfHubHTTPError) -> int | None:
    return exc.response.status_code if exc.response is not None else None
