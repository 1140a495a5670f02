"""Sign-in in real Chromium against a real OpenID provider (issue 18).

One app in ``required`` mode admitting the email domain team.example, two ``openai`` roster
entries on the stub model server, and oidc-provider (tests/oidc) with its own login and
consent pages.  An anonymous visitor sees the sign-in link and cannot prompt; alice signs
in through the provider, prompts, votes, and the vote carries her keyed id; bob, from another
domain, is refused with a page naming the rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.integration.test_signin import SignInArena, signin_arena

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEP_MS = 45_000


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInArena]:
    env = {"ARENA_AUTH_MODE": "required", "ARENA_AUTH_ALLOWED_DOMAINS": "team.example"}
    with signin_arena(tmp_path_factory.mktemp("sso-browser"), env) as running:
        yield running


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context()
    p = context.new_page()
    p.set_default_timeout(STEP_MS)
    try:
        yield p
    finally:
        context.close()


def open_arena(page: Page, url: str) -> None:
    page.goto(url + "/", wait_until="load")
    page.wait_for_selector("#battle-prompt textarea", state="visible")
    page.wait_for_function(
        "() => /Sign (in|out)/.test(document.querySelector('#account')?.innerText || '')"
    )


def status_has(page: Page, needle: str) -> str:
    page.wait_for_function(
        "(n) => (document.querySelector('#battle-status')?.innerText || '').includes(n)",
        arg=needle,
    )
    return page.inner_text("#battle-status")


def through_provider(page: Page, login: str) -> None:
    """The provider's own pages: its login form, then its consent form."""
    page.wait_for_selector("input[name=login]", state="visible")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_load_state("domcontentloaded")
    if "/interaction/" in page.url:  # the consent page
        page.click("button[type=submit]")


def test_sign_in_then_vote_as_yourself(arena: SignInArena, page: Page, tmp_path: Path) -> None:
    app = arena.app
    open_arena(page, app.url)
    assert "Sign in" in page.inner_text("#account")
    # Anonymous: the page works, prompting does not.
    before = app.counts()
    page.fill("#battle-prompt textarea", "May I ask without signing in?")
    page.click("#battle-send")
    assert "sign in to prompt and vote" in status_has(page, "sign in")
    assert app.counts() == before

    page.click("#account a[href$='auth/login']")
    through_provider(page, "alice")
    page.wait_for_url(app.url + "/", wait_until="load")
    page.wait_for_selector("#battle-prompt textarea", state="visible")
    page.wait_for_function(
        "() => (document.querySelector('#account')?.innerText || '').includes('Signed in as')"
    )
    assert "alice@team.example" in page.inner_text("#account")
    cookie = next(c for c in page.context.cookies() if c["name"] == "arena_person")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.fill("#battle-prompt textarea", "Name a river in Europe.")
    page.click("#battle-send")
    status_has(page, "Both answers are in")
    page.wait_for_function("() => !document.querySelector('#battle-vote-b')?.disabled")
    page.click("#battle-vote-b")
    status_has(page, "Vote recorded")
    # Her key: the keyed hash of issuer and subject under the app's secret.
    assert app.rows("SELECT judge, winner FROM vote") == [(arena.key_of("alice"), "model_b")]

    # My votes: her own leaderboard.
    page.get_by_role("tab", name="🙋 My votes").click()
    page.wait_for_function(
        "() => (document.querySelector('#my-votes-note')?.innerText || '').includes('From your')"
    )
    assert "From your 1 vote only" in page.inner_text("#my-votes-note")

    # Sign out: anonymous again.
    page.click("#account a[href$='auth/logout']")
    page.wait_for_selector("#battle-prompt textarea", state="visible")
    page.wait_for_function(
        "() => !(document.querySelector('#account')?.innerText || '').includes('Signed in')"
    )
    assert not any(c["name"] == "arena_person" for c in page.context.cookies())


def test_a_user_from_another_domain_is_refused_with_the_rule(
    arena: SignInArena, page: Page
) -> None:
    open_arena(page, arena.app.url)
    page.click("#account a[href$='auth/login']")
    through_provider(page, "bob")
    page.wait_for_selector("#auth-message", state="visible")
    message = page.inner_text("#auth-message")
    assert "ARENA_AUTH_ALLOWED_DOMAINS" in message and "team.example" in message, message
    assert "bob" not in message.lower()
    assert not any(c["name"] == "arena_person" for c in page.context.cookies())
