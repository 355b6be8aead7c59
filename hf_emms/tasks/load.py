"""A user's dataset -> a :class:`Task`: loaded, its split picked, its columns detected, its labels checked and
encoded, and a fingerprint of the data (the rules are in :mod:`hf_emms.tasks`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..options import TASK_KINDS
from .columns import _detect_kind, _feature_type, _pick_label, list_separator, literal_lists, multi_hot_width
from .files import _FILE_BUILDERS, _load_local, _local_failure, _root_message, data_suffix, quiet_parser_errors
from .inputs import join_word_lists, pick_inputs
from .labels import (_check_inputs, _check_labels, _check_references, _check_varies, _class_names, _encode_classes,
                     _label_lists, _numeric_targets)
from .remote import hub_failure


@dataclass(frozen=True)
class Task:
    """What to score: one split, its input column(s), one label column.

    Attributes
    ----------
    dataset : datasets.Dataset
        The split, N rows (a string label column classified by ``class_encode_column`` is already encoded).
    modality : {"text", "image", "audio", "image-text"}
        What a candidate must read: ``"text"`` for one text and for a text pair (any text model reads a pair),
        ``"image-text"`` for an image with its text (a vision-language checkpoint).
    input_column : str
        The first input column (the only one for single inputs; kept for code that reads one column).
    label_column : str
    kind : {"classification", "multilabel", "regression", "text", "boxes"}
    class_names : list of str or None
        Class names, for classification and multilabel.
    fingerprint : str
        Identifies the data: for local files, their content (never their path or mtime) and the split; else the
        ``datasets`` fingerprint of the split with its source.
    source : dict
        Where it came from (id or path, config, split, revision; ``content_sha256`` for local files): recorded in
        results and model cards.
    class_ids : list or None
        For classification from integer or boolean labels: the original label value of each class id (class id
        ``i`` was ``class_ids[i]`` in the data; ``class_names[i] == str(class_ids[i])``). None otherwise.
    input_columns : tuple of str
        Every input column: one, a text pair in its order, or (image column, text column).
    input_kind : str
        How the inputs are laid out, one of :data:`hf_emms.options.INPUT_KINDS`: ``"text"``, ``"text-pair"``,
        ``"image"``, ``"image-text"``, ``"audio"``. The one place that says it: extraction and the scanner's
        filter take it from here.
    input_reason : str
        Why these columns: ``"given"`` or the detection rule (see :mod:`hf_emms.tasks.inputs`).
    label_reason : str
        How the label column was read when it was not plainly of its kind (``"numbers written as text"``, ``"0/1
        flags, one per class"``, ...); "" otherwise.
    """

    dataset: Any
    modality: str
    input_column: str
    label_column: str
    kind: str
    class_names: list[str] | None
    fingerprint: str
    source: dict[str, Any] = field(default_factory=dict)
    class_ids: list[Any] | None = None
    input_columns: tuple[str, ...] = ()
    input_kind: str = ""
    input_reason: str = ""
    label_reason: str = ""

    def __post_init__(self) -> None:  # a Task built by older code with one column: its columns and kind follow
        if not self.input_columns:
            object.__setattr__(self, "input_columns", (self.input_column,))
        if not self.input_kind:
            object.__setattr__(self, "input_kind", self.modality)

    def describe(self) -> str:
        """One line: the data, the input column(s) with their kind and why they were chosen, the label."""
        classes = f", {len(self.class_names)} classes" if self.class_names else ""
        if len(self.input_columns) > 1:
            inputs = f"{self.input_kind} input ({', '.join(map(repr, self.input_columns))})"
        else:
            inputs = f"{self.modality} input '{self.input_column}'"
        why = f" ({self.input_reason})" if self.input_reason else ""
        read = f" ({self.label_reason})" if self.label_reason else ""
        return (f"{self.source.get('name', 'dataset')} [{self.source.get('split') or 'all'}]: {len(self.dataset)} rows, "
                f"{inputs}{why}, {self.kind} label '{self.label_column}'{read}{classes}")

def load_task(
    dataset: Any,
    *,
    config: str | None = None,
    split: str | None = None,
    revision: str | None = None,
    task: str | None = None,
    label_column: str | None = None,
    input_column: str | Sequence[str] | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
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
    label_column : str, optional
        Detected when omitted (see :mod:`hf_emms.tasks`).
    input_column : str or sequence of str, optional
        One column, or an ordered pair: two text columns (``["premise", "hypothesis"]``: a text pair, encoded
        jointly in this order) or an image and a text column (``["image", "question"]``). Detected when omitted,
        common pairs included (see :mod:`hf_emms.tasks.inputs`); an ambiguous detection is an error.
    token : str or bool, optional
        For private or gated Hub datasets. Never stored.
    cache_dir : path, optional
        The hf-emms cache (default ``$HF_EMMS_CACHE``): a local file's Arrow copy and an unpacked zip go there (a
        Hub dataset stays in ``datasets``' own cache, shared with the rest of your work).

    Returns
    -------
    Task

    Raises
    ------
    InvalidInputError
        The dataset cannot be found or read, a named column is missing, no label or input column can be
        found, the input detection is ambiguous, or the task is unknown. The message says what to pass.
    """
    if task is not None and task not in TASK_KINDS:
        raise InvalidInputError(f"unknown task {task!r}: task must be one of {list(TASK_KINDS)}.")
    ds, source = _load(dataset, config=config, split=split, revision=revision, token=token, cache_dir=cache_dir)
    if len(ds) < 2:
        raise InvalidInputError(f"the dataset split has {len(ds)} rows; ranking needs at least 2 labelled samples.")
    label_column = _pick_label(ds, label_column)
    _check_labels(ds, label_column, source.get("name", "the dataset"))
    kind = task or _detect_kind(ds, label_column)
    label_reason = _label_reason(ds, label_column, kind, given=task is not None)
    class_ids = None
    if kind == "classification":
        ds, class_ids = _encode_classes(ds, label_column)
    elif kind == "multilabel":
        ds = _label_lists(ds, label_column)
    elif kind == "text":
        _check_references(ds, label_column, source.get("name", "the dataset"))
    elif kind == "regression":
        ds = _numeric_targets(ds, label_column)
        _check_varies(ds, label_column)
    ds, joined = join_word_lists(ds, input_column, label_column)
    inputs = pick_inputs(ds, input_column, label_column)
    if joined:
        inputs = replace(inputs, reason=f"{inputs.reason}; its word lists joined with spaces")
    _check_inputs(ds, inputs.columns, source.get("name", "the dataset"))
    return Task(
        dataset=ds, modality="text" if inputs.kind == "text-pair" else inputs.kind, input_column=inputs.columns[0],
        label_column=label_column, kind=kind, class_names=_class_names(ds, label_column, kind),
        fingerprint=_fingerprint(ds, source), source=source, class_ids=class_ids, input_columns=inputs.columns,
        input_kind=inputs.kind, input_reason=inputs.reason, label_reason=label_reason,
    )


def _label_reason(ds: Any, column: str, kind: str, *, given: bool) -> str:
    """How a label column that is not plainly of its kind was read, for :meth:`Task.describe` ("" otherwise):
    detection can read a column the wrong way, and the data line is where a person sees it."""
    feature = _feature_type(ds.features[column])
    if kind == "multilabel" and feature == "string":
        lists = literal_lists(ds[column])
        return "lists written as text in each cell" if lists is not None else (
            f"names joined with {list_separator(ds[column], evidence=False) or 'nothing'!r}, split")
    if kind == "multilabel" and feature in ("list:int", "list:float") and multi_hot_width(ds[column]):
        return "0/1 flags, one per class"
    if kind == "classification" and feature.startswith("list:"):
        return "one-hot flags: the class is the flag's position"
    if kind == "regression" and feature == "string":
        return "numbers written as text"
    if kind == "regression" and feature == "int" and not given:
        return "whole numbers that rarely repeat, read as targets; task='classification' reads them as class ids"
    return ""

def _load(dataset: Any, *, config, split, revision, token, cache_dir=None) -> tuple[Any, dict[str, Any]]:
    import datasets

    hub = isinstance(dataset, (str, os.PathLike)) and not Path(dataset).expanduser().exists()
    given = [f"{name}={value!r}" for name, value in (("config", config), ("revision", revision)) if value]
    if given and not hub:  # they would be ignored, and the results would not say which data was meant
        raise InvalidInputError(
            f"{' and '.join(given)} {'pick' if len(given) > 1 else 'picks'} a Hub dataset's configuration or commit; "
            f"{'a local file or folder' if isinstance(dataset, (str, os.PathLike)) else 'data already loaded'} has "
            "neither. Leave them out, or give the Hub id."
        )
    if isinstance(dataset, datasets.DatasetDict):
        ds = _plain_rows(_pick_split(dataset, split, "the DatasetDict"))
        return ds, {"name": ds.info.dataset_name or "in-memory", "split": split or _default_split(dataset)}
    if isinstance(dataset, datasets.Dataset):
        own = str(dataset.split) if dataset.split else None
        if split is not None and split != own:  # it would be scored whole and recorded as that split
            raise InvalidInputError(
                f"split={split!r} picks a split of a Hub id, a local path or a DatasetDict, but this datasets.Dataset "
                f"is {f'the {own!r} split' if own else 'one set of rows'} already. Pass the split itself "
                f"(dataset_dict[{split!r}]), or leave split= out to score these rows."
            )
        name = dataset.info.dataset_name or "in-memory"
        return _plain_rows(dataset), {"name": name, "split": own}
    if not isinstance(dataset, (str, os.PathLike)):
        how = {"DataFrame": "datasets.Dataset.from_pandas(df, preserve_index=False)",
               "list": "datasets.Dataset.from_list(rows)", "dict": "datasets.Dataset.from_dict(columns)",
               # A stream has no length: the budget's stratified draw needs the rows it draws from.
               "IterableDataset": "datasets.Dataset.from_list(list(stream.take(20_000))), or load it without "
                                  "streaming=True"}
        fix = f" Wrap it: {how[type(dataset).__name__]}." if type(dataset).__name__ in how else ""
        raise InvalidInputError(
            f"dataset must be a Hub id, a local path, or a datasets.Dataset; got {type(dataset).__name__}.{fix}"
        )
    path = Path(dataset).expanduser()
    try:
        if path.exists():
            with quiet_parser_errors():
                loaded, digest = _load_local(path, cache_dir)
            source = {"name": path.name, "path": str(path.resolve()), "content_sha256": digest}
        elif data_suffix(path) in (*_FILE_BUILDERS, ".zip") and ("/" not in str(dataset) or path.parent.is_dir()):
            # "data.csv", "runs/data.csv" where runs/ exists: a local file that is not there, not a Hub id
            raise InvalidInputError(f"no file {str(dataset)!r} (looked for {str(path.absolute())!r}). Check the name, "
                                    "or give its full path.")
        elif str(dataset).count("/") <= 1 and not str(dataset).startswith((".", "/", "~")):
            loaded = datasets.load_dataset(str(dataset), config, revision=revision, token=token)
            source = {"name": str(dataset), "id": str(dataset), "config": config, "revision": _dataset_sha(str(dataset), revision, token)}
        else:
            raise InvalidInputError(f"no file or folder at {dataset!r}, and it is not a Hub dataset id (org/name).")
    except InvalidInputError:
        raise
    except Exception as exc:  # datasets raises many types (FileNotFoundError, DatasetNotFoundError, ValueError...)
        if path.exists():
            raise InvalidInputError(_local_failure(path, exc)) from exc
        why = hub_failure(str(dataset), config=config, revision=revision, token=token, error=_root_message(exc))
        raise InvalidInputError(
            f"could not load the dataset {str(dataset)!r}: " + (why or f"{_root_message(exc)}. Check the id (and "
            "config/revision, or token for private or gated data), or give a local folder or file.")
        ) from exc
    ds = _pick_split(loaded, split, repr(str(dataset)))
    source["split"] = split or _default_split(loaded)
    return ds, source

def _default_split(loaded: Any) -> str | None:
    import datasets

    if not isinstance(loaded, datasets.DatasetDict):
        return None
    return "train" if "train" in loaded else next(iter(loaded))

def _plain_rows(ds: Any) -> Any:
    """``ds`` as python rows: a dataset set to numpy/torch/pandas format would hand arrays, not strings, to a
    tokenizer. Unformatted datasets are returned as they are (their fingerprint, hence the caches' keys, unchanged)."""
    return ds if ds.format.get("type") is None else ds.with_format(None)


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

def _fingerprint(ds: Any, source: dict[str, Any]) -> str:
    """What identifies the data scored. Local files: their content digest and the split (not the path, nor the
    mtime: a copy reuses results, an edit does not); else the split's ``datasets`` fingerprint with the source."""
    if source.get("content_sha256"):
        identity = {"content_sha256": source["content_sha256"], "split": source.get("split"), "rows": len(ds)}
    else:
        identity = {"fingerprint": getattr(ds, "_fingerprint", None), "rows": len(ds), **source}
    raw = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
