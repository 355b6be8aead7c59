"""A user's dataset -> a :class:`Task`: the split to score, its input column and modality, its label column and kind.

Datasets come as a Hub id (with config, split, revision), a local folder or file (imagefolder, CSV, JSON/JSONL,
parquet), or an in-memory ``datasets.Dataset``/``DatasetDict``. Detection reads the ``datasets`` features, and every
choice can be overridden (``task=``, ``label_column=``, ``input_column=``):

==========================================  ===========================  ==============
label column feature                        kind                         F-labels
==========================================  ===========================  ==============
``ClassLabel``                              classification               class-name tables
``List(ClassLabel)``                        multilabel                   per sample
integer ``Value``                           classification (ids)         class-name tables
string ``Value``, few distinct values       classification (encoded)     class-name tables
string ``Value``, mostly distinct           text                         per sample
``List(Value("string"))``                   text (several references)    per sample
float ``Value``                             regression                   the numbers
==========================================  ===========================  ==============

Boxes (referring expressions, detection) are never guessed: pass ``task="boxes"``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidInputError
from .options import TASK_KINDS, check_choice

__all__ = ["TASKS", "Task", "load_task"]

TASKS = TASK_KINDS  # the old name
_LABEL_NAMES = ("label", "labels", "target", "targets", "class", "category", "intent", "y", "fine_label", "coarse_label")
_TEXT_NAMES = ("text", "sentence", "content", "question", "review", "document", "sms", "utterance", "caption", "prompt")
_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Task:
    """What to score: one split, one input column, one label column.

    Attributes
    ----------
    dataset : datasets.Dataset
        The split, N rows (a string label column classified by ``class_encode_column`` is already encoded).
    modality : {"text", "image", "audio"}
    input_column : str
    label_column : str
    kind : {"classification", "multilabel", "regression", "text", "boxes"}
    class_names : list of str or None
        Class names, for classification and multilabel.
    fingerprint : str
        Identifies the data: the ``datasets`` fingerprint of the split, which hashes its files or content.
    source : dict
        Where it came from (id or path, config, split, revision): recorded in results and model cards.
    """

    dataset: Any
    modality: str
    input_column: str
    label_column: str
    kind: str
    class_names: list[str] | None
    fingerprint: str
    source: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        classes = f", {len(self.class_names)} classes" if self.class_names else ""
        return (f"{self.source.get('name', 'dataset')} [{self.source.get('split') or 'all'}]: {len(self.dataset)} rows, "
                f"{self.modality} input '{self.input_column}', {self.kind} label '{self.label_column}'{classes}")


def load_task(
    dataset: Any,
    *,
    config: str | None = None,
    split: str | None = None,
    revision: str | None = None,
    task: str | None = None,
    label_column: str | None = None,
    input_column: str | None = None,
    token: str | bool | None = None,
) -> Task:
    """Load a dataset and detect what to score.

    Parameters
    ----------
    dataset : str, path, datasets.Dataset or datasets.DatasetDict
        A Hub dataset id, a local folder or file, or data already loaded.
    config, split, revision : str, optional
        Hub dataset config, split (default: "train" when there are several) and revision.
    task : {"classification", "multilabel", "regression", "text", "boxes"}, optional
        The label kind; detected from the label column's feature when omitted.
    label_column, input_column : str, optional
        Detected when omitted (see the module docstring).
    token : str or bool, optional
        For private or gated Hub datasets. Never stored.

    Returns
    -------
    Task

    Raises
    ------
    InvalidInputError
        The dataset cannot be found or read, a named column is missing, no label or input column can be
        found, or the task is unknown. The message says what to pass.
    """
    if task is not None:
        check_choice("task", task, TASK_KINDS)
    ds, source = _load(dataset, config=config, split=split, revision=revision, token=token)
    if len(ds) < 2:
        raise InvalidInputError(f"the dataset split has {len(ds)} rows; ranking needs at least 2 labelled samples.")
    label_column = _pick_label(ds, label_column)
    kind = task or _detect_kind(ds, label_column)
    if kind == "classification" and _feature_type(ds.features[label_column]) == "string":
        ds = ds.class_encode_column(label_column)
    input_column, modality = _pick_input(ds, input_column, label_column)
    return Task(
        dataset=ds, modality=modality, input_column=input_column, label_column=label_column, kind=kind,
        class_names=_class_names(ds, label_column, kind), fingerprint=_fingerprint(ds, source), source=source,
    )


def _load(dataset: Any, *, config, split, revision, token) -> tuple[Any, dict[str, Any]]:
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        ds = _pick_split(dataset, split, "the DatasetDict")
        return ds, {"name": ds.info.dataset_name or "in-memory", "split": split or _default_split(dataset)}
    if isinstance(dataset, datasets.Dataset):
        name = dataset.info.dataset_name or "in-memory"
        return dataset, {"name": name, "split": split or (str(dataset.split) if dataset.split else None)}
    if not isinstance(dataset, (str, os.PathLike)):
        raise InvalidInputError(
            f"dataset must be a Hub id, a local path, or a datasets.Dataset; got {type(dataset).__name__}."
        )
    path = Path(dataset).expanduser()
    try:
        if path.exists():
            loaded = _load_local(path)
            source = {"name": path.name, "path": str(path.resolve())}
        elif str(dataset).count("/") <= 1 and not str(dataset).startswith((".", "/", "~")):
            loaded = datasets.load_dataset(str(dataset), config, revision=revision, token=token)
            source = {"name": str(dataset), "id": str(dataset), "config": config, "revision": _dataset_sha(str(dataset), revision, token)}
        else:
            raise InvalidInputError(f"no file or folder at {dataset!r}, and it is not a Hub dataset id (org/name).")
    except InvalidInputError:
        raise
    except Exception as exc:  # datasets raises many types (FileNotFoundError, DatasetNotFoundError, ValueError...)
        raise InvalidInputError(
            f"could not load the dataset {str(dataset)!r}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "Check the id (and config/revision, or token for private or gated data), or give a local folder or file."
        ) from exc
    ds = _pick_split(loaded, split, repr(str(dataset)))
    source["split"] = split or _default_split(loaded)
    return ds, source


def _load_local(path: Path) -> Any:
    import datasets

    if path.is_file():
        if path.suffix.lower() == ".zip":
            return datasets.load_dataset("imagefolder", data_files=str(path))
        builder = _FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise InvalidInputError(f"cannot read {path.name}: give a CSV, TSV, JSON/JSONL, parquet or zip (image folder) file.")
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        return datasets.load_dataset(builder, data_files=str(path), **kwargs)
    files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
    if any(p.suffix.lower() in _IMAGE_EXTS for p in files):
        return datasets.load_dataset("imagefolder", data_dir=str(path))
    by_builder: dict[str, list[str]] = {}
    for p in files:
        if p.suffix.lower() in _FILE_BUILDERS:
            by_builder.setdefault(_FILE_BUILDERS[p.suffix.lower()], []).append(str(p))
    if len(by_builder) != 1:
        raise InvalidInputError(
            f"{path} holds {sorted(by_builder) or 'no'} data files; a folder must hold images (one subfolder per class) "
            "or files of one format (CSV, JSON/JSONL or parquet). Point at a single file instead."
        )
    (builder, data_files), = by_builder.items()
    splits: dict[str, list[str]] = {}
    for f in sorted(data_files):  # train.csv / test.csv -> splits, as the Hub's conventions do
        stem = Path(f).stem.split("-")[0].lower()
        splits.setdefault(stem if stem in ("train", "test", "validation", "dev") else "train", []).append(f)
    return datasets.load_dataset(builder, data_files=splits)


def _default_split(loaded: Any) -> str | None:
    import datasets

    if not isinstance(loaded, datasets.DatasetDict):
        return None
    return "train" if "train" in loaded else next(iter(loaded))


def _pick_split(loaded: Any, split: str | None, what: str) -> Any:
    import datasets

    if not isinstance(loaded, datasets.DatasetDict):
        return loaded
    if split is None:
        split = _default_split(loaded)
    if split not in loaded:
        raise InvalidInputError(f"{what} has no split {split!r}; it has {list(loaded)}. Pass split=.")
    return loaded[split]


def _dataset_sha(repo_id: str, revision: str | None, token: Any) -> str | None:
    """The commit the Hub dataset resolved to (None offline): results then name the exact data."""
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(repo_id, revision=revision, token=token).sha
    except Exception:  # offline, or a datasets-only cache: the fingerprint still identifies the data
        return revision


def _feature_type(feature: Any) -> str:
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return "classlabel"
    if isinstance(feature, (datasets.Sequence, getattr(datasets, "List", datasets.Sequence), list)):
        inner = feature[0] if isinstance(feature, list) else feature.feature
        return "list:" + _feature_type(inner)
    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, datasets.Audio):
        return "audio"
    if isinstance(feature, datasets.Value):
        dtype = feature.dtype
        if dtype in ("string", "large_string"):
            return "string"
        if dtype.startswith(("int", "uint")) or dtype == "bool":
            return "int"
        if dtype.startswith("float"):
            return "float"
    return "other"


def _pick_label(ds: Any, label_column: str | None) -> str:
    if label_column is not None:
        if label_column not in ds.column_names:
            raise InvalidInputError(f"label column {label_column!r} is not in the dataset; it has {ds.column_names}.")
        return label_column
    types = {c: _feature_type(ds.features[c]) for c in ds.column_names}
    for c in ds.column_names:
        if types[c] in ("classlabel", "list:classlabel"):
            return c
    for name in _LABEL_NAMES:
        for c in ds.column_names:
            if c.lower() == name:
                return c
    raise InvalidInputError(
        f"no label column found among {ds.column_names} (looked for a ClassLabel feature or a column named one of "
        f"{_LABEL_NAMES}). Pass label_column=."
    )


def _detect_kind(ds: Any, column: str) -> str:
    kind = _feature_type(ds.features[column])
    if kind in ("classlabel", "int"):
        return "classification"
    if kind == "list:classlabel":
        return "multilabel"
    if kind == "float":
        return "regression"
    if kind == "list:string":
        return "text"
    if kind == "string":
        values = ds[column]
        distinct = len(set(values))
        # Repeated values are categories (spam/ham, intents); mostly distinct strings are free text (captions).
        return "classification" if distinct <= max(2, min(1000, len(values) // 2)) else "text"
    raise InvalidInputError(
        f"cannot tell the task from the label column {column!r} (feature {ds.features[column]}). "
        f"Pass task= (one of {TASKS})."
    )


def _pick_input(ds: Any, input_column: str | None, label_column: str) -> tuple[str, str]:
    types = {c: _feature_type(ds.features[c]) for c in ds.column_names if c != label_column}
    modality_of = {"image": "image", "audio": "audio", "string": "text"}
    if input_column is not None:
        if input_column not in ds.column_names:
            raise InvalidInputError(f"input column {input_column!r} is not in the dataset; it has {ds.column_names}.")
        if input_column == label_column:
            raise InvalidInputError(f"the input column and the label column are both {input_column!r}.")
        t = types[input_column]
        if t in modality_of:
            return input_column, modality_of[t]
        if t == "list:float" or "audio" in input_column.lower():
            return input_column, "audio"  # raw waveforms as float lists
        raise InvalidInputError(f"input column {input_column!r} holds {ds.features[input_column]}, not text, images or audio.")
    for wanted in ("image", "audio"):
        for c, t in types.items():
            if t == wanted:
                return c, modality_of[t]
    strings = [c for c, t in types.items() if t == "string"]
    for name in _TEXT_NAMES:
        for c in strings:
            if c.lower() == name:
                return c, "text"
    if strings:
        return strings[0], "text"
    raise InvalidInputError(
        f"no input column found among {list(types)} (looked for an Image, Audio or string column). Pass input_column=."
    )


def _class_names(ds: Any, column: str, kind: str) -> list[str] | None:
    import datasets

    feature = ds.features[column]
    if kind == "classification":
        if isinstance(feature, datasets.ClassLabel):
            return list(feature.names)
        ids = ds.unique(column)
        return [str(i) for i in range(max(ids) + 1)] if ids else None
    if kind == "multilabel":
        inner = feature[0] if isinstance(feature, list) else getattr(feature, "feature", None)
        return list(inner.names) if isinstance(inner, datasets.ClassLabel) else None
    return None


def _fingerprint(ds: Any, source: dict[str, Any]) -> str:
    """The split's ``datasets`` fingerprint (it hashes the source files or the content), tied to the source."""
    raw = json.dumps({"fingerprint": getattr(ds, "_fingerprint", None), "rows": len(ds), **source}, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
