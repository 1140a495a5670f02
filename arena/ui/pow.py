"""The proof-of-work routes and the browser widget, served by the app itself (no CDN).

* ``GET pow/challenge`` -- a fresh ALTCHA challenge (JSON);
* ``POST pow/verify`` -- body: the widget's base64 solution; a valid, unexpired, unused one
  sets the pass cookie (HttpOnly, SameSite=Lax) and answers 204; anything else 403;
* ``GET pow/widget.js`` -- the solver, written for this arena: it fetches a challenge, tries
  numbers with the browser's SHA-256 until one matches, posts the solution, and marks the
  page ``data-pow="solved"`` (or ``"failed"``).

The page loads the widget through ``launch(head=...)`` (see ``arena serve``).
"""

from __future__ import annotations

import json

from arena.pow import ProofOfWork
from arena.ui.asgi import ASGIApp, Receive, Scope, Send, app_path, cookie, reply

__all__ = ["POW_COOKIE", "WIDGET_HEAD", "PowMiddleware", "pass_from_cookies"]

POW_COOKIE = "arena_pow"
#: What the page's <head> gets: the widget, from the app itself (relative: root-path safe).
WIDGET_HEAD = '<script src="pow/widget.js" defer></script>'
_MAX_BODY = 4096

_WIDGET = r"""
(() => {
  const root = document.documentElement;
  const here = new URL(".", document.baseURI);
  const hex = (buf) =>
    Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
  async function solve() {
    if (!(window.crypto && crypto.subtle)) { root.dataset.pow = "unsupported"; return; }
    root.dataset.pow = "working";
    const ch = await (await fetch(new URL("pow/challenge", here), {cache: "no-store"})).json();
    const enc = new TextEncoder();
    for (let n = 0; n <= ch.maxnumber; n++) {
      const digest = hex(await crypto.subtle.digest("SHA-256", enc.encode(ch.salt + n)));
      if (digest === ch.challenge) {
        const payload = btoa(JSON.stringify({algorithm: ch.algorithm, challenge: ch.challenge,
                                              number: n, salt: ch.salt, signature: ch.signature}));
        const r = await fetch(new URL("pow/verify", here), {method: "POST", body: payload,
                                                            credentials: "same-origin"});
        root.dataset.pow = r.ok ? "solved" : "failed";
        return;
      }
    }
    root.dataset.pow = "failed";
  }
  solve().catch(() => { root.dataset.pow = "failed"; });
})();
"""


def pass_from_cookies(cookie_header: str | None) -> str | None:
    """The pass cookie's value from a ``Cookie`` header, if present."""
    return cookie(cookie_header, POW_COOKIE)


class PowMiddleware:
    """Serve the proof-of-work routes; pass everything else to the app.

    Parameters
    ----------
    app
        The ASGI app to wrap.
    pow
        The arena's :class:`~arena.pow.ProofOfWork`.
    """

    def __init__(self, app: ASGIApp, *, pow: ProofOfWork) -> None:
        self.app = app
        self.pow = pow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root = str(scope.get("root_path", "")).rstrip("/")
        path = app_path(scope)
        method = scope.get("method")
        if path == "/pow/challenge" and method == "GET":
            body = json.dumps(self.pow.challenge()).encode()
            await reply(send, 200, body, b"application/json")
        elif path == "/pow/widget.js" and method == "GET":
            await reply(
                send, 200, _WIDGET.encode(), b"text/javascript; charset=utf-8", no_store=False
            )
        elif path == "/pow/verify" and method == "POST":
            payload = await _read_body(receive)
            token = self.pow.redeem(payload.decode("ascii", "replace")) if payload else None
            if token is None:
                await reply(send, 403, b"not a valid, unused solution\n")
                return
            pass_cookie = (
                f"{POW_COOKIE}={token}; Path={root or '/'}; Max-Age={int(self.pow.pass_ttl_s)}; "
                "HttpOnly; SameSite=Lax"
            )
            await reply(send, 204, b"", extra=[(b"set-cookie", pass_cookie.encode())])
        else:
            await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return b""  # far longer than any solution
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)
