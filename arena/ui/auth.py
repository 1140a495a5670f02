"""The sign-in routes (ARENA_AUTH_MODE optional or required; see :mod:`arena.auth`).

A pure ASGI middleware, like the others:

* ``GET auth/login[?next=PATH]`` -- starts the authorization code flow: a signed, short-lived
  flow cookie (state, nonce, PKCE verifier) and a redirect to the provider;
* ``GET auth/callback`` -- checks the state against that cookie, exchanges the code, checks
  the ID token, applies the access rules; then the signed ``arena_person`` cookie and a
  redirect back.  A refusal is a page that names the rule, not the person;
* ``GET|POST auth/logout`` -- forgets the person cookie;
* every other request: a person cookie that does not verify is refused (400), like a
  tampered voter cookie; an expired one is simply no sign-in.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qs, quote

from arena.auth.config import AuthConfig
from arena.auth.oidc import Flow, OidcClient, OidcError
from arena.auth.people import (
    PERSON_COOKIE,
    AccessRules,
    InvalidPersonCookie,
    Person,
    PersonCookies,
)
from arena.signing import BadSignature, Signer, cookie_header
from arena.ui.asgi import ASGIApp, Receive, Scope, Send, app_path, cookie, header, reply

__all__ = ["FLOW_COOKIE", "AuthMiddleware"]

log = logging.getLogger(__name__)

FLOW_COOKIE = "arena_auth_flow"
_FLOW_TTL_S = 600


def _page(title: str, message: str, root: str) -> bytes:
    home = html.escape(root + "/")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family:sans-serif;"
        f"max-width:40em;margin:4em auto'><h1>{html.escape(title)}</h1>"
        f"<p id='auth-message'>{html.escape(message)}</p>"
        f"<p><a href='{home}auth/login'>Try again</a> · <a href='{home}'>Back to the arena</a>"
        "</p></body></html>"
    ).encode()


def _safe_next(value: str | None) -> str:
    """A path inside this arena to return to (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


class AuthMiddleware:
    """Serve the sign-in routes; refuse tampered person cookies; pass the rest on.

    Parameters
    ----------
    app
        The ASGI app to wrap.
    config
        The sign-in settings.
    people
        The arena's person cookies.
    flows
        Signs the flow cookie (``Arena.signer("sign-in flow cookie")``).
    key_for
        ``(issuer, subject) -> keyed id`` (``Arena.person_key_for``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: AuthConfig,
        people: PersonCookies,
        flows: Signer,
        key_for: Callable[[str, str], str],
    ) -> None:
        self.app = app
        self.config = config
        self.oidc = OidcClient(config)
        self.people = people
        self.flows = flows
        self.key_for = key_for
        self.rules = AccessRules(config.allowed_domains, config.allowed_groups, config.group_claim)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = app_path(scope)
        root = str(scope.get("root_path", "")).rstrip("/")
        cookies = header(scope, b"cookie")
        if path == "/auth/login" and scope.get("method") == "GET":
            await self._login(scope, send, root)
        elif path == "/auth/callback" and scope.get("method") == "GET":
            await self._callback(scope, send, root, cookies)
        elif path == "/auth/logout" and scope.get("method") in ("GET", "POST"):
            gone = self.people.header("", path=root or "/", max_age_s=0, secure=_secure(scope))
            await _redirect(send, root + "/", [gone])
        else:
            try:
                self.people.read(cookie(cookies, PERSON_COOKIE))
            except InvalidPersonCookie as exc:
                message = (
                    f"Refused: {exc}: it was changed, or set by another arena. Clear this "
                    "site's cookies and sign in again.\n"
                )
                await reply(send, 400, message.encode())
                return
            await self.app(scope, receive, send)

    def _redirect_url(self, scope: Scope, root: str) -> str:
        if self.config.redirect_url:
            return self.config.redirect_url
        host = header(scope, b"host") or "localhost"
        scheme = "https" if _secure(scope) else "http"
        return f"{scheme}://{host}{root}/auth/callback"

    async def _login(self, scope: Scope, send: Send, root: str) -> None:
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        next_path = _safe_next((query.get("next") or ["/"])[0])
        try:
            url, flow = await self.oidc.start(self._redirect_url(scope, root), next_path)
        except OidcError as exc:
            log.warning("sign-in could not start: %s", exc)
            await reply(send, 502, _page("Sign-in is unavailable", str(exc), root), b"text/html")
            return
        token = self.flows.dumps(
            {
                "s": flow.state,
                "n": flow.nonce,
                "v": flow.verifier,
                "r": flow.redirect_url,
                "x": flow.next_path,
                "e": time.time() + _FLOW_TTL_S,
            }
        )
        flow_cookie = cookie_header(
            FLOW_COOKIE, token, path=root or "/", max_age_s=_FLOW_TTL_S, secure=_secure(scope)
        )
        await _redirect(send, url, [flow_cookie])

    async def _callback(self, scope: Scope, send: Send, root: str, cookies: str | None) -> None:
        query = {
            k: v[0]
            for k, v in parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1")).items()
        }
        clear_flow = cookie_header(
            FLOW_COOKIE, "", path=root or "/", max_age_s=0, secure=_secure(scope)
        )

        async def refuse(status: int, title: str, message: str) -> None:
            log.info("sign-in refused: %s", message)
            page = _page(title, message, root)
            await reply(
                send,
                status,
                page,
                b"text/html; charset=utf-8",
                extra=[(b"set-cookie", clear_flow.encode())],
            )

        raw = cookie(cookies, FLOW_COOKIE)
        try:
            data = self.flows.loads(raw) if raw else None
        except BadSignature:
            data = None
        if data is None or float(data.get("e", 0)) < time.time():
            await refuse(
                400,
                "Sign-in expired",
                "This sign-in was started too long ago or in another browser. Start again.",
            )
            return
        if "error" in query:
            detail = query.get("error_description") or query["error"]
            await refuse(403, "Sign-in refused", f"The provider refused the sign-in: {detail}")
            return
        if not query.get("state") or query.get("state") != data.get("s"):
            await refuse(400, "Sign-in failed", "The sign-in answer does not match (state).")
            return
        if not query.get("code"):
            await refuse(400, "Sign-in failed", "The provider sent no authorization code.")
            return
        flow = Flow(
            state=str(data["s"]),
            nonce=str(data["n"]),
            verifier=str(data["v"]),
            redirect_url=str(data["r"]),
            next_path=_safe_next(str(data.get("x", "/"))),
        )
        try:
            claims = await self.oidc.finish(flow, code=query["code"], iss=query.get("iss"))
        except OidcError as exc:
            await refuse(502, "Sign-in failed", str(exc))
            return
        why = self.rules.refusal(claims)
        if why is not None:
            await refuse(403, "Sign-in refused", why)
            return
        person = Person(
            key=self.key_for(self.config.issuer, str(claims["sub"])),
            label=str(claims.get("email") or claims.get("name") or "signed in"),
            expires_at=time.time() + self.config.session_s,
        )
        person_cookie = self.people.header(
            self.people.make(person),
            path=root or "/",
            max_age_s=int(self.config.session_s),
            secure=_secure(scope),
        )
        log.info("sign-in: person %s… signed in", person.key[:12])
        target = root + flow.next_path
        await _redirect(send, target, [person_cookie, clear_flow])


def _secure(scope: Scope) -> bool:
    return scope.get("scheme") == "https" or header(scope, b"x-forwarded-proto") == "https"


async def _redirect(send: Send, location: str, cookies: list[str]) -> None:
    extra = [(b"location", quote(location, safe=":/?&=%#@+,;~").encode("latin-1"))]
    extra += [(b"set-cookie", c.encode("latin-1")) for c in cookies]
    await reply(send, 302, b"", extra=extra)
