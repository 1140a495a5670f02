"""Six browsers behind one address are six voters (issue 18), in real Chromium.

One app with the default limits (20 prompts a minute per voter), two ``openai`` roster
entries on the stub model server.  Six browser contexts -- six people behind one NAT, all on
127.0.0.1 -- play four battles each, interleaved, so that more than 20 prompts a minute come
from the one address.  Before the voter cookie they were one voter and the 21st prompt was
refused; now none is, and the database holds six judges and one address key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from arena.config import Settings
from tests.integration.harness import App, start_app, stub_server, write_roster

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BROWSERS = 6
ROUNDS = 4
READY_TEXT = "Both answers are in"
RECORDED_TEXT = "Vote recorded"
REFUSED = "Too many"
STEP_MS = 60_000
# The limits this test is about, at their defaults (the harness turns limits off).
LIMITS = (
    "prompts_per_minute",
    "votes_per_day",
    "prompts_per_minute_per_address",
    "votes_per_day_per_address",
    "max_live_battles",
    "max_live_battles_per_address",
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    work = tmp_path_factory.mktemp("voters-browser")
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    env = {f"ARENA_{name.upper()}": str(defaults[name]) for name in LIMITS}
    assert int(env["ARENA_PROMPTS_PER_MINUTE"]) < BROWSERS * ROUNDS  # else nothing is shown
    with stub_server(work, tokens=3, delay=0.01) as stub:
        roster = write_roster(
            work / "roster.toml", [("team-one", stub.base_url), ("team-two", stub.base_url)]
        )
        with start_app(work, roster=roster, env=env) as running:
            yield running


def status(page: Page) -> str:
    return page.inner_text("#battle-status")


def wait_status(page: Page, needle: str) -> None:
    page.wait_for_function(
        "([needle, refused]) => { const t = document.querySelector('#battle-status')"
        "?.innerText || ''; return t.includes(needle) || t.includes(refused); }",
        arg=[needle, REFUSED],
        timeout=STEP_MS,
    )
    assert REFUSED not in status(page), status(page)


def test_six_browsers_behind_one_address_are_six_voters(chromium: Browser, app: App) -> None:
    contexts: list[BrowserContext] = []
    try:
        pages = []
        for _ in range(BROWSERS):
            context = chromium.new_context()
            contexts.append(context)
            page = context.new_page()
            page.goto(app.url + "/", wait_until="load")
            page.wait_for_selector("#battle-prompt textarea", state="visible")
            pages.append(page)
        for context in contexts:
            (voter,) = [c for c in context.cookies() if c["name"] == "arena_voter"]
            assert voter["httpOnly"] and voter["sameSite"] == "Lax", voter
        for r in range(ROUNDS):
            for i, page in enumerate(pages):  # all six ask before any answer is awaited
                page.fill("#battle-prompt textarea", f"Browser {i}, round {r}: name a colour.")
                page.click("#battle-send")
            for page in pages:
                wait_status(page, READY_TEXT)
                page.wait_for_function(
                    "() => !document.querySelector('#battle-vote-a')?.disabled", timeout=STEP_MS
                )
                page.click("#battle-vote-a")
                wait_status(page, RECORDED_TEXT)
    finally:
        for context in contexts:
            context.close()

    battles = app.rows("SELECT user_key, address_key, created_at FROM battle")
    assert len(battles) == BROWSERS * ROUNDS
    assert len({b[0] for b in battles}) == BROWSERS  # six voters ...
    assert len({b[1] for b in battles}) == 1  # ... behind one address
    judges = app.rows("SELECT judge, count(*) FROM vote GROUP BY judge")
    assert sorted(n for _, n in judges) == [ROUNDS] * BROWSERS
    # The point of the test: more than one voter's minute budget from the one address
    # within a minute (were they one voter, the 21st would have been refused).
    stamps = sorted(
        b[2] if isinstance(b[2], dt.datetime) else dt.datetime.fromisoformat(str(b[2]))
        for b in battles
    )
    busiest = max(
        sum(1 for t in stamps if start <= t < start + dt.timedelta(minutes=1)) for start in stamps
    )
    limit = int(Settings().prompts_per_minute)
    assert busiest > limit, f"only {busiest} prompts in the busiest minute: the test proves nothing"
