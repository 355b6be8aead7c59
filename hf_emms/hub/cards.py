"""Model-card annotation moved to :mod:`hf_emms.cards` (a top layer beside the CLI: it reads rankings, which sit
above the Hub scanner). This module re-exports it so the old import path keeps working."""

from ..cards import (  # noqa: F401
    METRIC_TYPE, AnnotationError, CardChange, CardFormatError, ChangeStatus, annotate, emms_result, load_ranking,
    task_type, updated_card,
)
from ..cards import __all__  # noqa: F401
