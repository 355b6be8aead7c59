"""The run specs and the shared checks: every entry point validates options the same way, once."""

from __future__ import annotations

import pytest

from hf_emms.errors import InvalidInputError
from hf_emms.options import (
    DEFAULT_METRICS, METRICS, CandidateQuery, DataSpec, ExtractSpec, RankSpec, RunSpec, ScoreSpec, check_choice,
    check_choices, check_positive_int,
)


@pytest.mark.parametrize(("build", "match"), [
    (lambda: ExtractSpec(batch_size=0), "batch_size must be a positive integer"),
    (lambda: ExtractSpec(batch_size=True), "batch_size must be a positive integer"),
    (lambda: ExtractSpec(dtype="float8"), "dtype must be one of"),
    (lambda: ExtractSpec(pooling="median"), "pooling='median' is not one of"),
    (lambda: ExtractSpec(num_workers=-1), "num_workers"),
    (lambda: DataSpec(task="segmentation"), "unknown task"),
    (lambda: DataSpec(max_samples=1), "max_samples must be an integer >= 2"),
    (lambda: DataSpec(seed="0"), "seed must be a non-negative integer"),
    (lambda: DataSpec(seed=-1), "seed must be a non-negative integer"),  # numpy's "expected non-negative integer"
    (lambda: CandidateQuery(sort="newest"), "sort must be one of"),
    (lambda: CandidateQuery(limit=0), "limit must be a positive integer"),
    (lambda: CandidateQuery(tags=["ok", ""]), "tags must be non-empty strings"),
    (lambda: ScoreSpec(metrics=["emms", "accuracy"]), r"unknown metrics \['accuracy'\]"),
    (lambda: ScoreSpec(prompt="a photo"), "prompt must be a template"),
    (lambda: RankSpec.from_options(batchsize=4), r"unknown option\(s\) \['batchsize'\]"),
    (lambda: ExtractSpec(device="gpu"), "device 'gpu' is not a torch device: use 'cpu', 'cuda'"),
])
def test_bad_options_are_named_once_whatever_the_entry_point(build, match):
    with pytest.raises(InvalidInputError, match=match):
        build()


def test_flat_options_go_to_the_spec_that_owns_them_and_round_trip():
    spec = RankSpec.from_options(max_samples=300, tags="sentence-transformers", batch_size=8, metrics=["logme"],
                                 token="hf_secret", encoders=None)
    assert spec.data.max_samples == 300 and spec.query.tags == ("sentence-transformers",)
    assert spec.extract.batch_size == 8 and spec.score.metrics == ("emms", "logme") and spec.score.encoders is None
    assert RankSpec.from_options(spec.options()) == spec
    assert spec.replace(seed=3).data.seed == 3 and spec.replace(seed=3).extract == spec.extract
    assert "hf_secret" not in repr(spec)  # the token is never shown
    assert len(RankSpec.option_names()) == len(set(RankSpec.option_names()))  # each option has one owner


def test_the_defaults_are_rank_s_defaults():
    import inspect

    from hf_emms import rank

    defaults = {n: p.default for n, p in inspect.signature(rank).parameters.items() if p.kind is p.KEYWORD_ONLY}
    spec_defaults = RankSpec().options()
    shared = set(defaults) & set(spec_defaults)
    assert shared == set(defaults)  # every keyword of rank() is an option of the specs
    assert {n: tuple(v) if n in ("tags", "metrics") else v for n, v in defaults.items()} == {
        n: spec_defaults[n] for n in shared}
    assert ScoreSpec().metrics == DEFAULT_METRICS and set(DEFAULT_METRICS) <= set(METRICS)
    assert RunSpec().progress is True


def test_shared_checks():
    assert check_positive_int("n", 3) == 3
    assert check_choice("sort", "likes", ["likes", "downloads"]) == "likes"
    assert check_choices("metrics", ["logme", "emms", "logme"], METRICS) == ("logme", "emms")
    with pytest.raises(TypeError):
        check_positive_int("n", 0, error=TypeError)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_this_machine_lacks_is_refused_before_any_candidate_loads():
    with pytest.raises(InvalidInputError, match="device 'cuda' is not available.*Leave device out"):
        ExtractSpec(device="cuda")
    assert ExtractSpec(device="cpu").device == "cpu"


def test_an_output_or_cache_folder_that_cannot_be_a_folder_is_refused_before_the_ranking(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InvalidInputError, match="output_dir '.*afile' is a file: give a folder path"):
        RunSpec(output_dir=tmp_path / "afile")
    with pytest.raises(InvalidInputError, match="would be inside '.*afile', which is a file"):
        RunSpec(cache_dir=tmp_path / "afile" / "cache")
    spec = RunSpec(output_dir=tmp_path / "new" / "deeper", cache_dir=tmp_path)  # created later, when written
    assert spec.output_dir == tmp_path / "new" / "deeper" and not (tmp_path / "new").exists()


@pytest.mark.parametrize("given", [None, [], "none", "None", ["none"], ("NONE",)])
def test_no_encoder_is_spelt_the_same_way_in_the_api_as_on_the_command_line(given):
    assert ScoreSpec(encoders=given).encoders is None  # "none" is never looked up as a Hub id


def test_encoders_keep_their_order_and_a_single_id_is_one_encoder():
    assert ScoreSpec(encoders="org/enc").encoders == ("org/enc",)
    assert ScoreSpec(encoders=["b", "a"]).encoders == ("b", "a")
    assert ScoreSpec(encoders=["none", "org/enc"]).encoders == ("none", "org/enc")  # only "none" alone means none
    assert ScoreSpec().encoders == "default"
