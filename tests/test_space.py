"""The emms-ranker Space (spaces/emms-ranker): launched on 127.0.0.1, pointed at the local Hub server holding a
dataset and tiny candidates, and driven as visitors drive it, through gradio_client and through a real headless
Chromium. Its ranking must equal ``hf_emms.rank`` on the same input (computed independently, in another cache);
bad input and the Space's limits must come back as messages naming the problem; Cancel must stop the work, not
just the display; rankings queue one at a time; card pull requests need a dry run first, a token, and a
confirmation for other people's repos, and merge an existing ``model-index``; a pasted token is never printed or
written to disk, and a public Space never sends its owner's token nor reads its own disk for a visitor. An image +
question -> answer upload is ranked in the browser with tiny ViLT- and CLIP-like candidates (a text-only one skipped
with its reason), and a shortlist of K ranks in two phases as ``rank(..., recall=K)`` does, reading only K candidates.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import _tiny_models
import hf_emms

SPACE = Path(__file__).resolve().parents[1] / "spaces" / "emms-ranker"
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "hf_space_test_token_7c1e"  # any string opens PRs on the local Hub; it must never reach a log or a file
# Limits small enough for the tests to cross them (read by the Space at import).
LIMITS = {"EMMS_SPACE_MAX_CANDIDATES": "3", "EMMS_SPACE_MAX_SAMPLES": "100", "EMMS_SPACE_MAX_UPLOAD_MB": "1",
          "EMMS_SPACE_MAX_RECALL": "5"}
CARD = """---
license: mit
model-index:
- name: acme/small
  results:
  - task: {type: text-classification}
    dataset: {name: other/data, type: other/data}
    metrics:
    - {type: accuracy, value: 0.91}
---
# small
"""


def _csv(n: int = 45) -> str:
    """Three topics, repeated words: a text classification task the tiny BERTs can tell apart a little."""
    rng = np.random.default_rng(0)
    words = {"sports": "goal match team coach", "cooking": "oven recipe garlic soup", "weather": "rain storm snow wind"}
    lines = []
    for i in range(n):
        label = list(words)[i % 3]
        a, b = rng.choice(words[label].split(), 2, replace=False)
        lines.append(f"a photo of a {a} and {b},{label}")
    return "text,label\n" + "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("space-tiny")
    return {name: _tiny_models.bert(root / name, hidden=h, seed=s)
            for name, h, s in (("small", 32, 1), ("wide", 64, 2), ("third", 32, 4), ("encoder", 32, 3))}


def _load_app(mp: pytest.MonkeyPatch):
    """A fresh import of the Space's app.py (and ranker.py, whose limits are read from the environment then)."""
    mp.syspath_prepend(str(SPACE))
    for module in ("ranker", "card_prs", "space_limits", "space_cache"):
        sys.modules.pop(module, None)
    spec = importlib.util.spec_from_file_location("emms_ranker_app", SPACE / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """The Space's app module, launched; yields (module, url). Its results store is a folder of its own."""
    cache = tmp_path_factory.mktemp("space-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        mp.setenv("HF_EMMS_CACHE", str(cache))
        for name, value in LIMITS.items():
            mp.setenv(name, value)
        app = _load_app(mp)
        _, url, _ = app.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        yield app, url, cache
        app.demo.close()


@pytest.fixture
def hub(hub_server, tiny):
    """The local Hub with the dataset, two candidates, a gated one, a third one and the F-label encoder."""
    hub_server.add_dataset("acme/topics", {"train.csv": _csv()})
    hub_server.add_model("acme/small", tiny["small"], files={"README.md": CARD})
    for name in ("wide", "third", "encoder"):
        hub_server.add_model(f"acme/{name}", tiny[name])
    hub_server.add_model("acme/gated", tiny["small"], gated=True)
    return hub_server


def _client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


# The Space's /rank inputs, in order, for the dataset and candidates below; tests override some.
def _rank_args(**changes):
    args = dict(dataset_id="acme/topics", upload=None, config="", split="", label_column=None, input_column=None,
                ids="acme/small\nacme/wide\nacme/gated", tags="", pipeline_tag=None, sort="downloads", limit=3,
                max_samples=40, metrics=["emms", "logme", "hscore"], encoders="acme/encoder", token="")
    args.update(changes)
    return list(args.values())


def _reference(tmp_path, dataset="acme/topics", candidates=("acme/small", "acme/wide", "acme/gated"), **changes):
    """hf_emms.rank on the Space's input (as _rank_args gives it), in a cache of its own: nothing is shared with
    the Space's run."""
    kwargs = dict(encoders=["acme/encoder"], max_samples=40, metrics=("emms", "logme", "hscore"), progress=False)
    return hf_emms.rank(dataset, list(candidates), **{**kwargs, **changes}, cache_dir=tmp_path / "reference-cache")


def _table(ranking, tmp_path) -> pd.DataFrame:
    """A ranking's table as the Space shows it (the strings of the CSV that Ranking.save writes), less the one
    column that differs between two runs of the same ranking: the seconds each candidate took."""
    csv = ranking.save(tmp_path / "reference-out")["csv"]
    return pd.read_csv(csv, dtype=str, keep_default_na=False).drop(columns="seconds")


def _shown(table: dict) -> pd.DataFrame:
    """The Space's table as gradio_client returns it, less the seconds."""
    return pd.DataFrame(table["data"], columns=table["headers"]).drop(columns="seconds")


def test_ranking_through_the_api_equals_hf_emms_rank(space, hub, tmp_path, capfd):
    app, url, cache = space
    client = _client(url)
    info, label, text, group = client.predict("acme/topics", None, "", "", "", api_name="/detect")
    assert (label["value"], text["value"]) == ("label", "text")  # editable: any column can be chosen instead
    assert group["choices"] == [] and group["value"] is None  # no other column to group by
    assert [c[0] for c in label["choices"]] == [c[0] for c in text["choices"]] == ["text", "label"]
    assert "45 rows" in info and "classification label 'label'" in info and "3 classes" in info

    outputs = client.predict(*_rank_args(token=TOKEN), api_name="/rank")
    status, table, plot, skipped, downloads, card_diffs = outputs
    reference = _reference(tmp_path, token=TOKEN)
    assert status.startswith("**Done:** 3 candidates") and f"best: **{reference.best}**" in status
    pd.testing.assert_frame_equal(_shown(table), _table(reference, tmp_path))
    assert table["data"][-1][1] == "acme/gated" and card_diffs == ""  # skipped last, with the pipeline's reason
    assert "acme/gated" in skipped and reference.df.set_index("model").loc["acme/gated", "reason"] in skipped
    saved = json.loads(Path(next(p for p in downloads if p.endswith(".json"))).read_text())
    # Ranking.to_json rounds to 10 decimals (pandas' default double_precision).
    assert [r["emms"] for r in saved["rows"][:2]] == pytest.approx(list(reference.df["emms"][:2]), rel=0, abs=5e-11)
    assert saved["rows"][2]["status"] == "skipped" and saved["rows"][2]["emms"] is None
    assert pd.read_csv(next(p for p in downloads if p.endswith(".csv")), dtype=str, keep_default_na=False
                       ).values.tolist() == table["data"]
    assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert saved["meta"]["dataset"]["id"] == "acme/topics" and saved["meta"]["config"]["rows"] == 40
    # The token went to the Hub (the gated repo was asked with it) and nowhere else: not printed, not stored.
    assert any(r.authorized for r in hub.requests_to("/api/models/acme/gated"))
    out, err = capfd.readouterr()
    assert TOKEN not in out + err
    for folder in (cache, Path(downloads[0]).parent):
        for f in folder.rglob("*"):
            assert not f.is_file() or TOKEN.encode() not in f.read_bytes(), f


def test_the_layers_control_ranks_as_rank_layers_does(space, hub, tmp_path):
    """'auto' reads several layers: the table equals rank(layers="auto")'s, with the last layer beside the
    layer-aware score and the layer each candidate reads best from."""
    client = _client(space[1])
    ids = ("acme/small", "acme/wide")
    status, table, *_ = client.predict(*_rank_args(ids="\n".join(ids)), 0, "auto", api_name="/rank")
    reference = _reference(tmp_path, candidates=ids, layers="auto")
    pd.testing.assert_frame_equal(_shown(table), _table(reference, tmp_path))
    assert {"emms", "emms_se", "emms_last", "best_layer"} <= set(table["headers"])
    assert all(row["best_layer"] for row in reference.rows) and status.startswith("**Done:** 2 candidates")
    with pytest.raises(Exception, match="first"):  # refused (by the dropdown or the request), never run
        client.predict(*_rank_args(ids="acme/small"), 0, "first", api_name="/rank")


def test_the_group_column_reaches_the_ranking(space, hub, tmp_path):
    """Rows sharing the group column's value are held out together: the field goes to rank(group_column=...), which
    refuses the label column by name and ranks with a real group column as rank() does."""
    rows = "".join(f"note {i} from {who},{label},{who}\n" for i, (who, label) in enumerate(
        (f"speaker{s}", ("sports", "cooking", "weather")[s % 3]) for s in range(15) for _ in range(3)))
    hub.add_dataset("acme/speakers", {"train.csv": "text,label,speaker\n" + rows})
    client = _client(space[1])
    *_, group = client.predict("acme/speakers", None, "", "", "", api_name="/detect")
    assert [c[0] for c in group["choices"]] == ["speaker"] and group["value"] is None  # neither label nor input
    with pytest.raises(Exception, match="is the label column"):
        client.predict(*_rank_args(dataset_id="acme/speakers", ids="acme/small"), 0, "last", "label",
                       api_name="/rank")
    status, table, *_ = client.predict(*_rank_args(dataset_id="acme/speakers", ids="acme/small"), 0, "last",
                                       "speaker", api_name="/rank")
    reference = _reference(tmp_path, dataset="acme/speakers", candidates=("acme/small",), layers="last",
                           group_column="speaker")
    assert status.startswith("**Done:** 1 candidate")
    assert "**Notes:**\n- folds: the 40 rows form 15 groups by 'speaker'" in status  # told to the visitor too
    pd.testing.assert_frame_equal(_shown(table), _table(reference, tmp_path))


@pytest.mark.parametrize(("changes", "message"), [
    (dict(dataset_id="acme/no-such-data"), "could not load the dataset 'acme/no-such-data'"),
    (dict(dataset_id="acme/unlabelled"), "no label column found"),
    (dict(dataset_id="", upload=None), "no dataset"),
    (dict(ids=""), "no candidates"),
    (dict(ids="acme/small\nacme/wide\nacme/gated\nacme/third"), "4 candidates; this Space ranks at most 3"),
    (dict(max_samples=101), "greater than maximum value 100"),  # the slider holds the limit
    (dict(label_column="nope"), "label column 'nope' is not in the dataset"),
])
def test_bad_input_and_limits_come_back_as_messages(space, hub, changes, message):
    hub.add_dataset("acme/unlabelled", {"train.csv": "text,other\n" + "".join(f"t{i},{i}\n" for i in range(6))})
    with pytest.raises(Exception, match=message):
        _client(space[1]).predict(*_rank_args(**changes), api_name="/rank")


def test_uploads_are_ranked_and_oversized_ones_refused(space, hub, tmp_path):
    from gradio_client import handle_file

    (tmp_path / "topics.csv").write_text(_csv())
    client = _client(space[1])
    _, label, text, _ = client.predict("", handle_file(str(tmp_path / "topics.csv")), "", "", "", api_name="/detect")
    assert (label["value"], text["value"]) == ("label", "text")
    status, table, *_ = client.predict(*_rank_args(dataset_id="", upload=handle_file(str(tmp_path / "topics.csv")),
                                                   ids="acme/small"), api_name="/rank")
    reference = _reference(tmp_path, tmp_path / "topics.csv", ["acme/small"])
    assert status.startswith("**Done:** 1 candidate ranked")
    pd.testing.assert_frame_equal(_shown(table), _table(reference, tmp_path))
    (tmp_path / "big.csv").write_text("text,label\n" + "some words here,a\n" * 80_000)  # 1.4 MB > 1 MB
    with pytest.raises(Exception, match="exceeds the maximum file size of 1048576 bytes"):  # the Space's limit
        client.predict("", handle_file(str(tmp_path / "big.csv")), "", "", "", api_name="/detect")
    # Past gradio's upload check, the Space checks size and type itself.
    ranker = space[0].ranker
    with pytest.raises(ranker.SpaceInputError, match="the uploaded file is 1.4 MB; this Space takes at most 1 MB"):
        ranker.check_dataset("", str(tmp_path / "big.csv"))
    (tmp_path / "notes.txt").write_text("text,label\n")
    with pytest.raises(ranker.SpaceInputError, match="cannot read notes.txt: upload one of .csv"):
        ranker.check_dataset("", str(tmp_path / "notes.txt"))


def test_a_hub_search_ranks_what_it_finds_like_hf_emms_rank(space, hub, tiny, tmp_path):
    for i, name in enumerate(("found-a", "found-b")):
        hub.add_model(f"acme/{name}", tiny["small" if i else "wide"], tags=["emms-demo"], downloads=10 - i)
    hub.add_model("acme/found-code", tiny["third"], tags=["emms-demo"], downloads=5, auto_map={"AutoModel": "m.M"})
    hub.add_model("acme/not-found", tiny["third"], tags=["other"], downloads=100)
    status, table, *_ = _client(space[1]).predict(*_rank_args(ids="", tags="emms-demo", limit=3, max_samples=44),
                                                  api_name="/rank")
    reference = _reference(tmp_path, candidates=(), tags=["emms-demo"], limit=3, max_samples=44)
    assert status.startswith("**Done:** 3 candidates")
    pd.testing.assert_frame_equal(_shown(table), _table(reference, tmp_path))
    shown = _shown(table).set_index("model")
    assert set(shown.index) == {"acme/found-a", "acme/found-b", "acme/found-code"}
    assert shown.loc["acme/found-code", "status"] == "skipped"
    assert shown.loc["acme/found-code", "reason"].startswith("remote-code: ")


def test_cancel_stops_the_work_between_candidates(space, hub, tiny):
    app, url, cache = space
    names = ("slow-a", "slow-b", "slow-c")  # repos of their own: no earlier test has their files in the HF cache
    for name in names:
        hub.add_model(f"acme/{name}", tiny["small"])
    hub.delay(r"/acme/slow-a/resolve/.*model\.safetensors", 2.0, times=2)  # the first candidate's weights: slow
    client = _client(url)
    job = client.submit(*_rank_args(ids="\n".join(f"acme/{n}" for n in names)), api_name="/rank")
    deadline = time.time() + 60
    shown = set()  # what a visitor sees: the bar over the candidates (hf-emms's own bars come and go inside it)
    while ("candidates", 0, 3) not in shown and time.time() < deadline:
        shown |= {(u.desc, u.index, u.length) for u in job.status().progress_data or ()}
        time.sleep(0.05)
    assert ("candidates", 0, 3) in shown, shown
    assert not [r for r in hub.requests_to("/acme/slow-a/resolve/", "GET") if r.path.endswith("model.safetensors")]
    job.cancel()
    records = cache / "results"
    before = {p.name for p in records.glob("*.json")} if records.is_dir() else set()
    while not {p.name for p in records.glob("*.json")} - before and time.time() < deadline:
        time.sleep(0.1)  # the candidate under way finishes and is stored (a rerun resumes from it)...
    time.sleep(2.0)
    # ...and no later candidate is ever scored: one record in all. (Their files may have been fetched while the first
    # was scored: RunSpec.prefetch, at most two ahead; tests/test_pipeline.py checks that bound and the stop.)
    assert len({p.name for p in records.glob("*.json")} - before) == 1


def test_one_ranking_runs_at_a_time_and_the_next_waits_in_the_queue(space, hub, tiny):
    from gradio_client.utils import Status

    hub.add_model("acme/busy", tiny["small"])
    hub.delay(r"/acme/busy/resolve/.*model\.safetensors", 1.5, times=2)
    client = _client(space[1])
    first = client.submit(*_rank_args(ids="acme/busy", max_samples=39), api_name="/rank")
    deadline = time.time() + 60
    while not hub.requests_to("/api/models/acme/busy") and time.time() < deadline:
        time.sleep(0.05)  # the first ranking is under way
    second = _client(space[1]).submit(*_rank_args(ids="acme/small", max_samples=39), api_name="/rank")
    codes = set()
    while not first.done() and time.time() < deadline:
        codes.add(second.status().code)
        time.sleep(0.05)
    assert Status.IN_QUEUE in codes, codes
    assert second.result(timeout=60)[0].startswith("**Done:**") and first.result()[0].startswith("**Done:**")
    # EMMS_SPACE_CONCURRENCY=1 (the default): the second ranking touched its model only after the first was done
    # with its own, whose weights took 3 s to come; two at once would have interleaved.
    models = [r.path for r in hub.requests if "/acme/busy/" in r.path or "/acme/small" in r.path]
    last_busy = max(i for i, p in enumerate(models) if "/acme/busy/" in p)
    assert all("/acme/busy/" in p for p in models[:last_busy + 1]) and models[last_busy + 1:]


def test_card_pull_requests_need_a_preview_a_token_and_a_confirmation(space, hub):
    client = _client(space[1])
    client.predict(*_rank_args(ids="acme/small\nacme/wide", max_samples=43), api_name="/rank")
    diffs = client.predict("", api_name="/preview")  # the dry run (it also enables the button in the UI)
    assert "acme/small: proposed" in diffs and "acme/wide: proposed" in diffs
    assert "+    - type: emms\n" in diffs and "+    - type: accuracy\n" in diffs  # the old result is kept
    assert not hub.pull_requests  # a preview writes nothing
    with pytest.raises(Exception, match="needs you signed in"):
        client.predict(False, "", api_name="/open_prs")
    with pytest.raises(Exception, match=r"\['acme/(small|wide)', 'acme/(small|wide)'\] are not yours"):
        client.predict(False, TOKEN, api_name="/open_prs")
    assert not hub.pull_requests
    result = client.predict(True, TOKEN, api_name="/open_prs")
    assert result.count(": opened") == 2 and len(hub.pull_requests) == 2
    assert {c.repo_id for c in hub.pull_requests} == {"acme/small", "acme/wide"}
    pr = next(c.pr_num for c in hub.pull_requests if c.repo_id == "acme/small")
    card = hub.file("acme/small", "README.md", revision=f"refs/pr/{pr}").decode()
    index = yaml.safe_load(card.split("---")[1])["model-index"][0]["results"]
    assert {m["type"] for r in index for m in r["metrics"]} == {"accuracy", "emms"}  # merged, not overwritten


def test_pull_requests_on_the_users_own_repos_need_no_confirmation(space, hub, tmp_path):
    ranker, card_prs = space[0].ranker, space[0].card_prs
    ranking = hf_emms.rank("acme/topics", ["acme/wide"], encoders=["acme/encoder"], max_samples=40,
                           cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(ranker.SpaceInputError, match=r"\['acme/wide'\] are not yours"):
        card_prs.open_pull_requests(ranking, token=TOKEN, owned=card_prs.owned_namespaces(TOKEN, "someone"))
    # Signed in as "acme" (the Space's OAuth profile); the local Hub has no whoami, so the profile is all there is.
    owned = card_prs.owned_namespaces(TOKEN, "acme")
    assert owned == {"acme"}
    changes = card_prs.open_pull_requests(ranking, token=TOKEN, owned=owned)
    assert [(c.model, c.status.value) for c in changes] == [("acme/wide", "opened")]
    assert [c.repo_id for c in hub.pull_requests] == ["acme/wide"]


def test_limits_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(SPACE))
    import ranker

    public = ranker.Limits(allow_local=False, use_server_token=False)
    (tmp_path / "data.csv").write_text(_csv(6))
    with pytest.raises(ranker.SpaceInputError, match="look like paths on the server"):
        ranker.check_dataset(str(tmp_path / "data.csv"), None, public)
    with pytest.raises(ranker.SpaceInputError, match="look like paths on the server"):
        ranker.RankRequest("acme/topics", encoders=[str(tmp_path)]).check(public)
    assert ranker.check_dataset(str(tmp_path / "data.csv"), None, ranker.Limits()) == str(tmp_path / "data.csv")
    with pytest.raises(ranker.SpaceInputError, match="choose 2 to 100 samples"):
        ranker.RankRequest("acme/topics", max_samples=101).check(ranker.Limits(max_samples=100))
    assert public.token(None) is False and ranker.Limits().token(None) is None and public.token("t") == "t"
    monkeypatch.setenv("SPACE_ID", "acme/emms-ranker")
    monkeypatch.setenv("EMMS_SPACE_MAX_CANDIDATES", "7")
    limits = ranker.Limits.from_env()
    assert (limits.max_candidates, limits.allow_local, limits.use_server_token) == (7, False, False)
    monkeypatch.setenv("EMMS_SPACE_MAX_CANDIDATES", "many")
    with pytest.raises(ranker.SpaceInputError, match="EMMS_SPACE_MAX_CANDIDATES='many' is not an integer"):
        ranker.Limits.from_env()


def test_a_public_space_refuses_server_paths_and_never_lends_its_own_token(hub, tmp_path, monkeypatch):
    import gradio as gr
    import huggingface_hub

    # The app turns off huggingface_hub's implicit token for the process; the test puts it back afterwards.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("EMMS_SPACE_ALLOW_LOCAL", "EMMS_SPACE_USE_SERVER_TOKEN"):
            mp.setenv(name, "0")  # what SPACE_ID implies (see test_limits_follow_the_environment)
        app = _load_app(mp)
    (tmp_path / "data.csv").write_text(_csv(6))
    with pytest.raises(gr.Error, match="look like paths on the server"):
        app.detect(str(tmp_path / "data.csv"), None, "", "", "")
    with pytest.raises(gr.Error, match="look like paths on the server"):
        next(app.run(*_rank_args(ids=str(tmp_path))))
    # The Space owner's token (a secret on the Space) is in the environment; a visitor who gives none ranks without it.
    monkeypatch.setenv("HF_TOKEN", "the-space-owners-secret")
    *_, last = app.run(*_rank_args(ids="acme/small\nacme/gated", max_samples=41))
    assert last[0].startswith("**Done:** 2 candidates") and "acme/gated" in last[3]
    assert hub.requests_to("/api/models/acme/gated") and not any(r.authorized for r in hub.requests)


def test_space_readme_and_requirements():
    _, header, body = (SPACE / "README.md").read_text(encoding="utf-8").split("---", 2)
    meta = yaml.safe_load(header)
    assert meta["sdk"] == "gradio" and (SPACE / meta["app_file"]).is_file() and meta["hf_oauth"] is True
    assert "write-discussions" in meta["hf_oauth_scopes"]
    requirements = (SPACE / "requirements.txt").read_text().split()
    assert any(r.startswith("hf-emms") for r in requirements)
    assert any(r.startswith("gradio[oauth]") for r in requirements)  # gr.LoginButton needs the extra on a Space
    for name in LIMITS:
        assert name in body


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium; .ci/run does)")
def test_a_browser_ranks_a_dataset_like_hf_emms_rank(space, hub, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    reference = _reference(tmp_path)
    expected = _table(reference, tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(space[1])
        page.get_by_label("Hub dataset id").fill("acme/no-such-data")
        page.get_by_role("button", name="Detect columns").click()
        expect(page.get_by_text("could not load the dataset 'acme/no-such-data'")).to_be_visible(timeout=30_000)
        page.get_by_label("Hub dataset id").fill("acme/topics")
        page.get_by_label("Hub dataset id").press("Enter")  # detects too
        expect(page.get_by_text("Detected:")).to_be_visible(timeout=30_000)
        page.get_by_label("Candidates: Hub model ids").fill("acme/small\nacme/wide\nacme/gated")
        page.get_by_label("F-label encoders").fill("acme/encoder")
        budget = page.get_by_label("number input for Sample budget")
        budget.fill("40")
        budget.press("Enter")
        page.get_by_label("hscore").check()
        page.get_by_role("button", name="Rank", exact=True).click()
        expect(page.get_by_text("Done:")).to_be_visible(timeout=60_000)
        grid = page.get_by_role("grid").first
        rows = [[c.inner_text().strip() for c in row.get_by_role("gridcell").all()]
                for row in grid.get_by_role("row").all()]
        rows = [r for r in rows if r]  # the header row holds column headers, not cells
        headers = [h.inner_text().strip() for h in grid.get_by_role("columnheader").all()]
        shot = tmp_path / "emms-ranker.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    print(f"screenshot: {shot}")
    pd.testing.assert_frame_equal(_shown({"headers": headers, "data": rows}), expected)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_csv_with_huge_label_ids_is_ranked_in_seconds_and_the_next_visitor_is_served(space, hub, tmp_path):
    """Issue 17: labels 5 and 100000000 in a 2 KB CSV once took the Space to 6.8 GB (a class table sized by the
    largest id) and every later visitor waited. Integer labels are the classes present: two classes here."""
    import resource

    from gradio_client import handle_file

    lines = [f"w{i} x,{100000000 if i % 2 else 5}" for i in range(1, 41)]
    (tmp_path / "huge.csv").write_text("text,label\n" + "\n".join(lines) + "\n")
    assert (tmp_path / "huge.csv").stat().st_size < 2048
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB; the Space runs in this process
    client = _client(space[1])
    status, table, *_ = client.predict(*_rank_args(dataset_id="", upload=handle_file(str(tmp_path / "huge.csv")),
                                                   ids="acme/small", encoders="none"), api_name="/rank")
    assert status.startswith("**Done:** 1 candidate ranked") and _shown(table).loc[0, "status"] == "ok"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 500_000  # not gigabytes
    second, *_ = _client(space[1]).predict(*_rank_args(ids="acme/small", encoders="none"), api_name="/rank")
    assert second.startswith("**Done:** 1 candidate ranked")


def test_messages_name_an_upload_by_its_file_name_not_the_server_path(space, tmp_path):
    from gradio_client import handle_file

    (tmp_path / "broken.jsonl").write_text('{"text": "a", "label": 0}\n{"text": "b", "label":\n')
    with pytest.raises(Exception) as raised:
        _client(space[1]).predict("", handle_file(str(tmp_path / "broken.jsonl")), "", "", "", api_name="/detect")
    message = str(raised.value)
    assert "broken.jsonl" in message and "/tmp/" not in message and "gradio" not in message.lower()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium; .ci/run does)")
def test_a_browser_shows_no_clear_winner_when_the_candidates_cannot_be_told_apart(space, hub, tmp_path):
    """Issue 18: 200 short templated sentences of 4 topics let every candidate fit the labels; the scores differ by
    rounding alone. The page must say so, and must not name a best checkpoint."""
    from playwright.sync_api import expect, sync_playwright

    topics = ["sports", "cooking", "weather", "music"]
    lines = [f"sentence number {i} is about {topics[i % 4]},{topics[i % 4]}" for i in range(200)]
    (tmp_path / "templated.csv").write_text("text,label\n" + "\n".join(lines) + "\n")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(space[1])
        page.locator("input[type=file]").first.set_input_files(str(tmp_path / "templated.csv"))
        expect(page.get_by_text("Detected:")).to_be_visible(timeout=30_000)
        page.get_by_label("Candidates: Hub model ids").fill("acme/small\nacme/wide")
        page.get_by_label("F-label encoders").fill("none")
        page.get_by_role("button", name="Rank", exact=True).click()
        expect(page.get_by_text("Done:")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("No clear winner.")).to_be_visible()
        status = page.locator("p", has_text="Done:").first.inner_text()
        page.screenshot(path=str(tmp_path / "no-clear-winner.png"), full_page=True)
        browser.close()
    assert "cannot be told apart" in status and "No clear winner" in status.split("best:")[-1]


def test_a_sentence_pair_upload_is_detected_and_ranked_as_a_pair(space, hub, tmp_path):
    from gradio_client import handle_file

    from test_paired import sick

    sick(45).to_csv(str(tmp_path / "pairs.csv"))
    client = _client(space[1])
    info, label, inputs, group = client.predict("", handle_file(str(tmp_path / "pairs.csv")), "", "", "",
                                                api_name="/detect")
    assert inputs["value"] == "sentence_A, sentence_B" and "encoded jointly" in info
    assert {"sentence_A", "sentence_B"} <= {c[0] for c in group["choices"]}  # one text of a pair may group the pairs
    status, table, _, _, downloads, *_ = client.predict(*_rank_args(
        dataset_id="", upload=handle_file(str(tmp_path / "pairs.csv")), ids="acme/small", encoders="none",
        label_column="entailment_label", input_column="sentence_B, sentence_A"), api_name="/rank")
    assert status.startswith("**Done:** 1 candidate ranked") and _shown(table).loc[0, "status"] == "ok"
    saved = next(f for f in downloads if str(f).endswith(".json"))  # the ranking.json offered for download
    task = json.loads(Path(saved).read_text())["meta"]["task"]
    assert (task["input_kind"], task["input_columns"]) == ("text-pair", ["sentence_B", "sentence_A"])


# ---- issues 20 and 21: image + text inputs, and ranking in two phases (shortlist K) ------------------------------
@pytest.fixture(scope="module")
def vision_language(tmp_path_factory):
    """Tiny random-init ViLT-like (joint) and CLIP-like (dual) image + text checkpoints."""
    root = tmp_path_factory.mktemp("space-vl")
    return {"vilt": _tiny_models.vilt(root / "vilt"), "clip": _tiny_models.clip(root / "clip")}


def _vqa_zip(path: Path) -> Path:
    """tests/test_paired.py's image + question -> answer set as a visitor uploads it: a zip of an image folder whose
    metadata.csv gives each image's question and answer (40 rows: 8 images, 5 questions each)."""
    from test_paired import vqa

    lines = ["file_name,question,answer"]
    with zipfile.ZipFile(path, "w") as archive:
        for i, row in enumerate(vqa()):
            png = io.BytesIO()
            row["image"].save(png, format="PNG")
            archive.writestr(f"{i}.png", png.getvalue())
            lines.append(f"{i}.png,{row['question']},{row['answer']}")
        archive.writestr("metadata.csv", "\n".join(lines) + "\n")
    return path


def _grid(page) -> pd.DataFrame:
    """The ranking table as the page shows it, less the seconds."""
    grid = page.get_by_role("grid").first
    rows = [[c.inner_text().strip() for c in row.get_by_role("gridcell").all()] for row in grid.get_by_role("row").all()]
    headers = [h.inner_text().strip() for h in grid.get_by_role("columnheader").all()]
    return _shown({"headers": headers, "data": [r for r in rows if r]})


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium; .ci/run does)")
def test_a_browser_ranks_an_image_question_dataset_with_vision_language_candidates(space, hub, vision_language,
                                                                                   tiny, tmp_path):
    """Issue 21: 'answer' is not a label name the detection knows, so the first detection asks for it; typed in,
    the image + question pair is detected; ViLT and CLIP are scored and the text-only BERT is a skipped row."""
    from playwright.sync_api import expect, sync_playwright

    for name, folder in vision_language.items():
        hub.add_model(f"acme/{name}", folder)
    data = _vqa_zip(tmp_path / "vqa.zip")
    candidates = ("acme/vilt", "acme/clip", "acme/small")
    reference = _reference(tmp_path, data, candidates, label_column="answer", input_column=["image", "question"],
                           metrics=("emms", "logme"))
    expected = _table(reference, tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(space[1])
        page.locator("input[type=file]").first.set_input_files(str(data))
        expect(page.get_by_text("no label column found among ['image', 'question', 'answer']")).to_be_visible(
            timeout=30_000)
        expect(page.get_by_text("Type the label column's name under 'Label column'")).to_be_visible()
        label = page.get_by_label("Label column (detected when empty)")
        label.fill("answer")
        label.press("Enter")
        page.get_by_role("button", name="Detect columns").click()
        detected = page.locator("p", has_text="Detected:").first
        expect(detected).to_be_visible(timeout=30_000)
        info = detected.inner_text()
        inputs = page.get_by_label("Input column (detected when empty")
        inputs.click()
        page.get_by_role("option", name="image, question", exact=True).click()  # both inputs, as one choice
        picked = inputs.input_value()
        page.get_by_label("Candidates: Hub model ids").fill("\n".join(candidates))
        page.get_by_label("F-label encoders").fill("acme/encoder")
        budget = page.get_by_label("number input for Sample budget")
        budget.fill("40")
        budget.press("Enter")
        page.get_by_role("button", name="Rank", exact=True).click()
        expect(page.get_by_text("Done:")).to_be_visible(timeout=120_000)
        shown = _grid(page)
        expect(page.get_by_text("Skipped:")).to_be_visible()
        skipped = page.locator("li", has_text="acme/small").first.inner_text()
        page.screenshot(path=str(tmp_path / "image-question.png"), full_page=True)
        browser.close()
    assert "image-text input ('image', 'question')" in info and "label 'answer'" in info and "40 rows" in info
    assert picked == "image, question"
    # The same rows, statuses, reasons and columns as hf_emms.rank; the scores to the table's 4 decimals (the answer
    # follows from the question here, so both fit almost exactly: their scores are near 0 and within noise of each
    # other, and their order may differ between two runs).
    rows, want = shown.set_index("model"), expected.set_index("model")
    assert sorted(rows.index) == sorted(want.index) and list(shown.columns) == list(expected.columns)
    assert rows[["status", "reason"]].sort_index().equals(want[["status", "reason"]].sort_index())
    for name in ("acme/vilt", "acme/clip"):
        assert rows.loc[name, "status"] == "ok" and float(rows.loc[name, "emms"]) == pytest.approx(
            reference.df.set_index("model").loc[name, "emms"], abs=1e-4)
    assert rows.loc["acme/small", "status"] == "skipped" and rows.loc["acme/small", "emms"] == ""
    assert "text-only model; this task needs image + text" in rows.loc["acme/small", "reason"]
    assert "acme/small" in skipped and "this task needs image + text" in skipped
    assert reference.meta["task"]["input_kind"] == "image-text"  # what was compared is an image + text ranking
    # The text-only candidate was refused from its metadata: its weights were never downloaded.
    assert not [r for r in hub.requests_to("/acme/small/resolve/") if r.path.endswith(".safetensors")]


def test_a_typed_label_column_is_kept_and_a_stale_one_is_replaced_by_detection(space, hub, tmp_path):
    """The detect endpoint reads the form's columns: one this dataset has is used, one left from another dataset is
    dropped and the columns detected (a column the visitor typed wrong still gets its own error when ranking)."""
    from gradio_client import handle_file

    client = _client(space[1])
    data = handle_file(str(_vqa_zip(tmp_path / "vqa.zip")))
    with pytest.raises(Exception, match="no label column found"):
        client.predict("", data, "", "", "", api_name="/detect")
    info, label, inputs, _ = client.predict("", data, "", "", "", "answer", None, api_name="/detect")
    assert (label["value"], inputs["value"]) == ("answer", "image, question") and "image-text input" in info
    assert [c[0] for c in inputs["choices"]] == ["image, question", "image", "question", "answer"]
    info, label, inputs, _ = client.predict("acme/topics", None, "", "", "", "answer", "image, question",
                                            api_name="/detect")  # the columns of the previous dataset
    assert (label["value"], inputs["value"]) == ("label", "text") and "45 rows" in info


def test_a_shortlist_scores_only_the_top_k_and_lists_the_others_as_not_short_listed(space, hub, tiny, tmp_path):
    """Issue 20: shortlist K=2 of N=4 is ``rank(..., recall=2)``: two candidates read and scored, two rows saying
    they were not short-listed, and the recall column (phase one) beside emms (phase two). N may pass the Space's
    3 scored candidates: recall reads no weights (EMMS_SPACE_MAX_RECALL bounds it)."""
    app, url, cache = space
    names = ("pick-a", "pick-b", "pick-c", "pick-d")  # repos of their own: no earlier test has their files cached
    for name, folder in zip(names, ("small", "wide", "third", "encoder")):
        hub.add_model(f"acme/{name}", tiny[folder])
    ids = [f"acme/{n}" for n in names]
    records = cache / "results"
    before = {p.name for p in records.glob("*.json")} if records.is_dir() else set()
    status, table, _, skipped, downloads, _ = _client(url).predict(
        *_rank_args(ids="\n".join(ids), max_samples=42), shortlist=2, api_name="/rank")
    reference = _reference(tmp_path, candidates=ids, max_samples=42, recall=2)
    assert status.startswith("**Done:** 4 candidates ranked") and f"best: **{reference.best}**" in status
    assert "recall short-listed the top 2 of 4 candidates" in status
    shown = _shown(table)
    pd.testing.assert_frame_equal(shown, _table(reference, tmp_path))
    assert "recall" in shown.columns
    scored = shown[shown["status"] == "ok"]
    left = shown[shown["status"] == "skipped"]
    assert len(scored) == 2 and len(left) == 2
    assert scored["emms"].ne("").all() and scored["recall"].ne("").all()  # both phases' numbers
    assert left["emms"].eq("").all() and left["recall"].ne("").all()  # phase one's only
    assert left["reason"].str.startswith("not short-listed by recall (kept the top 2 of 4").all()
    assert all(m in skipped for m in left["model"])
    saved = {r["model"]: r for r in json.loads(Path(next(p for p in downloads if p.endswith(".json"))).read_text())[
        "rows"]}
    kept = set(scored["model"])
    assert min(saved[m]["recall"] for m in kept) >= max(saved[m]["recall"] for m in left["model"])  # phase one's best
    # Only the short list was read: the others' weights never left the Hub, and two records were stored.
    for model in ids:
        downloaded = [r for r in hub.requests_to(f"/{model}/resolve/") if r.path.endswith(".safetensors")]
        assert bool(downloaded) == (model in kept), model
    assert len({p.name for p in records.glob("*.json")} - before) == 2
    # Without a shortlist the same four are over the Space's limit of 3, and no recall column is shown.
    with pytest.raises(Exception, match="4 candidates; this Space ranks at most 3"):
        _client(url).predict(*_rank_args(ids="\n".join(ids), max_samples=42), api_name="/rank")
    _, table, *_ = _client(url).predict(*_rank_args(ids="acme/pick-a", max_samples=42), api_name="/rank")
    assert "recall" not in table["headers"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium; .ci/run does)")
def test_a_browser_sets_a_shortlist_and_sees_both_phases(space, hub, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expected = _table(_reference(tmp_path, candidates=("acme/small", "acme/wide"), recall=1,
                                 metrics=("emms", "logme")), tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(space[1])
        page.get_by_label("Hub dataset id").fill("acme/topics")
        page.get_by_label("Candidates: Hub model ids").fill("acme/small\nacme/wide")
        page.get_by_label("F-label encoders").fill("acme/encoder")
        budget = page.get_by_label("number input for Sample budget")
        budget.fill("40")
        budget.press("Enter")
        page.get_by_label("Shortlist: keep the top K").fill("1")
        page.get_by_role("button", name="Rank", exact=True).click()
        expect(page.get_by_text("Done:")).to_be_visible(timeout=60_000)
        phases = page.locator("p", has_text="Two phases:").first.inner_text()
        shown = _grid(page)
        browser.close()
    assert "recall short-listed the top 1 of 2 candidates" in phases and "column recall: phase one" in phases
    pd.testing.assert_frame_equal(shown, expected)
    assert "recall" in shown.columns and list(shown["status"]) == ["ok", "skipped"]
    assert shown.loc[1, "reason"].startswith("not short-listed by recall (kept the top 1 of 2")


def test_a_shortlist_must_be_a_whole_number_within_the_limits(space, hub):
    client = _client(space[1])
    with pytest.raises(Exception, match="Value -1 is less than minimum value 0"):  # the field holds it
        client.predict(*_rank_args(), shortlist=-1, api_name="/rank")
    with pytest.raises(Exception, match=r"shortlist 4: this Space scores at most 3 candidates \(EMMS_SPACE_MAX_CAND"):
        client.predict(*_rank_args(), shortlist=4, api_name="/rank")
    many = "\n".join(f"acme/m{i}" for i in range(6))
    with pytest.raises(Exception, match=r"6 candidates; this Space short-lists from at most 5 \(EMMS_SPACE_MAX_REC"):
        client.predict(*_rank_args(ids=many), shortlist=2, api_name="/rank")
    assert not hub.requests_to("/api/models/acme/m")  # refused before anything was asked of the Hub
    ranker = space[0].ranker
    assert ranker.RankRequest("acme/topics").kwargs()["recall"] is None  # 0, the default: every candidate scored
    request = ranker.RankRequest("acme/topics", max_samples=40, shortlist=2).check()
    assert request.kwargs()["recall"] == 2 and request.spec().query.recall == 2  # the spec rank() runs
    for bad in (-1, 1.5):
        with pytest.raises(ranker.SpaceInputError, match="or 0 to score every candidate"):
            ranker.RankRequest("acme/topics", max_samples=40, shortlist=bad).check()


def test_each_ranking_first_deletes_cache_entries_older_than_the_limit(hub, tmp_path, monkeypatch):
    # A hosted Space kept every visitor's statistics, F-labels, results and unpacked uploads forever.
    import os
    import time

    monkeypatch.syspath_prepend(str(SPACE))
    import ranker

    cache = tmp_path / "cache"
    for part, name in (("stats", "ab/abc.json"), ("stats", "ab/abc.layer-1.safetensors"), ("archives", "d1/cat/1.png"),
                       ("tables", "t1/csv/default/train.arrow")):
        path = cache / part / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
        old = time.time() - 30 * 86400
        os.utime(path, (old, old))
    request = ranker.RankRequest("acme/topics", encoders=["acme/encoder"], max_samples=40)
    *_, ranking = ranker.rank_candidates(request, ["acme/small"], cache_dir=cache,
                                         limits=ranker.Limits(cache_days=7))
    assert ranking.rows[0].ok
    assert not (cache / "stats" / "ab").exists() and not any((cache / "archives").rglob("*"))  # the old entries, gone
    assert not any((cache / "tables").rglob("*.arrow"))  # an old upload's Arrow copy too
    assert any(p.suffix == ".json" for p in (cache / "stats").rglob("*")) and any((cache / "results").iterdir())


def test_hub_data_bytes_are_the_files_of_the_config_sized_before_any_download(hub_server):
    from hf_emms.tasks.remote import hub_data_bytes

    train, test = _csv().encode(), _csv().encode()[:300]
    card = "---\nlicense: mit\n---\n"
    hub_server.add_dataset("acme/sized", {"train.csv": train, "test.csv": test, "README.md": card})
    assert hub_data_bytes("acme/sized") == len(train) + len(test)  # both splits: load_dataset reads both
    fetched = [r.path for r in hub_server.requests_to("/datasets/acme/sized/resolve", "GET")]
    assert not [p for p in fetched if p.endswith(".csv")]  # the card at most: no data file downloaded
    assert hub_data_bytes("acme/no-such-dataset") is None


def test_a_hub_dataset_past_the_size_limit_is_refused_before_its_download(hub_server, monkeypatch):
    # A visitor typing a multi-GB dataset id made the Space download all of it to draw 2,000 rows
    monkeypatch.syspath_prepend(str(SPACE))
    import ranker

    big = ("text,label\n" + "".join(f"sentence number {i} of many,{i % 2}\n" for i in range(40_000))).encode()
    hub_server.add_dataset("acme/big", {"train.csv": big})
    assert len(big) > 2**20
    with pytest.raises(ranker.SpaceInputError) as exc_info:
        ranker.detect_columns("acme/big", limits=ranker.Limits(max_dataset_mb=1))
    message = str(exc_info.value)
    assert "acme/big downloads 1.2 MB of data files; this Space reads at most 1 MB" in message
    assert "EMMS_SPACE_MAX_DATASET_MB" in message and "hf-emms rank acme/big --max-samples 2000" in message
    assert not hub_server.requests_to("/datasets/acme/big/resolve/main/train.csv", "GET")  # refused, not downloaded
    task = ranker.detect_columns("acme/big", limits=ranker.Limits(max_dataset_mb=2))
    assert task.dataset.num_rows == 40_000  # under the limit: read as before
    monkeypatch.setenv("EMMS_SPACE_MAX_DATASET_MB", "5")
    assert ranker.Limits.from_env().max_dataset_mb == 5


def test_on_a_space_the_hugging_face_caches_are_pruned_by_age_too(hub, tmp_path, monkeypatch):
    # Each visitor's candidates, encoders and Hub datasets stayed in the server's HF caches for good (1.4 GB per
    # 350M-parameter candidate); the hf-emms cache alone was pruned
    import os
    import time

    from huggingface_hub import hf_hub_download

    monkeypatch.syspath_prepend(str(SPACE))
    import space_cache
    import space_limits

    hub_cache, data_cache = tmp_path / "hub", tmp_path / "datasets"
    for repo in ("acme/small", "acme/wide"):
        hf_hub_download(repo, "config.json", cache_dir=hub_cache)
    for name in ("acme___old", "acme___new"):
        (data_cache / name / "default").mkdir(parents=True)
        (data_cache / name / "default" / "train.arrow").write_bytes(b"x" * 100)
    old = time.time() - 30 * 86400
    for path in [*(hub_cache / "models--acme--small").rglob("*"), *(data_cache / "acme___old").rglob("*")]:
        os.utime(path, (old, old), follow_symlinks=False)
    removed, freed = space_cache.prune_hf_caches(7, hub_cache=hub_cache, datasets_cache=data_cache)
    assert removed == 2 and freed > 100
    assert not (hub_cache / "models--acme--small").exists() and (hub_cache / "models--acme--wide").is_dir()
    assert sorted(p.name for p in data_cache.iterdir()) == ["acme___new"]
    assert space_cache.prune_hf_caches(7, hub_cache=hub_cache, datasets_cache=data_cache) == (0, 0)  # idempotent
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert not space_limits.Limits.from_env().prune_hf_cache  # run locally: the caches are the developer's own
    monkeypatch.setenv("SPACE_ID", "acme/emms-ranker")
    assert space_limits.Limits.from_env().prune_hf_cache
