"""Candidates already on disk: checkpoint folders, and snapshots in the local Hugging Face cache.

Everything here is offline: metadata comes from ``config.json``, the safetensors headers (no weights loaded) and
the model card's YAML header, so rankings work on what a user already has without reaching the Hub.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import scan_cache_dir
from huggingface_hub.repocard import metadata_load
from safetensors import SafetensorError, safe_open

from .architectures import modalities_of
from .candidate import Candidate, Source, eval_results, head_labels, weights_digest
from .digests import file_sha256
from ..errors import InvalidCandidateError


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors files at the folder's top level: the rule the Hub counts parameters and hashes weights by."""
    return sorted(folder.glob("*.safetensors"))


def _count_parameters(files: Iterable[Path]) -> int:
    """Parameters in the safetensors ``files``, from their headers (no weights read). safetensors refuses a corrupt
    header and a truncated file (one its header's offsets do not fit) with a ``SafetensorError``."""
    total = 0
    for path in files:
        with safe_open(path, framework="numpy") as f:  # reads the header only
            for name in f.keys():
                n = 1
                for dim in f.get_slice(name).get_shape():
                    n *= dim
                total += n
    return total


def candidate_from_folder(
    folder: str | Path, *, model_id: str | None = None, revision: str | None = None, source: Source = Source.LOCAL
) -> Candidate:
    """A candidate from a checkpoint folder (``config.json`` plus weights), read offline.

    Parameters
    ----------
    folder : str or Path
        The checkpoint folder.
    model_id, revision : str, optional
        For cache snapshots: the repo id and commit sha. By default the folder's resolved path, and a content
        digest of its files (sha256 over relative paths and file hashes, first 40 hex).
    source : Source

    Raises
    ------
    InvalidCandidateError
        No ``config.json``; an unreadable folder or file; a ``config.json`` that is not a JSON mapping; a safetensors
        file whose header is corrupt or whose data is shorter than the header says (truncated).
    """
    folder = Path(folder).expanduser().resolve()
    model_folder = model_folder_of(folder) or folder  # an older sentence-transformers folder keeps it in 0_*/
    config_path = model_folder / "config.json"
    if not config_path.is_file():
        raise InvalidCandidateError(f"{folder} is not a checkpoint folder: it has no config.json "
                                    "(save one with model.save_pretrained(folder))")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError(f"config.json holds a JSON {type(config).__name__}, not a mapping of settings")
    except (OSError, ValueError) as exc:
        raise InvalidCandidateError(f"{folder}: unreadable config.json ({_why(exc)}); re-save it with "
                                    "save_pretrained") from None
    try:
        weight_files = [p for p in _weight_files(model_folder) if p.is_file()]
        num_parameters = _count_parameters(weight_files) if weight_files else None
        files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not _hidden(p.relative_to(folder))]
        digests = file_sha256([p for p in files if p in weight_files or revision is None])
        hashes = {p.relative_to(folder).as_posix(): digest for p, digest in digests.items()}
        card = (metadata_load(folder / "README.md") if (folder / "README.md").is_file() else None) or {}
    except (OSError, ValueError, SafetensorError, yaml.YAMLError) as exc:
        raise InvalidCandidateError(f"{folder}: cannot read the checkpoint ({_why(exc)}); check the files' "
                                    "permissions, or re-save it with save_pretrained") from None
    if revision is None:  # the one revision rule of local folders: a digest of every file's path and content
        revision = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(hashes.items())).encode()).hexdigest()[:40]
    tags = card.get("tags") or []
    return Candidate(
        model_id=model_id or str(folder),
        revision=revision,
        source=source,
        path=model_folder,
        model_type=config.get("model_type"),
        architectures=tuple(config.get("architectures") or ()),
        modalities=modalities_of(config.get("model_type"), card.get("pipeline_tag")),
        num_parameters=num_parameters,
        has_safetensors=bool(weight_files),
        remote_code="auto_map" in config,
        license=card.get("license"),
        pipeline_tag=card.get("pipeline_tag"),
        library_name=card.get("library_name"),
        tags=tuple(tags if isinstance(tags, list) else [tags]),
        weights_digest=weights_digest([hashes[p.relative_to(folder).as_posix()] for p in weight_files]),
        labels=head_labels(config),
        eval_results=eval_results(card.get("model-index")),
    )


def model_folder_of(folder: Path) -> Path | None:
    """The folder holding a checkpoint's ``config.json``: ``folder`` itself, or, for a sentence-transformers folder
    saved in the older layout (``modules.json`` at the top, the transformer in ``0_Transformer/`` or ``0_BERT/``),
    the first module folder that holds one with a ``model_type``; None when there is neither."""
    if (folder / "config.json").is_file():
        return folder
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        paths = [m.get("path") for m in modules if isinstance(m, dict)]
    except (OSError, ValueError, TypeError):
        return None
    for path in paths:
        if not isinstance(path, str) or not path.strip("./"):
            continue
        try:
            config = json.loads((folder / path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and config.get("model_type"):
            return folder / path
    return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _hidden(relative: Path) -> bool:
    # `hf download --local-dir` keeps its bookkeeping in .cache/; editors and git leave other dot-folders.
    return any(part.startswith(".") for part in relative.parts)


def candidates_from_folders(paths: Iterable[str | Path], *,
                            broken: list[tuple[Path, str]] | None = None) -> list[Candidate]:
    """Candidates from each path: a checkpoint folder, or a folder whose subfolders are checkpoints.

    ``broken``: a list that collects (folder, reason) for each checkpoint folder that cannot be read, instead of
    raising: one broken checkpoint in a folder of them then costs itself only.

    Raises
    ------
    InvalidCandidateError
        A path that does not exist, or holds no checkpoint at all; without ``broken``, a checkpoint that cannot be
        read.
    """
    out = []
    for path in map(Path, paths):
        if model_folder_of(path) is not None:
            folders = [path]
        else:
            folders = sorted(p for p in path.iterdir() if model_folder_of(p)) if path.is_dir() else []
            if not folders:
                raise InvalidCandidateError(_adapter_reason(path) or f"{path} holds no checkpoint: expected "
                                            "config.json in it or in its subfolders")
        out += _each(folders, lambda folder: candidate_from_folder(folder), broken)
    return out


def _adapter_reason(path: Path) -> str | None:
    """Why a PEFT adapter folder (``adapter_config.json``, no ``config.json``) is not a checkpoint, or None."""
    try:
        adapter = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    base = adapter.get("base_model_name_or_path") if isinstance(adapter, dict) else None
    kind = adapter.get("peft_type", "PEFT") if isinstance(adapter, dict) else "PEFT"
    return (f"{path} is a {kind} adapter{f' of {base}' if base else ''}, not a checkpoint: rank its base model, or "
            "merge it into the base (peft: model.merge_and_unload().save_pretrained(folder)) and rank that folder")


def _each(folders: Iterable[Path], read: Any, broken: list[tuple[Path, str]] | None) -> list[Candidate]:
    """``read(folder)`` for each folder; a failure is raised, or collected in ``broken`` when it is a list."""
    out = []
    for folder in folders:
        try:
            out.append(read(folder))
        except InvalidCandidateError as exc:
            if broken is None:
                raise
            broken.append((folder, exc.reason))
    return out


def candidates_from_cache(cache_dir: str | Path | None = None, *,
                          broken: list[tuple[Path, str]] | None = None) -> list[Candidate]:
    """One candidate per model snapshot in the Hugging Face cache (``HF_HUB_CACHE`` unless ``cache_dir``).

    Snapshots without ``config.json`` (a partial download) are left out: they cannot be loaded offline. The
    revision is the snapshot's commit sha. ``broken``: as in :func:`candidates_from_folders`.
    """
    info = scan_cache_dir(cache_dir)
    snapshots = {rev.snapshot_path: (repo.repo_id, rev.commit_hash)
                 for repo in sorted(info.repos, key=lambda r: r.repo_id) if repo.repo_type == "model"
                 for rev in sorted(repo.revisions, key=lambda r: r.commit_hash)
                 if (rev.snapshot_path / "config.json").is_file()}
    return _each(snapshots, lambda path: candidate_from_folder(
        path, model_id=snapshots[path][0], revision=snapshots[path][1], source=Source.CACHE), broken)
