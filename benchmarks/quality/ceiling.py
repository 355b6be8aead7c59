"""How high any selector's weighted tau can go against a noisy ground truth.

A fine-tuned accuracy is one draw (or the mean of a few seeds) of a random quantity: re-running the same recipe
with another seed moves it by the seed-to-seed standard deviation sigma. A ranking scored against it therefore
cannot reach tau = 1 even if it knew every model's expected accuracy; the closer the models are to each other
compared with sigma, the lower that ceiling. Two ceilings, simulated from the ground truth itself:

    exact   tau_w(a, a + e),  e_m ~ N(0, sigma^2 / n_m)       a selector that knows each expected accuracy
    rerun   tau_w(a, a + e),  e_m ~ N(0, 2 sigma^2 / n_m)     a second fine-tuning of every cell, same seed counts

a_m is model m's fine-tuned accuracy, the mean of its n_m seeds; sigma is pooled over the task's models that have
two or more seeds (root mean square of their standard deviations), and assumed the same for every model. The
observed a stands in for the expectation, so the ceilings are approximate. ``benchmarks/recall.py`` simulates its
ceilings the same way, from its history's repeated runs.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def pooled_seed_sd(std: Mapping[str, float | None], seeds: Mapping[str, Sequence[int] | None]) -> float | None:
    """Root mean square of the seed standard deviations of the models with >= 2 seeds; None when there is none."""
    sds = [float(std[m]) for m in std if std[m] is not None and len(seeds.get(m) or ()) >= 2]
    return float(np.sqrt(np.mean(np.square(sds)))) if sds else None


def noise_ceiling(truth: Mapping[str, float], std: Mapping[str, float | None],
                  seeds: Mapping[str, Sequence[int] | None], *, draws: int = 1000,
                  seed: int = 0) -> dict[str, float] | None:
    """The ``exact`` and ``rerun`` ceilings of weighted tau on one task (module docstring), and ``sigma``.

    Parameters
    ----------
    truth : mapping of model -> fine-tuned accuracy (mean over its seeds)
    std : mapping of model -> seed standard deviation (None with one seed)
    seeds : mapping of model -> the seeds behind the accuracy
    draws : int
        Simulated noise draws; the ceilings are their mean tau.

    Returns
    -------
    dict or None
        ``{"exact", "rerun", "sigma"}``; None when no model has two seeds (sigma unknown).
    """
    from scipy.stats import weightedtau

    sigma = pooled_seed_sd(std, seeds)
    if sigma is None:
        return None
    models = sorted(truth)
    acc = np.array([truth[m] for m in models], float)
    n = np.array([max(1, len(seeds.get(m) or ())) for m in models], float)
    rng = np.random.default_rng(seed)
    out = {"sigma": sigma}
    for name, scale in (("exact", 1.0), ("rerun", 2.0)):
        noise = rng.standard_normal((draws, len(models))) * sigma * np.sqrt(scale / n)
        out[name] = float(np.mean([weightedtau(acc, acc + e).statistic for e in noise]))
    return out


def rerun_gaps(truth: Mapping[str, float], std: Mapping[str, float | None], seeds: Mapping[str, Sequence[int] | None],
               scores: Mapping[str, Mapping[str, float]], selectors: Sequence[str], *, reference: str = "emms",
               draws: int = 500, seed: int = 0) -> dict[str, dict[str, float]] | None:
    """Each selector's weighted tau minus the ``reference``'s on one task, and how it moves under a second
    fine-tuning: the same noise as the ``rerun`` ceiling (a_m + e_m, e_m ~ N(0, 2 sigma^2 / n_m)), drawn once per
    simulation and shared by every selector, so the gaps are paired.

    Parameters
    ----------
    truth, std, seeds : as :func:`noise_ceiling`
    scores : mapping of model -> {selector: score}
    selectors : the selectors to compare with ``reference`` (each over the models both of them score)

    Returns
    -------
    dict or None
        selector -> ``{"gap", "rerun_mean", "rerun_sd", "n_models"}``: the observed gap, and its mean and standard
        deviation over the simulated re-runs; None when no model has two seeds (sigma unknown) or the reference
        scores fewer than two models.
    """
    from scipy.stats import weightedtau

    sigma = pooled_seed_sd(std, seeds)

    def scored(sel: str) -> set[str]:
        return {m for m in truth if (scores.get(m) or {}).get(sel) is not None and np.isfinite(scores[m][sel])}

    reference_models = scored(reference)
    if sigma is None or len(reference_models) < 2:
        return None
    models = sorted(truth)
    acc = np.array([truth[m] for m in models], float)
    n = np.array([max(1, len(seeds.get(m) or ())) for m in models], float)
    noise = np.random.default_rng(seed).standard_normal((draws, len(models))) * sigma * np.sqrt(2.0 / n)
    out = {}
    for sel in selectors:
        both = scored(sel) & reference_models
        keep = [i for i, m in enumerate(models) if m in both]
        if sel == reference or len(keep) < 2:
            continue
        a, b = ([float(scores[models[i]][name]) for i in keep] for name in (sel, reference))

        def gap(x: np.ndarray) -> float:
            return float(weightedtau(x, a).statistic - weightedtau(x, b).statistic)

        sims = np.array([gap(acc[keep] + e[keep]) for e in noise])
        out[sel] = {"gap": gap(acc[keep]), "rerun_mean": float(sims.mean()), "rerun_sd": float(sims.std(ddof=1)),
                    "n_models": len(keep)}
    return out


def mean_ceiling(ceilings: Sequence[Mapping[str, float] | None]) -> dict[str, float] | None:
    """The mean ``exact`` and ``rerun`` ceilings over the tasks that have one (``None`` entries left out), with their
    count ``n_tasks``; None when no task has one."""
    known = [c for c in ceilings if c]
    if not known:
        return None
    return {k: float(np.mean([c[k] for c in known])) for k in ("exact", "rerun")} | {"n_tasks": len(known)}
