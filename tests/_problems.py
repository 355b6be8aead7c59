"""Random EMMS problems that exercise the numerics: K = 1..5, D1 > N, constant and duplicated columns,
ill-conditioned features, and features sitting at 1e4 x their spread."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLAVOURS = ("plain", "wide", "degenerate", "ill_conditioned", "offset")


@dataclass
class Problem:
    x: np.ndarray  # (N, D1)
    labels: np.ndarray  # (N,) class ids
    tables: list[np.ndarray]  # K x (C, D2) class-name embeddings
    label_embeddings: np.ndarray  # (N, D2, K) per-sample F-labels (class embedding + per-sample noise)
    flavour: str

    @property
    def class_label_embeddings(self) -> np.ndarray:
        """(N, D2, K): F-labels of the class path written out per sample, Y_k = E_k[y]."""
        return np.stack([t[self.labels] for t in self.tables], axis=2)


def make_problem(seed: int) -> Problem:
    rng = np.random.default_rng(seed)
    flavour = FLAVOURS[seed % len(FLAVOURS)]
    k = 1 + (seed // len(FLAVOURS)) % 5
    n = int(rng.integers(30, 70))
    d1 = int(rng.integers(n + 5, n + 40)) if flavour == "wide" else int(rng.integers(5, 25))
    n_classes = int(rng.integers(2, 7))
    d2 = int(rng.integers(2, 9))
    labels = rng.permutation(np.arange(n) % n_classes)  # every class present
    centres = rng.standard_normal((n_classes, d1))
    x = 0.7 * centres[labels] + rng.standard_normal((n, d1))
    if flavour == "degenerate":
        x[:, 0] = 3.7  # constant
        x[:, 1] = x[:, 2]  # duplicated
        x[:, 3] = -2 * x[:, 4] + 1  # duplicated up to an affine map
    elif flavour == "ill_conditioned":
        u, _, vt = np.linalg.svd(x, full_matrices=False)
        x = u @ np.diag(np.logspace(0, -3, d1)) @ vt + 1e-6 * rng.standard_normal((n, d1))
    elif flavour == "offset":
        x = x + 1e4 * x.std(0) * rng.standard_normal(d1)
    tables = [rng.standard_normal((n_classes, d2)) for _ in range(k)]
    noise = 0.5 * rng.standard_normal((n, d2, k))
    label_embeddings = np.stack([t[labels] for t in tables], axis=2) + noise
    return Problem(x=x, labels=labels, tables=tables, label_embeddings=label_embeddings, flavour=flavour)
