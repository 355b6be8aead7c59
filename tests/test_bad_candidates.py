"""One broken candidate never ends a ranking (issue 17): each failure to read, load or run a checkpoint is a skipped
row with its reason, and the good candidates are scored. Also the CLI's error boundary: bad input is one line and
exit code 2, never a traceback."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import _tiny_models
from hf_emms import rank

from test_pipeline import _csv, _dataset


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    good = _tiny_models.bert(root / "good", hidden=32, seed=1)

    def copy(name: str) -> Path:
        return Path(shutil.copytree(good, root / name))

    weights = (good / "model.safetensors").read_bytes()
    (copy("truncated") / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (copy("corrupt-header") / "model.safetensors").write_bytes(b"\xff" * 8 + weights[8:])
    (copy("config-list") / "config.json").write_text("[1, 2]")
    not_checkpoint = copy("not-a-checkpoint")
    (not_checkpoint / "config.json").unlink()
    unreadable = copy("unreadable")
    pickled = copy("blocked-pickle")
    (pickled / "model.safetensors").unlink()
    # A pickle that torch's weights_only loader refuses (a datetime is not a tensor): the opt-in reads it and fails.
    torch.save({"embeddings.word_embeddings.weight": datetime.datetime(2026, 1, 1)}, pickled / "pytorch_model.bin")
    return {"good": good, "truncated": root / "truncated", "corrupt": root / "corrupt-header",
            "config_list": root / "config-list", "not_checkpoint": not_checkpoint, "unreadable": unreadable,
            "pickled": pickled}


def test_every_broken_candidate_is_a_skipped_row_and_the_good_one_is_scored(folders, tmp_path, monkeypatch):
    import hf_emms.hub.digests as digests

    # As root nothing is unreadable, so the one fault this machine cannot cause is injected: the OS refusing a file.
    reading = digests._read_sha256

    def refuse(path):
        if folders["unreadable"] in Path(path).parents:
            raise PermissionError(13, "Permission denied", str(path))
        return reading(path)

    monkeypatch.setattr(digests, "_read_sha256", refuse)
    names = ("good", "truncated", "corrupt", "config_list", "not_checkpoint", "unreadable", "pickled")
    ranking = rank(_dataset(), [str(folders[n]) for n in names], encoders=None, max_samples=30, allow_pickle=True,
                   cache_dir=tmp_path / "cache", progress=False)
    rows = {r.model: r for r in ranking.rows}
    assert rows["good"].ok and -2 < rows["good"].emms < 0
    reasons = {name: rows[folders[name].name].reason for name in names[1:]}
    assert all(not rows[folders[name].name].ok for name in names[1:])
    assert "incomplete metadata" in reasons["truncated"] or "truncated" in reasons["truncated"]
    assert reasons["corrupt"] and "config.json holds a JSON list" in reasons["config_list"]
    assert "no checkpoint" in reasons["not_checkpoint"] and "Permission denied" in reasons["unreadable"]
    assert "UnpicklingError" in reasons["pickled"] or "weights_only" in reasons["pickled"]


def test_the_cli_ranks_past_broken_candidates_and_bad_input_is_one_line(folders, tmp_path):
    (tmp_path / "data.csv").write_text(_csv(30))
    cmd = [sys.executable, "-m", "hf_emms.cli"]
    common = ["--encoders", "none", "--cache-dir", str(tmp_path / "cache"), "--quiet",
              "--output-dir", str(tmp_path / "out")]
    ok = subprocess.run([*cmd, "rank", str(tmp_path / "data.csv"), "--models", str(folders["good"]),
                         str(folders["truncated"]), str(folders["config_list"]), *common],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "Traceback" not in ok.stderr, ok.stderr
    assert "| good " in ok.stdout and ok.stdout.count("skipped") == 2
    assert "%|" not in ok.stderr and "it/s" not in ok.stderr  # --quiet: no bar of ours, transformers' or datasets'
    for argv, message in [
        (["demo", "--models", "foo", "--samples", "10", "--cache-dir", str(tmp_path / "cache")], "unknown zoo members"),
        (["annotate", str(folders["good"] / "model.safetensors")], "not a ranking"),
        (["annotate", str(tmp_path / "data.csv")], "not a ranking"),
    ]:
        out = subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        lines = [line for line in out.stderr.splitlines() if line.startswith("hf-emms: error:")]
        assert len(lines) == 1 and message in lines[0], out.stderr
    for budget in ("1", "-5", "many"):  # argparse's own error line, before anything loads
        out = subprocess.run([*cmd, "rank", str(tmp_path / "data.csv"), "--max-samples", budget, *common],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert f"argument --max-samples: '{budget}' is not a sample budget: give a count of at least 2" in out.stderr
    wrong_shape = tmp_path / "wrong.json"
    wrong_shape.write_text(json.dumps({"rows": [1, 2], "meta": []}))
    out = subprocess.run([*cmd, "annotate", str(wrong_shape)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "not a ranking" in out.stderr and "Traceback" not in out.stderr


def test_a_tokenizer_without_its_vocabulary_is_refused_not_scored_on_unknown_tokens(folders, tmp_path):
    # transformers 5 builds a BERT tokenizer of the 5 special tokens when vocab.txt / tokenizer.json are missing: every
    # word became [UNK] and the candidate was scored (EMMS -1.002 on a real MiniLM) like any other, with no sign.
    from safetensors.torch import load_file, save_file

    folder = Path(shutil.copytree(folders["good"], tmp_path / "no-vocab"))
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 4000  # a real vocabulary's size (the tiny tokenizer knows under 200 words)
    (folder / "config.json").write_text(json.dumps(config))
    weights = load_file(folder / "model.safetensors")
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[name] = torch.cat([weights[name], torch.zeros(4000 - len(weights[name]), weights[name].shape[1])])
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    shipped = rank(_dataset(), [str(folder)], encoders=None, max_samples=30, cache_dir=tmp_path / "c1", progress=False)
    assert re.search(r"its tokenizer knows \d+ tokens but the model.s vocabulary has 4000", shipped.rows[0].reason)
    for f in ("tokenizer.json", "vocab.txt"):
        (folder / f).unlink(missing_ok=True)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "tokenizer_class": "BertTokenizer"}))
    lost = rank(_dataset(), [str(folder)], encoders=None, max_samples=30, cache_dir=tmp_path / "c2", progress=False)
    row = lost.rows[0]
    assert not row.ok and re.search(r"its tokenizer knows [1-9] tokens .* vocabulary files .* are missing", row.reason)


def test_a_checkpoint_whose_weight_names_do_not_match_its_architecture_is_refused_not_scored_at_random(folders,
                                                                                                       tmp_path):
    # transformers initialises the weights it cannot find at random and only logs a load report: a checkpoint saved
    # under other names was scored as a random model (EMMS -0.988 on a real MiniLM) with status ok.
    from safetensors.torch import load_file, save_file

    folder = Path(shutil.copytree(folders["good"], tmp_path / "renamed"))
    weights = load_file(folder / "model.safetensors")
    save_file({f"other_library.{k}": v for k, v in weights.items()}, folder / "model.safetensors",
              metadata={"format": "pt"})
    ranking = rank(_dataset(), [str(folder), str(folders["good"])], encoders=None, max_samples=30,
                   cache_dir=tmp_path / "c", progress=False)
    rows = {r.model: r for r in ranking.rows}
    assert rows["good"].ok and not rows["renamed"].ok
    assert re.search(r"100% of BertModel's parameters .* are not in the checkpoint and would be random",
                     rows["renamed"].reason)
