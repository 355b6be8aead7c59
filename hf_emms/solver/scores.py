"""EMMS: how well a candidate's features explain a task's F-labels (Meng et al., NeurIPS 2023, arXiv 2308.06262).

With X (N x D1) the candidate's features and Y_k (N x D2) the labels embedded by the k-th foundation
model, all columns standardised, EMMS solves (paper, Eq. 5)

    min over theta (D1 x D2), lambda on the simplex   || X theta - sum_k lambda_k Y_k ||_F^2.        (1)

For fixed lambda the best theta projects Y(lambda) on the column space of X, leaving (``spectrum.py``)

    RSS(lambda) = lambda^T M lambda,   M = T - sum_i Q_i,                                          (2)

so (1) is a K x K convex quadratic over the simplex, solved exactly (``simplex.py``) instead of by a few
alternating passes. Four scores come out of the same statistics:

``rule="cv"`` (default, the ranking score). In-sample residuals reward width: once N <= D1 every
candidate fits exactly (score 0), and wide random features explain more in-sample than narrow good
ones. So the score is the *out-of-sample* residual of a ridge fit with an unpenalised intercept,
measured exactly by K-fold cross-validation from per-fold sums (``cross_validation.py``), minimised
over the ridge and over lambda (exactly, for each ridge). score = -CV / (N * D2): minus the share of
the F-label variance the features fail to predict on samples they were not fitted on, per sample and
column (D2 counts the columns that vary over the samples). Towards 0 for perfect features, about -1
(slightly below: the training mean is estimated too) for features with no information.

``rule="gcv"``: the generalised cross-validation (Golub, Heath & Wahba, 1979) approximation of the
same out-of-sample residual, one eigensystem instead of one per fold,

    GCV(a, lambda) = [RSS_a(lambda) / N] / (1 - tr(H_a) / N)^2,
    RSS_a(lambda)  = lambda^T (T - sum_i (1 - (a / (s_i + a))^2) Q_i) lambda,
    tr(H_a)        = 1 + sum_i s_i / (s_i + a),

minimised over the ridge a >= 0 (a grid over 12 decades of the mean eigenvalue, refined by golden
section) and lambda (exactly, for each a). GCV is an approximately unbiased estimate of the leave-one-out
error that needs only the eigenvalues of G and the Q_i. score = -GCV / D2. Reliable when N is well
above D1; when N <= D1 the fit nearly interpolates, leverages spread out and GCV can be wildly optimistic
(see ``cross_validation.py`` for a measured case), and duplicated samples make it 0. Kept for statistics
and comparisons where that regime is excluded.

``rule="in_sample"``: score = -RSS / (N * D2) at the exact optimum of (1): the plain objective of the
paper, on a per-sample, per-column scale (varying columns, as above). Exact fits (N <= D1) score 0.

``emms_reference``: the official implementation's one pass (least squares at uniform lambda, least
squares for lambda, sparsemax, the residual of the first theta against the new target) and its scale
``-sum(res**2) / N * D2``, which by Python precedence is -(RSS / N) * D2. For comparing with published
numbers only.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..options import check_positive_int
from .copies import first_copies
from .cross_validation import CVProblem, cv_problem, for_tables
from .line_search import grid_golden_max
from .simplex import simplex_qp, sparsemax
from .inputs import compact_class_ids
from .spectrum import Spectrum, spectrum, take_class_rows
from .stats import N_FOLDS, FeatureStats
from .uncertainty import fold_mean_and_se

RULES = ("cv", "gcv", "in_sample")
# What a stored score and its uncertainty mean: part of every results-store key, so a result stored under older
# rules is scored again (from cached statistics) instead of reused. 2: the fold SE corrected (uncertainty.py).
SCORES_FORMAT = 2
_GRID = np.linspace(-8.0, 4.0, 25)  # log10 of the ridge relative to the mean non-zero eigenvalue of G
_GOLDEN_STEPS = 30  # shrinks the one-decade bracket around the best grid point to 1e-6 decade
_CV_GRID = np.linspace(-6.0, 4.0, 11)  # log10 of the ridge per training sample on unit-variance features
_CV_GOLDEN_STEPS = 12  # the two-decade bracket to 0.006 decade (1.4% in the ridge): CV is flat near its minimum


@dataclass(frozen=True)
class EMMSResult:
    """The outcome of one EMMS scoring.

    Attributes
    ----------
    score : float
        Higher is better. Scale depends on ``rule`` (see the module docstring).
    weights : ndarray of shape (K,)
        lambda: the F-label weights on the simplex at the optimum.
    rule : str
        "cv", "gcv", "in_sample" or "reference".
    n, d1, k : int
        Samples, feature width, number of F-labels.
    d2 : int
        F-label columns the score averages over: those that vary over the samples (the full width for
        the reference rule, as in the official code).
    rank : int
        Numerical rank of the standardised feature Gram.
    n_constant_features : int
        Feature columns constant over the samples (they carry no information).
    ridge : float
        Chosen ridge: for "cv", per training sample on unit-variance features (a = ridge * n_train);
        for "gcv", relative to the mean of the non-zero eigenvalues of the standardised Gram
        (0: plain least squares).
    dof : float
        Effective degrees of freedom of the fit, tr(H), intercept included.
    se : float
        Standard error of ``score`` from its spread over the cross-validation folds (``uncertainty.py``,
        (SE)); NaN for rules without folds ("gcv", "in_sample", "reference").
    fold_scores : ndarray of shape (F,)
        "cv": fold f's share of the score at the chosen ridge and weights, -lambda^T R_f lambda / (n_f D2);
        ``score`` is their mean weighted by ``fold_sizes``. Empty for other rules.
    fold_sizes : ndarray of shape (F,)
        "cv": samples n_f held out by each fold. Empty for other rules.
    null_fold_scores : ndarray of shape (F,)
        "cv": the fold scores of constant features (the training mean as the only prediction) on the same
        F-labels and folds: the no-information level, shared by every candidate. Empty for other rules.
    """

    score: float
    weights: np.ndarray
    rule: str
    n: int
    d1: int
    d2: int
    k: int
    rank: int
    n_constant_features: int
    ridge: float
    dof: float
    se: float = float("nan")
    fold_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fold_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    null_fold_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def null_score(self) -> float:
        """The no-information level of these F-labels and folds ("cv"; NaN otherwise): the score of constant features."""
        return fold_mean_and_se(self.null_fold_scores, self.fold_sizes)[0] if self.fold_sizes.size else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = asdict(self)
        for name in ("weights", "fold_scores", "fold_sizes", "null_fold_scores"):
            out[name] = [float(w) for w in getattr(self, name)]
        return out


def emms(stats: FeatureStats, class_embeddings: Any = None, *, rule: str = "cv") -> EMMSResult:
    """Score features against F-labels from their streamed statistics.

    Parameters
    ----------
    stats : FeatureStats
        Statistics of one candidate's features on the task's samples.
    class_embeddings : array-like of shape (C, D2), (K, C, D2), or a sequence of K (C, D2) arrays, optional
        For class-label statistics: the class names embedded by K foundation models (all of width D2).
        Applied now, not during extraction, so one pass over features serves any set of encoders.
        None uses one-hot labels (K = 1, D2 = C). Must be None for per-sample F-label statistics.
    rule : {"cv", "gcv", "in_sample"}
        "cv" (default) compares candidates of different widths fairly at any N; "gcv" approximates it
        in one eigensystem (unreliable when N <= D1); "in_sample" is the plain residual of the paper's
        objective. See the module docstring.

    Returns
    -------
    EMMSResult
    """
    if rule not in RULES:
        raise InvalidInputError(f"rule must be one of {RULES}; got {rule!r}. (emms_reference gives the official scale.)")
    if rule == "cv":
        return _cv(cv_problem(stats, class_embeddings))
    sp = spectrum(stats.centered(), class_embeddings)
    if rule == "in_sample":
        lam, rss = simplex_qp(sp.outside_span)
        return _result(sp, -rss / (sp.n * sp.d2_varying), lam, rule, ridge=0.0, dof=1.0 + sp.rank)
    return _gcv(sp)


def emms_with_control(stats: FeatureStats, class_embeddings: Any) -> tuple[EMMSResult, EMMSResult]:
    """``emms(stats, class_embeddings)`` and the one-hot control ``emms(stats)`` of class-label statistics, sharing
    the folds' eigensystems (the costly part): the same numbers as the two calls, for about the price of one."""
    problem = cv_problem(stats, class_embeddings)
    return _cv(problem), _cv(for_tables(problem, stats, None))


def emms_reference(stats: FeatureStats, class_embeddings: Any = None) -> EMMSResult:
    """The official EMMS one-pass algorithm and score scale, computed from the same statistics.

    Standardises with ``(v - mean) / (std + 1e-8)`` as the official code does, then, with u = 1/K,
    P the projection on the features' column space, A = tr(Y_k^T Y_l) and C = tr(Y_k^T P Y_l):

    1. theta = lstsq(X, Y u)                   -> fitted targets P Y u
    2. lambda = lstsq(Y, P Y u)               -> the normal equations A lambda = C u (min-norm)
    3. lambda = sparsemax(lambda)
    4. res = P Y u - Y lambda                 (theta is not refitted)
       RSS = u^T C u - 2 u^T C lambda + lambda^T A lambda
    5. score = -RSS / N * D2                  (= -(RSS / N) * D2, the published expression)
    """
    sp = spectrum(stats.centered(), class_embeddings, std_offset=1e-8)
    u = np.full(sp.k, 1.0 / sp.k)
    a, c = sp.t, sp.q.sum(0)
    lam = sparsemax(np.linalg.lstsq(a, c @ u, rcond=None)[0])
    rss = u @ c @ u - 2 * u @ c @ lam + lam @ a @ lam
    return _result(sp, -rss / sp.n * sp.d2, lam, "reference", ridge=0.0, dof=1.0 + sp.rank, d2=sp.d2)


def emms_score(
    features: Any,
    labels: Any = None,
    *,
    class_embeddings: Any = None,
    label_embeddings: Any = None,
    rule: str = "cv",
    sample_ids: Any = None,
    batch_size: int = 4096,
) -> EMMSResult:
    """EMMS of in-memory features: :class:`FeatureStats` + :func:`emms` in one call.

    Parameters
    ----------
    features : array-like of shape (N, D1)
    labels : array-like of int of shape (N,), optional
        Class ids >= 0; combine with ``class_embeddings`` (or none, for one-hot labels). Sparse or huge ids
        (largest id + 1 above twice the number of distinct ids, e.g. [0, 10**7]) are re-indexed to the classes
        present, and the rows of ``class_embeddings`` of those ids are taken: the score is the one of dense ids.
    class_embeddings : see :func:`emms`; rows indexed by the class ids of ``labels``
    label_embeddings : array-like of shape (N, D2, K) or (N, D2), optional
        Per-sample F-labels, instead of ``labels``.
    rule : {"cv", "gcv", "in_sample"}
    sample_ids : array-like of int of shape (N,), optional
        Stable sample ids; they choose the cross-validation folds: give the copies of one input the same id, so that
        they are held out together (default: row positions 0..N-1; equal feature rows are then warned about, as
        they are usually copies: :func:`~hf_emms.solver.copies.first_copies` gives the ids that group them).
    batch_size : int
        Rows folded at a time: bounds the float64 working copy to ``batch_size x D1``.
    """
    check_positive_int("batch_size", batch_size)
    n = _rows(features, "features")
    for name, target in (("labels", labels), ("label_embeddings", label_embeddings), ("sample_ids", sample_ids)):
        if target is not None and _rows(target, name) != n:
            raise InvalidInputError(f"{name} has {_rows(target, name)} rows but features have {n}: they must describe the same samples.")
    if labels is not None:
        # All labels are here: sparse or huge class ids (e.g. [0, 10**7]) become positions among the classes
        # present, and the class tables (rows indexed by the original ids) follow; dense ids are kept as they are.
        labels, classes = compact_class_ids(labels)
        if classes is not None:
            class_embeddings = take_class_rows(class_embeddings, classes)
    copies = first_copies(features) if sample_ids is None else None
    if copies is not None and np.unique(copies).size >= 2 * N_FOLDS:  # fewer distinct rows: a degenerate candidate
        repeated = int((copies != np.arange(n)).sum())
        warnings.warn(
            f"{repeated} of {n} feature rows equal an earlier row. If they are copies of one input, pass sample_ids "
            "that give the copies one id (e.g. the row of the first copy, hf_emms.solver.copies.first_copies(features)"
            "): the copies are then held out together. Otherwise a held-out copy is predicted from its twin in the "
            "training folds, and the score rewards memorising.", stacklevel=2)
    stats = FeatureStats()
    for i in range(0, max(n, 1), batch_size):
        sl = slice(i, i + batch_size)
        stats.update(
            features[sl],
            labels=None if labels is None else labels[sl],
            label_embeddings=None if label_embeddings is None else label_embeddings[sl],
            sample_ids=None if sample_ids is None else sample_ids[sl],
        )
    return emms(stats, class_embeddings, rule=rule)


def _rows(a: Any, name: str) -> int:
    """len(a) for an array-like with a first dimension, else a clear error."""
    try:
        return len(a)
    except TypeError:
        raise InvalidInputError(f"{name} must be an array with one row per sample; got {type(a).__name__}.") from None


def _gcv(sp: Spectrum) -> EMMSResult:
    """Minimise GCV over the ridge (log grid, then golden section) and the weights (exactly).

    Written in the shrinkage factors w_i = a / (s_i + a), in which nothing cancels:
    RSS_a = lambda^T (M0 + sum_i w_i^2 Q_i) lambda with M0 = T - sum_i Q_i the residual outside the
    features' span, and N - tr(H_a) = (N - 1 - r) + sum_i w_i. When the features span every centred
    vector (r = N - 1), M0 and N - 1 - r are exactly 0 and GCV keeps a finite limit as a -> 0.
    """
    s, n = sp.eigvals, sp.n
    m0 = sp.outside_span

    def fit(a: float) -> tuple[float, np.ndarray, float]:
        w = a / (s + a) if a > 0 else np.zeros_like(s)
        room = (n - 1 - sp.rank) + w.sum()  # N - tr(H_a)
        if room <= 0:
            return np.inf, np.full(sp.k, 1.0 / sp.k), float(n)  # interpolates: GCV undefined
        lam, rss = simplex_qp(m0 + np.tensordot(w**2, sp.q, axes=1))
        return n * rss / room**2 / sp.d2_varying, lam, n - room

    if sp.rank == 0:
        gcv, lam, dof = fit(0.0)
        return _result(sp, -gcv, lam, "gcv", ridge=0.0, dof=dof)
    mean_s = s.mean()
    log_a, _ = grid_golden_max(lambda p: np.array([-fit(mean_s * 10 ** p[0])[0]]), _GRID, 1, _GOLDEN_STEPS)
    a = mean_s * 10 ** log_a[0]
    if fit(0.0)[0] < fit(a)[0]:  # plain least squares (a = 0, off the log grid), when N > rank + 1
        a = 0.0
    gcv, lam, dof = fit(a)
    if not np.isfinite(gcv):
        raise InvalidInputError("GCV is undefined for these statistics (every ridge interpolates the samples).")
    return _result(sp, -gcv, lam, "gcv", ridge=a / mean_s, dof=dof)


def _cv(p: CVProblem) -> EMMSResult:
    """Minimise the K-fold residual over the ridge (log grid, golden section, and a = 0) and the weights.

    Each ridge's fold residuals are computed once (the grid's in one batched call) and kept: the comparisons
    with a = 0 and the fold scores at the optimum reuse them."""
    seen: dict[float, tuple[float, np.ndarray, np.ndarray]] = {}

    def keep(alpha: float, fold_r: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        lam, rss = simplex_qp(fold_r.sum(0))
        seen[alpha] = (rss / (p.n * p.d2_varying), lam, fold_r)
        return seen[alpha]

    def fit(alpha: float) -> tuple[float, np.ndarray, np.ndarray]:
        return seen[alpha] if alpha in seen else keep(alpha, p.fold_residuals(alpha))

    alphas = [float(10**g) for g in _CV_GRID] + [0.0, np.inf]  # + least squares, and the targets alone (below)
    for alpha, fold_r in zip(alphas, p.fold_residuals_at(np.array(alphas))):
        keep(alpha, fold_r)
    on_grid = np.array([[-seen[a][0]] for a in alphas[: len(_CV_GRID)]])
    log_alpha, _ = grid_golden_max(lambda x: np.array([-fit(float(10 ** x[0]))[0]]), _CV_GRID, 1, _CV_GOLDEN_STEPS,
                                   grid_values=on_grid)
    alpha = float(10 ** log_alpha[0])
    if fit(0.0)[0] < fit(alpha)[0]:  # plain least squares, off the log grid
        alpha = 0.0
    cv, lam, fold_r = fit(alpha)
    # Fold shares of the score (uncertainty.py, F1) and its standard error (SE); the no-information level is the
    # same split for constant features: R_f = T_f (alpha = inf), at their own best weights.
    scale = p.fold_sizes * p.d2_varying
    fold_scores = -np.einsum("k,fkl,l->f", lam, fold_r, lam) / scale
    _, lam0, targets = fit(np.inf)
    return EMMSResult(
        score=-float(cv), weights=lam, rule="cv", n=p.n, d1=p.d1, d2=p.d2_varying, k=p.k,
        rank=max(f.s.size for f in p.folds), n_constant_features=p.n_constant, ridge=alpha, dof=p.dof(alpha),
        se=fold_mean_and_se(fold_scores, p.fold_sizes)[1], fold_scores=fold_scores, fold_sizes=p.fold_sizes,
        null_fold_scores=-np.einsum("k,fkl,l->f", lam0, targets, lam0) / scale,
    )


def _result(
    sp: Spectrum, score: float, lam: np.ndarray, rule: str, *, ridge: float, dof: float, d2: int | None = None
) -> EMMSResult:
    return EMMSResult(
        score=float(score), weights=lam, rule=rule, n=sp.n, d1=sp.d1, d2=d2 or sp.d2_varying, k=sp.k, rank=sp.rank,
        n_constant_features=sp.n_constant, ridge=float(ridge), dof=float(dof),
    )
