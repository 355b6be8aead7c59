"""Fuzzing the solver's entry points with malformed input (issue 17).

The property: every call either returns a finite result or raises an ``HfEmmsError`` (``InvalidInputError``)
naming the problem; never another exception type (``IndexError``, ``OverflowError``, ``RuntimeError``,
``MemoryError``...) and never a large allocation: the statistics' memory budget is lowered to 64 MiB here, so an
input that would need more must be refused by the checks, not by the allocator.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hf_emms import FeatureStats, emms, emms_score, hscore, leep_score, logme, nce
from hf_emms.errors import HfEmmsError

FUZZ = settings(derandomize=True, max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ODD_NUMBERS = st.sampled_from([0.0, 1.0, -1.0, 1e-300, 1e300, -1e300, np.nan, np.inf, -np.inf, 2.0**63, 0.5])
ODD_IDS = st.sampled_from([0, 1, 2, 3, 7, -1, 10**7, 2**31, 2**62, 2**63 - 1, 255])
DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8, np.bool_])


@contextlib.contextmanager
def small_budget(nbytes: int = 64 * 2**20):
    old = os.environ.get("HF_EMMS_MAX_STATS_BYTES")
    os.environ["HF_EMMS_MAX_STATS_BYTES"] = str(nbytes)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_EMMS_MAX_STATS_BYTES", None)
        else:
            os.environ["HF_EMMS_MAX_STATS_BYTES"] = old


def check(call):
    """Run ``call`` under the small budget: a finite result or an HfEmmsError."""
    with small_budget():
        try:
            out = call()
        except HfEmmsError:
            return None
    score = getattr(out, "score", out)
    if isinstance(score, FeatureStats):
        return score
    assert np.isfinite(score), f"non-finite result {score!r}"
    return out


@st.composite
def feature_arrays(draw):
    """Mostly (N, D) arrays, sometimes of the wrong rank, odd dtypes, NaN/inf/huge entries, or very wide."""
    shape = draw(st.one_of(
        st.tuples(st.integers(0, 12), st.integers(0, 6)),
        st.sampled_from([(4,), (3, 2, 2), (), (2, 5000), (6, 3000)]),
    ))
    dtype = draw(DTYPES)
    if np.dtype(dtype).kind == "f":
        elements = st.one_of(st.floats(-10, 10, width=16), ODD_NUMBERS).map(float)
        arr = draw(hnp.arrays(np.float64, shape, elements=elements)).astype(dtype) if np.prod(shape) < 100 else (
            np.random.default_rng(0).standard_normal(shape).astype(dtype))
    else:
        arr = np.random.default_rng(draw(st.integers(0, 9))).integers(0, 3, size=shape).astype(dtype)
    return arr


@st.composite
def label_arrays(draw, n):
    """Class ids for n samples: usually n of them, sometimes a mismatched count, floats, bools or odd values."""
    m = draw(st.sampled_from([n, n, n, max(n - 1, 0), n + 1]))
    kind = draw(st.sampled_from(["ids", "ids", "odd", "float", "bool", "uint64"]))
    if kind == "ids":
        return np.asarray(draw(st.lists(st.integers(0, 3), min_size=m, max_size=m)), dtype=np.int64)
    if kind == "odd":
        return np.asarray(draw(st.lists(ODD_IDS, min_size=m, max_size=m)), dtype=np.int64)
    if kind == "float":
        return np.asarray(draw(st.lists(ODD_NUMBERS, min_size=m, max_size=m)), dtype=np.float64)
    if kind == "bool":
        return np.asarray(draw(st.lists(st.booleans(), min_size=m, max_size=m)))
    return np.asarray(draw(st.lists(st.sampled_from([0, 1, 2**64 - 1]), min_size=m, max_size=m)), dtype=np.uint64)


@st.composite
def class_tables(draw):
    """None, one (C, D2) table, K tables (sometimes of different widths), with odd values or shapes."""
    kind = draw(st.sampled_from(["none", "one", "many", "ragged", "odd", "huge_rows"]))
    rng = np.random.default_rng(draw(st.integers(0, 9)))
    c, d2 = draw(st.integers(0, 5)), draw(st.integers(0, 4))
    if kind == "none":
        return None
    if kind == "one":
        return rng.standard_normal((c, d2))
    if kind == "many":
        return [rng.standard_normal((c, d2)) for _ in range(draw(st.integers(0, 3)))]
    if kind == "ragged":
        return [rng.standard_normal((c, d2)), rng.standard_normal((c, d2 + 1))]
    if kind == "odd":
        t = rng.standard_normal((max(c, 1), max(d2, 1)))
        t.flat[0] = draw(ODD_NUMBERS)
        return draw(st.sampled_from([t, t[None, None], t.astype(np.complex128), [[1.0, 2.0], [3.0]], "abc", 3.0]))
    return np.zeros((10**7 + 1, 2), np.float32)[::-1]  # enough rows for sparse ids; a view, not a copy


@FUZZ
@given(data=st.data())
def test_emms_score_returns_a_finite_score_or_a_clear_error(data):
    x = data.draw(feature_arrays())
    n = len(x) if x.ndim else 0
    labels = data.draw(label_arrays(n))
    tables = data.draw(class_tables())
    rule = data.draw(st.sampled_from(["cv", "gcv", "in_sample", "loo"]))
    check(lambda: emms_score(x, labels, class_embeddings=tables, rule=rule))


@FUZZ
@given(data=st.data())
def test_per_sample_f_labels_return_a_finite_score_or_a_clear_error(data):
    x = data.draw(feature_arrays())
    n = len(x) if x.ndim else 0
    shape = data.draw(st.sampled_from([(n, 3), (n, 2, 2), (n, 0, 1), (n + 1, 2), (n,), (n, 2, 2, 2)]))
    y = data.draw(hnp.arrays(np.float64, shape, elements=st.one_of(st.floats(-3, 3), ODD_NUMBERS)))
    check(lambda: emms_score(x, label_embeddings=y, rule=data.draw(st.sampled_from(["cv", "gcv"]))))
    check(lambda: logme(FeatureStats().update(x, label_embeddings=y)))


@FUZZ
@given(data=st.data())
def test_streamed_statistics_and_every_score_of_them_are_finite_or_a_clear_error(data):
    stats = FeatureStats()
    for _ in range(data.draw(st.integers(1, 3))):  # batches with class sets that differ, some of them bad
        x = data.draw(feature_arrays())
        n = len(x) if x.ndim else 0
        labels = data.draw(label_arrays(n))
        logits = data.draw(st.sampled_from([None, "good", "bad"]))
        head = None if logits is None or n == 0 else (
            np.random.default_rng(n).standard_normal((n, 3)) if logits == "good" else np.full((n, 2), np.nan))
        sample_ids = data.draw(st.sampled_from([None, np.arange(n), -np.ones(n, int), np.full(n, 2**62)]))
        before = (stats.n, {k: v.clone() for k, v in stats._t.items()})
        if check(lambda: stats.update(x, labels=labels, head_logits=head, sample_ids=sample_ids)) is None:
            assert stats.n == before[0] and stats._t.keys() == before[1].keys()  # a bad batch leaves no trace
    tables = data.draw(class_tables())
    for call in (lambda: emms(stats, tables), lambda: emms(stats, tables, rule="gcv"), lambda: logme(stats, tables),
                 lambda: logme(stats), lambda: hscore(stats), lambda: hscore(stats, shrinkage=True), lambda: nce(stats)):
        check(call)


@FUZZ
@given(data=st.data())
def test_leep_returns_a_finite_score_or_a_clear_error(data):
    z = data.draw(feature_arrays())
    n = len(z) if z.ndim else 0
    check(lambda: leep_score(z, data.draw(label_arrays(n))))


@pytest.mark.parametrize("merge_first", [True, False])
def test_merging_statistics_whose_class_tables_do_not_fit_is_a_clear_error(merge_first):
    a = FeatureStats().update(np.random.rand(4, 4), labels=[0, 1, 0, 1])
    with small_budget(256 * 2**20):
        b = FeatureStats().update(np.random.rand(4, 4), labels=[0, 1, 0, 200_000])
    with small_budget(4 * 2**20), pytest.raises(HfEmmsError, match="class ids"):
        (a + b) if merge_first else b.merge(a)
