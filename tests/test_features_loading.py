"""Loading candidates: Hub ids through the local Hub server (pinned revisions, gated and missing repos, no pickles,
no remote code) and local folders; every failure is a CandidateLoadError with its reason, and a ranking goes on."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

import _tiny_models as tiny
from _features_data import assert_same_stats, text_dataset
from hf_emms.features import CandidateLoadError, extract_many, extract_stats

OPTIONS = dict(text_column="text", label_column="label", progress=False)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny.bert(tmp_path_factory.mktemp("loading-models") / "bert")


def test_a_hub_id_is_pinned_to_its_commit_and_matches_the_folder(hub_server, bert, tmp_path):
    sha = hub_server.add_model("org/tiny-bert", bert)
    ds = text_dataset()
    from_hub = extract_stats("org/tiny-bert", ds, **OPTIONS)
    assert from_hub.record.candidate == "org/tiny-bert" and from_hub.record.revision == sha
    assert_same_stats(from_hub.stats, extract_stats(bert, ds, **OPTIONS).stats, rtol=1e-12)
    pinned = extract_stats("org/tiny-bert", ds, revision=sha, cache_dir=tmp_path, **OPTIONS)
    assert pinned.record.revision == sha
    # A new commit on main is a new revision: the cached statistics of the old one are not reused for it.
    new_sha = hub_server.add_model("org/tiny-bert", tiny.bert(tmp_path / "retrained", seed=3))
    latest = extract_stats("org/tiny-bert", ds, cache_dir=tmp_path, **OPTIONS)
    assert latest.record.revision == new_sha != sha and not latest.record.cache_hit
    again = extract_stats("org/tiny-bert", ds, revision=sha, cache_dir=tmp_path, **OPTIONS)
    assert again.record.cache_hit


def test_pickled_weights_and_remote_code_are_never_fetched_without_opt_in(hub_server, bert, tmp_path):
    from transformers import BertModel

    pickled = tmp_path / "pickled"
    shutil.copytree(bert, pickled)
    model = BertModel.from_pretrained(bert)
    (pickled / "model.safetensors").unlink()
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    hub_server.add_model("org/pickled", pickled)
    with pytest.raises(CandidateLoadError, match="no safetensors weights") as err:
        extract_stats("org/pickled", text_dataset(), **OPTIONS)
    assert err.value.candidate == "org/pickled"
    assert not [r for r in hub_server.requests if r.path.endswith(".bin")]
    opted_in = extract_stats("org/pickled", text_dataset(), allow_pickle=True, **OPTIONS)
    assert opted_in.stats.n == len(text_dataset())

    hub_server.add_model("org/custom-code", bert, auto_map={"AutoModel": "modeling_custom.CustomModel"},
                         files={"modeling_custom.py": "raise SystemExit('remote code ran')\n"})
    result = extract_many(["org/custom-code"], text_dataset(), **OPTIONS)["org/custom-code"]
    assert not [r for r in hub_server.requests if r.path.endswith(".py")]  # the code file was never downloaded
    assert result.record.model_class == "BertModel"  # its model_type is one transformers implements: that class runs


def test_unreachable_repos_are_reported_with_their_reason(hub_server, bert):
    hub_server.add_model("org/gated", bert, gated=True)
    hub_server.add_model("org/ok", bert)
    results = extract_many(["org/missing", "org/gated", "org/ok"], text_dataset(), **OPTIONS)
    assert isinstance(results["org/missing"], CandidateLoadError)
    assert "RepositoryNotFound" in results["org/missing"].reason
    assert isinstance(results["org/gated"], CandidateLoadError) and "Gated" in results["org/gated"].reason
    assert results["org/ok"].stats.n == len(text_dataset())  # the ranking goes on past the failures
    bad_revision = extract_many(["org/ok"], text_dataset(), revisions=["no-such-branch"], **OPTIONS)["org/ok"]
    assert isinstance(bad_revision, CandidateLoadError) and "no-such-branch" in bad_revision.reason


def test_local_folders_that_cannot_serve_are_reported_with_their_reason(bert, tmp_path):
    no_weights = tmp_path / "no-weights"
    shutil.copytree(bert, no_weights)
    (no_weights / "model.safetensors").unlink()
    broken = tmp_path / "broken-config"
    shutil.copytree(bert, broken)
    (broken / "config.json").write_text("{not json")
    unknown = tmp_path / "unknown-architecture"
    shutil.copytree(bert, unknown)
    config = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(json.dumps({**config, "model_type": "no-such-model"}))
    vit = tiny.vit(tmp_path / "vit")
    candidates = [tmp_path / "absent", no_weights, broken, unknown, vit, bert]
    results = extract_many(candidates, text_dataset(), **OPTIONS)
    reasons = {name.rsplit("/", 1)[-1]: getattr(r, "reason", None) for name, r in results.items()}
    assert "no such checkpoint folder" in reasons["absent"]
    assert "no safetensors weights" in reasons["no-weights"]
    assert "unreadable config" in reasons["broken-config"]
    assert "no-such-model" in reasons["unknown-architecture"]
    assert "ViTModel reads image inputs, but the dataset column holds text" in reasons["vit"]
    assert reasons["bert"] is None and results[str(bert)].stats.n == len(text_dataset())
    with pytest.raises(CandidateLoadError, match="revisions pin Hub ids only"):
        extract_stats(bert, text_dataset(), revision="main", **OPTIONS)


def test_a_checkpoint_s_task_head_is_not_reported_as_a_fault_and_logging_is_restored(tmp_path, capfd):
    """Loaded with AutoModel, a masked-LM checkpoint's ``cls.*`` head is "UNEXPECTED" to transformers, which prints a
    load report per candidate; hf-emms loads without heads on purpose, so the report is noise there. Afterwards
    transformers' own settings are as the user left them."""
    import transformers
    import transformers.utils.logging as tf_logging
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = tiny._wordpiece_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    folder = tiny._save(BertForMaskedLM(config), tokenizer, tmp_path / "mlm")
    outside = tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled()  # other tests may have changed them
    tf_logging.set_verbosity_warning()  # transformers' default
    tf_logging.enable_progress_bar()
    reports: list[str] = []  # transformers' handler keeps the stream it was made with: listen to the logger itself
    listener = logging.Handler()
    listener.emit = lambda record: reports.append(record.getMessage())
    logging.getLogger("transformers").addHandler(listener)
    try:
        transformers.AutoModel.from_pretrained(folder)  # the report hf-emms keeps quiet, as transformers logs it
        assert any("cls.predictions" in r for r in reports)
        reports.clear()
        capfd.readouterr()

        extraction = extract_stats(folder, text_dataset(), **OPTIONS)
        assert extraction.stats.n == len(text_dataset())
        assert not any("UNEXPECTED" in r or "cls.predictions" in r for r in reports)
        assert "Loading weights" not in capfd.readouterr().err
        assert (tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled()) == (tf_logging.WARNING, True)
    finally:
        logging.getLogger("transformers").removeHandler(listener)
        tf_logging.set_verbosity(outside[0])
        (tf_logging.enable_progress_bar if outside[1] else tf_logging.disable_progress_bar)()
