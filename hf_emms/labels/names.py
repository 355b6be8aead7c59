"""Class names: where they come from (``ClassLabel``, a list, a mapping) and how they are cleaned for encoding."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import LabelError

_FASTTEXT_PREFIX = re.compile(r"^__label__", re.IGNORECASE)
# "001.Black_footed_Albatross" (CUB), "03-cat", "7_dog": a numeric id glued to the name by '.', '-' or '_'.
_NUMERIC_PREFIX = re.compile(r"^\d+\s*[._\-:)]\s*(?=\S)")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_GENERIC_NAME = re.compile(r"^label[_ ]?\d+$", re.IGNORECASE)


def clean_class_name(name: str) -> str:
    """A class name as words a text encoder knows.

    Removes a fastText ``__label__`` prefix and a leading numeric id (``"001.Black_footed_Albatross"``),
    turns underscores into spaces, splits CamelCase (``"TrafficLight"`` -> ``"traffic light"``),
    lower-cases (``"ROSE"`` -> ``"rose"``) and collapses whitespace. Hyphens stay (``"t-shirt"``).

    Raises
    ------
    LabelError
        If nothing is left (the name was empty, blank, or only an id prefix).
    """
    cleaned = _FASTTEXT_PREFIX.sub("", name.strip())
    cleaned = _NUMERIC_PREFIX.sub("", cleaned).replace("_", " ")
    cleaned = " ".join(_CAMEL_BOUNDARY.sub(" ", cleaned).lower().split())
    if not cleaned:
        raise LabelError(f"class name {name!r} is empty once cleaned: give every class a name made of words.")
    return cleaned


def class_names_from(classes: Any) -> list[str]:
    """The ordered class names of a ``datasets.ClassLabel`` (or a multi-label ``List(ClassLabel)``), a sequence of
    names, or an ``{id: name}`` mapping.

    Parameters
    ----------
    classes : ClassLabel, List(ClassLabel), sequence of str, or mapping of int to str
        A mapping must cover the ids 0..C-1 exactly (as ``config.id2label`` does).

    Returns
    -------
    list of str
        C names, the name of class id ``i`` at position ``i`` (not cleaned).
    """
    # A datasets.ClassLabel, or the List(ClassLabel) of a multi-label column (no import of datasets needed).
    names = getattr(classes, "names", None) or getattr(getattr(classes, "feature", None), "names", None)
    if names is not None:
        classes = names
    if isinstance(classes, Mapping):
        try:
            ids = sorted(int(i) for i in classes)
        except (TypeError, ValueError):
            raise LabelError("a class mapping must map integer class ids to names, like config.id2label.") from None
        if ids != list(range(len(ids))):
            raise LabelError(f"a class mapping must cover the ids 0..{len(ids) - 1} exactly; got ids {ids[:10]}.")
        by_id = {int(i): n for i, n in classes.items()}
        classes = [by_id[i] for i in ids]
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise LabelError(
            f"class names must be a ClassLabel, a list of names or an {{id: name}} mapping; got {type(classes).__name__}."
        )
    if len(classes) < 1:
        raise LabelError("there are no class names: a classification task needs at least one class.")
    seen: dict[str, int] = {}
    for i, name in enumerate(classes):
        if not isinstance(name, str):
            raise LabelError(f"class {i} has name {name!r} of type {type(name).__name__}: class names must be strings.")
        if not name.strip():
            raise LabelError(f"class {i} has an empty name: give every class a name made of words.")
        if name in seen:  # per-sample labels passed where the class vocabulary belongs
            raise LabelError(
                f"classes {seen[name]} and {i} are both named {name!r}: give the class vocabulary, each name once "
                "(a ClassLabel's names, or sorted(set(labels))), not one label per sample."
            )
        seen[name] = i
    return list(classes)


def is_generic_name(name: str) -> bool:
    """True for placeholder names such as ``LABEL_0`` that say nothing an encoder could use."""
    return bool(_GENERIC_NAME.match(name.strip()))
