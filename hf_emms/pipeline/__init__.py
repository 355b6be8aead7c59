"""``rank()``: dataset + candidates -> a :class:`~hf_emms.results.Ranking`, end to end; ``iter_rank()`` one row
at a time.

    plan = prepare(dataset, candidates, spec)           task, budget, pinned candidates, F-labels, job (.plan)
    for candidate in plan.candidates:
        part = extract_candidate(plan, candidate)       stored record, or pin -> extract (.score)
        row = finish_candidate(plan, part)              -> solve -> store (.score)

With ``RunSpec.overlap`` (off by default: measured, it does not pay; see there) the first half runs one candidate
ahead on a background thread, so a candidate's forward pass overlaps the previous one's solve (``score.Turns``).

A candidate that fails (gated, unsupported, broken weights, too large) becomes a skipped row with its reason; the
ranking goes on. Under ``accelerate launch``/``torchrun`` every process runs the same loop: extraction shards the
samples and sums the statistics, so all processes score the same numbers; only the main process writes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import HfEmmsError
from ..options import DEFAULT_METRICS, METRICS, CandidateQuery, DataSpec, ExtractSpec, RankSpec, RunSpec, ScoreSpec
from ..records import RankingMeta, Row
from ..results import Ranking
from .notes import say
from .plan import Plan, prepare
from .score import Prefetcher, Turns, finish_candidate

__all__ = ["METRICS", "RankRun", "iter_rank", "rank", "rank_spec"]  # METRICS: re-exported from hf_emms.options


def rank(
    dataset: Any,
    candidates: str | os.PathLike | Sequence[Any] | None = None,
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
    box_format: str = "xyxy",
    max_samples: int | None = 2000,
    seed: int = 0,
    group_column: str | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    batch_size: int = 32,
    max_length: int | None = None,
    output_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    allow_remote_code: bool = False,
    allow_pickle: bool = False,
    device: str | None = None,
    layers: str | Sequence[int] = ExtractSpec.layers,
    max_stats_memory: int | None = None,
    progress: bool = True,
    recall: int | None = None,
    profile: bool = False,
) -> Ranking:
    """Rank checkpoints by how well their features should transfer to ``dataset``, without fine-tuning any.

    Parameters
    ----------
    dataset : str, path, datasets.Dataset or datasets.DatasetDict
        A Hub dataset id, a local folder or file, or data already loaded (see :func:`hf_emms.tasks.load_task`).
    candidates : str, path, hub.Candidate or a sequence of them, optional
        Hub ids (``org/name`` or ``org/name@revision``) and local checkpoint folders; one alone is one candidate.
        With ``tags`` or ``pipeline_tag``, Hub models matching them are added (``sort``, ``limit``).
    config, split, revision, task, label_column, input_column, max_samples, seed, group_column :
        Which data and what to score (:class:`~hf_emms.options.DataSpec`). ``max_samples`` is the budget: a
        seeded subsample stratified by class (default 2,000; None scores every row). ``group_column``: rows sharing
        its value (a speaker, a patient, a document) are held out together in the cross-validation, as rows
        repeating an input always are.
    tags, pipeline_tag, sort, limit, include_cache, max_params, allow_remote_code, allow_pickle, recall :
        Which checkpoints (:class:`~hf_emms.options.CandidateQuery`): a Hub listing, the local HF cache (works
        offline), a size limit (from safetensors metadata, no download), opt-ins to repository code / pickles.
        ``recall=K`` short-lists K candidates from transfer history and metadata first (no forward pass; the
        space of :func:`hf_emms.recall.default_space_path`, built with ``hf-emms recall --build``) and scores only
        those; the others are rows saying so, and the ``recall`` column holds every phase-1 score.
    encoders, prompt, metrics, box_format :
        How to score (:class:`~hf_emms.options.ScoreSpec`). ``encoders``: "default" (CLIP/BERT/GPT-2 on a GPU with
        the Hub reachable, else all-MiniLM-L6-v2), a sequence of ids/folders/``labels.EncoderSpec``, or None for no
        encoder (class labels one-hot, regression targets and boxes their own numbers). ``metrics`` among "emms",
        "emms_official", "logme", "hscore", "nce" ("emms" always). ``box_format`` (``task="boxes"``): "xyxy"
        (corners), "xywh" (COCO) or "cxcywh"; pixel coordinates are divided by each image's size.
    batch_size, max_length, device, layers, max_stats_memory :
        Feature extraction (:class:`~hf_emms.options.ExtractSpec`): samples per forward pass (halved on
        out-of-memory), text truncation, device (default: what ``accelerate`` gives this process), the hidden
        layers read from the one forward pass ("auto": the last and up to 7 more, evenly spaced; "last"; "all";
        or indices, 0 = the embeddings' output, -1 = the last; see :mod:`hf_emms.features.layers`) and the bytes
        their statistics may take per candidate. With several layers ``emms`` is layer-aware (the layer chosen on
        training folds and scored on held-out ones, :mod:`hf_emms.solver.layerwise`); ``emms_last`` is the last
        layer's and ``best_layer`` says where the features read best.
    output_dir, cache_dir, token, progress, profile :
        :class:`~hf_emms.options.RunSpec`: write ``ranking.json/.csv/.md/.png`` to ``output_dir``; the cache root
        (default ``$HF_EMMS_CACHE`` or ``~/.cache/hf_emms``); a Hub token (never logged or stored); progress bars;
        ``profile=True`` times every phase of every candidate (:meth:`Ranking.profile`, :mod:`hf_emms.profile`).

    Returns
    -------
    Ranking
    """
    spec = RankSpec(
        data=DataSpec(config=config, split=split, revision=revision, task=task, label_column=label_column,
                      input_column=input_column, max_samples=max_samples, seed=seed, group_column=group_column),
        query=CandidateQuery(tags=tags, pipeline_tag=pipeline_tag, sort=sort, limit=limit, include_cache=include_cache,
                             max_params=max_params, allow_remote_code=allow_remote_code, allow_pickle=allow_pickle,
                             recall=recall),
        score=ScoreSpec(encoders=encoders, prompt=prompt, metrics=metrics, box_format=box_format),
        extract=ExtractSpec(batch_size=batch_size, max_length=max_length, device=device, layers=layers,
                            max_stats_memory=max_stats_memory),
        run=RunSpec(output_dir=output_dir, cache_dir=cache_dir, token=token, progress=progress, profile=profile),
    )
    return rank_spec(dataset, candidates, spec)


def rank_spec(dataset: Any, candidates: Sequence[Any] | None, spec: RankSpec) -> Ranking:
    """:func:`rank` with its settings as one :class:`~hf_emms.options.RankSpec` (what the CLI builds)."""
    run = iter_rank(dataset, candidates, spec=spec)
    for _ in run:
        pass
    ranking = run.ranking()
    if spec.run.output_dir is not None and run.plan.main_process:
        try:
            ranking.save(spec.run.output_dir)
        except OSError as exc:  # a full disk, a file in the way: the scores themselves are kept
            raise HfEmmsError(
                f"the ranking could not be written to {spec.run.output_dir} ({exc.strerror or exc}: "
                f"{exc.filename or ''}). Every scored candidate is kept in the results store: the same call again "
                "reloads them and writes the files (free space, or give another output_dir=)."
            ) from exc
    return ranking


def iter_rank(dataset: Any, candidates: Sequence[Any] | None = None, *, spec: RankSpec | None = None,
              **options: Any) -> RankRun:
    """Prepare a ranking now, then score one candidate per step of the iteration.

    Parameters
    ----------
    dataset, candidates :
        As for :func:`rank`.
    spec : RankSpec, optional
        The settings; or give them as :func:`rank`'s keywords in ``options`` (not both).

    Returns
    -------
    RankRun
        Iterate it for one :class:`~hf_emms.records.Row` per candidate (skipped ones first, then in order);
        ``run.ranking()`` is the table of the rows so far. Stop iterating to stop the work between candidates
        (finished ones are stored, so ranking again resumes).

    Examples
    --------
    >>> run = iter_rank("stanfordnlp/sst2", ["org/a", "org/b"], max_samples=500)
    >>> for row in run:
    ...     print(row.model, row.emms, f"{len(run.rows)}/{run.total}")
    >>> run.ranking().best
    """
    if spec is not None and options:
        raise TypeError("give spec= or rank()'s keyword options, not both.")
    spec = spec if spec is not None else RankSpec.from_options(options)
    with quiet_libraries(not spec.run.progress):
        plan = prepare(dataset, candidates, spec)
    return RankRun(plan)


class RankRun:
    """A prepared ranking, scored one candidate at a time by iterating it.

    Attributes
    ----------
    plan : pipeline.plan.Plan
    rows : list of Row
        The rows produced so far.
    total : int
        Rows the run will produce (skipped and scored candidates).
    meta : RankingMeta
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rows: list[Row] = []

    @property
    def total(self) -> int:
        return len(self.plan.skipped) + len(self.plan.candidates)

    @property
    def meta(self) -> RankingMeta:
        return self.plan.meta

    def __iter__(self) -> Iterator[Row]:
        if self.rows:
            raise RuntimeError("this run was iterated already; its rows are in .rows (call iter_rank again to re-run).")
        progress = self.plan.spec.run.progress
        for row in self.plan.skipped:
            self.rows.append(row)
            yield row
        n = len(self.plan.candidates)
        # The next candidates' downloads overlap this one's forward pass (RunSpec.prefetch).
        ahead = Prefetcher(self.plan) if self.plan.spec.run.prefetch and self.plan.main_process and n > 1 else None
        turns = Turns(self.plan)  # extraction, on a background thread when RunSpec.overlap says so
        try:  # a background extraction also runs between the turns: the libraries stay quiet for the whole run
            with quiet_libraries(not progress and turns.background):
                for i in range(n):
                    if ahead is not None and i:
                        ahead.advance()
                    with quiet_libraries(not progress):
                        row, stored = finish_candidate(self.plan, turns.extracted(i))
                    self.rows.append(row)
                    say(progress, f"[{i + 1}/{n}] {row.model}: " + (
                        f"skipped ({row.reason})" if not row.ok else f"done earlier (EMMS {row.emms})" if stored
                        else f"EMMS {row.emms:.4f} ({row.seconds:.1f} s)"))
                    yield row
        finally:  # also when the caller stops iterating early
            turns.stop()
            if ahead is not None:
                ahead.stop()

    def ranking(self) -> Ranking:
        """The table of the rows so far."""
        return Ranking(self.rows, self.plan.meta)


@contextlib.contextmanager
def quiet_libraries(quiet: bool):
    """With ``quiet``, transformers', huggingface_hub's and datasets' own progress bars (weight loading, downloads,
    dataset preparation) are off for the block, and back as they were after it."""
    import datasets
    import huggingface_hub.utils as hub_utils
    import transformers.utils.logging as tf_logging

    switches = [
        (tf_logging.is_progress_bar_enabled, tf_logging.disable_progress_bar, tf_logging.enable_progress_bar),
        (lambda: not hub_utils.are_progress_bars_disabled(), hub_utils.disable_progress_bars,
         hub_utils.enable_progress_bars),
        (datasets.is_progress_bar_enabled, datasets.disable_progress_bars, datasets.enable_progress_bars),
    ]
    before = [enabled() for enabled, _, _ in switches]
    if quiet:
        for _, disable, _ in switches:
            disable()
    try:
        yield
    finally:
        for was_on, (_, _, enable) in zip(before, switches):
            if quiet and was_on:
                enable()
