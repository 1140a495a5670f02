"""The voter cookie at the HTTP edge (see :mod:`arena.voter`).

A pure ASGI middleware:

* a page load (``GET /``) without the cookie gets a fresh one with the page;
* any request whose cookie does not verify is refused with 400 and a message that says how
  to recover (clear this site's cookies), before Gradio sees it;
* everything else passes through untouched (the handlers read the cookie themselves, through
  :func:`arena.ui.common.user_key_of`).

Clients that never load the page (scripts on Gradio's API) have no cookie; they are voters
by their address, as before, and the per-voter limits apply to that address.
"""

from __future__ import annotations

from arena.ui.asgi import ASGIApp, Message, Receive, Scope, Send, app_path, cookie, header, reply
from arena.voter import VOTER_COOKIE, InvalidVoterCookie, VoterCookies

__all__ = ["VoterMiddleware"]

_REFUSAL = (
    "Refused: {why}: it was changed, or set by another arena. Clear this site's cookies and "
    "reload the page to get a new one.\n"
)


class VoterMiddleware:
    """Hand out voter cookies on page loads and refuse tampered ones.

    Parameters
    ----------
    app
        The ASGI app to wrap.
    voters
        The arena's :class:`~arena.voter.VoterCookies`.
    """

    def __init__(self, app: ASGIApp, *, voters: VoterCookies) -> None:
        self.app = app
        self.voters = voters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = cookie(header(scope, b"cookie"), VOTER_COOKIE)
        try:
            voter = self.voters.voter_id(value)
        except InvalidVoterCookie as exc:
            await reply(send, 400, _REFUSAL.format(why=exc).encode())
            return
        if voter is not None or scope.get("method") != "GET" or app_path(scope) != "/":
            await self.app(scope, receive, send)
            return
        root = str(scope.get("root_path", "")).rstrip("/")
        secure = scope.get("scheme") == "https" or header(scope, b"x-forwarded-proto") == "https"
        set_cookie = self.voters.header(self.voters.mint(), path=root or "/", secure=secure)

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", set_cookie.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_cookie)
