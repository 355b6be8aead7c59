"""Model-card annotation: put a ranking's EMMS scores into the candidates' Hub model cards, as ``model-index`` results.

For each scored Hub candidate of a :class:`~hf_emms.results.Ranking`, :func:`annotate` reads the card
(``README.md``) on the repo's ``main`` branch, adds one evaluation result to its ``model-index`` metadata and shows
the change as a unified diff; with ``create_pr=True`` it opens one pull request per model. Example::

    from hf_emms.cards import annotate          # (also importable as hf_emms.hub.cards)

    for change in annotate("hf-emms-results/sst2"):          # dry run: nothing is written
        print(change.model, change.status.value, change.reason or "")
        print(change.diff)
    annotate("hf-emms-results/sst2", create_pr=True)          # token from HF_TOKEN or `hf auth login`

The result added (what ``huggingface_hub.EvalResult`` describes)::

    - task: {type: text-classification, name: Text Classification}
      dataset: {name: stanfordnlp/sst2, type: stanfordnlp/sst2, config: default, split: train, revision: <sha>}
      metrics:
      - type: emms
        value: -0.4123
        name: EMMS transferability
        config: cv
        args: {model_revision: <sha>, encoders: [...], encoder_weights: {...}, score_rule: cv,
               samples: 2000, max_samples: 2000, seed: 0, dataset_fingerprint: ..., hf_emms: 0.1.0}

Merging: every other result and metadata field is kept; an earlier EMMS result for the same dataset (id, config,
split) is replaced, so re-running after a new ranking updates the score instead of stacking scores. Only the
card's ``model-index`` block is rewritten (the rest of the YAML keeps its formatting and comments), so the pull
request shows the one change it makes.

Why not ``huggingface_hub.metadata_update``: it reads the card again at push time (so the pushed text could differ
from the diff shown), merges by *appending* a result whose arguments differ (an earlier EMMS score would stay
beside the new one), and re-serialises the whole YAML block. Here the card is read once at a pinned commit, the
exact text shown is the text committed, and the pull request is opened from that commit (``parent_commit``).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, EvalResult, ModelCard
from huggingface_hub.errors import RemoteEntryNotFoundError

from .card_pr import encoder_name, is_local, pr_description
from .card_yaml import updated_card
from .errors import AnnotationError, CardFormatError, HfEmmsError, HubAccessError, HubError
from .hub.candidate import parse_reference
from .hub.remote import HubClient
from .hub.retry import RetryPolicy, call_hub
from .records import RankingMeta, Row
from .results import Ranking

__all__ = ["AnnotationError", "CardChange", "CardFormatError", "ChangeStatus", "METRIC_TYPE", "annotate",
           "emms_result", "load_ranking", "task_type", "updated_card"]

METRIC_TYPE = "emms"
METRIC_NAME = "EMMS transferability"
_CARD = "README.md"
_DIGITS = 4  # the score as cards show it: rankings differ in the 2nd-3rd decimal, the JSON keeps every digit
# Hub task ids (https://hf.co/tasks) for (input modality, label kind); "boxes" are referring expressions/detection.
_TASKS = {
    ("text", "classification"): "text-classification", ("text", "multilabel"): "text-classification",
    ("text", "regression"): "text-classification", ("text", "text"): "text-generation",
    ("image", "classification"): "image-classification", ("image", "multilabel"): "image-classification",
    ("image", "regression"): "image-classification", ("image", "text"): "image-to-text",
    ("image", "boxes"): "object-detection",
    ("audio", "classification"): "audio-classification", ("audio", "multilabel"): "audio-classification",
    ("audio", "regression"): "audio-classification", ("audio", "text"): "automatic-speech-recognition",
    ("image-text", "classification"): "visual-question-answering", ("image-text", "text"): "visual-question-answering",
    ("image-text", "multilabel"): "visual-question-answering", ("image-text", "regression"): "visual-question-answering",
}


class ChangeStatus(str, enum.Enum):
    """What happened to one model's card."""

    PROPOSED = "proposed"  # dry run: the diff is ready, nothing was written
    OPENED = "opened"  # a pull request was opened
    UNCHANGED = "unchanged"  # the card already holds exactly this result: nothing to propose
    NOT_ANNOTATED = "not-annotated"  # skipped in the ranking, or a local checkpoint: not a Hub card to annotate
    FAILED = "failed"  # the Hub refused or the card could not be merged: see ``reason``


@dataclasses.dataclass(frozen=True)
class CardChange:
    """The card change for one model of a ranking.

    Attributes
    ----------
    model : str
        The ranking's name for the model (a Hub id, or a local folder's name).
    status : ChangeStatus
    revision : str or None
        The commit that was scored.
    base : str or None
        The commit of ``main`` whose card was read; the pull request is opened from it.
    card : str or None
        The new ``README.md`` text (None when there is none to propose).
    diff : str
        Unified diff from the current card to ``card`` ("" when nothing changes).
    pr_url : str or None
        The pull request, once opened.
    reason : str or None
        Why a model was not annotated or failed; for a proposed change, a caveat (e.g. ``main`` moved since scoring).
    """

    model: str
    status: ChangeStatus
    revision: str | None = None
    base: str | None = None
    card: str | None = None
    diff: str = ""
    pr_url: str | None = None
    reason: str | None = None


def load_ranking(path: str | os.PathLike) -> Ranking:
    """The :class:`~hf_emms.results.Ranking` saved at ``path``: a ``ranking.json`` or the folder holding it."""
    path = Path(path).expanduser()
    file = path / "ranking.json" if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AnnotationError(f"{file} is not a ranking (not UTF-8 text); give the ranking.json that `hf-emms rank` "
                              "wrote.") from None
    except OSError as exc:
        raise AnnotationError(f"cannot read a ranking at {file}: {exc.strerror or exc}. Give the ranking.json that "
                              "`hf-emms rank` wrote, or the folder holding it.") from None
    try:
        return Ranking.from_json(text)
    except (ValueError, HfEmmsError) as exc:  # not JSON, or JSON of another shape
        raise AnnotationError(f"{file} is not a ranking ({exc}); give the ranking.json that `hf-emms rank` "
                              "wrote.") from None


def task_type(kind: str, modality: str) -> str:
    """The Hub task id for a label ``kind`` on ``modality`` inputs, e.g. ``("classification", "text")`` ->
    ``"text-classification"``; ``"feature-extraction"`` (text) or ``"<modality>-feature-extraction"`` otherwise."""
    default = "feature-extraction" if modality == "text" else f"{modality}-feature-extraction"
    return _TASKS.get((modality, kind), default)


def emms_result(meta: RankingMeta | dict[str, Any], row: Row | dict[str, Any]) -> EvalResult:
    """The ``EvalResult`` of one scored row of a ranking whose ``meta`` is what :func:`hf_emms.rank` records.

    The score travels with what makes it reproducible: the scored ``model_revision`` (the row's pinned revision),
    the F-label encoders, the score rule, the budget and seed, the dataset fingerprint and the hf-emms version.

    Raises
    ------
    AnnotationError
        The ranking's dataset is not a Hub dataset (a model-index result must name one), or its meta is incomplete.
    """
    meta, row = RankingMeta.from_dict(meta), Row.from_dict(row)
    _check_meta(meta)
    dataset, config = meta.dataset, meta.config
    kind = task_type(meta.task.kind, meta.task.modality)
    args = {
        "model_revision": row.revision,
        "emms_se": None if row.emms_se is None or row.emms_se != row.emms_se else round(float(row.emms_se), _DIGITS),
        "encoders": _encoder_names(meta),
        "encoder_weights": {name: round(float(w), 3) for name, w in (row.emms_weights or {}).items()},
        "score_rule": config.score_rule,
        "samples": dataset.rows_scored,
        "max_samples": config.max_samples,
        "seed": config.seed,
        "dataset_fingerprint": dataset.fingerprint,
        "hf_emms": config.hf_emms,
    }
    return EvalResult(
        task_type=kind, task_name=kind.replace("-", " ").title(),
        dataset_type=dataset.id, dataset_name=dataset.name or dataset.id,
        dataset_config=dataset.config, dataset_split=dataset.split, dataset_revision=dataset.revision,
        # + 0.0 turns the -0.0 of a perfect fit into 0.0.
        metric_type=METRIC_TYPE, metric_name=METRIC_NAME, metric_value=round(float(row.emms), _DIGITS) + 0.0,
        metric_config=config.score_rule, metric_args={k: v for k, v in args.items() if v is not None},
    )


def annotate(
    ranking: Ranking | str | os.PathLike,
    *,
    create_pr: bool = False,
    token: str | bool | None = None,
    models: Sequence[str] | None = None,
    retry: RetryPolicy = RetryPolicy(),
    progress: bool = True,
) -> list[CardChange]:
    """Propose (or, with ``create_pr``, open as pull requests) model-card changes adding each model's EMMS score.

    Parameters
    ----------
    ranking : Ranking, or path of a ``ranking.json`` or of the folder holding it
        Computed on a Hub dataset (the result must name its id).
    create_pr : bool, default False
        Open one pull request per changed card; by default nothing is written (dry run).
    token : str, bool or None
        Hub token: None uses ``HF_TOKEN`` or the ``hf auth login`` one. Never printed or stored.
    models : sequence of str, optional
        Only these models of the ranking (default: all).
    retry : RetryPolicy
        Timeout and retries of the reads; the commit opening a pull request is tried once (a retry could open two).
    progress : bool
        A progress bar over the models.

    Returns
    -------
    list of CardChange
        One per model of the ranking (or of ``models``), in ranking order.

    Raises
    ------
    AnnotationError
        Not a ranking, not a Hub dataset, or a name in ``models`` that the ranking does not hold.
    HubAccessError
        ``create_pr`` without a token.
    """
    from tqdm.auto import tqdm

    if not isinstance(ranking, Ranking):
        ranking = load_ranking(ranking)
    _check_meta(ranking.meta)
    rows = _rows(ranking, models)
    client = HubClient(token=token, retry=retry)
    if create_pr and not client.has_token:
        raise HubAccessError("opening pull requests needs a Hub token with write access: set HF_TOKEN or run "
                             "`hf auth login` (a dry run, without --create-pr, needs none).")
    changes = []
    for row in tqdm(rows, desc="model cards", unit="model", disable=not progress):
        reason = _not_annotated(row)
        if reason is not None:
            changes.append(CardChange(row.model, ChangeStatus.NOT_ANNOTATED, row.revision, reason=reason))
            continue
        result = emms_result(ranking.meta, row)
        try:
            change = _propose(client, row, result)
            if create_pr and change.status is ChangeStatus.PROPOSED:
                change = dataclasses.replace(change, status=ChangeStatus.OPENED,
                                             pr_url=_open_pr(client, change, ranking.meta, row, result))
        except (HubError, CardFormatError) as exc:
            change = CardChange(row.model, ChangeStatus.FAILED, row.revision, reason=str(exc))
        changes.append(change)
    return changes


# -------------------------------------------------------------------------------------------------- ranking rows
def _check_meta(meta: RankingMeta) -> None:
    dataset, task = meta.dataset, meta.task
    if not dataset.id:
        raise AnnotationError(
            f"the ranking was computed on {dataset.name or 'data'!r}, which is not a Hub dataset: a model "
            "card's model-index must name a Hub dataset id. Push the data to the Hub (datasets' push_to_hub), rank "
            "on its id, then annotate.")
    if not task.kind or not task.modality:
        raise AnnotationError("the ranking's meta has no task kind/modality: annotate rankings saved by hf-emms rank.")


def _rows(ranking: Ranking, models: Sequence[str] | None) -> list[Row]:
    rows = ranking.rows
    if models is None:
        return rows
    known = [r.model for r in rows]
    repos = {r.model: repo_of(r) for r in rows}  # a row named org/m@<commit> is wanted as org/m too
    unknown = [m for m in models if m not in known and m not in repos.values()]
    if unknown:
        raise AnnotationError(f"{unknown} not in the ranking; it holds {known}.")
    wanted = set(models)
    return [r for r in rows if r.model in wanted or repos[r.model] in wanted]


def _not_annotated(row: Row) -> str | None:
    if not row.ok:
        return f"skipped in the ranking: {row.reason or 'no reason recorded'}"
    if row.emms is None:
        return "no EMMS score in the ranking"
    return None if repo_of(row) else "a local checkpoint, not a Hub repo: there is no Hub card to annotate"


def repo_of(row: Row) -> str | None:
    """The Hub repo a row scored, or None for a local checkpoint.

    The pipeline names Hub candidates by their full "org/name" id (what the Hub reports, legacy ids included), with
    ``@<commit>`` when one repo was ranked at two revisions; a local checkpoint by its folder's name, or as much of
    its path as tells it from another folder of that name (``run1/model``): its revision, a content digest
    (``sha256:...``), is what says it is local, not the name.
    """
    if str(row.revision or "").startswith("sha256:"):
        return None
    try:
        repo_id, _ = parse_reference(row.model)
    except HfEmmsError:
        return None
    return repo_id if "/" in repo_id else None


def _encoder_names(meta: RankingMeta) -> list[str]:
    """The F-label encoders with their revision: ``id@commit`` for Hub models, ``name (local, sha256:...)`` for
    local folders; ``["one-hot"]`` when the ranking used none."""
    records = meta.encoders
    if not records:
        return list(meta.flabels.get("members") or ["one-hot"])
    names = []
    for r in records:
        revision = str(r.get("revision") or "")
        if is_local(r):
            names.append(f"{encoder_name(r)} (local, {revision[:19]})")
        else:
            names.append(f"{r['model']}@{revision[:12]}" if revision else r["model"])
    return names


# -------------------------------------------------------------------------------------------------- Hub reads and PRs
def _propose(client: HubClient, row: Row, result: EvalResult) -> CardChange:
    repo_id = repo_of(row) or row.model
    base = call_hub(lambda: client.api.model_info(repo_id, timeout=client.retry.timeout).sha,
                    what=f"model info of {repo_id}", policy=client.retry)
    old = call_hub(lambda: _read_card(client, repo_id, base), what=f"the card of {repo_id}", policy=client.retry)
    # A new model-index is named after the repo, as transformers' Trainer names it.
    new = updated_card(old, result, model_name=repo_id.split("/")[-1])
    try:
        ModelCard(new)  # what huggingface_hub's parser makes of the metadata, before anyone is shown a diff
    except ValueError as exc:
        raise CardFormatError(f"huggingface_hub cannot read the card's metadata ({exc}); fix the card first.") from None
    status = ChangeStatus.UNCHANGED if new == old else ChangeStatus.PROPOSED
    caveat = None
    if row.revision and row.revision != base:
        caveat = (f"scored at {row.revision[:12]}; main is now {base[:12]} (the result records the scored commit "
                  "in its args: re-rank if the weights changed)")
    diff = "" if new == old else "".join(difflib.unified_diff(
        _ending(old or "").splitlines(keepends=True), _ending(new).splitlines(keepends=True),
        fromfile=f"{repo_id}/{_CARD} @ {base[:12]}" if old is not None else "/dev/null",
        tofile=f"{repo_id}/{_CARD} (with EMMS)"))
    return CardChange(repo_id, status, row.revision, base, new, diff, reason=caveat)


def _read_card(client: HubClient, repo_id: str, revision: str) -> str | None:
    try:
        path = client.api.hf_hub_download(repo_id, _CARD, revision=revision, etag_timeout=client.retry.timeout)
    except RemoteEntryNotFoundError:
        return None
    return Path(path).read_text(encoding="utf-8-sig")


def _open_pr(client: HubClient, change: CardChange, meta: RankingMeta, row: Row, result: EvalResult) -> str | None:
    # The Hub's own check of the metadata (POST /api/validate-yaml) before anything is committed.
    try:
        call_hub(ModelCard(change.card).validate, what=f"validating the card of {change.model}", policy=client.retry)
    except ValueError as exc:  # HTTP 400: the Hub names what is wrong with the metadata
        raise CardFormatError(f"the Hub rejected the new card's metadata: {exc}") from None
    title = f"Add EMMS transferability score on {result.dataset_name}"
    info = call_hub(
        lambda: client.api.create_commit(
            change.model, [CommitOperationAdd(_CARD, change.card.encode("utf-8"))], commit_message=title,
            commit_description=pr_description(meta, row, result), create_pr=True, parent_commit=change.base),
        what=f"opening a pull request on {change.model}", policy=dataclasses.replace(client.retry, attempts=1),
    )
    return info.pr_url


def _ending(text: str) -> str:
    """Text ending with a newline (for display), so the diff's last line does not run into the next header."""
    return text if not text or text.endswith("\n") else text + "\n"
