"""Fuzzing the entry points that take a user's data (issue 17): random malformed tiny CSV/TSV/JSONL files, in-memory
Datasets and metric inputs give a valid result or an ``HfEmmsError`` with a one-line message, never another exception.

Seeded (``derandomize=True``): the same examples on every run. The inputs are tiny (at most a dozen rows), so an
allocation sized by a label value (the 8 GB of issue 17) shows as a MemoryError, or as the peak memory this process
reaches (``ru_maxrss``), which each test bounds.
"""

from __future__ import annotations

import json
import math
import resource
import warnings

import datasets
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hf_emms.errors import HfEmmsError
from hf_emms.metric import compute
from hf_emms.tasks import Task, check_distinct, load_task

SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)
MAX_GROWTH = 1 << 30  # bytes of peak memory a test may add: a list sized by a huge label id would be gigabytes

# Label values a probe would try: huge and negative ints, None, NaN and inf, bools, empty and blank strings.
LABELS = st.one_of(
    st.integers(min_value=-3, max_value=3), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 100_000_000, -(2**63)]), st.none(), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", " ", "NaN", "nan", "pos", "neg", "True", "0"]),
    st.text(max_size=4),
)
CELLS = st.one_of(LABELS.map(lambda v: "" if v is None else str(v)), st.text(max_size=6),
                  st.sampled_from(['"', '""', ",", "\t", "\n", "\r\n", "a,b", '"x,y"']))
NAMES = st.sampled_from(["text", "label", "sentence", "target", "", " ", "label.1", "x", "text"])


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


@pytest.fixture(autouse=True)
def bounded_memory():
    before = _peak()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datasets.disable_progress_bars()
        yield
    assert _peak() - before < MAX_GROWTH


def _loads_or_names_the_problem(dataset, **kwargs) -> None:
    try:
        task = load_task(dataset, **kwargs)
    except HfEmmsError as exc:
        message = str(exc)
        assert message.strip(), "an error without a message"
        assert "\n" not in message.strip(), message
        return
    assert isinstance(task, Task)
    assert len(task.dataset) >= 2 and task.input_column in task.dataset.column_names
    assert task.label_column in task.dataset.column_names and len(task.fingerprint) == 16
    if task.kind == "classification":
        ids = task.dataset[task.label_column]
        assert task.class_names and min(ids) >= 0 and max(ids) < len(task.class_names)  # ids 0..C-1, dense


@st.composite
def csv_bytes(draw):
    header = draw(st.one_of(st.just(["text", "label"]), st.lists(NAMES, min_size=0, max_size=4)))
    width = st.one_of(st.just(len(header)), st.integers(0, 5))
    rows = draw(st.lists(width.flatmap(lambda k: st.lists(CELLS, min_size=k, max_size=k)), min_size=0, max_size=8))
    delimiter = draw(st.sampled_from([",", "\t"]))
    lines = [delimiter.join(header), *(delimiter.join(r) for r in rows)]
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 3)) == 0:  # corrupt a few bytes: bad UTF-8, NULs, stray quotes
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.sampled_from([b"\xff", b"\x80", b"\x00", b'"', b"\xe9t\xe9", b"\r"])) + data[at:]
    return (".tsv" if delimiter == "\t" else ".csv"), data


@settings(max_examples=80, **SETTINGS)
@given(csv_bytes())
def test_malformed_csv_files(tmp_path_factory, file):
    suffix, data = file
    path = tmp_path_factory.mktemp("csv") / f"data{suffix}"
    path.write_bytes(data)
    _loads_or_names_the_problem(path)


@st.composite
def jsonl_bytes(draw):
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["record", "record", "record", "garbage", "blank", "other"]))
        if kind == "record":
            record = {"text": draw(st.one_of(st.text(max_size=6), st.none())), "label": draw(LABELS)}
            if draw(st.booleans()):
                record.pop(draw(st.sampled_from(["text", "label"])))
            lines.append(json.dumps(record, allow_nan=True))
        elif kind == "garbage":
            lines.append(draw(st.sampled_from(['{"text": "a", label: 1}', "{", "[1, 2", "nul", '{"text": "x",}'])))
        elif kind == "other":
            lines.append(json.dumps(draw(st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.text()))))
        else:
            lines.append("")
    data = "\n".join(lines).encode()
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xc3" + data[at:]
    return data


@settings(max_examples=60, **SETTINGS)
@given(jsonl_bytes())
def test_malformed_jsonl_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("jsonl") / "data.jsonl"
    path.write_bytes(data)
    _loads_or_names_the_problem(path)


@settings(max_examples=120, **SETTINGS)
@given(
    labels=st.one_of(st.lists(LABELS, min_size=0, max_size=10),
                     st.lists(st.integers(-(2**62), 2**62), min_size=2, max_size=10),
                     st.lists(st.booleans(), min_size=0, max_size=10),
                     st.lists(st.one_of(st.none(), st.floats()), min_size=0, max_size=10)),
    text=st.booleans(), kwargs=st.fixed_dictionaries({}, optional={
        "task": st.sampled_from(["classification", "regression", "text", "multilabel", "boxes", "nope"]),
        "label_column": st.sampled_from(["label", "text", "missing"]),
        "input_column": st.sampled_from(["text", "label", "missing"]),
    }),
)
def test_malformed_in_memory_datasets(labels, text, kwargs):
    columns = {"label": labels}
    if text:
        columns["text"] = [f"sample {i}" for i in range(len(labels))]
    try:
        ds = datasets.Dataset.from_dict(columns)
    except Exception:  # mixed types that Arrow itself cannot hold: no Dataset to give us
        assume(False)
    _loads_or_names_the_problem(ds, **kwargs)


def test_duplicates_are_refused_or_counted():
    for copies in (1, 2, 10):
        ds = datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(12)] * copies, "label": [0, 1] * 6 * copies})
        try:
            assert check_distinct(ds, "text") == 12
        except HfEmmsError as exc:
            assert copies > 2 and "distinct" in str(exc)


# ---- the metric ---------------------------------------------------------------------------------------------------
REFERENCES = {
    "none": st.none(), "empty": st.just([]), "scalar": st.one_of(st.text(max_size=3), st.integers()),
    "labels": st.lists(LABELS, min_size=1, max_size=8), "ids": st.lists(st.integers(0, 3), min_size=1, max_size=12),
    "huge ids": st.lists(st.sampled_from([5, 100_000_000, 2**63 - 1, 1e30, -1, 2.0**60]), min_size=1, max_size=8),
    "names": st.lists(st.sampled_from(["cat", "dog", "bird"]), min_size=1, max_size=12),
    "nested": st.lists(st.one_of(st.lists(st.integers(0, 2), max_size=2), st.integers(0, 2)), min_size=1, max_size=8),
}


@st.composite
def metric_inputs(draw):
    """(references, features, keyword arguments): mostly well-formed but for one or two things."""
    kind = draw(st.sampled_from(["ids", "ids", "ids", "names", "names", "labels", "labels", "huge ids", "nested",
                                 "none", "empty", "scalar"]))
    references = draw(REFERENCES[kind])
    n = len(references) if isinstance(references, list) else 3
    if draw(st.integers(0, 5)) == 0:
        n = draw(st.integers(0, 9))
    width = draw(st.sampled_from([1, 2, 3, 3, 0]))
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    features = {
        "float": lambda: rng.standard_normal((n, width)),
        "nan": lambda: np.full((n, max(width, 1)), np.nan),
        "ragged": lambda: [[1.0] * (i % 3) for i in range(n)],
        "strings": lambda: [["a"] * width for _ in range(n)],
        "1-D": lambda: rng.standard_normal(n),
        "none": lambda: None,
        "huge": lambda: np.full((n, max(width, 1)), 1e300),
        "list": lambda: rng.standard_normal((n, width)).tolist(),
    }[draw(st.sampled_from(["float"] * 6 + ["list", "nan", "ragged", "strings", "1-D", "none", "huge"]))]()
    kwargs = draw(st.fixed_dictionaries({}, optional={
        "label_kind": st.sampled_from(["classification", "classification", "regression", "text", "boxes"]),
        "class_names": st.one_of(st.none(), st.lists(st.sampled_from(["cat", "dog", "bird", ""]), max_size=4)),
        "class_embeddings": st.sampled_from([None, "tables", "short tables"]),
        "label_embeddings": st.sampled_from([None, "per sample", "short"]),
        "rule": st.sampled_from(["in_sample", "in_sample", "gcv", "best"]),
        "batch_size": st.sampled_from([1, 3, 4096, 0]),
        "sample_ids": st.sampled_from([None, "ids"]),
    }))
    kwargs.setdefault("rule", "in_sample")  # the cheapest rule; any other is tried as drawn
    if kwargs.get("class_embeddings") is not None:
        kwargs["class_embeddings"] = rng.standard_normal((4 if kwargs["class_embeddings"] == "tables" else 1, 3))
    if kwargs.get("label_embeddings") is not None:
        kwargs["label_embeddings"] = rng.standard_normal((n if kwargs["label_embeddings"] == "per sample" else 1, 2))
    if kwargs.get("sample_ids") is not None:
        kwargs["sample_ids"] = np.arange(n)
    return references, features, kwargs


@settings(max_examples=300, **SETTINGS)
@given(metric_inputs())
def test_malformed_metric_inputs(inputs):
    references, features, kwargs = inputs
    try:
        out = compute(references, features, **kwargs)
    except HfEmmsError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), str(exc)
        given_min = isinstance(references, list) and any(type(v) is int and v == -(2**63) for v in references)
        assert given_min or "-9223372036854775808" not in str(exc), "an overflow to the smallest int64"
        return
    assert isinstance(out["emms"], float) and math.isfinite(out["emms"])
    assert out["emms_weights"] and all(math.isfinite(w) for w in out["emms_weights"])
