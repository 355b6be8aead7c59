"""What a ranking tells the person running it: lines beside the progress bars, kept with the ranking.

Every line said (``say``) and every warning (``warn``) of a ranking also goes to its ``notes`` list, which the
ranking's ``meta["notes"]`` is: ``ranking.json`` keeps them, and the Space shows them under its status (a Python
warning or a line on a server's stderr never reaches a Space visitor).
"""

from __future__ import annotations

import warnings

__all__ = ["say", "warn"]


def say(progress: bool, line: str, notes: list[str] | None = None) -> None:
    """One line to the person running the ranking (beside the progress bars), when ``progress`` is on; kept in
    ``notes`` (the ranking's ``meta["notes"]``, which ``ranking.json`` and the Space show) when given."""
    if notes is not None:
        notes.append(line)
    if progress:
        import sys

        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)


def warn(notes: list[str], message: str) -> None:
    """A Python warning (for callers who filter or record them), also kept in ``notes`` as ``warning: ...``."""
    notes.append(f"warning: {message}")
    warnings.warn(message, stacklevel=3)
