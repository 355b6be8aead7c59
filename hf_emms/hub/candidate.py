"""``Candidate``: one checkpoint to rank, from the Hub, a local folder or the local HF cache, at a pinned revision."""

from __future__ import annotations

import dataclasses
import hashlib
from enum import Enum
from pathlib import Path
from typing import Any

from huggingface_hub.utils import HFValidationError, validate_repo_id

from .errors import InvalidCandidateError


class Source(str, Enum):
    """Where a candidate was found."""

    HUB = "hub"  # listed on, or named explicitly from, the Hub
    LOCAL = "local"  # a folder on disk
    CACHE = "cache"  # a snapshot already in the local Hugging Face cache


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A checkpoint to rank, with the metadata the scanner filters on. Hashable; ``to_dict`` round-trips to JSON.

    Attributes
    ----------
    model_id : str
        ``org/name`` for Hub and cache candidates; the folder's path for local ones.
    revision : str
        What pins the weights: the 40-hex commit sha (Hub, cache), or for a local folder a content digest (sha256
        of every file's relative path and bytes, first 40 hex), so a record made today is reproducible.
    source : Source
    path : Path or None
        The folder holding the files (local folders and cache snapshots); None for Hub candidates.
    model_type, architectures
        From ``config.json`` (``model_type``, ``architectures``).
    modalities : tuple of str
        Inputs the checkpoint takes, among ``"text"``, ``"image"``, ``"audio"``; empty if unknown.
    num_parameters : int or None
        From the safetensors headers (no weights read); None when there are no safetensors weights.
    has_safetensors : bool
        Whether weights exist in safetensors format (pickle-free loading).
    remote_code : bool
        ``config.json`` has an ``auto_map``: loading runs code from the repo.
    license : str or None
    gated : bool or str
        False, or the Hub's gating mode (``"auto"``, ``"manual"``).
    private : bool
    pipeline_tag, library_name, tags, downloads, likes
        The Hub's metadata (from the model card's YAML header for local folders).
    weights_digest : str or None
        sha256 over the sha256 of each safetensors file (sorted): equal digests are the same weights, whatever the
        source. Computed while scanning when duplicates are collapsed.
    labels : tuple of str
        The checkpoint's own head labels (``config.json`` ``id2label``, in id order): its source task. Read from
        local folders and cache snapshots; from the Hub only when its API's ``config`` carries them (it usually
        trims the config to the architecture). Empty when unknown.
    eval_results : tuple of (str, str, float)
        The model card's ``model-index`` results: (dataset type, with ``/config`` when given; metric type; value).
    """

    model_id: str
    revision: str
    source: Source
    path: Path | None = None
    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    num_parameters: int | None = None
    has_safetensors: bool = False
    remote_code: bool = False
    license: str | None = None
    gated: bool | str = False
    private: bool = False
    pipeline_tag: str | None = None
    library_name: str | None = None
    tags: tuple[str, ...] = ()
    downloads: int | None = None
    likes: int | None = None
    weights_digest: str | None = None
    labels: tuple[str, ...] = ()
    eval_results: tuple[tuple[str, str, float], ...] = ()

    @property
    def reference(self) -> str:
        """``model_id@revision``: names exactly these weights (``parse_reference`` reads it back)."""
        return f"{self.model_id}@{self.revision}"

    def from_pretrained_kwargs(self, *, trust_remote_code: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``transformers.AutoModel.from_pretrained`` that load exactly this candidate.

        Local and cached candidates load from their folder (no network); Hub ones at the pinned sha. Safetensors
        is required when the candidate has it, so a loader never falls back to pickle files; ``trust_remote_code``
        is passed through only as given (the caller decides, from the user's opt-in).
        """
        kwargs: dict[str, Any] = {"pretrained_model_name_or_path": str(self.path) if self.path else self.model_id,
                                  "trust_remote_code": trust_remote_code}
        if self.path is None:
            kwargs["revision"] = self.revision
        if self.has_safetensors:
            kwargs["use_safetensors"] = True
        return kwargs

    def replace(self, **changes: Any) -> Candidate:
        """A copy with ``changes`` applied (candidates are immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``Candidate.from_dict`` reads it back)."""
        data = dataclasses.asdict(self)
        data.update(source=self.source.value, path=str(self.path) if self.path else None,
                    architectures=list(self.architectures), modalities=list(self.modalities), tags=list(self.tags),
                    labels=list(self.labels), eval_results=[list(r) for r in self.eval_results])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise InvalidCandidateError(f"unknown candidate fields {sorted(unknown)}; expected some of "
                                        f"{sorted(fields)}")
        data = dict(data, source=Source(data["source"]))
        if data.get("path"):
            data["path"] = Path(data["path"])
        for name in ("architectures", "modalities", "tags", "labels"):
            data[name] = tuple(data.get(name) or ())
        data["eval_results"] = tuple((str(d), str(m), float(v)) for d, m, v in data.get("eval_results") or ())
        return cls(**data)


def parse_reference(reference: str) -> tuple[str, str | None]:
    """Split ``"org/name"`` or ``"org/name@revision"`` into ``(repo_id, revision or None)``.

    Raises
    ------
    InvalidCandidateError
        Not a valid Hub model id.
    """
    repo_id, _, revision = reference.strip().partition("@")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise InvalidCandidateError(f"{reference!r} is not a Hub model reference ('org/name' or "
                                    f"'org/name@revision'): {exc}") from None
    if "@" in reference and not revision:
        raise InvalidCandidateError(f"{reference!r}: empty revision after '@'; drop the '@' or name a revision")
    return repo_id, revision or None


def head_labels(config: Any) -> tuple[str, ...]:
    """The head labels of a ``config.json`` mapping: ``id2label`` values in id order; () when absent or malformed."""
    id2label = config.get("id2label") if isinstance(config, dict) else None
    if not isinstance(id2label, dict):
        return ()
    try:
        pairs = sorted((int(k), str(v)) for k, v in id2label.items())
    except (TypeError, ValueError):
        return ()
    return tuple(v for _, v in pairs)


def eval_results(model_index: Any) -> tuple[tuple[str, str, float], ...]:
    """(dataset, metric type, value) of every numeric result in a card's ``model-index`` (a list of entries with
    ``results``); the dataset is its ``type`` (else ``name``), with ``/config`` when given. Malformed parts are
    skipped: a card's metadata is free-form."""
    out = []
    for entry in model_index if isinstance(model_index, list) else ():
        for result in (entry.get("results") if isinstance(entry, dict) else None) or ():
            data = result.get("dataset") if isinstance(result, dict) else None
            if not isinstance(data, dict) or not (data.get("type") or data.get("name")):
                continue
            task = str(data.get("type") or data.get("name"))
            task = f"{task}/{data['config']}" if data.get("config") else task
            for metric in result.get("metrics") or ():
                if not isinstance(metric, dict) or not metric.get("type"):
                    continue
                try:
                    value = float(metric.get("value"))
                except (TypeError, ValueError):
                    continue
                if value == value and abs(value) != float("inf"):
                    out.append((task, str(metric["type"]), value))
    return tuple(out)


def weights_digest(file_sha256s: list[str]) -> str | None:
    """One digest for a set of safetensors files, from each file's sha256 (what the Hub stores as its LFS oid).

    Sorted first, so the order of listing does not matter; None when there are no files.
    """
    if not file_sha256s:
        return None
    return hashlib.sha256("\n".join(sorted(file_sha256s)).encode()).hexdigest()


def card_lists_dataset(candidate: Candidate, dataset_id: str | None, config: str | None = None) -> str | None:
    """How the candidate's card names the Hub dataset ``dataset_id`` (a ``dataset:`` tag, which the Hub makes from the
    card's ``datasets:`` list, or a ``model-index`` result on it), or None when it does not. ``org/name``, a bare
    ``name`` and ``name/config`` (GLUE's ``glue/sst2``) all name the dataset ``org/name`` with that config: a
    checkpoint fine-tuned on the data being scored has seen its rows, and its score can be optimistic."""
    if not dataset_id:
        return None
    wanted = {dataset_id.lower(), dataset_id.lower().rsplit("/", 1)[-1]}
    if config:
        wanted |= {f"{name}/{config.lower()}" for name in set(wanted)}
    named = [(tag[len("dataset:"):], f"its tag {tag!r}")
             for tag in candidate.tags if tag.lower().startswith("dataset:")]
    named += [(data, f"a model-index result on {data!r}") for data, _, _ in candidate.eval_results]
    for name, how in named:
        if name.lower() in wanted:
            return how
    return None
