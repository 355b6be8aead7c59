"""Candidate discovery: which checkpoints to rank, from the Hub, local folders and the local HF cache.

Example::

    from hf_emms.hub import Criteria, scan

    result = scan(tags=["sentence-transformers"], pipeline_tag="feature-extraction", sort="downloads", limit=20,
                  criteria=Criteria(modality="text", max_params=150_000_000))
    [c.reference for c in result.kept]                         # "org/name@<40-hex sha>"
    [(r.reference, r.reason.value, r.detail) for r in result.rejected]
    AutoModel.from_pretrained(**result.kept[0].from_pretrained_kwargs())   # exactly those weights

Every candidate is pinned to a revision (a commit sha, or a content digest for local folders); decisions use only
metadata (config, safetensors headers, tags), never downloaded weights. Remote code and pickle weights are left out
unless allowed; gated repos are kept only when the token grants access.
"""

from .architectures import MODALITIES, modalities_of
from .candidate import Candidate, Source, parse_reference
from .errors import CandidateNotFoundError, HubAccessError, HubError, HubUnavailableError, InvalidCandidateError
from .filters import Criteria, Rejected, RejectReason
from .local import candidate_from_folder, candidates_from_cache, candidates_from_folders
from .remote import HubClient
from .retry import RetryPolicy
from .scanner import ScanResult, scan

__all__ = [
    "MODALITIES", "Candidate", "CandidateNotFoundError", "Criteria", "HubAccessError", "HubClient", "HubError",
    "HubUnavailableError", "InvalidCandidateError", "RejectReason", "Rejected", "RetryPolicy", "ScanResult",
    "Source", "candidate_from_folder", "candidates_from_cache", "candidates_from_folders", "modalities_of",
    "parse_reference", "scan",
]
