"""One F-label width for K encoders of different widths, without favouring any encoder for its width.

The solver needs one width D2 for all K F-labels (it mixes them column by column), but encoders differ:
CLIP text 512, BERT and GPT-2 768, MiniLM 384. The rule here:

1. Each encoder's embedding of a text is scaled to unit L2 norm (the cosine geometry these encoders
   are trained for; the encoder's overall scale carries no meaning).
2. It is mapped to the common width D2 by a fixed, seeded random orthonormal map R of shape (D_k, D2):
   orthonormal columns when D_k >= D2 (a Johnson-Lindenstrauss projection: inner products, hence the
   geometry between labels, are kept up to O(1/sqrt(D2))), orthonormal rows when D_k < D2 (an exact
   isometry into the wider space). A projection is scaled by sqrt(D_k / D2) so that norms, and so inner
   products, are kept in expectation. Every encoder goes through such a map, including one already of
   width D2, so all K are treated alike.
3. D2 is the smallest encoder width unless the caller chooses one.

Why not the alternatives: zero-padding the narrow encoders gives them constant columns, which carry no
variance and so make them cheaper to fit (the simplex would favour them); truncating keeps arbitrary
coordinates; PCA to D2 puts the variance in the first columns, and since the solver standardises each
column that whitens the table, which erases what distinguishes one encoder from another. A random
rotation spreads every direction of variance over all columns, so per-column standardisation keeps
the encoder's own geometry.

The map depends only on (D_k, D2) and a fixed seed: the same encoder always gives the same F-labels,
on every machine (numpy's PCG64 stream and Householder QR with signs fixed by diag(R) > 0).
"""

from __future__ import annotations

import functools

import numpy as np

_SEED = 0x454D4D53  # "EMMS"


@functools.lru_cache(maxsize=32)
def width_map(native: int, width: int) -> np.ndarray:
    """The seeded random orthonormal map from ``native`` to ``width`` columns.

    Returns
    -------
    ndarray of shape (native, width), float64
        Orthogonal columns of norm sqrt(native / width) if ``native > width``; orthonormal rows otherwise.
    """
    if native < 1 or width < 1:
        raise ValueError(f"widths must be positive; got native={native}, width={width}.")
    rng = np.random.default_rng([_SEED, native, width])
    big, small = max(native, width), min(native, width)
    q, r = np.linalg.qr(rng.standard_normal((big, small)))
    q *= np.sign(np.diag(r))  # QR is unique once diag(R) > 0: the map does not depend on the LAPACK build
    if native > width:
        q *= np.sqrt(native / width)  # E|x R|^2 = |x|^2
    q.setflags(write=False)
    return q if native >= width else q.T


def to_width(embeddings: np.ndarray, width: int) -> np.ndarray:
    """Unit-normalise rows and map them to ``width`` columns (see the module docstring).

    Parameters
    ----------
    embeddings : ndarray of shape (n, D_k)
        One encoder's raw pooled embeddings.
    width : int
        D2.

    Returns
    -------
    ndarray of shape (n, D2), float32
    """
    e = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    e = e / np.where(norms > 0, norms, 1.0)
    return (e @ width_map(e.shape[1], width)).astype(np.float32)


def tile_columns(targets: np.ndarray, width: int) -> np.ndarray:
    """Numeric targets (n, T) repeated cyclically to ``width`` columns: column j is target ``j % T``.

    Used to stack raw targets (regression values, box coordinates) beside encoded F-labels of width D2.
    The solver standardises and scores column by column, so a repeated column scores exactly like the
    original; with D2 a multiple of T every target counts equally.
    """
    t = np.asarray(targets, dtype=np.float32)
    return t[:, np.arange(width) % t.shape[1]]
