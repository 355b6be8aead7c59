"""The exact simplex QP and sparsemax against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import _dense
from hf_emms import InvalidInputError
from hf_emms.solver import simplex_qp, sparsemax


def random_psd(rng, k, rank, scale):
    a = rng.standard_normal((k, rank))
    return scale * (a @ a.T)


@pytest.mark.parametrize("seed", range(60))
def test_simplex_qp_is_the_global_minimum(seed):
    """Full-rank, singular and badly scaled PSD matrices: KKT holds and nothing found by a
    multi-start optimiser or a grid over the simplex is lower."""
    rng = np.random.default_rng(seed)
    k = 1 + seed % 6
    scale = 10.0 ** rng.integers(-12, 13)
    m = random_psd(rng, k, rank=1 + seed % k if k > 1 else 1, scale=scale)
    lam, value = simplex_qp(m)
    assert lam.min() >= 0 and lam.sum() == pytest.approx(1, abs=1e-12)
    assert value == pytest.approx(lam @ m @ lam, rel=1e-12, abs=1e-15 * scale)
    tol = 1e-9 * np.abs(m).max()
    grad = 2 * m @ lam
    on = lam > 1e-9
    assert np.ptp(grad[on]) <= tol and grad.min() >= grad[on].min() - tol
    assert value <= _dense.simplex_min(m, seed=seed) + tol
    if k <= 3:
        steps = np.linspace(0, 1, 41)
        grid = [np.array(p + (1 - sum(p),)) for p in itertools.product(steps, repeat=k - 1) if sum(p) <= 1 + 1e-12]
        assert value <= min(g @ m @ g for g in grid) + tol


def test_simplex_qp_picks_the_obvious_answers():
    lam, value = simplex_qp(np.diag([4.0, 1.0]))  # minimiser of 4a^2 + b^2 on a + b = 1: (1/5, 4/5)
    np.testing.assert_allclose(lam, [0.2, 0.8], atol=1e-12)
    assert value == pytest.approx(0.8)
    lam, _ = simplex_qp(np.array([[1.0, 2.0], [2.0, 5.0]]))  # the vertex e_0 wins
    np.testing.assert_allclose(lam, [1.0, 0.0])
    lam, value = simplex_qp(np.zeros((3, 3)))  # all optimal: the first, smallest support
    np.testing.assert_allclose(lam, [1.0, 0.0, 0.0])
    assert value == 0.0


def test_simplex_qp_refuses_too_many_f_labels():
    with pytest.raises(InvalidInputError, match="at most 12"):
        simplex_qp(np.eye(13))


@pytest.mark.parametrize("seed", range(20))
def test_sparsemax_is_the_euclidean_projection_on_the_simplex(seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(1 + seed % 7) * 3
    p = sparsemax(z)
    np.testing.assert_allclose(p, _dense.sparsemax_by_bisection(z), atol=1e-12)
    assert p.min() >= 0 and p.sum() == pytest.approx(1)
    # Projection property: <z - p, q - p> <= 0 for every q on the simplex (checked at the vertices).
    for q in np.eye(z.size):
        assert (z - p) @ (q - p) <= 1e-12


def test_solvers_refuse_malformed_input():
    for bad in (np.full((2, 2), np.nan), np.zeros((0, 0)), np.ones((2, 3))):
        with pytest.raises(InvalidInputError, match="finite, square"):
            simplex_qp(bad)
    with pytest.raises(InvalidInputError, match="at least one entry"):
        sparsemax(np.array([]))
