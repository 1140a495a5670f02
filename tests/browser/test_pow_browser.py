"""Proof of work through the real app (issue 17): the app's own widget solves the challenge
in real Chromium and the vote counts; by direct API calls a vote without a pass is refused,
a solution earns a pass cookie once, and a replayed solution is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.integration.harness import (
    RECORDED_TEXT,
    App,
    battle,
    start_app,
    stub_server,
    vote,
    write_roster,
)
from tests.test_pow import solve

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REFUSED = "anti-bot check"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    work = tmp_path_factory.mktemp("pow")
    with stub_server(work, tokens=4, delay=0.01) as stub:
        roster = write_roster(
            work / "roster.toml", [("pow-one", stub.base_url), ("pow-two", stub.base_url)]
        )
        with start_app(work, roster=roster, env={"ARENA_POW_DIFFICULTY": "20000"}) as running:
            yield running


def app_log_tail(app: App, chars: int = 4000) -> str:
    return app.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]


def test_votes_without_a_pass_are_refused_and_solutions_are_single_use(app: App) -> None:
    # The check is on in this app (a 404 here would mean the setting never reached it).
    assert httpx.get(app.url + "/pow/challenge", timeout=30, trust_env=False).status_code == 200
    plain = app.client()
    battle(plain, "no pass here")
    refused = vote(plain, "a")
    assert REFUSED in refused, f"{refused}\n--- app log ---\n{app_log_tail(app)}"
    assert app.scalar("SELECT count(*) FROM vote") == 0
    with httpx.Client(base_url=app.url, timeout=30, trust_env=False) as http:
        ch = http.get("/pow/challenge").json()
        payload = solve(ch)
        first = http.post("/pow/verify", content=payload)
        assert first.status_code == 204
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        token = first.cookies["arena_pow"]
        assert http.post("/pow/verify", content=payload).status_code == 403  # replayed
        assert http.post("/pow/verify", content=b"garbage").status_code == 403
        forged = app.client(headers={"cookie": f"arena_pow={token[:-1]}0"})
        battle(forged, "forged pass")
        assert REFUSED in vote(forged, "a")
    passed = app.client(headers={"cookie": f"arena_pow={token}"})
    battle(passed, "with a pass")
    assert vote(passed, "b").startswith(RECORDED_TEXT)
    assert app.scalar("SELECT count(*) FROM vote") == 1


def test_the_widget_solves_the_challenge_in_the_browser(
    app: App, chromium: Browser, tmp_path: Path
) -> None:
    votes_before = app.scalar("SELECT count(*) FROM vote")
    page = chromium.new_page()
    try:
        page.goto(app.url + "/", wait_until="load")
        page.wait_for_selector("#battle-prompt textarea", state="visible")
        page.wait_for_function(
            "() => document.documentElement.dataset.pow === 'solved'", timeout=60_000
        )
        page.fill("#battle-prompt textarea", "Hello there")
        page.click("#battle-send")
        page.wait_for_function(
            "() => !document.querySelector('#battle-vote-a').disabled", timeout=60_000
        )
        page.click("#battle-vote-a")
        page.wait_for_function(
            "() => (document.querySelector('#battle-status')?.innerText || '')"
            ".includes('Vote recorded')",
            timeout=30_000,
        )
    finally:
        page.screenshot(path=str(tmp_path / "pow.png"))
        page.close()
    assert app.scalar("SELECT count(*) FROM vote") == votes_before + 1
