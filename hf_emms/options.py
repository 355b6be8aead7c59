"""What a run may be asked to do: the allowed values (once), the shared argument checks, and the typed run specs.

Every entry point (``rank()``, ``extract_stats()``, the CLI, the Space) describes a run with the same frozen specs,
each checked once when it is built:

=================  =================================================================================
:class:`DataSpec`        which data and what to score: config, split, revision, task, columns, the sample budget
:class:`CandidateQuery`  which checkpoints: Hub tags, sort, limit, local cache, size limit, safety opt-ins
:class:`ScoreSpec`       how to score: F-label encoders, class-name prompt, metrics
:class:`ExtractSpec`     how to run the candidates: batch size, pooling, text length, dtype, device, workers
:class:`RunSpec`         where results go, the cache, the Hub token (never shown or stored), progress
:class:`RankSpec`        the five together: what ``rank()``, the CLI and the Space build
=================  =================================================================================

This module is the ground floor: it imports nothing from hf-emms but :mod:`hf_emms.errors` and the shared argument
checks of :mod:`hf_emms.checks`.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .checks import (  # the shared argument checks, re-exported: every spec and entry point uses them
    check_choice, check_choices, check_device, check_folder, check_optional_positive_int, check_positive_int,
)
from .errors import InvalidInputError

__all__ = [
    "DEFAULT_METRICS", "DTYPES", "INPUT_KINDS", "LAYERS", "METRICS", "MODALITIES", "POOLINGS", "SORTS", "TASK_KINDS",
    "CandidateQuery", "DataSpec", "ExtractSpec", "RankSpec", "RunSpec", "ScoreSpec", "check_choice", "check_choices",
    "check_device", "check_folder", "check_layers", "check_optional_positive_int", "check_positive_int",
]

# ---- allowed values: each list is written here and nowhere else --------------------------------------------------
TASK_KINDS = ("classification", "multilabel", "regression", "text", "boxes")
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")  # corners; COCO's corner + size; centre + size
"""Label kinds a task can have (what the F-labels embed)."""
MODALITIES = ("text", "image", "audio")
"""Inputs a candidate can read."""
INPUT_KINDS = ("text", "text-pair", "image", "image-text", "audio")
"""How a task's inputs are laid out: one text, a text pair (encoded jointly), one image, an image with a text
(question, prompt), one audio clip."""
METRICS = ("emms", "emms_official", "logme", "hscore", "nce")
"""Scores the pipeline computes ("emms" always is). LEEP needs a second pass: the solver has it, the pipeline not."""
DEFAULT_METRICS = ("emms", "logme")
SORTS = ("downloads", "likes", "trending", "recent", "updated")
"""Orders of a Hub listing, best first."""
DTYPES = ("auto", "float32", "bfloat16", "float16")
"""Weights and activations of a candidate ("auto": bfloat16/float16 on a GPU, float32 on CPU)."""
POOLINGS = ("auto", "pooler_output", "mean", "cls", "max", "last_token")
"""How a candidate's hidden states become one feature vector per sample ("auto": the checkpoint's own rule)."""
LAYERS = ("auto", "last", "all")
"""Which hidden layers of a candidate get statistics (or a list of layer indices): "auto" the last and up to 7 more
evenly spaced, "last" the last only, "all" every one (see :mod:`hf_emms.features.layers`)."""


# ---- checks of the values above ----------------------------------------------------------------------------------
def check_layers(value: Any) -> str | tuple[int, ...]:
    """``value`` as one of :data:`LAYERS`, or as a sorted tuple of distinct layer indices (negative ones count from
    the last layer, -1 = the last); else a clear ``InvalidInputError``."""
    if isinstance(value, str) and value in LAYERS:
        return value
    try:
        indices = tuple(value) if not isinstance(value, str) else None
    except TypeError:
        indices = None
    if not indices or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in indices):
        raise InvalidInputError(f"layers must be one of {list(LAYERS)} or a non-empty list of layer indices (0 = the "
                                f"embeddings' output, -1 = the last layer); got {value!r}.")
    return tuple(sorted({int(i) for i in indices}))


def _strings(name: str, values: Any) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    values = tuple(values or ())
    if not all(isinstance(v, str) and v for v in values):
        raise InvalidInputError(f"{name} must be non-empty strings; got {list(values)!r}.")
    return values


# ---- the run specs -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """Which data, and what to score on it.

    Parameters
    ----------
    config, split, revision : str, optional
        Hub dataset config, split (default: train, or the only one) and revision.
    task : {"classification", "multilabel", "regression", "text", "boxes"}, optional
        The label kind; detected from the label column when omitted.
    label_column : str, optional
        Detected when omitted (see :func:`hf_emms.tasks.load_task`).
    input_column : str or sequence of str, optional
        One input column, or an ordered list: a text pair (``["premise", "hypothesis"]``, encoded jointly) or an
        image and a text (``["image", "question"]``). Detected when omitted.
    max_samples : int or None
        The sample budget: a seeded subsample stratified by class (None scores every row). The one budget of a
        run: drawn once, before any candidate, and recorded with every result.
    seed : int
        Seed of the subsample.
    group_column : str, optional
        Rows sharing a value of this column (a speaker, a patient, a source document, a user) are held out together,
        as scikit-learn's ``GroupKFold`` does: no row is scored by a fit that saw a sibling of it. Rows repeating an
        input are held out together either way (:mod:`hf_emms.features.groups`).
    """

    config: str | None = None
    split: str | None = None
    revision: str | None = None
    task: str | None = None
    label_column: str | None = None
    input_column: str | tuple[str, ...] | None = None
    max_samples: int | None = 2000
    seed: int = 0
    group_column: str | None = None

    def __post_init__(self) -> None:
        if self.group_column is not None and (not isinstance(self.group_column, str) or not self.group_column):
            raise InvalidInputError(f"group_column must be a column name; got {self.group_column!r}.")
        if self.input_column is not None and not isinstance(self.input_column, str):
            columns = _strings("input_column", self.input_column)
            if not 1 <= len(columns) <= 2 or len(set(columns)) != len(columns):
                raise InvalidInputError(f"input_column takes one column or two different ones (a text pair, or an "
                                        f"image and a text); got {list(columns)}.")
            object.__setattr__(self, "input_column", columns[0] if len(columns) == 1 else columns)
        if self.task is not None:
            check_choice("task", self.task, TASK_KINDS)
        if self.max_samples is not None and (
            isinstance(self.max_samples, bool) or not isinstance(self.max_samples, numbers.Integral)
            or self.max_samples < 2
        ):
            raise InvalidInputError(
                f"max_samples must be an integer >= 2 (or None for all rows); got {self.max_samples!r}."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise InvalidInputError(f"seed must be a non-negative integer (numpy's seeds are); got {self.seed!r}.")


@dataclass(frozen=True, kw_only=True)
class CandidateQuery:
    """Which checkpoints to rank besides those named explicitly.

    Parameters
    ----------
    tags : sequence of str
        Hub tags every listed model must carry; with ``pipeline_tag``, Hub models matching them are added.
    pipeline_tag : str, optional
        e.g. ``"feature-extraction"``.
    sort : {"downloads", "likes", "trending", "recent", "updated"}
        Order of the Hub listing.
    limit : int
        How many Hub models to list.
    include_cache : bool
        Also rank every compatible checkpoint already in the local HF cache (works offline).
    max_params : int, optional
        Skip candidates larger than this (from safetensors metadata; nothing is downloaded).
    allow_remote_code, allow_pickle : bool
        Opt in to checkpoints that run repository code / have only pickled weights.
    recall : int, optional
        Two-phase selection: short-list this many candidates from transfer history and metadata alone
        (:mod:`hf_emms.recall`, one dot product per candidate, no weights read), then score only those with EMMS.
        None scores every candidate.
    """

    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    sort: str = "downloads"
    limit: int = 10
    include_cache: bool = False
    max_params: int | None = None
    allow_remote_code: bool = False
    allow_pickle: bool = False
    recall: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _strings("tags", self.tags))
        check_optional_positive_int("recall", self.recall)
        check_choice("sort", self.sort, SORTS)
        check_positive_int("limit", self.limit)
        check_optional_positive_int("max_params", self.max_params)


@dataclass(frozen=True, kw_only=True)
class ScoreSpec:
    """How to score: the F-label encoders and the metrics.

    Parameters
    ----------
    encoders : "default", sequence of str / labels.EncoderSpec, or None
        F-label encoders. "default": the paper-like CLIP/BERT/GPT-2 set on a GPU with the Hub reachable, else
        all-MiniLM-L6-v2. None, "none" or empty: no encoder (class labels one-hot; regression targets and boxes
        their own numbers; other kinds need encoders), as ``--encoders none`` on the command line.
    prompt : str
        Template for class names, e.g. ``"a photo of a {}"``.
    metrics : sequence of {"emms", "emms_official", "logme", "hscore", "nce"}
        Scores to compute; "emms" always is, first.
    box_format : {"xyxy", "xywh", "cxcywh"}
        How box labels give a box: corners (x0, y0, x1, y1), COCO's corner and size (x, y, w, h), or centre and
        size. Pixel coordinates (any above 1) are divided by each image's size.
    """

    encoders: Any = "default"
    prompt: str = "{}"
    metrics: tuple[str, ...] = DEFAULT_METRICS
    box_format: str = "xyxy"

    def __post_init__(self) -> None:
        metrics = check_choices("metrics", self.metrics, METRICS)
        object.__setattr__(self, "metrics", tuple(dict.fromkeys(("emms", *metrics))))
        if self.box_format not in BOX_FORMATS:
            raise InvalidInputError(f"box_format must be one of {BOX_FORMATS}; got {self.box_format!r}.")
        if not isinstance(self.prompt, str) or "{}" not in self.prompt:
            raise InvalidInputError(f'prompt must be a template holding "{{}}" for the class name; got {self.prompt!r}.')
        encoders = self.encoders
        if isinstance(encoders, str):
            encoders = encoders if encoders == "default" else (encoders,)
        if encoders is not None and not isinstance(encoders, str):
            encoders = tuple(encoders)
            # "none" is the command line's word for no encoder; as a Hub id it would be a failed download later on
            encoders = None if not encoders or [str(e).lower() for e in encoders] == ["none"] else encoders
        object.__setattr__(self, "encoders", encoders)


@dataclass(frozen=True, kw_only=True)
class ExtractSpec:
    """How candidates run on the data (the same for every candidate of a run).

    Parameters
    ----------
    batch_size : int
        Samples per forward pass; halved automatically on out-of-memory.
    pooling : str
        "auto" (the checkpoint's own rule, see :mod:`hf_emms.features.pooling`) or one of ``POOLINGS``.
    max_length : int, optional
        Text: tokens per sample. Default: the checkpoint's declared limit.
    dtype : {"auto", "float32", "bfloat16", "float16"}
        "auto": bfloat16 on a GPU that supports it (else float16), float32 on CPU. Statistics are float64.
    device : str or torch.device, optional
        Default: the accelerator ``accelerate`` gives this process (a GPU when there is one), else CPU.
    num_workers : int, optional
        DataLoader processes that preprocess batches. Default: 0 on CPU (the model needs the cores), 4 on GPU.
    layers : {"auto", "last", "all"} or sequence of int
        Hidden layers that get statistics, from the same forward pass (:mod:`hf_emms.features.layers`): the last
        only, the last and up to 7 more evenly spaced ("auto"), every one, or these indices (0 = the embeddings'
        output, -1 = the last).
    max_stats_memory : int, optional
        Bytes the statistics of one candidate may take, all layers together (about ``layers x (folds + 2) x 8 x
        D1^2``); a request over it is refused before any accumulation. Default: ``HF_EMMS_MAX_STATS_BYTES`` or 8 GiB.
    """

    batch_size: int = 32
    pooling: str = "auto"
    max_length: int | None = None
    dtype: str = "auto"
    device: Any = None
    num_workers: int | None = None
    layers: Any = "auto"
    max_stats_memory: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", check_layers(self.layers))
        check_optional_positive_int("max_stats_memory", self.max_stats_memory)
        check_positive_int("batch_size", self.batch_size)
        check_choice("pooling", self.pooling, POOLINGS)
        check_optional_positive_int("max_length", self.max_length)
        check_choice("dtype", self.dtype, DTYPES)
        check_device(self.device)
        if self.num_workers is not None and (
            isinstance(self.num_workers, bool) or not isinstance(self.num_workers, numbers.Integral)
            or self.num_workers < 0
        ):
            raise InvalidInputError(f"num_workers must be an integer >= 0; got {self.num_workers!r}.")


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Where a run writes and what it shows.

    Parameters
    ----------
    output_dir : path, optional
        Write ``ranking.json``, ``.csv``, ``.md`` and ``.png`` there.
    cache_dir : path, optional
        Root of the statistics cache, the F-label cache and the results store (default ``$HF_EMMS_CACHE`` or
        ``~/.cache/hf_emms``).
    token : str or bool, optional
        Hub token for gated/private repos. Never shown (not in ``repr``), logged or stored.
    progress : bool
        Progress bars and a line per candidate.
    profile : bool
        Time every phase of every candidate (resolve, load, tokenizer, preprocess, forward, pooling, statistics,
        each solver metric, results I/O, idle) and what the ranking pays once (task, scan, label embeddings): see
        :meth:`hf_emms.results.Ranking.profile`. On a GPU each phase then waits for the device's queued work.
    prefetch : bool
        While a candidate is scored, download the next Hub candidates' files on a background thread, at most two
        ahead (only files their turns would fetch; nothing for local folders or candidates scored earlier), so
        downloads overlap the forward passes instead of adding to them.
    overlap : bool
        Extract the next candidate's statistics on a background thread while the current one is solved and stored.
        Off by default: measured, it gains little or loses where the forward pass and the solver share the CPU's
        cores (two cores: 42.1-43.9 s -> 41.1-41.3 s once, 42.9 -> 44.4 s later) and loses on a GPU, where both
        queue on the same device and the solve is the longer half (8 zoo candidates on an H200: 12.8-13.8 s without,
        14.6-15.7 s with; ``benchmarks/rank_profile.py`` part 4).
        Single-process runs only (a data-parallel run keeps its collectives on one thread). The rows and their order
        are the same either way, and the scores on the CPU; on a GPU they agree to rounding (1e-16 relative: GEMM
        kernels may differ between threads). A row's ``seconds`` count from the start of its extraction, so with
        overlap consecutive rows' seconds overlap.
    """

    output_dir: str | os.PathLike | None = None
    cache_dir: str | os.PathLike | None = None
    token: str | bool | None = field(default=None, repr=False, compare=False)
    progress: bool = True
    profile: bool = False
    prefetch: bool = True
    overlap: bool = False

    def __post_init__(self) -> None:
        check_folder("output_dir", self.output_dir)
        check_folder("cache_dir", self.cache_dir)
        if not isinstance(self.prefetch, bool):
            raise InvalidInputError(f"prefetch must be True or False; got {self.prefetch!r}.")
        if not isinstance(self.overlap, bool):
            raise InvalidInputError(f"overlap must be True or False; got {self.overlap!r}.")


@dataclass(frozen=True, kw_only=True)
class RankSpec:
    """Everything a ranking needs besides the dataset and the explicit candidates.

    Build it from the specs, or from flat options named as :func:`hf_emms.rank`'s keywords with
    :meth:`from_options` (what the CLI does with its parsed flags).
    """

    data: DataSpec = field(default_factory=DataSpec)
    query: CandidateQuery = field(default_factory=CandidateQuery)
    score: ScoreSpec = field(default_factory=ScoreSpec)
    extract: ExtractSpec = field(default_factory=ExtractSpec)
    run: RunSpec = field(default_factory=RunSpec)

    _PARTS = {"data": DataSpec, "query": CandidateQuery, "score": ScoreSpec, "extract": ExtractSpec, "run": RunSpec}

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Every flat option :meth:`from_options` takes: the specs' field names (each owned by one spec)."""
        return tuple(f.name for part in cls._PARTS.values() for f in dataclasses.fields(part))

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None, /, **more: Any) -> RankSpec:
        """The spec from flat options, each going to the spec that owns its name; unknown names are an error."""
        options = {**(options or {}), **more}
        unknown = sorted(set(options) - set(cls.option_names()))
        if unknown:
            raise InvalidInputError(f"unknown option(s) {unknown}; the options are {list(cls.option_names())}.")
        return cls(**{
            name: part(**{f.name: options[f.name] for f in dataclasses.fields(part) if f.name in options})
            for name, part in cls._PARTS.items()
        })

    def options(self) -> dict[str, Any]:
        """The flat options this spec was built from (:meth:`from_options` reads them back)."""
        return {f.name: getattr(getattr(self, name), f.name)
                for name, part in self._PARTS.items() for f in dataclasses.fields(part)}

    def replace(self, **options: Any) -> RankSpec:
        """A copy with flat ``options`` changed (as :meth:`from_options` names them), checked again."""
        return self.from_options({**self.options(), **options})
