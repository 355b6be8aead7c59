"""Finding and loading one candidate checkpoint: a local folder, or a Hub id at a revision.

Resolving is cheap (a Hub id's ``config.json``, or a hash of a folder's files) and pins the exact version, so the
statistics cache can be asked before any weight is read. Loading then uses only that pinned version, with the
project's safety defaults: safetensors weights only and no remote code, unless the caller opts in.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._loading import quiet_loading
from ..errors import CandidateLoadError
from ..hub.candidate import Candidate, Source
from ..hub.local import candidate_from_folder

# Files a Hub snapshot needs for config, tokenizer/processor, declared pooling and safetensors weights.
_SAFE_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "*.tiktoken", "*.spm"]
_PICKLE_PATTERNS = ["*.bin"]  # torch pickles: only when the caller allows them
_CODE_PATTERNS = ["*.py"]  # remote code: only with trust_remote_code
# Weights below the top level are never loaded (from_pretrained reads the top level; a sentence-transformers module's
# config is read, its Dense weights are not), and "*" crosses "/" in these patterns: a repo pushed with its Trainer
# output (checkpoint-500/model.safetensors, ...) would download every checkpoint's weights.
_NESTED_WEIGHTS = ["*/*.safetensors", "*/*.bin"]
_HEAD_SUFFIXES = {
    "text": "ForSequenceClassification",
    "image": "ForImageClassification",
    "audio": "ForAudioClassification",
}
_INPUT_MODALITY = {"input_ids": "text", "pixel_values": "image", "input_values": "audio", "input_features": "audio"}
# A tokenizer must know more than 1/_MIN_VOCAB_SHARE of the model's vocabulary (models pad their embedding matrices
# by a few percent: 32,100 of 32,128 for T5, 50,295 of 51,200 for phi-2; a tokenizer rebuilt from special tokens
# alone knows 5 of 30,522).
_MIN_VOCAB_SHARE = 4
_MAX_MISSING_SHARE = 0.5  # of a model's parameters absent from its checkpoint (random-initialised): refused


# The one pinned candidate type is hf_emms.hub.Candidate; the old name stays importable.
ResolvedCandidate = Candidate


@dataclass
class LoadedCandidate:
    """A candidate ready to run: the model in eval mode on its device, and its preprocessor.

    Attributes
    ----------
    resolved : hub.Candidate
        The pinned candidate.
    folder : Path
        Local folder the weights were read from (a Hub snapshot or the folder given).
    model : transformers.PreTrainedModel
        With a classifier head when ``head_classes`` is set, else the bare encoder.
    encoder : torch.nn.Module
        The module whose output is pooled into features (``model`` itself, or its ``base_model``).
    preprocessor : Any
        Tokenizer, image processor, feature extractor, or (image + text) the checkpoint's processor.
    modality : str
        ``"text"``, ``"image"``, ``"audio"`` or ``"image-text"``.
    missing_keys : set of str
        Weights the checkpoint lacked (randomly initialised by transformers).
    head_classes : int or None
        Z, the classes of the checkpoint's classifier head, when it is used.
    seconds : dict
        Wall time of ``load`` (snapshot, config, weights, to the device) and ``tokenizer`` (the preprocessor).
    """

    resolved: Candidate
    folder: Path
    model: Any
    encoder: Any
    preprocessor: Any
    modality: str
    missing_keys: set[str]
    head_classes: int | None
    seconds: dict[str, float] = field(default_factory=dict)


def resolve_candidate(candidate: str | os.PathLike | Candidate, *, revision: str | None = None) -> Candidate:
    """Pin ``candidate`` to an exact version without reading its weights.

    Parameters
    ----------
    candidate : str, path or hub.Candidate
        A local folder holding a Hugging Face checkpoint, a Hub id (``"org/name"``), or a candidate already pinned
        (returned as it is).
    revision : str, optional
        Branch, tag or commit of a Hub id (default: the main branch). Not allowed with a folder.

    Returns
    -------
    hub.Candidate
        Pinned by the one revision rule: a Hub id to its commit sha (only ``config.json`` is fetched), a local
        folder to the digest of its files (:func:`hf_emms.hub.candidate_from_folder`).

    Raises
    ------
    CandidateLoadError
        Not a folder with a ``config.json`` nor a reachable Hub id/revision (with the reason).
    """
    if isinstance(candidate, Candidate):
        if revision is not None and revision != candidate.revision:
            raise CandidateLoadError(candidate.model_id, f"revision={revision!r} was given for a candidate already "
                                     f"pinned to {candidate.revision!r}.")
        return candidate
    name = os.fspath(candidate)
    path = Path(name).expanduser()
    if path.is_dir():
        if revision is not None:
            raise CandidateLoadError(
                name, f"revision={revision!r} was given for a local folder; revisions pin Hub ids only."
            )
        try:
            return candidate_from_folder(path)
        except CandidateLoadError as e:
            raise CandidateLoadError(name, e.reason) from None
    if path.exists() or name.startswith((".", "/", "~")):
        raise CandidateLoadError(name, "no such checkpoint folder (and it does not look like a Hub id 'org/name').")
    # The snapshot folder of a Hub download is named after the commit it holds: fetch config.json only.
    snapshot = _snapshot(name, revision, ["config.json"])
    return Candidate(model_id=name, revision=snapshot.name, source=Source.HUB)


def load_candidate(
    resolved: Candidate, *, folder: Path | None = None, modality: str, with_head: bool,
    dtype: Any = None, device: Any = "cpu", allow_pickle: bool = False, trust_remote_code: bool = False,
) -> LoadedCandidate:
    """Load the pinned candidate and its preprocessor with transformers Auto classes.

    Parameters
    ----------
    resolved : hub.Candidate
        From :func:`resolve_candidate` (or the scanner).
    folder : Path, optional
        The local folder (default: ``resolved.path``; a Hub id is fetched at ``resolved.revision``).
    modality : {"text", "image", "audio", "image-text"}
        What the dataset's input columns hold; the model must read it (a text pair is ``"text"``). For
        ``"image-text"`` the model must read images and texts together (ViLT-like joint encoders, CLIP-like dual
        encoders), with an ``AutoProcessor``; a single-modality model is refused, never fed half the input.
    with_head : bool
        Load the checkpoint's classifier head too when it has one (for NCE and LEEP).
    dtype : torch.dtype, optional
        Weights' dtype (default: the checkpoint's, float32 for most).
    device : str or torch.device
    allow_pickle : bool, default False
        Accept torch pickle weights (``pytorch_model.bin``), which can run code when read. Default: safetensors only.
    trust_remote_code : bool, default False
        Run model code shipped in the repository. Default: only architectures transformers itself implements.

    Raises
    ------
    CandidateLoadError
        With the reason: no safetensors weights, an architecture transformers cannot build, a model that does not
        read this modality (or reads only one of image + text), a missing tokenizer/processor, an unreachable
        repository.
    """
    start = time.perf_counter()
    import transformers

    name = resolved.model_id
    folder = folder or resolved.path or fetch_files(resolved, allow_pickle=allow_pickle,
                                                    trust_remote_code=trust_remote_code)
    if not allow_pickle and not any(folder.glob("*.safetensors")):
        raise CandidateLoadError(
            name, "no safetensors weights (*.safetensors). Pickled weights can run code when loaded; pass "
            "allow_pickle=True if you trust this checkpoint.",
        )
    try:
        config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as e:  # anything a broken or foreign config.json raises: this candidate only is skipped
        raise CandidateLoadError(name, f"unreadable config ({type(e).__name__}: {_first_line(e)})") from e
    seq2seq = bool(getattr(config, "is_encoder_decoder", False)) and modality == "text"
    head_class = _head_class(config, modality) if with_head and modality in _HEAD_SUFFIXES and not seq2seq else None
    auto = head_class or transformers.AutoModel
    try:
        with quiet_loading():  # a task head is reported as UNEXPECTED weights by design; missing ones are checked below
            model, info = auto.from_pretrained(
                folder, config=config, output_loading_info=True, use_safetensors=not allow_pickle or None,
                trust_remote_code=trust_remote_code, dtype=dtype,
            )
    except Exception as e:  # truncated or corrupt weights, a refused pickle (UnpicklingError), unknown layers, ...
        raise CandidateLoadError(name, f"transformers cannot build it ({type(e).__name__}: {_first_line(e)})") from e
    _check_loaded(name, model, set(info.get("missing_keys", ())))
    if seq2seq and hasattr(model, "get_encoder"):
        # T5, BART, mT5, ...: the encoder reads the whole input, and its states are the input's features. A decoder's
        # states depend on what it is fed (T5Model refuses to run without decoder inputs), which is a choice of the
        # fine-tuning recipe, not a property of the checkpoint.
        model = model.get_encoder()
    model_modality = _INPUT_MODALITY.get(getattr(model, "main_input_name", ""))
    if _reads_image_and_text(model) != (modality == "image-text"):
        raise CandidateLoadError(name, _half_input(model, model_modality, modality))
    if modality != "image-text" and model_modality != modality:
        raise CandidateLoadError(
            name, f"{type(model).__name__} reads {model_modality or getattr(model, 'main_input_name', '?')} inputs, "
            f"but the dataset column holds {modality}.",
        )
    weights_done = time.perf_counter()
    preprocessor = _preprocessor(name, folder, modality, trust_remote_code)
    _check_vocabulary(name, preprocessor, model.config, modality)
    tokenizer_seconds = time.perf_counter() - weights_done
    model.to(device).eval()
    return LoadedCandidate(
        resolved=resolved, folder=folder, model=model, encoder=model.base_model if head_class else model,
        preprocessor=preprocessor, modality=modality, missing_keys=set(info.get("missing_keys", ())),
        head_classes=model.config.num_labels if head_class else None,
        seconds={"load": time.perf_counter() - start - tokenizer_seconds, "tokenizer": tokenizer_seconds},
    )


def _reads_image_and_text(model: Any) -> bool:
    """Whether the model's forward takes token ids and pixels together (ViLT, CLIP, SigLIP, BLIP, LLaVA, ...)."""
    import inspect

    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "input_ids" in parameters and "pixel_values" in parameters


def _half_input(model: Any, model_modality: str | None, modality: str) -> str:
    """Why a model and a task's input kind do not fit (one reads image + text, the other does not)."""
    name = type(model).__name__
    if modality == "image-text":
        return f"{model_modality or 'single-modality'}-only model ({name}); this task needs image + text"
    return f"{name} reads image + text together; this task's input is {modality} only"


def _head_class(config: Any, modality: str) -> Any:
    """The Auto class of the checkpoint's own classifier head for this modality, or None when it has none."""
    import transformers

    suffix = _HEAD_SUFFIXES[modality]
    architectures = getattr(config, "architectures", None) or []
    if not any(a.endswith(suffix) for a in architectures) or len(getattr(config, "id2label", {}) or {}) < 2:
        return None
    return getattr(transformers, f"AutoModel{suffix}")


def _preprocessor(name: str, folder: Path, modality: str, trust_remote_code: bool) -> Any:
    import transformers

    auto = {
        "text": transformers.AutoTokenizer,
        "image": transformers.AutoImageProcessor,
        "audio": transformers.AutoFeatureExtractor,
        "image-text": transformers.AutoProcessor,
    }[modality]
    kind = auto.__name__.removeprefix("Auto")
    try:
        processor = auto.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as e:  # a missing or broken tokenizer/processor file
        raise CandidateLoadError(name, f"no usable {kind} in the checkpoint ({_first_line(e)})") from e
    if modality == "image-text" and not all(hasattr(processor, a) for a in ("tokenizer", "image_processor")):
        raise CandidateLoadError(name, f"its {type(processor).__name__} does not hold both a tokenizer and an image "
                                 "processor (image + text needs both)")
    return processor


def _check_loaded(name: str, model: Any, missing: set[str]) -> None:
    """Refuse a checkpoint most of whose weights are not in its files: transformers initialises the missing ones at
    random and only logs it, so a checkpoint saved under other names (another library's layout, a wrong config.json)
    would be scored as a random model that looks like any other. A few missing tensors are normal (a pooler that
    sentence-transformers checkpoints do not keep, a classifier head)."""
    if not missing:
        return
    state = model.state_dict()
    total = sum(v.numel() for v in state.values())
    gone = sum(state[k].numel() for k in missing if k in state)
    if total and gone > _MAX_MISSING_SHARE * total:
        shown = ", ".join(sorted(missing)[:2])
        raise CandidateLoadError(
            name, f"{gone / total:.0%} of {type(model).__name__}'s parameters ({len(missing)} of {len(state)} tensors, "
            f"e.g. {shown}) are not in the checkpoint and would be random: its weight names do not match the "
            "architecture in config.json (another library's layout, or the wrong config).",
        )


def _check_vocabulary(name: str, processor: Any, config: Any, modality: str) -> None:
    """Refuse a tokenizer with a small fraction of the model's vocabulary: its vocabulary files are missing or
    belong to another model. transformers then builds a tokenizer of the special tokens alone (5 for BERT), every
    word becomes [UNK], and the features describe nothing while looking like any other candidate's."""
    if modality not in ("text", "image-text"):
        return
    tokenizer = getattr(processor, "tokenizer", None) if modality == "image-text" else processor
    expected = getattr(getattr(config, "text_config", None) or config, "vocab_size", None)
    try:
        size = len(tokenizer)
    except TypeError:
        return
    if isinstance(expected, int) and expected >= 1000 and size * _MIN_VOCAB_SHARE < expected:
        raise CandidateLoadError(
            name, f"its tokenizer knows {size} tokens but the model's vocabulary has {expected}: the tokenizer's "
            "vocabulary files (tokenizer.json, vocab.txt, ...) are missing or another model's, and every word would "
            "be read as unknown. Add the checkpoint's own tokenizer files.",
        )


def fetch_files(resolved: Candidate, *, allow_pickle: bool = False, trust_remote_code: bool = False,
                quiet: bool = False) -> Path:
    """The local snapshot folder of a Hub candidate at its pinned revision, downloaded into the HF cache when missing:
    the files :func:`load_candidate` reads and no others (safetensors weights, configs, tokenizer or processor
    files; pickles only with ``allow_pickle``, code only with ``trust_remote_code``). ``quiet``: no download bars
    (a background fetch must not draw over the candidate being scored).

    Raises
    ------
    CandidateLoadError
        Not a valid Hub id, or the files cannot be fetched (gated, missing, network), with the reason.
    """
    patterns = _SAFE_PATTERNS + _PICKLE_PATTERNS * allow_pickle + _CODE_PATTERNS * trust_remote_code
    return _snapshot(resolved.model_id, resolved.revision, patterns, quiet=quiet)


def _snapshot(repo_id: str, revision: str | None, patterns: list[str], *, quiet: bool = False) -> Path:
    """Local snapshot folder of ``repo_id`` at ``revision`` holding the files matching ``patterns``."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns,
                                      ignore_patterns=_NESTED_WEIGHTS, tqdm_class=_quiet_bars() if quiet else None))
    except HFValidationError as e:
        raise CandidateLoadError(repo_id, f"not a local folder nor a valid Hub id ({_first_line(e)})") from e
    except Exception as e:  # gated, missing repo or revision, network: all become a skipped candidate with the reason
        raise CandidateLoadError(
            repo_id, f"cannot fetch revision {revision or 'main'} from the Hub ({type(e).__name__}: {_first_line(e)})"
        ) from e


def _quiet_bars() -> type:
    """huggingface_hub's tqdm, always disabled: one download's bars off without touching the global switch (which
    the thread scoring the current candidate owns)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class QuietBars(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "disable": True})

    return QuietBars


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
