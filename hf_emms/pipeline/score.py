"""One candidate of a :class:`~.plan.Plan` -> one :class:`~hf_emms.records.Row`: from its stored record, or
extracted, scored and stored (atomically: an interrupted ranking resumes at the next candidate)."""

from __future__ import annotations

import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from .._timing import Phases
from ..errors import HfEmmsError
from ..features.cache import CACHE_FORMAT
from ..features.candidate import fetch_files
from ..features.extract import run_candidate
from ..hub import Candidate, scan
from ..hub.candidate import card_lists_dataset
from ..records import Row
from ..results import record_key
from ..solver.scores import SCORES_FORMAT
from ..features.layers import UPPER
from ..features.record import Extraction
from .notes import say
from .plan import Plan, candidate_criteria, candidate_key, display_name, pin

_CUT_SHARE = 0.1  # a note when this share of the samples was truncated at a candidate's token limit


@dataclass
class Extracted:
    """A candidate between its two halves: its final row already (from the results store, or skipped), or its
    statistics waiting for the solver."""

    given: Candidate | str  # as the plan lists it (the recall phase's key)
    candidate: Candidate | None = None  # pinned
    row: Row | None = None
    stored: bool = False
    key: str = ""
    extraction: Extraction | None = None
    phases: Phases = field(default_factory=Phases)
    start: float = 0.0


def extract_candidate(plan: Plan, candidate: Candidate | str) -> Extracted:
    """A candidate's first half: pin, look the candidate up in the results store, extract its
    statistics (or the skipped row that says why not). Touches the plan's pinning state; run it on one thread at a
    time, in the candidates' order."""
    start = time.perf_counter()
    phases = Phases()  # seconds by phase: kept with the row when profiling (rank(..., profile=True))
    given = candidate
    candidate = pin(plan, candidate)
    phases.lap("pin")
    if isinstance(candidate, Row):
        return Extracted(given, row=candidate)
    key = _key(plan, candidate)
    record = plan.store.get(key)
    phases.lap("results_io")
    if record is not None:
        row = Row.from_dict({**record["row"], "model": display_name(candidate, plan.names)})  # this ranking's name
        return Extracted(given, candidate, row=row, stored=True)
    try:
        mode = "data-parallel" if plan.world_size > 1 else "single"
        with phases("extraction"):
            extraction = run_candidate(plan.job, candidate, rank=plan.rank, world_size=plan.world_size, mode=mode)
        spent, timings = phases.seconds.pop("extraction"), extraction.record.timings
        phases.merge(timings)  # resolve, load, tokenizer, preprocess, forward, pooling, statistics
        phases.add("extraction_other", max(spent - sum(timings.values()), 0.0))  # outside run_candidate's phases
    except Exception as exc:  # noqa: BLE001 - one candidate's failure must not end the ranking
        return Extracted(given, candidate, row=_skipped(candidate, exc, plan.names))
    return Extracted(given, candidate, key=key, extraction=extraction, phases=phases, start=start)


def finish_candidate(plan: Plan, extracted: Extracted) -> tuple[Row, bool]:
    """A candidate's second half: its row, and whether it came from the results store (computed earlier); every
    metric from the statistics, the row stored.

    Together with :func:`extract_candidate`: a candidate that fails (not found, gated, broken weights, an
    architecture that cannot run these inputs, ...) is a skipped row with the reason; nothing else is raised for it.
    """
    row, stored = extracted.row, extracted.stored
    if row is None:
        row = _solve(plan, extracted)
    recalled = plan.recalled.get(candidate_key(extracted.given))
    if recalled is not None:  # phase one's number beside phase two's
        row.recall = recalled[0]
        row.extra["recall_signal"] = recalled[1]
    return row, stored


def prefetch(plan: Plan, candidate: Candidate | str) -> None:
    """Download the files of the candidate due next into the HF cache, meant to run on a background thread while
    the current candidate is scored (``RunSpec.prefetch``, :class:`Prefetcher`): its turn then finds them there.

    Only what its turn would fetch anyway: nothing for a local folder or a candidate the results store already holds,
    and, for a Hub reference, nothing unless the scanner would keep it (checked on its own, without the plan's shared
    duplicate index, so this thread changes nothing of the plan). Any failure is left for the candidate's own turn
    to report as its skipped row; nothing is raised here.
    """
    try:
        if isinstance(candidate, str):
            result = scan(ids=[candidate], criteria=candidate_criteria(plan), token=plan.spec.run.token,
                          progress=False, dedupe=False)
            if not result.kept:
                return
            candidate = result.kept[0]
        if candidate.path is not None:
            return
        if plan.store.get(_key(plan, candidate)) is not None:
            return
        query = plan.spec.query
        fetch_files(candidate, allow_pickle=query.allow_pickle, trust_remote_code=query.allow_remote_code, quiet=True)
    except Exception:  # noqa: BLE001 - an early fetch is only a head start; the candidate's turn reports any failure
        return


class Prefetcher:
    """Fetches the plan's candidates after the first, in order, on one background thread (:func:`prefetch`), at
    most ``ahead`` candidates ahead of the one being scored: the network stays busy while the CPU or GPU scores,
    and a ranking stopped early has fetched at most ``ahead`` candidates it did not use.

    Call :meth:`advance` when the next candidate's turn starts and :meth:`stop` when the ranking ends.
    """

    def __init__(self, plan: Plan, *, ahead: int = 2) -> None:
        self._plan, self._turns, self._stopped = plan, threading.Semaphore(ahead), threading.Event()
        threading.Thread(target=self._run, name="hf-emms-prefetch", daemon=True).start()

    def _run(self) -> None:
        for candidate in self._plan.candidates[1:]:
            self._turns.acquire()
            if self._stopped.is_set():
                return
            prefetch(self._plan, candidate)

    def advance(self) -> None:
        self._turns.release()

    def stop(self) -> None:
        self._stopped.set()
        self._turns.release()


class Turns:
    """The candidates' first halves (:func:`extract_candidate`), in order: on the calling thread, or, when
    :func:`overlaps` says so, on one background thread running one candidate ahead, so that candidate i + 1's
    forward pass runs while candidate i is solved and stored (:func:`finish_candidate`, on the calling thread).

    Call :meth:`extracted` for i = 0, 1, ... and :meth:`stop` when the ranking ends: an extraction already running
    then finishes (its statistics reach the cache) and no other starts. The thread is a daemon: a process
    interrupted mid-ranking (Ctrl-C) exits without waiting for its forward pass (every cache write is atomic).
    """

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self.background = overlaps(plan)
        self._done: queue.Queue = queue.Queue()  # (Extracted, None) or (None, the exception it raised)
        self._turns, self._stopped = threading.Semaphore(0), threading.Event()
        if self.background:
            threading.Thread(target=self._run, name="hf-emms-extract", daemon=True).start()

    def _run(self) -> None:
        for i, candidate in enumerate(self._plan.candidates):
            if i:
                self._turns.acquire()  # candidate i starts when candidate i - 1 has been handed over
            if self._stopped.is_set():
                return
            try:
                self._done.put((extract_candidate(self._plan, candidate), None))
            except BaseException as exc:  # noqa: BLE001 - raised again on the calling thread, where it belongs
                self._done.put((None, exc))
                return

    def extracted(self, i: int) -> Extracted:
        """Candidate i's first half (i counts up from 0, one step per call)."""
        if not self.background:
            return extract_candidate(self._plan, self._plan.candidates[i])
        done, exc = self._done.get()
        self._turns.release()  # the next candidate's extraction starts now, while this one is solved
        if exc is not None:
            raise exc
        return done

    def stop(self) -> None:
        self._stopped.set()
        self._turns.release()


def overlaps(plan: Plan) -> bool:
    """Whether the plan's extractions run on a background thread: when ``RunSpec.overlap`` asks for it, never with
    several processes (their collectives stay on one thread) or fewer than two candidates."""
    return plan.spec.run.overlap and plan.world_size == 1 and len(plan.candidates) >= 2


def _solve(plan: Plan, extracted: Extracted) -> Row:
    candidate, extraction, phases = extracted.candidate, extracted.extraction, extracted.phases
    try:
        row = Row.from_dict({"model": display_name(candidate, plan.names), **scores(extraction, plan, phases)})
    except Exception as exc:  # noqa: BLE001 - one candidate's failure must not end the ranking
        return _skipped(candidate, exc, plan.names)
    row.revision, row.params = candidate.revision, candidate.num_parameters
    data = plan.meta.dataset
    seen = card_lists_dataset(candidate, data.id, data.config)
    if seen:  # said beside the score: a candidate tuned on these very rows scores as if it generalised to them
        row.extra["card_lists_dataset"] = seen
        if plan.main_process:
            say(plan.spec.run.progress, f"note: {row.model}: its card names this dataset ({seen}): it was likely "
                                        "fine-tuned on it, so its features have seen these rows and its score can be "
                                        "optimistic. Judge it on data it was not trained on.", plan.notes)
    row.width, row.n_samples = extraction.stats.dim, extraction.stats.n
    cut, limit = extraction.record.n_at_max_length, extraction.record.max_length
    if cut and plan.main_process and cut >= _CUT_SHARE * max(row.n_samples, 1):  # it read less of them than others may
        policy = extraction.record.max_length_policy or ""
        hard = "capped" in policy or "model_max_length" in policy or "max_position_embeddings" in policy
        say(plan.spec.run.progress, f"note: {row.model}: {cut} of {row.n_samples} samples filled its {limit}-token "
                                    "limit and were cut (" + ("the model reads no more)." if hard else
                                                              "max_length raises it, up to the model's own limit)."),
            plan.notes)
    if ("nce" in plan.spec.score.metrics and plan.task.kind == "classification" and row.nce is None
            and plan.main_process):  # asked for, and the blank cell would not say why
        say(plan.spec.run.progress, f"note: {row.model}: no NCE: it compares the checkpoint's own classifier head "
                                    "(config.json id2label) with your labels, and this checkpoint has none.",
            plan.notes)
    row.seconds = time.perf_counter() - extracted.start  # stored with the row: a resumed ranking shows it too
    phases.add("idle", max(row.seconds - phases.total, 0.0))  # what no phase accounts for
    if plan.main_process:
        with phases("results_io"):  # the record's write comes after the row's seconds (it holds them)
            try:
                plan.store.put(extracted.key, {
                    "key": extracted.key, "row": row.to_dict(), "config": plan.meta.config.to_dict(),
                    "extraction": extraction.record.to_dict(), "dataset": plan.meta.dataset.to_dict()})
            except OSError as exc:  # a store that cannot be written costs resuming this candidate, not the ranking
                warnings.warn(f"hf-emms could not store the record of {row.model} under {plan.store.root} "
                              f"({type(exc).__name__}: {exc}); the ranking goes on, and a re-run scores this "
                              "candidate again. Free disk space or choose another cache_dir.", stacklevel=2)
    if plan.spec.run.profile:
        row.phases = phases.as_dict()
    return row


def _skipped(candidate: Candidate, exc: Exception, names: dict[tuple[str, str], str] | None = None) -> Row:
    """The skipped row of a candidate whose extraction or scoring raised ``exc``."""
    if isinstance(exc, HfEmmsError):
        reason = str(exc)
    else:  # an unforeseen failure: named, and asked to be reported
        first = (str(exc).strip().splitlines() or [""])[0]
        reason = f"unexpected {type(exc).__name__} while scoring: {first} (please report it)"
    return Row.skipped(display_name(candidate, names), reason, revision=candidate.revision,
                       params=candidate.num_parameters)


def _key(plan: Plan, candidate: Candidate) -> str:
    """The results-store key of a pinned candidate in this plan (its commit, the data, the run's configuration, and
    the formats of the features' and the scores' rules: a score stored under older pooling rules, or with an older
    standard error, is scored again)."""
    return record_key(candidate.model_id, candidate.revision, plan.data_key,
                      {**plan.meta.config.to_dict(), "features_format": CACHE_FORMAT, "scores_format": SCORES_FORMAT})


def scores(extraction: Extraction, plan: Plan, phases: Phases | None = None) -> dict[str, Any]:
    """Every metric the plan asks for, from one candidate's statistics (the solver: microseconds to seconds); each
    metric's seconds go to ``phases`` as ``solver:<metric>``.

    With several layers (:mod:`hf_emms.features.layers`) ``emms`` is the layer-aware score
    (:mod:`hf_emms.solver.layerwise`: among the single layers and the mean of the upper ones, the choice made on
    training folds, scored on held-out ones), ``emms_last`` the last layer's, ``best_layer`` where the features read
    best. The variants the dev benchmark compared go with the row (not the table): ``emms_nested`` (the default,
    equal to ``emms``), ``emms_layer`` (single layers only), ``emms_layer_1se`` (the same, switching from the last
    layer only when the folds support it by one SE) and ``emms_upper`` (the fixed mean of the upper layers). The
    baselines read the last layer; with layers read, ``logme_layer`` and ``hscore_layer`` (row extras) are the same
    baselines on the layer the layer-aware EMMS chose (``best_layer``): one more solve each, no choice of their own
    (LogME and H-score have no held-out folds to make one honestly).
    """
    from ..solver import emms_reference, hscore, logme, nce
    from ..solver.layerwise import emms_layerwise

    phases = phases or Phases()
    stats = extraction.stats
    metrics, tables = plan.spec.score.metrics, plan.tables
    classes = plan.task.kind == "classification"
    layers = extraction.by_layer()
    last = "last" if not extraction.layers else str(extraction.record.n_layers)
    singles = [k for k in layers if k != UPPER]
    with phases("solver:emms"):  # the one-hot control shares the last layer's eigensystems
        lw = emms_layerwise(layers, tables, last=last, control=classes and tables is not None)
    result, control = lw.result, lw.control
    out: dict[str, Any] = {"emms": result.score, "emms_se": result.se, "emms_last": lw.last.score,
                           "emms_weights": dict(zip(plan.members, map(float, result.weights))),
                           "folds": {"scores": result.fold_scores.tolist(), "sizes": result.fold_sizes.tolist(),
                                     "null": result.null_fold_scores.tolist()}}
    if extraction.record.n_layers is not None:  # layers were read (a one-layer model: every variant is its score)
        out["best_layer"] = lw.best_layer
        out["layer_scores"] = {key: r.score for key, r in lw.per_layer.items()}
        upper = [UPPER] if UPPER in layers else [last]  # one upper-half layer: their mean is the last layer
        for name, keys in (("emms_layer", singles), ("emms_nested", list(layers)), ("emms_upper", upper)):
            out[name] = lw.among(keys).score
        out["emms_layer_1se"] = lw.among(singles, margin=1.0).score
    if control is not None:
        out["emms_one_hot"] = control.score  # the control: what class identity alone gives
    if "emms_official" in metrics:
        with phases("solver:emms_official"):
            out["emms_official"] = emms_reference(stats, tables).score
    if "logme" in metrics:
        with phases("solver:logme"):
            out["logme"] = logme(stats)
    if "hscore" in metrics and classes:
        with phases("solver:hscore"):
            out["hscore"] = hscore(stats, shrinkage=True)
    if extraction.record.n_layers is not None:
        chosen = layers[lw.best_layer]
        for name, wanted, fn in (("logme", "logme" in metrics, logme),
                                 ("hscore", "hscore" in metrics and classes, lambda s: hscore(s, shrinkage=True))):
            if wanted:
                with phases(f"solver:{name}"):
                    out[f"{name}_layer"] = out[name] if lw.best_layer == last else fn(chosen)
    if stats.n_source_classes is not None and "nce" in metrics:
        with phases("solver:nce"):
            out["nce"] = nce(stats)
    return out
