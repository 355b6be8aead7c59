"""EMMS: the Efficient Multi-task Model Selector (Meng et al., NeurIPS 2023) as an ``evaluate`` metric.

A thin adapter: the numbers come from :func:`hf_emms.metric.compute`, which equals :func:`hf_emms.emms_score`.
"""

import datasets
import evaluate

from hf_emms.errors import InvalidInputError
from hf_emms.metric import check_references, compute

_CITATION = """\
@inproceedings{meng2023emms,
  title     = {Foundation Model is Efficient Multimodal Multitask Model Selector},
  author    = {Meng, Fanqing and Shao, Wenqi and Peng, Zhanglin and Jiang, Chonghe and Zhang, Kaipeng and
               Qiao, Yu and Luo, Ping},
  booktitle = {Advances in Neural Information Processing Systems},
  year      = {2023},
  eprint    = {2308.06262},
}
"""

_DESCRIPTION = """\
EMMS scores how well a pre-trained model's features suit a labelled task, before any fine-tuning: the labels
are embedded by K foundation models ("F-labels"), and the score is how well a linear map of the features
explains a simplex-weighted mix of them. Higher is better; compare candidate checkpoints on the same task.
The default score is minus the out-of-sample (cross-validated) F-label residual of a ridge fit, per sample
and column: about -1 for features with no information, towards 0 for perfect ones, and fair between
candidates of different widths at any number of samples.
"""

_KWARGS_DESCRIPTION = """
Args:
    references (`list` of `int`, `str` or `float`): one label per sample: class ids or class names
        (classification), texts (`label_kind="text"`) or numbers (`label_kind="regression"`).
    features (`array` of shape (N, D1)): the candidate's pooled features, one row per reference. Passed as a
        keyword argument, it reaches the metric untouched (no Arrow round trip).
    class_embeddings (`array` (C, D2) or (K, C, D2), or a list of K (C, D2) arrays, optional): class-name
        F-labels; row c belongs to class id c (or to `class_names[c]`). Default: one-hot labels.
    label_embeddings (`array` of shape (N, D2, K), optional): per-sample F-labels, for any task.
    class_names (`list` of `str`, optional): names of class ids 0..C-1.
    encoders (optional): F-label encoders (Hub ids or local folders) for `hf_emms.labels.embed_labels`.
    label_kind (`str`, defaults to "classification"): "classification", "text" or "regression".
    label_options (`dict`, optional): further options of `hf_emms.labels.embed_labels` (e.g. `prompt`).
    rule (`str`, optional): the rule of `hf_emms.emms`; default the solver's out-of-sample score (the ranking
        score); "in_sample" is the paper's plain objective, -RSS / (N * D2), which rewards width.
    sample_ids (`array` of int, optional): stable sample ids (e.g. dataset row indices); they choose the
        cross-validation folds, so that the score does not depend on the order of the samples. Give the copies of
        one input one id (they are then held out together); equal feature rows without ids are warned about.
    logme (`bool`, defaults to False): also return LogME from the same statistics.
Returns:
    emms (`float`): the EMMS score, higher is better.
    emms_se (`float` or None): its standard error over the cross-validation folds (None for rules without folds).
    emms_weights (`list` of `float`): the weight of each of the K F-labels (on the simplex).
    logme (`float`, only with `logme=True`): LogME per sample, higher is better.
Examples:
    >>> import numpy as np
    >>> import evaluate
    >>> emms = evaluate.load("emms")
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, 200)
    >>> features = np.eye(3)[labels] + 0.1 * rng.standard_normal((200, 3))
    >>> result = emms.compute(references=labels, features=features)
    >>> round(result["emms"], 2), result["emms_weights"]
    (-0.03, [1.0])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EMMS(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # Only the references are declared: declared inputs go through Arrow as Python lists, which for
            # 50,000 x 2,048 features took 35-75 s and 6.5 GB. Strings are tried first, so that digit strings
            # stay names; numbers are stored as float64, so that 1.5 is not silently truncated to class 1.
            # Lists are accepted here only to be refused with a clear message by compute: when no option
            # matches, evaluate 0.4 fails with KeyError('predictions') in a reference-only module.
            features=[
                datasets.Features({"references": datasets.Value("string")}),
                datasets.Features({"references": datasets.Value("float64")}),
                datasets.Features({"references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"references": datasets.Sequence(datasets.Value("float64"))}),
            ],
            reference_urls=["https://arxiv.org/abs/2308.06262"],
            codebase_urls=["https://github.com/OpenGVLab/Multitask-Model-Selector"],
        )

    # Inputs are checked before evaluate sees them: it fails on an empty list with an IndexError, and on a missing
    # one with an error about its cache files. compute() checks everything else.
    def compute(self, *, predictions=None, references=None, **kwargs):
        """EMMS of ``features=`` on ``references=`` (see the arguments below)."""
        if predictions is not None:
            raise InvalidInputError("EMMS takes no predictions: give references= (one label per sample) and features=.")
        if references is not None or self.writer is None:  # None is allowed only after add()/add_batch()
            check_references(references)
        return super().compute(references=references, **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add references of a batch (features go to ``compute``)."""
        if predictions is not None:
            raise InvalidInputError("EMMS takes no predictions: give references= (one label per sample).")
        check_references(references)
        return super().add_batch(references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add the reference of one sample (features go to ``compute``)."""
        if prediction is not None or reference is None:
            raise InvalidInputError("EMMS takes one reference per add(reference=...), and no prediction.")
        return super().add(reference=reference, **kwargs)

    def _compute(self, references, features=None, **kwargs):
        return compute(references, features, **kwargs)
