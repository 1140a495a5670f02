"""``/admin``: a pure ASGI middleware in front of the Gradio app (like :mod:`arena.ui.ops`).

Requests under ``/admin`` are answered here and never reach Gradio; everything else passes
through.  With no ``ARENA_ADMIN_PASSWORD_HASH`` every ``/admin`` path is 404.

Who gets in:

* Logging in takes the password (and the TOTP code when ``ARENA_ADMIN_TOTP_SECRET`` is set);
  a refused try is stored (``admin_action``), and after :data:`MAX_FAILED_LOGINS` from one
  address in :data:`FAILED_LOGIN_WINDOW_S` the address gets 429 without its password being
  checked -- counted in the database, so it holds across replicas and restarts.
* A session is a signed, HttpOnly, ``SameSite=Strict`` cookie (:mod:`arena.admin.auth`).
  Pages without one redirect to the login form; a POST without one is 403.
* Every POST also needs the session's CSRF token in its form: a page from another site can
  neither send the cookie (Strict) nor know the token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import time
from collections.abc import Awaitable, Callable

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route, Router

from arena import store
from arena.admin import pages
from arena.admin.actions import FINDING_REASONS, ActionRefused, AdminActions, Who
from arena.admin.auth import AdminSession, SessionSigner, parse_password_hash, verify_password
from arena.admin.auth import verify_totp as check_totp
from arena.battles import Arena
from arena.config import Settings
from arena.integrity import client_address
from arena.store import browse
from arena.store.admin_log import LOGIN_FAILED, failed_logins_since, list_admin_actions
from arena.store.live_roster import roster_state
from arena.ui.asgi import ASGIApp, Message, Receive, Scope, Send, app_path

__all__ = [
    "COOKIE",
    "FAILED_LOGIN_WINDOW_S",
    "MAX_FAILED_LOGINS",
    "AdminMiddleware",
    "admin_enabled",
]

log = logging.getLogger(__name__)

COOKIE = "arena_admin"
MAX_FAILED_LOGINS = 5
FAILED_LOGIN_WINDOW_S = 15 * 60
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
_NOT_FOUND = "Not Found"
#: Largest admin form accepted (an added roster entry is at most 20,000 characters).
MAX_BODY_BYTES = 64 * 1024
_FORM_TYPE = "application/x-www-form-urlencoded"


def admin_enabled(settings: Settings) -> bool:
    """Whether the admin page is on (a password hash is set), after checking its settings.

    Raises
    ------
    arena.admin.AdminAuthError
        The password hash or TOTP secret is malformed; the message says how.
    """
    if not settings.admin_password_hash.strip():
        return False
    parse_password_hash(settings.admin_password_hash)
    if settings.admin_totp_secret.strip():
        check_totp(settings.admin_totp_secret.strip(), "000000")  # a malformed one raises
    return True


class AdminMiddleware:
    """Serve ``/admin`` for ``arena``; pass every other request to ``app``.

    Parameters
    ----------
    app
        The Gradio app (the next ASGI app).
    arena
        The running arena (its settings carry the password hash and TOTP secret).
    secret
        The arena's secret (:func:`arena.store.resolve_secret`), the cookie signing key.

    Raises
    ------
    arena.admin.AdminAuthError
        The configured password hash or TOTP secret is malformed (so ``arena serve`` fails
        at start instead of refusing every login).
    """

    def __init__(self, app: ASGIApp, *, arena: Arena, secret: str) -> None:
        self.app = app
        self.arena = arena
        settings = arena.settings
        self.password_hash = settings.admin_password_hash.strip()
        self.totp_secret = settings.admin_totp_secret.strip()
        self.enabled = admin_enabled(settings)
        self.prefix = settings.root_path.rstrip("/")
        self.trusted = settings.trusted_proxy_set
        self.signer = SessionSigner(secret, self.password_hash)
        self.actions = AdminActions(arena)
        self.router = Router(
            routes=[
                Route("/admin", self.roster, methods=["GET"]),
                Route("/admin/", self.roster, methods=["GET"]),
                Route("/admin/login", self.login_form, methods=["GET"]),
                Route("/admin/login", self.login, methods=["POST"]),
                Route("/admin/logout", self.logout, methods=["POST"]),
                Route("/admin/models/enable", self.enable, methods=["POST"]),
                Route("/admin/models/disable", self.disable, methods=["POST"]),
                Route("/admin/models/weight", self.weight, methods=["POST"]),
                Route("/admin/models/add", self.add, methods=["POST"]),
                Route("/admin/battles", self.battles, methods=["GET"]),
                Route("/admin/battles/{battle_id}", self.battle, methods=["GET"]),
                Route("/admin/findings", self.findings, methods=["GET"]),
                Route("/admin/findings/apply", self.apply_finding, methods=["POST"]),
                Route("/admin/findings/undo", self.undo_finding, methods=["POST"]),
                Route("/admin/moderation", self.moderation, methods=["GET"]),
                Route("/admin/export", self.export_form, methods=["GET"]),
                Route("/admin/export", self.export, methods=["POST"]),
                Route("/admin/log", self.audit_log, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Inside the app: without a --root-path prefix, as the other middlewares see it.
        path = app_path(scope) if scope["type"] == "http" else ""
        if not (path == "/admin" or path.startswith("/admin/")):
            await self.app(scope, receive, send)
            return
        if not self.enabled:
            await Response(_NOT_FOUND, 404, media_type="text/plain")(scope, receive, send)
            return
        if scope.get("method") == "POST":
            refusal = _form_refusal(scope)
            body = None if refusal else await _read_body(receive, MAX_BODY_BYTES)
            if refusal or body is None:
                status, text = refusal or (413, f"A form is at most {MAX_BODY_BYTES:,} bytes.")
                await Response(text, status, media_type="text/plain")(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.router(scope, receive, send)

    # ----------------------------------------------------------------------------------------
    # who is asking

    def _address_key(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        address = client_address(peer, request.headers.get("x-forwarded-for"), self.trusted)
        return self.arena.user_key_for(address)

    def _session(self, request: Request) -> AdminSession | None:
        return self.signer.read(request.cookies.get(COOKIE))

    def _who(self, request: Request, session: AdminSession) -> Who:
        return Who(session.actor, self._address_key(request))

    def _page(self, request: Request, session: AdminSession) -> pages.Page:
        return pages.Page(
            prefix=self.prefix,
            csrf=self.signer.csrf_token(session),
            note=request.query_params.get("note", "")[:500],
            error=request.query_params.get("error", "")[:500],
        )

    def _html(self, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status, headers=_HEADERS)

    def _redirect(self, path: str, **query: str) -> RedirectResponse:
        url = pages.Page(prefix=self.prefix, csrf="").url(path, **query)
        return RedirectResponse(url, 303, headers=_HEADERS)

    def _to_login(self) -> RedirectResponse:
        return self._redirect("/login")

    async def _posted(self, request: Request) -> tuple[AdminSession, dict[str, str]] | Response:
        """The session and form of a POST, or the refusal (no session, no CSRF token)."""
        session = self._session(request)
        if session is None:
            return Response("Log in first: POST /admin/login.", 403, headers=_HEADERS)
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self.signer.check_csrf(session, fields.get("csrf")):
            return Response(
                "Missing or wrong CSRF token: reload the admin page and try again.",
                403,
                headers=_HEADERS,
            )
        return session, fields

    # ----------------------------------------------------------------------------------------
    # login

    async def login_form(self, request: Request) -> Response:
        if self._session(request) is not None:
            return self._redirect("")
        return self._html(pages.login_page(prefix=self.prefix, totp=bool(self.totp_secret)))

    async def login(self, request: Request) -> Response:
        address_key = self._address_key(request)
        since = store.utcnow() - dt.timedelta(seconds=FAILED_LOGIN_WINDOW_S)
        failures = await asyncio.to_thread(
            failed_logins_since, engine=self.arena.engine, address_key=address_key, since=since
        )
        if failures >= MAX_FAILED_LOGINS:
            minutes = FAILED_LOGIN_WINDOW_S // 60
            message = (
                f"Too many failed logins from your address ({failures} in {minutes} minutes). "
                f"Try again in {minutes} minutes."
            )
            return self._html(pages.login_page(prefix=self.prefix, error=message), 429)
        form = await request.form()
        actor = str(form.get("actor") or "").strip()[:100]
        password = str(form.get("password") or "")
        code = str(form.get("code") or "")
        ok = await asyncio.to_thread(verify_password, password, self.password_hash)
        why = "wrong password"
        if ok and self.totp_secret:
            ok = check_totp(self.totp_secret, code)
            why = "wrong or expired authenticator code"
        who = Who(actor, address_key)
        if not ok:
            await self.actions.log(who, LOGIN_FAILED, "", why)
            log.warning("admin login refused (%s)", why)
            page = pages.login_page(
                prefix=self.prefix,
                error="Wrong password or code." if self.totp_secret else "Wrong password.",
                totp=bool(self.totp_secret),
                actor=actor,
            )
            return self._html(page, 401)
        await self.actions.log(who, "login")
        response = self._redirect("")
        response.set_cookie(
            COOKIE,
            self.signer.issue(actor, now=time.time()),
            max_age=int(self.signer.max_age_s),
            path=f"{self.prefix}/admin",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        session, _ = posted
        await self.actions.log(self._who(request, session), "logout")
        response = self._redirect("/login")
        response.delete_cookie(COOKIE, path=f"{self.prefix}/admin")
        return response

    # ----------------------------------------------------------------------------------------
    # the roster

    async def roster(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        await self.arena.sync_roster()
        state = await asyncio.to_thread(roster_state, engine=self.arena.engine)
        policy = self.arena.policy
        share = policy.exposure() if policy is not None else {}
        rows = []
        names = list(self.arena.roster.names)
        names += sorted(n for n, s in state.items() if s.entry_toml and n not in names)
        for name in names:
            entry = self.arena.roster.get(name)
            s = state.get(name)
            enabled = s.enabled if s is not None else True
            if name in self.arena.roster_problems:
                status = f"cannot serve here: {self.arena.roster_problems[name]}"
            elif entry is None:
                status = "loading"
            elif not enabled:
                status = "disabled"
            elif name in share:
                status = "enabled"
            else:
                status = "enabled, not drawn (named battles only)"
            rows.append(
                pages.RosterRow(
                    name=name,
                    backend=entry.backend if entry else "",
                    enabled=enabled,
                    roster_weight=entry.weight if entry else None,
                    weight=s.weight if s is not None else None,
                    share=share.get(name),
                    state=status,
                )
            )
        page = self._page(request, session)
        name = policy.name if policy is not None else "(none: fewer than two models enabled)"
        return self._html(pages.roster_page(page, rows, policy=name))

    async def _roster_action(
        self, request: Request, act: Callable[[Who, dict[str, str]], Awaitable[str]]
    ) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        session, fields = posted
        try:
            note = await act(self._who(request, session), fields)
        except ActionRefused as exc:
            return self._redirect("", error=str(exc))
        return self._redirect("", note=note)

    async def enable(self, request: Request) -> Response:
        return await self._roster_action(
            request, lambda who, f: self.actions.set_enabled(who, f.get("name", ""), True)
        )

    async def disable(self, request: Request) -> Response:
        return await self._roster_action(
            request, lambda who, f: self.actions.set_enabled(who, f.get("name", ""), False)
        )

    async def weight(self, request: Request) -> Response:
        return await self._roster_action(
            request,
            lambda who, f: self.actions.set_weight(who, f.get("name", ""), f.get("weight", "")),
        )

    async def add(self, request: Request) -> Response:
        return await self._roster_action(
            request, lambda who, f: self.actions.add_model(who, f.get("toml", ""))
        )

    # ----------------------------------------------------------------------------------------
    # battles

    async def battles(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        q = request.query_params
        page = self._page(request, session)
        try:
            where = browse.BattleFilter(
                model=q.get("model") or None,
                since=_day(q.get("since")),
                until=_day(q.get("until"), plus_days=1),
                exclusion=q.get("exclusion") or None,
                judge=q.get("judge") or None,
            )
        except ValueError as exc:
            where = browse.BattleFilter()
            page = pages.Page(page.prefix, page.csrf, error=str(exc))
        rows = await asyncio.to_thread(browse.browse_battles, engine=self.arena.engine, where=where)
        state = await asyncio.to_thread(roster_state, engine=self.arena.engine)
        return self._html(pages.battles_page(page, rows, where, sorted(state)))

    async def battle(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        battle_id = request.path_params["battle_id"]
        try:
            conv = await asyncio.to_thread(
                browse.conversation, engine=self.arena.engine, battle_id=battle_id
            )
        except store.BattleNotFound:
            return self._html(pages.e(f"No battle {battle_id!r}."), 404)
        # Conversations are what voters typed: who read which one is on the record.
        await self.actions.log(self._who(request, session), "view_battle", battle_id)
        return self._html(pages.conversation_page(self._page(request, session), conv))

    # ----------------------------------------------------------------------------------------
    # audit findings

    async def findings(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        from arena.audit import audit_database  # numpy/pyarrow: only when asked

        flags: list[pages.FlagRow] = []
        problem = ""
        try:
            report = await asyncio.to_thread(audit_database, self.arena.engine)
            for judge, flag in sorted(report.headlines().items()):
                flags.append(
                    pages.FlagRow(
                        judge=judge,
                        reason=flag.reason,
                        test=flag.test,
                        model=flag.model,
                        detail=f"{flag.direction}: {flag.wins} wins of {flag.votes} "
                        f"(expected {flag.expected:.1f}), z {flag.z:.1f}",
                    )
                )
        except ValueError as exc:  # too little data to fit, and the like
            problem = f"The audit could not run: {exc}"
        applied = await asyncio.to_thread(
            browse.excluded_voters, engine=self.arena.engine, reasons=FINDING_REASONS
        )
        page = self._page(request, session)
        return self._html(pages.findings_page(page, flags, applied, problem=problem))

    async def _finding(self, request: Request, apply: bool) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        session, f = posted
        who = self._who(request, session)
        judge, reason = f.get("judge", ""), f.get("reason", "")
        try:
            if apply:
                note = await self.actions.apply_finding(who, judge, reason)
            else:
                note = await self.actions.undo_finding(who, judge, reason)
        except ActionRefused as exc:
            return self._redirect("/findings", error=str(exc))
        return self._redirect("/findings", note=note)

    async def apply_finding(self, request: Request) -> Response:
        return await self._finding(request, apply=True)

    async def undo_finding(self, request: Request) -> Response:
        return await self._finding(request, apply=False)

    # ----------------------------------------------------------------------------------------
    # moderation, export, log

    async def moderation(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        rows = await asyncio.to_thread(browse.moderation_queue, engine=self.arena.engine)
        return self._html(pages.moderation_page(self._page(request, session), rows))

    async def export_form(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        return self._html(pages.export_page(self._page(request, session)))

    async def export(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        session, f = posted
        path = await self.actions.export(
            self._who(request, session), with_conversations=bool(f.get("conversations"))
        )
        stamp = store.utcnow().strftime("%Y%m%dT%H%M%SZ")
        return FileResponse(
            path,
            media_type="application/gzip",
            filename=f"arena-battles-{stamp}.jsonl.gz",
            headers={"Cache-Control": "no-store"},
            background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
        )

    async def audit_log(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        rows = await asyncio.to_thread(list_admin_actions, engine=self.arena.engine)
        return self._html(pages.log_page(self._page(request, session), rows))


def _form_refusal(scope: Scope) -> tuple[int, str] | None:
    """Admin POSTs are plain HTML forms: anything else (multipart uploads above all, which
    the form parser would spool to disk) is refused before a byte of it is read."""
    headers = {k.lower(): v for k, v in scope.get("headers", [])}
    kind = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    if kind and kind != _FORM_TYPE:
        return 415, f"Admin forms are sent as {_FORM_TYPE}."
    length = headers.get(b"content-length", b"0").decode("latin-1")
    if not length.isdigit():
        return 400, "Bad Content-Length."
    if int(length) > MAX_BODY_BYTES:
        return 413, f"A form is at most {MAX_BODY_BYTES:,} bytes."
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` once it passes ``limit`` (chunked bodies carry no
    Content-Length to check first)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _day(text: str | None, *, plus_days: int = 0) -> dt.datetime | None:
    """A ``YYYY-MM-DD`` filter date as the start of that UTC day (plus ``plus_days``)."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"date {text!r} is not YYYY-MM-DD") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=plus_days)
