"""LogME, H-score, NCE and LEEP from streamed statistics against dense brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf_shrinkage as sklearn_lw

import _dense
from _problems import make_problem
from hf_emms import FeatureStats, InvalidInputError, LeepPass, hscore, leep_conditional, leep_score, logme, nce
from hf_emms.solver.h_score import ledoit_wolf_shrinkage

SEEDS = range(25)


def streamed(p, batch=11, **extra):
    stats = FeatureStats()
    for i in range(0, len(p.x), batch):
        stats.update(p.x[i : i + batch], **{k: v[i : i + batch] for k, v in extra.items()})
    return stats


# ----------------------------------------------------------------------------- LogME
@pytest.mark.parametrize("seed", SEEDS)
def test_logme_one_vs_rest_equals_the_dense_evidence_maximum(seed):
    p = make_problem(seed)
    ours = logme(streamed(p, labels=p.labels))
    dense = np.mean([_dense.logme_max(p.x, (p.labels == c).astype(float)) for c in np.unique(p.labels)])
    assert ours == pytest.approx(dense, abs=1e-8)


@pytest.mark.parametrize("seed", SEEDS[::2])
def test_logme_regression_on_f_labels_equals_the_dense_evidence_maximum(seed):
    p = make_problem(seed)
    y = p.label_embeddings.reshape(len(p.x), -1)
    dense = np.mean([_dense.logme_max(p.x, y[:, j]) for j in range(y.shape[1])])
    assert logme(streamed(p, label_embeddings=p.label_embeddings)) == pytest.approx(dense, abs=1e-8)
    # Class statistics + class tables give the same targets as per-sample F-labels E_k[y].
    by_class = logme(streamed(p, labels=p.labels), p.tables)
    by_sample = logme(FeatureStats().update(p.x, label_embeddings=p.class_label_embeddings))
    assert by_class == pytest.approx(by_sample, abs=1e-9)


def test_logme_keeps_the_log_alpha_of_directions_the_features_do_not_span():
    """N < D: the published code drops (D - r)/2 log alpha; the dense evidence (and ours) keep it."""
    p = make_problem(1)  # the "wide" flavour: D1 > N
    assert p.x.shape[1] > p.x.shape[0]
    y = (p.labels == 0).astype(float)
    assert logme(FeatureStats().update(p.x, label_embeddings=y[:, None])) == pytest.approx(_dense.logme_max(p.x, y), abs=1e-8)


# ----------------------------------------------------------------------------- H-score
@pytest.mark.parametrize("seed", range(25))
def test_hscore_equals_the_published_formula(seed):
    p = make_problem(seed)
    stats = streamed(p, labels=p.labels)
    assert hscore(stats) == pytest.approx(_dense.hscore(p.x, p.labels), rel=1e-8)
    assert hscore(stats, shrinkage=True) == pytest.approx(_dense.hscore_shrinkage(p.x, p.labels), rel=1e-8)


@pytest.mark.parametrize("seed", range(25))
def test_ledoit_wolf_intensity_from_fourth_moments_equals_scikit_learn(seed):
    p = make_problem(seed)
    c = streamed(p, labels=p.labels).centered()
    a, mu = ledoit_wolf_shrinkage(c.scatter_x / c.n, c.quartic_x, c.n)
    assert a == pytest.approx(sklearn_lw(p.x - p.x.mean(0), assume_centered=True), abs=1e-10)
    assert mu == pytest.approx(np.trace(np.cov(p.x, rowvar=False, bias=True)) / p.x.shape[1], rel=1e-10)


def test_shrinkage_tames_the_hscore_of_wide_noise():
    """Plain H-score grows with noise dimensions at small N; the shrinkage version does not follow."""
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 4
    noise = rng.standard_normal((120, 110))
    signal = np.eye(4)[labels] @ rng.standard_normal((4, 8)) + 0.5 * rng.standard_normal((120, 8))
    stats = {name: FeatureStats().update(x, labels=labels) for name, x in (("noise", noise), ("signal", signal))}
    assert hscore(stats["noise"]) > hscore(stats["signal"])  # the known failure of the plain score
    assert hscore(stats["signal"], shrinkage=True) > hscore(stats["noise"], shrinkage=True)


# ----------------------------------------------------------------------------- NCE and LEEP
def head_problem(seed, n=300, n_classes=5, n_source=12):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes)
    affinity = rng.standard_normal((n_classes, n_source)) * 2
    logits = affinity[labels] + rng.standard_normal((n, n_source))
    features = rng.standard_normal((n, 6))
    return features, labels, logits


@pytest.mark.parametrize("seed", range(8))
def test_nce_and_leep_equal_the_written_out_formulas(seed):
    features, labels, logits = head_problem(seed)
    stats = FeatureStats()
    second = None
    for i in range(0, len(labels), 64):
        stats.update(features[i : i + 64], labels=labels[i : i + 64], head_logits=logits[i : i + 64])
    second = LeepPass(leep_conditional(stats))
    for i in range(0, len(labels), 50):  # the second pass may batch differently
        second.update(logits[i : i + 50], labels[i : i + 50])
    assert nce(stats) == pytest.approx(_dense.nce(logits, labels), abs=1e-12)
    assert second.score == pytest.approx(_dense.leep(logits, labels), abs=1e-12)
    assert leep_score(logits, labels) == pytest.approx(_dense.leep(logits, labels), abs=1e-12)
    assert nce(stats) <= 0 and second.score <= 0


def test_a_head_that_knows_the_classes_scores_higher():
    features, labels, logits = head_problem(0)
    shuffled = logits[np.random.default_rng(1).permutation(len(labels))]
    assert leep_score(logits, labels) > leep_score(shuffled, labels)
    good = FeatureStats().update(features, labels=labels, head_logits=logits)
    bad = FeatureStats().update(features, labels=labels, head_logits=shuffled)
    assert nce(good) > nce(bad)


# ----------------------------------------------------------------------------- bad input
def test_baselines_name_bad_input():
    per_sample = FeatureStats().update(np.random.rand(10, 3), label_embeddings=np.random.rand(10, 2))
    one_class = FeatureStats().update(np.random.rand(10, 3), labels=np.zeros(10, int))
    no_head = FeatureStats().update(np.random.rand(10, 3), labels=np.arange(10) % 2)
    with pytest.raises(InvalidInputError, match="needs class labels"):
        hscore(per_sample)
    with pytest.raises(InvalidInputError, match="2 classes"):
        hscore(one_class)
    with pytest.raises(InvalidInputError, match="only one class"):
        logme(one_class)
    with pytest.raises(InvalidInputError, match="no classifier-head table"):
        nce(no_head)
    with pytest.raises(InvalidInputError, match="no samples"):
        logme(FeatureStats())
    with pytest.raises(InvalidInputError, match="class_embeddings apply"):
        logme(per_sample, np.eye(2))
    with pytest.raises(InvalidInputError, match="go with class labels"):
        FeatureStats().update(np.ones((2, 2)), label_embeddings=np.ones((2, 1)), head_logits=np.ones((2, 3)))
    with pytest.raises(InvalidInputError, match="every batch or with none"):
        no_head.update(np.ones((2, 3)), labels=np.zeros(2, int), head_logits=np.ones((2, 3)))
    with_head = FeatureStats().update(np.ones((2, 3)), labels=np.array([0, 1]), head_logits=np.ones((2, 4)))
    with pytest.raises(InvalidInputError, match="4 source classes|earlier batches had 4"):
        with_head.update(np.ones((2, 3)), labels=np.zeros(2, int), head_logits=np.ones((2, 5)))
    with pytest.raises(InvalidInputError, match="NaN"):
        with_head.update(np.ones((1, 3)), labels=np.zeros(1, int), head_logits=np.array([[0, np.nan, 0, 0]]))
    with pytest.raises(InvalidInputError, match="integer labels"):
        LeepPass(leep_conditional(with_head)).update(np.ones((2, 4)), np.array([0.0, 1.0]))
    with pytest.raises(InvalidInputError, match="at least two classes"):
        leep_score(np.ones((3, 4)), np.zeros(3, int))
    with pytest.raises(InvalidInputError, match="no samples"):
        LeepPass(leep_conditional(with_head)).score


def test_leep_second_pass_refuses_classes_the_first_pass_never_saw():
    features, labels, logits = head_problem(3)
    keep = labels != 1
    stats = FeatureStats().update(features[keep], labels=labels[keep], head_logits=logits[keep])
    with pytest.raises(InvalidInputError, match=r"seen in the first pass \(\[0, 2, 3, 4\]\)"):
        LeepPass(leep_conditional(stats)).update(logits[:3], np.array([1, 1, 1]))


def test_shrinkage_intensity_does_not_depend_on_the_feature_scale():
    p = make_problem(2)
    scores = [hscore(FeatureStats().update(p.x * scale, labels=p.labels), shrinkage=True) for scale in (1e-30, 1.0, 1e30)]
    np.testing.assert_allclose(scores, scores[1], rtol=1e-9)


def test_logme_leaves_out_targets_that_are_zero_everywhere():
    p = make_problem(5)
    stats = streamed(p, labels=p.labels)
    padded = [np.hstack([t, np.zeros((len(t), 2))]) for t in p.tables]
    assert logme(stats, padded) == pytest.approx(logme(stats, p.tables), abs=1e-12)


def test_leep_of_a_confident_head_matches_the_hand_computed_value():
    """Probabilities of e^-900 underflow to 0: the second pass works in log space."""
    labels = np.array([0, 1, 0, 1])
    logits = np.array([[900.0, 0.0, 0.0], [0.0, 900.0, 0.0], [0.0, 0.0, 900.0], [0.0, 0.0, 900.0]])
    assert np.isfinite(leep_score(logits, labels))
    assert leep_score(logits, labels) == pytest.approx(np.mean(np.log([1.0, 1.0, 0.5, 0.5])), abs=1e-12)


def test_leep_of_sparse_or_huge_class_ids_equals_leep_of_dense_ids():
    logits = np.random.default_rng(1).standard_normal((20, 5))
    dense = leep_score(logits, [0, 1] * 10)
    for ids in ([0, 10**12] * 10, np.array([0, 2**62] * 10), [7, 2**63 - 1] * 10):
        assert leep_score(logits, ids) == pytest.approx(dense, abs=1e-12)


@pytest.mark.parametrize(
    "labels, message",
    [([0, 1e30] * 5, "integer labels"), ([0, np.nan] * 5, "integer labels"), ([True, False] * 5, "integer labels"),
     ([-1, 0] * 5, ">= 0"), (np.array([0, 2**64 - 1] * 5, dtype=np.uint64), "beyond int64")],
)
def test_leep_names_bad_labels(labels, message):
    with pytest.raises(InvalidInputError, match=message):
        leep_score(np.random.rand(10, 3), labels)
