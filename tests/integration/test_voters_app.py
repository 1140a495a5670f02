"""Voters are browsers (issue 18), through the real app: the page load hands out the signed
voter cookie; each cookie is its own voter (budget, judge key); the address's ceiling holds
over all of them; a tampered cookie is refused before Gradio; a client without the cookie
(a script on the API) is its address, as before."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.harness import (
    RAW_STATUS,
    READY_TEXT,
    App,
    final_output,
    queue_call,
    start_app,
    stub_server,
    write_roster,
)

pytestmark = pytest.mark.slow

PER_VOTER = 2
PER_ADDRESS = 5


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    work = tmp_path_factory.mktemp("voters")
    with stub_server(work, tokens=3, delay=0.01) as stub:
        roster = write_roster(
            work / "roster.toml", [(n, stub.base_url) for n in ("stub-one", "stub-two")]
        )
        env = {
            "ARENA_PROMPTS_PER_MINUTE": str(PER_VOTER),
            "ARENA_PROMPTS_PER_MINUTE_PER_ADDRESS": str(PER_ADDRESS),
        }
        with start_app(work, roster=roster, env=env) as running:
            yield running


def page_cookie(app: App) -> tuple[str, str]:
    """Load the page like a browser: the voter cookie's value and its Set-Cookie header."""
    r = httpx.get(app.url + "/", timeout=30, trust_env=False)
    assert r.status_code == 200, r.text[:200]
    header = r.headers.get("set-cookie", "")
    m = re.match(r"arena_voter=([^;]+);", header)
    assert m, f"the page load set no voter cookie: {header!r}"
    return m.group(1), header


def prompt(app: App, text: str, cookie: str | None) -> tuple[int, str]:
    headers = {"cookie": f"arena_voter={cookie}"} if cookie else {}
    status, body, messages = queue_call(
        app, app.fn_index("battle_send"), [text, None, None, None, None, None], headers=headers
    )
    return status, (str(final_output(messages)[RAW_STATUS]) if status == 200 else body)


def test_each_browser_is_a_voter_and_the_address_is_a_ceiling(app: App) -> None:
    (c1, header), (c2, _), (c3, _) = page_cookie(app), page_cookie(app), page_cookie(app)
    assert len({c1, c2, c3}) == 3
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    # Two browsers spend their own budgets: four prompts, none refused.
    for cookie in (c1, c2):
        for i in range(PER_VOTER):
            status, line = prompt(app, f"question {i}", cookie)
            assert status == 200 and READY_TEXT in line, line
    status, line = prompt(app, "over my own limit", c1)
    assert f"Too many prompts: at most {PER_VOTER} per minute" in line, line
    # The third browser fits under the address's ceiling once; then the address is full,
    # for it and for a fresh browser (a cleared cookie) alike.
    assert READY_TEXT in prompt(app, "third browser", c3)[1]
    for cookie in (c3, page_cookie(app)[0], None):
        line = prompt(app, "address full", cookie)[1]
        assert f"prompts from your network address: at most {PER_ADDRESS}" in line, line
    keys = app.rows("SELECT user_key, address_key FROM battle")
    assert len(keys) == PER_ADDRESS
    assert len({k for k, _ in keys}) == 3  # three voters ...
    assert len({a for _, a in keys}) == 1  # ... one address, stored apart from them


def test_a_tampered_cookie_is_refused_before_the_app_and_changes_nothing(app: App) -> None:
    before = app.counts()
    good, _ = page_cookie(app)
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    for cookie in (tampered, "v1.forged.cookie"):
        page = httpx.get(
            app.url + "/", headers={"cookie": f"arena_voter={cookie}"}, timeout=30, trust_env=False
        )
        assert page.status_code == 400 and "Clear this site's cookies" in page.text
        assert "set-cookie" not in page.headers  # refused, not silently replaced
        status, body = prompt(app, "with a forged cookie", cookie)
        assert status == 400 and "arena_voter" in body, (status, body)
    assert app.counts() == before


def test_a_script_without_the_cookie_is_its_address(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """No cookie: the voter key is the address's key, as before the cookie existed."""
    work = tmp_path_factory.mktemp("cookieless")
    with stub_server(work, tokens=3, delay=0.01) as stub:
        roster = write_roster(
            work / "roster.toml", [("s-one", stub.base_url), ("s-two", stub.base_url)]
        )
        with start_app(work, roster=roster) as app:
            for i in range(2):
                assert READY_TEXT in prompt(app, f"scripted {i}", None)[1]
            keys = app.rows("SELECT user_key, address_key FROM battle")
    assert len(keys) == 2 and len(set(keys)) == 1 and keys[0][0] == keys[0][1]
