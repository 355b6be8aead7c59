"""``embed_labels``: labels of any kind -> F-labels, the task's labels embedded by K foundation models."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EncoderLoadError, LabelError
from ..hub import digests
from ..options import check_choice, check_positive_int
from .cache import EmbeddingCache, default_cache_dir
from .encoders import EncoderRecord, TextEncoder, as_specs, auto_device, default_encoders, describe, member_name
from .kinds import (
    LABEL_KINDS,
    LabelPlan,
    apply_prompt,
    plan_boxes,
    plan_classification,
    plan_multilabel,
    plan_regression,
    plan_text,
)
from .width import tile_columns, to_width

TARGETS_MEMBER = "targets"  # the member name of numeric targets used as they are


@dataclass(frozen=True, eq=False)
class FLabels:
    """F-labels of one task, and what produced them.

    Classification gives per-class tables (:attr:`tables`, for ``emms(stats, class_embeddings=...)``); every
    other kind gives per-sample F-labels of shape (N, D2, K), streamed by :meth:`batches` for
    ``FeatureStats.update(features, label_embeddings=...)``.

    Attributes
    ----------
    kind : str
        One of ``LABEL_KINDS``.
    width : int
        D2, common to all K members (see ``hf_emms.labels.width`` for the rule).
    members : tuple of str
        The K members in order: encoder models, then ``"targets"`` when numeric targets are used directly.
    encoders : tuple of EncoderRecord
        Each encoder's model (Hub id or absolute folder), resolved revision (commit sha, or ``sha256:`` hash
        of a local folder's files), kind, pooling, encoder prompt, token limit and native width.
    prompt : str
        The task prompt applied to every label text (``"{}"``: none).
    class_names : tuple of str or None
        Cleaned class names (classification, multilabel).
    n_samples : int or None
        N for per-sample kinds; None for classification.
    n_encoded : int
        Texts this call ran through an encoder, over all encoders: 0 when everything came from the cache.
    """

    kind: str
    width: int
    members: tuple[str, ...]
    encoders: tuple[EncoderRecord, ...]
    prompt: str
    class_names: tuple[str, ...] | None
    n_samples: int | None
    n_encoded: int
    _plan: LabelPlan = field(repr=False)
    _text_tables: tuple[np.ndarray, ...] = field(repr=False)  # K_enc x (U, D2), float32

    @property
    def k(self) -> int:
        return len(self.members)

    @property
    def tables(self) -> list[np.ndarray]:
        """Classification: K arrays of shape (C, D2), row ``c`` the F-label of class id ``c``."""
        if self.kind != "classification":
            raise LabelError(f"{self.kind} F-labels are per sample: stream them with .batches() (or .to_array()).")
        return list(self._text_tables)

    def __len__(self) -> int:
        return self.n_samples if self.n_samples is not None else len(self._plan.texts)

    def batches(self, batch_size: int = 1024) -> Iterator[np.ndarray]:
        """Per-sample F-labels in sample order, ``batch_size`` samples at a time.

        Yields
        ------
        ndarray of shape (B, D2, K), float32
            Ready for ``FeatureStats.update(features, label_embeddings=...)``. Only one batch is materialised
            at a time: memory is that of the U distinct texts' embeddings, not N x D2 x K.
        """
        if self.n_samples is None:
            raise LabelError("classification F-labels are per class: pass .tables to emms(class_embeddings=...).")
        check_positive_int("batch_size", batch_size, error=LabelError)
        for lo in range(0, self.n_samples, batch_size):
            yield self._rows(lo, min(lo + batch_size, self.n_samples))

    def to_array(self) -> np.ndarray:
        """All per-sample F-labels at once: ndarray of shape (N, D2, K), float32."""
        return np.concatenate(list(self.batches(max(self.n_samples or 1, 1))))

    def _rows(self, lo: int, hi: int) -> np.ndarray:
        plan, parts = self._plan, []
        if self._text_tables:
            start, stop = plan.indptr[lo], plan.indptr[hi]
            row_of = np.repeat(np.arange(hi - lo), np.diff(plan.indptr[lo : hi + 1]))
            idx, w = plan.indices[start:stop], plan.weights[start:stop, None].astype(np.float32)
            for table in self._text_tables:
                out = np.zeros((hi - lo, self.width), dtype=np.float32)
                np.add.at(out, row_of, table[idx] * w)
                parts.append(out)
        if plan.targets is not None:
            t = plan.targets[lo:hi]
            parts.append(tile_columns(t, self.width) if self._text_tables else t.astype(np.float32))
        return np.stack(parts, axis=2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready provenance: what the pipeline records beside a ranking."""
        return {
            "kind": self.kind,
            "width": self.width,
            "members": list(self.members),
            "prompt": self.prompt,
            "encoders": [e.to_dict() for e in self.encoders],
            "class_names": None if self.class_names is None else list(self.class_names),
            "n_samples": self.n_samples,
        }


def embed_labels(
    labels: Any,
    *,
    kind: str,
    encoders: Any = None,
    classes: Any = None,
    prompt: str = "{}",
    clean_names: bool = True,
    encode_targets: bool = False,
    image_sizes: Any = None,
    box_format: str = "xyxy",
    width: int | None = None,
    cache_dir: str | os.PathLike | bool | None = None,
    device: str | None = None,
    batch_size: int = 64,
    progress: bool | None = None,
) -> FLabels:
    """Turn a task's labels into F-labels: embeddings of the labels by K foundation text models.

    Parameters
    ----------
    labels
        By ``kind`` (see ``hf_emms.labels.kinds`` for what each becomes):
        classification: the class vocabulary (a ``datasets.ClassLabel``, a list of C names, or ``{id: name}``);
        multilabel: per sample, a list of class ids or names (with ``classes=``);
        regression: numbers of shape (N,) or (N, T);
        text: per sample, a string or a list of reference strings;
        boxes: per sample, a box (4,), boxes (M, 4), or ``{"boxes": ..., "texts": ...}``.
    kind : {"classification", "multilabel", "regression", "text", "boxes"}
    encoders : EncoderSpec, str, path, or a sequence of them, optional
        The K encoders. None: :func:`~hf_emms.labels.default_encoders`.
    classes : ClassLabel, list of str, or mapping, optional
        Class names for ``kind="multilabel"``.
    prompt : str
        Template for every label text, e.g. ``"a photo of a {}"``.
    clean_names : bool
        Clean class names (underscores, CamelCase, casing, id prefixes) before encoding.
    encode_targets : bool
        Regression: also embed the numbers written as text; the raw targets then join as one more member,
        repeated to width D2 (a repeated column scores like the original).
    image_sizes : array-like of shape (N, 2), optional
        Boxes in pixels: (width, height) of each sample's image, to normalise them.
    box_format : {"xyxy", "xywh", "cxcywh"}
    width : int, optional
        D2; default the smallest encoder width. Each encoder is unit-normalised and mapped to D2 by a fixed
        random orthonormal map (``hf_emms.labels.width``).
    cache_dir : path, False, or None
        Where raw embeddings are cached; None: :func:`~hf_emms.labels.default_cache_dir`; False: no disk cache.
    device : str, optional
        Where encoders run; default CUDA when available.
    batch_size : int
        Texts per forward pass.
    progress : bool, optional
        Show a progress bar while encoding (None: when writing to a terminal).

    Returns
    -------
    FLabels

    Raises
    ------
    LabelError
        Labels that cannot be embedded: None, empty strings, unknown class ids or names, mixed types.
    EncoderLoadError
        An encoder that cannot be resolved or loaded.
    """
    plan = _plan(labels, kind, classes, prompt, clean_names, encode_targets, image_sizes, box_format)
    check_positive_int("batch_size", batch_size, error=LabelError)
    if not plan.texts:  # numbers only: no encoder runs
        if width is not None:
            raise LabelError(f"width= sets the width of encoded F-labels; {kind} targets are used as they are.")
        return FLabels(kind, plan.targets.shape[1], (TARGETS_MEMBER,), (), prompt, None, plan.n_samples, 0, plan, ())
    device = device or auto_device()
    specs = as_specs(encoders if encoders is not None else default_encoders(device))
    root = None if cache_dir is False else Path(cache_dir) if cache_dir not in (None, True) else default_cache_dir()

    from tqdm.auto import tqdm

    # No disk cache means none at all: a local encoder folder's file digests are not remembered either.
    with digests.read_only() if root is None else contextlib.nullcontext():
        described = [describe(spec) for spec in specs]
        records = tuple(record for record, _ in described)
        width = width if width is not None else min(r.dim for r in records)
        width = check_positive_int("width", width, error=LabelError)
        looked_up = [_cached(record, plan.texts, root) for record, _ in described]
        encoded = sum(len(missing) for _, _, _, missing in looked_up)
        # A bar only when something is encoded (all cached: none at all, not an empty "F-labels: 0text" line).
        with tqdm(total=encoded, desc="F-labels", unit="text",
                  disable=True if not encoded else None if progress is None else not progress) as bar:
            tables = [to_width(_raw_embeddings(spec, record, config, *cached, device, batch_size, bar), width)
                      for spec, (record, config), cached in zip(specs, described, looked_up)]
    members = tuple(r.model for r in records) + ((TARGETS_MEMBER,) if plan.targets is not None else ())
    names = None if plan.class_names is None else tuple(plan.class_names)
    return FLabels(kind, width, members, records, prompt, names, plan.n_samples, encoded, plan, tuple(tables))


def _plan(labels, kind, classes, prompt, clean, encode_targets, image_sizes, box_format) -> LabelPlan:
    check_choice("kind", kind, LABEL_KINDS, error=LabelError)
    if not isinstance(prompt, str) or prompt.count("{}") != 1:
        raise LabelError(f"prompt needs exactly one '{{}}' where the label goes, e.g. 'a photo of a {{}}'; got {prompt!r}.")
    if classes is not None and kind != "multilabel":
        raise LabelError(f"classes= is for multilabel labels; for {kind} pass the labels themselves.")
    if encode_targets and kind != "regression":
        raise LabelError("encode_targets= applies to regression targets only.")
    if (image_sizes is not None or box_format != "xyxy") and kind != "boxes":
        raise LabelError("image_sizes= and box_format= apply to box labels only.")
    if kind == "classification":
        return plan_classification(labels, prompt=prompt, clean=clean)
    if kind == "multilabel":
        return plan_multilabel(labels, classes, prompt=prompt, clean=clean)
    if kind == "regression":
        return plan_regression(labels, encode=encode_targets, prompt=prompt)
    if kind == "text":
        return plan_text(labels, prompt=prompt)
    return plan_boxes(labels, prompt=prompt, image_sizes=image_sizes, box_format=box_format)


def _cached(record: EncoderRecord, texts: list[str], root: Path | None) -> tuple[Any, list[str], dict, list[int]]:
    """One encoder's cache, the prompted texts, the embeddings it holds of them ({index: (D_k,)}) and the indices
    still to encode."""
    texts = [apply_prompt(record.prompt, t) for t in texts]
    # The prompt is in the texts themselves; a local folder is known by the hash of its files, not by where it is.
    key = {k: v for k, v in record.to_dict().items() if k != "prompt" and not (k == "model" and record.local)}
    cache = EmbeddingCache(root, key)
    found = cache.get(texts)
    return cache, texts, found, [i for i in range(len(texts)) if i not in found]


def _raw_embeddings(
    spec, record: EncoderRecord, config: Any, cache: Any, texts: list[str], found: dict, missing: list[int],
    device: str, batch_size: int, bar: Any,
) -> np.ndarray:
    """(U, D_k) raw embeddings of ``texts`` by one encoder: ``found`` (from its cache) and ``missing`` encoded now."""
    if missing:
        bar.set_description(f"F-labels ({member_name(record.model)})")
        encoder = TextEncoder(spec, record, config, device)
        fresh = encoder.encode([texts[i] for i in missing], batch_size=batch_size, progress=bar.update)
        del encoder  # one model in memory at a time
        if fresh.shape[1] != record.dim:
            raise EncoderLoadError(f"{record.model} returned width {fresh.shape[1]}, its config says {record.dim}.")
        cache.put([texts[i] for i in missing], fresh)
        found.update(zip(missing, fresh))
    return np.stack([found[i] for i in range(len(texts))])
