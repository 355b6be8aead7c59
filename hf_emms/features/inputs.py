"""Dataset rows -> model inputs: which column holds what, the text length policy, and the preprocessing that runs in
DataLoader workers (tokenising, image processing, audio feature extraction).

Input kinds (:data:`hf_emms.options.INPUT_KINDS`): one text; a text pair, encoded jointly by the candidate's own
tokenizer (``tokenizer(a, b, truncation="longest_first")``: ``[CLS] a [SEP] b [SEP]`` for BERT, the pair template of
any other tokenizer), so any text model reads it; one image; an image with its text (a question, a prompt), through
the checkpoint's ``AutoProcessor`` (``processor(images=..., text=...)``): a vision-language checkpoint only; one
audio clip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..options import INPUT_KINDS, check_choice

_UNBOUNDED = 10**6  # tokenizers without a limit report model_max_length as a huge sentinel (int(1e30))
DEFAULT_MAX_LENGTH = 512


@dataclass(frozen=True)
class InputSpec:
    """Where the model inputs are in the dataset.

    Attributes
    ----------
    modality : {"text", "image", "audio", "image-text"}
        What the candidate reads (a text pair is ``"text"``).
    columns : tuple of str
        One column; two for a text pair (premise, hypothesis: in that order) or for an image and its text (image
        column first).
    """

    modality: str
    columns: tuple[str, ...]

    @property
    def kind(self) -> str:
        """The input kind, one of :data:`hf_emms.options.INPUT_KINDS`."""
        return "text-pair" if self.modality == "text" and len(self.columns) == 2 else self.modality

    @property
    def text_columns(self) -> tuple[str, ...]:
        """The columns holding text."""
        return {"text": self.columns, "image-text": self.columns[1:]}.get(self.modality, ())


def input_spec(
    dataset: Any, *, text_column: str | tuple[str, str] | None = None, image_column: str | None = None,
    audio_column: str | None = None, input_columns: str | Sequence[str] | None = None, input_kind: str | None = None,
) -> InputSpec:
    """Check the input columns and their kind.

    Either ``input_columns`` (one name or an ordered pair) with ``input_kind`` (one of ``INPUT_KINDS``; inferred
    from the dataset's features when None: strings are text, two strings a text pair, an Image and a string
    image + text), or the per-modality names: exactly one of ``text_column`` (a column, or a pair of columns),
    ``image_column``, ``audio_column`` -- or ``image_column`` with ``text_column`` for image + text.
    """
    if input_columns is not None:
        if any(v is not None for v in (text_column, image_column, audio_column)):
            raise InvalidInputError("give input_columns= or text_column=/image_column=/audio_column=, not both.")
        columns = (input_columns,) if isinstance(input_columns, str) else tuple(input_columns)
        _check_present(dataset, columns)
        kind = _infer(dataset, columns) if input_kind is None else check_choice("input_kind", input_kind, INPUT_KINDS)
        return _spec(dataset, kind, columns)
    if input_kind is not None:
        raise InvalidInputError("input_kind= goes with input_columns=.")
    given = {"text": text_column, "image": image_column, "audio": audio_column}
    named = {k: v for k, v in given.items() if v is not None}
    if (set(named) == {"image", "text"} and isinstance(text_column, str) and isinstance(image_column, str)
            and image_column != text_column and image_column in dataset.column_names
            and _is_image(dataset, image_column)):
        _check_present(dataset, (text_column,))
        return InputSpec("image-text", (image_column, text_column))
    if len(named) != 1:
        raise InvalidInputError(
            "name exactly one input column: text_column= (or a pair of columns), image_column= or audio_column= "
            f"(or image_column= with text_column= for image + text); got {named or 'none'}."
        )
    (modality, value), = named.items()
    columns = (value,) if isinstance(value, str) else tuple(value)
    if not 1 <= len(columns) <= (2 if modality == "text" else 1):
        raise InvalidInputError(f"{modality}_column takes one column name (text: one or a pair); got {value!r}.")
    _check_present(dataset, columns)
    return InputSpec(modality, columns)


def _check_present(dataset: Any, columns: tuple[str, ...]) -> None:
    if not columns or not all(isinstance(c, str) for c in columns):
        raise InvalidInputError(f"input columns must be column names; got {list(columns)!r}.")
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise InvalidInputError(f"column(s) {missing} not in the dataset; it has {dataset.column_names}.")


def _is_image(dataset: Any, column: str) -> bool:
    import datasets

    return isinstance(dataset.features[column], datasets.Image)


def _infer(dataset: Any, columns: tuple[str, ...]) -> str:
    """The input kind the columns' features make (for callers that give columns without a kind)."""
    import datasets

    if len(columns) == 2:
        return "image-text" if any(_is_image(dataset, c) for c in columns) else "text-pair"
    feature = dataset.features[columns[0]]
    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, datasets.Audio) or not (isinstance(feature, datasets.Value) and "string" in feature.dtype):
        return "audio"  # raw waveforms (float lists) are the only other input the models read
    return "text"


def _spec(dataset: Any, kind: str, columns: tuple[str, ...]) -> InputSpec:
    wanted = 2 if kind in ("text-pair", "image-text") else 1
    if len(columns) != wanted:
        raise InvalidInputError(f"a {kind} input takes {wanted} column(s); got {list(columns)}.")
    if kind == "image-text":
        images = [c for c in columns if _is_image(dataset, c)]
        if len(images) != 1:
            raise InvalidInputError(
                f"an image-text input takes one Image column and one text column; got {list(columns)}.")
        columns = (images[0], *(c for c in columns if c != images[0]))
    return InputSpec("text" if kind == "text-pair" else kind, columns)


def encoding_note(spec: InputSpec, pooling_method: str) -> str | None:
    """How paired inputs reached the model, for the extraction record (None for a single input)."""
    if spec.kind == "text-pair":
        return "text pair encoded jointly: tokenizer(a, b, truncation='longest_first')"
    if spec.kind == "image-text":
        if pooling_method == "fused":
            return "image and text through the processor, each encoded by its tower; features fused"
        return "image and text encoded jointly (through the processor)"
    return None


def position_limit(model: Any, config: Any) -> tuple[int, str] | None:
    """The most tokens the model's position table can index, and why; None when the config states no table.

    ``max_position_embeddings`` counts table rows, not tokens: RoBERTa-style embeddings (RoBERTa, XLM-R, CamemBERT,
    MPNet, ...) number positions from ``padding_idx + 1``, so roberta-base's 514 rows hold 512 tokens. A checkpoint
    whose tokenizer states no ``model_max_length`` would otherwise be fed 514 tokens and fail ("index out of range").
    """
    import torch

    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    for name, module in model.named_modules():
        offset = getattr(module, "padding_idx", None)
        if (name.rsplit(".", 1)[-1] == "position_embeddings" and isinstance(module, torch.nn.Embedding)
                and module.num_embeddings == positions and isinstance(offset, int) and 0 <= offset < positions - 1):
            return positions - offset - 1, (f"the model's position table ({positions} max_position_embeddings, "
                                            f"numbered from padding_idx + 1 = {offset + 1})")
    return positions, "the model's max_position_embeddings"


def text_max_length(option: int | None, *, folder: Path, tokenizer: Any,
                    positions: tuple[int, str] | None) -> tuple[int, str]:
    """The number of tokens texts are truncated to, and the rule that chose it.

    Without ``option``, the first limit the checkpoint states: sentence-transformers ``max_seq_length`` (what the
    embedding was trained with), the tokenizer's ``model_max_length``, the model's position table (``positions``:
    :func:`position_limit`); else 512; never past the position table. An ``option`` above the model's own limits is
    capped at the smallest (longer inputs would not run).
    """
    limits = []
    try:
        declared = json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length")
        if isinstance(declared, int) and declared > 0:
            limits.append((declared, "declared by the checkpoint (sentence_bert_config.json max_seq_length)"))
    except (OSError, ValueError, AttributeError):
        pass
    hard = []
    if 0 < getattr(tokenizer, "model_max_length", _UNBOUNDED) < _UNBOUNDED:
        hard.append((tokenizer.model_max_length, "the tokenizer's model_max_length"))
    if positions is not None:
        hard.append(positions)
    if option is not None:
        if not isinstance(option, int) or option < 1:
            raise InvalidInputError(f"max_length must be a positive number of tokens; got {option!r}.")
        cap = min(hard, key=lambda limit: limit[0], default=None)
        if cap is not None and option > cap[0]:
            return cap[0], f"asked for {option}, capped at {cap[1]}"
        return option, "asked for by the caller"
    if limits or hard:
        # the first stated limit, never beyond what the position table can index (roberta tokenizers that state 514)
        length, why = next(iter(limits + hard))
        return positions if positions is not None and positions[0] < length else (length, why)
    return DEFAULT_MAX_LENGTH, f"the model states no limit: default {DEFAULT_MAX_LENGTH}"


class Preprocess:
    """Turns a batch of row indices into model inputs. Picklable, so that it runs in DataLoader worker processes.

    Parameters
    ----------
    dataset : datasets.Dataset
    spec : InputSpec
    processor : tokenizer, image processor, feature extractor, or processor (image + text)
    max_length : int, optional
        Text only: tokens kept per sample (truncated from the right; a text pair loses tokens from the longer
        text first, ``truncation="longest_first"``).

    Returns (from a call)
    ---------------------
    dict with ``inputs`` (tensors for the model), ``rows`` (ndarray of the row indices, shape (B,)) and, for text
    (and image + text), ``at_limit`` (how many samples filled ``max_length``, i.e. may have been truncated).
    """

    def __init__(self, dataset: Any, spec: InputSpec, processor: Any, *, max_length: int | None = None) -> None:
        self.dataset = dataset.select_columns(list(spec.columns))  # never decode columns we do not use
        self.spec = spec
        self.processor = processor
        self.max_length = max_length
        if spec.modality == "text":
            _prepare_tokenizer(processor)
        elif spec.modality == "image-text":
            _prepare_tokenizer(processor.tokenizer)

    def __call__(self, rows: np.ndarray) -> dict[str, Any]:
        try:
            batch = self.dataset[rows.tolist()]
        except (OSError, SyntaxError) as exc:  # PIL or an audio decoder on a file the up-front check let through
            raise InvalidInputError(
                f"an input of the {len(rows)} sampled rows {int(rows.min())}..{int(rows.max())} cannot be decoded "
                f"({type(exc).__name__}: {exc}); find it with dataset.select(range(...)) and remove or replace it."
            ) from exc
        values = [batch[c] for c in self.spec.columns]
        out: dict[str, Any] = {"rows": rows}
        if self.spec.modality == "text":
            inputs = self.processor(  # a pair: the tokenizer's own pair encoding, e.g. [CLS] a [SEP] b [SEP]
                *values, padding=True, truncation="longest_first", max_length=self.max_length, return_tensors="pt"
            )
            out["at_limit"] = int((inputs["attention_mask"].sum(1) >= self.max_length).sum())
        elif self.spec.modality == "image-text":
            inputs = self.processor(
                images=[_rgb(im) for im in values[0]], text=list(values[1]), padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            )
            out["at_limit"] = int((inputs["attention_mask"].sum(1) >= self.max_length).sum())
        elif self.spec.modality == "image":
            inputs = self.processor(images=[_rgb(im) for im in values[0]], return_tensors="pt")
        else:
            rate = getattr(self.processor, "sampling_rate", None)
            inputs = self.processor(
                [_waveform(a, rate) for a in values[0]], sampling_rate=rate, padding=True, return_tensors="pt"
            )
        out["inputs"] = dict(inputs)
        return out


def length_order(dataset: Any, spec: InputSpec, rows: np.ndarray) -> np.ndarray:
    """``rows`` ordered by text length (characters, of both texts of a pair; of the text beside an image), longest
    first, so that batches hold texts of similar length and padding costs little; other inputs keep their order.
    The first batch is the longest: memory trouble shows at once. Statistics are sums, so the order does not change
    them."""
    if not spec.text_columns or len(rows) == 0:
        return rows
    texts = dataset.select_columns(list(spec.text_columns))[rows.tolist()]
    lengths = sum(np.fromiter((len(t or "") for t in texts[c]), dtype=np.int64, count=len(rows))
                  for c in spec.text_columns)
    return rows[np.argsort(-lengths, kind="stable")]


def _prepare_tokenizer(tokenizer: Any) -> None:
    """Right padding (pooling reads masks that way) and a pad token for tokenizers without one (GPT-2): padded
    positions are masked out of the pooling, so which token pads does not matter."""
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        substitute = tokenizer.eos_token or tokenizer.unk_token
        if substitute is None:
            raise InvalidInputError("the tokenizer has no pad, eos or unk token to pad batches with.")
        tokenizer.pad_token = substitute


def _rgb(image: Any) -> Any:
    """PIL images in RGB (processors expect 3 channels; datasets decodes grayscale/RGBA as they are)."""
    if hasattr(image, "convert") and getattr(image, "mode", "RGB") != "RGB":
        return image.convert("RGB")
    return image


def _waveform(item: Any, rate: int | None) -> np.ndarray:
    """A 1-D float32 waveform from a datasets Audio value ({"array", "sampling_rate"}) or a raw array."""
    if isinstance(item, dict):
        if rate is not None and item.get("sampling_rate", rate) != rate:
            raise InvalidInputError(
                f"audio sampled at {item['sampling_rate']} Hz, the model expects {rate} Hz: resample first, e.g. "
                f"dataset.cast_column(column, datasets.Audio(sampling_rate={rate}))."
            )
        item = item["array"]
    wave = np.asarray(item, dtype=np.float32)
    if wave.ndim != 1:
        raise InvalidInputError(f"audio must be mono 1-D waveforms; got shape {wave.shape}.")
    return wave
