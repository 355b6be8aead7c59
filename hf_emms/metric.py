"""EMMS as a Hugging Face ``evaluate`` metric: what ``evaluate.load("emms")`` computes, and where it is found.

The evaluate module lives in ``spaces/emms/``, laid out as a publishable Space (``emms.py``, ``app.py``, a metric
card). It is a thin adapter whose ``_compute`` calls :func:`compute`, so the module, the Space's widget and the
Python API give the same numbers, equal to :func:`hf_emms.emms_score` on the same inputs.

Three ways to load it, all offline:

- ``evaluate.load("emms")`` from the ``spaces/`` folder of a checkout, ``evaluate.load("spaces/emms")`` from its root;
- :func:`load_metric` from any directory: the package carries the module as ``hf_emms._emms_space`` (a setuptools
  ``package-dir`` mapping of ``spaces/emms``, in editable installs and built wheels alike; no copy is kept);
- :func:`install_metric` (``hf-emms install-metric``) puts it in evaluate's module cache, where
  ``evaluate.load("emms")`` finds it from any directory.

Why the features are a keyword argument and not a declared input: evaluate sends every declared input through
Arrow and hands it to ``_compute`` as Python lists (35-75 s and 6.5 GB for 50,000 x 2,048 floats). Only the
references are declared; ``features=`` and the F-label arrays pass through ``compute`` untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InvalidInputError, MetricModuleError

# The input checks (metric_inputs) and finding or installing the evaluate module (metric_module) live apart; their
# names, private ones included, stay importable from here (noqa: re-exports).
from .metric_inputs import (  # noqa: F401
    _MAX_FLOAT_ID,
    _class_ids,
    _embed,
    _features,
    _references,
    _table_rows,
    _targets,
    check_references,
)
from .metric_module import (  # noqa: F401
    _CACHED_NAME,
    _MODULE_PACKAGE,
    _SCRIPT,
    _evaluate,
    install_metric,
    load_metric,
    metric_module_path,
)
from .options import check_choice, check_positive_int
from .solver import FeatureStats, emms_score
from .solver import logme as logme_score
from .solver.scores import RULES

__all__ = [
    "METRIC_LABEL_KINDS", "MetricModuleError", "check_references", "compute", "install_metric", "load_metric",
    "metric_module_path",
]

# The label kinds the metric takes (a subset of hf_emms.options.TASK_KINDS: class ids, per-sample F-labels of text,
# numbers). LABEL_KINDS is the old name, kept for imports.
METRIC_LABEL_KINDS = ("classification", "text", "regression")
LABEL_KINDS = METRIC_LABEL_KINDS


def compute(
    references: Sequence[Any],
    features: Any,
    *,
    class_embeddings: Any = None,
    label_embeddings: Any = None,
    class_names: Sequence[str] | None = None,
    encoders: Any = None,
    label_kind: str = "classification",
    label_options: Mapping[str, Any] | None = None,
    rule: str | None = None,
    sample_ids: Any = None,
    logme: bool = False,
    batch_size: int = 4096,
) -> dict[str, Any]:
    """EMMS of a candidate's features on a task's references: what the ``emms`` evaluate module returns.

    Parameters
    ----------
    references : sequence of length N
        One label per sample. ``label_kind="classification"``: class ids (integers, or integral floats up to
        2**53 as evaluate stores them) or class names (strings). With one-hot labels (no tables, names or
        encoders), ids other than 0..C-1 (5 and 10**8) stand for the classes present, which one-hot EMMS
        cannot tell apart from 0..C-1. ``"text"``: free texts (captions, answers), embedded
        per sample by ``encoders``. ``"regression"``: numbers, used as a one-column F-label. With
        ``label_embeddings`` they only fix N.
    features : array-like of shape (N, D1)
        The candidate's pooled features (numpy, torch on any device, or nested lists).
    class_embeddings : array-like of shape (C, D2), (K, C, D2), or a sequence of K (C, D2) arrays, optional
        Class-name F-labels: row ``c`` of each table belongs to class id ``c``, or to ``class_names[c]`` when
        the references are names. Without them and without ``encoders``, labels are one-hot (K = 1, D2 = C).
    label_embeddings : array-like of shape (N, D2, K) or (N, D2), optional
        Per-sample F-labels (any task), instead of class tables or encoders.
    class_names : sequence of C str, optional
        Names of class ids 0..C-1 (e.g. ``ClassLabel.names``). Needed to embed class ids with ``encoders``,
        and to say which row of ``class_embeddings`` is which name. Default for name references: their
        sorted distinct values.
    encoders : optional
        F-label encoders for :func:`hf_emms.labels.embed_labels` (ids, local folders or specs): embeds the
        class names (classification) or each reference (text).
    label_kind : {"classification", "text", "regression"}
    label_options : mapping, optional
        Further keyword arguments of :func:`hf_emms.labels.embed_labels` (``prompt``, ``width``,
        ``cache_dir``, ``device``, ...).
    rule : str, optional
        The EMMS rule (see :func:`hf_emms.emms`); None: the solver's default.
    sample_ids : array-like of int of shape (N,), optional
        Stable sample ids (e.g. dataset row indices): they choose the cross-validation folds, so that the
        score does not depend on the order of the samples (default: their positions). Give the copies of one input
        one id (they are then held out together); equal feature rows without ids are warned about.
    logme : bool
        Also return LogME (one-vs-rest classes, or the F-label columns). It needs the statistics, which
        :func:`hf_emms.emms_score` does not return, so it costs a second pass over the features.
    batch_size : int
        Samples folded into the statistics at a time (as in :func:`hf_emms.emms_score`).

    Returns
    -------
    dict
        ``{"emms": float, "emms_se": float or None, "emms_weights": list of K floats}``, and ``"logme": float``
        when asked. ``emms_se`` is the score's standard error over the cross-validation folds, corrected for the
        training data they share (:mod:`hf_emms.solver.uncertainty`): two candidates whose scores differ by less than
        about two of it are not
        told apart by these samples. None for rules without folds (``"in_sample"``, ``"gcv"``).

    Raises
    ------
    InvalidInputError
        Missing, empty or mismatched inputs, references of mixed types or with gaps, numbers that are not class
        ids (fractional, past 2**53, past 2**63 - 1), unknown class names or ids beyond the tables, or F-label
        options that contradict each other.
    """
    if rule is not None and rule not in RULES:
        raise InvalidInputError(f"rule must be one of {RULES}; got {rule!r}.")
    check_choice("label_kind", label_kind, METRIC_LABEL_KINDS)
    check_positive_int("batch_size", batch_size)
    x = _features(features, check_references(references))
    labels, tables, per_sample = _targets(
        references, class_embeddings, label_embeddings, class_names, encoders, label_kind, label_options or {}
    )
    # emms_score itself, so that the module's numbers are the solver's by construction.
    result = emms_score(
        x, labels, class_embeddings=tables, label_embeddings=per_sample, sample_ids=sample_ids,
        batch_size=batch_size, **({} if rule is None else {"rule": rule}),
    )
    se = float(result.se)  # the fold spread of the score (rules without folds: None)
    out: dict[str, Any] = {"emms": result.score, "emms_se": se if np.isfinite(se) else None,
                           "emms_weights": [float(w) for w in result.weights]}
    if logme:
        out["logme"] = logme_score(_accumulate(x, labels, per_sample, batch_size))
    return out

def _accumulate(features: Any, labels: np.ndarray | None, label_embeddings: Any, batch_size: int) -> FeatureStats:
    """The statistics of (features, targets), folded batch by batch (LogME's input)."""
    from tqdm.auto import tqdm

    stats = FeatureStats()
    for lo in tqdm(range(0, len(features), batch_size), desc="EMMS statistics", unit="batch", disable=None, leave=False):
        sl = slice(lo, lo + batch_size)
        stats.update(
            features[sl],
            labels=None if labels is None else labels[sl],
            label_embeddings=None if label_embeddings is None else label_embeddings[sl],
        )
    return stats
