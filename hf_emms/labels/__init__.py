"""F-labels: the labels of any task embedded by K foundation text models, as EMMS needs them.

>>> from hf_emms.labels import embed_labels
>>> flabels = embed_labels(dataset.features["label"], kind="classification", prompt="a photo of a {}")
>>> emms(stats, class_embeddings=flabels.tables)                # classification: per-class tables
>>> captions = embed_labels(dataset["captions"], kind="text")  # other kinds: per-sample F-labels
>>> for x, y in zip(feature_batches, captions.batches(256)):
...     stats.update(x, label_embeddings=y)                       # y: (B, D2, K)
"""

from ..paths import CACHE_ENV
from .cache import default_cache_dir
from .encoders import (
    PAPER_ENCODERS, EncoderRecord, EncoderSpec, cpu_encoders, default_encoders, describe, member_name,
    minilm_path,
)
from .errors import EncoderLoadError, LabelError
from .flabels import FLabels, embed_labels
from .kinds import BOX_FORMATS, LABEL_KINDS
from .names import clean_class_name
from .width import width_map

__all__ = [
    "BOX_FORMATS",
    "CACHE_ENV",
    "EncoderLoadError",
    "EncoderRecord",
    "EncoderSpec",
    "FLabels",
    "LABEL_KINDS",
    "LabelError",
    "PAPER_ENCODERS",
    "clean_class_name",
    "cpu_encoders",
    "default_cache_dir",
    "default_encoders",
    "describe",
    "embed_labels",
    "member_name",
    "minilm_path",
    "width_map",
]
