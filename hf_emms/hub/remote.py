"""Candidates from the Hub: listing by tags, explicit ids, and the per-candidate checks that need the network.

Everything the filters need comes from the listing's ``expand`` (config, safetensors parameter counts, gating,
tags): no weights are downloaded to decide. Every request goes through :func:`~hf_emms.hub.retry.call_hub`
(timeout, retries, clear errors).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from huggingface_hub import HfApi, ModelInfo, get_hf_file_metadata, hf_hub_url
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from .._version import __version__
from ..errors import InvalidInputError
from .architectures import modalities_of
from .candidate import Candidate, Source, eval_results, head_labels, parse_reference, weights_digest
from .retry import RetryPolicy, call_hub

# Properties the filters read, and the card's model-index results (recall learns from them); asking for only these
# keeps listing pages small (no card text, no file list).
EXPAND = ["sha", "config", "safetensors", "gated", "private", "pipeline_tag", "library_name", "tags", "downloads",
          "likes", "model-index"]

Sort = str  # one of hf_emms.options.SORTS
# The Hub's sort keys (always descending: most downloaded, most liked, newest first).
SORT_KEYS = {"downloads": "downloads", "likes": "likes", "trending": "trendingScore", "recent": "createdAt",
             "updated": "lastModified"}
_MAX_PAGE = 1000  # the Hub's largest page


def candidate_from_info(info: ModelInfo) -> Candidate:
    """A Hub candidate from a ``ModelInfo`` fetched with ``expand=EXPAND`` (listing or ``model_info``)."""
    config = info.config or {}
    tags = tuple(info.tags or ())
    license_ = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)  # the Hub tags it
    siblings = [s.rfilename for s in info.siblings or ()]
    return Candidate(
        model_id=info.id,
        revision=info.sha,
        source=Source.HUB,
        model_type=config.get("model_type"),
        architectures=tuple(config.get("architectures") or ()),
        modalities=modalities_of(config.get("model_type"), info.pipeline_tag),
        num_parameters=info.safetensors.total if info.safetensors else None,
        has_safetensors=info.safetensors is not None or any(s.endswith(".safetensors") for s in siblings),
        remote_code="auto_map" in config,
        license=license_,
        gated=info.gated or False,
        private=bool(info.private),
        pipeline_tag=info.pipeline_tag,
        library_name=info.library_name,
        tags=tags,
        downloads=info.downloads,
        likes=info.likes,
        labels=head_labels(config),
        eval_results=eval_results(info.model_index),
    )


class HubClient:
    """The scanner's view of one Hub (``HF_ENDPOINT`` unless ``endpoint``), with one token and retry policy.

    Parameters
    ----------
    token : str, bool or None
        As in huggingface_hub: None uses the saved login or ``HF_TOKEN``; False sends none. Never logged.
    endpoint : str, optional
        Another Hub (a mirror); default ``HF_ENDPOINT``.
    retry : RetryPolicy
        Timeout and retries of every request.
    """

    def __init__(self, *, token: str | bool | None = None, endpoint: str | None = None,
                 retry: RetryPolicy = RetryPolicy()) -> None:
        self.api = HfApi(endpoint=endpoint, token=token, library_name="hf-emms", library_version=__version__)
        self.retry = retry

    @property
    def has_token(self) -> bool:
        """Whether requests carry a token (given, saved by ``hf auth login``, or in ``HF_TOKEN``)."""
        return "authorization" in {k.lower() for k in self._headers()}

    def _headers(self) -> dict[str, str]:
        return build_hf_headers(token=self.api.token, library_name="hf-emms", library_version=__version__)

    def list_candidates(
        self, *, tags: tuple[str, ...] = (), pipeline_tag: str | None = None, sort: Sort = "downloads",
        limit: int = 20, search: str | None = None, author: str | None = None,
    ) -> Iterator[Candidate]:
        """The first ``limit`` models matching every tag (and the pipeline tag), in ``sort`` order.

        Pages are fetched lazily (the Hub's ``Link`` header) and no page is requested beyond ``limit`` models.
        The query is the one ``HfApi.list_models(filter=tags, pipeline_tag=..., sort=..., limit=..., expand=...)``
        sends, made here because ``list_models`` takes no timeout (a stalled Hub would hang it) and retries on
        its own fixed schedule.
        """
        if sort not in SORT_KEYS:
            raise InvalidInputError(f"sort must be one of {sorted(SORT_KEYS)}, got {sort!r}")
        if limit < 1:
            raise InvalidInputError(f"limit must be >= 1, got {limit}")
        params: dict[str, object] | None = {"sort": SORT_KEYS[sort], "limit": min(limit, _MAX_PAGE), "expand": EXPAND}
        if tags:
            params["filter"] = list(tags)
        for key, value in (("pipeline_tag", pipeline_tag), ("search", search), ("author", author)):
            if value:
                params[key] = value
        url: str | None = f"{self.api.endpoint}/api/models"
        listed, page = 0, 1
        while url is not None:
            response = call_hub(functools.partial(self._get, url, params), what=f"listing models (page {page})",
                                policy=self.retry)
            for item in response.json():
                item.setdefault("siblings", None)
                yield candidate_from_info(ModelInfo(**item))
                listed += 1
                if listed >= limit:
                    return
            url, params, page = response.links.get("next", {}).get("url"), None, page + 1  # next URL has the query

    def _get(self, url: str, params: dict[str, object] | None):
        response = get_session().get(url, params=params, headers=self._headers(), timeout=self.retry.timeout)
        hf_raise_for_status(response)
        return response

    def candidate(self, reference: str) -> Candidate:
        """The candidate named by ``"org/name"`` or ``"org/name@revision"``, with the revision resolved to a sha.

        Raises
        ------
        InvalidCandidateError, CandidateNotFoundError, HubAccessError, HubUnavailableError
        """
        repo_id, revision = parse_reference(reference)
        info = call_hub(
            lambda: self.api.model_info(repo_id, revision=revision, expand=EXPAND, timeout=self.retry.timeout),
            what=f"model info of {reference}", policy=self.retry,
        )
        return candidate_from_info(info)

    def weights_digest(self, candidate: Candidate) -> str | None:
        """The candidate's weights digest from the sha256 the Hub stores for its safetensors files (no download)."""
        info = call_hub(
            lambda: self.api.model_info(candidate.model_id, revision=candidate.revision, files_metadata=True,
                                        timeout=self.retry.timeout),
            what=f"file list of {candidate.reference}", policy=self.retry,
        )
        return weights_digest([s.lfs.sha256 for s in info.siblings or ()
                               if s.rfilename.endswith(".safetensors") and "/" not in s.rfilename and s.lfs])

    def check_access(self, candidate: Candidate) -> None:
        """Raise ``HubAccessError`` unless the token may download the candidate's files (gated repos)."""
        url = hf_hub_url(candidate.model_id, "config.json", revision=candidate.revision, endpoint=self.api.endpoint)
        call_hub(lambda: get_hf_file_metadata(url, token=self.api.token, timeout=self.retry.timeout),
                 what=f"access to {candidate.reference}", policy=self.retry)
