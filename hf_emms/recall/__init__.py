"""Recall: a short list of checkpoints from transfer history and metadata alone, before any forward pass.

Two phases at Hub scale: recall is cheap and approximate (this package: one dot product per model, no weights
downloaded), EMMS is exact and paid per candidate on the short list.

>>> from hf_emms.recall import TransferSpace, read_history, shortlist, TaskText
>>> space = TransferSpace.fit(read_history("transfer_history/"))        # or TransferSpace.load(default_space_path())
>>> task = TaskText("my-reviews", "Movie review sentiment", ("negative", "positive"))
>>> kept, scores, reasons = shortlist(space, candidates, task, k=10)  # candidates: hub.Candidate, ModelMeta or ids
"""

from .embed import HashingEmbedder, MiniLMEmbedder, default_embedder, id_text
from .history import (
    History, ModelMeta, TaskText, history_from_candidates, history_from_model_index, history_from_store, merge,
    read_history, read_logme,
)
from .rankings import top_k_recall, weighted_tau
from .shortlist import build_space, default_space_path, shortlist, task_from, task_vector
from .config import RecallConfig
from .space import TransferSpace

__all__ = [
    "HashingEmbedder", "History", "MiniLMEmbedder", "ModelMeta", "RecallConfig", "TaskText", "TransferSpace",
    "build_space", "default_embedder", "default_space_path", "history_from_candidates", "history_from_model_index",
    "history_from_store",
    "id_text", "merge", "read_history", "read_logme", "shortlist", "task_from", "task_vector", "top_k_recall",
    "weighted_tau",
]
