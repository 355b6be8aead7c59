"""`hf-emms demo` as a user runs it, on a small budget: real checkpoints from the package registry, offline."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_ranks_the_random_init_control_last_and_names_its_encoders(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "hf_emms.cli", "demo", "--samples", "150", "--models", "minilm-6", "minilm-1",
         "minilm-random", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "F-label encoders: minilm-6 and mpnet-12" in out.stdout and "emms_one_hot" in out.stdout
    rows = json.loads((tmp_path / "out" / "ranking.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert rows[-1]["model"] == "minilm-random"
    assert min(r["emms_one_hot"] for r in rows[:-1]) > rows[-1]["emms_one_hot"]  # the control agrees
    assert set(rows[0]["emms_weights"]) == {"minilm-6", "mpnet-12"}
    assert (tmp_path / "out" / "ranking.png").stat().st_size > 10_000
