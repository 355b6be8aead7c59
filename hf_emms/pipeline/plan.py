"""Everything a ranking decides before the first candidate runs: :func:`prepare` -> a :class:`Plan`.

    task        = load_task(dataset)                         what to score (hf_emms.tasks)
    rows        = subsample(task, max_samples)               the one budget: drawn once, recorded with every result
    candidates  = scan(ids, folders, tags...)                which checkpoints, each pinned once (hf_emms.hub)
    F-labels    = embed_labels(labels, encoders)             once, cached (hf_emms.labels)
    job         = prepare_job(rows, targets, settings)       inputs and targets checked once (hf_emms.features)

:mod:`.score` then scores one candidate of the plan at a time.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._timing import Phases
from .._version import __version__
from ..errors import HfEmmsError, InvalidInputError
from ..features.distributed import process_rank
from ..features.extract import Job, prepare_job
from ..features.groups import input_groups
from ..features.inputs import input_spec
from ..features.sampling import subsample
from ..hub import Candidate, Criteria, Rejected, RejectReason, parse_reference, scan
from ..paths import cache_root
from ..options import CandidateQuery, RankSpec
from ..records import DatasetInfo, RankingMeta, Row, RunConfig, TaskInfo
from ..results import ResultsStore
from ..solver.stats import N_FOLDS
from ..tasks import Task, check_distinct, check_group_column, check_media, load_task
from ..tasks.labels import dominated_target
from .notes import say, warn

__all__ = ["Plan", "candidate_criteria", "candidate_key", "display_name", "find_candidates", "distinct_names", "pin",
           "prepare", "recall_phase"]


@dataclass
class Plan:
    """A ranking, prepared: the task, the rows, the pinned candidates, the F-labels and the extraction job.

    Attributes
    ----------
    spec : RankSpec
    task : Task
    rows : ndarray of int
        Rows of ``task.dataset`` that are scored (the budget's draw, sorted).
    candidates : list of hub.Candidate or str
        In order: explicit Hub ids (references, pinned when their turn comes, so that stopping a ranking early
        touches no later candidate), then the pinned candidates kept by the scanner (folders, cache, Hub listing).
    skipped : list of Row
        Candidates left out before any extraction, with the reason.
    flabels : labels.FLabels or None
        None for one-hot labels.
    job : features.extract.Job
        The scored rows, targets and model settings, shared by every candidate.
    meta : RankingMeta
    store : ResultsStore
        Finished candidates' records (resumable runs).
    data_key : str
        The scored data's identity in record keys: the task's fingerprint and the rows.
    rank, world_size : int
        This process and the processes of the job (data-parallel extraction when > 1).
    """

    spec: RankSpec
    task: Task
    rows: np.ndarray
    candidates: list[Candidate]
    skipped: list[Row]
    flabels: Any
    job: Job
    meta: RankingMeta
    store: ResultsStore
    data_key: str
    rank: int = 0
    world_size: int = 1
    seen: dict[str, Candidate] = field(default_factory=dict)
    recalled: dict[str, tuple[float, str]] = field(default_factory=dict)
    names: dict[tuple[str, str], str] = field(default_factory=dict)  # where two would share a name (distinct_names)
    notes: list[str] = field(default_factory=list)  # what the person was told, also meta["notes"]

    @property
    def main_process(self) -> bool:
        """Whether this process writes (records, the saved ranking)."""
        return self.rank == 0

    @property
    def tables(self) -> Any:
        """Per-class F-label tables (classification with encoders), else None."""
        return self.flabels.tables if self.flabels is not None and self.task.kind == "classification" else None

    @property
    def members(self) -> list[str]:
        """Names of the F-label members, as the rows' ``emms_weights`` name them."""
        from ..labels import member_name

        return [member_name(m) for m in self.flabels.members] if self.flabels is not None else ["one-hot"]


def prepare(dataset: Any, candidates: Any, spec: RankSpec) -> Plan:
    """Load the task, draw the rows, pin the candidates, embed the labels and check the extraction job.

    Raises
    ------
    InvalidInputError
        Bad data or options, or no candidates at all (candidates that cannot be used are skipped rows instead).
    """
    data, query, run = spec.data, spec.query, spec.run
    phases = Phases()  # what the ranking pays once, before any candidate (rank(..., profile=True) reports it)
    notes: list[str] = []  # every line said to the person, kept with the ranking (meta["notes"])
    t = load_task(dataset, config=data.config, split=data.split, revision=data.revision, task=data.task,
                  label_column=data.label_column, input_column=data.input_column, token=run.token,
                  cache_dir=run.cache_dir)
    phases.lap("load_task")
    say(run.progress, f"data: {t.describe()}", notes)  # the columns read, and why: detection can pick the wrong one
    unfit = [m for m in ("hscore", "nce") if m in spec.score.metrics and t.kind != "classification"]
    if unfit:  # asked for, and no column would say why it is missing
        verb = "score" if len(unfit) > 1 else "scores"
        warn(notes, f"{' and '.join(unfit)} {verb} class labels only; this is a {t.kind} task, so the table has no "
                    f"{' or '.join(unfit)} column.")
    classes = t.kind == "classification"
    labels = np.asarray(t.dataset[t.label_column]) if classes else None  # the budget is stratified by class
    rows = subsample(len(t.dataset), data.max_samples, labels=labels, seed=data.seed)
    scored = t.dataset.select(rows) if len(rows) < len(t.dataset) else t.dataset
    drawn = None if len(rows) == len(t.dataset) else {
        "max_samples": data.max_samples, "seed": data.seed, "indices": rows.tolist()}
    check_group_column(t, data.group_column)
    if t.kind == "regression" and (dominated := dominated_target(scored[t.label_column], t.label_column)):
        warn(notes, dominated)  # every candidate would tie, and "add rows" would not be the fix
    # The copies of an input (and a group's rows) are held out together (features/groups.py): refuse too few distinct
    # inputs for the folds, and say how many rows repeat otherwise. The inputs are hashed once, here.
    groups = input_groups(scored, input_spec(scored, input_columns=t.input_columns, input_kind=t.input_kind),
                          np.arange(len(scored)), group_column=data.group_column)
    distinct = check_distinct(scored, t.input_columns, n_folds=N_FOLDS, distinct=groups.distinct)
    check_media(scored, t.input_columns, rows=rows)  # a broken image would otherwise fail inside every candidate
    if distinct < len(scored):
        say(run.progress, f"note: {len(scored) - distinct} of {len(scored)} scored rows repeat an input "
                          f"({distinct} distinct): the copies of an input are held out together, so no candidate "
                          "is scored on a copy of a row it was fitted on.", notes)
    phases.lap("budget")
    seen: dict[str, Candidate] = {}
    kept, skipped = find_candidates(candidates, modality=t.modality, query=query, token=run.token,
                                    progress=run.progress, seen=seen)
    if not kept and not skipped:
        raise InvalidInputError("no candidates: pass model ids or folders, tags=/pipeline_tag= to search the Hub, "
                                "or include_cache=True to rank what is already downloaded.")
    root = cache_root(run.cache_dir)
    phases.lap("scan")
    recalled: dict[str, tuple[float, str]] = {}
    if query.recall is not None:
        kept, recalled, left_out = recall_phase(kept, t, query.recall, cache_dir=run.cache_dir, progress=run.progress,
                                                notes=notes)
        skipped += left_out
        phases.lap("recall")
    flabels = _flabels(t, scored, spec, root)
    phases.lap("label_embeddings")
    targets = ({"label_column": t.label_column} if classes
               else {"label_embeddings": flabels.to_array()})
    job = prepare_job(
        scored, input_columns=t.input_columns, input_kind=t.input_kind, **targets, subsample=drawn,
        group_column=data.group_column, groups=groups,
        settings=spec.extract, cache_dir=root / "stats", allow_pickle=query.allow_pickle,
        trust_remote_code=query.allow_remote_code, progress=run.progress, profile=run.profile,
    )
    phases.lap("job")
    if data.group_column is not None:
        units = job.groups.units if job.groups is not None else len(scored)
        alone = job.groups.ungrouped if job.groups is not None else 0
        say(run.progress, f"folds: the {len(scored)} rows form {units} groups by {data.group_column!r} (and by input), "
                          "each held out whole" + (f"; {alone} rows without a {data.group_column!r} value are grouped "
                                                   "by their input alone." if alone else "."), notes)
    config = RunConfig(
        task=t.kind, input=t.input_column if len(t.input_columns) == 1 else list(t.input_columns),
        label=t.label_column, rows=len(scored), seed=data.seed,
        max_samples=data.max_samples, metrics=list(spec.score.metrics), max_length=spec.extract.max_length,
        prompt=spec.score.prompt, encoders=[e.to_dict() for e in flabels.encoders] if flabels is not None else [],
        score_rule="cv", hf_emms=__version__,
        layers=spec.extract.layers if isinstance(spec.extract.layers, str) else list(spec.extract.layers),
        extra={**({"box_format": spec.score.box_format} if t.kind == "boxes" else {}),
               **({"group_column": data.group_column} if data.group_column else {})},
    )
    meta = RankingMeta(
        dataset=DatasetInfo.from_dict({**t.source, "fingerprint": t.fingerprint, "rows_scored": len(scored),
                                       "rows_total": len(t.dataset), "distinct_inputs": distinct}),
        task=TaskInfo(kind=t.kind, modality=t.modality, input_kind=t.input_kind, input_columns=list(t.input_columns),
                      input_column=t.input_column, label_column=t.label_column,
                      classes=t.class_names),
        flabels=flabels.to_dict() if flabels is not None else {"members": ["one-hot"]},
        config=config, profile={"task": phases.as_dict()} if run.profile else None,
        extra={"notes": notes},  # the same list: the candidates' notes join it as they are scored
    )
    rank, world = process_rank()
    # Repeated inputs change the folds (features/groups.py): a score stored before they were grouped is not reused.
    grouped = f":groups={job.key_parts['fold_groups']}" if "fold_groups" in job.key_parts else ""
    return Plan(spec=spec, task=t, rows=rows, candidates=kept, skipped=skipped, flabels=flabels, job=job, meta=meta,
                store=ResultsStore(root / "results"), data_key=f"{t.fingerprint}:{_digest(rows)}{grouped}", rank=rank,
                world_size=world, seen=seen, recalled=recalled, names=distinct_names(kept), notes=notes)


def find_candidates(given: Any, *, modality: str, query: CandidateQuery, token: str | bool | None = None,
                    progress: bool = True, seen: dict[str, Candidate] | None = None,
                    ) -> tuple[list[Candidate | str], list[Row]]:
    """The candidates to score and the skipped ones as rows with their reason.

    Explicit Hub ids are returned as references, to be pinned by :func:`pin` when their turn comes, except before a
    recall phase (``query.recall``): there they are pinned now (one metadata request each, no weights), so that one
    of the wrong modality is skipped with its reason instead of taking a place on the short list, and recall sees
    their metadata. Folders, pinned candidates, the query's Hub listing and the cache are scanned now. ``seen``
    (weights digests of kept candidates) is shared with :func:`pin`, so repeated weights are caught across both
    steps."""
    if isinstance(given, (str, os.PathLike, Candidate)):  # one candidate, not a sequence of characters
        given = [given]
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
                skipped.append(Row.skipped(str(c), "neither a local checkpoint folder nor a Hub model id "
                                                   "(org/name[@revision])"))
    criteria = _criteria(modality, query)
    pin_now = ids if query.recall is not None else []
    kept: list[Candidate | str] = [] if pin_now else list(ids)
    if pin_now or folders or query.include_cache or query.tags or query.pipeline_tag:
        result = scan(ids=pin_now, tags=list(query.tags), pipeline_tag=query.pipeline_tag, sort=query.sort,
                      limit=query.limit, folders=folders, cache=query.include_cache, criteria=criteria, token=token,
                      progress=progress, seen=seen)
        kept += result.kept
        skipped += [_skipped(r) for r in result.rejected]
    for c in ready:
        problem = criteria.check(c)
        (skipped.append(_skipped(problem)) if problem else kept.append(c))
    return kept, skipped


def pin(plan: Plan, candidate: Candidate | str) -> Candidate | Row:
    """A candidate of the plan, pinned: a Hub reference resolved to its commit by the scanner (one metadata request,
    no weights), or the row saying why it cannot be ranked."""
    if isinstance(candidate, Candidate):
        return candidate
    result = scan(ids=[candidate], criteria=candidate_criteria(plan), token=plan.spec.run.token,
                  progress=False, seen=plan.seen)
    if not result.kept:
        return _skipped(result.rejected[0])
    kept = result.kept[0]
    if sum(_repo_of(c) == kept.model_id for c in plan.candidates) > 1:  # org/m@a and org/m@b: named apart
        plan.names[(kept.model_id, kept.revision)] = f"{kept.model_id}@{kept.revision[:12]}"
    return kept


def _repo_of(candidate: Candidate | str) -> str | None:
    """The Hub repo a candidate or a reference (``org/name@revision``) names; None for what names none."""
    if isinstance(candidate, Candidate):
        return None if candidate.path and candidate.source.value == "local" else candidate.model_id
    try:
        return parse_reference(candidate)[0]
    except HfEmmsError:
        return None


def recall_phase(candidates: list[Candidate | str], task: Task, k: int, *, cache_dir: Any = None,
                 progress: bool = True, notes: list[str] | None = None
                 ) -> tuple[list[Candidate | str], dict[str, tuple[float, str]], list[Row]]:
    """Phase one of a two-phase ranking: the ``k`` candidates the transfer space expects to transfer best.

    Returns the short list (in the candidates' order), each kept candidate's (recall score, the signal behind it)
    by :func:`candidate_key`, and a skipped row for every candidate left out. Without a space file (``hf-emms recall
    --build``) the space is the metadata prior alone, and the person is told so.
    """
    from ..recall import History, TransferSpace, default_space_path, shortlist

    path = default_space_path(cache_dir)
    if path.is_file():
        space = TransferSpace.load(path)
    else:
        say(progress, f"note: no transfer space at {path}: the recall phase uses the checkpoints' metadata alone "
                      "(build one from history with `hf-emms recall --build --history DIR`).", notes)
        space = TransferSpace.fit(History(messages=("no transfer space built",)))
    ranked, scores, reasons = shortlist(space, candidates, task, len(candidates))
    by_key = {candidate_key(c): (float(s), r) for c, s, r in zip(ranked, scores, reasons)}
    keep = {candidate_key(c) for c in ranked[:k]}
    left_out = [Row(model=display_name(c) if isinstance(c, Candidate) else c, status="skipped",
                    revision=getattr(c, "revision", None), params=getattr(c, "num_parameters", None),
                    recall=by_key[candidate_key(c)][0],
                    reason=f"not short-listed by recall (kept the top {k} of {len(candidates)}; "
                           f"{by_key[candidate_key(c)][1]})") for c in candidates if candidate_key(c) not in keep]
    say(progress, f"recall: short-listed {min(k, len(candidates))} of {len(candidates)} candidates before any "
                  "forward pass.", notes)
    return ([c for c in candidates if candidate_key(c) in keep],
            {key: value for key, value in by_key.items() if key in keep}, left_out)


def candidate_key(candidate: Candidate | str) -> str:
    """A candidate's identity before and after pinning: its model id (a Hub reference's id without the revision)."""
    return candidate.model_id if isinstance(candidate, Candidate) else str(candidate).partition("@")[0]


def candidate_criteria(plan: Plan) -> Criteria:
    """The filters every candidate of the plan must pass (modality, size, remote code, pickle)."""
    return _criteria(plan.task.modality, plan.spec.query)


def _criteria(modality: str, query: CandidateQuery) -> Criteria:
    return Criteria(modality=modality, max_params=query.max_params, allow_remote_code=query.allow_remote_code,
                    allow_pickle=query.allow_pickle)


def _skipped(r: Rejected) -> Row:
    name = (display_name(r.candidate) if r.candidate is not None
            else Path(r.reference).name if r.reason is RejectReason.BROKEN else r.reference)
    return Row.skipped(name, f"{r.reason.value}: {r.detail}", revision=getattr(r.candidate, "revision", None),
                       params=getattr(r.candidate, "num_parameters", None))


def display_name(candidate: Candidate, names: dict[tuple[str, str], str] | None = None) -> str:
    """What people call a candidate: its Hub id, or a local folder's name; ``names`` (:func:`distinct_names`) holds
    the ranking's choice where two candidates would share one."""
    chosen = (names or {}).get((candidate.model_id, candidate.revision))
    if chosen:
        return chosen
    if candidate.path and candidate.source.value == "local":
        return Path(candidate.model_id).name  # the folder given (its model may sit in a sentence-transformers 0_*/)
    return candidate.model_id


def distinct_names(candidates: list[Any]) -> dict[tuple[str, str], str]:
    """Names for candidates that would share one, keyed by (model id, revision): local folders with the same name
    (``run1/model``, ``run2/model``) get as much of their path as tells them apart; one repo at several revisions
    (two snapshots in the HF cache) gets ``org/name@<commit>``. Two rows called ``model``, and ``best: model``,
    named neither."""
    pinned = [c for c in candidates if isinstance(c, Candidate)]
    local = [c for c in pinned if c.path and c.source.value == "local"]
    names: dict[tuple[str, str], str] = {}
    for name in {Path(c.model_id).name for c in local}:
        group = [c for c in local if Path(c.model_id).name == name]
        if len(group) < 2:
            continue
        parts = [Path(c.model_id).parts for c in group]
        depth = 2
        while depth < max(map(len, parts)) and len({p[-depth:] for p in parts}) < len(group):
            depth += 1
        names.update({(c.model_id, c.revision): "/".join(p[-depth:]).lstrip("/") for c, p in zip(group, parts)})
    ids = [c.model_id for c in pinned if c not in local]
    names.update({(c.model_id, c.revision): f"{c.model_id}@{c.revision[:12]}" for c in pinned
                  if c not in local and ids.count(c.model_id) > 1})
    return names


def _flabels(t: Task, scored: Any, spec: RankSpec, root: Path) -> Any:
    from ..labels import default_encoders, embed_labels

    encoders, device, progress = spec.score.encoders, spec.extract.device, spec.run.progress
    boxes = _box_options(t, scored, spec.score.box_format) if t.kind == "boxes" else {}
    if encoders is None:  # no encoder: class identity (one-hot), or the numbers themselves
        if t.kind in ("regression", "boxes"):
            return embed_labels(scored[t.label_column], kind=t.kind, encoders=[], cache_dir=False, progress=False,
                                **boxes)
        if t.kind != "classification":
            raise InvalidInputError(f"a {t.kind} task needs F-label encoders (without them, class labels are one-hot "
                                    "and regression targets or boxes their own numbers); pass encoders= or leave the "
                                    "default.")
        return None
    specs = default_encoders(device) if encoders == "default" else list(encoders)
    if t.kind == "classification":
        return embed_labels(t.class_names, kind="classification", encoders=specs, prompt=spec.score.prompt,
                            cache_dir=root / "labels", device=device, progress=progress)
    return embed_labels(scored[t.label_column], kind=t.kind, encoders=specs, prompt=spec.score.prompt,
                        classes=t.class_names, cache_dir=root / "labels", device=device, progress=progress, **boxes)


def _box_options(t: Task, scored: Any, box_format: str) -> dict[str, Any]:
    """``box_format``, and each image's (width, height) when the boxes are in pixels (a coordinate above 1)."""
    from ..labels.kinds import boxes_in_pixels

    options: dict[str, Any] = {"box_format": box_format}
    if t.input_kind in ("image", "image-text") and boxes_in_pixels(scored[t.label_column]):
        options["image_sizes"] = [image.size for image in scored[t.input_columns[0]]]  # (width, height)
    return options


def _digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]
