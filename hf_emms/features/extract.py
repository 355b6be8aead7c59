"""One candidate + one dataset -> solver statistics, streamed: pooled batches go straight into ``FeatureStats``.

Inside a ``torch.distributed`` job (``accelerate launch``, ``torchrun``) every process takes a contiguous shard of the
samples and the statistics are summed across processes at the end (data-parallel). :func:`extract_many` also runs
candidate-parallel; see :mod:`hf_emms.features.parallel`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._timing import Phases, now
from ..errors import InvalidInputError
from ..hub.candidate import Candidate
from ..options import DTYPES, ExtractSpec
from ..solver import FeatureStats
from ..solver.stats import N_FOLDS
from .batches import batches
from .blocks import Blocks
from .cache import StatsCache, array_digest, cache_key
from .candidate import load_candidate, resolve_candidate
from .distributed import all_ranks_agree, first_across, process_rank, resolve_device, sum_across
from .groups import InputGroups, input_groups
from .inputs import InputSpec, encoding_note, input_spec, length_order, position_limit, text_max_length
from .runner import Runner
from .record import Extraction, ExtractionRecord
from .sampling import shard
from .sampling import subsample as subsample_rows

_DTYPES = {name: getattr(torch, name) for name in DTYPES if name != "auto"}  # name -> torch dtype


@dataclass(frozen=True)
class Job:
    """Everything about a run that does not depend on the candidate: checked once, shared by every candidate.

    Built by :func:`prepare_job`; :func:`run_candidate` runs one candidate on it.
    """

    dataset: Any
    spec: InputSpec
    labels: np.ndarray | None
    label_embeddings: Any
    rows: np.ndarray
    key_parts: dict[str, Any]
    subsample: dict[str, Any] | None
    settings: ExtractSpec
    cache_dir: str | os.PathLike | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    progress: bool = True
    profile: bool = False
    # Rows held out with an earlier row (the same input, or group): their folds follow it (groups.py). None: none.
    groups: InputGroups | None = None
    # Tokenised batches, kept for the next candidate with the same tokenizer (a family of checkpoints shares one):
    # the one mutable part of a job, filled by features.batches.
    token_batches: dict[str, list[dict[str, Any]]] = field(default_factory=dict, compare=False, repr=False)


def extract_stats(
    candidate: str | os.PathLike,
    dataset: Any,
    *,
    revision: str | None = None,
    text_column: str | tuple[str, str] | None = None,
    image_column: str | None = None,
    audio_column: str | None = None,
    input_columns: str | Sequence[str] | None = None,
    input_kind: str | None = None,
    label_column: str | None = None,
    label_embeddings: Any = None,
    max_samples: int | None = None,
    seed: int = 0,
    group_column: str | None = None,
    batch_size: int = 32,
    pooling: str = "auto",
    max_length: int | None = None,
    dtype: str = "auto",
    device: str | torch.device | None = None,
    num_workers: int | None = None,
    layers: str | Sequence[int] = "last",
    max_stats_memory: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    progress: bool = True,
) -> Extraction:
    """Statistics of one candidate's pooled features on a dataset, without ever holding the features.

    Inside a ``torch.distributed`` job (e.g. ``accelerate launch``) every process must call it with the same
    arguments: each takes a shard of the samples and every process returns the summed statistics.

    Parameters
    ----------
    candidate : str, path or hub.Candidate
        A local checkpoint folder, a Hub id (fetched at ``revision``; ``HF_ENDPOINT`` is honoured), or a candidate
        the scanner already pinned.
    dataset : datasets.Dataset
        Already loaded, N rows.
    revision : str, optional
        Branch, tag or commit of a Hub id; the resolved commit sha is recorded and keys the cache.
    text_column, image_column, audio_column : str
        The input column; name exactly one. ``text_column`` may be a pair of columns (sentence pairs, encoded
        jointly); ``image_column`` with ``text_column`` is an image + text input. Audio values are
        ``{"array", "sampling_rate"}`` dicts (the ``datasets.Audio`` feature) or raw 1-D float arrays.
    input_columns, input_kind : optional
        Instead of the per-modality names: the columns as :attr:`hf_emms.tasks.Task.input_columns` holds them and
        their kind (one of :data:`hf_emms.options.INPUT_KINDS`; inferred from the features when None). A text pair
        goes through the candidate's tokenizer as a pair (``tokenizer(a, b, truncation="longest_first")``); an
        image + text through its ``AutoProcessor``, for vision-language candidates only (joint encoders pooled by
        the usual rules, dual encoders fused: see :mod:`hf_emms.features.pooling`).
    label_column : str, optional
        A column of class ids (int, e.g. a ``ClassLabel``). Candidates with a classifier head then also fill the
        source x target tables for NCE and LEEP.
    label_embeddings : array-like of shape (N, D2, K) or (N, D2), optional
        Per-sample F-labels aligned with the dataset rows (a numpy memmap works: it is read by row index per batch).
        Give ``label_column`` or ``label_embeddings``.
    max_samples : int, optional
        Budget: a seeded subsample of that many rows, stratified by class when ``label_column`` is given.
    seed : int
        Seed of the subsample.
    group_column : str, optional
        Rows sharing its value (a speaker, a patient, a document) share a cross-validation fold; rows repeating an
        input always do (:mod:`.groups`).
    batch_size : int
        Samples per forward pass; halved automatically on out-of-memory.
    pooling : str
        ``"auto"`` (the rules of :mod:`hf_emms.features.pooling`) or one of ``"pooler_output"``, ``"mean"``,
        ``"cls"``, ``"max"``, ``"last_token"``.
    max_length : int, optional
        Text: tokens per sample. Default: the checkpoint's declared limit (see :func:`~.inputs.text_max_length`).
    dtype : {"auto", "float32", "bfloat16", "float16"}
        ``"auto"``: bfloat16 on a GPU that supports it (else float16), float32 on CPU. Statistics are float64.
    device : str or torch.device, optional
        Default: the process's accelerator from ``accelerate`` (``cuda:LOCAL_RANK``, or CPU).
    num_workers : int, optional
        DataLoader processes that preprocess batches. Default: 0 on CPU (the model needs the cores), 4 on GPU.
    layers : {"last", "auto", "all"} or sequence of int
        Hidden layers that get statistics from the same forward pass (:mod:`~.layers`); ``Extraction.layers`` holds
        the others' beside the last layer's ``stats``.
    max_stats_memory : int, optional
        Bytes all layers' statistics may take; a request over it is refused before any accumulation.
    cache_dir : path, optional
        Reuse and store finished statistics here (see :class:`~.cache.StatsCache`).
    allow_pickle, trust_remote_code : bool, default False
        Opt in to pickled weights / repository code (see :func:`~.candidate.load_candidate`).
    progress : bool
        A progress bar per candidate (main process only in data-parallel runs).

    Returns
    -------
    Extraction
        ``stats`` (class-label or F-label :class:`~hf_emms.solver.FeatureStats`) and ``record``.

    Raises
    ------
    CandidateLoadError
        The candidate cannot be fetched, loaded, or run on these inputs (the reason says why).
    InvalidInputError
        Bad dataset, columns, targets or options.
    """
    settings = ExtractSpec(batch_size=batch_size, pooling=pooling, max_length=max_length, dtype=dtype, device=device,
                           num_workers=num_workers, layers=layers, max_stats_memory=max_stats_memory)
    job = prepare_job(
        dataset, text_column=text_column, image_column=image_column, audio_column=audio_column,
        input_columns=input_columns, input_kind=input_kind, label_column=label_column,
        label_embeddings=label_embeddings, max_samples=max_samples, seed=seed, group_column=group_column,
        settings=settings, cache_dir=cache_dir, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code,
        progress=progress,
    )
    rank, world = process_rank()
    mode = "data-parallel" if world > 1 else "single"
    return run_candidate(job, candidate, revision, rank=rank, world_size=world, mode=mode)


def prepare_job(
    dataset: Any,
    *,
    text_column: str | tuple[str, str] | None = None,
    image_column: str | None = None,
    audio_column: str | None = None,
    input_columns: str | Sequence[str] | None = None,
    input_kind: str | None = None,
    label_column: str | None = None,
    label_embeddings: Any = None,
    max_samples: int | None = None,
    seed: int = 0,
    subsample: dict[str, Any] | None = None,
    group_column: str | None = None,
    groups: InputGroups | None = None,
    settings: ExtractSpec = ExtractSpec(),
    cache_dir: str | os.PathLike | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    progress: bool = True,
    profile: bool = False,
) -> Job:
    """Check the dataset, targets and settings once, for any number of candidates.

    The keywords are those of :func:`extract_stats` (the model settings grouped as an
    :class:`~hf_emms.options.ExtractSpec`), plus ``subsample``: when the caller already drew the rows (``rank()``
    draws its budget once, then passes ``dataset.select(rows)``), ``{"max_samples", "seed", "indices"}`` of that
    draw, recorded with the statistics. Give either ``max_samples`` (drawn here) or ``subsample``, not both.
    ``group_column``: rows sharing its value are held out together in the cross-validation (:mod:`.groups`);
    ``groups``: what :func:`~.groups.input_groups` gave for these rows and that column, when the caller has it (the
    inputs are not hashed again).
    """
    spec = input_spec(dataset, text_column=text_column, image_column=image_column, audio_column=audio_column,
                      input_columns=input_columns, input_kind=input_kind)
    n = len(dataset)
    if n < 2:
        raise InvalidInputError(f"the dataset has {n} row(s); scoring needs at least 2.")
    if (label_column is None) == (label_embeddings is None):
        raise InvalidInputError("give exactly one target: label_column= (class ids) or label_embeddings= (N, D2, K).")
    if max_samples is not None and subsample is not None:
        raise InvalidInputError("give max_samples= (draw the rows here) or subsample= (rows drawn already), not both.")
    labels = None
    if label_column is not None:
        labels = _class_ids(dataset, label_column)
        targets = {"label_column": label_column}
    else:
        shape = getattr(label_embeddings, "shape", None)
        if shape is None or len(shape) not in (2, 3) or shape[0] != n:
            raise InvalidInputError(
                f"label_embeddings must be an array of shape ({n}, D2, K) or ({n}, D2), one row per dataset row; "
                f"got shape {shape}."
            )
        targets = {"label_embeddings": array_digest(np.asarray(label_embeddings))}
    rows = subsample_rows(n, max_samples, labels=labels, seed=seed)
    if subsample is None and len(rows) < n:
        subsample = {"max_samples": int(max_samples), "seed": seed, "indices": rows.tolist()}
    groups = groups if groups is not None else input_groups(dataset, spec, rows, group_column=group_column)
    grouped = {"fold_groups": array_digest(np.stack([groups.rows, groups.first]))} if groups.repeated else {}
    if group_column is not None and groups.units < 2 * N_FOLDS:
        raise InvalidInputError(
            f"the {len(rows)} rows form {groups.units} groups held out together (rows sharing a value of "
            f"group_column {group_column!r}, or an input): {N_FOLDS}-fold cross-validation needs at least "
            f"{2 * N_FOLDS}. Give more samples, or a finer group column.")
    return Job(
        dataset=dataset, spec=spec, labels=labels, label_embeddings=label_embeddings, rows=rows,
        key_parts={
            "dataset": dataset._fingerprint, "split": _split(dataset), "inputs": [spec.modality, *spec.columns],
            "targets": targets, "rows": array_digest(rows), "pooling": settings.pooling,
            "max_length": settings.max_length,
            # a last-layer run keeps the keys it always had (its statistics did not change)
            **({} if settings.layers == "last" else {"layers": settings.layers}),
            **grouped,  # rows whose inputs are all distinct keep the keys they always had
        },
        groups=groups if groups.repeated else None, subsample=subsample, settings=settings, cache_dir=cache_dir,
        allow_pickle=allow_pickle, trust_remote_code=trust_remote_code, progress=progress, profile=profile,
    )


def run_candidate(
    job: Job, candidate: str | os.PathLike | Candidate, revision: str | None = None, *, rank: int = 0,
    world_size: int = 1, mode: str = "single",
) -> Extraction:
    """Statistics of one candidate: from the cache, or computed over this process's shard and summed across the
    ``world_size`` processes (every one of which must call this with the same job and candidate when > 1)."""
    start = time.perf_counter()
    settings = job.settings
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    phases = Phases(device if job.profile else None)  # profiling waits for the GPU at each phase's end
    with phases("resolve"):  # pinning (a Hub id's config.json) and the statistics cache's answer
        resolved = resolve_candidate(candidate, revision=revision)
        key = cache_key({**job.key_parts, "candidate": resolved.model_id, "revision": resolved.revision,
                         "dtype": str(dtype)})
        cache = StatsCache(job.cache_dir) if job.cache_dir is not None else None
        hit = cache.get(key) if cache else None
    if all_ranks_agree(hit is not None, world_size):
        stats, record, layers = hit
        return Extraction(stats, ExtractionRecord.from_dict({**record, "cache_hit": True,
                                                             "timings": phases.as_dict()}), layers)

    loaded = load_candidate(
        resolved, modality=job.spec.modality, with_head=job.labels is not None, dtype=dtype, device=device,
        allow_pickle=job.allow_pickle, trust_remote_code=job.trust_remote_code,
    )
    phases.merge(loaded.seconds)
    max_length, policy = (None, None)
    if job.spec.text_columns:
        tokenizer = getattr(loaded.preprocessor, "tokenizer", None) if job.spec.modality == "image-text" else None
        config = getattr(loaded.model.config, "text_config", None) or loaded.model.config
        max_length, policy = text_max_length(
            settings.max_length, folder=loaded.folder, tokenizer=tokenizer or loaded.preprocessor,
            positions=position_limit(loaded.model, config),
        )
    runner = Runner(loaded, settings.pooling, settings.batch_size, sync=job.profile, layers=settings.layers)
    rows = length_order(job.dataset, job.spec, shard(job.rows, rank, world_size))
    at_limit = 0
    blocks = Blocks(job, rows=1024 if device.type == "cpu" else 4096)  # a GPU pays per block in launches, not flops
    show = job.progress and (rank == 0 or mode == "candidate-parallel")
    waited = now(phases.device)
    for batch in batches(job, loaded, rows, max_length, device, resolved.model_id, show=show):
        phases.add("preprocess", now(phases.device) - waited)  # tokenising / processing the batch, and moving it
        features, logits = runner(batch["inputs"])  # runner.phases: forward, pooling
        with phases("statistics"):
            blocks.add(features, logits, batch["rows"], last=runner.last_key)
        at_limit += batch.get("at_limit", 0)
        waited = now(phases.device)
    with phases("statistics"):
        blocks.flush()
    phases.merge(runner.phases.as_dict())
    layer_stats, n_layers, last = blocks.stats, runner.n_layers, runner.last_key
    if world_size > 1 and mode == "data-parallel":
        with phases("all_reduce"):
            # The layers of the first process that saw rows: one that saw none adds zeros to each, in the same order.
            keys, n_layers, last = first_across((list(layer_stats), n_layers, last) if layer_stats else None)
            for key in keys:
                layer_stats.setdefault(key, FeatureStats()).all_reduce()
        at_limit = sum_across(at_limit)
        chosen = first_across(runner.pooling)
    else:
        chosen = runner.pooling
    stats = layer_stats.get(last, FeatureStats())
    record = ExtractionRecord(
        candidate=resolved.model_id, revision=resolved.revision, modality=job.spec.modality,
        model_class=type(loaded.model).__name__, pooling=chosen.method, pooling_reason=chosen.reason,
        max_length=max_length, max_length_policy=policy, n_at_max_length=at_limit if max_length else None,
        dtype=str(dtype).removeprefix("torch."), device=str(device), batch_size=runner.batches.size, n_samples=stats.n,
        dataset_fingerprint=job.key_parts["dataset"], split=job.key_parts["split"], subsample=job.subsample,
        head_classes=loaded.head_classes, seconds=time.perf_counter() - start, timings=phases.as_dict(), mode=mode,
        world_size=world_size, cache_key=key, input_kind=job.spec.kind, input_columns=list(job.spec.columns),
        input_encoding=encoding_note(job.spec, chosen.method),
        layers=list(layer_stats) if n_layers is not None else None, n_layers=n_layers,
    )
    layers = {k: v for k, v in layer_stats.items() if k != last} if n_layers is not None else {}
    if cache is not None and (rank == 0 or mode == "candidate-parallel"):
        cache.put(key, stats, record.to_dict(), layers=layers)
    return Extraction(stats, record, layers)


def _class_ids(dataset: Any, column: str) -> np.ndarray:
    if column not in dataset.column_names:
        raise InvalidInputError(f"label column {column!r} not in the dataset; it has {dataset.column_names}.")
    labels = np.asarray(dataset[column])
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        fix = {  # by what the column holds instead of class ids
            "b": "booleans: cast them to 0/1 ints, or load the data with hf_emms.load_task (two classes)",
            "f": "floats: class ids are whole numbers (a numeric target is regression: pass label_embeddings)",
        }.get(labels.dtype.kind, f"encode string labels first: dataset.class_encode_column({column!r})")
        raise InvalidInputError(
            f"label column {column!r} must hold one integer class id per row; got dtype {labels.dtype}, shape "
            f"{labels.shape}. {fix[0].upper()}{fix[1:]}."
        )
    if labels.min() < 0:
        raise InvalidInputError(f"label column {column!r} holds {labels.min()} (unlabelled rows?); drop them first.")
    if len(np.unique(labels)) < 2:
        raise InvalidInputError(f"label column {column!r} holds one class only: there is nothing to rank on.")
    return labels


def _split(dataset: Any) -> str | None:
    return None if getattr(dataset, "split", None) is None else str(dataset.split)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"``: bfloat16 on a GPU that has it, else float16 on a GPU, float32 on CPU (slow in half precision)."""
    if dtype != "auto":
        return _DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
