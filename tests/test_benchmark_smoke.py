"""The solver benchmark still runs end to end (tiny sizes: this checks the script, not the speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_solver_benchmark_runs_and_writes_every_row(tmp_path):
    out = tmp_path / "solver.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "solver.py"), "--n", "600", "--d1", "24", "--d2", "8",
           "--k", "2", "--classes", "5", "--source-classes", "7", "--stream-n", "1800", "--batch-size", "256", "--repeats", "1", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| classes (stats + exact EMMS)" in proc.stdout and "target >= 30x" in proc.stdout
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"classes", "per-sample", "dense-classes", "dense-per-sample", "streamed", "streamed-large",
                                         "logme", "hscore", "hscore-shrinkage", "nce", "leep"}
    assert report["results"]["streamed-large"]["n"] == 1800
    assert report["config"]["d1"] == 24 and report["environment"]["torch"]
    for row in report["results"].values():
        assert row["seconds"] > 0 and row["peak_mb"] > 0


def test_rank_profile_benchmark_runs_and_accounts_for_each_candidate(tmp_path):
    out = tmp_path / "profile.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "rank_profile.py"), "--samples", "60", "--members", "minilm-1",
           "--scale", "1", "2", "--json", str(out), "--plot", str(tmp_path / "profile.png")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "## Profile" in proc.stdout and "## Scale" in proc.stdout and "target <= 15%" in proc.stdout
    report = json.loads(out.read_text())
    phases = report["candidates"]["minilm-1"]["phases"]
    assert phases["forward"] > 0 and "pooling" in phases and 0 <= report["overhead_share"]["minilm-1"] <= 1
    assert [row["candidates"] for row in report["scale"]] == [1, 2]
    assert (tmp_path / "profile.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Layers" in proc.stdout
    (layers,) = report["layers"]  # minilm-1: one layer, so 'auto' reads it alone and scores as 'last'
    assert layers["candidate"] == "minilm-1" and layers["statistics_kept"] == 1 and layers["ratio"] > 0
    assert layers["emms"] == layers["emms_last"]
    assert "## Overlap" in proc.stdout
    assert [(r["overlap"], r["same_scores"]) for r in report["overlap"]] == [(False, True), (True, True)]
