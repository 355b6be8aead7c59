"""Why a Hub dataset could not be loaded, in words a user can act on.

``datasets.load_dataset`` reports most Hub failures the same way: a gated dataset without access, a private or
misspelled id, an empty repo all end in "Dataset org/name is not cached in None" once its offline fallback fails too,
and a dataset with several configs in "Config name is missing". One metadata request (``dataset_info``) tells them
apart; when that request fails as well (offline, the Hub unreachable), the caller's generic message stands.
"""

from __future__ import annotations

from typing import Any

from .files import _FILE_BUILDERS

# Files a dataset repo may hold that ``datasets`` reads as data (beside _FILE_BUILDERS' tables and texts).
_DATA_SUFFIXES = (*_FILE_BUILDERS, ".zip", ".tar", ".gz", ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif",
                  ".tiff", ".wav", ".mp3", ".flac", ".ogg")


def hub_failure(repo_id: str, *, config: str | None, revision: str | None, token: Any, error: str) -> str | None:
    """The cause of a failed ``load_dataset(repo_id, config, revision=...)`` and its fix, or None when the Hub
    cannot say (then the caller's message stands). ``error`` is the failure's innermost message."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    page = f"{constants.ENDPOINT}/datasets/{repo_id}"
    try:
        info = HfApi().dataset_info(repo_id, revision=revision, token=token)
    except GatedRepoError:
        return _gated(repo_id, page)
    except RevisionNotFoundError:
        return f"{repo_id!r} has no revision {revision!r}: give a branch, tag or commit of {page}."
    except RepositoryNotFoundError:
        return (f"no dataset {repo_id!r} on the Hub ({constants.ENDPOINT}), or it is private and the token in use "
                "cannot read it: check the id, or log in (`hf auth login`, HF_TOKEN) with an account that can.")
    except Exception:  # noqa: BLE001 - offline or unreachable: nothing more to learn here
        return None
    if getattr(info, "gated", False):  # its card is public, its files are not: the load failed on those
        return _gated(repo_id, page)
    if "config name is missing" in error.lower() or ("builderconfig" in error.lower() and config is not None):
        try:
            from datasets import get_dataset_config_names

            names = get_dataset_config_names(repo_id, revision=revision, token=token)
        except Exception:  # noqa: BLE001
            return None
        given = f"has no config {config!r}" if config is not None else "has several configs"
        return f"{repo_id!r} {given}: pass one of {names} as config=."
    files = [s.rfilename for s in info.siblings or ()]
    if files and not any(f.lower().endswith(_DATA_SUFFIXES) for f in files):
        shown = files[:5] + (["..."] if len(files) > 5 else [])
        return (f"{repo_id!r} holds no data file datasets can read (its files: {shown}): it needs CSV, JSON(L), "
                "Parquet, text, image or audio files.")
    return None


def hub_data_bytes(repo_id: str, *, config: str | None = None, revision: str | None = None,
                   token: Any = None) -> int | None:
    """The bytes of the data files ``load_dataset(repo_id, config)`` would download (every split of that config),
    from the Hub's metadata alone: the files ``datasets`` resolves for the config, sized by one ``dataset_info``
    request. None when they cannot be told (the load itself then fails with its own message, or sizes what it reads).
    """
    from urllib.parse import unquote

    import datasets
    from huggingface_hub import HfApi

    try:
        builder = datasets.load_dataset_builder(repo_id, config, revision=revision, token=token)
        info = HfApi().dataset_info(repo_id, revision=revision, token=token, files_metadata=True)
    except Exception:  # noqa: BLE001 - gated, missing, offline, several configs: the load says which
        return None
    sizes = {s.rfilename: s.size for s in info.siblings or ()}
    prefix = f"hf://datasets/{repo_id}@"
    total = 0
    for files in (builder.config.data_files or {}).values():
        for url in files:  # hf://datasets/org/name@<revision>/<path in the repo>
            path = unquote(str(url)[len(prefix):].split("/", 1)[-1]) if str(url).startswith(prefix) else None
            if sizes.get(path) is None:
                return None
            total += sizes[path]
    return total if builder.config.data_files else None


def _gated(repo_id: str, page: str) -> str:
    return (f"{repo_id!r} is gated: accept its conditions on {page} with your account, then log in (`hf auth login`) "
            "or set HF_TOKEN (a token that still fails has not been granted access yet).")
