"""The admin page through the real app in real Chromium (issue 17): log in, disable a model,
and see it vanish from new battles.

One app: three ``openai`` roster entries on a stub model server and an admin password hash.
Battles are started through Gradio's own client (a browser session each) and, once, in the
browser itself; which models they drew is read from the app's database.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from arena.admin.auth import hash_password
from tests.integration.harness import STATUS, App, battle, start_app, stub_server, write_roster

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "browser test password"
NAMES = ("adm-one", "adm-two", "adm-three")
GONE = "adm-two"
STEP_MS = 30_000


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    work = tmp_path_factory.mktemp("admin-browser")
    with stub_server(work, tokens=3, delay=0.01) as stub:
        roster = write_roster(work / "roster.toml", [(n, stub.base_url) for n in NAMES])
        env = {"ARENA_ADMIN_PASSWORD_HASH": hash_password(PASSWORD), "ARENA_ROSTER_POLL_S": "0"}
        with start_app(work, roster=roster, env=env) as running:
            yield running


def pairs_since(app: App, after: str) -> list[tuple[str, str]]:
    """(model_a, model_b) of every battle created after ``after`` (ISO time, '' for all)."""
    return [
        (r[0], r[1])
        for r in app.rows(
            "SELECT ma.name, mb.name FROM battle b JOIN model ma ON ma.id = b.model_a_id "
            "JOIN model mb ON mb.id = b.model_b_id WHERE b.created_at > :t",
            t=after,
        )
    ]


def test_admin_logs_in_disables_a_model_and_it_vanishes_from_new_battles(
    app: App, chromium: Browser
) -> None:
    with httpx.Client(base_url=app.url, timeout=30, trust_env=False) as http:
        refused = http.get("/admin", follow_redirects=False)
        assert refused.status_code == 303 and refused.headers["location"].endswith("/admin/login")
        assert http.post("/admin/models/disable", data={"name": GONE}).status_code == 403

    # Before: the model is drawn (it is in 2 of the 3 pairs; 12 tries miss it with p < 1e-5).
    for i in range(12):
        battle(app.client(), f"warm-up {i}")  # a new session: a new battle, a new draw
        if any(GONE in p for p in pairs_since(app, "")):
            break
    assert any(GONE in p for p in pairs_since(app, "")), pairs_since(app, "")

    context = chromium.new_context()
    page = context.new_page()
    try:
        page.goto(app.url + "/admin", wait_until="load")
        assert page.url.endswith("/admin/login")
        page.fill("#actor", "browser-admin")
        page.fill("#password", PASSWORD + "?")
        page.click("#login")
        page.wait_for_selector("#error", timeout=STEP_MS)
        assert "Wrong password." in page.inner_text("#error")
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_selector("#roster", timeout=STEP_MS)
        row = page.locator(f'tr[data-model="{GONE}"]')
        assert row.locator(".state").inner_text() == "enabled"
        row.get_by_role("button", name="Disable").click()
        page.wait_for_selector("#note", timeout=STEP_MS)
        assert f"{GONE} disabled" in page.inner_text("#note")
        assert page.locator(f'tr[data-model="{GONE}"] .state').inner_text() == "disabled"
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["arena_admin"]["httpOnly"] and cookies["arena_admin"]["sameSite"] == "Strict"
        after = app.scalar("SELECT max(created_at) FROM battle")

        # A battle in the browser, in the arena itself.
        page.goto(app.url + "/", wait_until="load")
        page.wait_for_selector("#battle-prompt textarea", state="visible")
        page.fill("#battle-prompt textarea", "after the change")
        page.click("#battle-send")
        page.wait_for_function(
            "() => (document.querySelector('#battle-status')?.innerText || '')"
            ".includes('Both answers are in')",
            timeout=STEP_MS,
        )
    finally:
        context.close()

    for i in range(8):
        battle(app.client(), f"after {i}")
    new = pairs_since(app, after)
    assert len(new) == 9, new
    assert all(set(p) == {"adm-one", "adm-three"} for p in new), new

    named = battle(app.client(), "named", models=("adm-one", GONE))
    assert "not taking battles right now" in str(named[STATUS])
    logged = app.rows("SELECT actor, action, target FROM admin_action ORDER BY id")
    assert logged == [
        ("browser-admin", "login_failed", ""),
        ("browser-admin", "login", ""),
        ("browser-admin", "disable", GONE),
    ]
    kinds = app.rows("SELECT kind FROM model_event WHERE kind = 'disabled'")
    assert kinds == [("disabled",)]
