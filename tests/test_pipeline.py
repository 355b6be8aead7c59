"""rank() end to end: a dataset and candidates served over HTTP by the local Hub, gated and broken candidates
skipped with reasons, results stored and resumed after a killed run, task detection, the Ranking outputs, the CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import _tiny_models
from hf_emms.errors import InvalidInputError
from hf_emms.pipeline import iter_rank, rank
from hf_emms.results import Ranking
from hf_emms.tasks import load_task

HERE = Path(__file__).parent
CSV_HEADER = "text,label\n"


def _csv(n: int = 60) -> str:
    rng = np.random.default_rng(0)
    names = ["sports", "cooking", "weather"]
    words = {"sports": "goal match team coach", "cooking": "oven recipe garlic soup", "weather": "rain storm snow wind"}
    lines = []
    for i in range(n):
        label = names[i % 3]
        picked = rng.choice(words[label].split(), 2, replace=False)
        lines.append(f"a photo of a {picked[0]} and {picked[1]},{label}")
    return CSV_HEADER + "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "small": _tiny_models.bert(root / "small", hidden=32, seed=1),
        "wide": _tiny_models.bert(root / "wide", hidden=64, seed=2),
        "encoder": _tiny_models.bert(root / "encoder", hidden=32, seed=3),
    }


def test_rank_against_the_local_hub_skips_gated_and_broken_candidates_with_reasons(hub_server, tiny, tmp_path):
    dataset_sha = hub_server.add_dataset("acme/topics", {"train.csv": _csv()})
    shas = {name: hub_server.add_model(f"acme/{name}", tiny[name]) for name in ("small", "wide")}
    hub_server.add_model("acme/gated", tiny["small"], gated=True)
    broken = {"config.json": (tiny["small"] / "config.json").read_text(), "model.safetensors": b"not a safetensors file"}
    hub_server.add_model("acme/broken", files=broken)
    ranking = rank("acme/topics", ["acme/small", "acme/wide", "acme/gated", "acme/broken"],
                   encoders=[str(tiny["encoder"])], max_samples=None, cache_dir=tmp_path / "cache",
                   output_dir=tmp_path / "out", metrics=("emms", "logme", "hscore"), progress=False)
    df = ranking.df.set_index("model")
    assert set(df.index) == {"acme/small", "acme/wide", "acme/gated", "acme/broken"}
    for name in ("small", "wide"):
        row = df.loc[f"acme/{name}"]
        assert row["status"] == "ok" and row["revision"] == shas[name] and row["n_samples"] == 60
        assert -2 < row["emms"] < 0 and np.isfinite(row["logme"]) and np.isfinite(row["hscore"])
    assert df.loc["acme/gated", "status"] == "skipped" and "access" in df.loc["acme/gated", "reason"]
    assert df.loc["acme/broken", "status"] == "skipped" and df.loc["acme/broken", "reason"]
    assert ranking.meta["dataset"]["id"] == "acme/topics" and ranking.meta["dataset"]["revision"] == dataset_sha
    assert ranking.meta["task"]["classes"] == ["cooking", "sports", "weather"]  # strings, encoded in sorted order
    # The dataset and the scored candidates really came over HTTP.
    assert hub_server.requests_to("/datasets/acme/topics/resolve", "GET")
    assert any("/acme/small/resolve/" in r.path and r.path.endswith("model.safetensors") for r in hub_server.requests)
    saved = {p.name for p in (tmp_path / "out").iterdir()}
    assert saved == {"ranking.json", "ranking.csv", "ranking.md", "ranking.png"}
    assert (tmp_path / "out" / "ranking.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = Ranking.from_json((tmp_path / "out" / "ranking.json").read_text())
    assert again.df["model"].tolist() == ranking.df["model"].tolist() and again.best == ranking.best


def test_a_candidate_whose_card_names_the_scored_dataset_is_said_to_have_seen_it(hub_server, tiny, tmp_path, capsys):
    # A checkpoint fine-tuned on these very rows scores as if it generalised to them: the row and the run say so.
    hub_server.add_dataset("acme/reviews", {"train.csv": _csv()})
    hub_server.add_model("acme/tuned", tiny["small"], tags=["text-classification", "dataset:acme/reviews"])
    hub_server.add_model("acme/plain", tiny["wide"], tags=["dataset:acme/other"])
    run = iter_rank("acme/reviews", ["acme/tuned", "acme/plain"], encoders=None, max_samples=None,
                    cache_dir=tmp_path / "cache", progress=True)
    rows = {row.model: row for row in run}  # the flag travels with the row into the results store
    assert rows["acme/tuned"].extra["card_lists_dataset"] == "its tag 'dataset:acme/reviews'"
    assert "card_lists_dataset" not in rows["acme/plain"].extra
    said = capsys.readouterr().err  # beside the progress bars
    assert "note: acme/tuned: its card names this dataset" in said and "note: acme/plain: its card" not in said


def test_card_lists_dataset_reads_tags_and_model_index_names():
    from hf_emms.hub import Candidate, Source
    from hf_emms.hub.candidate import card_lists_dataset

    tuned = Candidate("org/distilbert-sst2", "a" * 40, Source.HUB, tags=("dataset:sst2",),
                      eval_results=(("glue/sst2", "accuracy", 0.91),))
    assert card_lists_dataset(tuned, "stanfordnlp/sst2") == "its tag 'dataset:sst2'"  # a bare name: the same data
    assert card_lists_dataset(tuned, "nyu-mll/glue", "sst2") == "a model-index result on 'glue/sst2'"
    assert card_lists_dataset(tuned, "nyu-mll/glue", "cola") is None
    assert card_lists_dataset(tuned, "stanfordnlp/imdb") is None and card_lists_dataset(tuned, None) is None


def test_a_finished_ranking_reloads_from_its_records_without_extracting(tiny, tmp_path):
    ds = _dataset()
    kwargs = dict(encoders=None, max_samples=None, cache_dir=tmp_path / "cache", progress=False)
    first = rank(ds, [str(tiny["small"]), str(tiny["wide"])], **kwargs)
    stats_files = [p for p in (tmp_path / "cache" / "stats").rglob("*") if p.is_file()]
    assert stats_files
    for p in stats_files:  # without statistics, only the records can answer
        p.unlink()
    start = time.perf_counter()
    second = rank(ds, [str(tiny["small"]), str(tiny["wide"])], **kwargs)
    assert time.perf_counter() - start < 5
    assert second.df["emms"].tolist() == first.df["emms"].tolist()
    assert not [p for p in (tmp_path / "cache" / "stats").rglob("*") if p.is_file()]  # nothing was re-extracted
    other = rank(ds, [str(tiny["small"])], **{**kwargs, "seed": 1, "max_samples": 30})  # another config: computed
    assert other.df.loc[0, "n_samples"] == 30


_RESUME_SCRIPT = """
import sys, numpy as np
from datasets import ClassLabel, Dataset, Features, Value
from hf_emms.pipeline import iter_rank, rank
texts = [f"sample {i} about {['goal match', 'oven soup', 'rain storm'][i % 3]}" for i in range(300)]
ds = Dataset.from_dict({"text": texts, "label": [i % 3 for i in range(300)]},
                       features=Features({"text": Value("string"), "label": ClassLabel(names=["a", "b", "c"])}))
rank(ds, sys.argv[2:], encoders=None, max_samples=None, cache_dir=sys.argv[1], batch_size=4, progress=True)
"""


def test_a_killed_run_resumes_without_recomputing_finished_candidates(tiny, tmp_path):
    folders = [str(tiny["small"]), str(tiny["wide"]), str(tiny["encoder"])]
    cache = tmp_path / "cache"
    script = tmp_path / "resume.py"
    script.write_text(_RESUME_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(cache), *folders], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    records = cache / "results"
    deadline = time.time() + 240
    while time.time() < deadline and not (records.is_dir() and list(records.glob("*.json"))):
        time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read()
    os.killpg(proc.pid, signal.SIGKILL)  # mid-way through the second candidate
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 1 <= len(done) < 3
    for p in records.iterdir():  # no half-written record: every file parses, no temporary left
        assert p.suffix == ".json" and json.loads(p.read_text())["row"]["status"] == "ok"
    out = subprocess.run([sys.executable, str(script), str(cache), *folders], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("done earlier") == len(done)
    assert {p.name: p.stat().st_mtime_ns for p in records.glob("*.json") if p.name in done} == done
    assert len(list(records.glob("*.json"))) == 3


def _dataset(n: int = 60):
    from datasets import ClassLabel, Dataset, Features, Value

    rows = [line.rsplit(",", 1) for line in _csv(n).splitlines()[1:]]
    names = ["sports", "cooking", "weather"]
    return Dataset.from_dict({"text": [t for t, _ in rows], "label": [names.index(l) for _, l in rows]},
                             features=Features({"text": Value("string"), "label": ClassLabel(names=names)}))


def test_task_detection_from_features_and_overrides(tmp_path):
    from datasets import Dataset

    t = load_task(_dataset())
    assert (t.kind, t.modality, t.input_column, t.label_column, t.class_names) == (
        "classification", "text", "text", "label", ["sports", "cooking", "weather"])
    strings = Dataset.from_dict({"review": ["good", "bad", "fine", "awful"] * 5, "category": ["pos", "neg"] * 10})
    t = load_task(strings)
    assert t.kind == "classification" and t.label_column == "category" and t.input_column == "review"
    assert sorted(t.class_names) == ["neg", "pos"] and set(t.dataset["category"]) == {0, 1}
    assert load_task(Dataset.from_dict({"text": ["a", "b", "c"], "target": [0.5, 1.5, 2.0]})).kind == "regression"
    captions = Dataset.from_dict({"text": [f"x{i}" for i in range(10)], "caption": [f"a caption {i}" for i in range(10)]})
    assert load_task(captions, label_column="caption").kind == "text"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text(_csv(12))
    (tmp_path / "data" / "test.csv").write_text(_csv(6))
    t = load_task(tmp_path / "data", split="test")
    assert len(t.dataset) == 6 and t.kind == "classification" and t.source["split"] == "test"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(dataset="no/such-dataset-here"), "could not load"),
    (dict(dataset="./missing/folder"), "no file or folder"),
    (dict(label_column="nope"), "label column 'nope'"),
    (dict(input_column="label"), "both 'label'"),
    (dict(task="segmentation"), "unknown task"),
    (dict(split="validation"), "no split 'validation'"),
    (dict(dataset="__frame__"), r"got DataFrame\. Wrap it: datasets\.Dataset\.from_pandas"),
    (dict(dataset="__stream__"), r"got IterableDataset\. Wrap it: datasets\.Dataset\.from_list\(list\(stream\.take"),
])
def test_bad_dataset_input_is_named(kwargs, message, hub_server, tmp_path):
    (tmp_path / "data.csv").write_text(_csv(12))
    kwargs.setdefault("dataset", str(tmp_path / "data.csv"))
    if kwargs["dataset"] == "__frame__":
        kwargs["dataset"] = __import__("pandas").read_csv(tmp_path / "data.csv")
    if isinstance(kwargs["dataset"], str) and kwargs["dataset"] == "__stream__":  # load_dataset(..., streaming=True)
        kwargs["dataset"] = load_task(tmp_path / "data.csv").dataset.to_iterable_dataset()
    with pytest.raises(InvalidInputError, match=message):
        load_task(kwargs.pop("dataset"), **kwargs)
    with pytest.raises(InvalidInputError, match="no label column"):
        from datasets import Dataset

        load_task(Dataset.from_dict({"text": ["a", "b"], "other": [1, 2]}))


@pytest.mark.parametrize(("repo", "kwargs", "message"), [
    ("org/configs", {}, r"'org/configs' has several configs: pass one of \['a', 'b'\] as config="),
    ("org/configs", {"config": "c"}, r"'org/configs' has no config 'c': pass one of \['a', 'b'\]"),
    ("org/gated", {}, r"'org/gated' is gated: accept its conditions on http.*/datasets/org/gated"),
    ("org/empty", {}, r"'org/empty' holds no data file datasets can read \(its files: \['README.md', 'train.bin'\]"),
    ("org/nope", {}, r"no dataset 'org/nope' on the Hub \(http"),
    ("org/plain", {"revision": "deadbeef"}, "'org/plain' has no revision 'deadbeef'"),
])
def test_a_hub_dataset_that_cannot_be_loaded_says_why(repo, kwargs, message, hub_server):
    # datasets says "Dataset org/x is not cached in None" for most of these; one metadata request tells them apart.
    hub_server.add_dataset("org/plain", {"train.csv": _csv(12)})
    hub_server.add_dataset("org/configs", {"README.md": "---\nconfigs:\n- config_name: a\n  data_files: a.csv\n"
                                           "- config_name: b\n  data_files: b.csv\n---\n", "a.csv": _csv(12),
                                           "b.csv": _csv(12)})
    hub_server.add_dataset("org/gated", {"train.csv": _csv(12)}, gated=True, tokens=["hf_granted"])
    hub_server.add_dataset("org/empty", {"README.md": "# no data\n", "train.bin": b"\x00"})
    with pytest.raises(InvalidInputError, match=message):
        load_task(repo, **kwargs)


def test_cli_rank_prints_the_table_and_saves_it(tiny, tmp_path):
    (tmp_path / "data.csv").write_text(_csv(30))
    out = subprocess.run(
        [sys.executable, "-m", "hf_emms.cli", "rank", str(tmp_path / "data.csv"), "--models", str(tiny["small"]),
         str(tiny["wide"]), "/no/such/checkpoint", "--encoders", "none", "--output-dir", str(tmp_path / "out"),
         "--cache-dir", str(tmp_path / "cache"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "| small " in out.stdout and "| wide " in out.stdout and "skipped" in out.stdout
    assert "best: " in out.stdout
    saved = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert saved["rows"][0]["model"] == out.stdout.split("best: ")[1].split()[0]


def test_the_cli_names_flags_where_the_library_names_keywords(tmp_path, capsys):
    from hf_emms.cli import main

    (tmp_path / "data.csv").write_text("text,value\n" + "".join(f"row {i},{i}\n" for i in range(12)))
    assert main(["rank", str(tmp_path / "data.csv"), "--models", "x", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no label column found" in err and "Pass --label-column." in err and "label_column=" not in err


def test_a_local_folder_has_one_revision_in_the_row_the_extraction_record_and_the_card(tiny, tmp_path):
    from hf_emms.cards import ChangeStatus, annotate
    from hf_emms.hub import candidate_from_folder

    ranking = rank(_dataset(), [str(tiny["small"])], encoders=None, max_samples=30, cache_dir=tmp_path / "cache",
                   progress=False)
    (row,) = ranking.rows
    (stored,) = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "results").glob("*.json")]
    # A card can only be annotated for a Hub dataset: the same rows under a Hub dataset's meta.
    on_hub = Ranking(ranking.rows, {**ranking.meta.to_dict(), "dataset": {"id": "acme/topics", "name": "acme/topics"}})
    (change,) = annotate(on_hub, progress=False)
    digest = candidate_from_folder(tiny["small"]).revision
    assert row.revision == stored["extraction"]["revision"] == stored["row"]["revision"] == digest
    assert change.status is ChangeStatus.NOT_ANNOTATED and change.revision == digest and "local" in change.reason


def test_the_budget_is_drawn_once_and_recorded_with_the_statistics(tiny, tmp_path):
    ranking = rank(_dataset(), [str(tiny["small"])], encoders=None, max_samples=30, seed=4,
                   cache_dir=tmp_path / "cache", progress=False)
    (stored,) = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "results").glob("*.json")]
    drawn = stored["extraction"]["subsample"]
    assert drawn is not None and drawn["max_samples"] == 30 and drawn["seed"] == 4 and len(drawn["indices"]) == 30
    assert ranking.meta.dataset.rows_scored == 30 and ranking.meta.dataset.rows_total == 60
    everything = rank(_dataset(), [str(tiny["small"])], encoders=None, max_samples=None,
                      cache_dir=tmp_path / "cache", progress=False)
    records = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "results").glob("*.json")]
    assert everything.rows[0].n_samples == 60 and sorted(r["extraction"]["subsample"] is None for r in records) == [
        False, True]


def test_iter_rank_yields_one_row_per_candidate_and_matches_rank(tiny, tmp_path):
    from hf_emms import iter_rank
    from hf_emms.options import RankSpec

    kwargs = dict(encoders=None, max_samples=None, cache_dir=tmp_path / "cache", progress=False)
    folders = [str(tiny["small"]), "/no/such/checkpoint", str(tiny["wide"])]
    run = iter_rank(_dataset(), folders, **kwargs)
    seen = []
    for row in run:
        seen.append(row.model)
        assert len(run.ranking()) == len(seen)  # the table of the rows so far
    assert run.total == 3 and sorted(seen) == sorted(["small", "/no/such/checkpoint", "wide"])
    whole = rank(_dataset(), folders, **kwargs)
    assert whole.df.fillna(0)["emms"].tolist() == run.ranking().df.fillna(0)["emms"].tolist()  # skipped: NaN
    spec_run = iter_rank(_dataset(), folders, spec=RankSpec.from_options(kwargs))
    assert [r.model for r in spec_run] == seen
    with pytest.raises(TypeError, match="not both"):
        iter_rank(_dataset(), folders, spec=RankSpec(), seed=1)


def test_one_candidate_given_alone_is_one_candidate_not_a_sequence_of_characters(tiny, tmp_path):
    kwargs = dict(encoders=None, max_samples=None, cache_dir=tmp_path / "cache", progress=False)
    alone = rank(_dataset(), str(tiny["small"]), **kwargs)
    assert [r.model for r in alone.rows] == ["small"] and alone.best == "small"
    assert rank(_dataset(), tiny["small"], **kwargs).df["emms"].tolist() == alone.df["emms"].tolist()  # a Path too


def test_without_encoders_a_regression_target_is_its_own_f_label_and_tags_need_encoders(tiny, tmp_path):
    from datasets import Dataset

    base = _dataset()
    rng = np.random.default_rng(0)
    target = np.array(base["label"]) + rng.random(len(base))
    data = Dataset.from_dict({"text": base["text"], "target": target.tolist()})
    row = rank(data, [str(tiny["small"])], encoders=None, max_samples=None, cache_dir=tmp_path / "c",
               progress=False).rows[0]
    assert row.ok and row.emms_weights == {"targets": 1.0}
    with pytest.warns(UserWarning, match="hscore scores class labels only; this is a regression task"):
        asked = rank(data, [str(tiny["small"])], encoders=None, max_samples=None, metrics=["emms", "hscore"],
                     cache_dir=tmp_path / "c", progress=False)
    assert "hscore" not in asked.df.columns or asked.df["hscore"].isna().all()
    tags = Dataset.from_dict({"text": base["text"], "labels": [[n] for n in base["label"]]})
    with pytest.raises(InvalidInputError, match="a multilabel task needs F-label encoders"):
        rank(tags, [str(tiny["small"])], task="multilabel", encoders=None, cache_dir=tmp_path / "c", progress=False)


def test_a_multilabel_task_is_ranked_end_to_end_as_the_solver_scores_it_by_hand(tiny, tmp_path):
    from datasets import Dataset

    from hf_emms import emms
    from hf_emms.features import extract_stats
    from hf_emms.labels import embed_labels

    base, names = _dataset(), ["sports", "cooking", "weather"]
    tags = [[names[n]] + ([names[(n + 1) % 3]] if i % 3 == 0 else []) for i, n in enumerate(base["label"])]
    data = Dataset.from_dict({"text": base["text"], "labels": tags})
    encoder = str(tiny["encoder"])
    ranking = rank(data, [str(tiny["small"]), str(tiny["wide"])], task="multilabel", encoders=[encoder],
                   max_samples=None, layers="last", cache_dir=tmp_path / "c", progress=False)
    assert ranking.meta.task.kind == "multilabel" and all(r.ok for r in ranking.rows)
    by_hand = embed_labels(tags, kind="multilabel", classes=sorted(names), encoders=[encoder], cache_dir=False,
                           progress=False)
    for row in ranking.rows:
        stats = extract_stats(tiny[row.model], data, text_column="text", label_embeddings=by_hand.to_array(),
                              layers="last", progress=False).stats
        result = emms(stats)
        assert row.emms == pytest.approx(result.score, rel=1e-9) and row.emms_se == pytest.approx(result.se, rel=1e-9)


def test_boxes_in_pixels_are_ranked_end_to_end_in_the_format_given(tiny, tmp_path):
    """Referring expressions (an image, a box, its text) through rank(): COCO's pixel x, y, w, h used to be refused
    ("outside [0, 1]": rank() had no way to give image sizes) or, normalised, read as corners."""
    from datasets import Dataset, Features, Image, Sequence, Value
    from PIL import Image as PILImage

    from hf_emms import emms
    from hf_emms.features import extract_stats
    from hf_emms.labels import embed_labels

    rng = np.random.default_rng(0)
    sizes = [(40 + 4 * (i % 5), 32 + 2 * (i % 3)) for i in range(30)]
    images = [PILImage.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    boxes = [[float(i % 7), float(i % 5), w / 2, h / 3] for i, (w, h) in enumerate(sizes)]  # x, y, w, h in pixels
    words = ["the red cup", "a dog on the left", "the tall tree"]
    data = Dataset.from_dict(
        {"image": images, "target": [{"box": b, "text": words[i % 3]} for i, b in enumerate(boxes)]},
        features=Features({"image": Image(), "target": {"box": Sequence(Value("float64")), "text": Value("string")}}))
    vit, encoder = str(_tiny_models.vit(tmp_path / "vit")), str(tiny["encoder"])
    ranking = rank(data, [vit], task="boxes", label_column="target", box_format="xywh", encoders=[encoder],
                   max_samples=None, layers="last", cache_dir=tmp_path / "c", progress=False)
    (row,) = ranking.rows
    assert row.ok and ranking.meta.config["box_format"] == "xywh"
    by_hand = embed_labels(list(data["target"]), kind="boxes", box_format="xywh", image_sizes=sizes,
                           encoders=[encoder], cache_dir=False, progress=False)
    stats = extract_stats(vit, data, image_column="image", label_embeddings=by_hand.to_array(), layers="last",
                          progress=False).stats
    assert row.emms == pytest.approx(emms(stats).score, rel=1e-9)
    corners = rank(data, [vit], task="boxes", label_column="target", encoders=[encoder], max_samples=None,
                   layers="last", cache_dir=tmp_path / "c", progress=False)
    assert corners.rows[0].emms != row.emms  # read as x0, y0, x1, y1: other geometry, and another stored result
    with pytest.raises(InvalidInputError, match="box_format must be one of"):
        rank(data, [vit], task="boxes", label_column="target", box_format="yolo", progress=False)


def test_a_ranking_says_which_columns_it_read_and_why(tiny, tmp_path, capsys):
    from datasets import Dataset

    base = _dataset()
    data = Dataset.from_dict({"title": [f"item {i}" for i in range(len(base))], "body": base["text"],
                              "label": base["label"]})
    rank(data, [str(tiny["small"])], encoders=None, max_samples=None, cache_dir=tmp_path / "c", progress=True)
    err = capsys.readouterr().err
    assert "data: in-memory [all]: 60 rows, text input 'title' (detected: the first text column)" in err


def test_a_candidate_that_cut_many_samples_at_its_token_limit_is_noted(tiny, tmp_path, capsys):
    rank(_dataset(), [str(tiny["small"])], encoders=None, max_samples=None, max_length=6, cache_dir=tmp_path / "c",
         progress=True)
    assert re.search(r"note: small: \d+ of 60 samples filled its 6-token limit and were cut", capsys.readouterr().err)
    rank(_dataset(), [str(tiny["small"])], encoders=None, max_samples=None, cache_dir=tmp_path / "d", progress=True)
    assert "token limit" not in capsys.readouterr().err  # its own limit (64) holds these sentences whole
    long = _dataset().map(lambda r: {"text": (r["text"] + " ") * 30})  # past the model's 64 positions
    rank(long, [str(tiny["small"])], encoders=None, max_samples=None, cache_dir=tmp_path / "e", progress=True)
    assert re.search(r"filled its 64-token limit and were cut \(the model reads no more\)", capsys.readouterr().err)


def test_nce_asked_of_a_checkpoint_without_a_classifier_head_is_noted_not_left_blank(tiny, tmp_path, capsys):
    headed = _tiny_models.bert(tmp_path / "headed", classifier_labels=["x", "y", "z"], seed=4)
    ranking = rank(_dataset(), [str(tiny["small"]), str(headed)], encoders=None, metrics=["nce"],
                   cache_dir=tmp_path / "c", progress=True)
    nce = {row.model: row.nce for row in ranking.rows}
    assert nce["small"] is None and nce["headed"] is not None and np.isfinite(nce["headed"])
    err = capsys.readouterr().err
    assert "note: small: no NCE: it compares the checkpoint's own classifier head" in err
    assert "note: headed: no NCE" not in err


def test_candidates_the_folds_cannot_tell_apart_are_flagged_in_the_table_the_store_and_the_cli(tiny, tmp_path):
    topics = ["sports", "cooking", "weather", "music"]
    lines = [f"sentence number {i} is about {topics[i % 4]},{topics[i % 4]}" for i in range(200)]
    (tmp_path / "templated.csv").write_text("text,label\n" + "\n".join(lines) + "\n")
    ranking = rank(str(tmp_path / "templated.csv"), [str(tiny["small"]), str(tiny["wide"])], encoders=None,
                   max_samples=None, cache_dir=tmp_path / "cache", progress=False)
    assert ranking.warning and "cannot be told apart" in ranking.warning
    assert ranking.df["tied_with_best"].tolist() == [True, True] and (ranking.df["emms_se"] >= 0).all()
    stored = [json.loads(p.read_text())["row"] for p in (tmp_path / "cache" / "results").glob("*.json")]
    assert all(len(r["folds"]["scores"]) == 5 and r["emms_se"] is not None for r in stored)
    again = Ranking.from_json(ranking.to_json())
    assert again.warning == ranking.warning and again.df["tied_with_best"].tolist() == [True, True]
    out = subprocess.run([sys.executable, "-m", "hf_emms.cli", "rank", str(tmp_path / "templated.csv"), "--models",
                          str(tiny["small"]), str(tiny["wide"]), "--encoders", "none", "--max-samples", "0",
                          "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out"), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "warning: these candidates cannot be told apart" in out.stdout
    assert "(not a clear winner: see the warning above)" in out.stdout.split("best: ")[1] and "emms_se" in out.stdout
    alone = Ranking(ranking.rows[:1], ranking.meta)  # one candidate: "tied" with itself, but no warning for that
    assert alone.warning is None or "cannot be told apart" not in alone.warning
    assert "Add rows or richer labels" in ranking.warning  # every row was scored
    budget = rank(str(tmp_path / "templated.csv"), [str(tiny["small"]), str(tiny["wide"])], encoders=None,
                  max_samples=120, cache_dir=tmp_path / "cache", progress=False)
    # the budget left rows unread: the cheapest fix is to score them
    assert "Score more of its 200 rows (120 were: max_samples=, --max-samples N, 0 for all)" in budget.warning


def test_rank_with_recall_scores_only_the_short_list(tiny, tmp_path):
    folders = [str(tiny["small"]), str(tiny["wide"]), str(tiny["encoder"])]
    ranking = rank(_dataset(), folders, recall=1, encoders=None, max_samples=None, cache_dir=tmp_path / "cache",
                   progress=False)
    rows = {r.model: r for r in ranking.rows}
    scored = [r for r in rows.values() if r.ok]
    assert len(scored) == 1 and scored[0].emms is not None and scored[0].recall is not None
    left = [r for r in rows.values() if not r.ok]
    assert len(left) == 2 and all("not short-listed by recall" in r.reason and r.recall is not None for r in left)
    assert max(rows.values(), key=lambda r: r.recall).model == scored[0].model  # the best recall score was kept
    records = list((tmp_path / "cache" / "results").glob("*.json"))
    assert len(records) == 1  # only the short list was ever extracted


def test_recall_never_gives_a_place_on_the_short_list_to_a_hub_id_of_the_wrong_modality(hub_server, tiny, tmp_path):
    # Issue 20: explicit Hub ids used to be pinned only when their turn came, after recall had short-listed them,
    # so an image model could take one of the K places and leave K-1 candidates scored.
    hub_server.add_model("acme/recall-vision", _tiny_models.vit(tmp_path / "vision"))
    for name in ("small", "wide"):
        hub_server.add_model(f"acme/recall-{name}", tiny[name])
    ids = ["acme/recall-vision", "acme/recall-small", "acme/recall-wide"]
    ranking = rank(_dataset(), ids, recall=2, encoders=None, max_samples=None, cache_dir=tmp_path / "cache",
                   progress=False)
    rows = {r.model: r for r in ranking.rows}
    assert rows["acme/recall-vision"].status == "skipped" and rows["acme/recall-vision"].reason.startswith("modality")
    assert "short-listed" not in rows["acme/recall-vision"].reason
    assert all(rows[f"acme/recall-{name}"].ok and rows[f"acme/recall-{name}"].recall is not None
               for name in ("small", "wide"))
    # The image model's weights were never fetched: its config alone told its modality.
    assert not any("/acme/recall-vision/resolve/" in r.path and r.path.endswith(".safetensors")
                   for r in hub_server.requests)


@pytest.mark.parametrize("prefetch", [True, False])
def test_the_next_hub_candidates_download_while_the_current_one_is_scored(prefetch, hub_server, tiny, tmp_path):
    # Issue 19: the first candidate's weights take 3 s to arrive; with prefetch the next two candidates' are fetched
    # in that time (at most two ahead: the fourth waits for the second's turn), so they are on disk by the time the
    # first row comes out. Same rows either way. (The HF cache is the session's throw-away one, and the repo names
    # are new to it.)
    from hf_emms.options import RankSpec

    repos = [f"acme/prefetch-{i}-{prefetch}" for i in range(4)]
    folders = [tiny["small"], tiny["wide"], tiny["encoder"], _tiny_models.bert(tmp_path / "fourth", hidden=32, seed=4)]
    for repo, folder in zip(repos, folders):
        hub_server.add_model(repo, folder)
    hub_server.delay(f"/{repos[0]}/resolve/.*model.safetensors", 3.0, method="GET")
    spec = RankSpec.from_options(encoders=None, max_samples=None, cache_dir=tmp_path / "cache", progress=False,
                                 prefetch=prefetch)
    fetched = lambda repo: len([r for r in hub_server.requests  # noqa: E731
                                if r.method == "GET" and r.path.startswith(f"/{repo}/resolve/")
                                and r.path.endswith("model.safetensors")])
    run = iter(iter_rank(_dataset(), repos, spec=spec))
    row = next(run)
    assert row.model == repos[0] and row.ok
    assert [fetched(r) for r in repos[1:]] == ([1, 1, 0] if prefetch else [0, 0, 0])
    rest = list(run)
    assert [r.model for r in rest] == repos[1:] and all(r.ok for r in rest)
    assert [fetched(r) for r in repos[1:]] == [1, 1, 1]  # each fetched once in all: its turn found the files there
    # A ranking stopped early stops its prefetch thread too (it would otherwise wait for a turn that never comes).
    again = iter(iter_rank(_dataset(), repos, spec=spec))
    next(again)
    again.close()
    deadline = time.time() + 30
    while any(t.name == "hf-emms-prefetch" for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "hf-emms-prefetch" for t in threading.enumerate())
    with pytest.raises(InvalidInputError, match="prefetch must be True or False"):
        RankSpec.from_options(prefetch="yes")


def test_overlap_extracts_the_next_candidate_while_this_one_is_solved_and_changes_no_row(tiny, tmp_path):
    # Issue 19: with RunSpec.overlap (off by default) candidate i + 1's
    # statistics are extracted on a background thread while candidate i is solved and stored. The rows, their order,
    # a broken candidate's skipped row and the records are those of a run without it.
    from hf_emms.options import RankSpec
    from hf_emms.results import ResultsStore

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny["small"] / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    models = [str(tiny["small"]), str(broken), str(tiny["wide"]), str(tiny["encoder"])]
    cached = lambda root: len(list((root / "stats").rglob("*.json")))  # noqa: E731 - statistics extracted so far
    runs = {}
    for overlap in (False, True):
        root = tmp_path / f"cache-{overlap}"
        spec = RankSpec.from_options(encoders=None, max_samples=None, cache_dir=root, progress=False, overlap=overlap)
        run = iter(iter_rank(_dataset(), models, spec=spec))
        skipped, first = next(run), next(run)  # the broken checkpoint fails its check while the plan is made
        assert not skipped.ok and first.ok
        deadline = time.time() + (60 if overlap else 1)  # with overlap the next extraction is already under way
        while cached(root) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert cached(root) == (2 if overlap else 1)
        runs[overlap] = [skipped, first, *run]
        assert len(ResultsStore(root / "results").records()) == 3
    plain, overlapped = runs[False], runs[True]
    assert [r.model for r in overlapped] == [r.model for r in plain] and [r.ok for r in plain] == [False, True, True, True]
    assert overlapped[0].reason == plain[0].reason
    for a, b in zip(plain, overlapped):
        assert (a.emms, a.logme) == pytest.approx((b.emms, b.logme), rel=1e-9) if a.ok else b.emms is None
    # Stopped early: the extraction under way finishes, no other starts, and no record is written for it.
    root = tmp_path / "cache-stopped"
    spec = RankSpec.from_options(encoders=None, max_samples=None, cache_dir=root, progress=False, overlap=True)
    run = iter(iter_rank(_dataset(), [str(tiny["small"]), str(tiny["wide"]), str(tiny["encoder"])], spec=spec))
    next(run)
    run.close()
    deadline = time.time() + 60
    while any(t.name.startswith("hf-emms-extract") for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("hf-emms-extract") for t in threading.enumerate())
    assert cached(root) == 2 and len(ResultsStore(root / "results").records()) == 1
    for bad in ("yes", None):
        with pytest.raises(InvalidInputError, match="overlap must be True or False"):
            RankSpec.from_options(overlap=bad)
    # The default: off (measured not to pay, on a CPU or a GPU); as asked otherwise; never for a single candidate.
    from hf_emms.pipeline.score import overlaps

    two = [str(tiny["small"]), str(tiny["wide"])]
    for asked, models, expected in (({}, two, False), ({"overlap": True}, two, True), ({"overlap": True}, two[:1], False)):
        plan = iter_rank(_dataset(), models, encoders=None, cache_dir=tmp_path / "plans", progress=False, **asked).plan
        assert overlaps(plan) is expected


def test_a_profile_accounts_for_every_second_of_each_candidate(tiny, tmp_path):
    from hf_emms.profile import overhead_share, plot_profile, profile_table

    ranking = rank(_dataset(), [str(tiny["small"]), str(tiny["wide"])], encoders=None, max_samples=None,
                   cache_dir=tmp_path / "cache", progress=False, profile=True)
    profile = ranking.profile()
    assert set(profile["candidates"]) == {"small", "wide"}
    assert {"load_task", "scan", "label_embeddings"} <= set(profile["task"])
    for row in ranking.rows:
        phases = profile["candidates"][row.model]["phases"]
        assert {"load", "tokenizer", "preprocess", "forward", "pooling", "statistics", "solver:emms", "idle"} <= set(
            phases) and min(phases.values()) >= 0
        # idle is the remainder of the row's seconds; the record's write (results_io) comes after them
        before_write = sum(phases.values()) - phases["results_io"]
        assert row.seconds - 1e-6 <= sum(phases.values()) and before_write <= row.seconds + 1e-6
        assert 0 <= overhead_share(phases) <= 1
    assert Ranking.from_json(ranking.to_json()).profile() == profile
    assert "| small |" in profile_table(profile)
    assert plot_profile(profile, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert rank(_dataset(), [str(tiny["small"])], encoders=None, cache_dir=tmp_path / "c2", progress=False).profile() is None


def test_a_row_read_back_from_the_store_keeps_its_seconds(tiny, tmp_path):
    kwargs = dict(encoders=None, max_samples=None, cache_dir=tmp_path / "cache", progress=False)
    first = rank(_dataset(), [str(tiny["small"])], **kwargs).rows[0]
    again = rank(_dataset(), [str(tiny["small"])], **kwargs).rows[0]
    assert first.seconds is not None and again.seconds == first.seconds


@pytest.mark.parametrize(("folder", "warning"), [
    ("stats", "could not write the statistics cache entry"),
    # the record's write used to end the whole ranking with "unexpected FileExistsError"
    ("results", "could not store the record of small .* a re-run scores this candidate again"),
])
def test_a_cache_or_store_that_cannot_be_written_costs_a_warning_not_the_candidate(tiny, tmp_path, folder, warning):
    # Its folder is a file: every write fails. The candidates are scored all the same, as with a working cache.
    models = [str(tiny["small"]), str(tiny["wide"])]
    ranking = rank(_dataset(), models, encoders=None, max_samples=None, cache_dir=tmp_path / "ok", progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / folder).write_text("not a folder")
    with pytest.warns(UserWarning, match=warning):
        again = rank(_dataset(), models, encoders=None, max_samples=None, cache_dir=broken, progress=False)
    assert (again.df["status"] == "ok").all()
    scores = ranking.df.set_index("model")["emms"].to_dict()
    assert again.df.set_index("model")["emms"].to_dict() == pytest.approx(scores)


def test_a_score_that_rounds_to_zero_is_shown_as_zero_not_minus_zero():
    # The official EMMS of an exact fit is about -1e-17: the demo's table showed "-0" beside "0".
    table = Ranking([{"model": "a", "emms": -0.5, "emms_official": -1e-17, "status": "ok"},
                     {"model": "b", "emms": -0.6, "emms_official": 1e-17, "status": "ok"}], {}).to_markdown()
    assert "-0 " not in table and "-0.0000" not in table and "-0.5" in table


def test_the_cache_command_shows_the_parts_and_clears_old_entries_into_misses(tiny, tmp_path, capsys):
    import os
    import time

    from hf_emms.cli import main

    cache = tmp_path / "cache"
    first = rank(_dataset(), [str(tiny["small"])], encoders=None, max_samples=None, cache_dir=cache, progress=False)
    assert main(["cache", "--cache-dir", str(cache)]) == 0
    shown = capsys.readouterr().out
    assert "| stats | 1 |" in shown and "| results | 1 |" in shown and "forward passes again" in shown
    assert main(["cache", "--cache-dir", str(cache), "--clear", "stats", "results", "--older-than", "30"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out  # written today
    old = time.time() - 40 * 86400
    for path in (cache / "stats").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    assert main(["cache", "--cache-dir", str(cache), "--clear", "stats", "results", "--older-than", "30"]) == 0
    assert "removed 1 entries not written for 30 days" in capsys.readouterr().out
    assert not any(p.is_file() for p in (cache / "stats").rglob("*")) and any((cache / "results").iterdir())
    assert main(["cache", "--cache-dir", str(cache), "--clear", "all"]) == 0
    assert not any(p.is_file() for p in cache.rglob("*"))
    again = rank(_dataset(), [str(tiny["small"])], encoders=None, max_samples=None, cache_dir=cache, progress=False)
    assert again.rows[0].emms == first.rows[0].emms  # computed again, the same
    assert main(["cache", "--older-than", "3"]) == 2 and "applies to --clear" in capsys.readouterr().err
    # a folder holding more than the cache (a project with its own results/): --clear deleted its files
    project = tmp_path / "project"
    (project / "results").mkdir(parents=True)
    (project / "results" / "mine.json").write_text("{}")
    (project / "train.csv").write_text("text,label\n")
    assert main(["cache", "--cache-dir", str(project), "--clear", "all"]) == 2
    assert "holds more than an hf-emms cache (train.csv): nothing was deleted" in capsys.readouterr().err
    assert (project / "results" / "mine.json").read_text() == "{}"
    (tmp_path / "notes.txt").write_text("not a cache")  # was listed as an empty cache
    assert main(["cache", "--cache-dir", str(tmp_path / "notes.txt")]) == 2
    assert "is a file: give a folder path" in capsys.readouterr().err


def test_local_folders_with_the_same_name_are_told_apart_in_the_table(tiny, tmp_path):
    # run1/model and run2/model were two rows called "model", and "best: model" named neither
    import shutil

    from hf_emms.hub import Candidate, Source
    from hf_emms.pipeline.plan import distinct_names

    for run, name in (("run1", "small"), ("run2", "wide")):
        shutil.copytree(tiny[name], tmp_path / run / "model")
    folders = [str(tmp_path / "run1" / "model"), str(tmp_path / "run2" / "model"), str(tiny["encoder"])]
    ranking = rank(_dataset(), folders, encoders=None, max_samples=None, cache_dir=tmp_path / "c", progress=False)
    assert sorted(r.model for r in ranking.rows) == ["encoder", "run1/model", "run2/model"]
    again = rank(_dataset(), folders[:1], encoders=None, max_samples=None, cache_dir=tmp_path / "c", progress=False)
    assert [r.model for r in again.rows] == ["model"]  # alone, its own name (the stored row is named anew)

    def local(path):
        return Candidate(path, "sha256:" + "0" * 64, Source.LOCAL, path=Path(path))

    deep = [local("/x/exp/run/model"), local("/y/exp/run/model"), local("/z/other")]
    zeros = "sha256:" + "0" * 64
    assert distinct_names(deep) == {("/x/exp/run/model", zeros): "x/exp/run/model",
                                    ("/y/exp/run/model", zeros): "y/exp/run/model"}
    cached = [Candidate("org/m", sha * 40, Source.CACHE, path=Path(f"/hf/snapshots/{sha}")) for sha in "ab"]
    assert distinct_names(cached) == {("org/m", "a" * 40): "org/m@aaaaaaaaaaaa",
                                      ("org/m", "b" * 40): "org/m@bbbbbbbbbbbb"}  # two snapshots of one repo


def test_a_ranking_that_cannot_be_written_says_its_scores_are_kept(tiny, tmp_path):
    # a file in the way (here a folder where ranking.json goes; a full disk alike) was "unexpected error: OSError"
    from hf_emms.errors import HfEmmsError

    out = tmp_path / "out"
    (out / "ranking.json").mkdir(parents=True)
    with pytest.raises(HfEmmsError, match=r"could not be written to .*out .*kept in the results store"):
        rank(_dataset(), [str(tiny["small"])], encoders=None, max_samples=None, cache_dir=tmp_path / "c",
             output_dir=out, progress=False)
    (stored,) = [json.loads(p.read_text())["row"] for p in (tmp_path / "c" / "results").glob("*.json")]
    (out / "ranking.json").rmdir()
    again = rank(_dataset(), [str(tiny["small"])], encoders=None, max_samples=None, cache_dir=tmp_path / "c",
                 output_dir=out, progress=False)
    assert (out / "ranking.json").is_file()
    assert (again.rows[0].emms, again.rows[0].seconds) == (stored["emms"], stored["seconds"])  # reloaded, not re-run


def test_a_result_stored_under_older_scoring_rules_is_scored_again(tiny, tmp_path, monkeypatch):
    # a stored row keeps its emms_se: one made before the SE was corrected must not be shown beside new ones
    import hf_emms.pipeline.score as score_module

    kw = dict(encoders=None, max_samples=None, cache_dir=tmp_path / "c", progress=False)
    monkeypatch.setattr(score_module, "SCORES_FORMAT", score_module.SCORES_FORMAT - 1)
    old = rank(_dataset(), [str(tiny["small"])], **kw)
    monkeypatch.undo()
    new = rank(_dataset(), [str(tiny["small"])], **kw)
    assert len(list((tmp_path / "c" / "results").glob("*.json"))) == 2  # a second record: not the old one reused
    assert new.rows[0].emms == old.rows[0].emms  # the same statistics and score, computed again
    again = rank(_dataset(), [str(tiny["small"])], **kw)
    assert len(list((tmp_path / "c" / "results").glob("*.json"))) == 2 and again.rows[0].seconds == new.rows[0].seconds


def test_one_hub_repo_at_two_revisions_is_named_by_its_commit(hub_server, tiny, tmp_path):
    # org/m@<a> and org/m@<b> were two rows called "org/m"
    first = hub_server.add_model("acme/m", tiny["small"])
    second = hub_server.add_model("acme/m", tiny["wide"])  # a new commit on main; the first stays downloadable
    ranking = rank(_dataset(), [f"acme/m@{first}", f"acme/m@{second}"], encoders=None, max_samples=None,
                   cache_dir=tmp_path / "c", progress=False)
    assert sorted(r.model for r in ranking.rows) == sorted([f"acme/m@{first[:12]}", f"acme/m@{second[:12]}"])
    alone = rank(_dataset(), [f"acme/m@{first}"], encoders=None, max_samples=None, cache_dir=tmp_path / "c",
                 progress=False)
    assert [r.model for r in alone.rows] == ["acme/m"]  # no other revision beside it: its id
