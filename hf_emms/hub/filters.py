"""The scanner's filters: which candidates can be ranked for a dataset, and why the others cannot.

The checks here are offline (they read only a candidate's metadata); the scanner adds the two that need the
network (access to gated repos, weights digests for duplicates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from enum import Enum

from ..errors import InvalidInputError
from .architectures import INPUT_KINDS, MODALITIES, input_kinds_of, is_known_model_type
from .candidate import Candidate


class RejectReason(str, Enum):
    """Why a candidate was left out. The value is a short stable name (CLI output, stored records)."""

    NOT_FOUND = "not-found"  # the Hub has no such repo, revision or file
    NO_ACCESS = "no-access"  # gated or private, and no token grants access
    UNAVAILABLE = "unavailable"  # the Hub kept failing or timing out
    REMOTE_CODE = "remote-code"  # config.json has auto_map and remote code is not allowed
    UNSUPPORTED = "unsupported"  # transformers cannot build it (no or unknown model_type)
    NO_SAFETENSORS = "no-safetensors"  # pickle weights only, and pickle is not allowed
    MODALITY = "modality"  # takes another input than the dataset's, or its input is unknown
    SIZE_UNKNOWN = "size-unknown"  # a parameter limit is set and the count is unknown
    TOO_LARGE = "too-large"  # more parameters than the limit
    LICENSE = "license"  # licence not among the allowed ones
    DUPLICATE = "duplicate"  # the same weights as a candidate kept earlier
    BROKEN = "broken"  # a local folder that is not a readable checkpoint (no config.json, corrupt or unreadable files)


@dataclasses.dataclass(frozen=True)
class Rejected:
    """A candidate left out, with the reason and a sentence naming the fix when there is one.

    ``candidate`` is None when the reference could not be resolved (not found, no access, Hub unavailable).
    """

    reference: str
    reason: RejectReason
    detail: str
    candidate: Candidate | None = None


@dataclasses.dataclass(frozen=True)
class Criteria:
    """What a candidate must satisfy to be ranked.

    Parameters
    ----------
    modality : str, optional
        The dataset's input: a modality (``"text"``, ``"image"``, ``"audio"``) or an input kind of
        :data:`hf_emms.options.INPUT_KINDS` (``"text-pair"``: any text model; ``"image-text"``: a checkpoint that
        reads an image and a text together, never a single-modality one); None accepts any.
    max_params : int, optional
        Largest parameter count (from safetensors metadata); None for no limit.
    allow_remote_code : bool
        Keep checkpoints whose ``config.json`` has an ``auto_map`` (loading them runs the repo's Python code).
    allow_pickle : bool
        Keep checkpoints with no safetensors weights (loading pickle files can run arbitrary code).
    licenses : collection of str, optional
        Allowed licence ids (case-insensitive, e.g. ``{"apache-2.0", "mit"}``); None accepts any, including none.
    """

    modality: str | None = None
    max_params: int | None = None
    allow_remote_code: bool = False
    allow_pickle: bool = False
    licenses: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.modality is not None and self.modality not in INPUT_KINDS:
            raise InvalidInputError(f"modality must be one of {INPUT_KINDS}, got {self.modality!r}")
        if self.max_params is not None and self.max_params < 1:
            raise InvalidInputError(f"max_params must be >= 1, got {self.max_params}")
        if self.licenses is not None:  # any iterable of names (or one name) -> lower-case frozenset
            names = [self.licenses] if isinstance(self.licenses, str) else self.licenses
            object.__setattr__(self, "licenses", frozenset(name.lower() for name in names))

    def check(self, candidate: Candidate) -> Rejected | None:
        """The first rule ``candidate`` breaks, as a ``Rejected``; None when it passes every offline check."""
        first = next(self._violations(candidate), None)
        return None if first is None else Rejected(candidate.reference, *first, candidate)

    def _violations(self, c: Candidate) -> Iterator[tuple[RejectReason, str]]:
        # Safety first: a repo that would run code is reported as such, whatever else is wrong with it.
        if c.remote_code and not self.allow_remote_code:
            yield RejectReason.REMOTE_CODE, ("config.json has an auto_map: loading it runs Python code from the "
                                             "repo; allow it only if you trust the author (--allow-remote-code)")
        if not is_known_model_type(c.model_type) and not (c.remote_code and self.allow_remote_code):
            adapter = not c.model_type and (c.library_name == "peft" or "peft" in c.tags)
            other = c.library_name if c.library_name not in (None, "transformers", "sentence-transformers") else None
            yield RejectReason.UNSUPPORTED, (
                f"model_type {c.model_type!r} is unknown to the installed transformers" if c.model_type
                else "a PEFT adapter, not a checkpoint: rank its base model, or merge the adapter into it "
                     "(peft: merge_and_unload) and rank that" if adapter
                else f"a {other} model, not a transformers checkpoint (its config.json has no model_type): hf-emms "
                     "loads models with transformers" if other
                else "config.json has no model_type: transformers cannot build it")
        if not c.has_safetensors and not self.allow_pickle:
            yield RejectReason.NO_SAFETENSORS, ("no safetensors weights (pickle files can run code when loaded); "
                                                "allow them with --allow-pickle if you trust the author")
        if self.modality is not None and not self._reads(c):
            yield RejectReason.MODALITY, self._modality_reason(c)
        if self.max_params is not None:
            if c.num_parameters is None:
                yield RejectReason.SIZE_UNKNOWN, ("parameter count unknown (no safetensors metadata) and a limit of "
                                                  f"{self.max_params:,} is set")
            elif c.num_parameters > self.max_params:
                yield RejectReason.TOO_LARGE, f"{c.num_parameters:,} parameters, over the limit of {self.max_params:,}"
        if self.licenses is not None and (c.license or "").lower() not in self.licenses:
            yield RejectReason.LICENSE, (f"licence {c.license or 'not stated'}, not one of "
                                         f"{', '.join(sorted(self.licenses))}")

    def _reads(self, c: Candidate) -> bool:
        if self.modality in MODALITIES or self.modality == "text-pair":  # a text pair: any text model
            return ("text" if self.modality == "text-pair" else self.modality) in c.modalities
        return self.modality in input_kinds_of(c.model_type, c.pipeline_tag)

    def _modality_reason(self, c: Candidate) -> str:
        needs = {"image-text": "image + text", "text-pair": "a text pair"}.get(self.modality, self.modality)
        if self.modality == "image-text" and c.modalities:
            return f"{' and '.join(c.modalities)}-only model; this task needs image + text"
        if "image-text" in input_kinds_of(c.model_type, c.pipeline_tag):
            return f"takes image + text input (read together), the dataset is {needs}"
        if c.modalities:
            return f"takes {' and '.join(c.modalities)} input, the dataset is {needs}"
        return f"its input kind is unknown (model_type {c.model_type!r}, pipeline tag {c.pipeline_tag!r})"
