"""Helpers shared by the tabs: who is asking, and how turns become chat messages."""

from __future__ import annotations

from typing import Any

import gradio as gr

from arena import integrity
from arena.battles import Arena, TurnUpdate
from arena.ui.asgi import cookie
from arena.voter import VOTER_COOKIE, InvalidVoterCookie

__all__ = ["address_key_of", "client_address", "owner_of", "render_side", "user_key_of"]


def client_address(request: gr.Request | None, trusted_proxies: frozenset[str]) -> str:
    """The client's address (see :func:`arena.integrity.client_address`)."""
    if request is None:
        return "unknown"
    client = getattr(request, "client", None)
    return integrity.client_address(
        getattr(client, "host", None), request.headers.get("x-forwarded-for"), trusted_proxies
    )


def owner_of(request: gr.Request | None) -> str:
    """Opaque id of the browser session (one page load) that owns a battle."""
    session = getattr(request, "session_hash", None) if request is not None else None
    return f"session:{session}" if session else "session:none"


def address_key_of(arena: Arena, request: gr.Request | None) -> str:
    """The keyed hash of the client's address (never the raw address)."""
    return arena.user_key_for(client_address(request, arena.settings.trusted_proxy_set))


def user_key_of(arena: Arena, request: gr.Request | None) -> str:
    """The voter's keyed hash: of the browser's voter id (:mod:`arena.voter`), or, for a
    client without the voter cookie (a script on the API), of its address.

    A cookie that does not verify never gets here (:class:`arena.ui.voter.VoterMiddleware`
    refuses the request); should one arrive anyway, it is not believed: the address stands.
    """
    headers = getattr(request, "headers", None) if request is not None else None
    value = cookie(headers.get("cookie") if headers is not None else None, VOTER_COOKIE)
    try:
        voter = arena.voters.voter_id(value)
    except InvalidVoterCookie:
        voter = None
    return arena.voter_key_for(voter) if voter else address_key_of(arena, request)


def render_side(
    previous: list[dict[str, Any]], update: TurnUpdate, side: str
) -> list[dict[str, Any]]:
    """Chat messages for one side: earlier turns plus this turn's prompt and answer so far."""
    view = update.a if side == "a" else update.b
    answer = view.text
    if view.error:
        answer = f"{answer}\n\n**{view.error}**" if answer else f"**{view.error}**"
    elif not view.done and not answer:
        answer = "…"
    return [
        *previous,
        {"role": "user", "content": update.prompt},
        {"role": "assistant", "content": answer},
    ]
