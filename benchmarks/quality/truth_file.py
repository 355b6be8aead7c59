"""The quality benchmark's ground-truth file: reading, checking, adding a cell, merging workers' files.

One JSON file, ``{task: {model: {"finetune_acc", "finetune_std", "seeds", "seconds", "probe_acc", "probe_seconds",
"runs": [{"seed", "finetune_acc", "seconds", "steps", "log", "env"}]}}}`` plus ``"_meta"`` (format, recipe); how the
runs are made is :mod:`finetune`'s. Every write re-reads the file and renames a whole temporary file into place.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_emms.errors import InvalidInputError
from hf_emms.labels.cache import atomic_write

FORMAT = "hf-emms/quality-ground-truth"
META = "_meta"


class GroundTruthError(InvalidInputError):
    """A ground-truth file is unreadable or malformed, or a cell cannot be run."""


def load_ground_truth(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ground-truth file: ``{task: {model: {"finetune_acc": x, ...}}}`` (``"_meta"`` optional).

    Raises
    ------
    GroundTruthError
        The file is not JSON of that shape, or an entry has no numeric ``finetune_acc``.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise GroundTruthError(f"cannot read the ground-truth file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise GroundTruthError(f"{path} must hold a JSON object {{task: {{model: {{\"finetune_acc\": x}}}}}}.")
    for task, models in data.items():
        if task == META:
            continue
        if not isinstance(models, dict):
            raise GroundTruthError(f"{path}: {task!r} must map model names to {{\"finetune_acc\": x}}.")
        for model, entry in models.items():
            acc = entry.get("finetune_acc") if isinstance(entry, dict) else None
            if not isinstance(acc, (int, float)) or isinstance(acc, bool) or not math.isfinite(acc):
                raise GroundTruthError(f"{path}: {task}/{model} has no numeric \"finetune_acc\"; got {entry!r}.")
    return data


def accuracies(ground_truth: dict[str, Any], task: str) -> dict[str, float]:
    """model -> fine-tuned accuracy of one task (empty when the task has none)."""
    return {m: float(e["finetune_acc"]) for m, e in ground_truth.get(task, {}).items()}


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to a temporary sibling and rename it into place: the file is whole or as it was. NaN -> null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_nan_to_none(data), indent=1, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def _summarise(entry: dict[str, Any]) -> None:
    """Mean and spread of the runs' accuracies, written into the model's entry."""
    accs = [r["finetune_acc"] for r in sorted(entry["runs"], key=lambda r: r["seed"])]
    entry["finetune_acc"] = float(np.mean(accs))
    entry["finetune_std"] = float(np.std(accs))
    entry["seeds"] = sorted(r["seed"] for r in entry["runs"])
    entry["seconds"] = float(np.mean([r["seconds"] for r in entry["runs"]]))


def add_cell(path: Path, task: str, model: str, run: dict[str, Any], *, probe: dict[str, Any] | None = None,
             meta: dict[str, Any]) -> dict[str, Any]:
    """Add one finished cell to the ground-truth file atomically (re-read first, so finished cells are kept)."""
    data = load_ground_truth(path) if path.exists() else {}
    if data.get(META, {}).get("recipe", meta["recipe"]) != meta["recipe"]:
        raise GroundTruthError(f"{path} was computed with another recipe ({data[META]['recipe']}); write the new "
                               "recipe's results to a new file instead of mixing them.")
    data[META] = {**data.get(META, {}), **meta}
    entry = data.setdefault(task, {}).setdefault(model, {"runs": []})
    entry["runs"] = [r for r in entry.get("runs", []) if r["seed"] != run["seed"]] + [run]
    if probe is not None:
        entry.update(probe)
    _summarise(entry)
    write_json(path, data)
    return data


def merge_files(path: str | os.PathLike, sources: Sequence[str | os.PathLike]) -> list[tuple[str, str, int]]:
    """Add the runs of other ground-truth files (e.g. one per parallel worker) that ``path`` lacks.

    A run already in ``path`` for the same (task, model, seed) is kept, not replaced; a source computed with
    another recipe is refused before anything is written. Returns the cells added.

    Raises
    ------
    GroundTruthError
        A source is malformed or used another recipe than ``path``.
    """
    path = Path(path)
    lock = _lock(path)
    added = []
    try:
        data = load_ground_truth(path) if path.exists() else {}
        recipe = data.get(META, {}).get("recipe")
        loaded = [(src, load_ground_truth(src)) for src in sources]
        for src, other in loaded:
            theirs = other.get(META, {}).get("recipe")
            recipe = recipe or theirs
            if theirs != recipe:
                raise GroundTruthError(f"{src} was computed with another recipe ({theirs}) than {path} ({recipe}); "
                                       "merge only files of one recipe.")
        for src, other in loaded:
            data[META] = {**other.get(META, {}), **data.get(META, {})}
            for task, models in other.items():
                if task == META:
                    continue
                for model, entry in models.items():
                    mine = data.setdefault(task, {}).setdefault(model, {"runs": []})
                    for run in entry.get("runs", []):
                        if not has_cell(data, task, model, run["seed"]):
                            mine["runs"].append(run)
                            added.append((task, model, run["seed"]))
                    for key in ("probe_acc", "probe_seconds"):
                        if key not in mine and key in entry:
                            mine[key] = entry[key]
                    _summarise(mine)
        write_json(path, data)
    finally:
        os.unlink(lock)
    return added


def has_cell(data: dict[str, Any], task: str, model: str, seed: int) -> bool:
    return any(r["seed"] == seed for r in data.get(task, {}).get(model, {}).get("runs", []))


def _lock(path: Path) -> Path:
    """Create ``<file>.lock`` holding this process's id; a lock whose process is gone (killed) is taken over."""
    lock = path.with_name(path.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = int(lock.read_text() or 0)
                os.kill(owner, 0)
            except (ProcessLookupError, ValueError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # its writer died mid-run: the file itself is whole (atomic writes)
                continue
            except PermissionError:
                pass  # alive, another user's
            raise GroundTruthError(f"{lock} is held by process {owner}, which is still writing {path}; "
                                   "wait for it, or stop it, before starting another run.") from None
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return lock
    raise GroundTruthError(f"could not take {lock}; another run keeps creating it.")


def _device_kind(device: str) -> str:
    return str(device).split(":")[0]


def ran_on(run: dict[str, Any], device: str) -> bool:
    """The run's device was of the same kind as ``device`` (runs stored without an environment count as CPU)."""
    return _device_kind(run.get("env", {}).get("device", "cpu")) == _device_kind(device)
