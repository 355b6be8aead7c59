"""Local files, checked and fingerprinted before ``datasets`` parses them (see :mod:`hf_emms.tasks`).

Every file is read once, in blocks: hashed (its content, never its path or mtime, identifies it) and checked, so that
a bad file gets a one-line error naming the file, the problem and the fix: empty files, bytes that are not UTF-8,
CSV headers that are too long, too wide or repeat a name, JSON that does not parse.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import gzip
import hashlib
import io
import json
import logging
import lzma
import os
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..paths import data_entry
from .archives import unpacked

_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
# Compressed text files (``x.csv.gz``): datasets reads them; the checks below read the decompressed text.
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# Names that do not say the format (UCI's SMSSpamCollection, x.data): read as a table when the header line holds tabs
# or semicolons; commas alone may be prose.
_UNNAMED = (".txt", "", ".dat", ".data")
_BAD_ARCHIVE = (OSError, EOFError, lzma.LZMAError, zlib.error)  # gzip.BadGzipFile is an OSError
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_AUDIO_EXTS = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus"}
_BLOCK = 1 << 20  # bytes read at a time when hashing and checking files
_MAX_HEADER_BYTES = 1 << 20  # a CSV header line longer than this is refused before pandas sees it
_MAX_COLUMNS = 10_000  # more fields than this in a CSV header: not a dataset of texts, images or audio
_SHOWN = 5  # rows named in an error message


def data_suffix(path: Path) -> str:
    """The format's suffix, under a compression suffix: ``x.csv.gz`` -> ``.csv``, ``x.csv`` -> ``.csv``."""
    suffixes = [x.lower() for x in path.suffixes]
    if len(suffixes) > 1 and suffixes[-1] in _COMPRESSED and suffixes[-2] in (*_FILE_BUILDERS, ".txt"):
        return suffixes[-2]
    return path.suffix.lower()


def _open_plain(path: Path) -> Any:
    """``path`` opened for reading bytes, decompressed when its name says it is compressed."""
    return _COMPRESSED.get(path.suffix.lower(), open)(path, "rb")


def _compressed(path: Path) -> bool:
    return path.suffix.lower() in _COMPRESSED and data_suffix(path) != path.suffix.lower()


def _load_local(path: Path, cache_dir: str | os.PathLike | None = None) -> tuple[Any, str]:
    """The local file or folder loaded by ``datasets``, and the SHA-256 of its content (and of how it is read).

    Every file is read once before ``datasets`` parses it, in blocks: hashed, and checked (text files must be
    non-empty UTF-8; CSV headers bounded, without repeated names), so that a bad file fails here with its name.
    ``datasets``' Arrow copy of it goes to the hf-emms cache (``cache_dir``, part "tables", one folder per content
    digest), not to ``datasets``' own: it is counted by ``hf-emms cache``, follows ``--cache-dir``, and a hosted
    Space prunes it with the rest (every upload used to leave a copy there for good).
    """
    import datasets

    def load(*args: Any, **kwargs: Any) -> tuple[Any, str]:
        tables = data_entry("tables", digest.hexdigest(), cache_dir)
        return datasets.load_dataset(*args, cache_dir=str(tables), **kwargs), digest.hexdigest()

    digest = hashlib.sha256()
    if path.is_file():
        suffix = data_suffix(path)
        if suffix == ".zip":
            digest.update(b"imagefolder\0")
            _scan_file(path, digest, text=False)
            folder = unpacked(path, digest.hexdigest(), cache_dir)  # datasets mislabels class subfolders in a zip
            return load("imagefolder", data_dir=str(folder))
        builder = _FILE_BUILDERS.get(suffix)
        delimiter = _csv_delimiter(path)
        if suffix in _UNNAMED and path.stat().st_size and delimiter != ",":  # a table saved as .txt (SICK.txt: tabs)
            builder = "csv"
        if builder is None:
            sheet = (" A spreadsheet: save it as CSV (pandas.read_excel(path).to_csv('data.csv', index=False), or "
                     "File > Save As > CSV)." if suffix in (".xlsx", ".xls", ".xlsm", ".ods") else "")
            raise InvalidInputError(f"cannot read {path.name}: give a CSV, TSV, JSON/JSONL, parquet or zip (image "
                                    "folder) file, or a .txt table separated by tabs or semicolons with a header line "
                                    f"(text files may be compressed: .gz, .bz2, .xz).{sheet}{_label_lines_hint(path)}")
        if builder == "parquet" and _compressed(path):
            raise InvalidInputError(f"cannot read {path.name}: parquet compresses itself; give the .parquet file.")
        kwargs = {"delimiter": delimiter} if delimiter not in (None, ",") else {}
        digest.update(f"{builder}:{kwargs.get('delimiter', '')}\0".encode())  # the same bytes read otherwise differ
        _scan_file(path, digest, text=builder != "parquet", csv_delimiter=delimiter)
        field = _records_field(path) if suffix == ".json" else None
        if field is not None:  # {"data": [{...}, ...]}: the records sit under one key (SQuAD's layout)
            kwargs["field"] = field
            digest.update(f"field:{field}\0".encode())
        return load(builder, data_files=str(path), **kwargs)
    files = sorted((p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.relative_to(path).as_posix())
    if any(p.suffix.lower() in _IMAGE_EXTS for p in files):
        digest.update(b"imagefolder\0")
        for p in files:  # the relative paths name the classes (one subfolder per class) and the splits
            digest.update(p.relative_to(path).as_posix().encode() + b"\0")
            _scan_file(p, digest, text=False)
        return load("imagefolder", data_dir=str(path))
    by_builder: dict[str, list[Path]] = {}
    for p in files:
        if data_suffix(p) in _FILE_BUILDERS:
            by_builder.setdefault(_FILE_BUILDERS[data_suffix(p)], []).append(p)
    audio = [p for p in files if p.suffix.lower() in _AUDIO_EXTS]
    if audio and not by_builder:
        raise InvalidInputError(
            f"{path} holds audio files ({audio[0].relative_to(path).as_posix()}, ...), which are not read from a "
            "folder here: load them with datasets (e.g. load_dataset('audiofolder', data_dir=...), which needs "
            "torchcodec) and pass the Dataset to rank(): its Audio column is the input."
        )
    if len(by_builder) != 1:
        raise InvalidInputError(
            f"{path} holds {sorted(by_builder) or 'no'} data files; a folder must hold images (one subfolder per class) "
            "or files of one format (CSV, JSON/JSONL or parquet). Point at a single file instead."
        )
    (builder, data_files), = by_builder.items()
    named = [f for f in data_files if _split_of(f)]
    if named and len(named) < len(data_files):
        # The Hub's convention: with files named by a split, the others (a task.json, a label_map.json beside
        # train.jsonl) are not data. Read into "train" with it, their other columns failed the cast.
        others = [f.relative_to(path).as_posix() for f in data_files if not _split_of(f)]
        warnings.warn(f"{path.name}: reading the files named by a split ({', '.join(f.name for f in named[:4])}); "
                      f"left out {', '.join(others[:4])}{', ...' if len(others) > 4 else ''}", stacklevel=3)
        data_files = named
    delimiters = {_csv_delimiter(f) for f in data_files}
    if len(delimiters) > 1:
        shown = sorted(map(repr, delimiters))
        raise InvalidInputError(f"the CSV/TSV files of {path} are separated differently ({shown}): save them with "
                                "one separator.")
    delimiter = delimiters.pop()
    kwargs = {"delimiter": delimiter} if delimiter not in (None, ",") else {}
    digest.update(f"{builder}:{kwargs.get('delimiter', '')}\0".encode() if kwargs else f"{builder}\0".encode())
    splits: dict[str, list[str]] = {}
    for f in data_files:  # train.csv / test.csv -> splits, as the Hub's conventions do
        digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        _scan_file(f, digest, text=builder != "parquet", csv_delimiter=delimiter)
        splits.setdefault(_split_of(f) or "train", []).append(str(f))
    return load(builder, data_files=splits, **kwargs)


def _split_of(path: Path) -> str | None:
    """The split a data file's name gives (train.csv, train-00000.jsonl, test.csv.gz, validation.parquet), or None."""
    stem = path.name.split(".")[0].split("-")[0].lower()
    return stem if stem in ("train", "test", "validation", "dev") else None

def _csv_delimiter(path: Path) -> str | None:
    """The separator of a CSV/TSV file (None for other files): a tab for .tsv; for .csv (and .txt) a comma, unless its
    header line holds none and holds semicolons (the CSV of spreadsheets in locales with a decimal comma) or tabs."""
    suffix = data_suffix(path)
    if suffix not in (".csv", *_UNNAMED):
        return {".tsv": "\t"}.get(suffix)
    try:
        with _open_plain(path) as fh:
            header = fh.readline(_MAX_HEADER_BYTES + 1)
    except _BAD_ARCHIVE:
        return ","  # a damaged archive: _scan_file names the problem
    if b"," in header:
        return ","
    return next((d for d in (";", "\t") if d.encode() in header), ",")


def _label_lines_hint(path: Path) -> str:
    """A conversion recipe when ``path`` holds one example a line as ``LABEL text`` (SentEval's files, fastText's
    ``__label__X text``): the first words of its first 50 lines take few values, each repeated. "" otherwise."""
    try:
        with _open_plain(path) as fh:
            lines = [fh.readline(4096).decode("utf-8").strip() for _ in range(50)]
    except (UnicodeDecodeError, *_BAD_ARCHIVE):
        return ""
    heads = [line.split(None, 1) for line in lines if line]
    firsts = [h[0] for h in heads if len(h) == 2]
    if len(firsts) < 10 or len(firsts) < len(heads) or len(set(firsts)) > len(firsts) // 2:
        return ""
    return (f" Its lines look like 'LABEL text' ({firsts[0]!r} first): write them as a CSV with a header, e.g. python -c "
            "\"import csv,sys; w=csv.writer(open('data.csv','w',newline='')); w.writerow(['label','text']); "
            f"w.writerows(l.rstrip('\\n').split(' ', 1) for l in open(sys.argv[1]) if l.strip())\" {path.name}")


def _scan_file(path: Path, digest: Any, *, text: bool, csv_delimiter: str | None = None, plain: bool = False) -> None:
    """Feed ``path``'s size and bytes to ``digest``, in blocks; text files must be non-empty UTF-8 (the line of the
    first bad byte is named) and a CSV's header must be bounded (:func:`_check_csv_header`). A compressed file's
    bytes are hashed as they are and its text (``plain``: read decompressed) checked."""
    size = path.stat().st_size
    digest.update(size.to_bytes(8, "little"))
    if _compressed(path) and not plain:  # the digest covers the file's bytes; the checks read its decompressed text
        with open(path, "rb") as fh:
            while block := fh.read(_BLOCK):
                digest.update(block)
        try:
            _scan_file(path, hashlib.sha256(), text=text, csv_delimiter=csv_delimiter, plain=True)
        except _BAD_ARCHIVE as exc:
            raise InvalidInputError(f"{path.name} cannot be decompressed ({type(exc).__name__}: {exc}): the archive "
                                    "is damaged or not what its name says. Compress it again, or give the plain "
                                    "file.") from None
        return
    if csv_delimiter is not None and size:
        _check_csv_header(path, csv_delimiter)
    decoder = codecs.getincrementaldecoder("utf-8")() if text else None
    line, offset, blank = 1, 0, True
    with (_open_plain(path) if plain else open(path, "rb")) as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
            if decoder is not None:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    bad = offset + exc.start
                    line += block.count(b"\n", 0, exc.start)
                    source = _likely_encoding(block if offset == 0 else b"")
                    raise InvalidInputError(
                        f"{path.name} is not UTF-8 text: byte 0x{block[exc.start]:02x} at line {line} (byte offset "
                        f"{bad}) cannot be decoded{f' (it starts with a {source} byte-order mark)' if source else ''}. "
                        f"Re-save the file as UTF-8 (e.g. `iconv -f {source or 'latin1'} -t utf-8`, or pandas "
                        "`to_csv(..., encoding='utf-8')`)."
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

def _likely_encoding(head: bytes) -> str | None:
    """The encoding a byte-order mark at the start of a file names (Excel's "Unicode text" is UTF-16), else None."""
    for mark, name in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if head.startswith(mark):
            return name
    return None


def _check_csv_header(path: Path, delimiter: str) -> None:
    """Refuse a header line pandas would choke on, reading at most ``_MAX_HEADER_BYTES`` of it."""
    with _open_plain(path) as fh:
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

class _ParserErrorLog(logging.Filter):
    """Drops the record ``datasets``' JSON builder logs before it raises ("Failed to load JSON from file ... with
    error <class 'pyarrow.lib.ArrowInvalid'>"): the error that follows is explained with its line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to load JSON from file")


@contextlib.contextmanager
def quiet_parser_errors() -> Iterator[None]:
    """While reading a local file, keep ``datasets``' raw parser error log off the user's terminal."""
    logger, drop = logging.getLogger("datasets.packaged_modules.json.json"), _ParserErrorLog()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


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
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*")
                                                 if p.is_file() and data_suffix(p) in _FILE_BUILDERS)
    for f in files:
        if data_suffix(f) in (".json", ".jsonl"):
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
        with io.TextIOWrapper(_open_plain(path), encoding="utf-8") as fh:
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
        with io.TextIOWrapper(_open_plain(path), encoding="utf-8") as fh:
            json.load(fh)
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno}: {exc.msg} (column {exc.colno})"
    except (*_BAD_ARCHIVE, UnicodeDecodeError, RecursionError):
        return None
    return None


def _records_field(path: Path) -> str | None:
    """The key holding the records when a .json file is one object of the form ``{"data": [{...}, ...], ...}``
    (``datasets`` reads such a file as one row otherwise); None for JSON Lines, a list of records, or anything else."""
    try:
        with io.TextIOWrapper(_open_plain(path), encoding="utf-8-sig") as fh:
            first = fh.readline()
            if not first.lstrip().startswith("{"):
                return None
            try:
                document = json.loads(first)
            except ValueError:  # the first line is not a whole object: a pretty-printed document, or bad JSON
                document = None
            else:
                if any(line.strip() for line in fh):  # a second record: JSON Lines
                    return None
        if document is None:
            with io.TextIOWrapper(_open_plain(path), encoding="utf-8-sig") as fh:
                document = json.load(fh)
    except (ValueError, RecursionError, *_BAD_ARCHIVE):  # bad JSON: datasets fails, and _json_error names the line
        return None
    if not isinstance(document, dict):
        return None
    fields = [k for k, v in document.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
    if len(fields) > 1:
        raise InvalidInputError(f"{path.name} holds records under several keys ({', '.join(map(repr, fields))}): "
                                "save the records to use as one JSON list, or as JSON Lines.")
    return fields[0] if fields else None
