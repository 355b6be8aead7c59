"""The statistics cache: a hit recomputes nothing, every ingredient of the key matters, a broken entry is recomputed,
and a run killed midway resumes with what it had finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest

import _tiny_models as tiny
from _features_data import assert_same_stats, text_dataset
from hf_emms import FeatureStats
from hf_emms.features import extract_many, extract_stats

WORKER = Path(__file__).with_name("_features_worker.py")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny.bert(tmp_path_factory.mktemp("cache-models") / "bert")


def _entries(cache: Path) -> list[Path]:
    """Complete cache entries: the record is written last."""
    return sorted(p for p in cache.rglob("*.json") if not p.name.startswith("."))


def test_a_cache_hit_recomputes_nothing(bert, tmp_path):
    ds = text_dataset()
    first = extract_stats(bert, ds, text_column="text", label_column="label", cache_dir=tmp_path, progress=False)
    assert not first.record.cache_hit and len(_entries(tmp_path)) == 1
    # Swap the stored statistics for others: if the second call computed anything, it would not return these.
    planted = FeatureStats().update(np.random.default_rng(0).standard_normal((7, 32)), labels=np.arange(7) % 3)
    planted.save(_entries(tmp_path)[0].with_suffix(".safetensors"))
    second = extract_stats(bert, ds, text_column="text", label_column="label", cache_dir=tmp_path, progress=False)
    assert second.record.cache_hit and second.stats.n == 7
    assert_same_stats(second.stats, planted, rtol=0)
    assert second.record.cache_key == first.record.cache_key and second.record.seconds == first.record.seconds


@pytest.mark.parametrize("change", [
    {"max_samples": 20}, {"seed": 1, "max_samples": 20}, {"pooling": "mean"}, {"dtype": "bfloat16"},
    {"max_length": 8}, {"dataset": "other rows"}, {"targets": "F-labels"}, {"candidate": "edited weights"},
])
def test_every_ingredient_of_the_key_matters(bert, tmp_path, change):
    cache = tmp_path / "cache"
    base = dict(text_column="text", label_column="label", cache_dir=cache, progress=False)
    ds = text_dataset()
    first = extract_stats(bert, ds, max_samples=20 if "seed" in change else None, **base)
    options, candidate = dict(base), bert
    if "dataset" in change:
        ds = ds.select(range(1, len(ds)))
    elif "targets" in change:
        del options["label_column"]
        options["label_embeddings"] = np.zeros((len(ds), 2, 1)) + np.arange(len(ds))[:, None, None]
    elif "candidate" in change:
        candidate = tiny.bert(tmp_path / "bert-2", seed=1)  # same architecture, other weights
    else:
        options.update(change)
    second = extract_stats(candidate, ds, **options)
    assert not second.record.cache_hit and second.record.cache_key != first.record.cache_key
    assert len(_entries(cache)) == 2


def test_a_broken_entry_is_a_miss_and_is_rewritten(bert, tmp_path):
    ds = text_dataset()
    first = extract_stats(bert, ds, text_column="text", label_column="label", cache_dir=tmp_path, progress=False)
    stats_file = _entries(tmp_path)[0].with_suffix(".safetensors")
    stats_file.write_bytes(stats_file.read_bytes()[:100])  # truncated, as by a full disk
    again = extract_stats(bert, ds, text_column="text", label_column="label", cache_dir=tmp_path, progress=False)
    assert not again.record.cache_hit
    assert_same_stats(FeatureStats.load(stats_file), first.stats, rtol=1e-12)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # nothing half-written left behind


def test_a_killed_run_resumes_from_what_it_finished(tmp_path):
    root = tmp_path
    candidates = [
        str(tiny.bert(root / "small")),
        str(tiny.bert(root / "large", hidden=128, layers=4)),  # slow enough to be killed during it
        str(tiny.gpt2(root / "gpt2")),
    ]
    text_dataset(300).save_to_disk(root / "dataset")
    ds = datasets.load_from_disk(root / "dataset")  # as the re-run of a script would: the same fingerprint
    cache = root / "cache"
    (root / "out").mkdir()
    config = root / "config.json"
    config.write_text(json.dumps({"out": str(root / "out"), "dataset": str(root / "dataset"), "candidates": candidates,
                                  "runs": [["auto", 32, "labels"]], "cache_dir": str(cache)}))
    proc = subprocess.Popen([sys.executable, str(WORKER), str(config)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _entries(cache) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # as an out-of-memory killer or a pre-empted node would
    finally:
        proc.wait()
    assert len(_entries(cache)) == 1, "the run was to be killed while extracting the second candidate"

    resumed = extract_many(candidates, ds, text_column="text", label_column="label", batch_size=32,
                           cache_dir=cache, progress=False)
    assert [r.record.cache_hit for r in resumed.values()] == [True, False, False]
    fresh = extract_stats(candidates[0], ds, text_column="text", label_column="label", batch_size=32, progress=False)
    assert_same_stats(resumed[candidates[0]].stats, fresh.stats, rtol=1e-5)  # what the killed run left is right
    again = extract_many(candidates, ds, text_column="text", label_column="label", batch_size=32,
                         cache_dir=cache, progress=False)
    assert all(r.record.cache_hit for r in again.values()) and len(_entries(cache)) == 3
