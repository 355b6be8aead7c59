"""FeatureStats: accumulation, input checks, persistence, and a real multi-process all-reduce."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from _problems import make_problem
from hf_emms import FeatureStats, IncompatibleStatsError, InvalidInputError, StatsFileError, emms


def dense_centered(x, y=None):
    """Two-pass centred sums written out on the full arrays."""
    xc = x - x.mean(0)
    out = {"scatter_x": xc.T @ xc, "mean_x": x.mean(0), "quartic_x": np.sum(np.sum(xc**2, 1) ** 2)}
    if y is not None:
        yc = y - y.mean(0)
        out["cross"] = np.einsum("nd,njk->djk", xc, yc)
        out["scatter_y"] = np.einsum("njk,njl->jkl", yc, yc)
    return out


def assert_stats_close(stats, expected, rel=1e-10):
    got = stats.centered()
    for name, want in expected.items():
        np.testing.assert_allclose(getattr(got, name), want, rtol=0, atol=rel * max(np.abs(want).max(), 1.0), err_msg=name)


def test_offsets_of_1e4_times_the_spread_keep_their_digits():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 6)) + 1e4 * rng.standard_normal(6)
    y = rng.standard_normal((5000, 3, 2)) - 3e4
    stats = FeatureStats()
    for i in range(0, 5000, 256):
        stats.update(x[i : i + 256], label_embeddings=y[i : i + 256])
    assert_stats_close(stats, dense_centered(x, y))
    # The naive raw-moment formula loses about 8 of the 16 digits here; the shifted sums do not.
    naive = x.T @ x - np.outer(x.sum(0), x.sum(0)) / len(x)
    exact = dense_centered(x)["scatter_x"]
    assert np.abs(naive - exact).max() > 1e3 * np.abs(stats.centered().scatter_x - exact).max()


def test_class_sums_grow_with_new_class_ids_and_accept_torch_and_numpy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 5)).astype(np.float32)
    labels = np.r_[np.zeros(10, int), np.arange(30) % 4]
    stats = FeatureStats().update(torch.from_numpy(x[:10]), labels=torch.from_numpy(labels[:10]))
    assert stats.n_classes == 1
    stats.update(x[10:], labels=labels[10:].astype(np.int32))
    c = stats.centered()
    assert stats.n_classes == 4 and stats.n == 40
    np.testing.assert_array_equal(c.class_count, np.bincount(labels))
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    for k in range(4):
        np.testing.assert_allclose(c.class_scatter[k], xc[labels == k].sum(0), atol=1e-10)


def test_memory_is_independent_of_the_number_of_samples():
    stats = FeatureStats()
    sizes = set()
    for _ in range(5):
        stats.update(np.random.rand(1000, 8), label_embeddings=np.random.rand(1000, 4, 2))
        sizes.add(sum(t.numel() for t in stats._t.values()))
    assert len(sizes) == 1 and stats.n == 5000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": np.ones(4), "labels": np.zeros(4, int)}, "2-D"),
        ({"features": np.ones((4, 3))}, "exactly one target"),
        ({"features": np.ones((4, 3)), "labels": np.zeros(4, int), "label_embeddings": np.ones((4, 2))}, "exactly one target"),
        ({"features": np.ones((4, 3)), "labels": np.zeros(3, int)}, r"shape \(4,\)"),
        ({"features": np.ones((4, 3)), "labels": np.zeros(4)}, "integer class ids"),
        ({"features": np.ones((4, 3)), "labels": -np.ones(4, int)}, ">= 0"),
        ({"features": np.ones((4, 3)), "label_embeddings": np.ones((5, 2, 1))}, r"shape \(4, D2, K\)"),
        ({"features": np.ones((4, 3)), "label_embeddings": np.ones((4, 2, 0))}, "K >= 1"),
        ({"features": [["a", "b"]], "labels": [0]}, "real numbers"),
        ({"features": np.array([[1.0, np.nan], [0, 0]]), "labels": np.zeros(2, int)}, "NaN or inf .*row 0"),
        ({"features": np.array([[1.0, 0], [0, np.inf]]), "labels": np.zeros(2, int)}, "NaN or inf .*row 1"),
        ({"features": np.ones((2, 2)), "label_embeddings": np.array([[1.0], [np.nan]])}, "label_embeddings contain NaN"),
    ],
)
def test_bad_batches_are_named_and_leave_no_trace(kwargs, message):
    stats = FeatureStats()
    with pytest.raises(InvalidInputError, match=message):
        stats.update(**kwargs)
    assert stats.n == 0 and stats.kind is None and not stats._t


def test_a_bad_batch_after_good_ones_leaves_the_statistics_unchanged():
    rng = np.random.default_rng(2)
    stats = FeatureStats().update(rng.standard_normal((20, 3)), labels=np.arange(20) % 2)
    before = stats.centered()
    bad = rng.standard_normal((5, 3))
    bad[3, 1] = np.nan
    with pytest.raises(InvalidInputError, match="row 3"):
        stats.update(bad, labels=np.array([0, 1, 2, 3, 4]))  # new class ids too: no padding may leak
    with pytest.raises(InvalidInputError, match="width 4"):
        stats.update(np.ones((2, 4)), labels=np.zeros(2, int))
    with pytest.raises(InvalidInputError, match="holds classes"):
        stats.update(np.ones((2, 3)), label_embeddings=np.ones((2, 3)))
    after = stats.centered()
    assert stats.n == 20 and stats.n_classes == 2
    np.testing.assert_array_equal(after.scatter_x, before.scatter_x)
    np.testing.assert_array_equal(after.class_scatter, before.class_scatter)


def test_merge_refuses_mismatched_statistics():
    a = FeatureStats().update(np.random.rand(4, 3), labels=np.arange(4) % 2)
    with pytest.raises(IncompatibleStatsError, match="one width"):
        a + FeatureStats().update(np.random.rand(4, 5), labels=np.arange(4) % 2)
    with pytest.raises(IncompatibleStatsError):
        a.merge(FeatureStats().update(np.random.rand(4, 3), label_embeddings=np.random.rand(4, 2)))
    assert (a + FeatureStats()).n == 4 and (FeatureStats() + a).n == 4


@pytest.mark.parametrize("targets", ["label_embeddings", "labels_and_head"])
def test_save_load_round_trip_is_exact_and_atomic(tmp_path, targets):
    p = make_problem(4)
    if targets == "label_embeddings":
        stats = FeatureStats().update(p.x, label_embeddings=p.label_embeddings)
    else:
        stats = FeatureStats().update(p.x, labels=p.labels, head_logits=p.x[:, :3])
    path = stats.save(tmp_path / "deep" / "stats.safetensors")
    assert sorted(os.listdir(path.parent)) == ["stats.safetensors"]  # no temporary file left behind
    loaded = FeatureStats.load(path)
    assert (loaded.n, loaded.kind, loaded.dim, loaded.label_shape) == (stats.n, stats.kind, stats.dim, stats.label_shape)
    for name, t in stats._t.items():
        assert torch.equal(loaded._t[name], t)
    assert emms(loaded).score == emms(stats).score
    assert loaded.n_source_classes == stats.n_source_classes


def _symmetric(t):
    return torch.equal(t, t.transpose(-1, -2))


def test_saving_makes_merged_grams_exactly_symmetric_and_memory_equal_to_the_file(tmp_path):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((700, 37)) * rng.uniform(0.1, 30, 37) + 5).astype(np.float32)
    labels = rng.integers(0, 3, 700)
    a = FeatureStats().update(x[:300], labels=labels[:300], sample_ids=np.arange(300))
    a.update(x[300:450], labels=labels[300:450], sample_ids=np.arange(300, 450))
    b = FeatureStats().update(x[450:] * 3 - 7, labels=labels[450:], sample_ids=np.arange(450, 700))  # another shift
    merged = a + b
    before = {k: v.clone() for k, v in merged._t.items()}
    loaded = FeatureStats.load(merged.save(tmp_path / "merged.safetensors"))
    for name, t in merged._t.items():
        assert torch.equal(loaded._t[name], t), name  # what is in memory is what a load gives back
        if name in ("gram_x", "fold_gram_x"):
            assert _symmetric(t) and torch.equal(torch.triu(t), torch.triu(before[name]))  # the upper half kept
            np.testing.assert_allclose(t, before[name], rtol=0, atol=1e-13 * float(before[name].abs().max()))
        else:
            assert torch.equal(t, before[name]), name


def test_files_store_one_triangle_of_each_symmetric_gram(tmp_path):
    import json

    from safetensors import safe_open

    rng = np.random.default_rng(4)
    stats = FeatureStats().update(rng.standard_normal((200, 64)), labels=rng.integers(0, 2, 200))
    whole = sum(t.numel() * 8 for t in stats._t.values())
    path = stats.save(tmp_path / "packed.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["hf_emms"])["packed"] == ["gram_x", "fold_gram_x"]
        assert tuple(f.get_tensor("fold_gram_x").shape) == (5, 64 * 65 // 2)
    assert path.stat().st_size < 0.56 * whole  # 6 Grams of 64 x 64 are most of the bytes
    loaded = FeatureStats.load(path)
    for name, t in stats._t.items():
        assert torch.equal(loaded._t[name], t), name

    # A Gram whose halves differ by more than rounding is left as it is, stored whole, and read back bit for bit.
    stats._t["gram_x"][0, 1] += 1e-3 * float(stats._t["gram_x"].abs().max())
    path = stats.save(tmp_path / "whole.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["hf_emms"])["packed"] == ["fold_gram_x"]
    assert torch.equal(FeatureStats.load(path)._t["gram_x"], stats._t["gram_x"])


def test_version_2_files_still_load_and_bad_packing_is_a_clear_error(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    rng = np.random.default_rng(5)
    stats = FeatureStats().update(rng.standard_normal((50, 6)), label_embeddings=rng.standard_normal((50, 4, 2)))
    full = {k: v.contiguous() for k, v in stats._t.items()}
    meta = {"format": "hf-emms/feature-stats", "version": 2, "n": 50, "kind": "embeddings"}
    save_file(full, tmp_path / "v2.safetensors", metadata={"hf_emms": json.dumps(meta)})
    loaded = FeatureStats.load(tmp_path / "v2.safetensors")
    assert all(torch.equal(loaded._t[k], v) for k, v in stats._t.items())
    assert emms(loaded).score == emms(stats).score

    packed = load_file(stats.save(tmp_path / "v3.safetensors"))
    meta = {**meta, "version": 3}
    cases = {
        "short": ({**packed, "gram_x": packed["gram_x"][:-1]}, {**meta, "packed": ["gram_x", "fold_gram_x"]}),
        "unknown": (packed, {**meta, "packed": ["gram_x", "cross_xy"]}),
        "not_a_list": (packed, {**meta, "packed": "gram_x"}),
        "unlisted": (packed, {**meta, "packed": ["gram_x"]}),  # fold_gram_x packed but not named: a shape error
    }
    for name, (t, m) in cases.items():
        save_file(t, tmp_path / f"{name}.safetensors", metadata={"hf_emms": json.dumps(m)})
        with pytest.raises(StatsFileError, match="inconsistent"):
            FeatureStats.load(tmp_path / f"{name}.safetensors")


def test_loading_something_else_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(StatsFileError, match="no statistics file"):
        FeatureStats.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(StatsFileError, match="not a readable safetensors"):
        FeatureStats.load(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, tmp_path / "model.safetensors")
    with pytest.raises(StatsFileError, match="not written by FeatureStats"):
        FeatureStats.load(tmp_path / "model.safetensors")
    good = FeatureStats().update(np.random.rand(5, 2), labels=np.arange(5) % 2).save(tmp_path / "good.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:-20])
    with pytest.raises(StatsFileError):
        FeatureStats.load(tmp_path / "cut.safetensors")
    with pytest.raises(InvalidInputError, match="empty"):
        FeatureStats().save(tmp_path / "empty.safetensors")


# ----------------------------------------------------------------------------- torch.distributed
WORLD = 3


def _shard(rank):
    """Rank r holds features offset by r * 1e4 (so its own first-batch shift is far from the others'),
    class ids up to 2 + r, and classifier-head logits over 5 source classes; the last rank holds nothing."""
    if rank == WORLD - 1:
        return np.zeros((0, 7)), np.zeros(0, int), np.zeros((0, 3, 2)), np.zeros((0, 5))
    rng = np.random.default_rng(rank)
    n = 150 + 50 * rank
    x = rng.standard_normal((n, 7)) + rank * 1e4
    labels = np.arange(n) % (3 + rank)
    y = rng.standard_normal((n, 3, 2)) + rank * 1e4
    return x, labels, y, rng.standard_normal((n, 5))


def _worker(rank, port, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        x, labels, y, logits = _shard(rank)
        by_class, by_sample = FeatureStats(), FeatureStats()
        for i in range(0, len(x), 64):
            # Folds follow global sample ids (the reference concatenates the shards in rank order).
            ids = sum(len(_shard(r)[0]) for r in range(rank)) + np.arange(i, min(i + 64, len(x)))
            by_class.update(x[i : i + 64], labels=labels[i : i + 64], head_logits=logits[i : i + 64], sample_ids=ids)
            by_sample.update(x[i : i + 64], label_embeddings=y[i : i + 64], sample_ids=ids)
        by_class.all_reduce()
        by_sample.all_reduce()
        by_class.save(os.path.join(out_dir, f"classes-{rank}.safetensors"))
        by_sample.save(os.path.join(out_dir, f"embeddings-{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_reduce_across_real_processes_equals_one_process_on_all_the_data(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    shards = [_shard(r) for r in range(WORLD)]
    x = np.concatenate([s[0] for s in shards])
    labels = np.concatenate([s[1] for s in shards])
    y = np.concatenate([s[2] for s in shards])
    logits = np.concatenate([s[3] for s in shards])
    single_classes = FeatureStats().update(x, labels=labels, head_logits=logits)
    single_samples = FeatureStats().update(x, label_embeddings=y)
    for rank in range(WORLD):  # every rank, the empty one included, ends with the global statistics
        by_class = FeatureStats.load(tmp_path / f"classes-{rank}.safetensors")
        by_sample = FeatureStats.load(tmp_path / f"embeddings-{rank}.safetensors")
        assert by_class.n == by_sample.n == len(x) and by_class.n_classes == 4
        assert_stats_close(by_sample, dense_centered(x, y))
        got, want = by_class.centered(), single_classes.centered()
        np.testing.assert_array_equal(got.class_count, want.class_count)
        np.testing.assert_allclose(got.class_scatter, want.class_scatter, rtol=0, atol=1e-10 * np.abs(want.class_scatter).max())
        np.testing.assert_array_equal(got.head_hard, want.head_hard)
        np.testing.assert_allclose(got.head_soft, want.head_soft, rtol=1e-12)
        assert got.quartic_x == pytest.approx(want.quartic_x, rel=1e-10)
        assert emms(by_class).score == pytest.approx(emms(single_classes).score, abs=1e-10)
        assert emms(by_sample).score == pytest.approx(emms(single_samples).score, abs=1e-10)


def test_all_reduce_without_a_process_group_is_a_no_op():
    stats = FeatureStats().update(np.random.rand(5, 2), labels=np.arange(5) % 2)
    before = stats.centered().scatter_x.copy()
    assert stats.all_reduce() is stats and stats.n == 5
    np.testing.assert_array_equal(stats.centered().scatter_x, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (see README: GPU checks)")
@pytest.mark.parametrize("seed", range(10))  # every flavour of _problems (wide, degenerate, ill-conditioned, ...)
def test_cuda_tensors_accumulate_and_solve_on_the_gpu_and_agree_with_cpu(seed):
    """Statistics accumulated on the GPU stay there, and cross-validation's fold eigensystems are computed there
    (cv_problem): the scores, fold scores included, equal the CPU's for class labels and per-sample F-labels."""
    p = make_problem(seed)
    gpu = FeatureStats().update(torch.from_numpy(p.x).cuda(), labels=torch.from_numpy(p.labels).cuda())
    cpu = FeatureStats().update(p.x, labels=p.labels)
    assert gpu.device.type == "cuda"
    for g, c in ((emms(gpu, p.tables), emms(cpu, p.tables)),
                 (emms(FeatureStats().update(torch.from_numpy(p.x).cuda(),
                                             label_embeddings=torch.from_numpy(p.label_embeddings).cuda())),
                  emms(FeatureStats().update(p.x, label_embeddings=p.label_embeddings)))):
        assert g.score == pytest.approx(c.score, abs=1e-8)
        np.testing.assert_allclose(g.fold_scores, c.fold_scores, rtol=1e-6, atol=1e-8)


def test_all_reduce_under_accelerate_with_torchrun(tmp_path):
    """accelerate owns the process group here, as it will during feature extraction."""
    out = tmp_path / "stats.safetensors"
    worker = Path(__file__).with_name("_accelerate_worker.py")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()), str(worker), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rank 0/2 done, n=1000" in proc.stdout and "rank 1/2 done, n=1000" in proc.stdout
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 9)) + 1e4
    expected = FeatureStats().update(x, labels=np.arange(1000) % 4)
    got = FeatureStats.load(out)
    assert_stats_close(got, dense_centered(x))
    assert emms(got).score == pytest.approx(emms(expected).score, abs=1e-10)


def test_half_precision_and_integer_features_are_accumulated_in_float64():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((50, 4))).to(torch.bfloat16)
    labels = torch.arange(50) % 3
    half = FeatureStats().update(x, labels=labels)
    exact = FeatureStats().update(x.to(torch.float64).numpy(), labels=labels.numpy())
    np.testing.assert_allclose(half.centered().scatter_x, exact.centered().scatter_x, rtol=1e-12)
    ints = FeatureStats().update(np.arange(20).reshape(10, 2) % 7, labels=np.arange(10) % 2)
    np.testing.assert_allclose(ints.centered().mean_x, (np.arange(20).reshape(10, 2) % 7).mean(0))


def test_awkward_but_valid_inputs_are_accepted():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((30, 4))
    labels = np.arange(30) % 3
    reference = FeatureStats().update(x, labels=labels).centered().scatter_x
    big_endian = x.astype(">f8")
    read_only = x.copy()
    read_only.setflags(write=False)
    for features, y in ((big_endian, labels), (read_only, labels), (x, labels.astype(np.uint16)), (x.T.copy().T, labels)):
        np.testing.assert_allclose(FeatureStats().update(features, labels=y).centered().scatter_x, reference, rtol=1e-12)
    empty = FeatureStats().update(np.zeros((0, 4)), labels=[])
    assert empty.n == 0 and empty.kind is None
    parts = [FeatureStats().update(x[i : i + 10], labels=labels[i : i + 10]) for i in (0, 10, 20)]
    np.testing.assert_allclose(sum(parts).centered().scatter_x, reference, rtol=1e-10)


def test_unusable_inputs_are_refused_and_leave_no_trace():
    stats = FeatureStats().update(np.random.rand(10, 3), labels=np.arange(10) % 2)
    before = stats.centered().scatter_x.copy()
    with pytest.raises(InvalidInputError, match="too large"):
        stats.update(np.full((2, 3), 1e160), labels=np.zeros(2, int))
    with pytest.raises(InvalidInputError, match="consecutive ids"):
        stats.update(np.ones((1, 3)), labels=np.array([2**40]))
    with pytest.raises(InvalidInputError, match="width 0"):
        FeatureStats().update(np.zeros((5, 0)), labels=np.arange(5) % 2)
    assert stats.n == 10 and stats.n_classes == 2
    np.testing.assert_array_equal(stats.centered().scatter_x, before)


def test_loading_inconsistent_files_is_a_clear_error(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    good = FeatureStats().update(np.random.rand(6, 3), labels=np.arange(6) % 2, head_logits=np.random.rand(6, 4))
    path = good.save(tmp_path / "good.safetensors")
    tensors = load_file(path)
    meta = {"format": "hf-emms/feature-stats", "version": 1, "kind": "classes"}
    cases = {
        "no_n": (tensors, meta),
        "zero_n": (tensors, {**meta, "n": 0}),
        "one_head": ({k: v for k, v in tensors.items() if k != "head_soft"}, {**meta, "n": 6}),
        "bad_shape": ({**tensors, "gram_x": torch.zeros(3, 2, dtype=torch.float64)}, {**meta, "n": 6}),
    }
    for name, (t, m) in cases.items():
        save_file(t, tmp_path / f"{name}.safetensors", metadata={"hf_emms": json.dumps(m)})
        with pytest.raises(StatsFileError):
            FeatureStats.load(tmp_path / f"{name}.safetensors")


# ---------------------------------------------------------------- issue 16: the split keeps every import path
def test_every_public_name_still_imports_from_stats_and_save_load_all_reduce_stay_methods():
    from hf_emms.solver.stats import (  # noqa: F401
        N_FOLDS, CenteredStats, FeatureStats as Stats, as_tensor, collective_device, fold_of, head_tables, move_sums,
    )
    from hf_emms.solver import collective, stats_io

    assert Stats is FeatureStats and collective_device is collective.collective_device
    assert all(callable(getattr(FeatureStats, m)) for m in ("save", "load", "all_reduce", "merge"))
    assert stats_io.load_stats.__name__ == "load_stats"


# ---------------------------------------------------------------- issue 17: bad input, bounded memory
@pytest.mark.parametrize(
    "labels, message",
    [
        ([0, 10**7], r"class id 10000000 but only 2 distinct classes.*np.unique"),
        ([0, 2**63 - 1], r"class id 9223372036854775807"),
        (np.array([0, 2**64 - 1], dtype=np.uint64), "beyond int64"),
        ([0.0, 1e30], "integer class ids"),
        ([0.0, np.nan], "integer class ids"),
        ([0.5, 1.0], "integer class ids"),
        ([True, False], "integer class ids"),
        ([-3, 0], ">= 0; got -3"),
    ],
)
def test_raw_label_values_are_refused_with_the_fix_before_anything_is_allocated(labels, message):
    stats = FeatureStats()
    with pytest.raises(InvalidInputError, match=message):
        stats.update(np.random.rand(2, 8), labels=labels)
    assert stats.n == 0 and not stats._t


def test_class_ids_up_to_the_bound_keep_the_dense_layout():
    from hf_emms.solver.inputs import MAX_CLASSES

    stats = FeatureStats().update(np.random.rand(4, 2), labels=[0, 1, 0, 9])
    assert stats.n_classes == 10  # today's layout: one row per id 0..max
    with pytest.raises(InvalidInputError, match=f"class id {MAX_CLASSES}"):
        FeatureStats().update(np.random.rand(2, 2), labels=[0, MAX_CLASSES])


def test_memory_estimate_counts_the_fold_copies_and_is_enforced_before_allocating(monkeypatch):
    from hf_emms.solver.inputs import stats_bytes

    d1, c = 8, 1000
    stats = FeatureStats().update(np.random.rand(50, d1), labels=np.arange(50) % c + (c - 50))
    held = sum(t.numel() * 8 for t in stats._t.values())
    estimate = stats_bytes(d1, stats.folds, n_classes=c, batch=50)
    assert held <= estimate <= 3 * held  # counts every copy (the old guard counted 1 of 6 class tables)
    monkeypatch.setenv("HF_EMMS_MAX_STATS_BYTES", str(held // 2))
    with pytest.raises(InvalidInputError, match=r"1000 class ids.*needed, the limit is .*HF_EMMS_MAX_STATS_BYTES"):
        FeatureStats().update(np.random.rand(50, d1), labels=np.arange(50) % c + (c - 50))
    monkeypatch.setenv("HF_EMMS_MAX_STATS_BYTES", "lots")
    with pytest.raises(InvalidInputError, match="HF_EMMS_MAX_STATS_BYTES must be"):
        FeatureStats().update(np.random.rand(2, 2), labels=[0, 1])


def test_features_too_wide_for_the_gram_budget_are_refused_naming_width_bytes_and_limit():
    stats = FeatureStats()
    with pytest.raises(InvalidInputError, match=r"width 100000 .*GiB.*limit is 8 GiB.*Pool or project"):
        stats.update(np.zeros((10, 100_000), np.float32), labels=np.arange(10) % 2)
    with pytest.raises(InvalidInputError, match="width 100000"):
        stats.update(np.zeros((10, 100_000), np.float32), label_embeddings=np.ones((10, 3)))
    assert stats.n == 0 and not stats._t


def test_class_sets_that_differ_between_batches_and_merges_line_up_by_id():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((60, 4)), np.r_[np.arange(30) % 3, 3 + np.arange(30) % 4]
    whole = FeatureStats().update(x, labels=y)
    parts = FeatureStats().update(x[:30], labels=y[:30]) + FeatureStats(folds=5).update(x[30:], labels=y[30:], sample_ids=np.arange(30, 60))
    assert parts.n_classes == whole.n_classes == 7
    np.testing.assert_allclose(parts.centered().class_scatter, whole.centered().class_scatter, atol=1e-10)
    np.testing.assert_array_equal(parts.centered().class_count, whole.centered().class_count)


def test_index_data_reaches_a_device_in_one_copy_with_each_part_intact():
    """``to_device`` (FeatureStats.update's host-to-device path for folds, class cells and counts) concatenates the
    parts into one buffer and splits it again: each part keeps its shape and values; on the CPU nothing is copied."""
    from hf_emms.solver.kernels import to_device

    parts = [torch.arange(7), torch.tensor([3, 1, 4, 1, 5]).reshape(5), torch.arange(12).reshape(3, 4), torch.tensor([9])]
    same = to_device(torch.device("cpu"), *parts)
    assert all(a is b for a, b in zip(same, parts))
    moved = to_device(torch.device("meta"), *parts)  # any non-CPU device: one buffer, split back into the parts
    assert [(m.device.type, m.shape, m.dtype) for m in moved] == [("meta", p.shape, torch.int64) for p in parts]
    if torch.cuda.is_available():
        back = to_device(torch.device("cuda"), *parts)
        assert all(torch.equal(b.cpu(), p) for b, p in zip(back, parts))


def test_features_on_a_device_without_float64_are_summed_on_the_host():
    """device="mps" (Apple's GPU has no float64): the sums would fail in every candidate; the batch moves to the
    host first. This machine has no Apple GPU, so a stand-in carries the one attribute read and the move."""
    from hf_emms.solver.stats import on_float64_device

    class OnMps:
        device = torch.device("mps")

        def cpu(self):
            return torch.ones(4, 3)

    moved = on_float64_device(OnMps())
    assert isinstance(moved, torch.Tensor) and moved.device.type == "cpu"
    stats = FeatureStats().update(on_float64_device(OnMps()), [0, 1, 0, 1])
    assert stats.n == 4 and stats.device.type == "cpu"
    here = torch.ones(2, 2)
    assert on_float64_device(here) is here and on_float64_device(None) is None
