"""Quality benchmark, fast parts: the fixed task splits and the ranking-quality figures.

The splits are rebuilt from ../shared/data/text and must equal the committed JSONL files byte for byte, with the
documented sizes; the figures are checked against values worked out by hand and against a brute-force weighted tau.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "text"


def _load_quality():
    spec = importlib.util.spec_from_file_location("quality_benchmark", ROOT / "benchmarks" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


quality = _load_quality()
import ceiling  # noqa: E402  (on sys.path once the benchmark is loaded)
import layer_credit  # noqa: E402
import task_splits  # noqa: E402

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"the shared text data is not at {DATA}")
SIZES = {"sst2": (1000, 1000), "trec": (1000, 499), "subj": (1000, 1000), "mpqa": (1000, 1000),
         "banking77": (1000, 1000), "sms_spam": (1000, 1000), "sick_entailment": (1000, 1000),
         "sick_relatedness": (1000, 1000)}
CLASSES = {"sst2": 2, "trec": 6, "subj": 2, "mpqa": 2, "banking77": 77, "sms_spam": 2, "sick_entailment": 3}


@needs_data
def test_splits_rebuild_to_the_committed_files_with_the_documented_sizes(tmp_path):
    built = task_splits.build_splits(tmp_path, data_root=DATA)
    assert sorted(built) == sorted(SIZES)
    for task, folder in built.items():
        train_x, train_y = task_splits.read_jsonl(folder / "train.jsonl")
        test_x, test_y = task_splits.read_jsonl(folder / "test.jsonl")
        assert (len(train_x), len(test_x)) == SIZES[task]
        info = task_splits.read_task_info(folder)
        if task in CLASSES:
            assert info["kind"] == "classification" and info["metric"] == "accuracy"
            assert len(set(train_y)) == CLASSES[task] and set(test_y) <= set(train_y)
            assert all(isinstance(y, str) for y in train_y + test_y)  # class names, for the label encoders
        else:  # SICK relatedness: a score in [1, 5]
            assert info["kind"] == "regression" and info["metric"] == "pearson"
            assert all(isinstance(y, float) and 1 <= y <= 5 for y in train_y + test_y)
        pair = task.startswith("sick_")
        assert info["inputs"] == (["sentence1", "sentence2"] if pair else ["text"])
        assert all(isinstance(x, tuple) == pair for x in train_x + test_x)
        assert len(set(train_x)) == len(train_x) and not set(train_x) & set(test_x)
        for split in ("train.jsonl", "test.jsonl", "task.json"):
            assert (folder / split).read_bytes() == (task_splits.TASK_DIR / task / split).read_bytes(), (task, split)


@needs_data
def test_splits_are_stratified_and_the_seed_changes_them():
    train, test = task_splits.make_split("sms_spam", data_root=DATA)
    again = task_splits.make_split("sms_spam", data_root=DATA)
    other = task_splits.make_split("sms_spam", data_root=DATA, seed=1)
    assert (train, test) == again and train != other[0]
    pool = task_splits._dedupe(task_splits._sms(DATA / "sms_spam" / "SMSSpamCollection"))
    spam_share = sum(label == "spam" for _, label in pool) / len(pool)
    assert abs(sum(label == "spam" for _, label in train) / len(train) - spam_share) < 0.002


@needs_data
def test_sick_splits_keep_pairs_ordered_and_draw_test_pairs_from_the_test_set():
    train, test = task_splits.make_split("sick_entailment", data_root=DATA)
    rel_train, rel_test = task_splits.make_split("sick_relatedness", data_root=DATA)
    table = (DATA / "sick" / "SICK.txt").read_text(encoding="utf-8").split("\n")
    header = table[0].split("\t")
    rows = {}  # (sentence_A, sentence_B) -> [(SemEval set, entailment label, relatedness)] of the file's lines
    for line in filter(str.strip, table[1:]):
        row = dict(zip(header, line.rstrip("\r").split("\t")))
        rows.setdefault((row["sentence_A"].strip(), row["sentence_B"].strip()), []).append(
            (row["SemEval_set"], row["entailment_label"].lower(), float(row["relatedness_score"])))
    assert all(any(s in ("TRAIN", "TRIAL") and y == label for s, y, _ in rows[pair]) for pair, label in train)
    assert all(any(s == "TEST" and y == label for s, y, _ in rows[pair]) for pair, label in test)
    assert all(any(r == score for _, _, r in rows[pair]) for pair, score in rel_train + rel_test)
    assert sum(a == b for (a, b), _ in train) < 10 and any(a != b for (a, b), _ in train)  # ordered pairs
    # stratified by the rounded score: each bin's share of the draw is its share of the pool, to within one row
    pool = task_splits._dedupe(task_splits.SOURCES["sick_relatedness"].read(DATA / "sick" / "SICK.txt"))
    for b in range(1, 6):
        share = sum(round(y) == b for _, y in pool) / len(pool)
        assert abs(sum(round(y) == b for _, y in rel_train) - share * len(rel_train)) <= 1


def test_jsonl_round_trip_and_a_bad_line_is_named(tmp_path):
    rows = [("ça va ?\u0085 bien", "positive"), ("a\tb", "negative"), (("first", "second"), 4.5)]
    task_splits.write_jsonl(tmp_path / "train.jsonl", rows)
    assert task_splits.read_jsonl(tmp_path / "train.jsonl") == ([t for t, _ in rows], [y for _, y in rows])
    assert '"sentence1": "first", "sentence2": "second"' in (tmp_path / "train.jsonl").read_text()
    assert task_splits.read_task_info(tmp_path)["kind"] == "classification"  # no task.json: one text, classes
    (tmp_path / "bad.jsonl").write_text('{"text": "x", "label": 1}\n{"text": "no label"}\n')
    with pytest.raises(task_splits.SplitError, match=r"bad.jsonl:2"):
        task_splits.read_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(task_splits.SplitError, match="unknown task"):
        task_splits.make_split("imdb", data_root=tmp_path)
    with pytest.raises(task_splits.SplitError, match="missing"):
        task_splits.make_split("sst2", data_root=tmp_path)


def _weighted_tau_by_definition(x, y):
    """Vigna's weighted tau without ties, hyperbolic weights 1/(r+1) summed over a pair, with the rank of each
    element by decreasing x, and by decreasing y, averaged (what scipy does with rank=True)."""

    def one(order_by):
        rank = np.empty(len(x), int)
        rank[np.argsort(-np.asarray(order_by), kind="stable")] = np.arange(len(x))
        num = den = 0.0
        for i, j in itertools.combinations(range(len(x)), 2):
            w = 1 / (rank[i] + 1) + 1 / (rank[j] + 1)
            num += w * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            den += w
        return num / den

    return (one(x) + one(y)) / 2


def test_figures_on_hand_worked_examples():
    truth = {"a": 0.9, "b": 0.8, "c": 0.7}
    # One swap of the last two: pairs (a,b) weight 1+1/2 and (a,c) 1+1/3 agree, (b,c) 1/2+1/3 disagrees, under
    # either ranking: (1.5 + 4/3 - 5/6) / (1.5 + 4/3 + 5/6) = 6/11. Kendall: (2 - 1) / 3.
    swapped = {"a": 3.0, "b": 1.0, "c": 2.0}
    assert quality.weighted_tau(truth, swapped) == pytest.approx(6 / 11)
    assert quality.kendall_tau(truth, swapped) == pytest.approx(1 / 3)
    assert quality.top1_regret(truth, swapped) == 0.0
    # The top pair swapped costs more than the bottom pair: (-1.5 + 4/3 + 5/6) / (11/3) = 2/11.
    top_swapped = {"a": 2.0, "b": 3.0, "c": 1.0}
    assert quality.weighted_tau(truth, top_swapped) == pytest.approx(2 / 11)
    assert quality.top1_regret(truth, top_swapped) == pytest.approx(0.1)
    assert quality.weighted_tau(truth, {"a": 1, "b": 0, "c": -1}) == pytest.approx(1.0)
    assert quality.kendall_tau(truth, {"a": -1, "b": 0, "c": 1}) == pytest.approx(-1.0)
    # A prior that ties at the top (equal widths) is charged the worst of the tied models.
    assert quality.top1_regret(truth, {"a": 768, "b": 384, "c": 768}) == pytest.approx(0.2)
    # Models missing on either side are left out; fewer than two left is an error.
    assert quality.kendall_tau(truth, {"a": 2.0, "c": 1.0, "z": 9.0}) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2"):
        quality.weighted_tau(truth, {"a": 1.0, "z": 2.0})


def test_depth_credit_on_a_hand_worked_row():
    # Layers 2, 4 (chosen), 8 = L, and the upper mean. Gain below the choice: -0.40 - (-0.60) = 0.20 over 2 layers.
    row = {"2": -0.60, "4": -0.40, "8": -0.50, "upper": -0.45}
    got = layer_credit.depth_credit(row, "4", -0.40)
    assert got["emms_depth_extrap"] == pytest.approx(-0.40 + 4 * 0.10)  # 0.1 a layer, 4 layers above
    assert got["emms_depth_headroom"] == pytest.approx(-0.40 + 4 / 8 * 0.20)
    assert got["emms_max_layer"] == pytest.approx(-0.40)
    # Chosen at the top (a layer index or the upper mean): nothing above to credit, the score is unchanged.
    for chosen, score in (("8", -0.50), ("upper", -0.45)):
        top = layer_credit.depth_credit(row, chosen, score)
        assert top["emms_depth_extrap"] == top["emms_depth_headroom"] == score
    # A loss below the chosen layer is never credited; a last-layer-only row and a layers="last" run pass through.
    worse = layer_credit.depth_credit({"1": -0.2, "3": -0.5, "6": -0.7}, "3", -0.5)
    assert worse["emms_depth_extrap"] == worse["emms_depth_headroom"] == -0.5
    assert layer_credit.depth_credit({"last": -0.7}, "last", -0.7) == dict.fromkeys(layer_credit.VARIANTS, -0.7)
    assert layer_credit.depth_credit(None, None, -0.7) == dict.fromkeys(layer_credit.VARIANTS)


def test_the_tied_set_against_fine_tuning():
    truth = {"a": 0.90, "b": 0.88, "c": 0.80}
    assert quality.tied_set(truth, {"b": True, "c": True, "a": False}) == {
        "size": 2, "n_models": 3, "holds_best": False, "regret": pytest.approx(0.02)}
    assert quality.tied_set(truth, {"a": True, "c": True}) == {"size": 2, "n_models": 3, "holds_best": True,
                                                              "regret": 0.0}
    # A flag on a model without a fine-tuned result does not count; no flag at all (no fold scores) is None.
    assert quality.tied_set(truth, {"c": True, "z": True})["size"] == 1
    assert quality.tied_set(truth, {"a": None, "b": False}) is None


def test_noise_ceilings_fall_as_the_seed_noise_grows_against_the_spread_of_the_models():
    truth = {f"m{i}": 0.80 + 0.01 * i for i in range(8)}  # 1 point apart
    seeds = {m: [0, 1, 2] for m in truth}
    quiet = ceiling.noise_ceiling(truth, dict.fromkeys(truth, 1e-6), seeds)
    assert quiet["exact"] == pytest.approx(1.0) and quiet["rerun"] == pytest.approx(1.0)
    noisy = ceiling.noise_ceiling(truth, dict.fromkeys(truth, 0.01), seeds)
    noisier = ceiling.noise_ceiling(truth, dict.fromkeys(truth, 0.03), seeds)
    assert 1.0 > noisy["exact"] > noisy["rerun"] > noisier["rerun"] > 0  # a re-run has noise on both sides
    assert noisy == ceiling.noise_ceiling(truth, dict.fromkeys(truth, 0.01), seeds)  # seeded: reproducible
    # Sigma is the root mean square over the models with two or more seeds; with none it is unknown.
    assert ceiling.pooled_seed_sd({"a": 0.03, "b": 0.04, "c": None}, {"a": [0, 1], "b": [0, 1, 2], "c": [0]}) == \
        pytest.approx(np.sqrt((0.03 ** 2 + 0.04 ** 2) / 2))
    assert ceiling.noise_ceiling(truth, dict.fromkeys(truth), dict.fromkeys(truth, [0])) is None
    # The mean over tasks leaves out the tasks without one (one seed per model).
    assert ceiling.mean_ceiling([{"exact": 0.9, "rerun": 0.8}, None, {"exact": 0.7, "rerun": 0.6}]) == {
        "exact": pytest.approx(0.8), "rerun": pytest.approx(0.7), "n_tasks": 2}
    assert ceiling.mean_ceiling([None, None]) is None


def test_rerun_gaps_are_paired_and_grow_with_the_seed_noise():
    from scipy.stats import weightedtau

    truth = {f"m{i}": 0.80 + 0.01 * i for i in range(8)}
    seeds = {m: [0, 1, 2] for m in truth}
    order = {m: float(i) for i, m in enumerate(truth)}  # the fine-tuned order itself
    swapped = order | {"m7": 5.5}  # the best put third
    scores = {m: {"emms": order[m], "same": order[m], "swapped": swapped[m], "hscore": None} for m in truth}
    quiet = ceiling.rerun_gaps(truth, dict.fromkeys(truth, 1e-6), seeds, scores, ["emms", "same", "swapped", "hscore"])
    assert set(quiet) == {"same", "swapped"}  # the reference itself and a selector with no score are left out
    assert quiet["same"] == {"gap": 0.0, "rerun_mean": 0.0, "rerun_sd": 0.0, "n_models": 8}  # paired: exactly 0
    expected = weightedtau(list(truth.values()), [swapped[m] for m in truth]).statistic - 1.0
    assert quiet["swapped"]["gap"] == pytest.approx(expected) and expected < -0.05
    assert quiet["swapped"]["rerun_sd"] < 1e-9  # no seed noise: a re-run moves nothing
    noisy = ceiling.rerun_gaps(truth, dict.fromkeys(truth, 0.01), seeds, scores, ["same", "swapped"])
    noisier = ceiling.rerun_gaps(truth, dict.fromkeys(truth, 0.03), seeds, scores, ["same", "swapped"])
    assert noisy["same"]["rerun_sd"] == 0.0 and 0 < noisy["swapped"]["rerun_sd"] < noisier["swapped"]["rerun_sd"]
    assert noisy["swapped"]["gap"] == quiet["swapped"]["gap"]  # the measured gap does not depend on the noise
    assert ceiling.rerun_gaps(truth, dict.fromkeys(truth), dict.fromkeys(truth, [0]), scores, ["same"]) is None


def test_weighted_tau_matches_the_definition_on_random_rankings():
    rng = np.random.default_rng(0)
    for n in (3, 5, 8):
        for _ in range(20):
            x, y = rng.standard_normal(n), rng.standard_normal(n)
            names = [f"m{i}" for i in range(n)]
            got = quality.weighted_tau(dict(zip(names, x)), dict(zip(names, y)))
            assert got == pytest.approx(_weighted_tau_by_definition(x, y), abs=1e-12)


def test_quality_and_average_per_selector():
    truth = {"big": 0.9, "mid": 0.8, "rand": 0.5}
    scores = {"big": {"emms": 3.0, "emms_official": 1.0, "logme": 2.0, "hscore": None, "params": 100, "width": 768},
              "mid": {"emms": 2.0, "emms_official": 2.0, "logme": 1.0, "hscore": None, "params": 50, "width": 384},
              "rand": {"emms": 1.0, "emms_official": 3.0, "logme": 3.0, "hscore": None, "params": 100, "width": 768}}
    q = quality.quality(truth, scores)
    assert "hscore" not in q  # nothing to rank with
    assert q["emms"] == {"weighted_tau": pytest.approx(1.0), "kendall_tau": pytest.approx(1.0), "regret": 0.0,
                         "n_models": 3}
    assert q["emms_official"]["kendall_tau"] == pytest.approx(-1.0)
    assert q["emms_official"]["regret"] == pytest.approx(0.4)
    assert q["params"]["regret"] == pytest.approx(0.4)  # big and rand tie at the top
    other = {sel: {**v, "weighted_tau": -v["weighted_tau"], "regret": 0.0} for sel, v in q.items()}
    avg = quality.average({"t1": q, "t2": other})
    assert avg["emms"]["weighted_tau"] == pytest.approx(0.0) and avg["emms"]["n_tasks"] == 2
    assert avg["emms_official"]["regret"] == pytest.approx(0.2)
    # Kendall tau is NaN where a side is constant; the average skips it rather than turning NaN.
    flat = quality.quality(truth, {m: {"emms": 1.0} for m in truth})
    assert math.isnan(flat["emms"]["kendall_tau"])
    assert quality.average({"t1": q, "t2": flat})["emms"]["kendall_tau"] == pytest.approx(1.0)


def test_differences_from_the_default_are_paired_by_task_with_their_standard_error():
    def q(**taus):
        return {sel: {"weighted_tau": t} for sel, t in taus.items()}

    per_task = {"a": q(emms=0.8, emms_last=0.5, params=0.9), "b": q(emms=0.6, emms_last=0.5, params=0.5),
                "c": q(emms=0.7, emms_last=0.8, params=math.nan)}  # a constant prior: no tau, left out
    got = quality.versus(per_task)
    d = np.array([-0.3, -0.1, 0.1])
    assert got["emms_last"] == {"difference": pytest.approx(d.mean()), "se": pytest.approx(d.std(ddof=1) / np.sqrt(3)),
                                "n_tasks": 3, "better_on": 1}
    assert got["emms"] == {"difference": 0.0, "se": 0.0, "n_tasks": 3, "better_on": 0}
    assert got["params"]["n_tasks"] == 2 and got["params"]["difference"] == pytest.approx(0.0)
    assert math.isnan(quality.versus({"a": per_task["a"]})["emms_last"]["se"])  # one task: no spread


def test_committed_ground_truth_reads_and_its_cells_are_whole():
    path = quality.GROUND_TRUTH
    if not path.exists():
        pytest.skip("no ground truth committed yet")
    data = quality.load_ground_truth(path)
    meta = data["_meta"]
    assert meta["format"] == "hf-emms/quality-ground-truth" and meta["recipe"]["epochs"] >= 1
    for task, models in data.items():
        if task == "_meta":
            continue
        assert task in task_splits.TASKS
        metric = task_splits.read_task_info(task_splits.TASK_DIR / task)["metric"]  # accuracy, or pearson r
        low = 0.0 if metric == "accuracy" else -1.0
        for model, entry in models.items():
            accs = [r["finetune_acc"] for r in entry["runs"]]
            assert entry["finetune_acc"] == pytest.approx(np.mean(accs))
            assert entry["seeds"] == sorted(r["seed"] for r in entry["runs"])
            assert low <= entry["probe_acc"] <= 1.0 and low <= entry["finetune_acc"] <= 1.0
            for run in entry["runs"]:
                assert run["seconds"] > 0 and run["log"][-1].startswith(f"test {metric}")
                assert run["env"]["device"] and run["env"]["torch_threads"] >= 1 and run["env"]["torch"]
    assert json.loads(path.read_text()) == data


def test_the_committed_report_is_its_scores_judged_against_the_committed_ground_truth():
    """``--rejudge``: an earlier report's scores against the ground truth again, nothing scored. On the committed files
    it must give the committed figures (a ground truth that grew without the report judged again fails here), and a
    ground truth naming a model the report never scored is refused."""
    path = quality.RESULTS / "quality.json"
    if not (path.exists() and quality.GROUND_TRUTH.exists()):
        pytest.skip("no report or ground truth committed yet")
    committed = json.loads(path.read_text())
    truth = quality.load_ground_truth(quality.GROUND_TRUTH)
    again = quality.rejudge(committed, truth)
    for key in ("ceiling", "average", "average_by_inputs"):
        assert again[key] == committed[key], key
    for task, entry in committed["tasks"].items():
        assert {k: again["tasks"][task][k] for k in entry} == entry, task

    task = next(iter(committed["tasks"]))
    dropped = {**truth, task: {m: v for m, v in truth[task].items() if m != committed["tasks"][task]["models"][0]}}
    with pytest.raises(quality.GroundTruthError, match="run the report again"):
        quality.rejudge(committed, dropped)
