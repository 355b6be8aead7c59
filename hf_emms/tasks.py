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

Labels. Class ids are re-encoded to the classes present when they are not already 0..C-1 (sparse or huge ids
such as 5 and 100000000, negative ids): the class names are the original ids as strings, in numeric order, and
:attr:`Task.class_ids` keeps the original values, so nothing is ever sized by the largest id. Booleans are two
classes, ``"False"`` (id 0) and ``"True"`` (id 1), as an ML engineer reads a yes/no column. Rows without a label
(None, NaN, an empty or blank string, a ``ClassLabel`` -1) are an error that counts them and says how to drop or
fill them: they are never dropped silently, since a missing label usually means a parsing problem (a shifted CSV
column, an unquoted comma), and :func:`hf_emms.metric.compute` refuses them the same way.

Local files are checked before ``datasets`` parses them, so that a bad file gets a one-line error naming the file,
the problem and the fix: empty files, bytes that are not UTF-8 (with the line), a CSV header longer than 1 MiB,
with more than 10,000 fields or with repeated column names (pandas would take minutes, or rename them silently),
and JSON that does not parse (with the line).

Fingerprints. A local file or folder is identified by its content (SHA-256 of every file, streamed in blocks,
with the relative paths inside a folder and how the files are read), not by its path or modification time: an
edited file gets new results even when its mtime is restored, and a copy elsewhere reuses the records of the
original. Other datasets use the ``datasets`` fingerprint with the source (Hub id, revision, config, split).

:func:`check_distinct` (and :func:`distinct_inputs`) refuse data with too few distinct inputs to cross-validate.
"""

from __future__ import annotations

import codecs
import copy
import csv
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidInputError
from .options import TASK_KINDS, check_positive_int

__all__ = ["TASKS", "Task", "check_distinct", "distinct_inputs", "load_task"]

TASKS = TASK_KINDS  # the old name
_LABEL_NAMES = ("label", "labels", "target", "targets", "class", "category", "intent", "y", "fine_label", "coarse_label")
_TEXT_NAMES = ("text", "sentence", "content", "question", "review", "document", "sms", "utterance", "caption", "prompt")
_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_BLOCK = 1 << 20  # bytes read at a time when hashing and checking files
_MAX_HEADER_BYTES = 1 << 20  # a CSV header line longer than this is refused before pandas sees it
_MAX_COLUMNS = 10_000  # more fields than this in a CSV header: not a dataset of texts, images or audio
_SHOWN = 5  # rows named in an error message


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
        Identifies the data: for local files, their content (never their path or mtime) and the split; else the
        ``datasets`` fingerprint of the split with its source.
    source : dict
        Where it came from (id or path, config, split, revision; ``content_sha256`` for local files): recorded in
        results and model cards.
    class_ids : list or None
        For classification from integer or boolean labels: the original label value of each class id (class id
        ``i`` was ``class_ids[i]`` in the data; ``class_names[i] == str(class_ids[i])``). None otherwise.
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
    if task is not None and task not in TASK_KINDS:
        raise InvalidInputError(f"unknown task {task!r}: task must be one of {list(TASK_KINDS)}.")
    ds, source = _load(dataset, config=config, split=split, revision=revision, token=token)
    if len(ds) < 2:
        raise InvalidInputError(f"the dataset split has {len(ds)} rows; ranking needs at least 2 labelled samples.")
    label_column = _pick_label(ds, label_column)
    _check_labels(ds, label_column, source.get("name", "the dataset"))
    kind = task or _detect_kind(ds, label_column)
    class_ids = None
    if kind == "classification":
        ds, class_ids = _encode_classes(ds, label_column)
    input_column, modality = _pick_input(ds, input_column, label_column)
    return Task(
        dataset=ds, modality=modality, input_column=input_column, label_column=label_column, kind=kind,
        class_names=_class_names(ds, label_column, kind), fingerprint=_fingerprint(ds, source), source=source,
        class_ids=class_ids,
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
            loaded, digest = _load_local(path)
            source = {"name": path.name, "path": str(path.resolve()), "content_sha256": digest}
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
        raise InvalidInputError(
            f"could not load the dataset {str(dataset)!r}: {_root_message(exc)}. "
            "Check the id (and config/revision, or token for private or gated data), or give a local folder or file."
        ) from exc
    ds = _pick_split(loaded, split, repr(str(dataset)))
    source["split"] = split or _default_split(loaded)
    return ds, source


def _load_local(path: Path) -> tuple[Any, str]:
    """The local file or folder loaded by ``datasets``, and the SHA-256 of its content (and of how it is read).

    Every file is read once before ``datasets`` parses it, in blocks: hashed, and checked (text files must be
    non-empty UTF-8; CSV headers bounded, without repeated names), so that a bad file fails here with its name.
    """
    import datasets

    digest = hashlib.sha256()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".zip":
            digest.update(b"imagefolder\0")
            _scan_file(path, digest, text=False)
            return datasets.load_dataset("imagefolder", data_files=str(path)), digest.hexdigest()
        builder = _FILE_BUILDERS.get(suffix)
        if builder is None:
            raise InvalidInputError(f"cannot read {path.name}: give a CSV, TSV, JSON/JSONL, parquet or zip (image folder) file.")
        kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
        digest.update(f"{builder}:{kwargs.get('delimiter', '')}\0".encode())  # the same bytes read otherwise differ
        _scan_file(path, digest, text=builder != "parquet", csv_delimiter=_csv_delimiter(path))
        return datasets.load_dataset(builder, data_files=str(path), **kwargs), digest.hexdigest()
    files = sorted((p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.relative_to(path).as_posix())
    if any(p.suffix.lower() in _IMAGE_EXTS for p in files):
        digest.update(b"imagefolder\0")
        for p in files:  # the relative paths name the classes (one subfolder per class) and the splits
            digest.update(p.relative_to(path).as_posix().encode() + b"\0")
            _scan_file(p, digest, text=False)
        return datasets.load_dataset("imagefolder", data_dir=str(path)), digest.hexdigest()
    by_builder: dict[str, list[Path]] = {}
    for p in files:
        if p.suffix.lower() in _FILE_BUILDERS:
            by_builder.setdefault(_FILE_BUILDERS[p.suffix.lower()], []).append(p)
    if len(by_builder) != 1:
        raise InvalidInputError(
            f"{path} holds {sorted(by_builder) or 'no'} data files; a folder must hold images (one subfolder per class) "
            "or files of one format (CSV, JSON/JSONL or parquet). Point at a single file instead."
        )
    (builder, data_files), = by_builder.items()
    digest.update(f"{builder}\0".encode())
    splits: dict[str, list[str]] = {}
    for f in data_files:  # train.csv / test.csv -> splits, as the Hub's conventions do
        digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        _scan_file(f, digest, text=builder != "parquet", csv_delimiter=_csv_delimiter(f))
        stem = f.stem.split("-")[0].lower()
        splits.setdefault(stem if stem in ("train", "test", "validation", "dev") else "train", []).append(str(f))
    return datasets.load_dataset(builder, data_files=splits), digest.hexdigest()


def _csv_delimiter(path: Path) -> str | None:
    return {".csv": ",", ".tsv": "\t"}.get(path.suffix.lower())


def _scan_file(path: Path, digest: Any, *, text: bool, csv_delimiter: str | None = None) -> None:
    """Feed ``path``'s size and bytes to ``digest``, in blocks; text files must be non-empty UTF-8 (the line of the
    first bad byte is named) and a CSV's header must be bounded (:func:`_check_csv_header`)."""
    size = path.stat().st_size
    digest.update(size.to_bytes(8, "little"))
    if csv_delimiter is not None and size:
        _check_csv_header(path, csv_delimiter)
    decoder = codecs.getincrementaldecoder("utf-8")() if text else None
    line, offset, blank = 1, 0, True
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
            if decoder is not None:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    bad = offset + exc.start
                    line += block.count(b"\n", 0, exc.start)
                    raise InvalidInputError(
                        f"{path.name} is not UTF-8 text: byte 0x{block[exc.start]:02x} at line {line} (byte offset "
                        f"{bad}) cannot be decoded. Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`, or "
                        "pandas `to_csv(..., encoding='utf-8')`)."
                    ) from None
                line += block.count(b"\n")
                blank = blank and not block.strip()
            offset += len(block)
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InvalidInputError(
                f"{path.name} is not UTF-8 text: it ends inside a multi-byte character (line {line}). Re-save the "
                "file as UTF-8."
            ) from None
        if blank:
            raise InvalidInputError(
                f"{path.name} is empty{'' if size == 0 else ' (only whitespace)'}: give a file with a header (CSV) or "
                "records (JSON/JSONL) and at least 2 labelled rows."
            )


def _check_csv_header(path: Path, delimiter: str) -> None:
    """Refuse a header line pandas would choke on, reading at most ``_MAX_HEADER_BYTES`` of it."""
    with open(path, "rb") as fh:
        head = fh.readline(_MAX_HEADER_BYTES + 1)
    if len(head) > _MAX_HEADER_BYTES:
        raise InvalidInputError(
            f"{path.name}: the header line (the first line) is longer than {_MAX_HEADER_BYTES // 2**20} MiB. A CSV "
            "of this tool's data starts with a short line of column names (e.g. `text,label`); check the delimiter "
            "and that the file has a header."
        )
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        names = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    except csv.Error as exc:
        raise InvalidInputError(f"{path.name}: the header line cannot be parsed as CSV ({exc}).") from None
    if len(names) > _MAX_COLUMNS:
        raise InvalidInputError(
            f"{path.name}: the header has {len(names)} columns (at most {_MAX_COLUMNS} are read). Give a file with "
            "an input column (text, image or audio paths) and a label column; check the delimiter."
        )
    names = [n.strip() for n in names]
    seen: set[str] = set()
    repeated = sorted({n for n in names if n in seen or seen.add(n)})
    if repeated:
        shown = ", ".join(repr(n) for n in repeated[:_SHOWN]) + (f" and {len(repeated) - _SHOWN} more" if len(repeated) > _SHOWN else "")
        raise InvalidInputError(
            f"{path.name}: the header repeats the column name{'s' if len(repeated) > 1 else ''} {shown}: give "
            "every column its own name (pandas would rename the copies silently, e.g. to 'label.1')."
        )


def _root_message(exc: BaseException) -> str:
    """The innermost cause's type and first line (``datasets`` wraps parser errors in DatasetGenerationError)."""
    seen = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")


def _local_failure(path: Path, exc: BaseException) -> str:
    """A one-line message for a local file or folder ``datasets`` could not read: which file, what, where, the fix."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _FILE_BUILDERS)
    for f in files:
        if f.suffix.lower() in (".json", ".jsonl"):
            where = _json_error(f)
            if where:
                return f"{f.name} is not valid JSON/JSONL: {where}. Fix that line (one JSON object per line in JSONL)."
    reason = _root_message(exc)
    if "corresponds to no data" in reason or "no data" in reason.lower():
        return f"{path.name} holds no rows: give a header (CSV) or records (JSON/JSONL) and at least 2 labelled rows."
    return (f"could not read {path.name}: {reason}. Check that it is a well-formed CSV/TSV (one header line, the same "
            "number of fields on every line), JSON/JSONL, parquet or image folder.")


def _json_error(path: Path) -> str | None:
    """Where ``path`` stops being JSON Lines (or, when every line parses, JSON): 'line N: reason', or None."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = None
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                first = first or line.lstrip()[:1]
                if first == "[":  # one JSON document, not JSON Lines
                    break
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    if number == 1 and first == "{":  # maybe a pretty-printed document
                        break
                    return f"line {number}: {exc.msg} (column {exc.colno})"
                if not isinstance(record, dict):
                    return (f"line {number} is a JSON {type(record).__name__}, not an object (JSON Lines hold one "
                            'record per line, e.g. {"text": ..., "label": ...})')
            else:
                return None
        with open(path, encoding="utf-8") as fh:
            json.load(fh)
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno}: {exc.msg} (column {exc.colno})"
    except (OSError, UnicodeDecodeError, RecursionError):
        return None
    return None


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


def _check_labels(ds: Any, column: str, name: str) -> None:
    """Refuse rows without a label (None, NaN, an empty or blank string, a ``ClassLabel`` -1), counted and named."""
    import datasets
    import pyarrow as pa
    import pyarrow.compute as pc

    feature = ds.features[column]
    missing, shown, offset = 0, [], 0
    for batch in ds.select_columns([column]).with_format("arrow").iter(batch_size=10_000):
        values = batch.column(column)
        mask = values.is_null()
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            mask = pc.or_kleene(mask, pc.equal(pc.utf8_trim_whitespace(values), ""))
        elif pa.types.is_floating(values.type):
            mask = pc.or_kleene(mask, pc.is_nan(values))
        elif isinstance(feature, datasets.ClassLabel):
            mask = pc.or_kleene(mask, pc.less(values, 0))  # -1: the datasets convention for "no label" (test splits)
        rows = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()
        missing += len(rows)
        shown += [offset + r for r in rows[: _SHOWN - len(shown)]]
        offset += len(values)
    if missing:
        more = ", ..." if missing > len(shown) else ""
        raise InvalidInputError(
            f"{missing} of {len(ds)} rows of {name} have no label in column {column!r} (empty, blank, None, NaN or "
            f"-1; rows {', '.join(map(str, shown))}{more}, counted from 0): drop or fill them first, e.g. "
            f"dataset.filter(lambda r: r[{column!r}] is not None and str(r[{column!r}]).strip() not in ('', 'nan')), "
            "or pass label_column= if this is not the label."
        )


def _encode_classes(ds: Any, column: str) -> tuple[Any, list[Any] | None]:
    """The dataset with class ids 0..C-1 in ``column``, and the original label of each id (None for names).

    Strings: ``class_encode_column`` (names in sorted order). Booleans: False -> 0, True -> 1. Integers (or
    whole floats) already 0..C-1 are kept; others (sparse, huge or negative ids) are re-encoded to the classes
    present, in numeric order, named by their original value: never sized by the largest id.
    """
    import datasets

    feature = ds.features[column]
    kind = _feature_type(feature)
    if kind == "classlabel":
        _check_two_classes(ds.unique(column), column, feature.names)
        return ds, None
    if kind == "string":
        _check_two_classes(ds.unique(column), column)
        return ds.class_encode_column(column), None
    if kind not in ("int", "float"):
        raise InvalidInputError(
            f"classification needs one class id or name per row, but column {column!r} holds {feature}. "
            f"Pass task= (one of {TASKS}) or another label_column=."
        )
    values = ds.unique(column)
    if kind == "float":
        fractional = [v for v in values if not float(v).is_integer()]
        if fractional:
            raise InvalidInputError(
                f"classification labels must be class ids or names, but column {column!r} holds fractional numbers "
                f"(e.g. {fractional[0]!r}). Pass task='regression' for numeric targets."
            )
    if isinstance(feature, datasets.Value) and feature.dtype == "bool":
        originals: list[Any] = [False, True]
    else:
        originals = sorted(int(v) for v in values)
    _check_two_classes(values, column)
    names = [str(v) for v in originals]
    if kind == "int" and originals == list(range(len(originals))):
        return ds, originals  # already the ids 0..C-1
    index = {v: i for i, v in enumerate(originals)}
    features = ds.features.copy()
    features[column] = datasets.ClassLabel(names=names)
    encoded = ds.map(
        lambda batch: {column: [index[v if isinstance(v, bool) else int(v)] for v in batch[column]]},
        batched=True, features=features, desc=f"encoding {column!r}",
    )
    return encoded, originals


def _check_two_classes(values: list[Any], column: str, names: list[str] | None = None) -> None:
    if len(values) < 2:
        only = names[values[0]] if names and values and 0 <= values[0] < len(names) else (values[0] if values else None)
        raise InvalidInputError(
            f"the label column {column!r} holds one class only ({only!r}): ranking needs at least 2 classes. "
            "Check the label column (label_column=) or the split."
        )


def _class_names(ds: Any, column: str, kind: str) -> list[str] | None:
    import datasets

    feature = ds.features[column]
    if kind == "classification":
        if isinstance(feature, datasets.ClassLabel):
            return list(feature.names)
        return [str(i) for i in sorted(ds.unique(column))]  # ids 0..C-1 (see _encode_classes)
    if kind == "multilabel":
        inner = feature[0] if isinstance(feature, list) else getattr(feature, "feature", None)
        return list(inner.names) if isinstance(inner, datasets.ClassLabel) else None
    return None


def _fingerprint(ds: Any, source: dict[str, Any]) -> str:
    """What identifies the data scored. Local files: their content digest and the split (not the path, nor the
    mtime: a copy reuses results, an edit does not); else the split's ``datasets`` fingerprint with the source."""
    if source.get("content_sha256"):
        identity = {"content_sha256": source["content_sha256"], "split": source.get("split"), "rows": len(ds)}
    else:
        identity = {"fingerprint": getattr(ds, "_fingerprint", None), "rows": len(ds), **source}
    raw = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def distinct_inputs(dataset: Any, input_column: str) -> int:
    """The number of distinct values in ``input_column``: texts, image or audio files (by their bytes), arrays.

    Streamed in batches: each row's value is hashed (BLAKE2b, 128 bits) and only the digests are kept, never the
    data twice. Images and audio are read undecoded, as their file bytes (or the bytes of the file at their path).

    Parameters
    ----------
    dataset : datasets.Dataset
    input_column : str

    Returns
    -------
    int
    """
    import datasets

    if input_column not in dataset.column_names:
        raise InvalidInputError(f"input column {input_column!r} is not in the dataset; it has {dataset.column_names}.")
    feature = dataset.features[input_column]
    ds = dataset.select_columns([input_column])
    if isinstance(feature, (datasets.Image, datasets.Audio)) and feature.decode:
        raw = copy.copy(feature)
        raw.decode = False  # the stored bytes or path, not decoded pixels or samples
        ds = ds.cast_column(input_column, raw)
    seen: set[bytes] = set()
    for batch in ds.iter(batch_size=1_000):
        for value in batch[input_column]:
            h = hashlib.blake2b(digest_size=16)
            _feed(h, value)
            seen.add(h.digest())
    return len(seen)


def check_distinct(dataset: Any, input_column: str, *, n_folds: int = 5) -> int:
    """The number of distinct inputs, when there are enough to cross-validate; else :class:`InvalidInputError`.

    Rule: at least ``2 * n_folds`` distinct inputs, and at most ``n_folds`` rows per distinct input on average
    (``distinct * n_folds >= len(dataset)``). EMMS is cross-validated: a held-out sample whose copy sits in the
    training folds is predicted by memorising the copy, not by what the features generalise. An input with m
    copies spread over K folds has a held-out copy without a twin in training with probability (1/K)^(m-1): past K
    copies per input almost every held-out prediction is a memorised one, and the score ranks memorisation (a fully
    duplicated set scored rounding noise, 1e-15, with a random-init control first). Below 2 distinct inputs per fold
    a fold cannot estimate anything. Lighter duplication passes: the count returned, below ``len(dataset)``, is for
    the caller to warn about (deduplicating is better still).

    Parameters
    ----------
    dataset : datasets.Dataset
        The rows to be scored (after subsampling).
    input_column : str
    n_folds : int
        The cross-validation folds of the score (:data:`hf_emms.solver.stats.N_FOLDS`).

    Returns
    -------
    int
        The number of distinct inputs.
    """
    n_folds = check_positive_int("n_folds", n_folds)
    n = len(dataset)
    distinct = distinct_inputs(dataset, input_column)
    if distinct < 2 * n_folds or distinct * n_folds < n:
        raise InvalidInputError(
            f"the input column {input_column!r} holds {distinct} distinct values among {n} rows ({n - distinct} rows "
            f"repeat an input): cross-validated EMMS ({n_folds} folds) needs at least {2 * n_folds} distinct inputs "
            f"and at most {n_folds} rows per distinct input, else copies of held-out samples sit in the training "
            "folds and the score measures memorisation. Deduplicate the data (e.g. pandas drop_duplicates) or give "
            "more samples."
        )
    return distinct


def _feed(h: Any, value: Any) -> None:
    """Feed one value to a hash, typed and length-prefixed (so that 'ab','c' and 'a','bc' differ)."""
    import numpy as np

    def tag(kind: bytes, payload: bytes) -> None:
        h.update(kind + len(payload).to_bytes(8, "little") + payload)

    if value is None:
        tag(b"n", b"")
    elif isinstance(value, str):
        tag(b"s", value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        tag(b"b", bytes(value))
    elif isinstance(value, (bool, int)) or (isinstance(value, float) and not math.isnan(value)):
        tag(b"v", repr(value).encode())
    elif isinstance(value, float):
        tag(b"v", b"nan")
    elif isinstance(value, dict):
        if set(value) >= {"bytes", "path"} and value.get("bytes") is None and value.get("path"):
            path = Path(value["path"])
            if path.is_file():  # an undecoded image or audio file: its content, wherever it lies
                with open(path, "rb") as fh:
                    while block := fh.read(_BLOCK):
                        h.update(block)
                return
        if set(value) >= {"bytes", "path"} and value.get("bytes") is not None:
            tag(b"b", bytes(value["bytes"]))
            return
        tag(b"d", str(len(value)).encode())
        for key in sorted(value, key=str):
            tag(b"k", str(key).encode())
            _feed(h, value[key])
    elif isinstance(value, (list, tuple, np.ndarray)):
        try:
            arr = value if isinstance(value, np.ndarray) else np.asarray(value)
        except ValueError:  # ragged
            arr = np.empty(0, dtype=object)
        if arr.dtype.kind in "biuf":
            tag(b"a", str((arr.dtype.str, arr.shape)).encode() + np.ascontiguousarray(arr).tobytes())
        else:
            tag(b"l", str(len(value)).encode())
            for item in value:
                _feed(h, item)
    elif hasattr(value, "tobytes") and hasattr(value, "size"):  # a decoded PIL image
        tag(b"i", str((getattr(value, "mode", ""), value.size)).encode() + value.tobytes())
    else:
        tag(b"r", repr(value).encode())
