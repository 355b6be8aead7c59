"""Which column(s) are the input, and how they are laid out: one text, a text pair, one image, an image with a text
(a question, a prompt), or one audio clip (the input kinds of :data:`hf_emms.options.INPUT_KINDS`).

Given (``input_column=``): one column name, or an ordered list of two: two text columns are a text pair (in that
order: the tokenizer encodes them jointly, ``tokenizer(a, b)``), an image and a text column an image + text input
(kept as image first, then text, whichever order they were given in).

Detected (no ``input_column``), first rule that applies:

1. an Image column with one text column named like a prompt (question, prompt, query, instruction): image + text;
2. an Image, else an Audio column: that column alone (the first one);
3. two text columns with the names of a known pair (premise/hypothesis, sentence1/sentence2, sentence_A/sentence_B,
   question/context, question1/question2, text_a/text_b, text1/text2; any casing): a text pair;
4. a text column named like a text (text, sentence, review, ...), else the first text column;
5. with no text, image or audio column: the first column of word lists (pre-tokenised ``tokens``), joined with
   spaces (a word-list column given as ``input_column`` is joined too).

Two candidates for the same rule (two prompt columns beside an image, two known pairs) are ambiguous: an error that
names them and says what to pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError
from .columns import _TEXT_NAMES, _feature_type, _pick_input
from .files import _AUDIO_EXTS, _IMAGE_EXTS

PAIR_NAMES = (
    ("premise", "hypothesis"), ("sentence1", "sentence2"), ("sentence_a", "sentence_b"), ("question", "context"),
    ("question1", "question2"), ("text_a", "text_b"), ("text1", "text2"),
)
PROMPT_NAMES = ("question", "prompt", "query", "instruction", "questions")


@dataclass(frozen=True)
class InputChoice:
    """The input columns of a task, their kind, and why they were chosen.

    Attributes
    ----------
    columns : tuple of str
        One column, or two: a text pair in its order, or (image column, text column).
    kind : str
        One of :data:`hf_emms.options.INPUT_KINDS`.
    reason : str
        How they were chosen (given, or the detection rule), for :meth:`hf_emms.tasks.Task.describe`.
    """

    columns: tuple[str, ...]
    kind: str
    reason: str


def join_word_lists(ds: Any, input_column: str | Sequence[str] | None, label_column: str) -> tuple[Any, list[str]]:
    """``ds`` with pre-tokenised text inputs (a list of words a row: CoNLL-style ``tokens``) joined with spaces, and
    the columns joined. Joined: the input columns given that hold word lists, or, when nothing is given and no column
    holds text, an image or audio, the first column of word lists (a tokenizer reads text, not word lists)."""
    others = {c: _feature_type(ds.features[c]) for c in ds.column_names if c != label_column}
    if input_column is not None:
        named = [input_column] if isinstance(input_column, str) else list(input_column)
        words = [c for c in named if others.get(c) == "list:string"]
    elif not any(t in ("string", "image", "audio") for t in others.values()):
        words = [c for c, t in others.items() if t == "list:string"][:1]
    else:
        words = []
    if not words:
        return ds, []
    import datasets

    features = ds.features.copy()
    features.update({c: datasets.Value("string") for c in words})
    joined = ds.map(lambda batch: {c: [None if r is None else " ".join(str(w) for w in r if w is not None)
                                       for r in batch[c]] for c in words},
                    batched=True, features=features, desc=f"joining the words of {', '.join(words)}")
    return joined, words


def pick_inputs(ds: Any, input_column: str | Sequence[str] | None, label_column: str) -> InputChoice:
    """The input columns of ``ds`` (given or detected; the rules are in the module docstring)."""
    if input_column is None:
        return _detect(ds, label_column)
    if isinstance(input_column, str):
        column, modality = _pick_input(ds, input_column, label_column)
        return InputChoice((column,), modality, "given")
    columns = _as_names(input_column)
    if len(columns) == 1:
        column, modality = _pick_input(ds, columns[0], label_column)
        return InputChoice((column,), modality, "given")
    for c in columns:
        _pick_input(ds, c, label_column)  # present, not the label, and a text, image or audio column
    types = [_feature_type(ds.features[c]) for c in columns]
    if types == ["string", "string"]:
        return InputChoice(columns, "text-pair", "given: a text pair, encoded jointly in this order")
    if sorted(types) == ["image", "string"]:
        image, text = (columns if types[0] == "image" else columns[::-1])
        return InputChoice((image, text), "image-text", "given: an image and its text")
    raise InvalidInputError(
        f"input columns {list(columns)} hold {[str(ds.features[c]) for c in columns]}: two input columns are a text "
        "pair (two string columns) or an image and a text column (an Image and a string column)."
    )


def _as_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or not all(isinstance(c, str) for c in value):
        raise InvalidInputError(f"input_column must be a column name or a list of names; got {value!r}.")
    columns = tuple(value)
    if not 1 <= len(columns) <= 2:
        raise InvalidInputError(
            f"input_column takes one column or two (a text pair, or an image and a text); got {len(columns)}: "
            f"{list(columns)}."
        )
    if len(set(columns)) != len(columns):
        raise InvalidInputError(f"input_column names {columns[0]!r} twice.")
    return columns


def _detect(ds: Any, label_column: str) -> InputChoice:
    types = {c: _feature_type(ds.features[c]) for c in ds.column_names if c != label_column}
    strings = [c for c, t in types.items() if t == "string"]
    images = [c for c, t in types.items() if t == "image"]
    if images:
        prompts = [c for c in strings if c.lower() in PROMPT_NAMES]
        if len(prompts) > 1 or (prompts and len(images) > 1):
            raise InvalidInputError(
                f"ambiguous input: image column(s) {images} and text column(s) {prompts} could each be the input. "
                f"Pass input_column=[{images[0]!r}, {prompts[0]!r}] (or the columns you mean)."
            )
        if prompts:
            return InputChoice((images[0], prompts[0]), "image-text",
                               f"detected: an Image column and a text column named {prompts[0]!r}, a visual question "
                               "or prompt")
    if images or any(t == "audio" for t in types.values()):
        column, modality = _pick_input(ds, None, label_column)
        unread = "" if modality != "image" or not strings else (
            f"; text column {strings[0]!r} not read: for an image + text task pass input_column="
            f"[{column!r}, {strings[0]!r}]")  # a meme's caption, a product's title: said, not guessed
        return InputChoice((column,), modality, f"detected: the first {modality.capitalize()} column{unread}")
    lower = {c.lower(): c for c in strings}
    pairs = [(lower[a], lower[b]) for a, b in PAIR_NAMES if a in lower and b in lower]
    if len(pairs) > 1:
        raise InvalidInputError(
            f"ambiguous input: the column pairs {[list(p) for p in pairs]} are each a known text pair. Pass "
            f"input_column={list(pairs[0])} (or the columns you mean)."
        )
    if pairs:
        return InputChoice(pairs[0], "text-pair",
                           f"detected: {pairs[0][0]!r}/{pairs[0][1]!r} is a known pair of column names; encoded "
                           "jointly")
    column, modality = _pick_input(ds, None, label_column)
    _refuse_file_names(ds, column)
    named = column.lower() in _TEXT_NAMES
    return InputChoice((column,), modality, "detected: " + ("a text column named like a text" if named
                                                            else "the first text column"))


def _refuse_file_names(ds: Any, column: str) -> None:
    """A detected text column whose values are image or audio file names or URLs (a CSV of ``path,label``) would be
    scored as text, silently: refused, with how to load them as images, or to read them as text on purpose."""
    values = [v for v in ds.select(range(min(len(ds), 200)))[column] if isinstance(v, str) and v.strip()]
    suffix = lambda v: ("." + v.split("?")[0].rsplit(".", 1)[-1].lower()) if "." in v else ""  # noqa: E731
    media = [v for v in values if suffix(v) in _IMAGE_EXTS | _AUDIO_EXTS]
    if values and len(media) >= 0.9 * len(values):
        kind = "Image" if sum(suffix(v) in _IMAGE_EXTS for v in media) * 2 >= len(media) else "Audio"
        raise InvalidInputError(
            f"column {column!r} holds {kind.lower()} file names or URLs (e.g. {media[0]!r}), not text: load them as "
            f"{kind.lower()}s first, e.g. dataset.cast_column({column!r}, datasets.{kind}()) (paths relative to the "
            f"working directory; URLs need network access), or pass input_column={column!r} to read them as text."
        )
