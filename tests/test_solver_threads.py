"""Independent solves side by side (solver/threads.py): the same results, in order, as one after another."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hf_emms.solver.layerwise as layerwise
from hf_emms.solver import FeatureStats
from hf_emms.solver.threads import side_by_side


def _layers(d: int = 24, n: int = 120, count: int = 4) -> dict[str, FeatureStats]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    return {str(i): FeatureStats().update(torch.randn(n, d, generator=g, dtype=torch.float64) + 0.4 * i * y[:, None], y)
            for i in range(count)}


def test_side_by_side_keeps_order_and_restores_torch_threads():
    threads = torch.get_num_threads()
    seen = []
    out = side_by_side(lambda i: (i, seen.append(torch.get_num_threads()))[0] * 2, list(range(7)),
                       device=torch.device("cpu"))
    assert out == [0, 2, 4, 6, 8, 10, 12] and torch.get_num_threads() == threads
    assert set(seen) == ({1} if threads > 1 else {threads})  # each worker's LAPACK runs on its own thread
    assert side_by_side(str, [1, 2], device=None) == ["1", "2"]  # a GPU (or no device): in the caller's thread


def test_side_by_side_raises_the_first_failure_and_restores_threads():
    threads = torch.get_num_threads()

    def boom(i: int) -> int:
        if i == 2:
            raise ValueError("layer 2 failed")
        return i

    with pytest.raises(ValueError, match="layer 2 failed"):
        side_by_side(boom, [0, 1, 2, 3], device=torch.device("cpu"))
    assert torch.get_num_threads() == threads


def test_layers_solved_side_by_side_score_as_one_after_another(monkeypatch):
    layers = _layers()
    tables = [np.random.default_rng(1).standard_normal((3, 8))]
    together = layerwise.emms_layerwise(layers, tables, last="3", control=True)
    monkeypatch.setattr(layerwise, "side_by_side", lambda fn, items, device: [fn(i) for i in items])
    apart = layerwise.emms_layerwise(layers, tables, last="3", control=True)
    assert together.result.score == pytest.approx(apart.result.score, rel=1e-12)
    assert together.control.score == pytest.approx(apart.control.score, rel=1e-12)
    assert together.chosen == apart.chosen and together.best_layer == apart.best_layer
    for key in layers:
        np.testing.assert_allclose(together.per_layer[key].fold_scores, apart.per_layer[key].fold_scores, rtol=1e-12)


def test_two_callers_at_once_both_run_side_by_side_and_threads_come_back(monkeypatch):
    # Two rankings of one process (two Space visitors) may solve at once; torch's thread count is global. The second
    # caller must not read the first one's 1 as the machine's count (it would run serially), and the count from
    # before the first must come back when the last leaves.
    import threading

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()
        workers_of_b = []

        def in_a(i):
            a_inside.set()
            assert b_inside.wait(10)
            return i

        def in_b(i):
            b_inside.set()
            workers_of_b.append((threading.current_thread().name, torch.get_num_threads()))
            assert a_left.wait(10)
            return i

        def run_a():
            side_by_side(in_a, [0, 1], device=torch.device("cpu"))
            a_left.set()

        def run_b():
            assert a_inside.wait(10)
            side_by_side(in_b, [0, 1], device=torch.device("cpu"))

        threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert len(workers_of_b) == 2
        assert all(name.startswith("hf-emms-solve") and n == 1 for name, n in workers_of_b)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
