"""The SE calibration benchmark still runs end to end (600 sentences, three draws: this checks the script and its
JSON, not the figures; the real run uses all 6,920)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "text" / "sst2" / "stsa.binary.train"


@pytest.mark.skipif(not SST2.is_file(), reason="the shared benchmark data (../shared/data/text/sst2) is absent")
def test_se_calibration_benchmark_runs_and_reports_each_draw_size(tmp_path):
    out = tmp_path / "se.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "se_calibration.py"), "--rows", "600", "--sizes", "200",
           "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| rows per draw | draws |" in proc.stdout
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert (row["n"], row["draws"]) == (200, 3) and report["config"]["data"] == "SST-2 train (600 sentences)"
    assert row["score_spread"] > 0 and row["mean_se"] > 0
    assert row["se_ratio"] == row["mean_se"] / row["score_spread"]
    assert row["difference_se_ratio"] == row["mean_difference_se"] / row["difference_spread"]
