"""The emms-ranker Space's model-card pull requests, without the UI: preview the changes a ranking would make to each
scored model's card, find which repos are the visitor's own, and open the pull requests (after confirmation for
other people's repos). The card edits themselves are :func:`hf_emms.cards.annotate`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hf_emms import Ranking
from ranker import SpaceInputError

__all__ = ["foreign_repos", "open_pull_requests", "owned_namespaces", "preview_cards"]


def preview_cards(ranking: Ranking, *, token: str | bool | None = None) -> list[Any]:
    """The card changes a pull request would make, as diffs; nothing is written (``hf_emms.cards.annotate``)."""
    from hf_emms.cards import annotate

    return annotate(ranking, create_pr=False, token=token, progress=False)


def owned_namespaces(token: str | bool | None, username: str | None = None) -> set[str]:
    """The user's namespaces: ``username`` (from the Space's sign-in) and, when the Hub answers ``whoami``, the
    token's user and organisations. Empty when nothing is known: every repo then counts as someone else's."""
    from huggingface_hub import HfApi

    owned = {username} if username else set()
    if isinstance(token, str):
        try:
            me = HfApi().whoami(token=token)
        except Exception:  # an endpoint without whoami, a token without read scope: ask for confirmation instead
            return owned
        owned |= {me.get("name")} | {org.get("name") for org in me.get("orgs", [])}
    return {n for n in owned if n}


def foreign_repos(changes: Sequence[Any], owned: set[str]) -> list[str]:
    """Models with a proposed change whose repo is outside ``owned``: a pull request there needs confirmation."""
    return [c.model for c in changes if c.status.value == "proposed" and c.model.split("/")[0] not in owned]


def open_pull_requests(ranking: Ranking, *, token: str | None, owned: set[str] = frozenset(),
                       confirmed: bool = False) -> list[Any]:
    """Open one pull request per card that would change, after a fresh dry run.

    Raises
    ------
    SpaceInputError
        No token, or pull requests on repos outside ``owned`` without ``confirmed``.
    """
    from hf_emms.cards import annotate

    if not token:
        raise SpaceInputError("opening pull requests needs you signed in (or, locally, a pasted token with write "
                              "access); the preview needs neither.")
    proposed = [c for c in preview_cards(ranking, token=token) if c.status.value == "proposed"]
    if not proposed:
        raise SpaceInputError("no card would change: every scored model's card already holds this result, or no "
                              "model can be annotated (see the preview's reasons).")
    foreign = foreign_repos(proposed, owned)
    if foreign and not confirmed:
        raise SpaceInputError(f"{foreign} are not yours: tick the confirmation to open pull requests on other "
                              "people's repos (their owners decide whether to merge).")
    return annotate(ranking, create_pr=True, token=token, models=[c.model for c in proposed], progress=False)
