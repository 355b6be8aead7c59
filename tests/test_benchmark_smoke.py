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
