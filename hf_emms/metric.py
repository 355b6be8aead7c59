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

import hashlib
import importlib.util
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._io import atomic_dir
from .errors import InvalidInputError, MetricModuleError
from .options import check_choice, check_positive_int
from .solver import FeatureStats, emms_score
from .solver import logme as logme_score
from .solver.scores import RULES

if TYPE_CHECKING:
    import evaluate

__all__ = [
    "METRIC_LABEL_KINDS", "MetricModuleError", "check_references", "compute", "install_metric", "load_metric",
    "metric_module_path",
]

# The label kinds the metric takes (a subset of hf_emms.options.TASK_KINDS: class ids, per-sample F-labels of text,
# numbers). LABEL_KINDS is the old name, kept for imports.
METRIC_LABEL_KINDS = ("classification", "text", "regression")
LABEL_KINDS = METRIC_LABEL_KINDS

_MODULE_PACKAGE = "hf_emms._emms_space"  # spaces/emms, as the wheel and the editable install map it
_SCRIPT = "emms.py"
# evaluate.load("emms") looks in its module cache under this name after the Hub (see CachedEvaluationModuleFactory).
_CACHED_NAME = "evaluate-metric--emms"
# Floats hold every whole number exactly up to 2**53; past it, two class ids can be the same float.
_MAX_FLOAT_ID = 2**53


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
        score does not depend on the order of the samples (default: their positions).
    logme : bool
        Also return LogME (one-vs-rest classes, or the F-label columns). It needs the statistics, which
        :func:`hf_emms.emms_score` does not return, so it costs a second pass over the features.
    batch_size : int
        Samples folded into the statistics at a time (as in :func:`hf_emms.emms_score`).

    Returns
    -------
    dict
        ``{"emms": float, "emms_weights": list of K floats}``, and ``"logme": float`` when asked.

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
    out: dict[str, Any] = {"emms": result.score, "emms_weights": [float(w) for w in result.weights]}
    if logme:
        out["logme"] = logme_score(_accumulate(x, labels, per_sample, batch_size))
    return out


def check_references(references: Any) -> int:
    """The number of references, when they are a non-empty sequence; else :class:`InvalidInputError`.

    The ``emms`` evaluate module calls it before handing anything to ``evaluate`` (which fails on an empty list
    with an IndexError, and on a missing one with an error about its cache files).
    """
    if references is None:
        raise InvalidInputError("references= is required: one label per sample, in the order of the feature rows.")
    if isinstance(references, (str, bytes, Mapping)) or not hasattr(references, "__len__"):
        raise InvalidInputError(
            f"references must be a sequence with one label per sample (a list or an array); got "
            f"{type(references).__name__}."
        )
    try:
        n = len(references)
    except TypeError:  # a 0-d array
        raise InvalidInputError("references must be a sequence with one label per sample; got a single value.") from None
    if n == 0:
        raise InvalidInputError("references are empty: EMMS needs one label per sample, at least two samples.")
    return n


def metric_module_path() -> Path:
    """The folder of the evaluate module this installation carries (``spaces/emms`` in a source checkout).

    Raises
    ------
    MetricModuleError
        When this installation of hf-emms was built without the module.
    """
    spec = importlib.util.find_spec(_MODULE_PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations or ()), "")) if spec else None
    if folder is None or not (folder / _SCRIPT).is_file():
        raise MetricModuleError(
            "this installation of hf-emms does not carry the EMMS evaluate module (package "
            f"{_MODULE_PACKAGE}). Reinstall it (`pip install -e .` in a checkout, or the released wheel)."
        )
    return folder


def load_metric(**load_kwargs: Any) -> "evaluate.EvaluationModule":
    """``evaluate.load`` of the EMMS module carried by this installation, from any working directory.

    Parameters
    ----------
    **load_kwargs
        Passed to :func:`evaluate.load` (``experiment_id``, ``keep_in_memory``, ``cache_dir``, ...).

    Returns
    -------
    evaluate.EvaluationModule
        ``.compute(references=..., features=..., ...)`` takes the arguments of :func:`compute`.

    Examples
    --------
    >>> metric = hf_emms.load_metric()
    >>> metric.compute(references=labels, features=features, class_embeddings=tables)
    {'emms': -0.41..., 'emms_weights': [0.52..., 0.47...]}
    """
    # The script's path, not the folder's: evaluate looks for FOLDER/<folder name>.py, and in a wheel the folder
    # is named _emms_space.
    return _evaluate().load(str(metric_module_path() / _SCRIPT), **load_kwargs)


def install_metric(*, modules_cache: str | os.PathLike | None = None) -> Path:
    """Put the EMMS module into evaluate's module cache, where ``evaluate.load("emms")`` finds it anywhere.

    ``evaluate.load("emms")`` looks for ``./emms/emms.py``, then the Hub's ``evaluate-metric/emms`` (which
    only Hugging Face publishes), then its module cache. This writes the module there, under the name that
    last lookup uses, in a folder named by the script's SHA-256 (evaluate takes the newest such folder). The
    folder is written to a temporary name and renamed into place, so a failed install leaves nothing half-written.

    Parameters
    ----------
    modules_cache : path, optional
        evaluate's module cache; default ``$HF_MODULES_CACHE`` (or ``$HF_HOME/modules``, or
        ``~/.cache/huggingface/modules``), as evaluate reads it.

    Returns
    -------
    Path
        The installed script.
    """
    evaluate = _evaluate()
    code = (metric_module_path() / _SCRIPT).read_bytes()
    root = Path(modules_cache) if modules_cache is not None else Path(evaluate.config.HF_MODULES_CACHE)
    package = root / evaluate.config.MODULE_NAME_FOR_DYNAMIC_MODULES
    parent = package / "metrics" / _CACHED_NAME
    parent.mkdir(parents=True, exist_ok=True)
    for folder in (root, package, package / "metrics", parent):  # evaluate imports the script as a module
        (folder / "__init__.py").touch()
    target = parent / hashlib.sha256(code).hexdigest()
    if (target / _SCRIPT).is_file():
        os.utime(target / _SCRIPT)  # make this version the newest again, should another have been installed since
        return target / _SCRIPT
    if target.exists():  # not a complete install: not ours to trust
        shutil.rmtree(target)

    def fill(folder: Path) -> None:  # built under a hidden name: evaluate only reads 64-character names
        (folder / "__init__.py").touch()
        (folder / _SCRIPT).write_bytes(code)

    try:
        atomic_dir(target, fill)
    except OSError:
        if not (target / _SCRIPT).is_file():  # else a concurrent install of the same script won the race
            raise
    return target / _SCRIPT


def _evaluate() -> Any:
    """The evaluate package, imported on first use (it takes seconds: it imports transformers)."""
    try:
        import evaluate
    except ImportError as exc:
        raise MetricModuleError(
            "the EMMS metric module needs the `evaluate` package: pip install 'hf-emms[metric]'."
        ) from exc
    return evaluate


def _features(features: Any, n: int) -> Any:
    if features is None:
        raise InvalidInputError(
            "features= is required: the candidate's pooled features, an array of shape (N, D1) with one row per "
            "reference."
        )
    try:
        x = features if isinstance(features, np.ndarray) or hasattr(features, "detach") else np.asarray(features)
    except (ValueError, TypeError) as exc:  # ragged rows
        raise InvalidInputError(f"features must be an (N, D1) array of numbers with rows of one width: {exc}") from None
    if isinstance(x, np.ndarray) and x.dtype.kind not in "biuf":
        raise InvalidInputError(f"features must be numbers; got an array of dtype {x.dtype}.")
    if x.ndim != 2:
        raise InvalidInputError(
            f"features must be 2-D (samples, dim); got shape {tuple(x.shape)}. Pool token or patch features first."
        )
    if x.shape[0] != n:
        raise InvalidInputError(
            f"features have {x.shape[0]} rows but there are {n} references: give one row per reference, in order."
        )
    if n == 0:
        raise InvalidInputError("there are no references: EMMS needs at least two samples.")
    return x


def _targets(
    references: Sequence[Any],
    class_embeddings: Any,
    label_embeddings: Any,
    class_names: Sequence[str] | None,
    encoders: Any,
    label_kind: str,
    label_options: Mapping[str, Any],
) -> tuple[np.ndarray | None, Any, Any]:
    """(class ids, class tables, per-sample F-labels) for the solver, from whichever F-label source was given."""
    if label_embeddings is not None:
        given = [name for name, v in (("class_embeddings", class_embeddings), ("class_names", class_names),
                                      ("encoders", encoders)) if v is not None]
        if given:
            raise InvalidInputError(
                f"label_embeddings are complete per-sample F-labels; {', '.join(given)} would describe another "
                "target. Give one F-label source."
            )
        if len(label_embeddings) != len(references):
            raise InvalidInputError(
                f"label_embeddings have {len(label_embeddings)} rows but there are {len(references)} references: "
                "give one row per reference, in order."
            )
        return None, None, label_embeddings
    if label_kind != "classification" and (class_embeddings is not None or class_names is not None):
        raise InvalidInputError(f"class_embeddings and class_names describe classes; label_kind is {label_kind!r}.")
    values = _references(references)
    if label_kind == "regression":
        if values.dtype.kind not in "biuf" or encoders is not None:
            raise InvalidInputError("regression references must be numbers, used as they are (no encoders).")
        return None, None, values.astype(np.float64)[:, None]
    if label_kind == "text":
        if encoders is None or values.dtype.kind != "U":
            raise InvalidInputError(
                "text references are embedded per sample: give strings with encoders=, or the F-labels themselves "
                "as label_embeddings= (N, D2, K)."
            )
        return None, None, _embed(list(values), "text", encoders, label_options).to_array()
    ids, names = _class_ids(values, class_names, class_embeddings)
    if encoders is not None:
        if class_embeddings is not None:
            raise InvalidInputError("give class_embeddings or encoders, not both: each is a set of class F-labels.")
        if names is None:
            raise InvalidInputError(
                "encoders= embed class names, but the references are class ids: pass class_names= "
                "(the name of class id i at position i, e.g. ClassLabel.names)."
            )
        class_embeddings = _embed(names, "classification", encoders, label_options).tables
    return ids, class_embeddings, None


def _references(references: Sequence[Any]) -> np.ndarray:
    """References as one numpy array: strings (kind 'U') or numbers; clear errors for gaps and mixed types."""
    values = references.tolist() if hasattr(references, "tolist") else list(references)
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        raise InvalidInputError(f"references[{missing[0]}] is missing (None), {len(missing)} in all: give every sample a label.")
    is_text = [isinstance(v, str) for v in values]
    if any(is_text) and not all(is_text):
        i = is_text.index(not is_text[0])
        raise InvalidInputError(
            f"references mix types: references[0] is {values[0]!r} but references[{i}] is {values[i]!r}. "
            "Give all class ids or all class names."
        )
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):  # ragged lists, or integers numpy cannot hold
        arr = np.asarray(values, dtype=object)
    if arr.ndim != 1 or not (arr.dtype.kind in "biuf" or all(is_text)):
        raise InvalidInputError(
            f"references must hold one class id, name, text or number per sample; got an array of shape {arr.shape} "
            f"and dtype {arr.dtype}. For several labels per sample give label_embeddings= (N, D2, K)."
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInputError("references contain NaN or inf.")
    return arr


def _class_ids(
    values: np.ndarray, class_names: Sequence[str] | None, class_embeddings: Any
) -> tuple[np.ndarray, list[str] | None]:
    """Class ids (N,) and the class names of ids 0..C-1, when known."""
    names = None if class_names is None else list(class_names)
    if names is not None and (not names or not all(isinstance(n, str) for n in names) or len(set(names)) < len(names)):
        raise InvalidInputError("class_names must be a non-empty sequence of distinct strings (the name of class id i at i).")
    if values.dtype.kind == "U":
        if names is None and class_embeddings is not None:
            raise InvalidInputError(
                "the references are class names: pass class_names= to say which row of class_embeddings belongs "
                "to which name."
            )
        names = names if names is not None else sorted(set(values.tolist()))
        index = {name: i for i, name in enumerate(names)}
        unknown = sorted(set(values.tolist()) - index.keys())
        if unknown:
            raise InvalidInputError(f"references name classes missing from class_names: {unknown[:5]}.")
        return np.array([index[v] for v in values.tolist()], dtype=np.int64), names
    if values.dtype.kind == "f" and not (values == np.round(values)).all():
        raise InvalidInputError(
            "classification references must be class ids (whole numbers) or names; got fractional numbers. "
            "For numeric targets pass label_kind='regression'."
        )
    if values.dtype.kind == "f" and np.abs(values).max() > _MAX_FLOAT_ID:
        raise InvalidInputError(
            f"references hold {float(values[np.argmax(np.abs(values))])!r}, not a class id: numbers past 2**53 are not whole "
            "numbers exactly (and evaluate stores references as floats). Give class ids 0..C-1, or class names."
        )
    if values.dtype.kind == "u" and values.max() > np.iinfo(np.int64).max:
        raise InvalidInputError(f"references hold {int(values.max())}, past the largest class id (2**63 - 1). "
                                "Give class ids 0..C-1, or class names.")
    ids = values.astype(np.int64)
    if ids.min() < 0:  # the solver names it (-1 marks unlabelled rows in datasets)
        return ids, names
    if names is not None and not ids.max() < len(names):
        raise InvalidInputError(f"references hold class ids up to {ids.max()}, but class_names has {len(names)} names.")
    if names is None and class_embeddings is not None:
        rows = _table_rows(class_embeddings)
        if rows is not None and not ids.max() < rows:
            raise InvalidInputError(
                f"references hold class ids up to {ids.max()}, but class_embeddings have {rows} rows (one per class "
                "id 0..C-1)."
            )
    if names is None and class_embeddings is None:
        # One-hot labels do not depend on which ids the classes have (absent ids are empty classes, which the
        # solver leaves out): ids other than 0..C-1 (5 and 10**8) become the classes present, in order, so that
        # nothing is sized by the largest id.
        present, inverse = np.unique(ids, return_inverse=True)
        if not (present[0] == 0 and present[-1] == len(present) - 1):
            ids = inverse.astype(np.int64).reshape(-1)
    return ids, names


def _table_rows(class_embeddings: Any) -> int | None:
    """C, the rows of class-name tables given as (C, D2), (K, C, D2) or a sequence of K (C, D2) arrays."""
    try:
        first = class_embeddings[0] if isinstance(class_embeddings, (list, tuple)) else class_embeddings
        shape = tuple(getattr(first, "shape", None) or np.shape(first))
    except Exception:  # left to the solver, which names what it expected
        return None
    return shape[-2] if len(shape) >= 2 else None


def _embed(texts: list[str], kind: str, encoders: Any, options: Mapping[str, Any]) -> Any:
    """F-labels by :func:`hf_emms.labels.embed_labels`, imported on first use (it loads transformers)."""
    from .labels import embed_labels

    return embed_labels(texts, kind=kind, encoders=encoders, **options)


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
