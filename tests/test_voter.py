"""The voter cookie (arena.voter) and its middleware (arena.ui.voter), without a browser."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from arena.ui.voter import VoterMiddleware
from arena.voter import VOTER_COOKIE, InvalidVoterCookie, VoterCookies

SECRET = "voter-test-secret-0123456789abcdef0123"


def test_a_minted_cookie_verifies_and_each_is_a_new_voter() -> None:
    voters = VoterCookies(SECRET)
    values = [voters.mint() for _ in range(50)]
    ids = [voters.voter_id(v) for v in values]
    assert len(set(ids)) == 50 and all(ids)
    assert voters.voter_id(None) is None  # no cookie is not an error
    # The signature is per secret: another arena's cookie is not this arena's.
    with pytest.raises(InvalidVoterCookie, match="signature"):
        VoterCookies(SECRET + "x").voter_id(values[0])


def _flip(ch: str) -> str:
    return "B" if ch == "A" else "A"


@pytest.mark.parametrize("part", ["id", "signature", "version"])
def test_an_edited_cookie_is_refused(part: str) -> None:
    voters = VoterCookies(SECRET)
    version, voter_id, sig = voters.mint().split(".")
    if part == "id":
        voter_id = _flip(voter_id[0]) + voter_id[1:]
    elif part == "signature":
        sig = sig[:-1] + _flip(sig[-1])
    else:
        version = "v2"
    with pytest.raises(InvalidVoterCookie):
        voters.voter_id(f"{version}.{voter_id}.{sig}")


@pytest.mark.parametrize(
    "value", ["", "garbage", "v1..", "v1.short.sig", "v1." + "A" * 22 + "." + "A" * 43 + "=="]
)
def test_a_malformed_cookie_is_refused(value: str) -> None:
    with pytest.raises(InvalidVoterCookie, match="malformed"):
        VoterCookies(SECRET).voter_id(value)


def test_the_set_cookie_header_is_httponly_samesite_and_long_lived() -> None:
    voters = VoterCookies(SECRET)
    header = voters.header(voters.mint(), path="/arena")
    assert header.startswith(f"{VOTER_COOKIE}=v1.")
    attrs = {a.strip().split("=")[0].lower() for a in header.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attrs and "secure" not in attrs
    assert "SameSite=Lax" in header and "Path=/arena" in header
    assert "Secure" in voters.header(voters.mint(), secure=True)


# -- the middleware, around a small app that says which voter it saw ----------------------


def _app(voters: VoterCookies) -> VoterMiddleware:
    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"voter={voters.voter_id(request.cookies.get(VOTER_COOKIE))}")

    inner = Starlette(routes=[Route("/", page), Route("/config", page)])
    return VoterMiddleware(inner, voters=voters)


def _get(app: VoterMiddleware, path: str, cookie: str | None = None, **kw: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=kw.get("base", "http://t")) as c:
            headers = {"cookie": f"{VOTER_COOKIE}={cookie}"} if cookie else {}
            return await c.get(path, headers=headers)

    return asyncio.run(go())


def test_a_page_load_without_the_cookie_gets_one_and_other_routes_do_not() -> None:
    voters = VoterCookies(SECRET)
    app = _app(voters)
    first = _get(app, "/")
    assert first.status_code == 200 and first.text == "voter=None"
    set_cookie = first.headers["set-cookie"]
    m = re.match(rf"{VOTER_COOKIE}=([^;]+);", set_cookie)
    assert m and voters.voter_id(m.group(1))
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert "set-cookie" not in _get(app, "/config").headers  # an API script stays its address
    # With the cookie: the same voter, and no new cookie.
    again = _get(app, "/", m.group(1))
    assert again.text == f"voter={voters.voter_id(m.group(1))}"
    assert "set-cookie" not in again.headers
    # Over HTTPS the cookie is Secure.
    assert "Secure" in _get(app, "/", base="https://t").headers["set-cookie"]


def test_a_tampered_or_foreign_cookie_is_refused_not_replaced() -> None:
    voters = VoterCookies(SECRET)
    app = _app(voters)
    good = voters.mint()
    tampered = good[:-1] + _flip(good[-1])
    foreign = VoterCookies(SECRET + "other").mint()
    for value in (tampered, foreign, "nonsense"):
        for path in ("/", "/config"):
            r = _get(app, path, value)
            assert r.status_code == 400, (value, path, r.text)
            assert "Clear this site's cookies" in r.text and VOTER_COOKIE in r.text
            assert "set-cookie" not in r.headers  # not silently swapped for a fresh voter
