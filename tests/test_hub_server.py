"""The local Hub server speaks the Hub API well enough for the real libraries: huggingface_hub, transformers and
datasets run their own code against it (downloads, ranges, dataset loading, card PRs, paging, auth, faults)."""

from __future__ import annotations

import hashlib
import time

import httpx2
import pytest
import torch
import yaml
from huggingface_hub import (
    HfApi,
    get_safetensors_metadata,
    hf_hub_download,
    metadata_load,
    metadata_update,
    snapshot_download,
)
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from safetensors.torch import load_file

import _tiny_models


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    return _tiny_models.bert(tmp_path_factory.mktemp("models") / "bert")


def test_from_pretrained_downloads_the_served_files_at_the_pinned_sha(hub_server, bert_folder, hf_cache):
    from transformers import AutoModel

    sha = hub_server.add_model("org/bert", bert_folder)
    model = AutoModel.from_pretrained("org/bert", revision=sha, cache_dir=hf_cache)
    local = AutoModel.from_pretrained(bert_folder)
    served, reference = model.state_dict(), local.state_dict()
    assert served.keys() == reference.keys()
    assert all(torch.equal(served[k], reference[k]) for k in reference)
    downloads = hub_server.requests_to("/org/bert/resolve/", method="GET")
    assert {r.path.rsplit("/", 1)[1] for r in downloads} >= {"config.json", "model.safetensors"}
    assert all(f"/resolve/{sha}/" in r.path and r.status == 200 for r in downloads)


def test_snapshot_download_and_revisions(hub_server, bert_folder, hf_cache):
    sha = hub_server.add_model("org/bert", bert_folder)
    folder = snapshot_download("org/bert", cache_dir=hf_cache)
    assert folder.endswith(sha)
    served = sorted(p.relative_to(bert_folder).as_posix() for p in bert_folder.rglob("*") if p.is_file())
    assert sorted(s.rfilename for s in HfApi().model_info("org/bert").siblings) == served
    with pytest.raises(RevisionNotFoundError):
        snapshot_download("org/bert", revision="no-such-branch", cache_dir=hf_cache)
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("org/missing")


def test_tree_and_paths_info_describe_files_like_the_hub(hub_server, bert_folder):
    sha = hub_server.add_model("org/bert", bert_folder, files={"sub/extra.txt": "x"})
    api = HfApi()
    tree = {e.path: e for e in api.list_repo_tree("org/bert", recursive=True)}
    weights = (bert_folder / "model.safetensors").read_bytes()
    assert tree["model.safetensors"].size == len(weights)
    assert tree["model.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    assert tree["config.json"].lfs is None and "sub" in tree and "sub/extra.txt" in tree
    assert {e.path for e in api.list_repo_tree("org/bert", path_in_repo="sub")} == {"sub/extra.txt"}
    info = {e.path: e for e in api.get_paths_info("org/bert", ["config.json", "sub", "nope"], revision=sha)}
    assert set(info) == {"config.json", "sub"}
    assert info["config.json"].size == (bert_folder / "config.json").stat().st_size


def test_range_requests_serve_safetensors_headers(hub_server, bert_folder):
    """get_safetensors_metadata reads the header with Range requests (206), never the whole file."""
    hub_server.add_model("org/bert", bert_folder)
    metadata = get_safetensors_metadata("org/bert")
    tensors = load_file(bert_folder / "model.safetensors")
    assert metadata.parameter_count == {"F32": sum(t.numel() for t in tensors.values())}
    gets = hub_server.requests_to("/org/bert/resolve/main/model.safetensors", method="GET")
    assert gets and all(r.status == 206 for r in gets)


def test_expand_returns_only_the_requested_properties(hub_server, bert_folder):
    hub_server.add_model("org/bert", bert_folder, license="mit", pipeline_tag="feature-extraction",
                         auto_map={"AutoModel": "modeling.Custom"})
    info = HfApi().model_info("org/bert", expand=["config", "safetensors", "tags"])
    assert info.config["model_type"] == "bert" and info.config["auto_map"] == {"AutoModel": "modeling.Custom"}
    assert info.safetensors.total == sum(t.numel() for t in load_file(bert_folder / "model.safetensors").values())
    assert {"license:mit", "bert", "safetensors", "transformers", "custom_code"} <= set(info.tags)
    assert info.downloads is None and info.gated is None  # not asked for
    assert hub_server.requests_to("/api/models/org/bert")[0].query["expand"] == ["config", "safetensors", "tags"]


def test_listing_filters_sorts_and_pages_with_link_headers(hub_server, bert_folder):
    for i, downloads in enumerate([5, 50, 20, 40, 10]):
        hub_server.add_model(f"org/m{i}", bert_folder, downloads=downloads, tags=["keep"] if i != 2 else ["other"])
    hub_server.page_size = 2
    listed = list(HfApi().list_models(filter=["keep"], sort="downloads"))
    assert [m.id for m in listed] == ["org/m1", "org/m3", "org/m4", "org/m0"]
    pages = hub_server.requests_to("/api/models")
    assert len(pages) == 2 and pages[0].query["filter"] == ["keep"] and pages[1].query["cursor"] == ["2"]
    assert [m.id for m in HfApi().list_models(search="m2")] == ["org/m2"]


def test_datasets_load_a_served_dataset_repo(hub_server, tmp_path):
    import datasets

    (tmp_path / "train.csv").write_text("text,label\na good film,1\na bad film,0\nfine,1\n")
    hub_server.add_dataset("org/reviews", {"data/train.csv": tmp_path / "train.csv",
                                           "data/test.csv": "text,label\nawful,0\n"})
    ds = datasets.load_dataset("org/reviews", cache_dir=str(tmp_path / "cache"))
    assert ds["train"]["text"] == ["a good film", "a bad film", "fine"] and ds["test"]["label"] == [0]
    assert hub_server.requests_to("/api/datasets/org/reviews") and hub_server.requests_to("/datasets/org/reviews/")


def test_datasets_load_a_served_image_folder(hub_server, tmp_path):
    import datasets
    from PIL import Image

    for split, label, shade in (("train", "cat", 0), ("train", "dog", 255), ("test", "cat", 10)):
        (tmp_path / "pets" / split / label).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (shade, shade, shade)).save(tmp_path / "pets" / split / label / "0.png")
    hub_server.add_dataset("org/pets", folder=tmp_path / "pets")
    ds = datasets.load_dataset("org/pets", cache_dir=str(tmp_path / "cache"))
    assert ds["train"].features["label"].names == ["cat", "dog"] and ds["test"].num_rows == 1
    assert [img.getpixel((0, 0)) for img in ds["train"]["image"]] == [(0, 0, 0), (255, 255, 255)]


def test_card_pull_request_is_decoded_and_applied_on_its_own_ref(hub_server, bert_folder, hf_cache):
    hub_server.add_model("org/bert", bert_folder, files={"README.md": "---\nlicense: mit\n---\n# A card\n"})
    commit = metadata_update("org/bert", {"tags": ["emms"]}, create_pr=True)
    assert commit.pr_url.endswith("/org/bert/discussions/1") and commit.pr_num == 1
    (pr,) = hub_server.pull_requests
    (operation,) = pr.operations
    assert (pr.repo_id, pr.revision, operation.kind, operation.path) == ("org/bert", "main", "file", "README.md")
    header = operation.content.decode().split("---")[1]
    assert yaml.safe_load(header) == {"license": "mit", "tags": ["emms"]}
    on_pr = hf_hub_download("org/bert", "README.md", revision="refs/pr/1", cache_dir=hf_cache)
    assert metadata_load(on_pr) == {"license": "mit", "tags": ["emms"]}
    assert hub_server.file("org/bert", "README.md") == b"---\nlicense: mit\n---\n# A card\n"  # main untouched
    assert hub_server.requests_to("/api/models/org/bert/commit/main")[0].query["create_pr"] == ["1"]


def test_push_to_hub_creates_repos_and_uploads_binaries_through_lfs(hub_server, bert_folder, tmp_path):
    import datasets
    from transformers import AutoModel

    pushed = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]})
    pushed.push_to_hub("org/pushed", token="hf_writer")
    (commit,) = hub_server.commits
    kinds = {op.path: op.kind for op in commit.operations}
    assert kinds["data/train-00000-of-00001.parquet"] == "lfsFile" and kinds["README.md"] == "file"
    assert hub_server.requests_to("/datasets/org/pushed.git/info/lfs/objects/batch", method="POST")
    back = datasets.load_dataset("org/pushed", cache_dir=str(tmp_path / "cache"))
    assert back["train"].to_dict() == pushed.to_dict()

    AutoModel.from_pretrained(bert_folder).push_to_hub("org/pushed-bert", token="hf_writer", private=True)
    assert hub_server.file("org/pushed-bert", "model.safetensors") == (bert_folder / "model.safetensors").read_bytes()
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token="hf_someone_else").model_info("org/pushed-bert")  # private: its creator's token only


def test_spaces_are_created_uploaded_and_downloaded(hub_server, tmp_path, hf_cache):
    (tmp_path / "space").mkdir()
    (tmp_path / "space" / "app.py").write_text("import gradio as gr\n")
    (tmp_path / "space" / "README.md").write_text("---\nsdk: gradio\napp_file: app.py\n---\n")
    api = HfApi(token="hf_writer")
    url = api.create_repo("org/demo", repo_type="space", space_sdk="gradio")
    assert url.endswith("/spaces/org/demo")
    api.upload_folder(folder_path=tmp_path / "space", repo_id="org/demo", repo_type="space")
    assert {s.rfilename for s in api.space_info("org/demo").siblings} == {".gitattributes", "app.py", "README.md"}
    app = hf_hub_download("org/demo", "app.py", repo_type="space", cache_dir=hf_cache)
    assert open(app).read() == "import gradio as gr\n"
    assert [s.id for s in api.list_spaces()] == ["org/demo"]


def test_private_and_gated_repos_need_the_right_token(hub_server, bert_folder, hf_cache):
    hub_server.add_model("org/private", bert_folder, private=True, tokens=["hf_owner"])
    hub_server.add_model("org/gated", bert_folder, gated=True, tokens=["hf_granted"])
    assert [m.id for m in HfApi().list_models()] == ["org/gated"]
    assert {m.id for m in HfApi(token="hf_owner").list_models()} == {"org/private", "org/gated"}
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info("org/private")
    assert HfApi().model_info("org/gated").gated == "auto"  # metadata is public, files are not
    with pytest.raises(GatedRepoError):
        hf_hub_download("org/gated", "config.json", cache_dir=hf_cache, token=False)
    with pytest.raises(GatedRepoError):
        hf_hub_download("org/gated", "config.json", cache_dir=hf_cache, token="hf_someone_else")
    assert hf_hub_download("org/gated", "config.json", cache_dir=hf_cache, token="hf_granted")
    statuses = [r.status for r in hub_server.requests_to("/org/gated/resolve/", method="HEAD")]
    assert statuses[:2] == [401, 403]
    assert not any("hf_" in repr(r) for r in hub_server.requests)  # tokens are never recorded
    assert any(r.authorized for r in hub_server.requests) and not hub_server.requests[0].authorized


def test_injected_faults_fail_then_recover_and_delays_trip_timeouts(hub_server, bert_folder):
    hub_server.add_model("org/bert", bert_folder)
    hub_server.fail(r"^/api/models/org/bert$", status=503, times=2)
    url = f"{hub_server.url}/api/models/org/bert"
    assert [httpx2.get(url).status_code for _ in range(3)] == [503, 503, 200]
    hub_server.delay(r"^/api/models/org/bert$", 5.0)
    start = time.monotonic()
    with pytest.raises(httpx2.TimeoutException):
        httpx2.get(url, timeout=0.2)
    assert time.monotonic() - start < 3.0  # the client's timeout, not the server's 5 s
    assert httpx2.get(url, timeout=5).status_code == 200  # the delay was for one request only
    with pytest.raises(HfHubHTTPError):
        HfApi().list_models(sort="no-such-key").__next__()
