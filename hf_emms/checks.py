"""The shared argument checks: one wording for every entry point's bad options (:mod:`hf_emms.options` builds its
specs with them and re-exports them).

This module is the ground floor: it imports nothing from hf-emms but :mod:`hf_emms.errors`.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import InvalidInputError

__all__ = ["check_choice", "check_choices", "check_device", "check_folder", "check_optional_positive_int",
           "check_positive_int"]


def check_positive_int(name: str, value: Any, *, error: type[Exception] = InvalidInputError) -> int:
    """``value`` as an int when it is a whole number >= 1 (not a bool), else ``error`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise error(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def check_optional_positive_int(name: str, value: Any, *, error: type[Exception] = InvalidInputError) -> int | None:
    """None, or ``value`` checked by :func:`check_positive_int`."""
    return None if value is None else check_positive_int(name, value, error=error)


def check_choice(name: str, value: Any, allowed: Iterable[Any], *, error: type[Exception] = InvalidInputError) -> Any:
    """``value`` when it is one of ``allowed``, else ``error`` listing the choices."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise error(f"unknown {name} {value!r}: {name} must be one of {list(allowed)} ({name}={value!r} is not one "
                    "of them).")
    return value


def check_choices(
    name: str, values: Iterable[Any], allowed: Iterable[Any], *, error: type[Exception] = InvalidInputError
) -> tuple[Any, ...]:
    """``values`` as a tuple without repeats when every one is in ``allowed``, else ``error`` naming the others."""
    if isinstance(values, str):
        values = [values]
    values, allowed = tuple(dict.fromkeys(values)), tuple(allowed)
    unknown = sorted(set(values) - set(allowed), key=str)
    if unknown:
        raise error(f"unknown {name} {unknown}; choose from {allowed}.")
    return values


def check_device(value: Any) -> Any:
    """``value`` (None, a device string or a ``torch.device``) if this process can use it; else a clear
    ``InvalidInputError`` before any candidate is loaded (torch would fail inside the first one instead)."""
    if value is None:
        return value
    import torch  # only when a device is named: this module stays light

    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidInputError(f"device {value!r} is not a torch device: use 'cpu', 'cuda', 'cuda:1' or 'mps', or "
                                "leave it out (a GPU when there is one, else the CPU).") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise InvalidInputError(f"device {value!r} is not available: {why} (torch {torch.__version__}). Leave "
                                    "device out to use what this machine has, or pass 'cpu'.")
        if device.index is not None and device.index >= count:
            raise InvalidInputError(f"device {value!r} is not available: this process sees {count} GPU(s), "
                                    f"cuda:0 to cuda:{count - 1} (CUDA_VISIBLE_DEVICES narrows them).")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError(f"device {value!r} is not available on this machine; leave device out or pass 'cpu'.")
    return value


def check_folder(name: str, value: Any) -> Any:
    """``value`` (None or a path) if a folder can be there: an existing folder, or a new one under an existing,
    writable folder; else a clear ``InvalidInputError`` before any work (not after a ranking's minutes)."""
    if not isinstance(value, (str, os.PathLike)):
        return value  # None (the default), or a value the code that uses it judges
    path = Path(os.path.expanduser(os.fspath(value)))
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        where = "is a file" if ancestor == path else f"would be inside {str(ancestor)!r}, which is a file"
        raise InvalidInputError(f"{name} {str(value)!r} {where}: give a folder path (it is created when missing).")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{name} {str(value)!r} cannot be written: no write permission on {str(ancestor)!r}. "
                                "Give a folder you can write to.")
    return value
