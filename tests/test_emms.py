"""EMMS from streamed statistics against dense brute-force references on many random problems.

Tolerances are absolute on residual sums of squares, scaled by the total sum of squares of one
standardised F-label, N * D2: scores near 0 make relative tolerances meaningless.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import _dense
from _problems import make_problem
from hf_emms import FeatureStats, InvalidInputError, emms, emms_reference, emms_score
from hf_emms.solver.spectrum import spectrum

SEEDS = range(40)  # 5 flavours x K = 1..5, and more
TOL = 1e-8


def per_sample_stats(p, batch=17):
    stats = FeatureStats()
    for i in range(0, len(p.x), batch):
        stats.update(p.x[i : i + batch], label_embeddings=p.label_embeddings[i : i + batch])
    return stats


def class_stats(p, batch=13):
    stats = FeatureStats()
    for i in range(0, len(p.x), batch):
        stats.update(p.x[i : i + batch], labels=p.labels[i : i + batch])
    return stats


def check_simplex_optimum(m, lam, tss):
    """lam is feasible, satisfies the KKT conditions of min lam^T m lam on the simplex, and is no
    worse than a multi-start general-purpose optimiser."""
    assert lam.min() >= 0 and abs(lam.sum() - 1) < 1e-12
    grad = 2 * m @ lam
    floor = grad[lam > 1e-9].min()
    assert np.all(np.abs(grad[lam > 1e-9] - floor) <= TOL * tss), "gradient not equal on the support"
    assert np.all(grad >= floor - TOL * tss), "a vertex outside the support would descend"
    assert lam @ m @ lam <= _dense.simplex_min(m) + TOL * tss


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("path", ["per_sample", "classes"])
def test_in_sample_equals_dense_least_squares(seed, path):
    p = make_problem(seed)
    if path == "per_sample":
        stats, ys = per_sample_stats(p), _dense.f_labels(p.label_embeddings)
        result = emms(stats, rule="in_sample")
        sp = spectrum(stats.centered())
    else:
        stats, ys = class_stats(p), _dense.f_labels(p.class_label_embeddings)
        result = emms(stats, p.tables, rule="in_sample")
        sp = spectrum(stats.centered(), p.tables)
    n, d2 = p.x.shape[0], ys[0].shape[1]
    tss = n * d2
    m = _dense.residual_matrix(_dense.standardize(p.x), ys)
    np.testing.assert_allclose(sp.t - sp.q.sum(0), m, rtol=0, atol=TOL * tss)
    assert result.score == pytest.approx(-(result.weights @ m @ result.weights) / tss, abs=TOL)
    check_simplex_optimum(m, result.weights, tss)
    assert (result.n, result.d1, result.d2, result.k) == (n, p.x.shape[1], d2, len(p.tables))


@pytest.mark.parametrize("seed", SEEDS)
def test_class_path_equals_per_sample_path_on_expanded_labels(seed):
    """Y_k = E_k[y] given per sample must give what the class path gives from class sums."""
    p = make_problem(seed)
    by_class = class_stats(p)
    by_sample = FeatureStats().update(p.x, label_embeddings=p.class_label_embeddings)
    for rule in ("cv", "gcv", "in_sample"):
        a, b = emms(by_class, p.tables, rule=rule), emms(by_sample, rule=rule)
        assert a.score == pytest.approx(b.score, abs=TOL)
        np.testing.assert_allclose(a.weights, b.weights, atol=1e-6)
    assert emms_reference(by_class, p.tables).score == pytest.approx(emms_reference(by_sample).score, abs=TOL * p.tables[0].shape[1] ** 2)


@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_cv_equals_dense_kfold_ridge_and_is_minimal(seed):
    p = make_problem(seed)
    folds = _dense.folds_of(len(p.x))
    for result, emb in ((emms(per_sample_stats(p)), p.label_embeddings), (emms(class_stats(p), p.tables), p.class_label_embeddings)):
        n, d2 = len(p.x), result.d2
        tol = TOL * n * d2
        assert result.rule == "cv"
        lam = result.weights
        assert -result.score * n * d2 == pytest.approx(lam @ _dense.ridge_kfold(p.x, emb, result.ridge, folds) @ lam, abs=tol)
        # No ridge on a coarse grid, with weights optimised by SLSQP, beats the reported optimum.
        for alpha in [0.0, *np.logspace(-6, 4, 6)]:
            assert -result.score * n * d2 <= _dense.simplex_min(_dense.ridge_kfold(p.x, emb, alpha, folds)) + tol


@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_gcv_equals_dense_ridge_and_is_minimal(seed):
    p = make_problem(seed)
    stats = per_sample_stats(p)
    result = emms(stats, rule="gcv")
    xs, ys = _dense.standardize(p.x), _dense.f_labels(p.label_embeddings)
    n, d2 = xs.shape[0], ys[0].shape[1]
    eig = np.linalg.eigvalsh(xs.T @ xs)
    mean_s = eig[eig > 1e-10 * eig.max()].mean()
    gcv, tr = _dense.ridge_gcv(xs, ys, result.weights, result.ridge * mean_s)
    slack = TOL / (1 - tr / n) ** 2
    assert -result.score == pytest.approx(gcv, abs=slack)
    assert result.dof == pytest.approx(tr, abs=1e-8)
    # No ridge on a coarse grid, with the weights optimised by SLSQP, beats the reported optimum.
    for a in mean_s * np.logspace(-8, 4, 13):
        hat = np.full((n, n), 1 / n) + xs @ np.linalg.pinv(xs.T @ xs + a * np.eye(xs.shape[1]), hermitian=True) @ xs.T
        rs = [y - hat @ y for y in ys]
        m = np.array([[np.sum(r * q) for q in rs] for r in rs])
        best = n * _dense.simplex_min(m) / (n - np.trace(hat)) ** 2 / d2
        assert -result.score <= best + slack


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_equals_dense_transcription_of_official_algorithm(seed):
    p = make_problem(seed)
    d2 = p.label_embeddings.shape[1]
    ours = emms_reference(per_sample_stats(p))
    assert ours.score == pytest.approx(_dense.official_one_pass(p.x, p.label_embeddings), abs=TOL * d2**2)
    assert ours.rule == "reference" and ours.weights.sum() == pytest.approx(1)


def test_ill_conditioned_problems_are_ill_conditioned():
    """Guard on the generator: the 'ill_conditioned' flavour really is, after standardisation."""
    conds = [np.linalg.cond(_dense.standardize(make_problem(s).x)) for s in SEEDS if s % 5 == 3]
    assert min(conds) > 100


@pytest.mark.parametrize("seed", range(10))
def test_batching_order_and_merge_tree_do_not_matter(seed):
    p = make_problem(seed)
    rng = np.random.default_rng(seed)
    n = len(p.x)
    reference = FeatureStats().update(p.x, label_embeddings=p.label_embeddings)
    cuts = np.sort(rng.choice(np.arange(1, n), size=6, replace=False))
    parts = []
    for idx in rng.permutation(len(cuts) + 1):  # batches in a random order, each in its own accumulator
        lo, hi = ([0, *cuts][idx], [*cuts, n][idx])
        parts.append(FeatureStats().update(p.x[lo:hi], label_embeddings=p.label_embeddings[lo:hi], sample_ids=np.arange(lo, hi)))
    while len(parts) > 1:  # a random merge tree
        i, j = sorted(rng.choice(len(parts), size=2, replace=False))
        merged = parts[i] + parts[j]
        parts = [q for t, q in enumerate(parts) if t not in (i, j)] + [merged]
    merged = parts[0]
    a, b = reference.centered(), merged.centered()
    for name in ("mean_x", "scatter_x", "quartic_x", "mean_y", "cross", "scatter_y"):
        x, y = getattr(a, name), getattr(b, name)
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-10 * max(np.abs(x).max(), 1.0), err_msg=name)
    assert merged.n == n
    for rule in ("cv", "gcv", "in_sample"):
        assert emms(merged, rule=rule).score == pytest.approx(emms(reference, rule=rule).score, abs=1e-10)


@pytest.mark.parametrize("seed", range(10))
def test_invariant_to_sample_order_and_column_scale(seed):
    p = make_problem(seed)
    rng = np.random.default_rng(100 + seed)
    perm = rng.permutation(len(p.x))
    scale = 10 ** rng.uniform(-3, 3, p.x.shape[1])
    base = emms_score(p.x, p.labels, class_embeddings=p.tables)
    # Folds follow sample ids, so ids travel with their samples.
    moved = emms_score((p.x * scale)[perm], p.labels[perm], class_embeddings=p.tables, sample_ids=perm)
    assert moved.score == pytest.approx(base.score, abs=1e-9)
    np.testing.assert_allclose(moved.weights, base.weights, atol=1e-7)


def test_gcv_prefers_good_narrow_features_to_random_wide_ones_when_n_is_below_d1():
    rng = np.random.default_rng(0)
    n, n_classes, k = 300, 6, 3
    labels = rng.permutation(np.arange(n) % n_classes)
    tables = [rng.standard_normal((n_classes, 32)) for _ in range(k)]
    good = rng.standard_normal((n_classes, 16))[labels] + 0.8 * rng.standard_normal((n, 16))
    wide_random = rng.standard_normal((n, 768))
    in_sample = {name: emms_score(x, labels, class_embeddings=tables, rule="in_sample").score
                 for name, x in (("good", good), ("random", wide_random))}
    gcv = {name: emms_score(x, labels, class_embeddings=tables).score for name, x in (("good", good), ("random", wide_random))}
    assert in_sample["random"] == pytest.approx(0, abs=1e-9)  # N < D1: an exact fit, the failure GCV fixes
    assert in_sample["random"] > in_sample["good"]
    assert gcv["good"] > gcv["random"] + 0.1


def test_gcv_does_not_reward_width_of_random_features():
    """In-sample, 768 random dims explain far more than 384 at N = 1000; out-of-sample neither explains anything."""
    rng = np.random.default_rng(1)
    n, n_classes = 1000, 10
    labels = rng.permutation(np.arange(n) % n_classes)
    base = rng.standard_normal((n_classes, 64))
    tables = [base + 0.1 * rng.standard_normal(base.shape) for _ in range(3)]  # encoders that agree, as real ones do
    scores = {
        (d, rule): emms_score(rng.standard_normal((n, d)), labels, class_embeddings=tables, rule=rule).score
        for d in (384, 768) for rule in ("gcv", "in_sample")
    }
    assert scores[768, "in_sample"] - scores[384, "in_sample"] > 0.2
    assert abs(scores[768, "gcv"] - scores[384, "gcv"]) < 0.02


def test_one_hot_labels_by_default():
    p = make_problem(0)
    one_hot = np.eye(p.labels.max() + 1)
    a = emms_score(p.x, p.labels)
    b = emms_score(p.x, p.labels, class_embeddings=[one_hot])
    assert a.score == pytest.approx(b.score, abs=1e-12) and a.k == 1 and a.d2 == one_hot.shape[1]


def test_exact_fit_scores_zero_in_sample_and_features_without_variance_score_the_no_information_level():
    rng = np.random.default_rng(3)
    y = rng.standard_normal((50, 4))
    assert emms_score(y @ rng.standard_normal((4, 6)), label_embeddings=y, rule="in_sample").score == pytest.approx(0, abs=1e-12)
    flat = emms_score(np.ones((50, 8)), label_embeddings=y)
    assert flat.rank == 0 and flat.n_constant_features == 8
    # Out of sample, the training mean alone: a little worse than the variance (-1), as the mean is estimated.
    alone = _dense.ridge_kfold(np.ones((50, 8)), y[:, :, None], 0.0, _dense.folds_of(50))[0, 0] / (50 * 4)
    assert flat.score == pytest.approx(-alone, abs=1e-12) and flat.score < -1
    assert emms_score(np.ones((50, 8)), label_embeddings=y, rule="gcv").score == pytest.approx(-1 / (1 - 1 / 50) ** 2, abs=1e-12)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: emms_score(np.ones((1, 3)), np.array([0])), "at least 2 samples"),
        (lambda: emms_score(np.random.rand(10, 3), np.zeros(10, int)), "only one class"),
        (lambda: emms_score(np.random.rand(10, 3), np.arange(10) % 2, class_embeddings=[]), "empty"),
        (lambda: emms_score(np.random.rand(10, 3), np.arange(10) % 2, class_embeddings=[np.ones((2, 4)), np.ones((2, 5))]), "one width"),
        (lambda: emms_score(np.random.rand(10, 3), np.arange(10) % 3, class_embeddings=np.ones((2, 4))), "only 2 rows"),
        (lambda: emms_score(np.random.rand(10, 3), np.arange(10) % 2, class_embeddings=np.full((2, 4), np.nan)), "NaN"),
        (lambda: emms_score(np.random.rand(10, 3), np.arange(10) % 2, class_embeddings=np.ones((2, 4))), "identical for every class"),
        (lambda: emms_score(np.random.rand(10, 3), label_embeddings=np.ones((10, 2, 2))), "constant"),
        (lambda: emms_score(np.random.rand(10, 3), label_embeddings=np.random.rand(10, 2), class_embeddings=np.eye(2)), "class_embeddings apply"),
        (lambda: emms(FeatureStats()), "no samples"),
        (lambda: emms(FeatureStats().update(np.random.rand(9, 2), labels=np.arange(9) % 2), rule="loo"), "rule must be"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(InvalidInputError, match=message):
        call()


def test_columns_that_do_not_vary_do_not_dilute_the_score():
    """Unused class ids (one-hot columns with no samples) and constant F-label columns carry nothing to
    explain: relabelling classes or padding tables must not move the score."""
    p = make_problem(0)
    relabelled = np.array([0, 5, 9, 11, 12, 20])[p.labels]
    for rule in ("gcv", "in_sample"):
        base = emms_score(p.x, p.labels, rule=rule)
        assert emms_score(p.x, relabelled, rule=rule).score == pytest.approx(base.score, abs=1e-12)
        padded = [np.hstack([t, np.ones((len(t), 3))]) for t in p.tables]
        assert emms_score(p.x, p.labels, class_embeddings=padded, rule=rule).score == pytest.approx(
            emms_score(p.x, p.labels, class_embeddings=p.tables, rule=rule).score, abs=1e-12)
        constant = np.concatenate([p.label_embeddings, np.full((len(p.x), 2, p.label_embeddings.shape[2]), 4.0)], 1)
        assert emms_score(p.x, label_embeddings=constant, rule=rule).score == pytest.approx(
            emms_score(p.x, label_embeddings=p.label_embeddings, rule=rule).score, abs=1e-12)
    assert emms_score(p.x, relabelled).d2 == p.labels.max() + 1


def test_emms_score_checks_lengths_and_batch_size_up_front():
    x = np.random.rand(8, 3)
    with pytest.raises(InvalidInputError, match="labels has 11 rows but features have 8"):
        emms_score(x, np.arange(11) % 2, batch_size=4)
    with pytest.raises(InvalidInputError, match="label_embeddings has 9 rows"):
        emms_score(x, label_embeddings=np.random.rand(9, 2))
    with pytest.raises(InvalidInputError, match="batch_size"):
        emms_score(x, np.arange(8) % 2, batch_size=0)


def test_class_tables_in_every_accepted_form_agree():
    p = make_problem(5)
    stats = class_stats(p)
    expected = emms(stats, p.tables).score
    for form in (np.stack(p.tables), [t.tolist() for t in p.tables], [torch.from_numpy(t) for t in p.tables]):
        assert emms(stats, form).score == pytest.approx(expected, abs=1e-12)
    single = emms(stats, p.tables[0]).score
    assert emms(stats, p.tables[0].tolist()).score == pytest.approx(single, abs=1e-12)
    with pytest.raises(InvalidInputError, match="real numbers"):
        emms(stats, [t.astype(complex) for t in p.tables])


def test_duplicated_samples_fool_gcv_but_not_cv():
    """Every sample twice (N = 240 <= D1 = 256): any fit reproduces the training targets, RSS = 0 with
    tr(H) < N, so GCV reports a perfect score for features that carry no information at all."""
    rng = np.random.default_rng(7)
    labels = np.repeat(rng.permutation(np.arange(120) % 4), 2)
    noise = np.repeat(rng.standard_normal((120, 256)), 2, axis=0)
    assert emms_score(noise, labels, rule="gcv").score > -1e-6
    # CV is only mildly optimistic: a pair split across folds still leaks (the twin is in training).
    assert emms_score(noise, labels).score < -0.75


def test_per_sample_cv_is_the_same_with_and_without_precomputed_terms(monkeypatch):
    """Wide per-sample problems skip the precomputed K x K x r x r terms (memory); both ways give one residual."""
    from hf_emms.solver import cross_validation

    p = make_problem(3)
    stats = per_sample_stats(p)
    fast = cross_validation.cv_problem(stats)
    monkeypatch.setattr(cross_validation, "_PRECOMPUTE_BYTES", 0)
    slow = cross_validation.cv_problem(stats)
    assert fast.folds[0].p is not None and slow.folds[0].p is None
    for alpha in (0.0, 1e-3, 1.0):
        np.testing.assert_allclose(fast.residual(alpha), slow.residual(alpha), rtol=1e-10, atol=1e-9)


def test_sparse_huge_class_ids_score_like_dense_ids_with_the_tables_mapped():
    import resource

    rng = np.random.default_rng(0)
    x, e = rng.standard_normal((20, 8)), rng.standard_normal((2, 4))
    dense = emms_score(x, [0, 1] * 10, class_embeddings=e)
    tables = np.zeros((10**7 + 1, 4), np.float32)  # one row per original id, as a name table would have
    tables[0], tables[10**7] = e[0], e[1]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sparse = emms_score(x, [0, 10**7] * 10, class_embeddings=tables)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert sparse.score == pytest.approx(dense.score, abs=1e-10)
    np.testing.assert_allclose(sparse.weights, dense.weights, atol=1e-10)
    assert grown_kib < 1e6  # no (10**7 x 8) class tables: the old path allocated ~4.7 GB
    assert emms_score(x, [0, 2**63 - 1] * 10).score == pytest.approx(emms_score(x, [0, 1] * 10).score, abs=1e-10)


def test_dense_ids_keep_todays_layout_and_scores_in_emms_score():
    p = make_problem(0)
    direct = emms(FeatureStats().update(p.x, labels=p.labels), p.tables)
    assert emms_score(p.x, p.labels, class_embeddings=p.tables).score == direct.score


@pytest.mark.parametrize(
    "labels, message",
    [([0, 1e30] * 5, "integer class ids"), ([0, np.nan] * 5, "integer class ids"), ([True, False] * 5, "integer class ids"),
     ([-1, 0] * 5, ">= 0"), ([0.5, 1] * 5, "integer class ids"), ([[0, 1]] * 10, "1-D")],
)
def test_emms_score_names_bad_labels(labels, message):
    with pytest.raises(InvalidInputError, match=message):
        emms_score(np.random.rand(10, 3), labels)


def test_class_space_of_too_many_class_ids_is_refused_before_allocating():
    stats = FeatureStats().update(np.random.rand(20, 3), labels=[0, 200_000] * 10)  # dense layout: 200,001 rows
    with pytest.raises(InvalidInputError, match=r"200001 class ids .*GiB.*np.unique"):
        emms(stats)
    with pytest.raises(InvalidInputError, match="sparse|only 3 rows|rows"):
        emms_score(np.random.rand(20, 3), [0, 200_000] * 10, class_embeddings=np.ones((3, 2)))


def test_constant_features_score_the_no_information_level_on_the_class_path_too():
    """A fold whose training features do not vary has rank 0 (found by a tiny random BERT whose pooled output was
    constant on short sentences): the score is the no-information level, never an error."""
    rng = np.random.default_rng(0)
    y = np.arange(40) % 3
    tables = [rng.normal(size=(3, 8)), rng.normal(size=(3, 8))]
    constant = np.ones((40, 6))
    result = emms_score(constant, y, class_embeddings=tables)
    assert np.isfinite(result.score) and abs(result.score - result.null_score) < 1e-9
    one_hot = emms_score(constant, y)
    assert np.isfinite(one_hot.score) and abs(one_hot.score - one_hot.null_score) < 1e-9


def test_the_one_hot_control_on_shared_eigensystems_equals_its_own_solve():
    from hf_emms.solver.scores import emms_with_control

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(90, 12)), np.arange(90) % 4
    x[:, :3] += y[:, None]
    tables = [rng.normal(size=(4, 6)), rng.normal(size=(4, 6))]
    stats = FeatureStats()
    stats.update(x, labels=y, sample_ids=np.arange(90))
    with_tables, control = emms_with_control(stats, tables)
    alone, one_hot = emms(stats, tables), emms(stats)
    assert (with_tables.score, control.score) == (alone.score, one_hot.score)  # the same arithmetic, in the same order
    np.testing.assert_array_equal(control.fold_scores, one_hot.fold_scores)
