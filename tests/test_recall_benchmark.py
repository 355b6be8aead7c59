"""The recall benchmark still runs end to end on a small generated history (both parts; this checks the script and
its JSON, not the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_recall import write_history

ROOT = Path(__file__).resolve().parents[1]


def test_recall_benchmark_runs_both_parts_and_writes_the_report(tmp_path):
    write_history(tmp_path / "history", n_models=15)
    out = tmp_path / "recall.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "recall.py"), "--history", str(tmp_path / "history"),
           "--embedder", "hashing", "--draws", "1", "--cards", "40", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "leave-one-dataset-out" in proc.stdout and "## Scale: 40 cards" in proc.stdout
    report = json.loads(out.read_text())
    history = report["history"]
    assert set(history["per_dataset"]) == {"reviews", "news", "tweets", "grammar"}
    assert set(history["baselines"]) == {"history_mean", "params", "logme", "random"}
    assert -1 <= history["mean_weighted_tau"] <= 1 and 0 <= history["top3_in_top10"] <= 1
    # recall minus each baseline, paired by held-out dataset: the same datasets' figures, differenced
    hm, versus = history["baselines"]["history_mean"]["per_dataset"], history["versus"]["history_mean"]["weighted_tau"]
    diffs = [r["weighted_tau"] - hm[t]["weighted_tau"] for t, r in history["per_dataset"].items()]
    assert versus["datasets"] == 4 and versus["difference"] == pytest.approx(sum(diffs) / 4)
    assert versus["above_on"] == sum(d > 0 for d in diffs) and "paired by held-out dataset" in proc.stdout
    assert set(report["cold_start"]["baselines"]) == {"model_type_mean", "params"}
    assert report["scale"]["with_eval_results"] == 4  # the model-index of every 10th card, read by the scan
    assert report["scale"]["cards"] == 40 and report["scale"]["seconds"] > 0 and report["scale"]["peak_rss_mb"] > 0
    assert report["config"]["history"] == str(tmp_path / "history")
    assert "too few" in report["noise_ceiling"]["error"]  # no repeated runs in this history: said, not guessed
