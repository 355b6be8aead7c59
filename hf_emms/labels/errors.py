"""Errors of the F-label package: bad labels, and encoders that cannot be loaded."""

from __future__ import annotations

from ..errors import HfEmmsError, InvalidInputError


class LabelError(InvalidInputError):
    """Labels that cannot be turned into F-labels: empty or missing names, unknown class ids, mixed types."""


class EncoderLoadError(HfEmmsError):
    """An F-label encoder that cannot be resolved or loaded (not found, no safetensors weights, remote code)."""
