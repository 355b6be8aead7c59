"""Forward pass + pooling of one batch of one candidate: the only model code on the hot path of extraction."""

from __future__ import annotations

from typing import Any

import torch

from .._timing import Phases
from ..errors import CandidateLoadError, HfEmmsError
from .adaptive import HalvingBatches
from .candidate import LoadedCandidate
from .pooling import Pooling, choose_pooling, pool

__all__ = ["Runner"]


class Runner:
    """Forward pass + pooling of one batch, halving the batch on out-of-memory; the pooling is chosen on the first
    batch (the rules need to see the model's outputs)."""

    def __init__(self, loaded: LoadedCandidate, pooling: str, batch_size: int, *, sync: bool = False) -> None:
        self.loaded = loaded
        self.option = pooling
        self.pooling: Pooling | None = None
        self.batches = HalvingBatches(batch_size)
        # "forward" and "pooling" seconds; with ``sync`` (profiling) a GPU's queued work is waited for at each phase's end
        self.phases = Phases(getattr(loaded.model, "device", None) if sync else None)
        self._captured: Any = None
        if loaded.encoder is not loaded.model:  # the head's model: keep its encoder's output on the way through
            loaded.encoder.register_forward_hook(self._capture)

    def _capture(self, module: Any, args: Any, output: Any) -> None:
        self._captured = output

    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        try:
            parts = self.batches(self._forward, inputs)
        except (TypeError, ValueError, RuntimeError, IndexError) as e:
            # A model that cannot run these inputs at all (first batch) is a candidate failure, reported with its
            # reason; our own errors (bad options, out of memory) and later failures propagate as they are.
            if self.pooling is not None or isinstance(e, (HfEmmsError, torch.OutOfMemoryError)):
                raise
            raise CandidateLoadError(
                self.loaded.resolved.model_id, f"{type(self.loaded.model).__name__} fails on these inputs "
                f"({type(e).__name__}: {(str(e).splitlines() or [''])[0]})",
            ) from e
        features = torch.cat([p[0] for p in parts])
        logits = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
        return features, logits

    def _forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        loaded = self.loaded
        with torch.inference_mode():
            with self.phases("forward"):
                output = loaded.model(**inputs)
            with self.phases("pooling"):
                encoded = self._captured if loaded.encoder is not loaded.model else output
                self._captured = None
                if self.pooling is None:
                    self.pooling = choose_pooling(
                        self.option, folder=loaded.folder, output=encoded, missing_keys=loaded.missing_keys
                    )
                features = pool(encoded, self.pooling, _position_mask(loaded, inputs, encoded))
        return features, (output.logits if loaded.head_classes else None)


def _position_mask(loaded: LoadedCandidate, inputs: dict[str, torch.Tensor], output: Any) -> torch.Tensor | None:
    """1 for positions of the last hidden state that hold real input: tokens (text), frames (audio); None for images.

    Image + text: a joint encoder whose hidden state is longer than its text (ViLT: the text tokens, then the image
    positions) counts the text's non-padding tokens and every image position; one whose image tokens sit inside the
    token ids (LLaVA-like) has a mask as long as its hidden state and uses it as it is."""
    mask = inputs.get("attention_mask")
    if mask is None or loaded.modality == "image":
        return None
    hidden = getattr(output, "last_hidden_state", None)
    if hidden is None:  # a dual encoder's output: pooled by fusing its embeddings, no positions
        return None
    if loaded.modality == "image-text":
        extra = hidden.shape[1] - mask.shape[1]
        return torch.cat([mask, mask.new_ones(mask.shape[0], extra)], 1) if extra > 0 else mask
    if hidden.ndim == 3 and hidden.shape[1] != mask.shape[1]:  # audio: samples -> frames, as the model counts them
        frames = getattr(loaded.encoder, "_get_feature_vector_attention_mask", None)
        return frames(hidden.shape[1], mask) if frames else None
    return mask
