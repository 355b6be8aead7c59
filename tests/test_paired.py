"""Paired inputs end to end: text pairs (SICK sentence pairs, entailment and relatedness) and image + text (a tiny
visual-question set), from the dataset's columns (given or detected) through feature extraction to ``rank()``.

Real components: tiny random ViLT-like (joint) and CLIP-like (dual) vision-language checkpoints and tiny BERTs built
here, the real all-MiniLM-L6-v2 (installed offline), SICK rows from ../shared/data/text/sick. Features are checked
against references written out with transformers directly, one unpadded sample at a time."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import _tiny_models as tiny
import numpy as np
import pytest
import torch
from _features_data import assert_same_stats

from hf_emms import FeatureStats, InvalidInputError
from hf_emms.features import CandidateLoadError, extract_stats
from hf_emms.features.inputs import Preprocess, input_spec
from hf_emms.features.pooling import fuse
from hf_emms.hub import Criteria, candidate_from_folder
from hf_emms.hub.architectures import input_kinds_of, pipeline_tags_for
from hf_emms.labels import embed_labels, minilm_path
from hf_emms.pipeline import rank
from hf_emms.tasks import check_distinct, load_task

# ../shared beside the checkout (CI lays a copy of shared/ beside its clone): never an absolute path.
SICK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "text" / "sick" / "SICK.txt"
MINILM = minilm_path()
N_IMAGES, QUESTIONS = 8, ("what is in the picture", "how many people live in paris", "is this a dog",
                          "what color is the car", "a photo of a cat")


def sick(n: int = 300):
    """The first ``n`` SICK training pairs: entailment (3 classes) and relatedness (1-5)."""
    import datasets

    with SICK.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["SemEval_set"] == "TRAIN"][:n]
    return datasets.Dataset.from_dict({
        "sentence_A": [r["sentence_A"] for r in rows], "sentence_B": [r["sentence_B"] for r in rows],
        "entailment_label": [r["entailment_label"] for r in rows],
        "relatedness_score": [float(r["relatedness_score"]) for r in rows],
    })


def vqa(n_images: int = N_IMAGES, size: int = 32):
    """Each image asked every question (images repeat, image + question pairs do not); short answers repeat."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(3)
    images = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n_images)]
    rows = [(im, q) for im in images for q in QUESTIONS]
    answers = ["yes", "no", "two", "a dog", "red"]
    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string")})
    return datasets.Dataset.from_dict({"image": [r[0] for r in rows], "question": [r[1] for r in rows],
                                       "answer": [answers[(i * 7) % 5] for i in range(len(rows))]}, features=features)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("paired")
    return {
        "bert": tiny.bert(root / "bert", seed=1), "bert_wide": tiny.bert(root / "bert_wide", hidden=64, seed=2),
        "vilt": tiny.vilt(root / "vilt"), "clip": tiny.clip(root / "clip"), "vit": tiny.vit(root / "vit"),
    }


# ---- columns: given or detected, and why ---------------------------------------------------------------------
@pytest.mark.parametrize(("columns", "pair"), [
    (("premise", "hypothesis", "label"), ("premise", "hypothesis")),
    (("sentence1", "sentence2", "label"), ("sentence1", "sentence2")),
    (("sentence_A", "sentence_B", "label"), ("sentence_A", "sentence_B")),
    (("idx", "context", "question", "label"), ("question", "context")),  # the pair's order, not the columns'
])
def test_common_text_pairs_are_detected_and_the_summary_says_why(columns, pair):
    import datasets

    data = {c: [f"{c} {i}" for i in range(12)] for c in columns if c != "label"}
    t = load_task(datasets.Dataset.from_dict({**data, "label": [i % 2 for i in range(12)]}))
    assert (t.input_columns, t.input_kind, t.modality, t.input_column) == (pair, "text-pair", "text", pair[0])
    assert f"{pair[0]!r}/{pair[1]!r} is a known pair of column names" in t.describe()
    assert "text-pair input" in t.describe()


def test_image_with_a_question_or_prompt_is_image_text_and_a_lone_image_stays_image():
    ds = vqa()
    t = load_task(ds, label_column="answer", task="text")
    assert (t.input_columns, t.input_kind, t.modality) == (("image", "question"), "image-text", "image-text")
    assert "named 'question'" in t.describe()
    prompt = ds.rename_column("question", "prompt")
    assert load_task(prompt, label_column="answer", task="text").input_columns == ("image", "prompt")
    alone = ds.rename_column("question", "note")  # not named like a question or prompt: the image alone
    t = load_task(alone, label_column="answer", task="text")
    assert (t.input_columns, t.input_kind, t.modality) == (("image",), "image", "image")
    # ...and the text it leaves out is named, with how to read both (a meme's caption would be silently dropped)
    assert "text column 'note' not read: for an image + text task pass input_column=['image', 'note']" in t.describe()


def test_given_columns_keep_their_order_and_old_single_columns_still_work():
    ds = sick(40)
    t = load_task(ds, label_column="relatedness_score", input_column=["sentence_B", "sentence_A"])
    assert (t.input_columns, t.input_kind, t.kind) == (("sentence_B", "sentence_A"), "text-pair", "regression")
    assert "given: a text pair, encoded jointly in this order" in t.describe()
    one = load_task(ds, label_column="entailment_label", input_column="sentence_A")
    assert (one.input_columns, one.input_kind, one.modality, one.input_column) == (
        ("sentence_A",), "text", "text", "sentence_A")
    assert load_task(ds, label_column="entailment_label", input_column=["sentence_A"]).input_kind == "text"
    swapped = load_task(vqa(), label_column="answer", task="text", input_column=["question", "image"])
    assert swapped.input_columns == ("image", "question") and swapped.input_kind == "image-text"


@pytest.mark.parametrize(("data", "input_column", "match"), [
    ({"premise": 1, "hypothesis": 1, "sentence1": 1, "sentence2": 1}, None, "ambiguous input: the column pairs"),
    ({"a": 1, "b": 1, "c": 1}, ["a", "b", "c"], "takes one column or two"),
    ({"a": 1, "b": 1}, ["a", "a"], "names 'a' twice"),
    ({"a": 1, "n": 2}, ["a", "n"], "is not in the dataset|not text, images or audio"),
    ({"a": 1, "b": 1}, ["a", "label"], "both 'label'"),
    ({"a": 1}, ["a", "missing"], "'missing' is not in the dataset"),
])
def test_bad_or_ambiguous_inputs_are_clear_errors(data, input_column, match):
    import datasets

    cols = {c: ([f"{c} {i}" for i in range(12)] if v == 1 else list(range(12))) for c, v in data.items()}
    ds = datasets.Dataset.from_dict({**cols, "label": [i % 2 for i in range(12)]})
    with pytest.raises(InvalidInputError, match=match):
        load_task(ds, input_column=input_column)


def test_an_image_with_two_prompt_columns_is_ambiguous():
    ds = vqa().add_column("prompt", ["describe it"] * len(vqa()))
    with pytest.raises(InvalidInputError, match=r"ambiguous input.*input_column=\['image', 'question'\]"):
        load_task(ds, label_column="answer", task="text")


def test_repeated_images_count_as_distinct_inputs_with_their_questions():
    ds = vqa()
    assert check_distinct(ds, ("image", "question")) == len(ds)
    with pytest.raises(InvalidInputError, match="input column 'image' holds 8 distinct values"):
        check_distinct(ds, "image")


# ---- text pairs: the tokenizer's own pair encoding -------------------------------------------------------------
def _hand_pair_features(folder, pairs, pooling, max_length):
    """One unpadded pair at a time: tokenizer(a, b) (at the checkpoint's limit) -> model -> the rules' pooling."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    feats = []
    for a, b in pairs:
        inputs = tokenizer(a, b, truncation="longest_first", max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs)
        if pooling == "pooler":
            feats.append(out.pooler_output[0])
        else:  # all-MiniLM: declared mean pooling, then L2 normalisation
            feats.append(torch.nn.functional.normalize(out.last_hidden_state[0].mean(0), dim=-1))
    return torch.stack(feats)


@pytest.mark.parametrize("name", ["bert", "minilm"])
def test_pair_features_equal_the_tokenizers_own_pair_encoding(models, name):
    import transformers

    folder = MINILM if name == "minilm" else models["bert"]
    ds = sick(24).class_encode_column("entailment_label")
    got = extract_stats(folder, ds, input_columns=["sentence_A", "sentence_B"], label_column="entailment_label",
                        batch_size=5, progress=False)
    pairs = list(zip(ds["sentence_A"], ds["sentence_B"]))
    want = _hand_pair_features(folder, pairs, "pooler" if name == "bert" else "mean-normalized", got.record.max_length)
    assert_same_stats(got.stats, FeatureStats().update(want, labels=ds["entailment_label"]), rtol=1e-5)
    assert got.record.input_kind == "text-pair" and got.record.input_columns == ["sentence_A", "sentence_B"]
    assert "encoded jointly" in got.record.input_encoding and "tokenizer(a, b" in got.record.input_encoding
    # The reference sample: the batch encoding of row 0 is the tokenizer's pair encoding of (A, B), padding aside.
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    spec = input_spec(ds, input_columns=("sentence_A", "sentence_B"))
    batch = Preprocess(ds, spec, tokenizer, max_length=got.record.max_length)(np.array([0, 1]))["inputs"]
    own = tokenizer(*pairs[0], truncation="longest_first", max_length=got.record.max_length, return_tensors="pt")
    length = int(own["attention_mask"].sum())
    assert torch.equal(batch["input_ids"][0, :length], own["input_ids"][0])
    assert int(batch["attention_mask"][0].sum()) == length
    assert tokenizer.decode(own["input_ids"][0]).count(tokenizer.sep_token) == 2  # [CLS] a [SEP] b [SEP]
    # Both sentences count: the first alone gives other features.
    alone = extract_stats(folder, ds, text_column="sentence_A", label_column="entailment_label", progress=False)
    assert not np.allclose(alone.stats.centered().scatter_x, got.stats.centered().scatter_x)


def test_a_pair_longer_than_the_limit_is_truncated_longest_first(models):
    import transformers

    ds = sick(12)
    tokenizer = transformers.AutoTokenizer.from_pretrained(models["bert"])
    spec = input_spec(ds, text_column=("sentence_A", "sentence_B"))
    assert spec.kind == "text-pair"
    batch = Preprocess(ds, spec, tokenizer, max_length=10)(np.arange(4))["inputs"]
    for i in range(4):
        own = tokenizer(ds[i]["sentence_A"], ds[i]["sentence_B"], truncation="longest_first", max_length=10)
        assert batch["input_ids"][i, : len(own["input_ids"])].tolist() == own["input_ids"]


# ---- image + text: joint (ViLT) and dual (CLIP) encoders ---------------------------------------------------------
def _hand_vl_features(folder, ds):
    import transformers

    processor = transformers.AutoProcessor.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    feats = []
    for row in ds:
        inputs = processor(images=[row["image"].convert("RGB")], text=[row["question"]], return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs)
        if hasattr(out, "image_embeds"):  # dual: [i, t, i * t] of the normalised embeddings, written out
            i = out.image_embeds[0] / out.image_embeds[0].norm()
            t = out.text_embeds[0] / out.text_embeds[0].norm()
            feats.append(torch.cat([i, t, i * t]))
        else:
            feats.append(out.pooler_output[0])
    return torch.stack(feats)


@pytest.mark.parametrize(("name", "pooling", "width"), [("vilt", "pooler_output", 32), ("clip", "fused", 48)])
def test_vision_language_features_match_their_references(models, name, pooling, width):
    ds = vqa(4)
    y = np.random.default_rng(0).standard_normal((len(ds), 6))
    got = extract_stats(models[name], ds, input_columns=["image", "question"], label_embeddings=y, batch_size=3,
                        progress=False)
    want = _hand_vl_features(models[name], ds)
    assert want.shape[1] == width and got.record.pooling == pooling and got.stats.dim == width
    assert_same_stats(got.stats, FeatureStats().update(want, label_embeddings=y), rtol=1e-5)
    assert got.record.input_kind == "image-text" and got.record.input_columns == ["image", "question"]
    assert ("fused" in got.record.input_encoding) == (name == "clip")
    # The per-modality names say the same: image_column with text_column is image + text.
    again = extract_stats(models[name], ds, image_column="image", text_column="question", label_embeddings=y,
                          batch_size=3, progress=False)
    assert_same_stats(again.stats, got.stats, rtol=1e-6)


def test_the_fused_dual_encoder_feature_is_image_text_and_their_product():
    rng = torch.Generator().manual_seed(0)
    image, text = torch.randn(5, 16, generator=rng) * 3, torch.randn(5, 16, generator=rng)
    fused = fuse(image, text)
    i, t = image / image.norm(dim=1, keepdim=True), text / text.norm(dim=1, keepdim=True)
    assert fused.shape == (5, 48)
    assert torch.allclose(fused[:, :16], i) and torch.allclose(fused[:, 16:32], t)
    assert torch.allclose(fused[:, 32:], i * t)
    assert torch.allclose(fused[:, 32:].sum(1), torch.nn.functional.cosine_similarity(image, text))
    with pytest.raises(InvalidInputError, match="differ in shape"):
        fuse(image, text[:, :8])


def test_single_modality_candidates_are_refused_with_the_reason_never_fed_half_the_input(models):
    ds = vqa(4)
    y = np.zeros((len(ds), 4))
    for name, reason in (("vit", "image-only model (ViTModel); this task needs image + text"),
                         ("bert", "text-only model (BertModel); this task needs image + text")):
        with pytest.raises(CandidateLoadError, match=re.escape(reason)):
            extract_stats(models[name], ds, input_columns=["image", "question"], label_embeddings=y, progress=False)
    with pytest.raises(CandidateLoadError, match="ViltModel reads image \\+ text together; this task's input is text"):
        extract_stats(models["vilt"], ds, text_column="question", label_embeddings=y, progress=False)
    # The scanner's filter says it before anything loads.
    def check(name, modality="image-text"):
        rejected = Criteria(modality=modality).check(candidate_from_folder(models[name]))
        return rejected and rejected.detail

    assert check("vit") == "image-only model; this task needs image + text"
    assert check("bert") == "text-only model; this task needs image + text"
    assert check("vilt") is None and check("clip") is None and check("bert", "text-pair") is None
    assert "image + text" in check("vilt", "text")


def test_pipeline_tags_and_model_types_map_to_input_kinds():
    assert input_kinds_of("vilt") == ("image-text",)
    assert input_kinds_of("clip") == ("text", "text-pair", "image", "image-text")
    assert input_kinds_of("bert") == ("text", "text-pair") and input_kinds_of("vit") == ("image",)
    assert input_kinds_of(None, "visual-question-answering") == ("image-text",)
    assert input_kinds_of(None, "image-text-to-text") == ("image-text",)
    assert "image-text" in input_kinds_of(None, "zero-shot-image-classification")
    assert input_kinds_of(None, "sentence-similarity") == ("text", "text-pair")
    assert input_kinds_of(None, "text-classification") == ("text", "text-pair")
    assert {"visual-question-answering", "image-text-to-text"} <= set(pipeline_tags_for("image-text"))
    assert "sentence-similarity" in pipeline_tags_for("text-pair")


def test_repeated_short_answers_are_embedded_once_each():
    answers = vqa()["answer"]
    flabels = embed_labels(answers, kind="text", encoders=[str(MINILM)], cache_dir=False, progress=False)
    assert flabels.n_samples == len(answers) == 40 and flabels.n_encoded == len(set(answers)) == 5


# ---- rank(): every entry point's core ----------------------------------------------------------------------------
@pytest.mark.parametrize("input_column", [["image", "question"], None])
def test_rank_an_image_question_task_with_vision_language_candidates(models, tmp_path, input_column):
    ranking = rank(vqa(), [str(models[n]) for n in ("vilt", "clip", "vit", "bert")], label_column="answer",
                   task="text", input_column=input_column, encoders=[str(MINILM)], max_samples=None,
                   cache_dir=tmp_path / "cache", progress=False)
    df = ranking.df.set_index("model")
    for name in ("vilt", "clip"):
        assert df.loc[name, "status"] == "ok" and df.loc[name, "n_samples"] == 40 and np.isfinite(df.loc[name, "emms"])
    for name, only in (("vit", "image"), ("bert", "text")):
        assert df.loc[name, "status"] == "skipped"
        assert f"{only}-only model; this task needs image + text" in df.loc[name, "reason"]
    assert ranking.meta["task"]["modality"] == "image-text"


@pytest.mark.parametrize(("label", "kind"), [("entailment_label", "classification"),
                                             ("relatedness_score", "regression")])
def test_rank_sick_sentence_pairs_with_tiny_berts_and_minilm(models, tmp_path, label, kind):
    ds = sick(300)
    candidates = [str(models["bert"]), str(models["bert_wide"]), str(MINILM)]
    ranking = rank(ds, candidates, label_column=label, encoders=[str(MINILM)], max_samples=None,
                   cache_dir=tmp_path / "cache", progress=False)
    df = ranking.df.set_index("model")
    assert (df["status"] == "ok").all() and (df["n_samples"] == 300).all() and np.isfinite(df["emms"]).all()
    assert ranking.meta["task"]["kind"] == kind and ranking.meta["task"]["modality"] == "text"
    # A pretrained sentence encoder reads sentence pairs better than random-init tiny BERTs.
    assert ranking.best == "model"


def test_the_cli_ranks_a_sentence_pair_task_detected_or_named_in_order(models, tmp_path):
    import json
    import subprocess
    import sys

    sick(60).to_csv(str(tmp_path / "pairs.csv"))
    base = [sys.executable, "-m", "hf_emms.cli", "rank", str(tmp_path / "pairs.csv"), "--models", str(models["bert"]),
            str(models["bert_wide"]), "--label-column", "entailment_label", "--encoders", "none", "--quiet",
            "--cache-dir", str(tmp_path / "cache")]
    for extra in ([], ["--input-column", "sentence_B", "--input-column", "sentence_A"]):
        out = subprocess.run([*base, *extra, "--output-dir", str(tmp_path / f"out{len(extra)}")], capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        task = json.loads((tmp_path / f"out{len(extra)}" / "ranking.json").read_text())["meta"]["task"]
        assert task["input_kind"] == "text-pair"
        assert task["input_columns"] == (["sentence_B", "sentence_A"] if extra else ["sentence_A", "sentence_B"])


def test_the_cli_ranks_an_image_question_folder_with_vision_language_candidates(models, tmp_path):
    """An imagefolder whose metadata.csv holds a question and an answer per image: image + text, from the CLI."""
    import json
    import subprocess
    import sys

    folder = tmp_path / "vqa"
    folder.mkdir()
    lines = ["file_name,question,answer"]
    for i, row in enumerate(vqa()):
        row["image"].save(folder / f"{i}.png")
        lines.append(f"{i}.png,{row['question']},{row['answer']}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "hf_emms.cli", "rank", str(folder), "--models", str(models["vilt"]), str(models["clip"]),
         str(models["bert"]), "--label-column", "answer", "--task", "text", "--encoders", str(MINILM),
         "--max-samples", "0", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out"),
         "--quiet"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    saved = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert (saved["meta"]["task"]["input_kind"], saved["meta"]["task"]["input_columns"]) == (
        "image-text", ["image", "question"])
    status = {r["model"]: r["status"] for r in saved["rows"]}
    assert status == {"vilt": "ok", "clip": "ok", "bert": "skipped"}
