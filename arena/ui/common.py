"""Helpers shared by the tabs: who is asking, and how turns become chat messages."""

from __future__ import annotations

from typing import Any

import gradio as gr

from arena import integrity
from arena.auth import AuthMode, Person
from arena.auth.people import PERSON_COOKIE, InvalidPersonCookie
from arena.battles import Arena, TurnUpdate
from arena.lifecycle import Refusal, refuse
from arena.ui.asgi import cookie
from arena.voter import VOTER_COOKIE, InvalidVoterCookie

__all__ = [
    "address_key_of",
    "client_address",
    "owner_of",
    "person_of",
    "render_side",
    "user_key_of",
]


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


def _cookie_header(request: gr.Request | None) -> str | None:
    headers = getattr(request, "headers", None) if request is not None else None
    return headers.get("cookie") if headers is not None else None


def person_of(arena: Arena, request: gr.Request | None) -> Person | None:
    """The signed-in person (:mod:`arena.auth`), when sign-in is on and the cookie is valid."""
    if arena.auth is None:
        return None
    try:
        return arena.people.read(cookie(_cookie_header(request), PERSON_COOKIE))
    except InvalidPersonCookie:  # refused at the edge (AuthMiddleware); never believed here
        return None


def user_key_of(arena: Arena, request: gr.Request | None) -> str:
    """The voter's keyed hash: the signed-in person's keyed id; else the browser's voter id
    (:mod:`arena.voter`); else, for a client without the voter cookie (a script on the API),
    the address's.

    A cookie that does not verify never gets here (the middlewares refuse the request);
    should one arrive anyway, it is not believed.

    Raises
    ------
    arena.lifecycle.BattleRefused
        ``sign_in_required``: the arena admits signed-in people only and this is not one.
    """
    person = person_of(arena, request)
    if person is not None:
        return person.key
    if arena.auth is not None and arena.auth.mode is AuthMode.REQUIRED:
        raise refuse(Refusal.SIGN_IN_REQUIRED)
    try:
        voter = arena.voters.voter_id(cookie(_cookie_header(request), VOTER_COOKIE))
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
