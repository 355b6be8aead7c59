"""One candidate + one dataset -> solver statistics, streamed: pooled batches go straight into ``FeatureStats``.

Inside a ``torch.distributed`` job (``accelerate launch``, ``torchrun``) every process takes a contiguous shard of the
samples and the statistics are summed across processes at the end (data-parallel). :func:`extract_many` also runs
candidate-parallel; see :mod:`hf_emms.features.parallel`.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import HfEmmsError, InvalidInputError
from ..solver import FeatureStats
from .adaptive import HalvingBatches
from .cache import StatsCache, array_digest, cache_key
from .candidate import LoadedCandidate, load_candidate, resolve_candidate
from .errors import CandidateLoadError
from .inputs import InputSpec, Preprocess, input_spec, length_order, text_max_length
from .pooling import Pooling, choose_pooling, pool
from .sampling import shard, subsample

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ExtractionRecord:
    """How a set of statistics was made: stored beside them in the cache, and in ranking results.

    Attributes
    ----------
    candidate : str
        The candidate as given (Hub id or folder).
    revision : str
        Resolved commit sha (Hub id) or ``"sha256:<hex>"`` of the folder's files.
    modality : str
        ``"text"``, ``"image"`` or ``"audio"``.
    model_class : str
        The transformers class that ran (e.g. ``BertModel``, ``ViTForImageClassification``).
    pooling, pooling_reason : str
        The pooling method used and the rule that chose it (see :mod:`hf_emms.features.pooling`).
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
    head_classes : int or None
        Z, when the candidate's classifier head fed NCE/LEEP tables into the statistics.
    seconds : float
        Wall time of the extraction (load, forward, statistics, reduction).
    timings : dict
        Seconds spent in ``load``, ``forward`` (model + pooling) and ``statistics`` (accumulation), on the
        process that wrote the record.
    mode : str
        ``"single"``, ``"data-parallel"`` or ``"candidate-parallel"``.
    world_size : int
        Processes in the job.
    cache_key : str
        The key the statistics are cached under.
    cache_hit : bool
        Whether this result was read from the cache rather than computed.
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExtractionRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Extraction:
    """The statistics of one candidate on one dataset, and how they were made."""

    stats: FeatureStats
    record: ExtractionRecord


@dataclass(frozen=True)
class Job:
    """Everything about a run that does not depend on the candidate: checked once, shared by every candidate."""

    dataset: Any
    spec: InputSpec
    labels: np.ndarray | None
    label_embeddings: Any
    rows: np.ndarray
    key_parts: dict[str, Any]
    subsample: dict[str, Any] | None
    options: dict[str, Any]


def extract_stats(
    candidate: str | os.PathLike,
    dataset: Any,
    *,
    revision: str | None = None,
    text_column: str | tuple[str, str] | None = None,
    image_column: str | None = None,
    audio_column: str | None = None,
    label_column: str | None = None,
    label_embeddings: Any = None,
    max_samples: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    pooling: str = "auto",
    max_length: int | None = None,
    dtype: str = "auto",
    device: str | torch.device | None = None,
    num_workers: int | None = None,
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
    candidate : str or path
        A local checkpoint folder, or a Hub id (fetched at ``revision``; ``HF_ENDPOINT`` is honoured).
    dataset : datasets.Dataset
        Already loaded, N rows.
    revision : str, optional
        Branch, tag or commit of a Hub id; the resolved commit sha is recorded and keys the cache.
    text_column, image_column, audio_column : str
        The input column; name exactly one. ``text_column`` may be a pair of columns (sentence pairs). Audio values
        are ``{"array", "sampling_rate"}`` dicts (the ``datasets.Audio`` feature) or raw 1-D float arrays.
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
    options = {k: v for k, v in locals().items() if k not in ("candidate", "dataset", "revision")}
    job = prepare_job(dataset, options)
    rank, world = process_rank()
    mode = "data-parallel" if world > 1 else "single"
    return run_candidate(job, candidate, revision, rank=rank, world_size=world, mode=mode)


def with_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """Every option of :func:`extract_stats`, from ``options`` or its default (one source of truth for both
    :func:`extract_stats` and :func:`~.parallel.extract_many`)."""
    params = inspect.signature(extract_stats).parameters
    names = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n != "revision"]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; the options are those of extract_stats: {names}.")
    return {n: options.get(n, params[n].default) for n in names}


def prepare_job(dataset: Any, options: dict[str, Any]) -> Job:
    """Check the dataset, targets and options (the keywords of :func:`extract_stats`) once for any number of
    candidates."""
    options = with_defaults(options)
    spec = input_spec(
        dataset, text_column=options.pop("text_column"), image_column=options.pop("image_column"),
        audio_column=options.pop("audio_column"),
    )
    label_column, label_embeddings = options.pop("label_column"), options.pop("label_embeddings")
    max_samples, seed = options.pop("max_samples"), options.pop("seed")
    n = len(dataset)
    if n < 2:
        raise InvalidInputError(f"the dataset has {n} row(s); scoring needs at least 2.")
    if (label_column is None) == (label_embeddings is None):
        raise InvalidInputError("give exactly one target: label_column= (class ids) or label_embeddings= (N, D2, K).")
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
    rows = subsample(n, max_samples, labels=labels, seed=seed)
    _check_options(options)
    return Job(
        dataset=dataset, spec=spec, labels=labels, label_embeddings=label_embeddings, rows=rows,
        key_parts={
            "dataset": dataset._fingerprint, "split": _split(dataset), "inputs": [spec.modality, *spec.columns],
            "targets": targets, "rows": array_digest(rows), "pooling": options["pooling"],
            "max_length": options["max_length"],
        },
        subsample=None if len(rows) == n else {"max_samples": int(max_samples), "seed": seed, "indices": rows.tolist()},
        options=options,
    )


def run_candidate(
    job: Job, candidate: str | os.PathLike, revision: str | None, *, rank: int, world_size: int, mode: str
) -> Extraction:
    """Statistics of one candidate: from the cache, or computed over this process's shard and summed across the
    ``world_size`` processes (every one of which must call this with the same job and candidate when > 1)."""
    start = time.perf_counter()
    opts = job.options
    device = resolve_device(opts["device"])
    dtype = resolve_dtype(opts["dtype"], device)
    resolved, folder = resolve_candidate(candidate, revision=revision)
    key = cache_key({**job.key_parts, "candidate": resolved.name, "revision": resolved.revision, "dtype": str(dtype)})
    cache = StatsCache(opts["cache_dir"]) if opts["cache_dir"] is not None else None
    hit = cache.get(key) if cache else None
    if _all_ranks_agree(hit is not None, world_size):
        stats, record = hit
        return Extraction(stats, ExtractionRecord.from_dict({**record, "cache_hit": True}))

    loaded = load_candidate(
        resolved, folder=folder, modality=job.spec.modality, with_head=job.labels is not None, dtype=dtype,
        device=device, allow_pickle=opts["allow_pickle"], trust_remote_code=opts["trust_remote_code"],
    )
    timings = {"load": time.perf_counter() - start, "forward": 0.0, "statistics": 0.0}
    max_length, policy = (None, None)
    if job.spec.modality == "text":
        max_length, policy = text_max_length(
            opts["max_length"], folder=loaded.folder, tokenizer=loaded.preprocessor, config=loaded.model.config
        )
    runner = _Runner(loaded, opts["pooling"], opts["batch_size"])
    rows = length_order(job.dataset, job.spec, shard(job.rows, rank, world_size))
    stats, at_limit = FeatureStats(), 0
    blocks = _Blocks(job, stats)
    show = opts["progress"] and (rank == 0 or mode == "candidate-parallel")
    for batch in _batches(job, loaded, rows, max_length, device, resolved.name, show=show):
        t0 = time.perf_counter()
        features, logits = runner(batch["inputs"])
        t1 = _sync_time(device)
        blocks.add(features, logits, batch["rows"])
        t2 = _sync_time(device)
        timings["forward"] += t1 - t0
        timings["statistics"] += t2 - t1
        at_limit += batch.get("at_limit", 0)
    t2 = time.perf_counter()
    blocks.flush()
    timings["statistics"] += _sync_time(device) - t2
    if world_size > 1 and mode == "data-parallel":
        stats.all_reduce()
        at_limit = _sum_across(at_limit)
        chosen = _first_across(runner.pooling)
    else:
        chosen = runner.pooling
    record = ExtractionRecord(
        candidate=resolved.name, revision=resolved.revision, modality=job.spec.modality,
        model_class=type(loaded.model).__name__, pooling=chosen.method, pooling_reason=chosen.reason,
        max_length=max_length, max_length_policy=policy, n_at_max_length=at_limit if max_length else None,
        dtype=str(dtype).removeprefix("torch."), device=str(device), batch_size=runner.batches.size, n_samples=stats.n,
        dataset_fingerprint=job.key_parts["dataset"], split=job.key_parts["split"], subsample=job.subsample,
        head_classes=loaded.head_classes, seconds=time.perf_counter() - start, timings=timings, mode=mode,
        world_size=world_size, cache_key=key,
    )
    if cache is not None and (rank == 0 or mode == "candidate-parallel"):
        cache.put(key, stats, record.to_dict())
    return Extraction(stats, record)


class _Blocks:
    """Pooled batches gathered into blocks of about ``rows`` samples, then folded into the statistics.

    ``FeatureStats.update`` costs a few dozen tensor operations whatever the batch size; at model batch sizes
    (32-64 samples) that fixed cost, not arithmetic, dominates. Blocks of 1,024 samples pay it once per block;
    they hold rows x D1 pooled features (4 MB for 1,024 x 1,024 in float32), not the dataset's.
    """

    def __init__(self, job: Job, stats: FeatureStats, rows: int = 1024) -> None:
        self.job, self.stats, self.rows = job, stats, rows
        self.features: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []
        self.ids: list[np.ndarray] = []

    def add(self, features: torch.Tensor, logits: torch.Tensor | None, ids: np.ndarray) -> None:
        self.features.append(features)
        self.ids.append(ids)
        if logits is not None:
            self.logits.append(logits)
        if sum(len(i) for i in self.ids) >= self.rows:
            self.flush()

    def flush(self) -> None:
        if not self.ids:
            return
        x = torch.cat(self.features)
        ids = np.concatenate(self.ids)  # dataset row ids: cross-validation folds follow the rows, not order or shard
        if self.job.labels is not None:
            logits = torch.cat(self.logits) if self.logits else None
            self.stats.update(x, labels=self.job.labels[ids], head_logits=logits, sample_ids=ids)
        else:
            self.stats.update(x, label_embeddings=np.asarray(self.job.label_embeddings[ids]), sample_ids=ids)
        self.features, self.logits, self.ids = [], [], []


class _Runner:
    """Forward pass + pooling of one batch, halving the batch on out-of-memory; the pooling is chosen on the first
    batch (the rules need to see the model's outputs)."""

    def __init__(self, loaded: LoadedCandidate, pooling: str, batch_size: int) -> None:
        self.loaded = loaded
        self.option = pooling
        self.pooling: Pooling | None = None
        self.batches = HalvingBatches(batch_size)
        self._captured: Any = None
        if loaded.encoder is not loaded.model:  # the head's model: keep its encoder's output on the way through
            loaded.encoder.register_forward_hook(self._capture)

    def _capture(self, module: Any, args: Any, output: Any) -> None:
        self._captured = output

    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        try:
            parts = self.batches(self._forward, inputs)
        except (TypeError, ValueError, RuntimeError, IndexError) as e:
            # A model that cannot run these inputs at all (first batch) is a candidate failure, reported with its
            # reason; our own errors (bad options, out of memory) and later failures propagate as they are.
            if self.pooling is not None or isinstance(e, (HfEmmsError, torch.OutOfMemoryError)):
                raise
            raise CandidateLoadError(
                self.loaded.resolved.name, f"{type(self.loaded.model).__name__} fails on these inputs "
                f"({type(e).__name__}: {(str(e).splitlines() or [''])[0]})",
            ) from e
        features = torch.cat([p[0] for p in parts])
        logits = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
        return features, logits

    def _forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        loaded = self.loaded
        with torch.inference_mode():
            output = loaded.model(**inputs)
            encoded = self._captured if loaded.encoder is not loaded.model else output
            self._captured = None
            if self.pooling is None:
                self.pooling = choose_pooling(
                    self.option, folder=loaded.folder, output=encoded, missing_keys=loaded.missing_keys
                )
            features = pool(encoded, self.pooling, _position_mask(loaded, inputs, encoded))
        return features, (output.logits if loaded.head_classes else None)


def _position_mask(loaded: LoadedCandidate, inputs: dict[str, torch.Tensor], output: Any) -> torch.Tensor | None:
    """1 for positions of the last hidden state that hold real input: tokens (text), frames (audio); None for images."""
    mask = inputs.get("attention_mask")
    if mask is None or loaded.modality == "image":
        return None
    hidden = output.last_hidden_state
    if hidden.ndim == 3 and hidden.shape[1] != mask.shape[1]:  # audio: samples -> frames, as the model counts them
        frames = getattr(loaded.encoder, "_get_feature_vector_attention_mask", None)
        return frames(hidden.shape[1], mask) if frames else None
    return mask


def _batches(
    job: Job, loaded: LoadedCandidate, rows: np.ndarray, max_length: int | None, device: torch.device, name: str,
    *, show: bool,
):
    """Preprocessed batches on ``device`` (preprocessing in DataLoader workers), with a progress bar."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    size = job.options["batch_size"]
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    workers = job.options["num_workers"]
    if workers is None:
        workers = 0 if device.type == "cpu" else min(4, os.cpu_count() or 1)
    loader = DataLoader(
        chunks, batch_size=None, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
        collate_fn=Preprocess(job.dataset, job.spec, loaded.preprocessor, max_length=max_length),
    )
    float_dtype = loaded.model.dtype
    for batch in tqdm(loader, total=len(chunks), desc=name[-40:], unit="batch", disable=not show, leave=False):
        batch["inputs"] = {
            k: v.to(device, dtype=float_dtype if v.is_floating_point() else None, non_blocking=True)
            for k, v in batch["inputs"].items()
        }
        yield batch


def _class_ids(dataset: Any, column: str) -> np.ndarray:
    if column not in dataset.column_names:
        raise InvalidInputError(f"label column {column!r} not in the dataset; it has {dataset.column_names}.")
    labels = np.asarray(dataset[column])
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise InvalidInputError(
            f"label column {column!r} must hold one integer class id per row; got dtype {labels.dtype}, shape "
            f"{labels.shape}. Encode string labels first: dataset.class_encode_column({column!r})."
        )
    if labels.min() < 0:
        raise InvalidInputError(f"label column {column!r} holds {labels.min()} (unlabelled rows?); drop them first.")
    if len(np.unique(labels)) < 2:
        raise InvalidInputError(f"label column {column!r} holds one class only: there is nothing to rank on.")
    return labels


def _check_options(options: dict[str, Any]) -> None:
    if not isinstance(options["batch_size"], int) or options["batch_size"] < 1:
        raise InvalidInputError(f"batch_size must be a positive integer; got {options['batch_size']!r}.")
    if options["dtype"] != "auto" and options["dtype"] not in _DTYPES:
        raise InvalidInputError(f"dtype must be 'auto' or one of {sorted(_DTYPES)}; got {options['dtype']!r}.")


def _split(dataset: Any) -> str | None:
    return None if getattr(dataset, "split", None) is None else str(dataset.split)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device``, or the one ``accelerate`` assigns this process (``cuda:LOCAL_RANK`` on GPUs, else CPU)."""
    return torch.device(device) if device is not None else _accelerate_state().device


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"``: bfloat16 on a GPU that has it, else float16 on a GPU, float32 on CPU (slow in half precision)."""
    if dtype != "auto":
        return _DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process: from ``accelerate`` (which sets up ``torch.distributed`` when launched
    by ``accelerate launch`` or ``torchrun``), (0, 1) in a plain run."""
    state = _accelerate_state()
    return state.process_index, state.num_processes


def _accelerate_state() -> Any:
    """accelerate's process state. ``ACCELERATE_USE_CPU=1`` makes CPU processes one job (as ``Accelerator`` reads it;
    ``PartialState`` alone would leave each process on its own)."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def _sync_time(device: torch.device) -> float:
    if device.type == "cuda":  # kernels run asynchronously: time them, not their launch
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _all_ranks_agree(flag: bool, world_size: int) -> bool:
    """True when ``flag`` holds on every process (a cache hit must be one on all of them, or all recompute)."""
    if world_size == 1:
        return flag
    import torch.distributed as dist

    from ..solver.stats import collective_device

    t = torch.tensor([int(flag)], device=collective_device(dist))
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def _sum_across(value: int) -> int:
    import torch.distributed as dist

    from ..solver.stats import collective_device

    t = torch.tensor([value], device=collective_device(dist))
    dist.all_reduce(t)
    return int(t.item())


def _first_across(pooling: Pooling | None) -> Pooling:
    """The pooling chosen by the first process that saw a batch (all choose alike; one may have had no rows)."""
    import torch.distributed as dist

    chosen: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(chosen, pooling)
    return next(p for p in chosen if p is not None)
