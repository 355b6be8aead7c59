"""Feature extraction on 2 real CPU processes (torchrun + accelerate, gloo) gives the statistics and the ranking of
one process, data-parallel and candidate-parallel.

Nothing here depends on how a CPU rounds: the reduction is checked on fixed float64 inputs, identical in every
process, against a bound from float64 precision; the forward passes of 1 and 2 processes against a bound from float32
precision (a CPU may pick kernels that round differently in each run: 2.5e-8 relative was seen on AMD EPYC).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import _tiny_models as tiny
from _features_data import assert_same_stats, text_dataset
from _features_worker import fixed_stats
from hf_emms import FeatureStats, emms
from hf_emms.features import choose_mode, extract_many

WORKER = Path(__file__).with_name("_features_worker.py")
N = 60
LAYERS = 2  # of every tiny candidate (the _tiny_models default)
# Reduction of fixed float64 inputs: every statistic is a sum of N terms (products of inputs, about a shift) plus a
# few exact re-basing identities (FeatureStats.merge / all_reduce). IEEE-754 double arithmetic, which every CPU
# implements (with or without FMA), bounds the rounding error of a sum of N terms in any order by N * eps64 times the
# sum of their magnitudes, which assert_same_stats's scale-based tolerances (N * scale^2 for second moments) cover;
# x16 for the re-basing terms.
RTOL_REDUCTION = 16 * N * np.finfo(np.float64).eps  # 2.1e-13
# Forward passes of the same sample on 1 and 2 processes: the same float32 operations, but the kernels a CPU picks
# (vector width, FMA, blocking) may round differently in each run. Each layer (embeddings + LAYERS blocks) adds a
# relative error of a few eps32, compounding like a random walk: sqrt(depth). The statistics are float64 sums of those
# features, so their scale-relative error is the features'. 2.5e-8 was measured on AMD EPYC: 60x below this.
RTOL_FORWARD = 8 * np.finfo(np.float32).eps * np.sqrt(LAYERS + 1)  # 1.7e-6
RUNS = [["data", 1, "labels"], ["data", 4, "labels"], ["candidate", 4, "labels"], ["data", 4, "embeddings"],
        ["auto", 4, "embeddings"]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """One torchrun job of 2 CPU processes doing every run of RUNS; returns its inputs and output folder."""
    root = tmp_path_factory.mktemp("distributed")
    candidates = [
        str(tiny.bert(root / "bert")), str(tiny.gpt2(root / "gpt2")),
        str(tiny.bert(root / "bert-16", hidden=16, seed=2)),
        str(tiny.bert(root / "bert-head", classifier_labels=["neg", "pos"], seed=1)),
    ]
    ds = text_dataset(N)
    ds.save_to_disk(root / "dataset")
    embeddings = np.random.default_rng(0).standard_normal((N, 5, 2))
    np.save(root / "embeddings.npy", embeddings)
    np.savez(root / "fixed.npz", **_fixed_inputs(embeddings))
    out = root / "out"
    out.mkdir()
    config = root / "config.json"
    config.write_text(json.dumps({"out": str(out), "dataset": str(root / "dataset"), "candidates": candidates,
                                  "embeddings": str(root / "embeddings.npy"), "runs": RUNS,
                                  "fixed": str(root / "fixed.npz"), "layers": "auto"}))  # every layer reduced
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(WORKER), str(config)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank 0/2 done" in proc.stdout and "rank 1/2 done" in proc.stdout
    return {"candidates": candidates, "dataset": ds, "embeddings": embeddings, "out": out,
            "fixed": _fixed_inputs(embeddings)}


def _fixed_inputs(embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """Precomputed float64 features (off-centre, so that shifts matter), class ids and the F-labels, seeded."""
    rng = np.random.default_rng(5)
    labels = np.random.default_rng(8).permutation(np.arange(N) % 3)
    return {"x": 5.0 + 3.0 * rng.standard_normal((N, 6)), "labels": labels,
            "embeddings": np.asarray(embeddings, dtype=np.float64)}


def _saved(run, mode, batch_size, target, i, rank):
    stem = run["out"] / f"{mode}-{batch_size}-{target}-{i}-rank{rank}"
    return FeatureStats.load(stem.with_suffix(".safetensors")), json.loads(stem.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def one_process(two_process_run):
    """The same extractions on this one process (one thread, as the workers, so that per-sample forwards match),
    by (batch size, target), each computed once."""
    memo = {}

    def get(batch_size, target):
        if (batch_size, target) not in memo:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                targets = ({"label_column": "label"} if target == "labels"
                           else {"label_embeddings": two_process_run["embeddings"]})
                results = extract_many(two_process_run["candidates"], two_process_run["dataset"], text_column="text",
                                       batch_size=batch_size, progress=False, **targets)
            finally:
                torch.set_num_threads(threads)
            memo[batch_size, target] = [r.stats for r in results.values()]
        return memo[batch_size, target]

    return get


@pytest.mark.parametrize("target", ["labels", "embeddings"])
def test_data_parallel_reduction_is_exact_on_fixed_features(two_process_run, target):
    """The same fixed float64 features, class ids and F-labels, sharded as extraction shards them and all-reduced by
    2 processes, give the statistics of 1 process up to float64 rounding: the reduction is what is under test."""
    want = fixed_stats(two_process_run["fixed"], target, rank=0, world_size=1)
    got = [FeatureStats.load(two_process_run["out"] / f"fixed-{target}-rank{rank}.safetensors") for rank in (0, 1)]
    for stats in got:
        assert stats.n == N
        assert_same_stats(stats, want, rtol=RTOL_REDUCTION)
    assert_same_stats(got[1], got[0], rtol=RTOL_REDUCTION)


def test_data_parallel_forward_passes_match_one_process_to_float32_precision(two_process_run, one_process):
    """Batches of one sample: every sample's features come from the same float32 operations on 1 or 2 processes,
    so the statistics differ by float32 rounding of the forward pass (RTOL_FORWARD), not by the batches."""
    single = one_process(1, "labels")
    for i, want in enumerate(single):
        for rank in (0, 1):
            got, record = _saved(two_process_run, "data", 1, "labels", i, rank)
            assert record["mode"] == "data-parallel" and record["world_size"] == 2 and record["n_samples"] == N
            assert_same_stats(got, want, rtol=RTOL_FORWARD)


@pytest.mark.parametrize(("mode", "target", "record_mode"), [
    ("data", "labels", "data-parallel"), ("candidate", "labels", "candidate-parallel"),
    ("data", "embeddings", "data-parallel"), ("auto", "embeddings", "candidate-parallel"),  # 4 candidates, 2 processes
])
def test_two_processes_give_the_statistics_and_ranking_of_one(two_process_run, one_process, mode, target, record_mode):
    single = one_process(4, target)
    rng = np.random.default_rng(2)
    tables = [rng.standard_normal((3, 6)) for _ in range(2)]  # class-name embeddings of 2 encoders, 3 classes

    def score(stats, rule="gcv"):  # gcv: fast; the default (cross-validation) is checked once below
        return emms(stats, class_embeddings=tables if target == "labels" else None, rule=rule).score

    pairs = [(_saved(two_process_run, mode, 4, target, i, 0), want) for i, want in enumerate(single)]
    for (got, record), want in pairs:
        assert record["mode"] == record_mode
        # every layer's statistics were reduced beside the last layer's, which equal a last-layer run's
        assert record["n_layers"] == 2 and record["layers"] == ["1", "2", "upper"]
        assert_same_stats(got, want, rtol=1e-5)  # padding differs with the batches each process forms
    for i in range(len(single)):  # every process returns every candidate's results, the same ones
        assert_same_stats(_saved(two_process_run, mode, 4, target, i, 1)[0], pairs[i][0][0], rtol=1e-12)
    got_scores = [score(got) for (got, _), _ in pairs]
    want_scores = [score(want) for _, want in pairs]
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-4)
    assert np.argsort(got_scores).tolist() == np.argsort(want_scores).tolist()
    if mode == "data" and target == "labels":
        # Cross-validation folds follow dataset row ids, so sharding and length-sorting leave the default score alone.
        got, want = pairs[0][0][0], pairs[0][1]
        want_score = emms(want, class_embeddings=tables).score
        assert emms(got, class_embeddings=tables).score == pytest.approx(want_score, rel=1e-4)
    heads = [_saved(two_process_run, mode, 4, target, i, 0)[1]["head_classes"] for i in range(4)]
    assert heads == ([None, None, None, 2] if target == "labels" else [None] * 4)


def test_auto_mode_takes_candidate_parallel_when_candidates_fill_the_processes():
    assert choose_mode(5, 1) == "single"
    assert [choose_mode(n, 2) for n in (1, 2, 3, 4, 5)] == [
        "data-parallel", "candidate-parallel", "data-parallel", "candidate-parallel", "candidate-parallel"]
    assert choose_mode(7, 8) == "candidate-parallel" and choose_mode(6, 8) == "data-parallel"
