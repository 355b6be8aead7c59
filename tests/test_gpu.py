"""Checks that need a CUDA device: extraction on the GPU agrees with the CPU, bfloat16 keeps the ranking, a real
out-of-memory from PyTorch's allocator halves the batch. They skip on machines without one (CI has none); the
README's "GPU checks" section says where and when they last ran."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import _tiny_models as tiny
from _features_data import assert_same_stats, text_dataset, texts
from hf_emms.features import HalvingBatches, extract_stats

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device on this machine (see README: GPU checks)")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny.bert(tmp_path_factory.mktemp("gpu") / "bert")


def test_float32_extraction_on_the_gpu_matches_the_cpu(bert):
    ds = text_dataset()
    options = dict(text_column="text", label_column="label", dtype="float32", batch_size=8, progress=False)
    cpu = extract_stats(bert, ds, device="cpu", **options)
    gpu = extract_stats(bert, ds, **options)  # default device: the one accelerate assigns, i.e. cuda:0 here
    assert gpu.record.device.startswith("cuda") and gpu.record.dtype == "float32"
    assert_same_stats(gpu.stats, cpu.stats, rtol=1e-4)


def test_auto_dtype_is_bfloat16_on_the_gpu_and_keeps_the_ranking(tmp_path):
    """bfloat16 features carry ~3 significant digits; float64 statistics of them must still rank as float32 does."""
    from hf_emms import rank
    from hf_emms.demo_data import topics_dataset
    from hf_emms.results import ResultsStore
    from hf_emms.zoo import build_zoo, source_folder

    zoo = build_zoo(tmp_path / "zoo", ["minilm-1", "minilm-random"], progress=False)
    candidates = [str(source_folder("minilm")), str(zoo["minilm-1"]), str(zoo["minilm-random"])]
    ds = topics_dataset(240)
    common = dict(encoders=None, max_samples=None, progress=False)
    cpu = rank(ds, candidates, device="cpu", cache_dir=tmp_path / "cpu", **common)
    gpu = rank(ds, candidates, device="cuda", cache_dir=tmp_path / "gpu", **common)
    assert (gpu.df["status"] == "ok").all()
    assert gpu.df["model"].tolist() == cpu.df["model"].tolist()
    by_model = cpu.df.set_index("model")["emms"]
    for model, score in gpu.df.set_index("model")["emms"].items():
        assert score == pytest.approx(by_model[model], rel=0.02), model
    records = ResultsStore(tmp_path / "gpu" / "results").records()
    assert len(records) == 3
    assert {(r["extraction"]["device"][:4], r["extraction"]["dtype"]) for r in records} == {("cuda", "bfloat16")}


def test_a_real_out_of_memory_halves_the_batch_and_changes_no_output(bert):
    """The allocator is capped between what one sample and what the whole batch need, so PyTorch itself raises."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny.bert(bert.parent / "wide", hidden=512, layers=2)).cuda().eval()
    long_texts = [" ".join([t] * 12) for t in texts(64)]
    inputs = {k: v.cuda() for k, v in AutoTokenizer.from_pretrained(bert)(
        long_texts, padding="max_length", truncation=True, max_length=64, return_tensors="pt").items()}

    def forward(part):
        with torch.inference_mode():
            return model(**part).last_hidden_state.sum(1)

    def peak(part) -> int:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        forward(part)
        return torch.cuda.max_memory_allocated() - start

    want = torch.cat([forward({k: v[i:i + 1] for k, v in inputs.items()}) for i in range(64)])
    one, full = peak({k: v[:1] for k, v in inputs.items()}), peak(inputs)
    assert full > 8 * one, (one, full)
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    cap = torch.cuda.memory_reserved() + int(np.sqrt(one * full))  # geometric middle: 1 sample fits, 64 do not
    torch.cuda.set_per_process_memory_fraction(cap / total)
    try:
        batches = HalvingBatches(64)
        got = torch.cat(batches(forward, inputs))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert 1 <= batches.size < 64
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_ranking_on_the_gpu_overlaps_solves_on_the_device_and_agrees_with_the_cpu(tmp_path):
    """Issue 19 end to end on CUDA: every layer's statistics accumulated on the GPU (index bookkeeping on the host),
    the cross-validated solve on the device, the next candidate extracted on a background thread (overlap=True).
    float32 features: the scores are the CPU's to float32 rounding, the order the same."""
    from hf_emms import rank
    from hf_emms.demo_data import topics_dataset
    from hf_emms.options import RankSpec
    from hf_emms.pipeline import iter_rank, rank_spec
    from hf_emms.pipeline.score import overlaps

    models = [str(tiny.bert(tmp_path / f"m{i}", hidden=hidden, layers=3, seed=i)) for i, hidden in enumerate((32, 48, 64))]
    encoder = str(tiny.bert(tmp_path / "encoder", hidden=32, seed=9))
    ds = topics_dataset(240)
    common = dict(encoders=[encoder], max_samples=None, progress=False, layers="auto", overlap=True)
    assert overlaps(iter_rank(ds, models, device="cuda", cache_dir=tmp_path / "plan", **common).plan) is True
    cpu = rank(ds, models, device="cpu", cache_dir=tmp_path / "cpu", **common)
    gpu = rank_spec(ds, models, RankSpec.from_options(device="cuda", dtype="float32", cache_dir=tmp_path / "gpu", **common))
    assert (gpu.df["status"] == "ok").all() and gpu.df["model"].tolist() == cpu.df["model"].tolist()
    want = cpu.df.set_index("model")
    for column in ("emms", "emms_last", "logme"):
        for model, score in gpu.df.set_index("model")[column].items():
            assert score == pytest.approx(want.loc[model, column], rel=1e-3, abs=1e-6), (column, model)
