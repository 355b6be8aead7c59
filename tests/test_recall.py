"""The recall phase: history readers, the transfer space (fit, score, save/load), the short list, the CLI.

Everything here uses the hashing embedder (no model, exact integer bucket counts) except the CLI test, which runs
the installed MiniLM as a user would; assertions compare orders and counts with margins, never float digits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hf_emms.errors import InvalidInputError
from hf_emms.recall import (
    HashingEmbedder, ModelMeta, RecallConfig, TaskText, TransferSpace, history_from_model_index, history_from_store,
    id_text, merge, read_history, shortlist, weighted_tau,
)
from hf_emms.recall.space import _Memo

TYPES = {"good": 2.0, "mid": 0.0, "bad": -2.0}
TASKS = {"reviews": ("Movie review sentiment", ["negative", "positive"]),
         "news": ("News topic", ["world", "sports", "business"]),
         "tweets": ("Emotion of a tweet", ["anger", "joy"]),
         "grammar": ("Grammatical acceptability", ["unacceptable", "acceptable"])}


def write_history(folder: Path, *, n_models: int = 30, seed: int = 0, tasks=TASKS) -> dict[str, float]:
    """A history folder in the transfer_history format: quality = type effect + a per-model term; returns quality."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    quality, records, models = {}, ["model,dataset,method,eval_accuracy"], ["model,architectures,model_type,"
                                                                           "number_of_parameters,number_of_labels,labels"]
    for i in range(n_models):
        kind = list(TYPES)[i % 3]
        model = f"org{i % 4}/{kind}-model-{i}"
        quality[model] = TYPES[kind] + rng.normal(0, 0.5)
        models.append(f'{model},{kind.title()}ForSequenceClassification,{kind},{(i + 1) * 1_000_000},2,'
                      f'"[\'LABEL_0\', \'LABEL_1\']"')
        for task in tasks:
            acc = 0.7 + 0.05 * quality[model] + rng.normal(0, 0.01)
            records.append(f"{model},{task},full,{acc}")
    records.append(f"{model},reviews,lora,0.01")  # another method: never read by default
    (folder / "records.csv").write_text("\n".join(records) + "\n")
    (folder / "models.csv").write_text("\n".join(models) + "\n")
    (folder / "datasets.csv").write_text("dataset,description,class_names\n" + "\n".join(
        f'{t},{d},"{json.dumps(c).replace(chr(34), chr(34) * 2)}"' for t, (d, c) in tasks.items()) + "\n")
    return quality


@pytest.fixture
def history(tmp_path):
    quality = write_history(tmp_path / "history")
    return read_history(tmp_path / "history"), quality


def _space(history, **config):
    return TransferSpace.fit(history, embed=HashingEmbedder(), config=RecallConfig(**config))


def test_weighted_tau_is_scipys_statistic():
    from scipy.stats import weightedtau

    rng = np.random.default_rng(1)
    for n in (5, 40, 150):
        x, y = rng.standard_normal(n), rng.standard_normal(n)
        y = 0.6 * x + y
        assert weighted_tau(x, y) == pytest.approx(weightedtau(x, y).statistic, abs=1e-9)


def test_read_history_builds_the_matrix_and_leaves_out_held_out_tasks(history, tmp_path):
    h, quality = history
    assert h.scores.shape == (30, 4) and set(h.tasks) == set(TASKS)
    assert h.column("reviews")[max(quality, key=quality.get)] > 0.7  # the lora row (0.01) was not read
    assert h.meta["org0/good-model-0"].model_type == "good" and h.meta["org0/good-model-0"].labels == ("LABEL_0",
                                                                                                      "LABEL_1")
    assert h.tasks_text["news"].class_names == ("world", "sports", "business")
    held = read_history(tmp_path / "history", exclude_tasks=["news"])
    assert "news" not in held.tasks and "news" in held.tasks_text  # its text stays: the task is describable


def test_bad_or_missing_history_degrades_to_the_metadata_prior(tmp_path):
    missing = read_history(tmp_path / "nowhere")
    assert missing.models == () and any("missing" in m for m in missing.messages)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "records.csv").write_text("what,ever\n1,2\n")
    bad = read_history(tmp_path / "bad")
    assert bad.models == () and any("lacks the columns" in m for m in bad.messages)
    space = TransferSpace.fit(missing, embed=HashingEmbedder(), config="auto")
    assert any("metadata prior" in m for m in space.messages)
    small, big = ModelMeta("a/small", "bert", num_parameters=10**6), ModelMeta("a/big", "bert", num_parameters=10**8)
    kept, scores, reasons = shortlist(space, [small, big], "sentiment", k=2)
    assert [m.model_id for m in kept] == ["a/big", "a/small"] and "metadata prior" in reasons[0]


def test_a_model_measured_on_one_task_only_builds_without_numpy_warnings(tmp_path):
    # a history cut short (a truncated records.csv) leaves models measured on one task: leaving that task out in
    # the cross-validation gave them no measurement, and the build printed "warning: Mean of empty slice"
    import warnings

    write_history(tmp_path / "h")
    records = (tmp_path / "h" / "records.csv").read_text().splitlines()
    (tmp_path / "h" / "records.csv").write_text("\n".join([*records, "orgX/solo-model,news,full,0.9"]) + "\n")
    h = read_history(tmp_path / "h")
    assert len(h.column("news")) == len(h.column("reviews")) + 1  # the solo model is measured on 'news' alone
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for aggregate in (None, 0.75):
            _space(h, aggregate=aggregate)
        space = TransferSpace.fit(h, embed=HashingEmbedder(), config="auto")
    assert "orgX/solo-model" in space.models
    report = next(m for m in space.messages if m.startswith("hyperparameters"))
    assert "aggregate=None" not in report  # the mean is named as such


def test_a_new_task_ranks_by_history_and_a_known_task_by_its_measurements(history):
    h, quality = history
    space = _space(h)
    models = list(h.models)
    u = space.vectors_for([h.meta[m] for m in models])
    new = space.score(u, space.task_vector(TaskText("imdb", "Movie reviews", ("bad", "good"))))
    assert weighted_tau(np.array([quality[m] for m in models]), new) > 0.8
    known = space.score(u, space.task_vector(h.tasks_text["news"]))
    measured = h.column("news")
    assert models[int(np.argmax(known))] == max(measured, key=measured.get)


def test_log_rank_scores_reward_the_head_of_each_task_and_bound_the_tail():
    from hf_emms.recall.space import log_rank

    scores = np.array([[0.9, 0.5], [0.8, np.nan], [0.8, 0.7], [0.1, 0.6]])  # a diverged run: 0.1
    z = log_rank(scores)
    assert np.isnan(z[1, 1]) and z[1, 0] == z[2, 0]  # unmeasured stays NaN; ties share the mean rank
    assert z[0, 0] == pytest.approx(np.log(4) - 1) and z[2, 1] == pytest.approx(np.log(3) - 1)  # best: log n - 1
    assert np.nanmin(z) >= -1.0  # a failure costs at most what the worst rank costs
    many = log_rank(np.random.default_rng(0).standard_normal((2000, 1)))
    assert abs(float(many.mean())) < 0.01  # mean 0 whatever n: tasks of different sizes weigh alike


def test_logrank_space_and_cross_validation_report_tau_and_recall(history):
    from hf_emms.recall.select import cross_validate, select_config

    h, quality = history
    space = _space(h, scale="logrank", aggregate=0.5)
    u = space.vectors_for([h.meta[m] for m in h.models])
    s = space.score(u, space.task_vector(TaskText("imdb", "Movie reviews", ("bad", "good"))))
    assert weighted_tau(np.array([quality[m] for m in h.models]), s) > 0.8
    embed = _Memo(HashingEmbedder())
    tau, recall = cross_validate(h, embed, RecallConfig(), TransferSpace)
    assert tau > 0.8 and 0.0 <= recall <= 1.0
    _, report = select_config(h, embed, TransferSpace)
    assert "mean weighted tau" in report[0] and "top-3 in top-10" in report[0]


def test_cold_start_ranks_unseen_models_by_their_metadata(history):
    h, _ = history
    space = _space(h.without_models([m for m in h.models if m.endswith(("-0", "-1", "-2"))]))
    unseen = [ModelMeta("new/good-model-x", "good", ("GoodForSequenceClassification",), 5 * 10**6),
              ModelMeta("new/bad-model-y", "bad", ("BadForSequenceClassification",), 5 * 10**6),
              ModelMeta("new/mid-model-z", "mid", ("MidForSequenceClassification",), 5 * 10**6)]
    kept, _, reasons = shortlist(space, unseen, TaskText("x", "Topic of a question", ("a", "b")), k=3)
    assert [m.model_type for m in kept] == ["good", "mid", "bad"]
    assert all("never measured" in r for r in reasons)


def test_save_and_load_give_the_same_scores_and_refuse_foreign_files(history, tmp_path):
    h, _ = history
    space = _space(h, text_weight=0.5, transfer=0.5)
    path = space.save(tmp_path / "space.safetensors")
    again = TransferSpace.load(path)
    metas = [h.meta[m] for m in h.models[:5]] + [ModelMeta("new/roberta-base-tweets", "roberta")]
    task = TaskText("t", "Emotion of a tweet", ("anger", "joy"))
    np.testing.assert_allclose(again.score(again.vectors_for(metas), again.task_vector(task)),
                               space.score(space.vectors_for(metas), space.task_vector(task)), rtol=1e-5, atol=1e-5)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InvalidInputError, match="hf-emms recall --build"):
        TransferSpace.load(tmp_path / "junk.safetensors")
    with pytest.raises(InvalidInputError):
        TransferSpace.load(tmp_path / "absent.safetensors")


def test_recall_cost_is_one_product_whatever_the_number_of_candidates(history, monkeypatch):
    h, _ = history
    space = _space(h)
    calls = {"score": 0, "embed": 0}
    product = TransferSpace.score

    def counted_score(vectors, v):
        calls["score"] += 1
        return product(vectors, v)

    embed = space.embed.embed

    def counted_embed(texts):
        calls["embed"] += 1
        return embed(texts)

    monkeypatch.setattr(TransferSpace, "score", staticmethod(counted_score))
    monkeypatch.setattr(space.embed, "embed", counted_embed)
    counts = []
    for n in (10, 3000):
        calls.update(score=0, embed=0)
        pool = [ModelMeta(f"org/cand-{n}-{i}", "good" if i % 2 else "bad", num_parameters=10**6 + i) for i in range(n)]
        kept, scores, _ = shortlist(space, pool, TaskText(f"task-{n}", "Movie review sentiment", ("neg", "pos")), k=5)
        assert len(kept) == 5 and np.all(np.diff(scores) <= 0)
        counts.append(dict(calls))
    # One product, and at most three batched embedder calls (model texts, head labels, the task; fewer when the
    # memo has them) at any pool size.
    assert all(c["score"] == 1 and c["embed"] <= 3 for c in counts), counts


def test_shortlist_checks_k_and_keeps_the_given_objects(history):
    h, _ = history
    space = _space(h)
    pool = ["org0/good-model-0", "org1/bad-model-1"]
    kept, scores, reasons = shortlist(space, pool, "reviews", k=5)
    assert kept == ["org0/good-model-0", "org1/bad-model-1"] and len(scores) == len(reasons) == 2
    for k in (0, -1, 2.5, True):
        with pytest.raises(InvalidInputError, match="k must be"):
            shortlist(space, pool, "reviews", k=k)
    assert shortlist(space, [], "reviews", k=3)[0] == []


def test_store_and_model_index_become_history():
    records = [{"row": {"model": "a/x", "emms": -0.1, "status": "ok"}, "dataset": {"id": "imdb"}},
               {"row": {"model": "a/y", "emms": -0.3, "status": "ok"}, "dataset": {"id": "imdb"}},
               {"row": {"model": "a/z", "status": "skipped"}, "dataset": {"id": "imdb"}},
               {"row": {"model": "a/x", "emms": -0.2}, "dataset": {"id": "glue", "config": "sst2"}}]
    store = history_from_store(records)
    assert store.tasks == ("glue/sst2", "imdb") and store.column("imdb") == {"a/x": -0.1, "a/y": -0.3}
    named = records + [  # a local folder (its revision a content digest) and a repo ranked at two revisions
        {"row": {"model": "run1/model", "revision": "sha256:" + "0" * 64, "emms": -0.2}, "dataset": {"id": "imdb"}},
        {"row": {"model": "a/v@" + "1" * 12, "revision": "1" * 40, "emms": -0.4}, "dataset": {"id": "imdb"}}]
    assert history_from_store(named).column("imdb") == {"a/x": -0.1, "a/y": -0.3, "a/v": -0.4}
    cards = {"a/x": {"model-index": [{"name": "x", "results": [{"dataset": {"type": "imdb"}, "metrics": [
        {"type": "accuracy", "value": 0.9}, {"type": "f1", "value": 0.1}]}]}]}, "a/w": {"model-index": "garbage"}}
    index = history_from_model_index(cards)
    assert index.column("imdb") == {"a/x": 0.9} and index.messages
    both = merge(store, index)
    assert set(both.tasks) == {"glue/sst2", "imdb"} and set(both.column("imdb")) == {"a/x", "a/y"}


def test_a_task_measured_by_two_sources_does_not_depend_on_their_scales():
    """A past ranking's EMMS (about -1 to 0) and a card's accuracy (0 to 1) on the same dataset were averaged raw:
    a model measured only by the card outranked every model of the store. Now the merged order is the same whatever
    affine scale either source uses."""
    def store(shift, scale):
        emms = {"a/x": -0.1, "a/y": -0.3, "a/z": -0.2}
        return history_from_store([{"row": {"model": m, "emms": shift + scale * v, "status": "ok"},
                                    "dataset": {"id": "imdb"}} for m, v in emms.items()])

    cards = history_from_model_index({m: {"model-index": [{"results": [{"dataset": {"type": "imdb"}, "metrics": [
        {"type": "accuracy", "value": v}]}]}]} for m, v in {"a/w": 0.95, "a/x": 0.80, "a/y": 0.90}.items()})

    def order(h):
        column = h.column("imdb")
        return sorted(column, key=column.get)

    orders = {tuple(order(merge(store(shift, scale), cards))) for shift, scale in ((0, 1), (-5, 1), (3, 10))}
    assert len(orders) == 1 and set(next(iter(orders))) == {"a/w", "a/x", "a/y", "a/z"}
    single = merge(store(0, 1))  # one source: its scores as they are
    assert single.column("imdb") == {"a/x": -0.1, "a/y": -0.3, "a/z": -0.2}


def test_card_accuracies_in_percent_join_those_in_fractions():
    """Cards write accuracy as 0.91 or as 91.0: standardised together, every percent ranked above every fraction."""
    def card(value):
        return {"model-index": [{"results": [{"dataset": {"type": "imdb"}, "metrics": [
            {"type": "accuracy", "value": value}]}]}]}

    index = history_from_model_index({"a/frac": card(0.93), "a/pct": card(88.5), "a/one": card(1.0),
                                      "a/bad": card(250.0), "a/neg": card(-3)})
    assert index.column("imdb") == {"a/frac": 0.93, "a/pct": 0.885, "a/one": 1.0}  # 250 and -3 fit no reading
    best = max(index.column("imdb").items(), key=lambda kv: kv[1])[0]
    assert best == "a/one" and index.column("imdb")["a/pct"] < index.column("imdb")["a/frac"]


def test_id_text_keeps_the_words_of_a_model_id():
    assert id_text("org/distilbert-base-uncased-finetuned-emotion") == "distilbert base uncased finetuned emotion"
    assert id_text("Jeevesh8/bert_ft_qqp-33") == "bert ft qqp"
    assert id_text("cardiffnlp/twitter-roberta-base-2021-124m") == "twitter roberta base 124m"


def test_memo_embeds_each_text_once():
    seen = []

    class Counting(HashingEmbedder):
        def __call__(self, texts):
            seen.extend(texts)
            return super().__call__(texts)

    memo = _Memo(Counting())
    a = memo(["x y", "z"])
    b = memo(["z", "x y", "new"])
    assert seen == ["x y", "z", "new"] and np.array_equal(a[0], b[1])


def test_cli_builds_a_space_and_prints_a_short_list(tmp_path, capsys):
    from hf_emms.cli import main

    write_history(tmp_path / "history", n_models=12, tasks=dict(list(TASKS.items())[:3]))
    space = tmp_path / "space.safetensors"
    assert main(["recall", "--build", "--history", str(tmp_path / "history"), "--space", str(space)]) == 0
    assert space.is_file()
    capsys.readouterr()
    assert main(["recall", "Sentiment of tweets", "--describe", "--classes", "negative", "positive", "--space",
                 str(space), "-k", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and all("good-model" in r["model"] for r in rows) and "measured history" in rows[0]["signal"]
    assert main(["recall", "x", "--describe", "--space", str(tmp_path / "none.safetensors")]) == 2
    # a mistyped --history is refused, and the space already saved is kept as it was
    before = space.read_bytes()
    assert main(["recall", "--build", "--history", str(tmp_path / "histroy"), "--space", str(space)]) == 2
    assert "--history" in capsys.readouterr().err and space.read_bytes() == before
    # a folder that exists but holds no history (no records.csv) would replace it with the metadata prior
    (tmp_path / "elsewhere").mkdir()
    assert main(["recall", "--build", "--history", str(tmp_path / "elsewhere"), "--space", str(space)]) == 2
    err = capsys.readouterr().err
    assert "hold no measured scores" in err and "records.csv is missing" in err
    assert "learned from 3 tasks, is kept" in err
    assert space.read_bytes() == before
    # --space naming a file that is not a space (a data file, a folder) is never written over, and said so at once
    data = tmp_path / "train.csv"
    data.write_text("text,label\nok,1\n")
    for target in (data, tmp_path / "elsewhere"):
        assert main(["recall", "--build", "--history", str(tmp_path / "history"), "--space", str(target)]) == 2
        assert "exists and is not a recall space: nothing was written over it" in capsys.readouterr().err
    assert data.read_text() == "text,label\nok,1\n"
    assert main(["recall", "--build", "--history", str(tmp_path / "history"), "--space", str(space)]) == 0  # rebuilt


def test_cli_without_a_space_ranks_a_given_pool_by_metadata_and_says_so(tmp_path, monkeypatch, capsys):
    """Before any `--build`: a pool is short-listed by the metadata prior with a note saying what that is worth;
    with no pool there is nothing to rank, and the message says how to get either."""
    from hf_emms.cli import main

    monkeypatch.setenv("HF_EMMS_CACHE", str(tmp_path / "cache"))
    assert main(["recall", "intent of a support message", "--describe"]) == 2
    assert "no transfer space at" in capsys.readouterr().err
    assert main(["recall", "intent of a support message", "--describe", "--ids", "org/b", "org/a", "--json"]) == 0
    out = capsys.readouterr()
    assert [r["model"] for r in json.loads(out.out)] == ["org/b", "org/a"]  # nothing tells them apart: order kept
    assert "no transfer space" in out.err and "little better than chance" in out.err
    assert not (tmp_path / "cache" / "recall").exists()  # nothing written without --build
