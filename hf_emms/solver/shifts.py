"""Sums about one centre re-expressed about another: the exact identities that let statistics streamed about a
running shift be merged, re-centred at a fold's training mean, or summed across processes without a second pass."""

from __future__ import annotations

import torch

__all__ = ["move_sums"]


def move_sums(t: dict[str, torch.Tensor], n: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Sums about the shifts (c - dx, d - dy) from sums about (c, d), for any subset of the movable sums
    (``kernels._MOVABLE``).

    Every tensor may carry leading batch dims L (e.g. one entry per fold), shared by the count ``n`` (L),
    ``dx`` (L, D1) or (D1,), and ``dy`` (L, D2, K) or (D2, K). With S1 = sum(x - c), G = sum (x - c)(x - c)^T:
      S1' = S1 + n dx,   G' = G + dx S1^T + S1 dx^T + n dx dx^T,   class sums' = class sums + n_c dx,
    and likewise for the F-label sums and the feature x F-label cross products. Counts do not move.
    """
    out = dict(t)
    if "sum_x" in t:
        s1 = t["sum_x"]
        out["sum_x"] = s1 + n[..., None] * dx
        if "gram_x" in t:
            out["gram_x"] = (
                t["gram_x"] + dx[..., :, None] * s1[..., None, :] + s1[..., :, None] * dx[..., None, :]
                + n[..., None, None] * dx[..., :, None] * dx[..., None, :]
            )
    if "class_sum_x" in t:
        out["class_sum_x"] = t["class_sum_x"] + t["class_count"][..., None] * dx[..., None, :]
    if "sum_y" in t:
        sy = t["sum_y"]
        out["sum_y"] = sy + n[..., None, None] * dy
        if "cross_xy" in t:
            out["cross_xy"] = (
                t["cross_xy"] + dx[..., :, None, None] * sy[..., None, :, :] + t["sum_x"][..., :, None, None] * dy[..., None, :, :]
                + n[..., None, None, None] * dx[..., :, None, None] * dy[..., None, :, :]
            )
        if "gram_y" in t:
            out["gram_y"] = (
                t["gram_y"] + dy[..., :, :, None] * sy[..., :, None, :] + sy[..., :, :, None] * dy[..., :, None, :]
                + n[..., None, None, None] * dy[..., :, :, None] * dy[..., :, None, :]
            )
    return out
