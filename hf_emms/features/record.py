"""How a set of statistics was made (:class:`ExtractionRecord`), and the statistics with it (:class:`Extraction`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..solver import FeatureStats

__all__ = ["Extraction", "ExtractionRecord"]


@dataclass
class ExtractionRecord:
    """How a set of statistics was made: stored beside them in the cache, and in ranking results.

    Attributes
    ----------
    candidate : str
        The candidate as given (Hub id or folder).
    revision : str
        The candidate's pinned revision (:attr:`hf_emms.hub.Candidate.revision`): the commit sha of a Hub id, the
        content digest of a local folder.
    modality : str
        ``"text"`` (one text or a text pair), ``"image"``, ``"audio"`` or ``"image-text"``.
    model_class : str
        The transformers class that ran (e.g. ``BertModel``, ``ViTForImageClassification``).
    pooling, pooling_reason : str
        The pooling method used and the rule that chose it (see :mod:`hf_emms.features.pooling`); ``"fused"`` for
        a dual encoder on image + text.
    max_length : int or None
        Text: tokens kept per sample (truncated from the right); None for other inputs.
    max_length_policy : str or None
        Where ``max_length`` came from.
    n_at_max_length : int or None
        Text: samples that filled ``max_length``, i.e. may have been truncated.
    dtype, device : str
        Of the model's weights and activations.
    batch_size : int
        The batch size the run ended with (smaller than asked when out-of-memory halved it).
    n_samples : int
        Samples in the statistics.
    dataset_fingerprint, split : str
        The ``datasets`` fingerprint and split of the dataset.
    subsample : dict or None
        ``{"max_samples", "seed", "indices"}`` when a budget drew a stratified subsample, else None (every row).
        ``indices`` are rows of the dataset the budget was drawn from (under ``rank()``, the task's split).
    head_classes : int or None
        Z, when the candidate's classifier head fed NCE/LEEP tables into the statistics.
    seconds : float
        Wall time of the extraction (load, forward, statistics, reduction).
    timings : dict
        Seconds by phase, on the process that wrote the record: ``resolve`` (pinning, the cache's answer), ``load``
        (snapshot, config, weights, to the device), ``tokenizer`` (loading the preprocessor), ``preprocess``
        (tokenising/processing batches and moving them), ``forward`` (the model), ``pooling``, ``statistics``
        (accumulation) and, in data-parallel runs, ``all_reduce``.
    mode : str
        ``"single"``, ``"data-parallel"`` or ``"candidate-parallel"``.
    world_size : int
        Processes in the job.
    cache_key : str
        The key the statistics are cached under.
    cache_hit : bool
        Whether this result was read from the cache rather than computed.
    input_kind : str or None
        One of :data:`hf_emms.options.INPUT_KINDS` (None in records written before input kinds).
    input_columns : list of str or None
        The dataset columns read, in order.
    input_encoding : str or None
        How paired inputs reached the model: a text pair encoded jointly by the tokenizer, an image + text encoded
        jointly, or by a dual encoder's towers and fused (see ``pooling_reason``); None for a single input.
    layers : list of str or None
        The statistics kept per hidden layer (:mod:`hf_emms.features.layers`): layer indices, the last one last, and
        ``"upper"`` for the mean of the upper-half layers; None when only the last layer was read.
    n_layers : int or None
        L, the candidate's layer count, when its hidden states were read.
    """

    candidate: str
    revision: str
    modality: str
    model_class: str
    pooling: str
    pooling_reason: str
    max_length: int | None
    max_length_policy: str | None
    n_at_max_length: int | None
    dtype: str
    device: str
    batch_size: int
    n_samples: int
    dataset_fingerprint: str
    split: str | None
    subsample: dict[str, Any] | None
    head_classes: int | None
    seconds: float
    timings: dict[str, float]
    mode: str
    world_size: int
    cache_key: str
    cache_hit: bool = False
    input_kind: str | None = None
    input_columns: list[str] | None = None
    input_encoding: str | None = None
    layers: list[str] | None = None
    n_layers: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExtractionRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Extraction:
    """The statistics of one candidate on one dataset, and how they were made.

    ``stats`` are the last layer's; ``layers`` the other kept layers' (keys as in :attr:`ExtractionRecord.layers`),
    empty for a last-layer run."""

    stats: FeatureStats
    record: ExtractionRecord
    layers: dict[str, FeatureStats] = dataclasses.field(default_factory=dict)

    def by_layer(self) -> dict[str, FeatureStats]:
        """Every kept layer's statistics, the last layer's included, in the record's order (layers, then "upper")."""
        if not self.layers:
            return {"last": self.stats}
        last = str(self.record.n_layers)
        return {key: self.stats if key == last else self.layers[key] for key in self.record.layers}
