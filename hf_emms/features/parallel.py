"""Many candidates on one dataset, on one process or many (``accelerate launch`` / ``torchrun``).

Two ways to share the work among P processes:

- **data-parallel**: every process loads each candidate in turn and takes 1/P of the samples; the statistics are
  summed across processes (one all-reduce per candidate). Best for few candidates, or a large dataset.
- **candidate-parallel**: processes take different candidates (round robin) and each runs all the samples; the
  results are exchanged at the end. No communication per batch, one model per process; best for many candidates.

``mode="auto"`` takes candidate-parallel when the candidates fill at least 80% of the process slots of the rounds
they need (4 candidates on 2 processes: 2 full rounds; 3 on 2: 1.5 of 2 rounds, so data-parallel), else data-parallel.
Every process returns the same results. Launch the same script on every process::

    accelerate launch --num_processes 4 rank_script.py          # GPUs of one machine
    torchrun --nnodes 2 --nproc_per_node 8 ... rank_script.py   # several machines
    ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 rank_script.py   # CPU processes (tests)
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from ..errors import CandidateLoadError, InvalidInputError
from ..hub.candidate import Candidate
from ..options import ExtractSpec, check_choice
from ..solver import FeatureStats
from .distributed import process_rank
from .extract import Job, prepare_job, run_candidate
from .record import Extraction, ExtractionRecord

MODES = ("auto", "data", "candidate")
Result = Extraction | CandidateLoadError  # a candidate's statistics, or why it was skipped


def choose_mode(n_candidates: int, world_size: int) -> str:
    """``"single"`` on one process; else ``"candidate-parallel"`` when the candidates fill at least 80% of the
    process slots of the rounds they need, ``"data-parallel"`` otherwise."""
    if world_size == 1:
        return "single"
    rounds = math.ceil(n_candidates / world_size)
    return "candidate-parallel" if n_candidates / (rounds * world_size) >= 0.8 else "data-parallel"


def extract_many(
    candidates: Sequence[str | os.PathLike | Candidate],
    dataset: Any,
    *,
    revisions: Sequence[str | None] | None = None,
    mode: str = "auto",
    **options: Any,
) -> dict[str, Result]:
    """Statistics of every candidate on one dataset; candidates that fail are returned with their reason.

    Every process of a distributed job must call it with the same arguments; every process returns the same
    results.

    Parameters
    ----------
    candidates : sequence of str, path or hub.Candidate
        Local checkpoint folders, Hub ids, or candidates the scanner pinned.
    dataset : datasets.Dataset
    revisions : sequence of str or None, optional
        One per candidate (Hub ids only; None for the main branch).
    mode : {"auto", "data", "candidate"}
        How processes share the work (see the module docstring); ignored on one process.
    **options
        The keyword options of :func:`~.extract.extract_stats` (input column, targets, ``max_samples``,
        ``batch_size``, ``cache_dir``, ...): the model settings (those of :class:`~hf_emms.options.ExtractSpec`)
        and the rest of :func:`~.extract.prepare_job`'s keywords. Or ``job=`` a prepared job.

    Returns
    -------
    dict
        Candidate (as given, as a string) -> :class:`~.extract.Extraction`, or the :class:`CandidateLoadError`
        that says why it was skipped. In the order given.
    """
    names = [c.model_id if isinstance(c, Candidate) else os.fspath(c) for c in candidates]
    if len(set(names)) != len(names):
        raise InvalidInputError("candidates contain duplicates; give each once.")
    revisions = list(revisions) if revisions is not None else [None] * len(names)
    if len(revisions) != len(names):
        raise InvalidInputError(f"got {len(revisions)} revisions for {len(names)} candidates; give one per candidate.")
    check_choice("mode", mode, MODES)
    job = options.pop("job", None) or _job(dataset, options)
    rank, world = process_rank()
    chosen = choose_mode(len(names), world) if mode == "auto" or world == 1 else f"{mode}-parallel"
    items = list(zip(names, candidates, revisions))
    if chosen != "candidate-parallel":
        return {name: _attempt(job, cand, rev, rank, world, chosen) for name, cand, rev in items}
    mine = {
        name: _attempt(job, cand, rev, 0, 1, chosen) for i, (name, cand, rev) in enumerate(items) if i % world == rank
    }
    return _exchange(mine, names)


def _job(dataset: Any, options: dict[str, Any]) -> Job:
    """The job of :func:`extract_many`'s flat ``options``: the model settings go to an ExtractSpec."""
    names = {f.name for f in dataclasses.fields(ExtractSpec)}
    job_names = set(inspect.signature(prepare_job).parameters) - {"dataset", "settings"}
    unknown = sorted(set(options) - names - job_names)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; the options are those of extract_stats: "
                        f"{sorted(names | job_names)}.")
    # extract_stats' defaults (the last layer unless asked), not rank()'s
    settings = ExtractSpec(**{"layers": "last", **{k: options.pop(k) for k in list(options) if k in names}})
    return prepare_job(dataset, settings=settings, **options)


def _attempt(job: Job, candidate: Any, revision: str | None, rank: int, world: int, mode: str) -> Result:
    try:
        return run_candidate(job, candidate, revision, rank=rank, world_size=world, mode=mode)
    except CandidateLoadError as e:
        return e


def _exchange(mine: dict[str, Result], order: list[str]) -> dict[str, Result]:
    """Every process's results on every process. Statistics travel as CPU tensors (one may hold them on its GPU)."""
    import torch.distributed as dist

    payload = {name: _portable(result) for name, result in mine.items()}
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, payload)
    merged = {name: result for part in gathered for name, result in part.items()}
    return {name: _restored(merged[name]) for name in order}


def _portable(result: Result) -> Any:
    if isinstance(result, CandidateLoadError):
        return result
    with tempfile.TemporaryDirectory() as tmp:  # save/load is FeatureStats' public way to move to the CPU
        def cpu(stats: FeatureStats, name: str) -> FeatureStats:
            return FeatureStats.load(stats.save(os.path.join(tmp, f"{name}.safetensors")))

        layers = {key: cpu(part, f"layer-{key}") for key, part in result.layers.items()}
        return cpu(result.stats, "stats"), result.record.to_dict(), layers


def _restored(item: Any) -> Result:
    if isinstance(item, CandidateLoadError):
        return item
    stats, record, layers = item
    return Extraction(stats, ExtractionRecord.from_dict(record), layers)
