"""F-label parsing without any model: class names, every label kind, bad labels, the width rule, the cache files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from hf_emms import FeatureStats, emms
from hf_emms.labels import LabelError, clean_class_name, embed_labels, width_map
from hf_emms.labels.cache import EmbeddingCache, atomic_write, default_cache_dir
from hf_emms.labels.kinds import plan_boxes, plan_classification, plan_multilabel, plan_regression, plan_text
from hf_emms.labels.names import class_names_from
from hf_emms.labels.width import tile_columns, to_width


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("golden_retriever", "golden retriever"),
        ("001.Black_footed_Albatross", "black footed albatross"),
        ("__label__positive", "positive"),
        ("TrafficLight", "traffic light"),
        ("ROSE", "rose"),
        ("t-shirt", "t-shirt"),
        ("  New   York ", "new york"),
        ("HTTPServer", "http server"),
        ("3-cat", "cat"),
    ],
)
def test_clean_class_name(raw, clean):
    assert clean_class_name(raw) == clean


def test_class_names_from_classlabel_list_and_mapping():
    from datasets import ClassLabel, List

    assert class_names_from(ClassLabel(names=["cat", "dog"])) == ["cat", "dog"]
    assert class_names_from(List(ClassLabel(names=["cat", "dog"]))) == ["cat", "dog"]  # a multi-label column
    assert class_names_from(["cat", "dog"]) == ["cat", "dog"]
    assert class_names_from({1: "dog", 0: "cat"}) == ["cat", "dog"]
    assert class_names_from({"1": "dog", "0": "cat"}) == ["cat", "dog"]  # id2label from a JSON config
    with pytest.raises(LabelError, match="0..1 exactly"):
        class_names_from({0: "cat", 2: "dog"})
    with pytest.raises(LabelError, match="empty name"):
        class_names_from(["cat", " "])
    with pytest.raises(LabelError, match="must be strings"):
        class_names_from(["cat", None])
    with pytest.raises(LabelError, match="must be strings"):
        class_names_from(["cat", 3])
    with pytest.raises(LabelError, match="ClassLabel, a list of names"):
        class_names_from("cat")
    with pytest.raises(LabelError, match="classes 0 and 2 are both named 'ham'.*not one label per sample"):
        class_names_from(["ham", "spam", "ham"])
    with pytest.raises(LabelError, match="empty once cleaned"):
        plan_classification(["cat", "__label__"])


def test_classification_plan_prompt_and_warnings():
    plan = plan_classification(["Golden_Retriever", "tabby_cat"], prompt="a photo of a {}.")
    assert plan.texts == ["a photo of a golden retriever.", "a photo of a tabby cat."]
    assert plan.class_names == ["golden retriever", "tabby cat"]
    assert plan_classification(["Golden_Retriever"], clean=False).texts == ["Golden_Retriever"]
    with pytest.warns(UserWarning, match="placeholders"):
        plan_classification(["LABEL_0", "LABEL_1"])
    with pytest.warns(UserWarning, match="share the name 'dog'"):
        plan_classification(["Dog", "dog"])


def _dense(plan):
    """The (N x U) averaging matrix of a plan, written out."""
    m = np.zeros((plan.n_samples, len(plan.texts)))
    for i in range(plan.n_samples):
        for j in range(plan.indptr[i], plan.indptr[i + 1]):
            m[i, plan.indices[j]] += plan.weights[j]
    return m


def test_multilabel_plan_means_over_classes():
    plan = plan_multilabel([[0, 2], [], ["b"], np.array([2, 2, 1])], ["a", "b", "c"])
    expected = [[0.5, 0, 0.5], [0, 0, 0], [0, 1, 0], [0, 0.5, 0.5]]  # repeats count once; no class: zeros
    np.testing.assert_allclose(_dense(plan), expected)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([[0, 3]], "class id 3 is outside 0..2"),
        ([[-1]], "class id -1 is outside"),
        ([["zebra"]], "unknown class name 'zebra'"),
        ([[0, "b"]], "mixes class ids and names"),
        ([None], "list of class ids or names"),
        (["a"], "list of class ids or names"),
        ([[1.5]], "not a class id"),
        ([[True]], "not a class id"),
        ([], "there are no multilabel labels"),
    ],
)
def test_multilabel_bad_labels(labels, message):
    with pytest.raises(LabelError, match=message):
        plan_multilabel(labels, ["a", "b", "c"])


def test_multilabel_needs_classes():
    with pytest.raises(LabelError, match="need classes="):
        embed_labels([[0]], kind="multilabel")


def test_text_plan_deduplicates_and_averages_references():
    plan = plan_text(["a dog", ["a cat", " a dog "], ("a cat",)], prompt="{}!")
    assert plan.texts == ["a dog!", "a cat!"]
    np.testing.assert_allclose(_dense(plan), [[1, 0], [0.5, 0.5], [0, 1]])


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["a dog", None], "sample 1 reference 0 is None"),
        (["a dog", ""], "empty string"),
        (["a dog", ["ok", "  "]], "sample 1 reference 1 is an empty string"),
        (["a dog", []], "sample 1 has no reference text"),
        (["a dog", 3], "a string or a list of strings"),
        (["a dog", ["x", 3]], "expected a string"),
        ("a dog", "one entry per sample"),
        (None, "one entry per sample"),
    ],
)
def test_text_bad_labels(labels, message):
    with pytest.raises(LabelError, match=message):
        plan_text(labels)


def test_regression_plan():
    plan = plan_regression([1, 2.5, -3])
    np.testing.assert_array_equal(plan.targets, [[1], [2.5], [-3]])
    assert plan.texts == []
    encoded = plan_regression([[1, 2], [1, 2], [0.125, 1e7]], encode=True, prompt="{} stars")
    assert encoded.texts == ["1, 2 stars", "0.125, 1e+07 stars"]
    np.testing.assert_allclose(_dense(encoded), [[1, 0], [1, 0], [0, 1]])


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([1.0, float("nan")], "NaN or inf"),
        ([1.0, None], "must all be numbers"),
        ([1.0, "2"], "must be numbers|must all be numbers"),
        ([True, False], "dtype bool"),
        ([[1.0], [2.0, 3.0]], "rectangular"),
        ([[[1.0]]], r"shape \(N,\) or \(N, T\)"),
        ([1e300, 0.0], r"too large \(values up to 1e\+300\): their squares overflow"),  # was a skip per candidate
    ],
)
def test_regression_bad_labels(labels, message):
    with pytest.raises(LabelError, match=message):
        plan_regression(labels)


def test_numbers_only_need_no_encoder():
    flabels = embed_labels(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]]), kind="regression", encoders="not/loaded")
    assert (flabels.width, flabels.k, flabels.encoders, flabels.members) == (2, 1, (), ("targets",))
    np.testing.assert_array_equal(flabels.to_array()[:, :, 0], [[1, 2], [3, 4], [5, 7]])
    with pytest.raises(LabelError, match="used as they are"):
        embed_labels([1.0, 2.0], kind="regression", width=8)


def test_box_geometry_formats_and_pixels():
    xyxy = [[0.1, 0.2, 0.5, 0.6]]
    expected = [[0.3, 0.4, 0.4, 0.4]]  # (cx, cy, w, h)
    np.testing.assert_allclose(plan_boxes(xyxy).targets, expected)
    np.testing.assert_allclose(plan_boxes([[0.1, 0.2, 0.4, 0.4]], box_format="xywh").targets, expected)
    np.testing.assert_allclose(plan_boxes([[0.3, 0.4, 0.4, 0.4]], box_format="cxcywh").targets, expected)
    np.testing.assert_allclose(plan_boxes([[20, 40, 100, 120]], image_sizes=[(200, 200)]).targets, expected)
    two = plan_boxes([{"boxes": [[0, 0, 1, 1], [0.2, 0.2, 0.4, 0.4]], "texts": ["a dog", "a cat"]}])
    np.testing.assert_allclose(two.targets, [[0.4, 0.4, 0.6, 0.6]])  # mean of the two boxes' geometry
    assert two.texts == ["a dog", "a cat"] and _dense(two).tolist() == [[0.5, 0.5]]
    shared = plan_boxes([{"box": [[0, 0, 1, 1], [0, 0, 0.5, 0.5]], "text": "the left dog"}])
    assert shared.texts == ["the left dog"]
    empty = plan_boxes([[], [0, 0, 1, 1]])
    np.testing.assert_allclose(empty.targets, [[0, 0, 0, 0], [0.5, 0.5, 1, 1]])


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        ([[20, 40, 100, 120]], {}, "outside \\[0, 1\\].*image_sizes"),
        ([[0.5, 0.5, 0.1, 0.1]], {}, "ends before it starts"),
        ([[0.1, 0.2, 0.3]], {}, r"shape \(4,\) or \(M, 4\)"),
        ([{"boxes": [0, 0, 1, 1], "label": "x"}], {}, "got keys"),
        ([{"boxes": [[0, 0, 1, 1]] * 3, "texts": ["a", "b"]}], {}, "3 boxes and 2 texts"),
        ([{"boxes": [0, 0, 1, 1], "texts": "a"}, [0, 0, 1, 1]], {}, "texts for every sample or none"),
        ([{"boxes": [0, 0, 1, 1], "texts": ""}], {}, "empty string"),
        ([[0, 0, 1, 1]], {"box_format": "yxyx"}, "box_format must be one of"),
        ([[0, 0, 10, 10]], {"image_sizes": [(0, 10)]}, "must be positive"),
        ([[0, 0, 10, 10]], {"image_sizes": [(10, 10), (10, 10)]}, "2 entries for 1 samples"),
        ([[0, float("nan"), 1, 1]], {}, "NaN"),
        ([[0, 0, 1, 1], 3], {}, "sample 1: a box label is 4 numbers.*got int 3.*task='boxes'"),  # a class id column
        (["x"], {}, "got str 'x'"),
    ],
)
def test_box_bad_labels(labels, kwargs, message):
    with pytest.raises(LabelError, match=message):
        plan_boxes(labels, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "captions"}, "kind must be one of"),
        ({"kind": "text", "prompt": "no slot"}, "exactly one"),
        ({"kind": "text", "classes": ["a"]}, "classes= is for multilabel"),
        ({"kind": "text", "encode_targets": True}, "regression targets only"),
        ({"kind": "text", "box_format": "xywh"}, "box labels only"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(LabelError, match=message):
        embed_labels(["a dog"], **kwargs)


# ------------------------------------------------------------------------------------------------ the width rule
@pytest.mark.parametrize(("native", "width"), [(768, 512), (384, 512), (512, 512)])
def test_width_map_is_orthonormal_and_fixed(native, width):
    r = width_map(native, width)
    assert r.shape == (native, width)
    small = min(native, width)
    gram = r.T @ r if native >= width else r @ r.T
    np.testing.assert_allclose(gram, np.eye(small) * max(native / width, 1.0), atol=1e-12)
    assert width_map(native, width) is r  # computed once per process
    np.testing.assert_array_equal(np.asarray(r), np.asarray(width_map.__wrapped__(native, width)))  # and fixed


def test_to_width_keeps_geometry():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((20, 768)) * rng.uniform(0.1, 10, size=(20, 1))  # rows of very different norms
    unit = e / np.linalg.norm(e, axis=1, keepdims=True)
    narrow = to_width(e, 512).astype(np.float64)
    # Projection to 512 of 768: inner products of the unit rows kept within the Johnson-Lindenstrauss error.
    error = np.abs(narrow @ narrow.T - unit @ unit.T)
    assert error.max() < 0.15 and error.mean() < 0.05
    wide = to_width(e[:, :384], 512).astype(np.float64)  # isometry into a wider space: exact
    unit384 = e[:, :384] / np.linalg.norm(e[:, :384], axis=1, keepdims=True)
    np.testing.assert_allclose(wide @ wide.T, unit384 @ unit384.T, atol=1e-5)


def test_tiled_targets_score_like_the_targets():
    """A repeated column scores exactly like the original (so tiling targets to D2 changes nothing)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 6))
    y = x[:, :2] @ rng.standard_normal((2, 3)) + 0.5 * rng.standard_normal((200, 3))
    for rule in ("gcv", "in_sample"):
        plain = emms(FeatureStats().update(x, label_embeddings=y), rule=rule).score
        tiled = emms(FeatureStats().update(x, label_embeddings=tile_columns(y, 12)), rule=rule).score
        assert tiled == pytest.approx(plain, rel=1e-9)


# ------------------------------------------------------------------------------------------------ the cache files
def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_EMMS_CACHE", str(tmp_path / "root"))
    assert default_cache_dir() == tmp_path / "root" / "labels"
    monkeypatch.delenv("HF_EMMS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "hf_emms" / "labels"


def test_cache_roundtrip_and_files(tmp_path):
    config = {"model": "m", "revision": "r", "pooling": "mean"}
    cache = EmbeddingCache(tmp_path, config)
    emb = np.arange(6, dtype=np.float32).reshape(3, 2)
    cache.put(["a", "b", "c"], emb)
    fresh = EmbeddingCache(tmp_path, config)  # a new process: only the disk
    got = fresh.get(["c", "x", "a"])
    assert sorted(got) == [0, 2]
    np.testing.assert_array_equal(got[0], emb[2])
    np.testing.assert_array_equal(got[2], emb[0])
    assert EmbeddingCache(tmp_path, {**config, "pooling": "cls"}).get(["a"]) == {}  # another key, another folder
    files = {p.name for p in cache.folder.iterdir()}  # no temporary file left behind
    assert len(files) == 2 and "manifest.json" in files
    assert all(f.endswith(".safetensors") and not f.startswith(".") for f in files - {"manifest.json"})
    assert json.loads((cache.folder / "manifest.json").read_text()) == config


def test_damaged_shard_is_ignored(tmp_path):
    cache = EmbeddingCache(tmp_path, {"model": "m"})
    cache.put(["a"], np.ones((1, 2)))
    (cache.folder / "broken.safetensors").write_bytes(b"\x10\x00\x00")
    with pytest.warns(UserWarning, match="ignoring unreadable F-label cache shard .* moved to broken.safetensors."):
        got = EmbeddingCache(tmp_path, {"model": "m"}).get(["a"])
    np.testing.assert_array_equal(got[0], [1, 1])
    # set aside, kept for inspection and never read again: the next run is quiet
    assert (cache.folder / "broken.safetensors.unreadable").read_bytes() == b"\x10\x00\x00"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(EmbeddingCache(tmp_path, {"model": "m"}).get(["a"])[0], [1, 1])


def test_the_cli_shows_a_warning_as_one_line_not_a_line_of_source(tmp_path, capsys):
    from hf_emms.cli import _show_warning

    _show_warning(UserWarning("ignoring unreadable\n shard x"), UserWarning, "/src/hf_emms/x.py", 12)
    assert capsys.readouterr().err == "hf-emms: warning: ignoring unreadable shard x\n"


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def fail(path):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "shard.safetensors", fail)
    assert list(tmp_path.iterdir()) == []
    atomic_write(tmp_path / "ok.txt", lambda p: Path(p).write_text("done"))
    assert [p.name for p in tmp_path.iterdir()] == ["ok.txt"]
