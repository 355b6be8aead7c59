"""hf_emms.metric.compute, what the `emms` evaluate module returns: equal to the solver's own entry points
exactly, for every way of giving references and F-labels, and clear errors for bad input.

Loading the module through evaluate (three ways, offline) is tested in test_metric_loading.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import _tiny_models as tiny
from hf_emms import FeatureStats, InvalidInputError, emms_score, logme
from hf_emms.metric import compute

N, D1, C, D2 = 240, 12, 4, 6
NAMES = ["cat", "dog", "bird", "fish"]
# Most tests check which numbers reach the solver, whatever the rule: they use the cheapest one. The default
# rule is checked in test_default_and_in_sample_rules_equal_emms_score.
FAST = "in_sample"


@pytest.fixture(scope="module")
def task():
    """Class ids, features that carry them plus noise, and K = 2 class-name tables of width D2."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, N)
    x = (rng.standard_normal((C, D1)) * 2)[y] + rng.standard_normal((N, D1))
    tables = [rng.standard_normal((C, D2)) for _ in range(2)]
    return x.astype(np.float32), y, tables


def _same(out: dict, ref) -> None:
    assert out["emms"] == ref.score
    assert out["emms_weights"] == [float(w) for w in ref.weights]
    # the SE travels with the score: the solver's fold spread, None where a rule has no folds
    assert out["emms_se"] == (ref.se if np.isfinite(ref.se) else None)


@pytest.mark.parametrize("form", ["numpy", "list", "torch", "float ids", "bool features"])
def test_class_ids_in_any_form_equal_emms_score(task, form):
    x, y, tables = task
    if form == "bool features":  # integer-valued input of another dtype: the solver converts, so must we
        x = x > 0
    refs = {"list": y.tolist(), "float ids": y.astype(float).tolist()}.get(form, y)  # evaluate stores numbers as floats
    feats = {"list": x.tolist(), "torch": torch.from_numpy(np.asarray(x))}.get(form, x)
    _same(compute(refs, feats, class_embeddings=tables, rule=FAST), emms_score(x, y, class_embeddings=tables, rule=FAST))


def test_default_and_in_sample_rules_equal_emms_score(task):
    x, y, _ = task
    default = compute(y, x)
    _same(default, emms_score(x, y))
    assert 0 < default["emms_se"] < 0.5
    _same(compute(y, x, rule="in_sample"), emms_score(x, y, rule="in_sample"))
    assert default["emms"] != compute(y, x, rule="in_sample")["emms"]  # the rule reaches the solver
    # Sample ids choose the folds: with the ids of the samples, a shuffled copy scores as the original.
    perm = np.random.default_rng(4).permutation(N)
    shuffled = compute(y[perm], x[perm], sample_ids=perm)
    _same(shuffled, emms_score(x[perm], y[perm], sample_ids=perm))
    assert shuffled["emms"] == pytest.approx(compute(y, x, sample_ids=np.arange(N))["emms"], rel=1e-9)


def test_class_names_map_to_the_rows_of_class_names(task):
    x, y, tables = task
    names = [NAMES[i] for i in y]
    # Tables whose rows follow another order than the ids: the names say which row is which.
    order = ["fish", "cat", "dog", "bird"]
    perm = [NAMES.index(n) for n in order]
    permuted = [t[perm] for t in tables]
    out = compute(names, x, class_names=order, class_embeddings=permuted, rule=FAST)
    _same(out, emms_score(x, np.array([order.index(n) for n in names]), class_embeddings=permuted, rule=FAST))
    # The same task as the ids with the original tables: the same score, up to the order of summation.
    assert out["emms"] == pytest.approx(emms_score(x, y, class_embeddings=tables, rule=FAST).score, rel=1e-12)
    # One-hot needs no order: the names' sorted order is one relabelling of the ids, which one-hot EMMS ignores.
    sorted_ids = np.array([sorted(NAMES).index(n) for n in names])
    one_hot = compute(names, x, rule=FAST)
    _same(one_hot, emms_score(x, sorted_ids, rule=FAST))
    assert one_hot["emms"] == pytest.approx(emms_score(x, y, rule=FAST).score, rel=1e-12)


def test_per_sample_f_labels_and_regression_equal_emms_score(task):
    x, y, tables = task
    per_sample = np.stack([t[y] for t in tables], axis=2) + 0.1  # (N, D2, K)
    _same(compute(y, x, label_embeddings=per_sample, rule=FAST), emms_score(x, label_embeddings=per_sample, rule=FAST))
    _same(compute([NAMES[i] for i in y], x, label_embeddings=per_sample, rule=FAST),
          emms_score(x, label_embeddings=per_sample, rule=FAST))  # references only fix N here
    target = x[:, 0].astype(np.float64) * 3 + np.sin(np.arange(N))
    _same(compute(target.tolist(), x, label_kind="regression", rule=FAST),
          emms_score(x, label_embeddings=target[:, None], rule=FAST))


def test_logme_equals_logme_of_the_same_statistics(task):
    x, y, tables = task
    out = compute(y, x, class_embeddings=tables, rule=FAST, logme=True)
    _same(out, emms_score(x, y, class_embeddings=tables, rule=FAST))
    assert out["logme"] == logme(FeatureStats().update(x, labels=y))  # N < one batch: the same single update
    per_sample = np.stack([t[y] for t in tables], axis=2)
    assert compute(y, x, label_embeddings=per_sample, rule=FAST, logme=True)["logme"] == logme(
        FeatureStats().update(x, label_embeddings=per_sample)
    )


def test_informative_features_outscore_noise(task):
    x, y, tables = task
    noise = np.random.default_rng(1).standard_normal(x.shape)
    assert compute(y, x, class_embeddings=tables)["emms"] > compute(y, noise, class_embeddings=tables)["emms"] + 0.3


def test_encoders_embed_class_names_and_texts_like_hf_emms_labels(task, tmp_path):
    from hf_emms.labels import embed_labels

    x, y, _ = task
    encoders = [str(tiny.bert(tmp_path / "bert")), str(tiny.gpt2(tmp_path / "gpt2"))]
    options = {"cache_dir": tmp_path / "cache"}
    tables = embed_labels(NAMES, kind="classification", encoders=encoders, **options).tables
    _same(compute(y, x, class_names=NAMES, encoders=encoders, label_options=options, rule=FAST),
          emms_score(x, y, class_embeddings=tables, rule=FAST))
    _same(compute([NAMES[i] for i in y], x, class_names=NAMES, encoders=encoders, label_options=options, rule=FAST),
          emms_score(x, y, class_embeddings=tables, rule=FAST))
    texts = [f"a photo of a {NAMES[c]}" + " in the park" * (i % 2) for i, c in enumerate(y)]
    per_sample = embed_labels(texts, kind="text", encoders=encoders, **options).to_array()
    _same(compute(texts, x, label_kind="text", encoders=encoders, label_options=options, rule=FAST),
          emms_score(x, label_embeddings=per_sample, rule=FAST))


def _bad_inputs(x, y, tables) -> dict:
    """Each case: (references, features, keyword arguments, what the error must say)."""
    names = [NAMES[i] for i in y]
    ids = y.tolist()
    return {
        "no features": (y, None, {}, "features= is required"),
        "no references": (None, x, {}, "references= is required"),
        "1-D features": (y, x[:, 0], {}, "must be 2-D"),
        "one row short": (y, x[:-1], {}, "features have 239 rows but there are 240 references"),
        "a gap": ([*ids[:3], None, *ids[4:]], x, {}, r"references\[3\] is missing \(None\), 1 in all"),
        "mixed types": (["cat", *ids[1:]], x, {}, r"references mix types: references\[0\] is 'cat' but references\[1\]"),
        "two per sample": ([[v, v] for v in ids], x, {}, "one class id, name, text or number per sample"),
        "fractional": ((y + 0.5).tolist(), x, {}, r"must be class ids \(whole numbers\).*label_kind='regression'"),
        "nan": ([float("nan"), *ids[1:]], x, {}, "NaN or inf"),
        "unknown names": (names, x, {"class_names": ["cat", "dog"]}, r"missing from class_names: \['bird', 'fish'\]"),
        "rows of names unknown": (names, x, {"class_embeddings": tables}, "pass class_names= to say which row"),
        "repeated class name": (y, x, {"class_names": ["cat", "cat", "dog", "fish"]}, "distinct strings"),
        "too few class names": (y, x, {"class_names": ["cat", "dog"]}, "class ids up to 3, but class_names has 2"),
        "two F-label sources": (y, x, {"class_embeddings": tables, "label_embeddings": np.ones((N, D2, 2))},
                                "Give one F-label source"),
        "short F-labels": (y, x, {"label_embeddings": np.ones((10, D2, 2))}, "label_embeddings have 10 rows but"),
        "text without encoders": (names, x, {"label_kind": "text"}, "give strings with encoders="),
        "regression names": (names, x, {"label_kind": "regression"}, "regression references must be numbers"),
        "classes of text": (names, x, {"label_kind": "text", "class_names": NAMES}, "describe classes"),
        "ids to encode": (y, x, {"encoders": ["bert"]}, "pass class_names="),
        "tables and encoders": (y, x, {"encoders": ["bert"], "class_names": NAMES, "class_embeddings": tables}, "not both"),
        "unknown rule": (y, x, {"rule": "best"}, "rule must be one of"),
        "unknown kind": (y, x, {"label_kind": "boxes"}, "label_kind must be one of"),
        "batch size": (y, x, {"batch_size": 0}, "batch_size must be a positive integer"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs(np.zeros((N, D1)), np.zeros(N, dtype=int), [])))
def test_bad_input_is_named(task, case):
    references, features, kwargs, message = _bad_inputs(*task)[case]
    with pytest.raises(InvalidInputError, match=message):
        compute(references, features, **kwargs)


def test_errors_from_the_solver_pass_through(task):
    x, y, tables = task
    with pytest.raises(InvalidInputError, match="labels must be class ids >= 0"):
        compute(y - 1, x, rule=FAST)
    with pytest.raises(InvalidInputError, match="share one width"):
        compute(y, x, class_embeddings=[tables[0], tables[1][:, :3]], rule=FAST)
    bad = x.copy()
    bad[5, 2] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        compute(y, bad)


@pytest.mark.parametrize(("references", "message"), [
    ([], "references are empty"),
    ("abcd", "must be a sequence with one label per sample"),
    (7, "must be a sequence with one label per sample"),
    ([1e30, 0.0, 1.0, 0.0], r"1e\+30, not a class id: numbers past 2\*\*53"),
    ([float(2**63 - 1), 0.0, 1.0, 0.0], r"9.223372036854776e\+18, not a class id"),
    ([2**64, 0, 1, 0], "one class id, name, text or number per sample"),
    ([[1], [1, 2], 0, 0], "one class id, name, text or number per sample"),
])
def test_hostile_references_are_named(references, message):
    """Issue 17: each was an IndexError, a cast overflow to -9223372036854775808, or a numpy ValueError."""
    features = np.random.default_rng(0).standard_normal((len(references) if hasattr(references, "__len__") else 1, 3))
    with pytest.raises(InvalidInputError, match=message) as exc_info:
        compute(references, features[: len(references)] if isinstance(references, list) else features, rule=FAST)
    assert "-9223372036854775808" not in str(exc_info.value)


def test_hostile_features_are_named():
    with pytest.raises(InvalidInputError, match="rows of one width"):
        compute([0, 1, 0], [[1.0, 2.0], [1.0], [0.0, 1.0]], rule=FAST)
    with pytest.raises(InvalidInputError, match="features must be numbers; got an array of dtype <U"):
        compute([0, 1, 0], [["a", "b"], ["c", "d"], ["e", "f"]], rule=FAST)


def test_sparse_or_huge_class_ids_with_one_hot_labels_are_the_classes_present(task):
    """One-hot EMMS does not depend on which ids the classes have: 5 and 2**63-1 score as 0 and 1, without tables
    sized by the largest id (the solver refuses 37 GiB)."""
    x, y, tables = task
    raw = np.array([5, 10**8, 2**40, 2**63 - 1])[y]
    _same(compute(raw, x, rule=FAST), emms_score(x, y, rule=FAST))
    _same(compute(raw.tolist(), x), emms_score(x, y))
    with pytest.raises(InvalidInputError, match="class ids up to 9223372036854775807, but class_embeddings have 4 rows"):
        compute(raw, x, class_embeddings=tables, rule=FAST)
