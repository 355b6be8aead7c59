"""Uncertainty of the cross-validated EMMS score, and which candidates it cannot tell apart.

Per-fold scores. The CV residual is a sum over the F folds of held-out residuals, CV = sum_f lambda^T R_f lambda
(``cross_validation.py``), so at the chosen ridge and weights the score splits exactly into fold scores

    s_f = -lambda^T R_f lambda / (n_f * D2),      score = sum_f w_f s_f,   w_f = n_f / sum_g n_g,         (F1)

the mean over fold f's n_f held-out samples of the per-sample loss (w_f = n_f / N whenever every fold is used).

Standard error. Treating the per-sample held-out losses e_i as independent with variance sigma^2, s_f has
variance sigma^2 / n_f and the score (their pooled mean) sigma^2 / N. The between-fold sum of squares
sum_f n_f (s_f - score)^2 has expectation (F - 1) sigma^2 (one-way analysis of variance with equal means), which
gives the usual K-fold standard error sqrt(S^2 / F), S^2 = F sum_f w_f (s_f - score)^2 / (F - 1) (for equal folds
std(s_f, ddof=1)^2; the "one-standard-error rule" of Hastie, Tibshirani & Friedman, ESL 7.10). That one is low: the
folds share training data, so the s_f are positively correlated, their spread understates the score's, and no
unbiased estimator of the K-fold variance exists (Bengio & Grandvalet, JMLR 2004). The correction of Nadeau & Bengio
(Machine Learning 52, 2003; Bouckaert & Frank, PAKDD 2004, for K-fold) takes the correlation of two estimates as
the share of samples held out, rho = n_test / (n_train + n_test), and gives

    SE = sqrt( (1 / F + n_test / n_train) S^2 ),   n_test / n_train = mean_f n_f / (N - n_f),           (SE)

1.5 times the uncorrected SE with 5 folds ((1/5 + 1/4) / (1/5) = 2.25 in variance). Measured against the spread of
the score over 80 independent draws of a synthetic task (``tests/test_uncertainty.py``): uncorrected 0.80x (0.67x
for the paired difference of two candidates), corrected 1.20x (1.00x): a little high, where the uncorrected one
declared differences the data did not hold. It still ignores that the
ridge and lambda were chosen on the same folds. Read it as the noise of the held-out samples and of the training
data they were scored with, not of the whole procedure. Rules without folds ("gcv", "in_sample", "reference") get
SE = NaN.

Ties. Candidates scored on the same data share the folds, so their fold scores are paired: with the leader L
(highest score) and d_f = s_f(L) - s_f(other), the difference of scores is mean_w(d) = sum_f w_f d_f, and the
fold-to-fold noise both candidates share (an easy fold is easy for both) cancels in d_f. Candidate j is tied with
the leader when

    mean_w(d) <= z * SE(d),     SE(d) from (SE) applied to the d_f,                                    (TIE)

a paired t-type test, far more powerful than comparing two SEs. Differences below ``RESOLUTION`` = 1e-8 (of the
F-label variance) count as 0 on either side of (TIE): the solver's own accuracy (``tests/test_emms.py`` holds
scores to 1e-8 of dense references), so that equivalent features (a scaled copy) tie whatever the rounding. z = ``Z_TIE`` = 2: close to the one-sided 95% point
of Student's t with F - 1 = 4 degrees of freedom (2.13), as in the corrected resampled t-test of Nadeau & Bengio,
whose variance (SE) uses. Identical features give d_f = 0 for every fold: tied.

No-information level. Features that carry no information (constant features) leave the training mean of the
F-labels as the only prediction: R_f = T_f, the held-out F-label energy about the training mean, and the score
is -min_lambda lambda^T (sum_f T_f) lambda / (N D2): slightly below -1 for one F-label (the mean is estimated too),
higher for K > 1 (a mix of unrelated F-labels varies less than each; measured -0.66 for K = 2). It
depends only on the F-labels and folds, so every candidate carries the same ``null_fold_scores``; a candidate is
uninformative when (TIE) holds against it (d_f = s_f - null_f): it is not distinguishably above constant features.

The ranking is inconclusive when every candidate is tied with the leader or every candidate is uninformative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import InvalidInputError

if TYPE_CHECKING:  # scores.py imports this module
    from .scores import EMMSResult

Z_TIE = 2.0
RESOLUTION = 1e-8  # score differences below this are rounding, not information (the solver's tested accuracy)
_SAME_DATA_RTOL = 1e-6  # null fold scores of candidates on the same F-labels and folds agree to float64 sums' rounding


def fold_mean_and_se(fold_values: np.ndarray, fold_sizes: np.ndarray, *, n_samples: float | None = None
                     ) -> tuple[float, float]:
    """Weighted mean (F1) and standard error (SE) of per-fold values.

    Parameters
    ----------
    fold_values : ndarray of shape (F,)
        Per-fold scores s_f, or paired differences d_f.
    fold_sizes : ndarray of shape (F,)
        Held-out samples n_f of each fold (the weights w_f = n_f / sum n_f).
    n_samples : float, optional
        N, the samples of the cross-validation the folds come from (each fold trained on N - n_f); default
        sum n_f. Give it when ``fold_values`` are a subset of the folds.

    Returns
    -------
    mean, se : float
        sum_f w_f v_f and the corrected standard error (SE); se is NaN for fewer than 2 folds.
    """
    v, n = np.asarray(fold_values, dtype=np.float64), np.asarray(fold_sizes, dtype=np.float64)
    w = n / n.sum()
    mean = float(w @ v)
    if v.size < 2:
        return mean, float("nan")
    spread = v.size * (w @ (v - mean) ** 2) / (v.size - 1)  # S^2
    held_per_trained = float(np.mean(n / ((n.sum() if n_samples is None else n_samples) - n)))  # n_test / n_train
    return mean, float(np.sqrt((1.0 / v.size + held_per_trained) * spread))


@dataclass(frozen=True)
class Comparison:
    """Which of M candidates scored on the same data and folds the folds cannot tell apart.

    Attributes
    ----------
    leader : int
        Index of the highest score.
    tied_with_best : list of bool, length M
        (TIE) against the leader holds, up to ``RESOLUTION`` (True for the leader itself).
    uninformative : list of bool, length M
        (TIE) against constant features holds: not distinguishably above the no-information level.
    difference, difference_se : ndarray of shape (M,)
        Paired score difference to the leader, mean_w(d) >= 0, and its standard error SE(d).
    null_score : float
        The no-information level: the score of constant features on these F-labels and folds.
    z : float
        The multiple of SE(d) below which a difference is noise.
    """

    leader: int
    tied_with_best: list[bool]
    uninformative: list[bool]
    difference: np.ndarray
    difference_se: np.ndarray
    null_score: float
    z: float

    @property
    def all_tied(self) -> bool:
        """Every candidate is within noise of the leader: the leader is not distinguishable from any other."""
        return all(self.tied_with_best)

    @property
    def all_uninformative(self) -> bool:
        """Every candidate is within noise of constant features."""
        return all(self.uninformative)

    @property
    def inconclusive(self) -> bool:
        """The ranking says nothing: all candidates tied with the leader, or all at the no-information level."""
        return self.all_tied or self.all_uninformative


def compare(results: Sequence["EMMSResult"], *, z: float = Z_TIE) -> Comparison:
    """Ties between candidates scored with ``rule="cv"`` on the same samples, F-labels and folds.

    Parameters
    ----------
    results : sequence of M >= 1 EMMSResult
        From :func:`hf_emms.emms` with the default rule, one per candidate, on the same statistics layout.
    z : float
        Multiple of the paired standard error below which a difference counts as noise (module docstring).

    Returns
    -------
    Comparison
    """
    results = list(results)
    if not results:
        raise InvalidInputError("compare needs at least one EMMS result.")
    if not (isinstance(z, (int, float)) and not isinstance(z, bool) and np.isfinite(z) and z >= 0):
        raise InvalidInputError(f"z must be a finite number >= 0; got {z!r}.")
    bad = [i for i, r in enumerate(results) if r.fold_scores.size < 2]
    if bad:
        raise InvalidInputError(
            f"results {bad} carry no fold scores (rule {results[bad[0]].rule!r}): compare needs rule='cv' results, "
            "whose folds give the paired differences."
        )
    first = results[0]
    for i, r in enumerate(results[1:], 1):
        if not (np.array_equal(r.fold_sizes, first.fold_sizes)
                and np.allclose(r.null_fold_scores, first.null_fold_scores, rtol=_SAME_DATA_RTOL, atol=0)):
            raise InvalidInputError(
                f"result {i} was not scored on the same samples, F-labels and folds as result 0 (fold sizes "
                f"{r.fold_sizes.astype(int).tolist()} vs {first.fold_sizes.astype(int).tolist()}, or different "
                "F-labels): paired fold differences need the same folds."
            )
    sizes = first.fold_sizes
    leader = int(np.argmax([r.score for r in results]))
    diff, diff_se, tied, useless = [], [], [], []
    for r in results:
        d, se = fold_mean_and_se(results[leader].fold_scores - r.fold_scores, sizes)
        diff.append(d)
        diff_se.append(se)
        tied.append(bool(d <= z * se + RESOLUTION))
        gain, gain_se = fold_mean_and_se(r.fold_scores - r.null_fold_scores, sizes)
        useless.append(bool(gain <= z * gain_se + RESOLUTION))
    return Comparison(
        leader=leader, tied_with_best=tied, uninformative=useless, difference=np.array(diff),
        difference_se=np.array(diff_se), null_score=fold_mean_and_se(first.null_fold_scores, sizes)[0], z=float(z),
    )
