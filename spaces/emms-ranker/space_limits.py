"""The Space's limits on what one visitor may ask, each read from an environment variable, and its input error."""

from __future__ import annotations

import dataclasses
import os

from hf_emms.errors import InvalidInputError

__all__ = ["LIMITS", "Limits", "SpaceInputError"]


class SpaceInputError(InvalidInputError):
    """Input the Space cannot take: over a limit, a local path on a public Space, nothing to rank."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise SpaceInputError(f"{name}={raw!r} is not an integer; unset it or give a whole number.") from None


def _on_space() -> bool:
    """True when running as a Hugging Face Space (the Hub sets ``SPACE_ID``)."""
    return bool(os.environ.get("SPACE_ID"))


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one visitor may ask of the Space; each limit is read from an environment variable (shown in brackets).

    Attributes
    ----------
    max_candidates : int
        Candidates ranked per request, pasted ids and search results together [``EMMS_SPACE_MAX_CANDIDATES``, 10];
        with a shortlist, the most that may be short-listed (those are the ones read and scored).
    max_recall : int
        Candidates a shortlist may choose from [``EMMS_SPACE_MAX_RECALL``, 200]: the recall phase reads metadata
        only (one embedding of each id and one dot product), so it takes many more than are scored.
    max_samples : int
        Largest sample budget [``EMMS_SPACE_MAX_SAMPLES``, 2,000].
    max_upload_mb : int
        Largest uploaded data file [``EMMS_SPACE_MAX_UPLOAD_MB``, 50].
    max_dataset_mb : int
        Largest Hub dataset, in MB of the data files ``datasets`` would download for the config (every split), told
        by the Hub's metadata before any download [``EMMS_SPACE_MAX_DATASET_MB``, 1,000]: a few thousand rows are
        scored, but the whole dataset is downloaded to draw them.
    max_params : int
        Largest candidate, in parameters, read from safetensors metadata before any download
        [``EMMS_SPACE_MAX_PARAMS``, 350M].
    concurrency : int
        Rankings run at once; the rest wait in the queue [``EMMS_SPACE_CONCURRENCY``, 1].
    queue_size : int
        Requests that may wait; more are turned away with a "queue is full" message [``EMMS_SPACE_QUEUE_SIZE``, 20].
    allow_local : bool
        Accept paths on the server's disk as dataset, candidates and encoders [``EMMS_SPACE_ALLOW_LOCAL``: 1 by
        default when run locally, 0 on a Space, where the disk is not the visitor's].
    use_server_token : bool
        Let huggingface_hub fall back to the server's own token (``HF_TOKEN``, ``hf auth login``) when the visitor
        gives none [``EMMS_SPACE_USE_SERVER_TOKEN``: as ``allow_local``]. Off on a Space: a visitor must never reach
        gated or private repos through the Space owner's token.
    cache_days : int
        Entries of the hf-emms cache (statistics, F-labels, results, unpacked uploads and their Arrow copies) not
        written (or, for uploads, read) for this many days are deleted before each ranking
        [``EMMS_SPACE_CACHE_DAYS``, 7]: a hosted Space's disk does not fill up with every visitor's data.
    prune_hf_cache : bool
        Also delete, by the same age, what rankings left in this server's Hugging Face caches: Hub repos
        (candidates, encoders, datasets' files) not used and datasets' Arrow copies not written for ``cache_days``
        [``EMMS_SPACE_PRUNE_HF_CACHE``: 1 on a Space, 0 locally, where the caches are your own].
    """

    max_candidates: int = 10
    max_recall: int = 200
    max_samples: int = 2000
    max_upload_mb: int = 50
    max_dataset_mb: int = 1000
    max_params: int = 350_000_000
    concurrency: int = 1
    queue_size: int = 20
    allow_local: bool = True
    use_server_token: bool = True
    cache_days: int = 7
    prune_hf_cache: bool = False

    def __post_init__(self) -> None:
        for field in ("max_candidates", "max_recall", "max_samples", "max_upload_mb", "max_dataset_mb", "max_params",
                      "concurrency", "queue_size", "cache_days"):
            if getattr(self, field) < 1:
                raise SpaceInputError(f"Limits.{field} must be at least 1, got {getattr(self, field)}.")

    @classmethod
    def from_env(cls) -> Limits:
        local = not _on_space()
        return cls(
            max_candidates=_env_int("EMMS_SPACE_MAX_CANDIDATES", cls.max_candidates),
            max_recall=_env_int("EMMS_SPACE_MAX_RECALL", cls.max_recall),
            max_samples=_env_int("EMMS_SPACE_MAX_SAMPLES", cls.max_samples),
            max_upload_mb=_env_int("EMMS_SPACE_MAX_UPLOAD_MB", cls.max_upload_mb),
            max_dataset_mb=_env_int("EMMS_SPACE_MAX_DATASET_MB", cls.max_dataset_mb),
            max_params=_env_int("EMMS_SPACE_MAX_PARAMS", cls.max_params),
            concurrency=_env_int("EMMS_SPACE_CONCURRENCY", cls.concurrency),
            queue_size=_env_int("EMMS_SPACE_QUEUE_SIZE", cls.queue_size),
            allow_local=bool(_env_int("EMMS_SPACE_ALLOW_LOCAL", int(local))),
            use_server_token=bool(_env_int("EMMS_SPACE_USE_SERVER_TOKEN", int(local))),
            cache_days=_env_int("EMMS_SPACE_CACHE_DAYS", cls.cache_days),
            prune_hf_cache=bool(_env_int("EMMS_SPACE_PRUNE_HF_CACHE", int(not local))),
        )

    def token(self, given: str | None) -> str | bool | None:
        """The token to pass to hf-emms: the visitor's, else the server's own (None) only where allowed (else False,
        which makes huggingface_hub send none)."""
        return given or (None if self.use_server_token else False)


LIMITS = Limits.from_env()
