"""Pooling a model's outputs into one feature vector per sample, by rules that give real features.

In order of precedence (``pooling="auto"``):

1. The checkpoint's own declared pooling: a sentence-transformers ``modules.json`` whose Pooling module's
   ``config.json`` says e.g. mean pooling, and a Normalize module after it. Such checkpoints often hold a BERT pooler
   too, but the embedding they were trained to produce is the declared one.
2. ``pooler_output`` when the checkpoint trained it: the model returns one, no ``pooler`` weight was missing
   from the checkpoint, and its pooler's biases are not all exactly zero. (``AutoModel`` on a
   ``*ForImageClassification`` ViT reports ``pooler.dense.*`` missing: that pooler is random noise. A checkpoint
   saved after such a load holds the random pooler as if it were trained: transformers initialises biases to zero
   and no training step leaves them there, so a pooler whose biases are all zero never trained. Measured: a
   sentence-transformers MiniLM re-saved with ``AutoModel.save_pretrained``, without its ``modules.json``, scored
   -0.97 through that pooler, near the no-information level, against -0.78 mean-pooled.)
3. Otherwise the mean of the last hidden state: over non-padding tokens (text), over valid frames (audio), over
   patches (vision transformers), over the spatial positions of a 4-D map (CNNs). A joint image + text encoder
   (ViLT: text tokens, then image patches) averages its non-padding text tokens and every image position.

Dual encoders (CLIP, SigLIP, ALIGN: an output with ``image_embeds`` and ``text_embeds``) on an image + text task
give one *fused* feature per sample, whatever the option: with ``i`` and ``t`` the L2-normalised projected image and
text embeddings (P each), ``[i, t, i * t]`` (3P). The two towers never see each other, so the concatenation keeps
what each says alone, and the elementwise product is what they agree on (``sum(i * t)`` is CLIP's own image-text
similarity, before its temperature): a linear map on the fused feature can use either tower and their match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidInputError

METHODS = ("pooler_output", "mean", "cls", "max", "last_token")
_ST_MODES = {  # sentence-transformers Pooling config flag -> our method
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "last_token",
}


@dataclass(frozen=True)
class Pooling:
    """How features are pooled, and why.

    Attributes
    ----------
    method : str
        One of ``"pooler_output"``, ``"mean"`` (masked mean over tokens/frames/patches, spatial mean of 4-D maps),
        ``"cls"`` (first token), ``"max"`` (masked max), ``"last_token"`` (last non-padding token).
    reason : str
        Which rule chose it.
    normalize : bool
        L2-normalise each feature vector afterwards (declared by a sentence-transformers Normalize module).
    """

    method: str
    reason: str
    normalize: bool = False


def declared_pooling(folder: Path) -> Pooling | None:
    """The pooling a sentence-transformers checkpoint declares in ``modules.json``, or None. ``folder`` holds the
    ``modules.json``, or is the transformer's own folder beside it (the older layout, ``0_Transformer/``).

    A weighted or length-scaled mean (``weightedmean``, ``mean_sqrt_len_tokens``) is read as the plain mean, its
    nearest, and the reason says so; several modes at once cannot be reproduced and are ignored, and the
    other rules apply.
    """
    if not (folder / "modules.json").is_file() and _module_of_parent(folder):
        folder = folder.parent  # the older layout: the transformer in 0_Transformer/, modules.json beside it
    try:
        modules = json.loads((folder / "modules.json").read_text())
        pool_module = next(m for m in modules if m.get("type", "").endswith(".Pooling"))
        config = json.loads((folder / pool_module.get("path", "") / "config.json").read_text())
    except (OSError, ValueError, StopIteration, AttributeError, TypeError):
        return None
    named = {"lasttoken": "last_token"}.get(config.get("pooling_mode"), config.get("pooling_mode"))
    if named in METHODS:  # the mode written by name (sentence-transformers' own name for the last token: lasttoken)
        modes = [named]
    else:
        modes = [method for flag, method in _ST_MODES.items() if config.get(flag)]
    unsupported = [name for flag, name in (("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
                                           ("pooling_mode_weightedmean_tokens", "weightedmean"))
                   if config.get(flag) or config.get("pooling_mode") == name]
    normalize = any(m.get("type", "").endswith(".Normalize") for m in modules)
    where = f"sentence-transformers {pool_module.get('path') or '.'}/config.json"
    normalised = ", L2-normalised (Normalize module in modules.json)" if normalize else ""
    if len(unsupported) == 1 and not modes:  # a weighted or length-scaled mean: the plain mean is its nearest
        return Pooling("mean", f"the checkpoint declares {unsupported[0]} pooling ({where}), which is not reproduced "
                       f"here: the mean over tokens, its nearest{normalised}", normalize)
    if len(modes) != 1 or unsupported:
        return None
    return Pooling(modes[0], f"declared by the checkpoint ({where}){normalised}", normalize)


def _module_of_parent(folder: Path) -> bool:
    """Whether ``folder`` is a module of its parent's sentence-transformers ``modules.json`` (``0_Transformer/``)."""
    try:
        modules = json.loads((folder.parent / "modules.json").read_text())
        return any(isinstance(m, dict) and str(m.get("path", "")).strip("/") == folder.name for m in modules)
    except (OSError, ValueError, TypeError):
        return False


FUSED = "fused"  # the dual-encoder feature [i, t, i * t]: a rule, not an option


def is_dual_encoder(output: Any) -> bool:
    """Whether ``output`` holds separate projected image and text embeddings (a CLIP-like dual encoder)."""
    return getattr(output, "image_embeds", None) is not None and getattr(output, "text_embeds", None) is not None


def choose_pooling(option: str, *, folder: Path, output: Any, missing_keys: set[str], module: Any = None) -> Pooling:
    """Resolve ``option`` (``"auto"`` or a method name) for a model, given its first batch's ``output`` (and the
    module that produced it, whose pooler weights tell a trained pooler from one never trained)."""
    if option not in ("auto", *METHODS):
        raise InvalidInputError(f"pooling={option!r} is not one of 'auto', {', '.join(map(repr, METHODS))}.")
    if is_dual_encoder(output):
        reason = ("dual encoder: [image, text, image * text] of its L2-normalised projected embeddings"
                  + ("" if option == "auto" else f" (pooling={option!r} does not apply to a dual encoder)"))
        return Pooling(FUSED, reason)
    if option != "auto":
        if option not in METHODS:
            raise InvalidInputError(f"pooling={option!r} is not one of 'auto', {', '.join(map(repr, METHODS))}.")
        if option == "pooler_output" and getattr(output, "pooler_output", None) is None:
            raise InvalidInputError("pooling='pooler_output' was asked for, but this model returns no pooler_output.")
        return Pooling(option, "asked for by the caller")
    declared = declared_pooling(folder)
    if declared is not None:
        return declared
    reason = "no pooler_output"
    if getattr(output, "pooler_output", None) is not None:
        missing = sorted(k for k in missing_keys if "pooler" in k)
        if missing:
            reason = f"pooler weights missing from the checkpoint ({', '.join(missing)}): its pooler is random"
        elif _untrained_pooler(module):
            reason = "the checkpoint's pooler never trained (its biases are exactly zero, as initialised)"
        else:
            return Pooling("pooler_output", "the model's pooler_output (the checkpoint holds every pooler weight)")
    where = "spatial mean of the 4-D feature map" if _hidden(output).ndim == 4 else "mean over non-padding positions"
    return Pooling("mean", f"{reason}; {where}")


def _untrained_pooler(module: Any) -> bool:
    """Whether ``module`` has pooler biases and every one is exactly zero: the value transformers initialises them
    to, which no training step keeps."""
    if module is None:
        return False
    biases = [p for name, p in module.named_parameters() if "pooler" in name and name.endswith("bias")]
    return bool(biases) and all(not torch.any(b) for b in biases)


def pool(output: Any, pooling: Pooling, mask: torch.Tensor | None) -> torch.Tensor:
    """Pooled features, shape (B, D1).

    Parameters
    ----------
    output : transformers ModelOutput
        With ``last_hidden_state`` of shape (B, T, D), or (B, D, H, W) for CNNs.
    pooling : Pooling
    mask : torch.Tensor of shape (B, T), optional
        1 for real tokens or frames, 0 for padding; None when every position is real.
    """
    if pooling.method == FUSED:
        return fuse(output.image_embeds, output.text_embeds)
    if pooling.method == "pooler_output":
        return _normalized(output.pooler_output.flatten(1), pooling)
    return pool_hidden(_hidden(output), pooling, mask)


def pool_hidden(hidden: torch.Tensor, pooling: Pooling, mask: torch.Tensor | None) -> torch.Tensor:
    """One hidden state (B, T, D) or 4-D map (B, C, H, W) pooled by ``pooling``'s rule over its positions, shape
    (B, D). A lower layer of a ``pooler_output`` checkpoint is mean-pooled: the trained pooler reads the last layer.
    """
    if hidden.ndim == 4:  # (B, C, H, W) -> (B, H*W, C): positions of the map are its "tokens"
        hidden = hidden.flatten(2).transpose(1, 2)
    elif hidden.ndim != 3:
        raise InvalidInputError(f"cannot pool a hidden state of shape {tuple(hidden.shape)}.")
    method = "mean" if pooling.method == "pooler_output" else pooling.method
    return _normalized(_pool_positions(hidden, method, mask), pooling)


def _normalized(features: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    if pooling.normalize:
        return torch.nn.functional.normalize(features.float(), dim=-1).to(features.dtype)
    return features


def fuse(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """The dual-encoder feature: ``[i, t, i * t]`` with ``i``, ``t`` the L2-normalised embeddings, shape (B, 3P).

    Normalised in float32 (half-precision norms lose digits), returned in the embeddings' dtype.
    """
    i = torch.nn.functional.normalize(image_embeds.flatten(1).float(), dim=-1)
    t = torch.nn.functional.normalize(text_embeds.flatten(1).float(), dim=-1)
    if i.shape != t.shape:
        raise InvalidInputError(f"a dual encoder's image and text embeddings differ in shape: {tuple(i.shape)} vs "
                                f"{tuple(t.shape)}.")
    return torch.cat([i, t, i * t], dim=-1).to(image_embeds.dtype)


def _pool_positions(hidden: torch.Tensor, method: str, mask: torch.Tensor | None) -> torch.Tensor:
    """Pool (B, T, D) over T, counting only positions where ``mask`` is 1."""
    if method == "cls":
        return hidden[:, 0]
    if mask is None:
        mask = hidden.new_ones(hidden.shape[:2])
    mask = mask.to(hidden.device)
    if method == "last_token":  # padding is on the right (set by the preprocessing), so the last real is at len-1
        last = mask.long().sum(1).clamp(min=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    keep = mask.to(hidden.dtype).unsqueeze(-1)
    if method == "max":
        return hidden.masked_fill(keep == 0, torch.finfo(hidden.dtype).min).amax(1)
    # Sum in float32 at least: a bf16 sum over hundreds of tokens loses most of its digits.
    total = (hidden.float() * keep.float()).sum(1)
    return (total / keep.float().sum(1).clamp(min=1)).to(hidden.dtype)


def _hidden(output: Any) -> torch.Tensor:
    hidden = getattr(output, "last_hidden_state", None)
    return hidden if hidden is not None else output[0]
