"""``hf-emms scan`` against the local Hub: what it prints, what it asks the Hub, and its errors."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import _tiny_models
from hf_emms.cli import main
from hf_emms.cli.units import parse_bytes, parse_count, parse_samples


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"bert": _tiny_models.bert(root / "bert"), "vit": _tiny_models.vit(root / "vit")}


@pytest.fixture
def hub(hub_server, folders):
    hub_server.add_model("org/bert", folders["bert"], tags=["t"], pipeline_tag="feature-extraction",
                         license="mit", downloads=7)
    hub_server.add_model("org/vit", folders["vit"], tags=["t"], pipeline_tag="image-feature-extraction")
    hub_server.add_model("org/remote", folders["bert"], tags=["t"], auto_map={"AutoModel": "m.M"})
    return hub_server


def test_scan_prints_kept_candidates_and_explains_rejections(hub, capsys):
    assert main(["scan", "--tags", "t", "--sort", "likes", "--limit", "5", "--modality", "text", "--explain"]) == 0
    out = capsys.readouterr().out
    kept, rejected = out.split("rejected")[0], out.split("rejected")[1]
    assert "1 candidate(s) kept" in kept and "org/bert" in kept and "mit" in kept and "org/vit" not in kept
    assert "org/vit" in rejected and "modality" in rejected and "org/remote" in rejected and "remote-code" in rejected
    listing = hub.requests_to("/api/models")[0]
    assert listing.query["filter"] == ["t"] and listing.query["sort"] == ["likes"] and listing.query["limit"] == ["5"]


def test_scan_json_output_and_parameter_limits(hub, capsys):
    assert main(["scan", "--tags", "t", "--max-params", "1K", "--allow-remote-code", "--json", "--explain"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kept"] == []
    assert {(r["reference"].split("@")[0], r["reason"]) for r in data["rejected"]} == {
        ("org/bert", "too-large"), ("org/vit", "too-large"), ("org/remote", "too-large")}
    assert [parse_count(x) for x in ("300000", "110M", "1.5B", "2_000", "4k")] == [
        300_000, 110_000_000, 1_500_000_000, 2000, 4000]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_count("lots")


def test_byte_sizes_read_as_people_write_them():
    # --max-stats-memory 4GB was "invalid <lambda> value: '4GB'"
    sizes = ("2e9", "8GB", "8G", "2GiB", "500MB", "512 MiB", "1_000_000", "1.5gb")
    assert [parse_bytes(x) for x in sizes] == [
        2 * 10**9, 8 * 10**9, 8 * 10**9, 2 * 2**30, 500 * 10**6, 512 * 2**20, 10**6, 1_500_000_000]
    for bad in ("lots", "0", "-1GB", "4XB", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a size in bytes"):
            parse_bytes(bad)


def test_sample_budgets_read_as_people_write_them():
    # --max-samples -5 reached the library and came back as "max_samples must be ... (or None for all rows)"
    assert [parse_samples(x) for x in ("2000", "5k", "2", "0", "all", "ALL")] == [2000, 5000, 2, 0, 0, 0]
    for bad in ("1", "-5", "lots", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a sample budget: give a count of at least 2"):
            parse_samples(bad)


def test_scan_errors_are_one_line_with_exit_code_2(hub, capsys):
    assert main(["scan"]) == 2
    assert "nothing to scan" in capsys.readouterr().err
    hub.fail(r"^/api/models$", status=503, times=10)
    assert main(["scan", "--tags", "t", "--retries", "1", "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-emms: error: listing models (page 1): failed 2 times, last with HTTP 503")


def test_the_installed_command_reaches_the_server_through_the_environment(hub, folders):
    """A subprocess inherits HF_ENDPOINT from conftest: the documented way for CLI and multi-process tests."""
    env = dict(os.environ, HF_TOKEN="hf_never_printed")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("hf-emms")), "scan", "--ids", "org/bert", "--folders", str(folders["vit"]),
         "--explain"], capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    assert "org/bert" in done.stdout and str(folders["vit"].resolve()) in done.stdout
    assert "2 candidate(s) kept" in done.stdout and "hf_never_printed" not in done.stdout + done.stderr
    assert [r.authorized for r in hub.requests_to("/api/models/org/bert")] == [True, True]


def test_offline_the_cache_is_still_scanned_and_hub_ids_say_why_not(hub, hf_cache):
    """HF_HUB_OFFLINE is read at import: a subprocess is the way to test it."""
    from huggingface_hub import snapshot_download

    sha = Path(snapshot_download("org/bert", cache_dir=hf_cache)).name  # snapshots/<commit sha>
    requests_before = len(hub.requests)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("hf-emms")), "scan", "--cache", hf_cache, "--ids", "org/vit", "--json",
         "--explain"], capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    data = json.loads(done.stdout)
    assert [(c["model_id"], c["revision"], c["source"]) for c in data["kept"]] == [("org/bert", sha, "cache")]
    (rejected,) = data["rejected"]
    assert (rejected["reference"], rejected["reason"]) == ("org/vit", "unavailable")
    assert "offline mode (HF_HUB_OFFLINE) is on" in rejected["detail"]
    assert len(hub.requests) == requests_before  # nothing reached the server


def test_scan_takes_models_as_rank_does_and_a_wrong_flag_shows_the_commands_usage(hub, folders, capsys):
    # `hf-emms scan --models ...` (rank's flag) was "unrecognized arguments" under the top-level usage.
    assert main(["scan", "--models", "org/bert", str(folders["vit"]), "--json"]) == 0
    kept = {c["model_id"] for c in json.loads(capsys.readouterr().out)["kept"]}
    assert kept == {"org/bert", str(folders["vit"].resolve())}
    with pytest.raises(SystemExit) as exc_info:
        main(["scan", "--ids", "org/bert", "--bogus"])
    err = capsys.readouterr().err
    assert exc_info.value.code == 2 and "usage: hf-emms scan" in err and "unrecognized arguments: --bogus" in err


def test_layers_counted_from_the_end_are_values_not_flags():
    # `--layers -1,-2` was argparse's "expected one argument": a leading "-" reads as a flag
    from hf_emms.cli import _negative_values, build_parser

    assert _negative_values(["rank", "d", "--layers", "-1,-2", "--quiet"]) == ["rank", "d", "--layers=-1,-2", "--quiet"]
    assert _negative_values(["rank", "d", "--layers", "-1"]) == ["rank", "d", "--layers=-1"]
    untouched = ["rank", "d", "--layers", "auto", "--max-samples", "-3"]  # only --layers' value: -3 stays an error
    assert _negative_values(untouched) == untouched
    args = build_parser().parse_args(_negative_values(["rank", "data.csv", "--layers", "-1,-2"]))
    assert args.layers == (-1, -2)
