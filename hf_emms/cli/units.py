"""Numbers with units on the command line: parameter counts (``110M``) and byte sizes (``8GB``, ``2GiB``, ``2e9``)."""

from __future__ import annotations

import argparse
import re

__all__ = ["parse_bytes", "parse_count", "parse_samples"]

_DECIMAL = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_BINARY = {"KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40}


def parse_count(text: str) -> int:
    """``"110M"`` -> 110_000_000; plain integers, ``_`` separators and K/M/B/T suffixes (decimal) are accepted."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMbBtT]?)\s*", text.replace("_", ""))
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a parameter count (e.g. 110M, 1.5B, 300000)")
    return int(round(float(match[1]) * _DECIMAL[match[2].upper()]))


def parse_samples(text: str) -> int:
    """A sample budget: ``"2000"``, ``"5k"`` (as :func:`parse_count`), or ``"0"`` / ``"all"`` for every row (0)."""
    if text.strip().lower() == "all":
        return 0
    try:
        count = parse_count(text)
    except argparse.ArgumentTypeError:
        count = -1
    if count == 1 or count < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a sample budget: give a count of at least 2 (e.g. 2000, "
                                         "5k), or 0 (or 'all') for every row")
    return count


def parse_bytes(text: str) -> int:
    """``"8GB"`` -> 8e9, ``"2GiB"`` -> 2 * 2**30, ``"2e9"`` -> 2e9; K/M/G/T are decimal, Ki/Mi/Gi/Ti binary, a
    trailing ``B`` optional."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?(?:[eE]\d+)?)\s*([kKmMgGtT][iI]?)?[bB]?\s*", text.replace("_", ""))
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes (e.g. 8GB, 2GiB, 500MB, 2e9)")
    unit = (match[2] or "").upper()
    return int(round(float(match[1]) * (_BINARY.get(unit) or _DECIMAL[unit])))
