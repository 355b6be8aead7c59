"""Forward pass + pooling of one batch of one candidate: the only model code on the hot path of extraction.

With several layers selected (:mod:`.layers`) the same forward pass returns every hidden state, and each selected
layer is pooled; the last layer is pooled exactly as in a last-layer run."""

from __future__ import annotations

from typing import Any

import torch

from .._timing import Phases
from ..errors import CandidateLoadError, HfEmmsError
from .adaptive import HalvingBatches
from .candidate import LoadedCandidate
from .layers import UPPER, layer_keys, select_layers, upper_half
from .pooling import FUSED, Pooling, choose_pooling, pool, pool_hidden

__all__ = ["Runner"]


class Runner:
    """Forward pass + pooling of one batch, halving the batch on out-of-memory; the pooling and the layers are
    resolved on the first batch (the rules need to see the model's outputs).

    A call returns ``({key: (B, D1) features}, logits)``: one key per kept statistic (:func:`.layers.layer_keys`),
    the last layer's under :attr:`last_key`.
    """

    def __init__(self, loaded: LoadedCandidate, pooling: str, batch_size: int, *, sync: bool = False,
                 layers: str | tuple[int, ...] = "last") -> None:
        self.loaded = loaded
        self.option = pooling
        self.pooling: Pooling | None = None
        self.layer_option = layers
        self.layers: tuple[int, ...] = ()  # hidden-state indices pooled, resolved on the first batch
        self.n_layers: int | None = None  # L, when the model returns its hidden states
        self.keys: list[str] = []
        self.widths: dict[int, int] = {}  # hidden-state index -> pooled width, resolved with the layers
        self.batches = HalvingBatches(batch_size)
        # "forward" and "pooling" seconds; with ``sync`` (profiling) a GPU's queued work is waited for at each phase's end
        self.phases = Phases(getattr(loaded.model, "device", None) if sync else None)
        self._captured: Any = None
        if loaded.encoder is not loaded.model:  # the head's model: keep its encoder's output on the way through
            loaded.encoder.register_forward_hook(self._capture)

    def _capture(self, module: Any, args: Any, output: Any) -> None:
        self._captured = output

    @property
    def last_key(self) -> str:
        """The key of the last layer's features (the ones a last-layer run computes): its index, or ``"last"`` when
        the model's layers are not counted (``layers="last"``, or no hidden states)."""
        return "last" if self.n_layers is None else str(self.n_layers)

    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
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
        features = {key: torch.cat([p[0][key] for p in parts]) for key in parts[0][0]}
        logits = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
        return features, logits

    def _forward(self, inputs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        loaded = self.loaded
        hidden = self.layer_option != "last" and (self.pooling is None or len(self.layers) > 1)
        with torch.inference_mode():
            with self.phases("forward"):
                output = loaded.model(**inputs, **({"output_hidden_states": True} if hidden else {}))
            with self.phases("pooling"):
                encoded = self._captured if loaded.encoder is not loaded.model else output
                self._captured = None
                if self.pooling is None:
                    self.pooling = choose_pooling(
                        self.option, folder=loaded.folder, output=encoded, missing_keys=loaded.missing_keys,
                        module=loaded.encoder,
                    )
                    self._resolve_layers(encoded)
                mask = _position_mask(loaded, inputs, encoded)
                features = {self.last_key: pool(encoded, self.pooling, mask)}
                if len(self.layers) > 1:
                    features = self._pool_layers(encoded, mask, features)
        return features, (output.logits if loaded.head_classes else None)

    def _resolve_layers(self, encoded: Any) -> None:
        """The layers this model can give: the option's, when it returns hidden states of the last layer's shape;
        the last alone otherwise (a dual encoder's fused embeddings, a model without hidden states)."""
        states = getattr(encoded, "hidden_states", None)
        if self.pooling.method == FUSED or not states or self.layer_option == "last":
            self.n_layers, self.layers, self.keys = None, (), ["last"]
            return
        self.n_layers = len(states) - 1
        self.layers = select_layers(self.layer_option, self.n_layers)
        # pooled widths: the channels of a (B, C, H, W) map, the last axis of a (B, T, D) state
        self.widths = {i: int(s.shape[1] if s.ndim == 4 else s.shape[-1]) for i, s in enumerate(states)}
        self.keys = layer_keys(self.layers, self.n_layers, self.widths)

    def _pool_layers(self, encoded: Any, mask: torch.Tensor | None,
                     features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every selected lower layer pooled by the same rule (mean where the last layer used a trained pooler), and
        the mean of the upper-half layers."""
        states, last = encoded.hidden_states, self.n_layers
        for i in self.layers[:-1]:
            features[str(i)] = pool_hidden(states[i], self.pooling, mask)
        out = {str(i): features[str(i)] for i in self.layers}
        if UPPER in self.keys:  # the last layer as its lower neighbours are pooled (a trained pooler is its own)
            own = out[str(last)] if self.pooling.method != "pooler_output" else pool_hidden(states[last], self.pooling, mask)
            parts = [out[str(i)] if i != last else own for i in upper_half(self.layers, last, self.widths)]
            out[UPPER] = torch.stack([p.float() for p in parts]).mean(0).to(own.dtype)
        return out


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
