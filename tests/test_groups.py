"""Grouped folds (features/groups.py): the copies of an input are held out together, so a repeated row never
scores a candidate on a copy of what it was fitted on."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

import _tiny_models
from hf_emms.features.extract import prepare_job
from hf_emms.features.groups import input_groups
from hf_emms.features.inputs import InputSpec
from hf_emms.pipeline import rank

TOPICS = {"sports": "goal match team coach", "cooking": "oven recipe garlic soup", "weather": "rain storm snow wind"}


def _distinct(n: int = 45) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    names = list(TOPICS)
    texts, labels = [], []
    for i in range(n):
        a, b = rng.choice(TOPICS[names[i % 3]].split(), 2, replace=False)
        texts.append(f"note {i}: {a} and {b}")
        labels.append(i % 3)
    return datasets.Dataset.from_dict({"text": texts, "label": labels},
                                      features=datasets.Features({"text": datasets.Value("string"),
                                                                  "label": datasets.ClassLabel(names=names)}))


def test_rows_take_the_first_row_of_their_input():
    ds = datasets.Dataset.from_dict({"text": ["a", "b", "a", "c", "b", "a"], "label": [0, 1, 0, 1, 1, 0]})
    groups = input_groups(ds, InputSpec("text", ("text",)), np.array([5, 0, 1, 2, 3, 4]))
    assert groups.rows.tolist() == [2, 4, 5] and groups.first.tolist() == [0, 1, 0] and groups.distinct == 3
    assert groups.fold_ids(np.array([4, 3, 2, 1, 0, 5])).tolist() == [1, 3, 0, 1, 0, 0]
    # only the scored rows count: without row 0, row 2 is the first "a"
    assert input_groups(ds, InputSpec("text", ("text",)), np.array([2, 3, 5])).fold_ids(np.array([5])).tolist() == [2]
    pair = datasets.Dataset.from_dict({"a": ["x", "x", "x"], "b": ["y", "z", "y"], "label": [0, 1, 0]})
    assert input_groups(pair, InputSpec("text", ("a", "b")), np.arange(3)).rows.tolist() == [2]  # both texts count


def test_distinct_inputs_keep_their_folds_and_their_cache_keys():
    job = prepare_job(_distinct(), text_column="text", label_column="label")
    assert job.groups is None and "fold_groups" not in job.key_parts
    doubled = datasets.concatenate_datasets([_distinct(), _distinct()])
    job = prepare_job(doubled, text_column="text", label_column="label")
    assert job.groups.repeated == 45 and "fold_groups" in job.key_parts


def test_every_row_three_times_scores_as_the_rows_once(tmp_path):
    # Copies of the first 45 rows follow them: each input's first row is the one it has alone, so its folds are those
    # of the rows once and every sum is three times theirs; the score (a share of the F-label variance) is the same.
    # With a row's copies in other folds (before), the triplicated set scored memorisation, well above the single.
    model = str(_tiny_models.bert(tmp_path / "model", hidden=32, seed=1))
    once = _distinct()
    thrice = datasets.concatenate_datasets([once, once, once])
    kwargs = dict(encoders=None, max_samples=None, progress=False)
    single = rank(once, [model], cache_dir=tmp_path / "a", **kwargs).rows[0]
    triple = rank(thrice, [model], cache_dir=tmp_path / "b", **kwargs).rows[0]
    assert triple.n_samples == 135
    # Equal up to rounding (the sums are added in another order, and the ridge search ends where the rounding lets
    # it): the score is a small difference of large sums, so 1e-6; the leak this guards against gave -2e-16.
    assert triple.emms == pytest.approx(single.emms, rel=1e-6)
    assert triple.emms_se == pytest.approx(single.emms_se, rel=1e-6)


# ---- in-memory features (emms_score, the evaluate metric): equal rows are copies -------------------------------
def test_first_copies_finds_equal_rows_on_numpy_and_torch():
    import torch

    from hf_emms.solver.copies import first_copies

    x = np.random.default_rng(0).standard_normal((50, 6))
    assert first_copies(x) is None  # all distinct: the default ids
    y = np.concatenate([x, x[[3, 7]], x[:1]])
    assert first_copies(y).tolist() == list(range(50)) + [3, 7, 0]
    assert first_copies(torch.from_numpy(y).float()).tolist() == list(range(50)) + [3, 7, 0]


def test_first_copies_checks_rows_whose_projections_merely_coincide(monkeypatch):
    import hf_emms.solver.copies as copies

    monkeypatch.setattr(copies, "_direction", lambda width: np.ones(width))  # (1, 2) and (2, 1) both project to 3
    x = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0], [0.0, 3.0], [2.0, 1.0]])
    assert copies.first_copies(x).tolist() == [0, 1, 0, 3, 1]


def test_emms_score_warns_of_equal_rows_and_scores_copies_as_one_given_their_ids():
    from hf_emms.solver import emms_score
    from hf_emms.solver.copies import first_copies

    rng = np.random.default_rng(1)
    y = np.arange(60) % 3
    x = rng.standard_normal((60, 24)) + y[:, None] * 0.5
    tables = [rng.standard_normal((3, 5))]
    once = emms_score(x, y, class_embeddings=tables)
    x3, y3 = np.concatenate([x] * 3), np.concatenate([y] * 3)
    with pytest.warns(UserWarning, match="120 of 180 feature rows equal an earlier row.*sample_ids"):
        leaked = emms_score(x3, y3, class_embeddings=tables)  # every copy its own fold: the copies are memorised
    assert leaked.score > once.score + 0.1
    grouped = emms_score(x3, y3, class_embeddings=tables, sample_ids=first_copies(x3))
    assert grouped.score == pytest.approx(once.score, rel=1e-6) and grouped.se == pytest.approx(once.se, rel=1e-6)


def test_a_stored_score_is_reused_only_under_the_same_grouping(tmp_path):
    # The results store's key names the grouping when inputs repeat (a score stored with other folds is not reused)
    # and is unchanged when they do not.
    from hf_emms.pipeline import iter_rank

    model = str(_tiny_models.bert(tmp_path / "model", hidden=32, seed=1))
    kwargs = dict(encoders=None, max_samples=None, progress=False, cache_dir=tmp_path / "c")
    distinct = iter_rank(_distinct(), [model], **kwargs).plan.data_key
    repeated = iter_rank(datasets.concatenate_datasets([_distinct(), _distinct()]), [model], **kwargs).plan.data_key
    assert ":groups=" not in distinct and distinct.count(":") == 1
    assert ":groups=" in repeated


# ---- group_column: rows sharing a value (a speaker, a patient) are held out together ----------------------------
def _by_speaker(speakers: int = 15, each: int = 6) -> datasets.Dataset:
    # Only the speaker says the label: a fit that saw a speaker's other rows reads it off their shared word.
    words = ["zebra", "quartz", "violin", "marble", "cactus", "harbor", "pepper", "lantern", "meadow", "copper",
             "walnut", "glacier", "saddle", "orchid", "tunnel"]
    texts, labels, who = [], [], []
    for s in range(speakers):
        for i in range(each):
            texts.append(f"{words[s]} says item {i} of the list")
            labels.append(s % 3)
            who.append(f"speaker-{s}")
    return datasets.Dataset.from_dict({"text": texts, "label": labels, "speaker": who})


def test_group_column_links_rows_by_its_value_and_by_input():
    ds = datasets.Dataset.from_dict({"text": ["a", "b", "c", "a", "d"], "label": [0, 1, 0, 1, 0],
                                     "who": ["x", "y", "y", "z", None]})
    groups = input_groups(ds, InputSpec("text", ("text",)), np.arange(5), group_column="who")
    # b and c share "y"; a (row 0) and row 3 share an input; row 4 has no group and its own input
    assert groups.fold_ids(np.arange(5)).tolist() == [0, 1, 1, 0, 4] and groups.units == 3
    assert groups.ungrouped == 1
    # a numeric group column read from a CSV holds NaN where a value is missing: missing, not one more group
    ids = datasets.Dataset.from_dict({"text": list("abcde"), "label": [0, 1, 0, 1, 0],
                                      "who": [1.0, float("nan"), 1.0, float("nan"), 2.0]})
    by_id = input_groups(ids, InputSpec("text", ("text",)), np.arange(5), group_column="who")
    assert by_id.fold_ids(np.arange(5)).tolist() == [0, 1, 0, 3, 4] and by_id.ungrouped == 2


def test_rank_with_a_group_column_does_not_score_a_row_on_its_siblings(tmp_path):
    model = str(_tiny_models.bert(tmp_path / "model", hidden=32, seed=1))
    kwargs = dict(encoders=None, max_samples=None, progress=False, layers="last")
    apart = rank(_by_speaker(), [model], cache_dir=tmp_path / "a", **kwargs)
    together = rank(_by_speaker(), [model], cache_dir=tmp_path / "b", group_column="speaker", **kwargs)
    assert together.meta.config.extra["group_column"] == "speaker" and "group_column" not in apart.meta.config.extra
    # siblings in the training folds give the speaker's word away; held out whole, nothing predicts the label
    assert apart.rows[0].emms > together.rows[0].emms + 0.2


@pytest.mark.parametrize(("column", "message"), [
    ("label", "is the label column"), ("text", "is the input column"), ("who", "'who' is not in the dataset"),
])
def test_a_group_column_that_cannot_group_is_named(tmp_path, column, message):
    from hf_emms.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=message):
        rank(_by_speaker(), [str(tmp_path / "unused")], group_column=column, encoders=None, progress=False,
             cache_dir=tmp_path / "c")


def test_too_few_groups_are_refused(tmp_path):
    from hf_emms.errors import InvalidInputError

    model = str(_tiny_models.bert(tmp_path / "model", hidden=32, seed=1))
    with pytest.raises(InvalidInputError, match="form 4 groups .* needs at least 10"):
        rank(_by_speaker(speakers=4, each=10), [model], group_column="speaker", encoders=None, progress=False,
             cache_dir=tmp_path / "c")


def test_extract_stats_puts_each_groups_rows_in_one_fold(tmp_path):
    from hf_emms.features import extract_stats

    model = str(_tiny_models.bert(tmp_path / "model", hidden=32, seed=1))
    kwargs = dict(text_column="text", label_column="label", progress=False)
    grouped = extract_stats(model, _by_speaker(), group_column="speaker", **kwargs).stats._t["fold_count"]
    plain = extract_stats(model, _by_speaker(), **kwargs).stats._t["fold_count"]
    assert grouped.sum() == plain.sum() == 90
    assert all(int(c) % 6 == 0 for c in grouped)  # 15 speakers of 6 rows, each speaker in one fold
    assert not all(int(c) % 6 == 0 for c in plain)


def test_what_the_ranking_said_is_kept_in_its_meta_and_json(tmp_path):
    from hf_emms.results import Ranking

    model = str(_tiny_models.bert(tmp_path / "model", hidden=32, seed=1))
    doubled = datasets.concatenate_datasets([_distinct(), _distinct()])
    ranking = rank(doubled, [model], encoders=None, max_samples=None, progress=False, cache_dir=tmp_path / "c",
                   output_dir=tmp_path / "out", layers="last")
    notes = ranking.meta.extra["notes"]
    assert notes[0].startswith("data: ")
    assert any(n.startswith("note: 45 of 90 scored rows repeat an input") for n in notes)
    again = Ranking.from_json((tmp_path / "out" / "ranking.json").read_text())
    assert again.meta.extra["notes"] == notes


def test_a_ranking_hashes_its_inputs_once(tmp_path, monkeypatch):
    # The repeated-input count (the data note, the refusal of too few) and the folds come from one pass.
    import hf_emms.features.groups as groups_module
    import hf_emms.tasks.distinct as distinct_module

    calls = []
    real = distinct_module.input_digests
    counted = lambda *a, **k: calls.append(1) or real(*a, **k)  # noqa: E731
    for module in (groups_module, distinct_module):  # the count (distinct_inputs) and the folds (input_groups)
        monkeypatch.setattr(module, "input_digests", counted)
    model = str(_tiny_models.bert(tmp_path / "model", hidden=32, seed=1))
    doubled = datasets.concatenate_datasets([_distinct(), _distinct()])
    ranking = rank(doubled, [model], encoders=None, max_samples=None, progress=False, cache_dir=tmp_path / "c",
                   layers="last")
    assert len(calls) == 1 and ranking.meta.dataset.distinct_inputs == 45


def test_one_text_of_a_pair_may_group_the_pairs(tmp_path):
    # NLI-style data: several hypotheses per premise. Grouping by the premise holds out every pair that shares it.
    premises = [f"premise {p} about {w}" for p, w in enumerate(TOPICS["sports"].split() * 3)]  # 12 premises
    rows = [(a, f"hypothesis {h} on {a}", h % 2) for a in premises for h in range(3)]
    ds = datasets.Dataset.from_dict({"premise": [a for a, _, _ in rows], "hypothesis": [b for _, b, _ in rows],
                                     "label": [y for _, _, y in rows]})
    model = str(_tiny_models.bert(tmp_path / "model", hidden=32, seed=1))
    ranking = rank(ds, [model], input_column=["premise", "hypothesis"], group_column="premise", encoders=None,
                   max_samples=None, progress=False, cache_dir=tmp_path / "c", layers="last")
    assert ranking.rows[0].status == "ok"
    assert any(n.startswith("folds: the 36 rows form 12 groups by 'premise'") for n in ranking.meta.extra["notes"])
    # pairs without a premise id are grouped by their input alone, and the note says how many
    ds = ds.add_column("premise_id", [None if i % 9 == 0 else i // 3 for i in range(len(rows))])
    ranking = rank(ds, [model], input_column=["premise", "hypothesis"], group_column="premise_id", encoders=None,
                   max_samples=None, progress=False, cache_dir=tmp_path / "c", layers="last")
    (note,) = [n for n in ranking.meta.extra["notes"] if n.startswith("folds:")]
    assert note.endswith("; 4 rows without a 'premise_id' value are grouped by their input alone.")
