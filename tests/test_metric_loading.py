"""The `emms` evaluate module loads the three ways the issue names, offline, and returns exactly what
hf_emms.emms_score returns: evaluate.load("emms") from spaces/, evaluate.load("spaces/emms") from the repository
root, hf_emms.load_metric() from any directory, and evaluate.load("emms") from any directory after
`hf-emms install-metric` (a real subprocess with its own module cache). The wheel case is test_metric_wheel.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import evaluate
import numpy as np
import pytest
from evaluate.loading import CachedEvaluationModuleFactory

import hf_emms
from hf_emms import InvalidInputError, cli, emms_score
from hf_emms.metric import install_metric, metric_module_path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "spaces" / "emms" / "emms.py"
NAMES = ["ant", "bee", "cow"]
# Evaluates the module in a fresh interpreter; prints the result and the name the module was imported under.
LOAD_AND_COMPUTE = """
import json, sys, evaluate, numpy as np
task = np.load(sys.argv[1])
metric = evaluate.load("emms")
out = metric.compute(references=task["y"], features=task["x"], class_embeddings=task["tables"])
print(json.dumps({"result": out, "module": type(metric).__module__}))
"""


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(3)
    y = rng.integers(0, len(NAMES), 150)
    x = (rng.standard_normal((len(NAMES), 8)) * 1.5)[y] + rng.standard_normal((150, 8))
    return x.astype(np.float32), y, np.stack([rng.standard_normal((len(NAMES), 5)) for _ in range(2)])


def _same(out: dict, ref) -> None:
    assert out["emms"] == ref.score
    assert out["emms_weights"] == [float(w) for w in ref.weights]


def _loaded_from(metric, script: Path) -> None:
    """evaluate imports a copy it makes in its module cache: it must be a copy of ``script``."""
    copied = Path(sys.modules[type(metric).__module__].__file__)
    assert copied.read_bytes() == script.read_bytes()


def test_evaluate_load_emms_from_the_spaces_folder(monkeypatch, task):
    x, y, tables = task
    monkeypatch.chdir(ROOT / "spaces")
    metric = evaluate.load("emms")
    _loaded_from(metric, SCRIPT)
    _same(metric.compute(references=y, features=x, class_embeddings=tables), emms_score(x, y, class_embeddings=tables))
    # Names go through Arrow as strings and keep their meaning.
    names = [NAMES[i] for i in y]
    _same(metric.compute(references=names, features=x, class_names=NAMES, class_embeddings=tables),
          emms_score(x, y, class_embeddings=tables))


def test_evaluate_load_spaces_emms_from_the_repository_root_with_add_batch(monkeypatch, task):
    x, y, tables = task
    monkeypatch.chdir(ROOT)
    metric = evaluate.load("spaces/emms")
    _loaded_from(metric, SCRIPT)
    for lo in range(0, len(y), 64):  # evaluate's batch-by-batch idiom: references first, features at compute
        metric.add_batch(references=y[lo : lo + 64])
    out = metric.compute(features=x, class_embeddings=tables, logme=True)
    _same(out, emms_score(x, y, class_embeddings=tables))
    assert np.isfinite(out["logme"])


def test_load_metric_works_from_any_directory(monkeypatch, tmp_path, task):
    x, y, tables = task
    monkeypatch.chdir(tmp_path)
    assert metric_module_path() == SCRIPT.parent  # this checkout's editable install maps spaces/emms, no copy
    metric = hf_emms.load_metric()
    _loaded_from(metric, SCRIPT)
    _same(metric.compute(references=y, features=x, class_embeddings=tables), emms_score(x, y, class_embeddings=tables))


def test_bad_input_through_evaluate_is_named(monkeypatch, task):
    x, y, tables = task
    metric = hf_emms.load_metric()
    with pytest.raises(InvalidInputError, match="features= is required"):
        metric.compute(references=y)
    # evaluate stores numbers as float64: a fractional label must not become a class id silently.
    with pytest.raises(InvalidInputError, match="whole numbers"):
        metric.compute(references=(y + 0.5).tolist(), features=x)
    with pytest.raises(InvalidInputError, match="features have 149 rows but there are 150 references"):
        metric.compute(references=y, features=x[1:])
    for several in ([[int(v), int(v)] for v in y], [["a cat", "a pet"] for _ in y]):  # several labels a sample
        with pytest.raises(InvalidInputError, match="one class id, name, text or number per sample"):
            metric.compute(references=several, features=x)


def test_hostile_references_through_evaluate_are_named_before_evaluate_sees_them(monkeypatch, task):
    """Issue 17: [] was an IndexError inside evaluate, None an error about cache files, 2**63-1 and 1e30 became the
    class id -9223372036854775808 (evaluate stores numbers as float64, whose cast to int64 overflowed)."""
    x, y, _ = task
    metric = hf_emms.load_metric()
    cases = [([], x[:0], "references are empty"), (None, x, "references= is required"),
             ([2**63 - 1, *y[1:].tolist()], x, r"9\.223372036854776e\+18, not a class id"),
             ([1e30, *y[1:].tolist()], x, r"1e\+30, not a class id"), ("abc", x[:3], "must be a sequence")]
    for references, features, message in cases:
        with pytest.raises(InvalidInputError, match=message) as exc_info:
            metric.compute(references=references, features=features)
        assert "-9223372036854775808" not in str(exc_info.value) and "\n" not in str(exc_info.value)
    with pytest.raises(InvalidInputError, match="references are empty"):
        metric.add_batch(references=[])
    with pytest.raises(InvalidInputError, match="EMMS takes no predictions"):
        metric.compute(predictions=y, references=y, features=x)
    # The module still works after refusing: and references added batch by batch are not "missing".
    metric.add_batch(references=y)
    _same(metric.compute(features=x), emms_score(x, y))


def test_install_metric_then_evaluate_load_emms_from_any_directory_offline(monkeypatch, tmp_path, capsys, task):
    x, y, tables = task
    cache, elsewhere, other = tmp_path / "modules", tmp_path / "elsewhere", tmp_path / "other"
    elsewhere.mkdir()
    other.mkdir()
    np.savez(tmp_path / "task.npz", x=x, y=y, tables=tables)
    monkeypatch.chdir(elsewhere)
    # The command line in this process (evaluate is imported already), then a fresh interpreter that has
    # evaluate's default module cache pointed at the same folder, offline, in another directory.
    assert cli.main(["install-metric", "--modules-cache", str(cache)]) == 0
    installed = next(cache.rglob("emms.py"))
    assert str(installed) in capsys.readouterr().out
    assert installed.read_bytes() == SCRIPT.read_bytes()

    env = {**os.environ, "HF_MODULES_CACHE": str(cache), "HF_EVALUATE_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_COMPUTE, str(tmp_path / "task.npz")], cwd=other, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["module"].startswith("evaluate_modules.metrics.evaluate-metric--emms.")  # from the module cache
    _same(answer["result"], emms_score(x, y, class_embeddings=tables))


def test_install_metric_defaults_to_evaluates_module_cache():
    default = Path(evaluate.config.HF_MODULES_CACHE)
    if not default.is_relative_to(os.environ["HF_HOME"]):  # conftest's throw-away HF_HOME, unless overridden
        pytest.skip(f"HF_MODULES_CACHE is set to {default}: not writing into a developer's cache")
    assert install_metric().is_relative_to(default / "evaluate_modules" / "metrics" / "evaluate-metric--emms")


def test_install_metric_is_atomic_idempotent_and_newest(tmp_path):
    cache = tmp_path / "modules"
    first = install_metric(modules_cache=cache)
    folder = first.parent
    assert first.read_bytes() == SCRIPT.read_bytes() and (folder / "__init__.py").exists()
    assert len(folder.name) == 64 and not [p for p in folder.parent.iterdir() if p.name.startswith(".install-")]
    # Another version installed since (evaluate takes the newest): re-installing makes this one the newest again.
    other = folder.parent / ("0" * 64)
    other.mkdir()
    (other / "emms.py").write_text("# another version\n")
    now = time.time()
    os.utime(first, (now - 120, now - 120))
    os.utime(other / "emms.py", (now - 60, now - 60))

    def picked() -> str:  # evaluate's own lookup of evaluate.load("emms") in its module cache
        factory = CachedEvaluationModuleFactory("evaluate-metric--emms", dynamic_modules_path=str(cache / "evaluate_modules"))
        return factory.get_module().hash

    assert picked() == other.name
    assert install_metric(modules_cache=cache) == first
    assert picked() == folder.name
    # What a crash of some other tool left behind (the folder without the script) is replaced, not trusted.
    (folder / "emms.py").unlink()
    assert install_metric(modules_cache=cache).read_bytes() == SCRIPT.read_bytes()
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted(["__init__.py", folder.name, other.name])
