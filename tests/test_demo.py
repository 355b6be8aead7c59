"""The README's main job (the solver demo) runs, ranks as the README says, and draws its chart."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_solver_demo_ranks_informative_features_first_and_writes_a_chart(tmp_path):
    svg = tmp_path / "chart.svg"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "solver_demo.py"), "--svg", str(svg)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ranking = [line.split()[1] for line in proc.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert ranking[:4] == ["strong-256", "strong-64", "partial-128", "weak-32"]
    assert set(ranking[4:]) == {"random-384", "random-768"}
    bars = [e for e in ET.parse(svg).getroot().iter() if e.tag.endswith("rect") and e.get("width") != "10"]  # legend swatches are 10 wide
    assert len(bars) == 2 * 6


def test_a_demo_size_out_of_range_is_a_usage_error_not_a_crash(capsys):
    from hf_emms.cli import main

    assert main(["demo", "--samples", "1"]) == 2
    assert "between 12 and 6000" in capsys.readouterr().err
