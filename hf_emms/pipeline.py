"""``rank()``: dataset + candidates -> a :class:`~hf_emms.results.Ranking`, end to end.

    task        = load_task(dataset)                         what to score (hf_emms.tasks)
    candidates  = scan(ids, folders, tags...)                which checkpoints, pinned (hf_emms.hub)
    rows        = subsample(task, max_samples)               one seeded, stratified budget for every candidate
    F-labels    = embed_labels(labels, encoders)             once, cached (hf_emms.labels)
    per candidate, unless its record exists:
        stats   = extract_stats(candidate, rows)             streamed, cached (hf_emms.features)
        scores  = emms / baselines (stats, F-labels)         microseconds to seconds (hf_emms.solver)
        record  -> ResultsStore                              atomic: an interrupted run resumes here

A candidate that fails (gated, unsupported, broken weights, too large) becomes a skipped row with its reason; the
ranking goes on.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .errors import HfEmmsError, InvalidInputError
from .paths import cache_root
from .results import Ranking, ResultsStore, record_key
from .tasks import Task, load_task

__all__ = ["METRICS", "rank"]

# LEEP needs a second pass over the data (per-sample source probabilities): the solver has it (LeepPass),
# the pipeline does not run it yet.
METRICS = ("emms", "emms_official", "logme", "hscore", "nce")
_DEFAULT_METRICS = ("emms", "logme")


def rank(
    dataset: Any,
    candidates: Sequence[Any] | None = None,
    *,
    config: str | None = None,
    split: str | None = None,
    revision: str | None = None,
    task: str | None = None,
    label_column: str | None = None,
    input_column: str | None = None,
    tags: Sequence[str] = (),
    pipeline_tag: str | None = None,
    sort: str = "downloads",
    limit: int = 10,
    include_cache: bool = False,
    max_params: int | None = None,
    encoders: Any = "default",
    prompt: str = "{}",
    max_samples: int | None = 2000,
    seed: int = 0,
    metrics: Sequence[str] = _DEFAULT_METRICS,
    batch_size: int = 32,
    max_length: int | None = None,
    output_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    allow_remote_code: bool = False,
    allow_pickle: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> Ranking:
    """Rank checkpoints by how well their features should transfer to ``dataset``, without fine-tuning any.

    Parameters
    ----------
    dataset : str, path, datasets.Dataset or datasets.DatasetDict
        A Hub dataset id, a local folder or file, or data already loaded (see :func:`hf_emms.tasks.load_task`).
    candidates : sequence of str, path or hub.Candidate, optional
        Hub ids (``org/name`` or ``org/name@revision``) and local checkpoint folders. With ``tags`` or
        ``pipeline_tag``, Hub models matching them are added (``sort``, ``limit``).
    config, split, revision, task, label_column, input_column :
        Which data and what to score; detected when omitted (see :mod:`hf_emms.tasks`).
    include_cache : bool
        Also rank every compatible checkpoint already in the local HF cache (works offline).
    max_params : int, optional
        Skip candidates larger than this (read from safetensors metadata, no download).
    encoders : "default", sequence of str / labels.EncoderSpec, or None
        F-label encoders. "default": the paper-like CLIP/BERT/GPT-2 set on a GPU with the Hub reachable, else
        all-MiniLM-L6-v2. None: one-hot labels only (classification).
    prompt : str
        Template for class names, e.g. "a photo of a {}".
    max_samples : int or None
        Budget: a seeded subsample stratified by class (default 2,000; None scores every row).
    seed : int
        Seed of the subsample.
    metrics : sequence of {"emms", "emms_official", "logme", "hscore", "nce"}
        Scores to compute ("emms" always is). NCE needs a classifier head and class labels.
    batch_size, max_length :
        Feature extraction: samples per forward pass (halved on out-of-memory), text truncation.
    output_dir : path, optional
        Write ``ranking.json``, ``.csv``, ``.md`` and ``.png`` there.
    cache_dir : path, optional
        Root of the statistics cache and the results store (default ``$HF_EMMS_CACHE`` or ``~/.cache/hf_emms``).
    token : str or bool, optional
        Hub token for gated/private repos; never logged or stored.
    allow_remote_code, allow_pickle : bool, default False
        Opt in to repository code / pickled weights.
    device : str, optional
        Default: the accelerator ``accelerate`` gives this process (a GPU when there is one), else CPU.
    progress : bool
        Progress bars and a line per candidate.

    Returns
    -------
    Ranking
    """
    with _hf_progress_bars(progress):
        return _rank(**{k: v for k, v in locals().items()})


def _rank(*, dataset, candidates, config, split, revision, task, label_column, input_column, tags, pipeline_tag,
          sort, limit, include_cache, max_params, encoders, prompt, max_samples, seed, metrics, batch_size,
          max_length, output_dir, cache_dir, token, allow_remote_code, allow_pickle, device, progress) -> Ranking:
    from .features import CandidateLoadError, extract_stats, subsample
    from .features.extract import process_rank

    # Under accelerate/torchrun every process runs this loop: extraction shards the samples and sums the
    # statistics, so all ranks score the same numbers; only the main process writes.
    main_process = process_rank()[0] == 0

    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise InvalidInputError(f"unknown metrics {unknown}; choose from {METRICS}.")
    metrics = tuple(dict.fromkeys(["emms", *metrics]))
    t = load_task(dataset, config=config, split=split, revision=revision, task=task,
                  label_column=label_column, input_column=input_column, token=token)
    classes = t.kind == "classification"
    labels = np.asarray(t.dataset[t.label_column]) if classes else None
    rows = subsample(len(t.dataset), max_samples, labels=labels, seed=seed)
    data = t.dataset.select(rows) if len(rows) < len(t.dataset) else t.dataset
    kept, skipped = _candidates(candidates, t, tags=tags, pipeline_tag=pipeline_tag, sort=sort, limit=limit,
                                include_cache=include_cache, max_params=max_params, token=token,
                                allow_remote_code=allow_remote_code, allow_pickle=allow_pickle, progress=progress)
    if not kept and not skipped:
        raise InvalidInputError("no candidates: pass model ids or folders, tags=/pipeline_tag= to search the Hub, "
                                "or include_cache=True to rank what is already downloaded.")
    flabels = _flabels(t, data, encoders, prompt, cache_root(cache_dir), device, progress)
    tables = flabels.tables if (flabels is not None and classes) else None
    per_sample = flabels.to_array() if (flabels is not None and not classes) else None
    members = [Path(m).name for m in flabels.members] if flabels is not None else ["one-hot"]
    config_record = {
        "task": t.kind, "input": t.input_column, "label": t.label_column, "rows": len(data), "seed": seed,
        "max_samples": max_samples, "metrics": list(metrics), "max_length": max_length, "prompt": prompt,
        "encoders": [e.to_dict() for e in flabels.encoders] if flabels is not None else [],
        "score_rule": "cv", "hf_emms": __version__,
    }
    store = ResultsStore(cache_root(cache_dir) / "results")
    out_rows = [_skipped_row(*s) for s in skipped]
    for i, cand in enumerate(kept):
        key = record_key(cand.model_id, cand.revision, t.fingerprint + f":{_digest(rows)}", config_record)
        record = store.get(key)
        if record is not None:
            out_rows.append(record["row"])
            _say(progress, f"[{i + 1}/{len(kept)}] {cand.model_id}: done earlier (EMMS {record['row'].get('emms')})")
            continue
        start = time.perf_counter()
        try:
            target = {"label_column": t.label_column} if classes else {"label_embeddings": per_sample}
            extraction = extract_stats(
                cand.path or cand.model_id, data, revision=None if cand.path else cand.revision,
                **{f"{t.modality}_column": t.input_column}, **target, batch_size=batch_size, max_length=max_length,
                device=device, cache_dir=cache_root(cache_dir) / "stats", allow_pickle=allow_pickle,
                trust_remote_code=allow_remote_code, progress=progress,
            )
            row = _scores(extraction.stats, tables, members, metrics, classes)
        except (CandidateLoadError, HfEmmsError) as exc:
            out_rows.append(_skipped_row(_name(cand), cand, str(exc)))
            _say(progress, f"[{i + 1}/{len(kept)}] {cand.model_id}: skipped ({exc})")
            continue
        row.update(model=_name(cand), revision=cand.revision, params=cand.num_parameters, status="ok", reason=None,
                   width=extraction.stats.dim, n_samples=extraction.stats.n, seconds=time.perf_counter() - start)
        if main_process:
            store.put(key, {"key": key, "row": row, "config": config_record, "extraction": extraction.record.to_dict(),
                            "dataset": {**t.source, "fingerprint": t.fingerprint}})
        out_rows.append(row)
        _say(progress, f"[{i + 1}/{len(kept)}] {cand.model_id}: EMMS {row['emms']:.4f} ({row['seconds']:.1f} s)")
    meta = {
        "dataset": {**t.source, "fingerprint": t.fingerprint, "rows_scored": len(data), "rows_total": len(t.dataset)},
        "task": {"kind": t.kind, "modality": t.modality, "input_column": t.input_column,
                 "label_column": t.label_column, "classes": t.class_names},
        "flabels": flabels.to_dict() if flabels is not None else {"members": ["one-hot"]},
        "config": config_record,
    }
    ranking = Ranking(out_rows, meta)
    if output_dir is not None and main_process:
        ranking.save(output_dir)
    return ranking


def _scores(stats: Any, tables: Any, members: list[str], metrics: tuple[str, ...], classes: bool) -> dict[str, Any]:
    from .solver import emms, emms_reference, hscore, logme, nce

    result = emms(stats, tables)
    row: dict[str, Any] = {"emms": result.score, "emms_weights": dict(zip(members, map(float, result.weights)))}
    if classes and tables is not None:
        row["emms_one_hot"] = emms(stats).score  # the control: what class identity alone gives
    if "emms_official" in metrics:
        row["emms_official"] = emms_reference(stats, tables).score
    if "logme" in metrics:
        row["logme"] = logme(stats)
    if "hscore" in metrics and classes:
        row["hscore"] = hscore(stats, shrinkage=True)
    if stats.n_source_classes is not None and "nce" in metrics:
        row["nce"] = nce(stats)
    return row


def _candidates(given, t: Task, *, tags, pipeline_tag, sort, limit, include_cache, max_params, token,
                allow_remote_code, allow_pickle, progress) -> tuple[list[Any], list[Any]]:
    from .hub import Candidate, Criteria, parse_reference, scan

    ids, folders, ready, skipped = [], [], [], []
    for c in given or ():
        if isinstance(c, Candidate):
            ready.append(c)
        elif Path(os.fspath(c)).expanduser().is_dir():
            folders.append(Path(os.fspath(c)).expanduser())
        else:
            try:
                parse_reference(str(c))
                ids.append(str(c))
            except HfEmmsError:
                skipped.append((str(c), None, "neither a local checkpoint folder nor a Hub model id (org/name[@revision])"))
    criteria = Criteria(modality=t.modality, max_params=max_params, allow_remote_code=allow_remote_code,
                        allow_pickle=allow_pickle)
    result = scan(tags=list(tags), pipeline_tag=pipeline_tag, sort=sort, limit=limit, ids=ids, folders=folders,
                  cache=include_cache, criteria=criteria, token=token, progress=progress)
    kept = list(result.kept)
    for c in ready:
        problem = criteria.check(c)
        (result.rejected.append(problem) if problem else kept.append(c))
    skipped += [(r.reference, r.candidate, f"{r.reason.value}: {r.detail}") for r in result.rejected]
    return kept, skipped


def _flabels(t: Task, data: Any, encoders: Any, prompt: str, root: Path, device: str | None, progress: bool) -> Any:
    from .labels import default_encoders, embed_labels

    if encoders is None or (not isinstance(encoders, str) and len(encoders) == 0):
        if t.kind != "classification":
            raise InvalidInputError(f"a {t.kind} task needs F-label encoders (one-hot labels exist only for classes); "
                                    "pass encoders= or leave the default.")
        return None
    specs = default_encoders(device) if isinstance(encoders, str) and encoders == "default" else encoders
    if t.kind == "classification":
        return embed_labels(t.class_names, kind="classification", encoders=specs, prompt=prompt,
                            cache_dir=root / "labels", device=device, progress=progress)
    return embed_labels(data[t.label_column], kind=t.kind, encoders=specs, prompt=prompt,
                        classes=t.class_names, cache_dir=root / "labels", device=device, progress=progress)


@contextlib.contextmanager
def _hf_progress_bars(show: bool):
    """transformers' and huggingface_hub's own bars (weight loading, downloads) follow ``progress`` during a run."""
    import huggingface_hub.utils as hub_utils
    import transformers.utils.logging as tf_logging

    before = (tf_logging.is_progress_bar_enabled(), not hub_utils.are_progress_bars_disabled())
    if not show:
        tf_logging.disable_progress_bar()
        hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        if before[0] and not show:
            tf_logging.enable_progress_bar()
        if before[1] and not show:
            hub_utils.enable_progress_bars()


def _name(candidate: Any) -> str:
    """What people call a candidate: its Hub id, or a local folder's name."""
    if candidate.path and str(getattr(candidate.source, "value", candidate.source)) == "local":
        return Path(candidate.path).name
    return candidate.model_id


def _skipped_row(model: str, candidate: Any, reason: str) -> dict[str, Any]:
    """A candidate that could not be scored, with why."""
    return {"model": _name(candidate) if candidate is not None else model, "revision": getattr(candidate, "revision", None),
            "params": getattr(candidate, "num_parameters", None), "status": "skipped", "reason": reason}


def _digest(rows: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def _say(progress: bool, line: str) -> None:
    if progress:
        import sys

        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)
