"""What a checkpoint takes as input, and whether the installed transformers can build it without remote code.

Both answers come from transformers' own auto-class tables (``model_type`` -> class names per task), read from the
installed version, so a new architecture is supported as soon as transformers supports it.
"""

from __future__ import annotations

import functools

from ..options import INPUT_KINDS, MODALITIES  # MODALITIES is re-exported as hf_emms.hub.MODALITIES

# Task tables whose presence says which input a model_type takes. Speech models also appear in text tables (their
# decoders generate text), so audio wins: their encoders are what hf-emms would extract features from.
_FAMILIES = {
    "audio": ("AUDIO_CLASSIFICATION", "AUDIO_XVECTOR", "AUDIO_FRAME_CLASSIFICATION", "CTC", "SPEECH_SEQ_2_SEQ"),
    "image": ("IMAGE", "IMAGE_CLASSIFICATION", "ZERO_SHOT_IMAGE_CLASSIFICATION", "BACKBONE", "MASKED_IMAGE_MODELING"),
    # A zero-shot image classifier (CLIP, SigLIP) is a dual encoder with a text tower too.
    "text": ("TEXT_ENCODING", "MASKED_LM", "CAUSAL_LM", "SEQUENCE_CLASSIFICATION", "TOKEN_CLASSIFICATION",
             "SEQ_TO_SEQ_CAUSAL_LM", "ZERO_SHOT_IMAGE_CLASSIFICATION"),
}
# Vision-language checkpoints that read an image and a text together: joint encoders (ViLT: VQA) and generative
# VLMs (image-text-to-text), and dual encoders (CLIP, SigLIP: zero-shot image classification).
_IMAGE_TEXT_FAMILIES = ("VISUAL_QUESTION_ANSWERING", "IMAGE_TEXT_TO_TEXT", "ZERO_SHOT_IMAGE_CLASSIFICATION")

# The Hub's pipeline tags, for checkpoints whose config does not say (no model_type, or one unknown here).
PIPELINE_MODALITY = {
    **dict.fromkeys(
        ("feature-extraction", "sentence-similarity", "text-classification", "token-classification", "fill-mask",
         "question-answering", "zero-shot-classification", "text-generation", "text2text-generation",
         "summarization", "translation", "table-question-answering"), "text"),
    **dict.fromkeys(
        ("image-classification", "image-feature-extraction", "object-detection", "image-segmentation",
         "zero-shot-image-classification", "depth-estimation", "image-to-text", "mask-generation"), "image"),
    **dict.fromkeys(
        ("audio-classification", "automatic-speech-recognition", "audio-feature-extraction",
         "voice-activity-detection", "audio-to-audio"), "audio"),
}

# The Hub's pipeline tags -> the input kinds (hf_emms.options.INPUT_KINDS) such a checkpoint takes. Any text model
# reads a text pair (the tokenizer's pair encoding); an image + text task needs a checkpoint that reads both.
PIPELINE_INPUT_KINDS = {
    **{tag: ("text", "text-pair") for tag, modality in PIPELINE_MODALITY.items() if modality == "text"},
    **{tag: (modality,) for tag, modality in PIPELINE_MODALITY.items() if modality != "text"},
    **dict.fromkeys(("visual-question-answering", "image-text-to-text", "document-question-answering"),
                    ("image-text",)),
    "zero-shot-image-classification": ("text", "text-pair", "image", "image-text"),  # a dual encoder: both towers
}


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    # Imported here: these tables cost about 2 s to import and only matter once a candidate is checked.
    from transformers.models.auto import configuration_auto, modeling_auto

    known = frozenset(configuration_auto.CONFIG_MAPPING_NAMES)
    by_modality = {
        modality: frozenset().union(*(getattr(modeling_auto, f"MODEL_FOR_{family}_MAPPING_NAMES", {})
                                      for family in families))
        for modality, families in {**_FAMILIES, "image-text": _IMAGE_TEXT_FAMILIES}.items()
    }
    return known, by_modality


def is_known_model_type(model_type: str | None) -> bool:
    """Whether the installed transformers has a config class (hence Auto* classes) for ``model_type``."""
    return model_type is not None and model_type in _tables()[0]


def modalities_of(model_type: str | None, pipeline_tag: str | None = None) -> tuple[str, ...]:
    """The inputs a checkpoint takes, among ``MODALITIES``; empty when neither argument tells.

    Parameters
    ----------
    model_type : str or None
        ``config.json``'s ``model_type``; transformers' task tables decide.
    pipeline_tag : str or None
        The Hub's pipeline tag, used when ``model_type`` is missing or in no task table.
    """
    by_modality = _tables()[1]
    found = [m for m in MODALITIES if model_type is not None and model_type in by_modality[m]]
    if "audio" in found:
        return ("audio",)
    if not found and pipeline_tag in PIPELINE_MODALITY:
        return (PIPELINE_MODALITY[pipeline_tag],)
    return tuple(found)


def input_kinds_of(model_type: str | None, pipeline_tag: str | None = None) -> tuple[str, ...]:
    """The input kinds (among ``INPUT_KINDS``) a checkpoint can be ranked on; empty when neither argument tells.

    A text model takes ``"text"`` and ``"text-pair"`` (pairs go through its tokenizer's pair encoding); an image or
    audio model its own modality; a vision-language model (a ``model_type`` in transformers' visual question
    answering, image-text-to-text or zero-shot image classification tables, else such a pipeline tag)
    ``"image-text"``, and a dual encoder (CLIP) its single towers' kinds as well.

    Parameters
    ----------
    model_type : str or None
        ``config.json``'s ``model_type``.
    pipeline_tag : str or None
        The Hub's pipeline tag, used when ``model_type`` is missing or in no task table.
    """
    kinds: list[str] = []
    for modality in modalities_of(model_type):
        kinds += ["text", "text-pair"] if modality == "text" else [modality]
    if model_type is not None and model_type in _tables()[1]["image-text"]:
        kinds.append("image-text")
    if not kinds:  # the config does not tell: the pipeline tag does
        kinds += PIPELINE_INPUT_KINDS.get(pipeline_tag, ())
    return tuple(k for k in INPUT_KINDS if k in kinds)


def pipeline_tags_for(input_kind: str) -> tuple[str, ...]:
    """The Hub pipeline tags whose checkpoints take ``input_kind``, to list compatible candidates for a task
    (e.g. ``"image-text"`` -> visual-question-answering, image-text-to-text, zero-shot-image-classification, ...)."""
    return tuple(tag for tag, kinds in PIPELINE_INPUT_KINDS.items() if input_kind in kinds)
