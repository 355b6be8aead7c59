"""emms-ranker: which checkpoint should you fine-tune on your dataset? A gradio 6 Space over ``hf_emms.rank``.

The UI only wires components to the functions of ``ranker.py`` (input checks, Space limits, ranking one candidate
at a time, model-card pull requests). ``python app.py`` runs it locally; on the Hub it runs as a Space, where
visitors sign in with ``gr.LoginButton`` (locally, a pasted token stands in). Tokens are passed to the Hub
calls and nowhere else: never printed, logged or kept after the request.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import gradio as gr
import huggingface_hub
import pandas as pd

import card_prs
import ranker
from hf_emms import Ranking
from hf_emms.errors import HfEmmsError

LIMITS = ranker.LIMITS
ON_SPACE = bool(os.environ.get("SPACE_ID"))  # gr.LoginButton needs the Space's OAuth; locally a token is pasted
if not LIMITS.use_server_token:
    # The visitor's token (or False) goes wherever hf-emms takes one, but not every download below it gets one (the
    # F-label encoders' do not), and huggingface_hub would send the server's own token there: forbid that here.
    huggingface_hub.constants.HF_HUB_DISABLE_IMPLICIT_TOKEN = True
TITLE = "Which checkpoint should you fine-tune? (EMMS)"


@contextlib.contextmanager
def _shown_as_message() -> Iterator[None]:
    """Turn hf-emms errors (bad input, unreachable repos, limits) into the message the visitor sees."""
    try:
        yield
    except HfEmmsError as exc:
        raise gr.Error(ranker.for_visitor(str(exc)), print_exception=False) from None


def _token(pasted: str | None, oauth: gr.OAuthToken | None) -> str | bool | None:
    """The visitor's token: from the Space sign-in, else pasted; the server's own only where the limits allow."""
    return LIMITS.token(oauth.token if oauth is not None else (pasted or "").strip() or None)


def _encoders(text: str | None) -> Any:
    """'default' (empty), 'none' (one-hot class labels) or a list of encoder ids."""
    names = ranker.parse_list(text)
    if not names or names == ["default"]:
        return "default"
    return None if [n.lower() for n in names] in (["none"], ["one-hot"]) else names


def detect(dataset_id: str, upload: str | None, config: str, split: str, pasted_token: str,
           label_column: str | None = None, input_column: str | None = None, group_column: str | None = None,
           oauth: gr.OAuthToken | None = None) -> tuple[str, Any, Any, Any]:
    """Load the dataset; show what was detected and offer every column as label and input, and the others (a text of
    a pair included) as the group column (kept when the new dataset has it).

    Columns already in the form are used where the dataset has them, so a dataset whose label or inputs cannot be
    detected (an image + question set labelled 'answer') is detected again once the visitor types them; columns left
    from an earlier dataset are dropped and the new one's detected instead."""
    token = _token(pasted_token, oauth)
    with _shown_as_message():
        source = ranker.check_dataset(dataset_id, upload)
        task = ranker.detect_columns(source, config=config, split=split, token=token, label_column=label_column,
                                     input_column=input_column, fallback=True)
    columns = task.dataset.column_names
    single = list(task.input_columns) if len(task.input_columns) == 1 else []  # one text of a pair may group
    others = [c for c in columns if c != task.label_column and c not in single]
    return (f"**Detected:** {task.describe()}. Change the columns below if they are wrong.",
            gr.Dropdown(choices=columns, value=task.label_column),
            gr.Dropdown(choices=_input_choices(columns, task), value=", ".join(task.input_columns)),
            gr.Dropdown(choices=others, value=group_column if group_column in others else None))


def _input_choices(columns: list[str], task: Any) -> list[str]:
    """Every column, and the detected pair as one choice ("a, b"): a pair is typed or picked as two names."""
    pair = [", ".join(task.input_columns)] if len(task.input_columns) > 1 else []
    return pair + columns


def run(dataset_id: str, upload: str | None, config: str, split: str, label_column: str | None,
        input_column: str | list[str] | None, ids: str, tags: str, pipeline_tag: str | None, sort: str, limit: float,
        max_samples: float, metrics: list[str], encoders: str, pasted_token: str, shortlist: float | None = 0,
        layers: str | None = None, group_column: str | None = None, oauth: gr.OAuthToken | None = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Iterator[tuple]:
    """Rank the candidates, yielding the table after each one (the Cancel button stops between candidates).

    ``shortlist`` K > 0: two phases, the recall phase keeps K of the candidates before any is loaded. ``layers``: the
    hidden layers read ("auto", "last", "all"; None: the package's default). ``group_column``: rows sharing its value
    are held out together in the cross-validation."""
    token = _token(pasted_token, oauth)
    with _shown_as_message():
        request = ranker.RankRequest(
            dataset=ranker.check_dataset(dataset_id, upload), config=config, split=split, label_column=label_column,
            input_column=input_column, encoders=_encoders(encoders), max_samples=int(max_samples),
            metrics=tuple(metrics or ("emms",)), shortlist=shortlist or 0, layers=layers or ranker.DEFAULT_LAYERS,
            group_column=group_column or None,
        ).check()
        # cheap checks before any download
        pasted = ranker.check_candidates(ranker.parse_list(ids), shortlist=request.shortlist)
        progress(0, desc="loading the dataset and finding candidates")
        task = ranker.detect_columns(request.dataset, config=config, split=split, token=token,
                                     label_column=label_column, input_column=input_column)
        references = ranker.resolve_candidates(task, ids=pasted, tags=ranker.parse_list(tags),
                                               pipeline_tag=pipeline_tag, sort=sort, limit=int(limit), token=token,
                                               shortlist=request.shortlist)
        # gradio copies each yielded file into its own cache, so the folder can go when the run ends or is cancelled.
        with tempfile.TemporaryDirectory(prefix="emms-ranking-") as out:
            rankings = ranker.rank_candidates(request, references, token=token)
            for done, ranking in enumerate(rankings, start=1):
                yield (_status(ranking, done, len(references), request.shortlist), *_outputs(ranking, out),
                       gr.Button(interactive=False), "")


def _status(ranking: Ranking, done: int, total: int, shortlist: int = 0) -> str:
    return _progress(ranking, done, total, shortlist) + _notes(ranking)


def _notes(ranking: Ranking) -> str:
    """What the ranking told its runner (repeated inputs, a target held by a few rows, a candidate tuned on this
    dataset, ...), as a list under the status; the detection line is shown by 'Detect columns' already."""
    notes = [n for n in ranking.meta.extra.get("notes") or () if not n.startswith("data:")]
    return "\n\n**Notes:**\n" + "\n".join(f"- {ranker.for_visitor(n)}" for n in notes) if notes else ""


def _progress(ranking: Ranking, done: int, total: int, shortlist: int = 0) -> str:
    if done < total:
        return f"Ranked {done} of {total} candidates..."
    ranked = f"**Done:** {total} candidate{'s' * (total != 1)} ranked"
    if not ranking.best:
        status = f"{ranked}; no candidate could be scored (reasons below)."
    elif ranking.warning:  # the leader is named with its caveat, never as a confident winner
        status = f"{ranked}; best: **{ranking.best}**, but ⚠️ **No clear winner.** {ranking.warning}"
    else:  # the best, and the candidates the folds cannot tell from it
        status = f"{ranked}; {ranking.verdict(markdown=True)}."
    if shortlist:
        status += (f"\n\n**Two phases:** recall short-listed the top {min(int(shortlist), total)} of {total} candidates "
                   "by transfer history and metadata, before reading any weights (column `recall`: phase one); "
                   "`emms` and the other scores are phase two, computed for the short list only. The others are "
                   "listed below as not short-listed.")
    return status


def _outputs(ranking: Ranking, directory: str) -> tuple:
    """Table, plot, skipped list, downloads and the ranking's JSON (kept for the model-card actions)."""
    files = ranking.save(directory)
    table = pd.read_csv(files["csv"], dtype=str, keep_default_na=False)
    skipped = ranking.df[ranking.df["status"] != "ok"]
    lines = [f"- **{m}**: {r}" for m, r in zip(skipped["model"], skipped["reason"])]
    return (table, str(files["plot"]), "\n".join(["**Skipped:**", *lines]) if lines else "",
            [str(files["csv"]), str(files["json"])], ranking.to_json())


def preview(ranking_json: str | None, pasted_token: str, oauth: gr.OAuthToken | None = None) -> tuple[str, Any]:
    """Dry run: the card diffs a pull request would carry; enables the button that opens them."""
    if not ranking_json:
        raise gr.Error("rank first: the preview shows the card changes for the ranking above.")
    with _shown_as_message():
        changes = card_prs.preview_cards(Ranking.from_json(ranking_json), token=_token(pasted_token, oauth))
    parts = []
    for c in changes:
        parts.append(f"#### {c.model}: {c.status.value}" + (f" ({c.reason})" if c.reason else ""))
        if c.diff:
            parts.append(f"```diff\n{c.diff}\n```")
    proposed = any(c.status.value == "proposed" for c in changes)
    return "\n\n".join(parts) or "No model to annotate.", gr.Button(interactive=proposed)


def open_prs(ranking_json: str | None, confirmed: bool, pasted_token: str, oauth: gr.OAuthToken | None = None,
             profile: gr.OAuthProfile | None = None) -> str:
    """Open the pull requests the preview showed; repos the visitor does not own need the confirmation ticked."""
    if not ranking_json:
        raise gr.Error("rank and preview first.")
    token = _token(pasted_token, oauth)
    with _shown_as_message():
        owned = card_prs.owned_namespaces(token, profile.username if profile is not None else None)
        changes = card_prs.open_pull_requests(Ranking.from_json(ranking_json), token=token or None, owned=owned,
                                            confirmed=confirmed)
    return "\n".join(f"- **{c.model}**: {c.status.value}" + (f" [{c.pr_url}]({c.pr_url})" if c.pr_url else "")
                     + (f" ({c.reason})" if c.reason else "") for c in changes)


def build_demo() -> gr.Blocks:
    local = " or local checkpoint folders" if LIMITS.allow_local else ""
    # Files handed to visitors (plots, downloads) are deleted from gradio's cache after an hour.
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            f"# {TITLE}\nEMMS (NeurIPS 2023) scores how well each candidate's features fit your labels, embedded by "
            "foundation text models, without fine-tuning anything. Higher is better.\n\n"
            f"Limits here: {LIMITS.max_candidates} candidates scored (a shortlist picks them from up to "
            f"{LIMITS.max_recall}), {LIMITS.max_samples} samples, "
            f"{LIMITS.max_upload_mb} MB uploads, Hub datasets up to {LIMITS.max_dataset_mb:,} MB, "
            f"{LIMITS.max_params / 1e6:.0f}M parameters per candidate."
        )
        if ON_SPACE:
            gr.LoginButton()
        token = gr.Textbox(label="Hugging Face token (optional: gated/private repos, pull requests; never stored)",
                           type="password", visible=not ON_SPACE)
        with gr.Row():
            dataset_id = gr.Textbox(label="Hub dataset id", placeholder="stanfordnlp/sst2")
            config = gr.Textbox(label="Config (optional)")
            split = gr.Textbox(label="Split (default: train)")
        upload = gr.File(label=f"...or upload a file ({', '.join(ranker.DATA_SUFFIXES)}; a .zip holds an image folder)",
                         file_types=list(ranker.DATA_SUFFIXES), type="filepath")
        with gr.Row():
            detect_button = gr.Button("Detect columns")
            task_info = gr.Markdown()
        with gr.Row():
            label_column = gr.Dropdown(label="Label column (detected when empty)", allow_custom_value=True)
            input_column = gr.Dropdown(label="Input column (detected when empty; two, in order, as 'a, b' for a text "
                                       "pair or an image and a text)", allow_custom_value=True)
            group_column = gr.Dropdown(label="Group column (optional): rows sharing its value, such as a speaker, "
                                       "a patient or a document, are held out together", allow_custom_value=True)
        ids = gr.Textbox(label=f"Candidates: Hub model ids (org/name or org/name@revision){local}, one per line",
                         lines=3)
        with gr.Row():
            tags = gr.Textbox(label="...and/or search the Hub: tags (comma-separated)")
            pipeline_tag = gr.Dropdown(["feature-extraction", "sentence-similarity", "text-classification",
                                        "image-classification", "image-feature-extraction", "audio-classification",
                                        "visual-question-answering", "image-text-to-text",
                                        "zero-shot-image-classification"],
                                       value=None, label="pipeline tag", allow_custom_value=True)
            sort = gr.Dropdown(list(ranker.SORTS), value="downloads", label="sort")
            limit = gr.Slider(1, max(LIMITS.max_candidates, LIMITS.max_recall), value=min(5, LIMITS.max_candidates),
                              step=1, label="limit" if LIMITS.max_recall <= LIMITS.max_candidates else
                              f"limit ({LIMITS.max_candidates}; up to {LIMITS.max_recall} with a shortlist)")
            shortlist = gr.Number(value=0, precision=0, minimum=0, label="Shortlist: keep the top K of the candidates "
                                  "by transfer history and metadata before scoring (no weights read); 0 = score all")
        with gr.Row():
            max_samples = gr.Slider(2, LIMITS.max_samples, value=min(500, LIMITS.max_samples), step=1,
                                    label="Sample budget (a seeded, class-stratified subsample)")
            metrics = gr.CheckboxGroup(list(ranker.METRIC_CHOICES), value=["emms", "logme"], label="Metrics")
            encoders = gr.Textbox(label="F-label encoders: 'default', 'none' (one-hot classes), or ids",
                                  value="default")
            layers = gr.Dropdown(list(ranker.LAYERS), value=ranker.DEFAULT_LAYERS,
                                 label="Layers read: 'auto' scores the layer chosen on training folds (emms) beside "
                                 "the last (emms_last); 'last' only the last")
        with gr.Row():
            rank_button = gr.Button("Rank", variant="primary")
            cancel_button = gr.Button("Cancel", variant="stop")
        status = gr.Markdown()
        table = gr.Dataframe(label="Ranking", interactive=False, wrap=True)
        plot = gr.Image(label="EMMS scores (with each F-label encoder's weight)", type="filepath")
        skipped = gr.Markdown()
        downloads = gr.File(label="Download (CSV, JSON)", file_count="multiple")
        ranking_json = gr.State()
        with gr.Accordion("Annotate model cards with these scores", open=False):
            preview_button = gr.Button("Preview card changes (dry run)")
            confirm = gr.Checkbox(label="I confirm opening pull requests on repos I do not own")
            open_button = gr.Button("Open pull requests", variant="primary", interactive=False)
            card_diffs = gr.Markdown()
            pr_result = gr.Markdown()

        gr.on([detect_button.click, dataset_id.submit, upload.upload], detect,
              [dataset_id, upload, config, split, token, label_column, input_column, group_column],
              [task_info, label_column, input_column, group_column], api_name="detect")
        ranking = rank_button.click(
            run, [dataset_id, upload, config, split, label_column, input_column, ids, tags, pipeline_tag, sort, limit,
                  max_samples, metrics, encoders, token, shortlist, layers, group_column],
            [status, table, plot, skipped, downloads, ranking_json, open_button, card_diffs], api_name="rank",
        )
        cancel_button.click(None, None, None, cancels=[ranking])
        preview_button.click(preview, [ranking_json, token], [card_diffs, open_button], api_name="preview")
        open_button.click(open_prs, [ranking_json, confirm, token], pr_result, api_name="open_prs")
    return demo.queue(default_concurrency_limit=LIMITS.concurrency, max_size=LIMITS.queue_size)


demo = build_demo()


def launch(**kwargs: Any) -> Any:
    """``demo.launch`` with the Space's upload limit (tests pass ``prevent_thread_lock``, ``server_name``)."""
    return demo.launch(max_file_size=f"{LIMITS.max_upload_mb}mb", **kwargs)


if __name__ == "__main__":
    launch()
