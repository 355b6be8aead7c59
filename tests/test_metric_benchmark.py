"""The metric benchmark still runs end to end (tiny sizes: this checks the script, not the speed): both paths
timed and measured, and the script's own check that the metric's score equals the solver's bit for bit."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_metric_benchmark_runs_and_writes_both_rows(tmp_path):
    out = tmp_path / "metric.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "metric.py"), "--n", "300", "--d", "8", "--classes", "3",
           "--d2", "4", "--k", "2", "--repeats", "1", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # non-zero also when the two scores differ
    assert "| metric   |" in proc.stdout and "metric time / solver time" in proc.stdout
    report = json.loads(out.read_text())
    assert [row["path"] for row in report["rows"]] == ["solver", "metric"]
    assert report["config"]["n"] == 300 and report["input_mb"] == 300 * 8 * 4 / 2**20
    for row in report["rows"]:  # at this size the extra memory is ~0 MB, within the noise of reading RSS
        assert row["seconds"] > 0 and math.isfinite(row["extra_mb"])
