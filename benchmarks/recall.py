"""Recall benchmark: is the transfer space a good first phase, and does it scale to the Hub?

Part 1, quality on real history (``--history DIR``: records.csv, models.csv, datasets.csv, logme.csv optional):
  leave-one-dataset-out   for each dataset t, the space is fitted on the history without any of t's records
                          (``read_history(exclude_tasks=[t])``; its LogME scores are never read by the space), its
                          hyperparameters chosen by leave-one-task-out CV on the other datasets only; the models
                          measured on t are scored from t's text (description + class names) and their metadata
  metrics                 weighted Kendall tau (``scipy.stats.weightedtau``, defaults: as benchmarks/quality.py)
                          against t's accuracies; recall of the true top-3 within the predicted top-10
  baselines               history_mean (mean z-scored accuracy on the other datasets), params (parameter
                          count), logme (the given LogME on t; datasets with >= 10 LogME pairs), random (mean
                          over 100 permutations), all on the same models
  noise ceiling           records.csv holds repeated runs of some (model, dataset) pairs (same recipe and seed); their
                          differences give the run-to-run noise sd s (robust: 1.4826 median |difference| / sqrt 2).
                          Two reference predictors are simulated (200 draws per dataset): a re-run of every
                          fine-tuning (the measured accuracy + noise of sd s sqrt 2) and a perfect predictor of the
                          expected accuracy (+ noise of sd s); what no recommender can be expected to beat
  cold start              5 draws hide 20% of the models from training entirely (rows and fit); their scores on each
                          dataset come from metadata alone; baselines model-type mean (the visible models' mean
                          z-score of the same type on that dataset) and params
Part 2, scale (``--skip-scale`` to skip): a local Hub-API server (tests/hub_server.py) holding ``--cards`` generated
  model cards (ids, tags, configs, safetensors headers; a model-index in every 10th README); in a subprocess with
  HF_ENDPOINT pointing at it (this script again, --scale-worker): load the saved space, ``hub.scan(tags=...)`` over all cards, ``recall.shortlist``;
  wall time and peak RSS of that process, and how many scanned candidates carry model-index results.

Run:  python benchmarks/recall.py [--history DIR] [--skip-scale] [--cards 10000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_HISTORY = ROOT.parent / "shared" / "data" / "transfer_history"


def _wtau(truth: np.ndarray, score: np.ndarray) -> float:
    """The project's weighted tau (scipy's, as benchmarks/quality.py); the package's numpy twin without scipy."""
    ok = np.isfinite(truth) & np.isfinite(score)
    if ok.sum() < 2 or np.ptp(score[ok]) == 0:
        return float("nan")
    try:
        from scipy.stats import weightedtau
    except ImportError:
        from hf_emms.recall import weighted_tau

        return weighted_tau(truth[ok], score[ok])
    return float(weightedtau(truth[ok], score[ok]).statistic)


def _mean(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _zscores(history, tasks) -> dict[str, float]:
    """Each model's mean z-scored score over ``tasks`` (the history-mean baseline)."""
    cols = [history.tasks.index(t) for t in tasks]
    s = history.scores[:, cols]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a model measured on none of ``tasks`` has no mean
        z = (s - np.nanmean(s, 0)) / np.nanstd(s, 0)
        mean = np.nanmean(z, 1)
    return {m: float(v) for m, v in zip(history.models, mean) if np.isfinite(v)}


def history_part(folder: Path, embed, seed: int = 0) -> dict:
    from hf_emms.recall import ModelMeta, TransferSpace, read_history, read_logme, top_k_recall

    full = read_history(folder)
    if not full.tasks:
        return {"error": "; ".join(full.messages)}
    logme = read_logme(folder)
    rng = np.random.default_rng(seed)
    per, base = {}, {b: {} for b in ("history_mean", "params", "logme", "random")}
    for task in full.tasks:
        truth = full.column(task)
        train = read_history(folder, exclude_tasks=[task])  # the held-out dataset's records are never read
        space = TransferSpace.fit(train, embed=embed, config="auto")
        models = sorted(truth)
        t = np.array([truth[m] for m in models])
        s = space.score(space.vectors_for([full.meta.get(m) or ModelMeta(m) for m in models]),
                        space.task_vector(full.tasks_text[task]))
        per[task] = {"weighted_tau": _wtau(t, s), "top3_in_top10": top_k_recall(t, s), "n_models": len(models),
                     "chosen": space.messages[-1] if space.messages else ""}
        hm = _zscores(full, [x for x in full.tasks if x != task])
        params = {m: float(full.meta[m].num_parameters) for m in models if m in full.meta
                  and full.meta[m].num_parameters}
        lg = {m: logme[(m, task)] for m in models if (m, task) in logme}
        for name, scores in (("history_mean", hm), ("params", params), ("logme", lg if len(lg) >= 10 else {})):
            v = np.array([scores.get(m, np.nan) for m in models])
            base[name][task] = {"weighted_tau": _wtau(t, v) if np.isfinite(v).sum() >= 10 else float("nan"),
                                "top3_in_top10": top_k_recall(t, v) if np.isfinite(v).sum() >= 10 else float("nan")}
        perms = [rng.permutation(len(models)).astype(float) for _ in range(100)]
        base["random"][task] = {"weighted_tau": _mean(_wtau(t, p) for p in perms),
                                "top3_in_top10": _mean(top_k_recall(t, p) for p in perms)}
    summary = {k: _mean(r[k] for r in per.values()) for k in ("weighted_tau", "top3_in_top10")}
    return {"mean_weighted_tau": summary["weighted_tau"], "top3_in_top10": summary["top3_in_top10"],
            "per_dataset": per, "versus": {b: paired(per, rows) for b, rows in base.items()},
            "baselines": {b: {"mean_weighted_tau": _mean(r["weighted_tau"] for r in rows.values()),
                              "top3_in_top10": _mean(r["top3_in_top10"] for r in rows.values()),
                              "datasets": sum(np.isfinite(r["weighted_tau"]) for r in rows.values()),
                              "per_dataset": rows} for b, rows in base.items()}}


def paired(per: dict, baseline: dict) -> dict:
    """Recall minus a baseline, paired by held-out dataset: for each figure the mean difference over the datasets where
    both are finite, its standard error sd / sqrt(T), T, and on how many datasets recall is above (a gap below about
    two standard errors is not resolved by these datasets)."""
    out = {}
    for key in ("weighted_tau", "top3_in_top10"):
        d = np.array([per[t][key] - baseline[t][key] for t in per if t in baseline
                      and np.isfinite(per[t][key]) and np.isfinite(baseline[t][key])], float)
        out[key] = {"difference": float(d.mean()) if d.size else float("nan"),
                    "se": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan"),
                    "datasets": int(d.size), "above_on": int((d > 0).sum()), "equal_on": int((d == 0).sum())}
    return out


def noise_ceiling(folder: Path, draws: int = 200, seed: int = 0) -> dict:
    """Tau and top-3-in-top-10 recall of a re-run and of a perfect expected-accuracy predictor (module docstring)."""
    import pandas as pd

    from hf_emms.recall import read_history, top_k_recall

    records = pd.read_csv(folder / "records.csv")
    if "method" in records.columns:
        records = records[records["method"] == "full"]
    runs = records.groupby(["model", "dataset"])["eval_accuracy"]
    diffs = runs.apply(lambda v: v.iloc[0] - v.iloc[1] if len(v) >= 2 else np.nan).dropna()
    if len(diffs) < 10:
        return {"error": f"{len(diffs)} repeated runs: too few to estimate the run-to-run noise"}
    sd = float(1.4826 * np.median(np.abs(diffs)) / np.sqrt(2))
    full, rng, out = read_history(folder), np.random.default_rng(seed), {}
    for name, scale in (("rerun", sd * np.sqrt(2)), ("expected_accuracy", sd)):
        taus, recalls = [], []
        for task in full.tasks:
            t = np.array(list(full.column(task).values()))
            for d in range(draws):
                p = t + scale * rng.standard_normal(len(t))
                recalls.append(top_k_recall(t, p))
                if d < 20:  # tau is O(n^2): 20 draws pin its mean well enough
                    taus.append(_wtau(t, p))
        out[name] = {"mean_weighted_tau": _mean(taus), "top3_in_top10": _mean(recalls)}
    return {"run_sd": sd, "repeated_pairs": int(len(diffs)), **out}


def cold_start_part(folder: Path, embed, draws: int = 5, hidden: float = 0.2, seed: int = 0) -> dict:
    from hf_emms.recall import TransferSpace, read_history

    full = read_history(folder)
    if not full.tasks:
        return {"error": "; ".join(full.messages)}
    measured = [m for i, m in enumerate(full.models) if np.isfinite(full.scores[i]).any()]
    rng = np.random.default_rng(seed)
    taus, base = [], {"model_type_mean": [], "params": []}
    for _ in range(draws):
        hide = set(rng.choice(measured, size=int(round(hidden * len(measured))), replace=False).tolist())
        train = full.without_models(hide)  # rows and metadata of the hidden models never seen by the fit
        space = TransferSpace.fit(train, embed=embed, config="auto")
        metas = {m: full.meta.get(m) for m in hide}
        for task in full.tasks:
            truth = {m: v for m, v in full.column(task).items() if m in hide}
            if len(truth) < 5:
                continue
            models = sorted(truth)
            t = np.array([truth[m] for m in models])
            u = space.vectors_for([metas[m] for m in models])
            taus.append(_wtau(t, space.score(u, space.task_vector(full.tasks_text[task]))))
            z = _zscores(train, [task])
            by_type: dict[str, list[float]] = {}
            for m, v in z.items():
                by_type.setdefault(train.meta[m].model_type if m in train.meta else "", []).append(v)
            overall = _mean(z.values())
            typ = np.array([_mean(by_type.get(metas[m].model_type, [])) if by_type.get(metas[m].model_type)
                            else overall for m in models])
            base["model_type_mean"].append(_wtau(t, typ))
            base["params"].append(_wtau(t, np.array([float(metas[m].num_parameters or np.nan) for m in models])))
    return {"mean_weighted_tau": _mean(taus), "draws": draws, "hidden_fraction": hidden, "cells": len(taus),
            "baselines": {k: _mean(v) for k, v in base.items()}}


_ORGS = ("acme", "nlp-lab", "textminer", "deepsent", "uni-nlp", "opencls", "tweetai", "newsbot", "bio-nlp", "legalml")
_BASES = (("bert-base-uncased", "bert", "BertForSequenceClassification", 109_483_778),
          ("distilbert-base-uncased", "distilbert", "DistilBertForSequenceClassification", 66_955_010),
          ("roberta-base", "roberta", "RobertaForSequenceClassification", 124_647_170),
          ("roberta-large", "roberta", "RobertaForSequenceClassification", 355_361_794),
          ("xlm-roberta-base", "xlm-roberta", "XLMRobertaForSequenceClassification", 278_045_186),
          ("electra-small-discriminator", "electra", "ElectraForSequenceClassification", 13_549_314),
          ("albert-base-v2", "albert", "AlbertForSequenceClassification", 11_685_122),
          ("deberta-v3-base", "deberta-v2", "DebertaV2ForSequenceClassification", 184_423_682),
          ("bertweet-base", "roberta", "RobertaForSequenceClassification", 134_899_970),
          ("MiniLM-L12-H384-uncased", "bert", "BertForSequenceClassification", 33_360_770))
_SOURCES = ("sst2", "imdb", "emotion", "ag-news", "cola", "mnli", "qqp", "tweet-sentiment", "hate-speech", "yelp")


def generate_cards(hub, n: int, seed: int = 0) -> None:
    """``n`` realistic text-classification repos: ids, tags, config, a safetensors header (the parameter count), and
    for every 10th a README with a model-index result."""
    import struct

    rng = np.random.default_rng(seed)
    for i in range(n):
        base, mtype, arch, params = _BASES[rng.integers(len(_BASES))]
        source = _SOURCES[rng.integers(len(_SOURCES))]
        repo = f"{_ORGS[rng.integers(len(_ORGS))]}/{base}-finetuned-{source}-{i}"
        header = json.dumps({"w": {"dtype": "F32", "shape": [int(params)], "data_offsets": [0, 4 * int(params)]}})
        files = {"config.json": json.dumps({"model_type": mtype, "architectures": [arch]}),
                 "model.safetensors": struct.pack("<Q", len(header)) + header.encode()}
        if i % 10 == 0:
            files["README.md"] = (f"---\nmodel-index:\n- name: {repo}\n  results:\n  - task: {{type: text-classification}}"
                                  f"\n    dataset: {{name: {source}, type: {source}}}\n    metrics:\n    - {{type: accuracy, "
                                  f"value: {0.8 + 0.15 * rng.random():.4f}}}\n---\n")
        hub.add_model(repo, files=files, tags=["text-classification", "en", f"dataset:{source}"],
                      pipeline_tag="text-classification", license="apache-2.0", downloads=int(rng.integers(10**6)))


def scale_part(space_path: Path, cards: int, timeout: float = 900) -> dict:
    """Serve ``cards`` generated repos from a local Hub; scan and recall in a fresh process (HF_ENDPOINT must be set
    before huggingface_hub is imported there), which reports its own wall time and peak RSS."""
    sys.path.insert(0, str(ROOT / "tests"))
    from hub_server import HubServer

    hub = HubServer().start()
    try:
        generate_cards(hub, cards)
        with tempfile.TemporaryDirectory(prefix="recall-scale-") as tmp:
            out = Path(tmp) / "scale.json"
            env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(Path(tmp) / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
                       HF_EMMS_CACHE=str(Path(tmp) / "cache"), HF_HUB_DISABLE_XET="1")
            env.pop("HF_TOKEN", None)
            cmd = [sys.executable, __file__, "--scale-worker", str(space_path), "--cards", str(cards), "--json",
                   str(out)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                lines = proc.stderr.strip().splitlines()
                return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
            return json.loads(out.read_text())
    finally:
        hub.stop()


def scale_worker(space_path: Path, cards: int, out: Path) -> None:
    """Load the space, scan every card, short-list 50; time each step and the peak RSS of this process."""
    import resource

    start = time.perf_counter()
    from hf_emms.hub import scan
    from hf_emms.recall import TaskText, TransferSpace, shortlist

    space = TransferSpace.load(space_path)
    result = scan(tags=["text-classification"], limit=cards, dedupe=False, progress=False)
    scanned = time.perf_counter()
    task = TaskText("imdb", "Movie review sentiment", ("negative", "positive"))
    kept, scores, reasons = shortlist(space, result.kept, task, k=50)
    done = time.perf_counter()
    v = space.task_vector(task)
    u = np.random.default_rng(0).standard_normal((len(result.kept), space.dim)).astype(np.float32)
    product = time.perf_counter()
    space.score(u, v)
    product = time.perf_counter() - product
    out.write_text(json.dumps({"cards": len(result.kept), "seconds": done - start, "scan_seconds": scanned - start,
                               "recall_seconds": done - scanned, "product_seconds": product,
                               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                               "dim": space.dim, "top": [c.model_id for c in kept[:5]], "reason": reasons[0],
                               "with_eval_results": sum(bool(c.eval_results) for c in result.kept)}))


def _fmt(x) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.3f}"


def print_report(report: dict) -> None:
    h = report.get("history", {})
    if "per_dataset" in h:
        b = h["baselines"]
        print("\n## Recall quality: leave-one-dataset-out, weighted Kendall tau (top-3 in top-10)\n")
        print("| dataset | models | recall | history_mean | params | logme | random |")
        print("|:---|---:|---:|---:|---:|---:|---:|")
        for task, r in h["per_dataset"].items():
            cells = [f"{_fmt(b[k]['per_dataset'][task]['weighted_tau'])} ({_fmt(b[k]['per_dataset'][task]['top3_in_top10'])})"
                     for k in ("history_mean", "params", "logme", "random")]
            print(f"| {task} | {r['n_models']} | {_fmt(r['weighted_tau'])} ({_fmt(r['top3_in_top10'])}) | "
                  + " | ".join(cells) + " |")
        cells = [f"{_fmt(b[k]['mean_weighted_tau'])} ({_fmt(b[k]['top3_in_top10'])})" for k in
                 ("history_mean", "params", "logme", "random")]
        print(f"| **mean** | | **{_fmt(h['mean_weighted_tau'])} ({_fmt(h['top3_in_top10'])})** | " + " | ".join(cells)
              + " |")
        print(f"\n(logme: mean over the {b['logme']['datasets']} datasets with >= 10 LogME pairs.) Targets: tau >= 0.57,"
              " top-3 in top-10 >= 0.65.")
        print("\nRecall minus each baseline, paired by held-out dataset (mean ± SE over datasets; above/equal on):\n")
        print("| baseline | weighted tau | top-3 in top-10 |")
        print("|:---|---:|---:|")
        for k, v in h.get("versus", {}).items():
            cells = [f"{x['difference']:+.3f} ± {x['se']:.3f} ({x['above_on']}/{x['equal_on']} of {x['datasets']})"
                     for x in (v["weighted_tau"], v["top3_in_top10"])]
            print(f"| {k} | " + " | ".join(cells) + " |")
    n = report.get("noise_ceiling", {})
    if "run_sd" in n:
        print(f"\nNoise ceiling (run-to-run sd {n['run_sd']:.4f} from {n['repeated_pairs']} repeated runs): a re-run of "
              f"every fine-tuning {_fmt(n['rerun']['mean_weighted_tau'])} ({_fmt(n['rerun']['top3_in_top10'])}); "
              f"the expected accuracy known exactly {_fmt(n['expected_accuracy']['mean_weighted_tau'])} "
              f"({_fmt(n['expected_accuracy']['top3_in_top10'])}).")
    c = report.get("cold_start", {})
    if "mean_weighted_tau" in c:
        print(f"\n## Cold start ({c['draws']} draws, {c['hidden_fraction']:.0%} of the models hidden): weighted tau on "
              f"the hidden models {_fmt(c['mean_weighted_tau'])}; model-type mean "
              f"{_fmt(c['baselines']['model_type_mean'])}, params {_fmt(c['baselines']['params'])} (target >= 0.30)")
    s = report.get("scale", {})
    if "seconds" in s:
        print(f"\n## Scale: {s['cards']} cards, scan {s['scan_seconds']:.1f} s + recall {s['recall_seconds']:.1f} s "
              f"(of which the product {1000 * s['product_seconds']:.1f} ms) = {s['seconds']:.1f} s, peak RSS "
              f"{s['peak_rss_mb']:.0f} MB (targets <= 60 s, <= 1024 MB); model-index results read from "
              f"{s.get('with_eval_results', '-')} cards")
    for part in ("history", "noise_ceiling", "cold_start", "scale"):
        if "error" in report.get(part, {}):
            print(f"\n{part}: not measured: {report[part]['error']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=Path, default=DEFAULT_HISTORY, help="transfer-history folder")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--cards", type=int, default=10_000, help="generated model cards of the scale part")
    parser.add_argument("--draws", type=int, default=5, help="cold-start draws")
    parser.add_argument("--embedder", choices=("minilm", "hashing"), default="minilm")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--scale-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scale_worker:
        scale_worker(args.scale_worker, args.cards, args.json)
        return 0
    from hf_emms.recall import HashingEmbedder, MiniLMEmbedder, TransferSpace, read_history
    from hf_emms.recall.space import _Memo

    embed = _Memo(MiniLMEmbedder() if args.embedder == "minilm" else HashingEmbedder())
    config = {"history": str(args.history), "embedder": embed.name, "cards": args.cards, "draws": args.draws,
              "skip_scale": args.skip_scale, "python": sys.version.split()[0], "cpus": os.cpu_count()}
    start = time.perf_counter()
    report = {"history": history_part(args.history, embed), "cold_start": cold_start_part(args.history, embed,
                                                                                           args.draws),
              "noise_ceiling": noise_ceiling(args.history)}
    if not args.skip_scale:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "space.safetensors"
            TransferSpace.fit(read_history(args.history), embed=embed, config="auto").save(path)
            report["scale"] = scale_part(path, args.cards)
    config["seconds"] = round(time.perf_counter() - start, 1)
    report["config"] = config
    print_report(report)
    text = json.dumps(report, indent=1, default=float)
    print("\n" + text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
