"""Dataset rows -> model inputs: which column holds what, the text length policy, and the preprocessing that runs in
DataLoader workers (tokenising, image processing, audio feature extraction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError

_UNBOUNDED = 10**6  # tokenizers without a limit report model_max_length as a huge sentinel (int(1e30))
DEFAULT_MAX_LENGTH = 512


@dataclass(frozen=True)
class InputSpec:
    """Where the model inputs are in the dataset.

    Attributes
    ----------
    modality : {"text", "image", "audio"}
    columns : tuple of str
        One column, or two for text pairs (premise, hypothesis).
    """

    modality: str
    columns: tuple[str, ...]


def input_spec(
    dataset: Any, *, text_column: str | tuple[str, str] | None, image_column: str | None, audio_column: str | None
) -> InputSpec:
    """Check that exactly one input kind is named and its columns exist in ``dataset``."""
    given = {"text": text_column, "image": image_column, "audio": audio_column}
    named = {k: v for k, v in given.items() if v is not None}
    if len(named) != 1:
        raise InvalidInputError(
            "name exactly one input column: text_column= (or a pair of columns), image_column= or audio_column=; "
            f"got {named or 'none'}."
        )
    (modality, value), = named.items()
    columns = (value,) if isinstance(value, str) else tuple(value)
    if not 1 <= len(columns) <= (2 if modality == "text" else 1):
        raise InvalidInputError(f"{modality}_column takes one column name (text: one or a pair); got {value!r}.")
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise InvalidInputError(f"column(s) {missing} not in the dataset; it has {dataset.column_names}.")
    return InputSpec(modality, columns)


def text_max_length(option: int | None, *, folder: Path, tokenizer: Any, config: Any) -> tuple[int, str]:
    """The number of tokens texts are truncated to, and the rule that chose it.

    Without ``option``, the first limit the checkpoint states: sentence-transformers ``max_seq_length`` (what the
    embedding was trained with), the tokenizer's ``model_max_length``, the model's ``max_position_embeddings``;
    else 512. An ``option`` above the model's own limit is capped there (longer inputs would not run).
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
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        hard.append((positions, "the model's max_position_embeddings"))
    if option is not None:
        if not isinstance(option, int) or option < 1:
            raise InvalidInputError(f"max_length must be a positive number of tokens; got {option!r}.")
        cap = min(hard, key=lambda limit: limit[0], default=None)
        if cap is not None and option > cap[0]:
            return cap[0], f"asked for {option}, capped at {cap[1]}"
        return option, "asked for by the caller"
    return next(iter(limits + hard), (DEFAULT_MAX_LENGTH, f"the model states no limit: default {DEFAULT_MAX_LENGTH}"))


class Preprocess:
    """Turns a batch of row indices into model inputs. Picklable, so that it runs in DataLoader worker processes.

    Parameters
    ----------
    dataset : datasets.Dataset
    spec : InputSpec
    processor : tokenizer, image processor or feature extractor
    max_length : int, optional
        Text only: tokens kept per sample (truncated from the right).

    Returns (from a call)
    ---------------------
    dict with ``inputs`` (tensors for the model), ``rows`` (ndarray of the row indices, shape (B,)) and, for text,
    ``at_limit`` (how many samples filled ``max_length``, i.e. may have been truncated).
    """

    def __init__(self, dataset: Any, spec: InputSpec, processor: Any, *, max_length: int | None = None) -> None:
        self.dataset = dataset.select_columns(list(spec.columns))  # never decode columns we do not use
        self.spec = spec
        self.processor = processor
        self.max_length = max_length
        if spec.modality == "text":
            _prepare_tokenizer(processor)

    def __call__(self, rows: np.ndarray) -> dict[str, Any]:
        batch = self.dataset[rows.tolist()]
        values = [batch[c] for c in self.spec.columns]
        out: dict[str, Any] = {"rows": rows}
        if self.spec.modality == "text":
            inputs = self.processor(
                *values, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
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
    """``rows`` ordered by text length (characters), longest first, so that batches hold texts of similar length and
    padding costs little; other modalities keep their order. The first batch is the longest: memory trouble shows
    at once. Statistics are sums, so the order does not change them."""
    if spec.modality != "text" or len(rows) == 0:
        return rows
    texts = dataset.select_columns(list(spec.columns))[rows.tolist()]
    lengths = sum(np.fromiter((len(t or "") for t in texts[c]), dtype=np.int64, count=len(rows)) for c in spec.columns)
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
