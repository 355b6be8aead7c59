"""Where the EMMS ``evaluate`` module is found: :func:`metric_module_path`, :func:`load_metric` and
:func:`install_metric` (re-exported by :mod:`hf_emms.metric`, which says how the three ways to load it differ).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import atomic_dir
from .errors import MetricModuleError

if TYPE_CHECKING:
    import evaluate

_MODULE_PACKAGE = "hf_emms._emms_space"  # spaces/emms, as the wheel and the editable install map it
_SCRIPT = "emms.py"
# evaluate.load("emms") looks in its module cache under this name after the Hub (see CachedEvaluationModuleFactory).
_CACHED_NAME = "evaluate-metric--emms"


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
    {'emms': -0.41..., 'emms_se': 0.01..., 'emms_weights': [0.52..., 0.47...]}
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
