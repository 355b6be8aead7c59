"""A built wheel carries the evaluate module (spaces/emms mapped to hf_emms._emms_space, no copy kept in the
repository), and hf_emms.load_metric() works from it, in a fresh process, from a directory outside any checkout.

The wheel is built from a copy of the files it is made of (so no build/ or egg-info lands in the checkout) and
installed with ``pip install --target`` into a folder put first on PYTHONPATH, so that its hf_emms shadows the
editable one while the dependencies come from this environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from hf_emms import emms_score

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "hf_emms", "spaces/emms")
LOAD_AND_COMPUTE = """
import json, sys, numpy as np, hf_emms
from hf_emms.metric import metric_module_path
task = np.load(sys.argv[1])
out = hf_emms.load_metric().compute(references=task["y"], features=task["x"])
print(json.dumps({"result": out, "package": hf_emms.__file__, "module": str(metric_module_path())}))
"""


def _pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--disable-pip-version-check", "-q"],
                          cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def test_wheel_carries_the_module_and_load_metric_uses_it(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, src / name)
    _pip("wheel", "--no-build-isolation", str(src), "-w", str(tmp_path / "dist"), cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("hf_emms-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("hf_emms/_emms_space/emms.py") == (ROOT / "spaces" / "emms" / "emms.py").read_bytes()
        assert "hf_emms/_emms_space/__init__.py" in zf.namelist()
        assert not [n for n in zf.namelist() if n.startswith("spaces/")]  # no stray top-level package

    site = tmp_path / "site"
    _pip("install", "--no-compile", "--target", str(site), str(wheel), cwd=tmp_path)
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 90)
    x = np.eye(3)[y] + rng.standard_normal((90, 3))
    np.savez(tmp_path / "task.npz", x=x, y=y)
    outside = tmp_path / "outside"
    outside.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_EVALUATE_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_COMPUTE, str(tmp_path / "task.npz")], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(answer["package"]).is_relative_to(site)  # the wheel's hf_emms, not this checkout's
    assert Path(answer["module"]) == site / "hf_emms" / "_emms_space"
    ref = emms_score(x, y)
    assert answer["result"] == {"emms": ref.score, "emms_se": ref.se, "emms_weights": [float(w) for w in ref.weights]}
