"""NCE and LEEP: transferability from a candidate's own classifier head (for checkpoints that have one).

With theta(x) the head's softmax over Z source classes and y the target class:

NCE (Tran et al., ICCV 2019): the negative conditional entropy of the target labels given the head's
hard predictions z = argmax theta(x), from the (target, source) count table:

    NCE = sum_{y,z} P(y, z) log P(y | z).

LEEP (Nguyen et al., ICML 2020, Eq. 1-2): the average log-likelihood of the "expected empirical
predictor", with P(y, z) = (1/N) sum_{i: y_i = y} theta_z(x_i) and P(y | z) = P(y, z) / P(z):

    LEEP = (1/N) sum_i log sum_z P(y_i | z) theta_z(x_i).

Both are at most 0; higher is better. NCE and the first half of LEEP are sums over samples, kept by
``FeatureStats`` when batches come with ``head_logits`` (O(C * Z) memory). LEEP's log of a sum over z
needs P(y | z) before it can visit a sample, so it takes a second pass over the logits: ``LeepPass``
(streaming: run the model again, or replay stored logits, N x Z floats, e.g. 80 MB for 20,000 samples and
1,000 ImageNet classes in float32). ``leep_score`` does both passes over in-memory logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError
from .inputs import compact_class_ids
from .stats import FeatureStats, as_tensor, collective_device, head_tables


def nce(stats: FeatureStats) -> float:
    """NCE from statistics accumulated with ``labels`` and ``head_logits`` (at most 0, higher is better)."""
    joint = _head_table(stats, "head_hard")
    p_z = joint.sum(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / p_z), 0.0)
    return float(terms.sum())


def leep_conditional(stats: FeatureStats) -> np.ndarray:
    """P(y | z), shape (C, Z), from first-pass statistics accumulated with ``labels`` and ``head_logits``."""
    return _conditional(_head_table(stats, "head_soft"))


def _conditional(joint: np.ndarray) -> np.ndarray:
    p_z = joint.sum(0, keepdims=True)
    return np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)


class LeepPass:
    """The second pass of LEEP: sum_i log sum_z P(y_i | z) theta_z(x_i), batch by batch.

    Parameters
    ----------
    conditional : ndarray of shape (C, Z)
        P(y | z) from the first pass: ``leep_conditional(stats)``, after ``stats.all_reduce()`` in a
        distributed job.
    """

    def __init__(self, conditional: np.ndarray) -> None:
        self.conditional = torch.as_tensor(conditional, dtype=torch.float64)
        self._seen = self.conditional.sum(1) > 0  # a class with no first-pass sample has P(y | z) = 0
        self.total = 0.0
        self.n = 0

    def update(self, head_logits: Any, labels: Any) -> "LeepPass":
        """Add a batch: ``head_logits`` (B, Z) and ``labels`` (B,), as in the first pass."""
        z = as_tensor(head_logits, "head_logits", device=None).to(torch.float64)
        y = as_tensor(labels, "labels", device=z.device)
        c, n_src = self.conditional.shape
        if z.ndim != 2 or z.shape[1] != n_src or y.shape != (z.shape[0],) or torch.is_floating_point(y):
            raise InvalidInputError(
                f"expected head_logits (B, {n_src}) and integer labels (B,) as in the first pass; "
                f"got {tuple(z.shape)} and {tuple(y.shape)} {y.dtype}."
            )
        if y.dtype == torch.bool:
            raise InvalidInputError(f"labels must be integer class ids; got dtype {y.dtype}.")
        y = y.long()
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= c or not bool(self._seen[y].all())):
            seen = torch.nonzero(self._seen).flatten().tolist()
            raise InvalidInputError(f"labels must be class ids seen in the first pass ({seen}).")
        if not torch.isfinite(z).all():
            raise InvalidInputError("head_logits contain NaN or inf.")
        # log sum_z theta_z(x_i) P(y_i | z), in log space: confident heads underflow theta to exact zeros.
        log_conditional = torch.log(self.conditional.to(z.device))[y]
        self.total += float(torch.logsumexp(torch.log_softmax(z, 1) + log_conditional, 1).sum())
        self.n += len(y)
        return self

    def all_reduce(self) -> "LeepPass":
        """Sum over ``torch.distributed`` ranks (a no-op without a process group)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            t = torch.tensor([self.total, float(self.n)], dtype=torch.float64, device=collective_device(dist))
            dist.all_reduce(t)
            self.total, self.n = float(t[0]), int(t[1])
        return self

    @property
    def score(self) -> float:
        """LEEP (at most 0, higher is better)."""
        if self.n == 0:
            raise InvalidInputError("the LEEP second pass saw no samples: call update() with the logits again.")
        return self.total / self.n


def leep_score(head_logits: Any, labels: Any, *, batch_size: int = 4096) -> float:
    """LEEP of in-memory head logits (N, Z) and class ids (N,): both passes, ``batch_size`` rows at a time."""
    z = as_tensor(head_logits, "head_logits", device=None)
    y = as_tensor(labels, "labels", device=z.device)
    if z.ndim != 2 or z.shape[1] < 1 or y.shape != (z.shape[0],) or torch.is_floating_point(y) or y.dtype == torch.bool or len(y) == 0:
        raise InvalidInputError(f"expected head_logits (N, Z) and integer labels (N,); got {tuple(z.shape)} and {tuple(y.shape)} {y.dtype}.")
    if int(y.min()) < 0 or len(torch.unique(y)) < 2:
        raise InvalidInputError("labels must be class ids >= 0 covering at least two classes.")
    # LEEP does not depend on how classes are numbered: sparse or huge ids become positions among those present.
    y = torch.from_numpy(compact_class_ids(y)[0]).to(z.device)
    batches = [slice(i, i + batch_size) for i in range(0, len(y), batch_size)]
    n_classes = int(y.max()) + 1
    soft = 0
    for b in batches:
        zb = z[b].to(torch.float64)
        if not torch.isfinite(zb).all():
            raise InvalidInputError("head_logits contain NaN or inf.")
        soft = soft + head_tables(zb, y[b], n_classes)["head_soft"]
    second = LeepPass(_conditional(soft.numpy()))  # P(y | z) does not depend on the 1/N of P(y, z)
    for b in batches:
        second.update(z[b], y[b])
    return second.score


def _head_table(stats: FeatureStats, name: str) -> np.ndarray:
    c = stats.centered()
    table = getattr(c, name)
    if table is None:
        raise InvalidInputError(
            "these statistics have no classifier-head table: pass head_logits= (with labels=) to "
            "FeatureStats.update for checkpoints that have a classification head."
        )
    if (c.class_count > 0).sum() < 2:
        raise InvalidInputError("only one class is present; NCE and LEEP need at least two.")
    return table / c.n
