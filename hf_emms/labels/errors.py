"""Errors of the F-label package (defined in :mod:`hf_emms.errors`, re-exported here for the old import path)."""

from ..errors import EncoderLoadError, LabelError

__all__ = ["EncoderLoadError", "LabelError"]
