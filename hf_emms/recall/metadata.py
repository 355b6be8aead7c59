"""Metadata features of a checkpoint, computable for any Hub model without loading it (the cold-start side).

For a model m, :class:`MetaEncoder` builds phi(m) of width d (standardised columns, fitted on the history's models):

    phi(m) = [ onehot(model_type) | z(log10 params), z(log10 params)^2, params unknown | has named head labels,
               log(#head labels) | P_id^T e(id text) | P_head^T e(head labels) ]                            (eq. 3)

where e is the proxy text embedder (unit rows), the id text is the words of the model id plus its informative tags
(:func:`model_text`), the head text the model's own non-placeholder head labels (its source task), and P_id, P_head
the top principal directions of the history models' embeddings (so that a few dozen models fit a few weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..labels import clean_class_name
from ..labels.names import is_generic_name
from .embed import id_text
from .history import ModelMeta

__all__ = ["MetaEncoder", "head_text", "model_text"]

# Tags that say nothing about what a model learned (format, licence, region, hosting).
_SKIP_TAG_PREFIXES = ("license:", "region:", "endpoints", "autotrain", "safetensors", "pytorch", "tf", "jax",
                      "has_space", "text-embeddings-inference", "model-index", "arxiv:", "base_model:", "doi:")


def model_text(meta: ModelMeta) -> str:
    """Words of the id, the architecture and the informative tags: e.g. ``"bertweet base; roberta; en, emotion"``."""
    tags = [t.split(":", 1)[-1].replace("-", " ") for t in meta.tags
            if not t.lower().startswith(_SKIP_TAG_PREFIXES) and t != meta.model_type]
    parts = [id_text(meta.model_id), meta.model_type or "", ", ".join(dict.fromkeys(tags))]
    return "; ".join(p for p in parts if p)


def head_text(meta: ModelMeta) -> str:
    """The model's own head labels as words (``"negative, positive"``); "" when they are placeholders or numbers."""
    words = []
    for label in meta.labels:
        if label.strip() and not is_generic_name(label) and not label.strip().lstrip("-").isdigit():
            try:
                words.append(clean_class_name(label))
            except ValueError:
                continue
    return ", ".join(dict.fromkeys(words))


def _pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and the top ``k`` principal directions (D, k') of the rows of ``x`` (k' <= k, <= n - 1)."""
    mean = x.mean(0) if len(x) else np.zeros(x.shape[1])
    if len(x) < 2 or k < 1:
        return mean, np.zeros((x.shape[1], 0))
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    keep = min(k, int((s > 1e-6 * max(s[0], 1e-12)).sum()))
    basis = vt[:keep].T
    basis *= np.sign(basis[np.argmax(np.abs(basis), axis=0), range(keep)])  # a sign that does not depend on LAPACK
    return mean, basis


class MetaEncoder:
    """phi(m) of eq. 3, fitted on the history's models.

    Parameters
    ----------
    id_dims, head_dims : int
        Principal directions kept of the id-text and head-label embeddings.
    """

    def __init__(self, id_dims: int = 16, head_dims: int = 8) -> None:
        self.id_dims, self.head_dims = id_dims, head_dims
        self.types: list[str] = []

    def _raw(self, metas: Sequence[ModelMeta], embed: Callable, emb_id: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(numeric (n, t+5), id embeddings (n, D), head embeddings (n, D)) before projection and scaling."""
        n = len(metas)
        types = np.zeros((n, len(self.types) + 1))
        index = {t: i for i, t in enumerate(self.types)}
        for i, m in enumerate(metas):
            types[i, index.get(m.model_type or "", len(self.types))] = 1.0
        logp = np.array([math.log10(m.num_parameters) if m.num_parameters else np.nan for m in metas])
        heads = [head_text(m) for m in metas]
        n_labels = np.array([math.log(max(len(m.labels), 1)) for m in metas])
        numeric = np.column_stack([types, logp, np.isnan(logp), [bool(h) for h in heads], n_labels])
        if emb_id is None:
            emb_id = embed([model_text(m) for m in metas])
        return numeric, np.asarray(emb_id, np.float64), np.asarray(embed(heads), np.float64)

    def fit(self, metas: Sequence[ModelMeta], embed: Callable, emb_id: np.ndarray | None = None) -> np.ndarray:
        """Fit on the history's models and return their phi: ndarray (n, d)."""
        counts: dict[str, int] = {}
        for m in metas:
            counts[m.model_type or ""] = counts.get(m.model_type or "", 0) + 1
        self.types = sorted(t for t, c in counts.items() if t and c >= 2)  # a type seen once is "other"
        numeric, e_id, e_head = self._raw(metas, embed, emb_id)
        logp = numeric[:, len(self.types) + 1]
        self.logp_mean = float(np.nanmean(logp)) if np.isfinite(logp).any() else 8.0
        self.logp_std = float(np.nanstd(logp)) if np.isfinite(logp).sum() > 1 else 1.0
        self.logp_std = self.logp_std or 1.0
        self.id_mean, self.id_basis = _pca(e_id, self.id_dims)
        has_head = np.linalg.norm(e_head, axis=1) > 0
        self.head_mean, self.head_basis = _pca(e_head[has_head], self.head_dims)
        raw = self._assemble(numeric, e_id, e_head)
        self.col_mean = raw.mean(0) if len(raw) else np.zeros(raw.shape[1])
        self.col_std = raw.std(0) if len(raw) > 1 else np.ones(raw.shape[1])
        self.col_std[self.col_std < 1e-9] = 1.0
        return (raw - self.col_mean) / self.col_std

    def _assemble(self, numeric: np.ndarray, e_id: np.ndarray, e_head: np.ndarray) -> np.ndarray:
        t = len(self.types) + 1
        z = (np.nan_to_num(numeric[:, t], nan=self.logp_mean) - self.logp_mean) / self.logp_std
        has_head = np.linalg.norm(e_head, axis=1, keepdims=True) > 0
        head = np.where(has_head, (e_head - self.head_mean) @ self.head_basis, 0.0)
        return np.column_stack([numeric[:, :t], z, z**2, numeric[:, t + 1:], (e_id - self.id_mean) @ self.id_basis,
                                head])

    def transform(self, metas: Sequence[ModelMeta], embed: Callable, emb_id: np.ndarray | None = None) -> np.ndarray:
        """phi of any models: ndarray (n, d), standardised with the fitted means and scales."""
        numeric, e_id, e_head = self._raw(metas, embed, emb_id)
        return (self._assemble(numeric, e_id, e_head) - self.col_mean) / self.col_std

    # -- persistence: arrays to safetensors, the rest to JSON ------------------------------------------------------
    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"meta.id_mean": self.id_mean, "meta.id_basis": self.id_basis, "meta.head_mean": self.head_mean,
                  "meta.head_basis": self.head_basis, "meta.col_mean": self.col_mean, "meta.col_std": self.col_std}
        return ({k: np.ascontiguousarray(v, np.float64) for k, v in arrays.items()},
                {"types": self.types, "logp_mean": self.logp_mean, "logp_std": self.logp_std,
                 "id_dims": self.id_dims, "head_dims": self.head_dims})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], info: dict) -> MetaEncoder:
        enc = cls(info["id_dims"], info["head_dims"])
        enc.types, enc.logp_mean, enc.logp_std = list(info["types"]), info["logp_mean"], info["logp_std"]
        for k in ("id_mean", "id_basis", "head_mean", "head_basis", "col_mean", "col_std"):
            setattr(enc, k, arrays[f"meta.{k}"])
        return enc
