"""Running in public, in real Chromium: the terms gate, a blocked prompt, vote reasons.

One app serves the module: two ``openai`` roster entries on a stub model server
(``benchmarks/stream_server.py``), a terms file, ``ARENA_MODERATION=block`` with a
blocklist, and the default limits off.  Each test opens its own page (a new browser
session, so the gate is shown again) and checks what the visitor sees, then what the
database holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.integration.harness import App, start_app, stub_server, write_roster

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TERMS_HEADING = "Terms of use for the test arena"
TERMS = (
    f"# {TERMS_HEADING}\n\nYour prompts and votes are stored and may be published.\n\n"
    "- Do not enter personal data.\n"
)
BLOCKED_PHRASE = "purple elephant"
REASONS = ("More accurate", "Better written", "Followed instructions", "Safer")
PICKED = ("Better written", "Safer")
NO_CONSENT_TEXT = "accept the terms of use"
BLOCKED_TEXT = "blocked by this arena's content rules"
READY_TEXT = "Both answers are in"
RECORDED_TEXT = "Vote recorded"
THANKS_TEXT = "Thanks: your reasons were recorded"
STEP_MS = 30_000


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    work = tmp_path_factory.mktemp("public-browser")
    terms = work / "terms.md"
    terms.write_text(TERMS, encoding="utf-8")
    blocklist = work / "blocklist.txt"
    blocklist.write_text(f"# test rules\n{BLOCKED_PHRASE}\n", encoding="utf-8")
    with stub_server(work, tokens=4, delay=0.02) as stub:
        roster = write_roster(
            work / "roster.toml", [("pub-one", stub.base_url), ("pub-two", stub.base_url)]
        )
        env = {
            "ARENA_TERMS_FILE": str(terms),
            "ARENA_MODERATION": "block",
            "ARENA_MODERATION_BLOCKLIST": str(blocklist),
            "ARENA_VOTE_REASONS": ",".join(REASONS),
        }
        with start_app(work, roster=roster, env=env) as running:
            yield running


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context()
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def open_arena(page: Page, app: App) -> None:
    page.goto(app.url + "/", wait_until="load")
    page.wait_for_selector("#battle-prompt textarea", state="visible")


def accept(page: Page) -> None:
    page.wait_for_selector("#consent-accept", state="visible")
    page.click("#consent-accept")
    page.wait_for_selector("#consent-gate", state="hidden", timeout=STEP_MS)


def send(page: Page, text: str) -> None:
    page.fill("#battle-prompt textarea", text)
    page.click("#battle-send")


def wait_status(page: Page, needle: str) -> str:
    page.wait_for_function(
        "([sel, needle]) => (document.querySelector(sel)?.innerText || '').includes(needle)",
        arg=["#battle-status", needle],
        timeout=STEP_MS,
    )
    return page.inner_text("#battle-status")


def wait_ready(page: Page) -> None:
    """Both answers are in and the vote buttons are active."""
    wait_status(page, READY_TEXT)
    page.wait_for_function(
        "() => !document.querySelector('#battle-vote-a')?.disabled", timeout=STEP_MS
    )


def battle_ids(app: App) -> set[str]:
    return {r[0] for r in app.rows("SELECT id FROM battle")}


def test_terms_gate_before_the_first_prompt(app: App, page: Page) -> None:
    open_arena(page, app)
    page.wait_for_selector("#consent-gate", state="visible")
    assert TERMS_HEADING in page.inner_text("#consent-terms")
    assert page.is_visible("#consent-accept")

    before = battle_ids(app)
    send(page, "What is the boiling point of water?")
    assert NO_CONSENT_TEXT in wait_status(page, NO_CONSENT_TEXT)
    assert battle_ids(app) == before
    assert page.is_visible("#consent-gate")  # a refused prompt does not hide the terms

    accept(page)
    send(page, "What is the boiling point of water?")
    wait_ready(page)
    new = battle_ids(app) - before
    assert len(new) == 1, new
    assert page.locator("#battle-chat-a [data-testid='bot']").count() == 1

    # A new page load is a new session: the terms are shown again and prompts refused.
    page.reload(wait_until="load")
    page.wait_for_selector("#battle-prompt textarea", state="visible")
    page.wait_for_selector("#consent-gate", state="visible")
    assert TERMS_HEADING in page.inner_text("#consent-terms")
    send(page, "And the freezing point?")
    assert NO_CONSENT_TEXT in wait_status(page, NO_CONSENT_TEXT)
    assert len(battle_ids(app) - before) == 1


def test_blocked_prompt_reaches_no_model(app: App, page: Page) -> None:
    open_arena(page, app)
    accept(page)
    before = battle_ids(app)
    last = int(app.scalar("SELECT coalesce(max(id), 0) FROM moderation_decision"))
    send(page, f"Write a poem about a {BLOCKED_PHRASE.upper()} in the rain.")
    status = wait_status(page, BLOCKED_TEXT)
    assert "Nothing was sent to the models" in status
    assert page.locator("#battle-chat-a [data-testid='bot']").count() == 0
    assert page.locator("#battle-chat-b [data-testid='bot']").count() == 0
    assert battle_ids(app) == before
    new = app.rows("SELECT action, battle_id FROM moderation_decision WHERE id > :m", m=last)
    assert len(new) == 1, new
    assert new[0][0] == "blocked"
    assert new[0][1] in (None, ""), new  # no battle was created for it
    # The prompt stays in its box for the voter to edit.
    assert BLOCKED_PHRASE.upper() in page.input_value("#battle-prompt textarea")


def test_reason_chips_after_a_vote(app: App, page: Page) -> None:
    open_arena(page, app)
    accept(page)
    assert not page.is_visible("#battle-reasons-row")
    before = battle_ids(app)
    send(page, "Name three rivers in Europe.")
    wait_ready(page)
    (bid,) = battle_ids(app) - before
    assert not page.is_visible("#battle-reasons-row")  # not before the vote

    page.click("#battle-vote-b")
    wait_status(page, RECORDED_TEXT)
    page.wait_for_selector("#battle-reasons-row", state="visible", timeout=STEP_MS)
    labels = [t.strip() for t in page.locator("#battle-reasons label").all_inner_texts()]
    assert [t for t in labels if t in REASONS] == list(REASONS), labels
    for reason in PICKED:
        page.locator("#battle-reasons label", has_text=reason).click()
    for reason in PICKED:
        box = page.locator("#battle-reasons label", has_text=reason).locator("input")
        assert box.is_checked(), reason
    page.click("#battle-reasons-send")
    status = wait_status(page, THANKS_TEXT)
    for reason in PICKED:
        assert reason in status
    page.wait_for_selector("#battle-reasons-row", state="hidden", timeout=STEP_MS)

    stored = app.rows("SELECT reason FROM vote_reason WHERE battle_id = :b", b=bid)
    assert sorted(r[0] for r in stored) == sorted(PICKED)
    assert app.rows("SELECT winner FROM vote WHERE battle_id = :b", b=bid) == [("model_b",)]
