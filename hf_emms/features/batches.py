"""Preprocessed batches for one candidate: tokenised (or processed) in DataLoader workers, moved to the device, and
kept for the next candidate that shares the tokenizer (a family of checkpoints shares one), so a ranking tokenises
each family once."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .cache import array_digest, cache_key
from .candidate import LoadedCandidate
from .inputs import Preprocess

if TYPE_CHECKING:  # extract.py builds the job and imports this module
    from .extract import Job

__all__ = ["batches"]


def batches(
    job: Job, loaded: LoadedCandidate, rows: np.ndarray, max_length: int | None, device: torch.device, name: str,
    *, show: bool,
):
    """Preprocessed batches on ``device`` (preprocessing in DataLoader workers), with a progress bar."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    size = job.settings.batch_size
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    key = _tokenizer_key(job, loaded, max_length, rows)
    source = job.token_batches.get(key) if key else None
    kept: list[dict[str, Any]] | None = None
    if source is None:
        workers = job.settings.num_workers
        if workers is None:
            workers = 0 if device.type == "cpu" else min(4, os.cpu_count() or 1)
        source = DataLoader(
            chunks, batch_size=None, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
            collate_fn=Preprocess(job.dataset, job.spec, loaded.preprocessor, max_length=max_length),
        )
        kept = [] if key else None
    float_dtype = loaded.model.dtype
    for batch in tqdm(source, total=len(chunks), desc=name[-40:], unit="batch", disable=not show, leave=False):
        if kept is not None:
            kept.append(batch)
        yield {**batch, "inputs": {  # a new dict: a kept batch stays on the CPU for the next candidate
            k: _pinned(v, device).to(device, dtype=float_dtype if v.is_floating_point() else None, non_blocking=True)
            for k, v in batch["inputs"].items()
        }}
    if kept is not None:
        job.token_batches[key] = kept


def _pinned(t: Any, device: torch.device) -> Any:
    """``t`` in pinned memory when it goes to a GPU: only such a copy is asynchronous; one from pageable memory waits
    for the kernels already queued. (The DataLoader pins its batches, but not a tokenised batch kept from an earlier
    candidate, nor every batch type it is given.)"""
    if device.type != "cuda" or not isinstance(t, torch.Tensor) or t.is_pinned():
        return t
    return t.pin_memory()


_KEEP_TOKENS = 4_000_000  # token positions kept across candidates (about 100 MB of ids and masks)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                    "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model")


def _tokenizer_key(job: Job, loaded: LoadedCandidate, max_length: int | None, rows: np.ndarray) -> str | None:
    """Identity of a text candidate's tokenised batches: its tokenizer's class and files, the length limit, the rows
    and batch size; None when they are not worth keeping (other inputs, or more than ``_KEEP_TOKENS`` positions)."""
    if job.spec.modality != "text" or len(rows) * (max_length or 512) > _KEEP_TOKENS:
        return None
    files = {name: array_digest(np.frombuffer((loaded.folder / name).read_bytes(), dtype=np.uint8))
             for name in _TOKENIZER_FILES if (loaded.folder / name).is_file()}
    if not files:
        return None
    return cache_key({"tokenizer": type(loaded.preprocessor).__name__, "files": files, "max_length": max_length,
                      "rows": array_digest(rows), "batch_size": job.settings.batch_size})
