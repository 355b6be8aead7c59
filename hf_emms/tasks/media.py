"""Image and audio files that cannot be read, found before any candidate loads.

A broken file (empty, cut short, an HTML error page saved as ``.jpg``) used to surface inside the first candidate's
forward pass as an ``OSError`` from PIL, and every candidate was then skipped for the same data problem. The rows
drawn for scoring are checked once instead: each image is opened and verified by PIL (its header and, for PNG, its
chunk checksums; no pixel is decoded), each audio file must exist and be non-empty. The files are read undecoded,
as :mod:`hf_emms.tasks.distinct` reads them: one more pass over the bytes (0.17 s for 2,000 224 x 224 JPEGs).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .files import _SHOWN


def check_media(dataset: Any, columns: Sequence[str], *, rows: Sequence[int] | None = None) -> None:
    """Raise :class:`InvalidInputError` naming the unreadable image or audio files of ``columns``, with how many
    there are; other columns are not read.

    Parameters
    ----------
    dataset : datasets.Dataset
        The rows to be scored (after subsampling).
    columns : sequence of str
        The input columns; only ``Image`` and ``Audio`` ones are checked.
    rows : sequence of int, optional
        The row of the whole split each row of ``dataset`` was drawn from, for the message (default: counted from 0
        in ``dataset``).
    """
    import datasets

    media = [c for c in columns if isinstance(dataset.features[c], (datasets.Image, datasets.Audio))]
    for column in media:
        feature = copy.copy(dataset.features[column])
        feature.decode = False  # bytes or a path, as stored
        raw = dataset.select_columns([column]).cast_column(column, feature)
        check = _image_problem if isinstance(feature, datasets.Image) else _audio_problem
        bad: list[str] = []
        count, offset = 0, 0
        for batch in raw.iter(batch_size=1_000):
            for i, value in enumerate(batch[column]):
                problem = check(value)
                if problem is not None:
                    count += 1
                    if len(bad) < _SHOWN:
                        bad.append(f"row {offset + i if rows is None else int(rows[offset + i])} ({problem})")
            offset += len(batch[column])
        if count:
            more = f" and {count - len(bad)} more" if count > len(bad) else ""
            raise InvalidInputError(
                f"{count} of {len(dataset)} files drawn for scoring in column {column!r} cannot be read: "
                f"{'; '.join(bad)}{more}. Remove or replace them (e.g. dataset.filter on the rows named), then rank "
                "again."
            )


def _where(value: Any) -> tuple[str, bytes | None, Path | None]:
    """A stored value's name for messages, its bytes (stored inline, or read through fsspec for a URL such as a zip
    member's ``zip://0.png::/data/vqa.zip``) and its local path."""
    value = value or {}
    path = value.get("path") if isinstance(value, dict) else None
    data = value.get("bytes") if isinstance(value, dict) else None
    name = Path(path.split("::")[0]).name if path else "bytes in the dataset"
    if data is None and path and "://" in path:
        from datasets.utils.file_utils import xopen

        try:
            with xopen(path, "rb") as fh:
                data = fh.read()
        except Exception:  # noqa: BLE001 - a member or URL that cannot be opened: reported as missing
            return name, None, Path(path)
    return name, (bytes(data) if data is not None else None), (Path(path) if path and data is None else None)


def _image_problem(value: Any) -> str | None:
    from PIL import Image, UnidentifiedImageError

    name, data, path = _where(value)
    if data is None and path is None:
        return "no image"
    if path is not None and not path.is_file():
        return f"{name}: no such file"
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            im.verify()
    except UnidentifiedImageError:
        return f"{name}: not an image PIL can read"
    except Image.DecompressionBombError as exc:  # would fail the same way when decoded for the forward pass
        return f"{name}: {exc} (downscale it)"
    except (OSError, SyntaxError, ValueError) as exc:  # PIL reports broken files as any of these
        return f"{name}: {exc}"
    return None


def _audio_problem(value: Any) -> str | None:
    name, data, path = _where(value)
    if data is None and path is None:
        return "no audio"
    if path is not None and (not path.is_file() or path.stat().st_size == 0):
        return f"{name}: " + ("empty file" if path.is_file() else "no such file")
    if data is not None and len(data) == 0:
        return f"{name}: empty"
    return None
