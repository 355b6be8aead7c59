"""The file format of ``FeatureStats``: one safetensors file, tensors plus JSON metadata, written atomically.

Layout. Every tensor of the accumulator under its own name (float64; see the table of names in ``stats.py``),
and one metadata entry ``hf_emms``: ``{"format": "hf-emms/feature-stats", "version": 3, "n": N, "kind":
"classes" | "embeddings", "packed": [...]}``. The Gram sums ``gram_x`` (D1, D1) and ``fold_gram_x`` (F, D1, D1) are
most of a file (28 of 28.4 MB at D1 = 768 with 5 folds). They are symmetric up to rounding (a product's two halves
are summed in different orders), so saving first makes each one exactly symmetric in place, the upper triangle
mirrored onto the lower one (a change in the last bits of the lower half: the statistics in memory stay equal to
what a load gives back), and stores one triangle (shape (D (D + 1) / 2,) with D = D1 rounded up to even, after the
leading fold dim; layout in ``_triangle``) named in ``packed``: half the bytes to write and read. This is done once per save, not per batch:
making every batch's Gram exactly symmetric during accumulation cost 40% more accumulation time. A Gram whose halves
differ by more than rounding (a hand-edited one) is stored whole, unchanged.

Reading accepts versions 2 (nothing packed) and 3, and checks the format and version, that exactly the tensors of
the kind are present (the head tables both or neither), and that their shapes agree with each other (one D1, C, Z,
D2, K and number of folds F), so a truncated, foreign or hand-edited file is a ``StatsFileError``, not a wrong score.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .._io import atomic_write
from ..errors import InvalidInputError, StatsFileError
from .kernels import _F64, _HEAD, _MOVABLE, _TARGET_SUMS

if TYPE_CHECKING:
    from .stats import FeatureStats

_FORMAT = "hf-emms/feature-stats"
_VERSION = 3
_READS = (2, 3)  # version 2: the same tensors, none packed
_SYMMETRIC = ("gram_x", "fold_gram_x")  # stored as one triangle when exactly symmetric
_REQUIRED = {
    kind: ("shift_x", "sum_x", "gram_x", "cubic_x", "quartic_x", *(("shift_y",) if kind == "embeddings" else ()),
           *sums, "fold_count", "fold_sum_x", "fold_gram_x", *(f"fold_{name}" for name in sums))
    for kind, sums in _TARGET_SUMS.items()
}


def save_stats(stats: FeatureStats, path: str | os.PathLike) -> Path:
    """Write ``stats`` to one safetensors file (tensors + JSON metadata), atomically; see :meth:`FeatureStats.save`."""
    from safetensors.torch import save_file

    if stats.n == 0:
        raise InvalidInputError("refusing to save empty statistics: no batch was accumulated.")
    path = Path(path)
    packed = [name for name in _SYMMETRIC if _make_symmetric(stats._t[name])]
    tensors = {k: v.detach().cpu().contiguous() for k, v in stats._t.items()}
    for name in packed:
        tensors[name] = _triangle(tensors[name])
    meta = {"format": _FORMAT, "version": _VERSION, "n": stats.n, "kind": stats.kind, "packed": packed}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"hf_emms": json.dumps(meta)}))


def _make_symmetric(g: torch.Tensor) -> bool:
    """Mirror the upper triangles of (..., D, D) Grams onto their lower ones, in place, when the two differ by
    rounding only (at most 1e-12 of the largest entry, per matrix); whether it did."""
    upper = _upper_mask(g.shape[-1], g.device)
    gap = (g - g.transpose(-1, -2)).abs().amax(dim=(-2, -1))
    if not bool((gap <= 1e-12 * g.abs().amax(dim=(-2, -1))).all()):
        return False
    g.copy_(torch.where(upper, g, g.transpose(-1, -2)))
    return True


def _triangle(g: torch.Tensor) -> torch.Tensor:
    """One triangle of (..., D, D) symmetric matrices in D' (D' + 1) / 2 values (D' = D rounded up to even, k = D' / 2),
    laid out with block copies, no gather: with G = [[G11, G12], [G21, G22]] in k x k blocks, G21 whole, then a
    (k + 1) x k array T holding G22's upper triangle in rows 0..k-1 and G11's lower triangle in rows 1..k (T[r, c]
    is G22[r, c] where r <= c, G11[r - 1, c] where r > c)."""
    if g.shape[-1] % 2:  # a zero row and column make the blocks square
        g = torch.nn.functional.pad(g, (0, 1, 0, 1))
    k, lead = g.shape[-1] // 2, g.shape[:-2]
    out = g.new_empty((*lead, k * k + (k + 1) * k))
    out[..., : k * k].unflatten(-1, (k, k)).copy_(g[..., k:, :k])
    tri = out[..., k * k :].unflatten(-1, (k + 1, k))
    tri[..., 1:, :] = g[..., :k, :k]
    tri[..., :-1, :] = torch.where(_upper_mask(k, g.device), g[..., k:, k:], tri[..., :-1, :])
    return out


def _symmetric_from(u: torch.Tensor, d: int) -> torch.Tensor:
    """The (..., d, d) symmetric matrices whose triangles ``_triangle`` gave."""
    k = (d + 1) // 2
    lower, tri = u[..., : k * k].unflatten(-1, (k, k)), u[..., k * k :].unflatten(-1, (k + 1, k))
    upper = _upper_mask(k, u.device)
    g = u.new_empty((*u.shape[:-1], 2 * k, 2 * k))
    g[..., k:, :k] = lower
    g[..., :k, k:] = lower.transpose(-1, -2)
    g11, g22 = tri[..., 1:, :], tri[..., :-1, :]
    g[..., :k, :k] = torch.where(upper.T, g11, g11.transpose(-1, -2))  # G11[i, j] = T[1 + i, j] for i >= j
    g[..., k:, k:] = torch.where(upper, g22, g22.transpose(-1, -2))
    return g[..., :d, :d].contiguous() if d % 2 else g


def _upper_mask(k: int, device: torch.device) -> torch.Tensor:
    """(k, k) True on and above the diagonal."""
    return torch.ones(k, k, dtype=torch.bool, device=device).triu()


def load_stats(path: str | os.PathLike, *, cls: type[FeatureStats], device: str | torch.device = "cpu") -> FeatureStats:
    """Read statistics written by :func:`save_stats`; see :meth:`FeatureStats.load`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise StatsFileError(f"no statistics file at {path}.")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = json.loads((f.metadata() or {}).get("hf_emms", "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise StatsFileError(f"{path} is not a readable safetensors file ({e}); re-run the extraction.") from e
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise StatsFileError(f"{path} was not written by FeatureStats.save (no '{_FORMAT}' metadata).")
    if meta.get("version") not in _READS:
        raise StatsFileError(f"{path} has statistics format version {meta.get('version')}; this hf-emms reads "
                             f"{' and '.join(map(str, _READS))}.")
    problem = _unpack(tensors, meta.get("packed", []))
    if problem:
        raise StatsFileError(f"{path} is inconsistent: {problem}.")
    required = set(_REQUIRED.get(meta.get("kind"), ()))
    optional = set(_HEAD) if meta.get("kind") == "classes" else set()
    present = set(tensors) - required
    if not required or not required <= set(tensors) or present not in (set(), optional):
        raise StatsFileError(f"{path} holds tensors {sorted(tensors)}; expected {sorted(required)}, with both or none of {_HEAD}.")
    n = meta.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise StatsFileError(f"{path} records n = {n!r}; expected a sample count >= 1.")
    problem = _shape_problem({k: tuple(v.shape) for k, v in tensors.items()})
    if problem:
        raise StatsFileError(f"{path} is inconsistent: {problem}.")
    out = cls(folds=int(tensors["fold_count"].shape[0]))
    out.n, out.kind, out._t = n, meta["kind"], {k: v.to(_F64) for k, v in tensors.items()}
    return out


def _unpack(tensors: dict[str, torch.Tensor], packed: object) -> str | None:
    """Replace the packed triangles named in ``packed`` by their full matrices, in place; what is wrong, or None."""
    if not isinstance(packed, list) or not set(packed) <= set(_SYMMETRIC) or not set(packed) <= set(tensors):
        return f"its packed tensors are {packed!r}; expected a list of some of {list(_SYMMETRIC)} that it holds"
    d = tensors["sum_x"].shape[0] if "sum_x" in tensors and tensors["sum_x"].dim() == 1 else 0
    for name in packed:
        even = d + d % 2
        if d < 1 or tensors[name].dim() < 1 or tensors[name].shape[-1] != even * (even + 1) // 2:
            return f"{name} holds {tuple(tensors[name].shape)} packed values, not the triangle of a width-{d} Gram"
        tensors[name] = _symmetric_from(tensors[name], d)
    return None


def _shape_problem(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """What is inconsistent about a set of statistics' shapes, or None."""
    d1 = shapes["sum_x"][0] if len(shapes["sum_x"]) == 1 else -1
    c = shapes["class_count"][0] if "class_count" in shapes else None
    z = shapes["head_soft"][1] if len(shapes.get("head_soft", ())) == 2 else None
    d2k = shapes.get("sum_y")
    f = shapes["fold_count"][0] if len(shapes.get("fold_count", ())) == 1 and shapes["fold_count"][0] >= 2 else -1
    expected = {
        "shift_x": (d1,), "sum_x": (d1,), "gram_x": (d1, d1), "cubic_x": (d1,), "quartic_x": (),
        "class_count": (c,), "class_sum_x": (c, d1), "head_hard": (c, z), "head_soft": (c, z),
    }
    if d2k is not None and len(d2k) == 2:
        d2, k = d2k
        expected.update(shift_y=(d2, k), sum_y=(d2, k), cross_xy=(d1, d2, k), gram_y=(d2, k, k))
    expected.update({f"fold_{name}": (f, *expected[name]) for name in _MOVABLE if name in expected})
    expected["fold_count"] = (f,)
    for name, shape in shapes.items():
        if d1 < 1 or expected.get(name) != shape:
            return f"{name} has shape {shape}, expected {expected.get(name)}"
    return None



