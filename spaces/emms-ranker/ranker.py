"""What the emms-ranker Space does, without the UI: check a visitor's input against the Space's limits, detect the
dataset's columns, rank candidates one at a time (so the UI can show progress per candidate and stop between
candidates). Model-card pull requests are in ``card_prs.py``.

Every function here takes plain values and returns plain values or hf-emms objects; ``app.py`` only wires them to
gradio components. Errors are :class:`SpaceInputError` (an :class:`hf_emms.errors.InvalidInputError`) with a
message written for the person at the browser; other hf-emms errors pass through with their own messages.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hf_emms import Ranking, Task, iter_rank, load_task
from hf_emms.errors import InvalidInputError
from hf_emms.options import LAYERS, METRICS, SORTS, ExtractSpec, RankSpec, check_choice, check_choices
from space_cache import prune_caches
from space_limits import LIMITS, Limits, SpaceInputError

__all__ = [
    "DATA_SUFFIXES", "LIMITS", "METRIC_CHOICES", "SORTS", "Limits", "RankRequest", "SpaceInputError",
    "check_candidates", "check_dataset", "check_hub_size", "detect_columns", "for_visitor", "parse_list",
    "rank_candidates", "resolve_candidates",
]

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".zip")
METRIC_CHOICES = METRICS
# A Hub dataset id: "name" or "org/name", the characters the Hub allows; anything else (paths) is not an id.
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")




# ------------------------------------------------------------------------------------------------------ input
def parse_list(text: str | None) -> list[str]:
    """Entries separated by commas or new lines, stripped, empty ones and duplicates dropped (order kept)."""
    return list(dict.fromkeys(e.strip() for e in re.split(r"[,\n]", text or "") if e.strip()))


def _is_local(reference: str) -> bool:
    return reference.startswith((".", "/", "~")) or Path(reference).expanduser().exists()


def for_visitor(message: str, limits: Limits = LIMITS) -> str:
    """``message`` as a visitor should read it: the server's temporary folders (where uploads are copied) cut down to
    the file's name, and, where this Space refuses local paths, no advice to give one."""
    roots = {tempfile.gettempdir(), os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()}
    for root in sorted(roots, key=len, reverse=True):
        message = re.sub(re.escape(root.rstrip("/")) + r"/(?:[^\s'\",:;()]*/)?([^/\s'\",:;()]+)", r"\1", message)
    # The library's advice names keyword arguments; a visitor sets the form's fields instead.
    message = message.replace("Pass label_column=.", "Type the label column's name under 'Label column' and press "
                              "'Detect columns' again.")
    message = message.replace("Pass input_column=.", "Type the input column's name under 'Input column' and press "
                              "'Detect columns' again.")
    message = re.sub(r"Pass\s+input_column=\['([^']+)', '([^']+)'\]", r"Give '\1, \2' under 'Input column'",
                     message)
    if not limits.allow_local:
        message = (message.replace("neither a local checkpoint folder nor a Hub model id", "not a Hub model id")
                   .replace(", or pass a local folder", "").replace(" or a local folder", ""))
    return message


def _refuse_local(references: Sequence[str], what: str, limits: Limits) -> None:
    local = [r for r in references if _is_local(r)]
    if local and not limits.allow_local:
        raise SpaceInputError(f"{what} {local} look like paths on the server; this Space only reads the Hub "
                              f"(and uploads). Give Hub ids, or run the app on your own machine to use local folders.")


def check_dataset(hub_id: str | None, upload: str | None, limits: Limits = LIMITS) -> str:
    """The dataset to load: an uploaded file (checked for type and size) or a Hub id (or, where allowed, a path).

    Raises
    ------
    SpaceInputError
        Neither or both given, an upload too large or of an unknown type, a path where only Hub ids are allowed.
    """
    hub_id = (hub_id or "").strip()
    if upload and hub_id:
        raise SpaceInputError("give either a Hub dataset id or an uploaded file, not both: clear one of them.")
    if upload:
        size_mb = os.path.getsize(upload) / 2**20
        if size_mb > limits.max_upload_mb:
            raise SpaceInputError(f"the uploaded file is {size_mb:.1f} MB; this Space takes at most "
                                  f"{limits.max_upload_mb} MB (EMMS_SPACE_MAX_UPLOAD_MB). Upload a sample of it.")
        if not upload.lower().endswith(DATA_SUFFIXES):
            raise SpaceInputError(f"cannot read {Path(upload).name}: upload one of {', '.join(DATA_SUFFIXES)} "
                                  "(a .zip holds an image folder, one subfolder per class).")
        return upload
    if not hub_id:
        raise SpaceInputError("no dataset: enter a Hub dataset id (e.g. stanfordnlp/sst2) or upload a file.")
    _refuse_local([hub_id], "the dataset", limits)
    if not _is_local(hub_id) and not _HUB_ID.match(hub_id):
        raise SpaceInputError(f"{hub_id!r} is not a Hub dataset id: write it as org/name, e.g. stanfordnlp/sst2.")
    return hub_id


def check_hub_size(dataset: str, *, config: str | None = None, token: str | bool | None = None,
                   limits: Limits = LIMITS) -> None:
    """Refuse a Hub dataset whose data files for ``config`` exceed ``limits.max_dataset_mb``, before any download
    (an upload or a local path is sized elsewhere; a size the Hub cannot tell lets the load go on and fail or not).
    """
    from hf_emms.tasks.remote import hub_data_bytes

    if Path(dataset).exists():
        return
    size = hub_data_bytes(dataset, config=config or None, token=token)
    if size is not None and size > limits.max_dataset_mb * 2**20:
        which = f" (config {config!r})" if config else ""
        raise SpaceInputError(
            f"{dataset}{which} downloads {size / 2**20:,.1f} MB of data files; this Space reads at most "
            f"{limits.max_dataset_mb:,} MB of a Hub dataset (EMMS_SPACE_MAX_DATASET_MB), since the whole dataset is "
            f"downloaded to draw its samples. Pick a smaller config, upload a sample of it (up to "
            f"{limits.max_upload_mb} MB), or run hf-emms on your own machine: hf-emms rank {dataset} --max-samples 2000"
        )


def detect_columns(dataset: str, *, config: str | None = None, split: str | None = None,
                   token: str | bool | None = None, label_column: str | None = None,
                   input_column: str | Sequence[str] | None = None, fallback: bool = False,
                   limits: Limits = LIMITS) -> Task:
    """Load the dataset and detect its input and label columns and task (see :func:`hf_emms.load_task`); a Hub
    dataset past ``limits.max_dataset_mb`` is refused first (:func:`check_hub_size`).

    ``label_column`` and ``input_column`` (as the form gives them: one name, or two as "a, b") are used instead of
    detection where given. With ``fallback``, a failure with them is retried with everything detected (the form may
    hold the columns of an earlier dataset); when that fails too, the first error is raised: it names the visitor's
    own choice. Without it (ranking), the given columns must work.
    """
    check_hub_size(dataset, config=config, token=token, limits=limits)
    load = dict(config=config or None, split=split or None, token=token)
    given = {"label_column": label_column or None, "input_column": _columns(input_column)}
    if not any(given.values()):
        return load_task(dataset, **load)
    try:
        return load_task(dataset, **load, **given)
    except InvalidInputError as first:
        if not fallback:
            raise
        try:
            return load_task(dataset, **load)
        except InvalidInputError:
            raise first from None


def resolve_candidates(task: Task, *, ids: Sequence[str] = (), tags: Sequence[str] = (),
                       pipeline_tag: str | None = None, sort: str = "downloads", limit: int = 5,
                       token: str | bool | None = None, limits: Limits = LIMITS, shortlist: int = 0) -> list[str]:
    """The references to rank: the pasted ids and folders, then the models a Hub search finds.

    A search (``tags`` and/or ``pipeline_tag``) keeps models compatible with the task's input modality; the ones it
    leaves out are ranked too, so that each shows up as a skipped row with the pipeline's reason. With a
    ``shortlist``, there may be up to ``limits.max_recall`` of them (the recall phase picks the ones scored).

    Raises
    ------
    SpaceInputError
        Nothing to rank, more than ``limits.max_candidates`` (``max_recall`` with a shortlist), or local paths where
        they are not allowed.
    """
    from hf_emms.hub import Criteria, scan

    references = check_candidates(ids, limits, shortlist=shortlist)
    if tags or pipeline_tag:
        cap, variable = _candidate_cap(limits, shortlist)
        room = cap - len(references)
        if room < 1:
            raise SpaceInputError(f"{len(references)} pasted candidates already fill this Space's limit of "
                                  f"{cap} ({variable}): clear the search or some ids.")
        found = scan(tags=list(tags), pipeline_tag=pipeline_tag or None, sort=sort, limit=min(int(limit), room),
                     criteria=Criteria(modality=task.modality, max_params=limits.max_params), token=token,
                     progress=False)
        references += [c.reference for c in found.kept] + [r.reference for r in found.rejected]
    references = check_candidates(references, limits, shortlist=shortlist)
    if not references:
        raise SpaceInputError("no candidates: paste model ids (org/name, one per line) or search the Hub by tags or "
                              "pipeline tag" + (", or give local checkpoint folders." if limits.allow_local else "."))
    return references


def check_candidates(references: Sequence[str], limits: Limits = LIMITS, *, shortlist: int = 0) -> list[str]:
    """``references`` without duplicates, or SpaceInputError: more than the limit (``max_candidates``; with a
    ``shortlist``, ``max_recall``), or server paths where refused. Cheap: the Space runs it on the pasted ids before
    loading anything."""
    _refuse_local(references, "the candidates", limits)
    references = list(dict.fromkeys(references))
    if len(references) > limits.max_candidates and not shortlist:
        raise SpaceInputError(f"{len(references)} candidates; this Space ranks at most {limits.max_candidates} at a "
                              "time (EMMS_SPACE_MAX_CANDIDATES). Remove some, set a shortlist, or run `hf-emms rank` "
                              "on your machine.")
    if shortlist and len(references) > limits.max_recall:
        raise SpaceInputError(f"{len(references)} candidates; this Space short-lists from at most {limits.max_recall} "
                              "(EMMS_SPACE_MAX_RECALL). Remove some, or run `hf-emms rank --recall` on your machine.")
    return references


def _candidate_cap(limits: Limits, shortlist: int) -> tuple[int, str]:
    """How many candidates a request may name, and the variable that sets it."""
    return ((limits.max_recall, "EMMS_SPACE_MAX_RECALL") if shortlist
            else (limits.max_candidates, "EMMS_SPACE_MAX_CANDIDATES"))


DEFAULT_LAYERS = ExtractSpec.layers  # the package's default: what a visitor gets without touching the control


@dataclasses.dataclass(frozen=True)
class RankRequest:
    """One ranking as the visitor asked for it: the keyword arguments of :func:`hf_emms.rank` that the Space sets.

    ``encoders``: "default", None (one-hot labels: classification only) or a list of encoder ids/folders.
    ``shortlist``: K > 0 ranks in two phases (``rank(..., recall=K)``): the K candidates that transfer history and
    metadata expect to transfer best are kept before any weights are read, and only those are scored; 0 scores all.
    ``layers``: which hidden layers are read ("auto", "last", "all"; :mod:`hf_emms.features.layers`).
    ``group_column``: rows sharing its value are held out together (:class:`hf_emms.options.DataSpec`).
    """

    dataset: str
    config: str | None = None
    split: str | None = None
    label_column: str | None = None
    input_column: str | Sequence[str] | None = None
    encoders: Any = "default"
    max_samples: int = 500
    metrics: tuple[str, ...] = ("emms", "logme")
    seed: int = 0
    shortlist: int = 0
    layers: str = DEFAULT_LAYERS
    group_column: str | None = None

    def check(self, limits: Limits = LIMITS) -> RankRequest:
        """This request, or SpaceInputError naming the limit or choice it breaks."""
        if isinstance(self.shortlist, bool) or int(self.shortlist) != self.shortlist or self.shortlist < 0:
            raise SpaceInputError(f"shortlist {self.shortlist}: give how many candidates to keep before scoring (a "
                                  "whole number), or 0 to score every candidate.")
        if self.shortlist > limits.max_candidates:
            raise SpaceInputError(f"shortlist {self.shortlist}: this Space scores at most {limits.max_candidates} "
                                  "candidates (EMMS_SPACE_MAX_CANDIDATES); keep fewer.")
        if not 2 <= int(self.max_samples) <= limits.max_samples:
            raise SpaceInputError(f"sample budget {self.max_samples}: choose 2 to {limits.max_samples} samples "
                                  "(EMMS_SPACE_MAX_SAMPLES).")
        check_choices("metrics", self.metrics, METRIC_CHOICES, error=SpaceInputError)
        check_choice("layers", self.layers, LAYERS, error=SpaceInputError)
        if isinstance(self.encoders, (list, tuple)):
            _refuse_local(self.encoders, "the F-label encoders", limits)
        return self

    def kwargs(self) -> dict[str, Any]:
        """What to pass to :func:`hf_emms.rank` besides the candidates (and the token, cache and progress)."""
        return {"config": self.config or None, "split": self.split or None, "label_column": self.label_column or None,
                "input_column": _columns(self.input_column), "encoders": self.encoders,
                "max_samples": int(self.max_samples), "metrics": tuple(self.metrics), "seed": int(self.seed),
                "recall": int(self.shortlist) or None, "layers": self.layers,
                "group_column": (self.group_column or "").strip() or None}

    def spec(self, *, limits: Limits = LIMITS, token: str | bool | None = None,
             cache_dir: str | os.PathLike | None = None) -> RankSpec:
        """The run spec of this request under the Space's ``limits`` (the same spec ``rank()`` and the CLI build)."""
        return RankSpec.from_options(self.kwargs(), max_params=limits.max_params, token=token, cache_dir=cache_dir,
                                     progress=True)


def rank_candidates(request: RankRequest, references: Sequence[str], *, token: str | bool | None = None,
                    cache_dir: str | os.PathLike | None = None, limits: Limits = LIMITS) -> Iterator[Ranking]:
    """Rank ``references`` for the request one candidate at a time, yielding the ranking so far after each.

    One :func:`hf_emms.iter_rank` run: the dataset, the budget, the candidates' pins and the F-labels are prepared
    once, then each step scores one candidate, so the last ranking yielded is what :func:`hf_emms.rank` returns,
    and every finished candidate is in the results store: a stopped ranking resumes where it stopped. Progress:
    a tqdm bar over the candidates, and hf-emms's own bars per batch within each (the Space shows both).

    Yields
    ------
    Ranking
        Over the candidates done so far, skipped ones included with their reasons.
    """
    from tqdm.auto import tqdm

    request.check(limits)
    prune_caches(cache_dir=cache_dir, limits=limits)
    run = iter_rank(request.dataset, list(references), spec=request.spec(limits=limits, token=token,
                                                                         cache_dir=cache_dir))
    # Updated by hand, not iterated: gradio's tqdm tracking loses an iterated bar once bars open inside it.
    with tqdm(total=run.total, desc="candidates", unit="candidate") as bar:
        for _ in run:
            bar.update(1)
            yield run.ranking()


def _columns(value: str | Sequence[str] | None) -> str | list[str] | None:
    """The input column(s) as the form gives them: nothing (detect), one, or an ordered pair."""
    if not value:
        return None
    columns = [c.strip() for c in (value.split(",") if isinstance(value, str) else value) if c and c.strip()]
    return None if not columns else columns[0] if len(columns) == 1 else columns
