"""The extraction benchmark still runs end to end (a tiny model and a few sentences: this checks the script, not the
speed; the real run uses all-MiniLM-L6-v2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import _tiny_models as tiny

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "text" / "sst2" / "stsa.binary.train"


@pytest.mark.skipif(not SST2.is_file(), reason="the shared benchmark data (../shared/data/text/sst2) is absent")
def test_extraction_benchmark_runs_and_reports_every_row(tmp_path):
    model = tiny.bert(tmp_path / "bert")
    out = tmp_path / "extraction.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "extraction.py"), "--model", str(model), "--max-length", "64",
           "--n", "40", "--naive-n", "6", "--batch-size", "16", "--repeats", "1", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| hf-emms extract_stats (to statistics)" in proc.stdout and "target >= 3x" in proc.stdout
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"naive", "hand", "hand-sorted", "hf-emms"}
    assert report["results"]["naive"]["n"] == 6 and report["results"]["hf-emms"]["n"] == 40
    assert report["config"]["max_length"] == 64 and report["config"]["model"] == "bert"
    for row in report["results"].values():
        assert row["seconds"] > 0 and row["samples_per_s"] > 0
    assert 0 < report["ratios"]["statistics_share"]
