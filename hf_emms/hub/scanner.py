"""``scan``: gather candidates from every source, filter them, and explain each one left out."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import InvalidCandidateError, InvalidInputError
from .candidate import Candidate, Source
from .errors import CandidateNotFoundError, HubAccessError, HubError, HubUnavailableError
from .filters import Criteria, Rejected, RejectReason
from .local import candidates_from_cache, candidates_from_folders
from .remote import HubClient, Sort
from .retry import RetryPolicy

# Failures that concern one candidate: it is rejected with the reason and the scan goes on. Any other HubError (a
# malformed request) is a bug or a misconfigured endpoint, and is raised.
_REASON_OF_ERROR = {CandidateNotFoundError: RejectReason.NOT_FOUND, HubAccessError: RejectReason.NO_ACCESS,
                    HubUnavailableError: RejectReason.UNAVAILABLE}
_CANDIDATE_ERRORS = tuple(_REASON_OF_ERROR)


def _rejected(reference: str, exc: HubError, candidate: Candidate | None = None) -> Rejected:
    reason = next(r for cls, r in _REASON_OF_ERROR.items() if isinstance(exc, cls))
    return Rejected(reference, reason, str(exc), candidate)


@dataclasses.dataclass(frozen=True)
class ScanResult:
    """Candidates to rank (``kept``, in source order: ids, folders, cache, then the Hub's sort order) and the
    ones left out (``rejected``), each with its reason."""

    kept: list[Candidate]
    rejected: list[Rejected]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: ``{"kept": [candidate dicts], "rejected": [{reference, reason, detail, candidate}]}``."""
        return {
            "kept": [c.to_dict() for c in self.kept],
            "rejected": [{"reference": r.reference, "reason": r.reason.value, "detail": r.detail,
                          "candidate": r.candidate.to_dict() if r.candidate else None} for r in self.rejected],
        }


def scan(
    *,
    tags: Iterable[str] = (),
    pipeline_tag: str | None = None,
    sort: Sort = "downloads",
    limit: int = 20,
    search: str | None = None,
    author: str | None = None,
    ids: Iterable[str] = (),
    folders: Iterable[str | Path] = (),
    cache: bool | str | Path = False,
    criteria: Criteria = Criteria(),
    dedupe: bool = True,
    seen: dict[str, Candidate] | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
    retry: RetryPolicy = RetryPolicy(),
    progress: bool | None = None,
) -> ScanResult:
    """Find candidate checkpoints and keep those that can be ranked for a dataset.

    Sources, all optional, combined in this order: explicit Hub ``ids``, local ``folders``, the local HF ``cache``,
    and a Hub listing (made when any of ``tags``, ``pipeline_tag``, ``search`` or ``author`` is given).

    Parameters
    ----------
    tags : iterable of str
        Hub tags every listed model must carry (the listing's ``filter``), e.g. ``["sentence-transformers"]``.
    pipeline_tag : str, optional
        The Hub pipeline tag, e.g. ``"feature-extraction"``.
    sort : {"downloads", "likes", "trending", "recent", "updated"}
        Listing order, best first.
    limit : int
        How many models to list from the Hub (kept plus rejected); the other sources are not capped.
    search, author : str, optional
        Substring of the model id; the owning user or organisation.
    ids : iterable of str
        ``"org/name"`` or ``"org/name@revision"``; resolved to a commit sha.
    folders : iterable of path
        Checkpoint folders, or folders of checkpoint folders.
    cache : bool or path
        True to add every model snapshot in the HF cache (``HF_HUB_CACHE``), or a cache folder.
    criteria : Criteria
        The filters (modality, size, remote code, pickle, licence).
    dedupe : bool
        Collapse candidates with the same safetensors weights (by sha256), keeping the first.
    seen : dict, optional
        Weights digest -> the candidate kept with those weights, shared between calls: a caller that scans in
        several steps (``rank()`` pins explicit ids one at a time, when their turn comes) passes the same dict to
        each, so repeats are caught across the steps. Updated in place.
    token : str, bool or None
        Hub token (None: the saved login or ``HF_TOKEN``). Gated repos are kept only if it grants access.
    endpoint : str, optional
        Another Hub than ``HF_ENDPOINT``.
    retry : RetryPolicy
        Timeout and retries of every Hub request.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).

    Returns
    -------
    ScanResult

    Raises
    ------
    InvalidInputError
        No source given, a malformed id, invalid options. (A folder that is not a readable checkpoint is rejected
        with reason "broken", like any other candidate that cannot be ranked.)
    HubError
        The listing itself failed (not found, refused, or unavailable after retries). Failures for single ids or
        candidates do not raise: they are rejected with their reason.
    """
    tags = tuple(tags)
    ids = list(ids)
    folders = list(folders)
    listing = bool(tags or pipeline_tag or search or author)
    if not (listing or ids or folders or cache):
        raise InvalidInputError("nothing to scan: give Hub tags, a pipeline tag, a search or author, ids, "
                                "folders, or cache=True")
    client = HubClient(token=token, endpoint=endpoint, retry=retry)
    candidates: list[Candidate] = []
    rejected: list[Rejected] = []
    for reference in ids:
        try:
            candidates.append(client.candidate(reference))
        except _CANDIDATE_ERRORS as exc:
            rejected.append(_rejected(reference, exc))
    broken: list[tuple[Path, str]] = []  # one broken checkpoint is a rejected candidate, not the end of the scan
    for folder in folders:
        try:
            candidates += candidates_from_folders([folder], broken=broken)
        except InvalidCandidateError as exc:
            rejected.append(Rejected(str(folder), RejectReason.BROKEN, exc.reason))
    if cache:
        candidates += candidates_from_cache(None if cache is True else cache, broken=broken)
    rejected += [Rejected(str(path), RejectReason.BROKEN, reason) for path, reason in broken]
    if listing:
        candidates += list(client.list_candidates(tags=tags, pipeline_tag=pipeline_tag, sort=sort, limit=limit,
                                                  search=search, author=author))

    kept: list[Candidate] = []
    first_with = seen if seen is not None else {}
    for candidate in tqdm(candidates, desc="checking candidates", unit="model", disable=_no_bar(progress)):
        try:
            verdict = criteria.check(candidate) or _check_access(client, candidate)
            if verdict is None and dedupe:
                candidate, verdict = _dedupe(client, candidate, first_with)
        except _CANDIDATE_ERRORS as exc:
            verdict = _rejected(candidate.reference, exc, candidate)
        if verdict is None:
            kept.append(candidate)
        else:
            rejected.append(verdict)
    return ScanResult(kept, rejected)


def _no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # tqdm: None = only on a terminal


def _check_access(client: HubClient, candidate: Candidate) -> Rejected | None:
    """Gated Hub repos are kept only when the token may download them (one HEAD request, no weights)."""
    if candidate.source is not Source.HUB or not candidate.gated:
        return None
    if not client.has_token:
        return Rejected(candidate.reference, RejectReason.NO_ACCESS,
                        f"gated ({candidate.gated}): request access on the model's Hub page, then pass a token that "
                        "has it (HF_TOKEN or token=...)", candidate)
    client.check_access(candidate)  # HubAccessError when the token has no access
    return None


def _dedupe(client: HubClient, candidate: Candidate,
            first_with: dict[str, Candidate]) -> tuple[Candidate, Rejected | None]:
    """Fill in the weights digest (one metadata request for Hub candidates) and reject repeats of earlier ones."""
    if candidate.weights_digest is None and candidate.source is Source.HUB and candidate.has_safetensors:
        candidate = candidate.replace(weights_digest=client.weights_digest(candidate))
    digest = candidate.weights_digest
    if digest is None:
        return candidate, None
    if digest in first_with:
        return candidate, Rejected(candidate.reference, RejectReason.DUPLICATE,
                                   f"same weights as {first_with[digest].reference}", candidate)
    first_with[digest] = candidate
    return candidate, None
