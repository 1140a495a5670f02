"""Running in public: the terms gate, blocked prompts and vote reasons, through the raw API.

One app (SQLite, stub model server) with a terms file, ``ARENA_MODERATION=block`` and a
blocklist serves the module.  Every call goes straight to Gradio's queue with a hand-made
body (:func:`tests.integration.harness.queue_call`), so no UI state can stand in for the
server's own checks; the database is then read directly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.harness import (
    RAW_STATUS,
    READY_TEXT,
    RECORDED_TEXT,
    App,
    assert_clean,
    final_output,
    queue_call,
    start_app,
    stub_server,
    write_roster,
)

pytestmark = pytest.mark.slow

TERMS = "# Terms of use\n\nBe kind. Prompts and votes are stored and may be published.\n"
BLOCKED_PHRASE = "purple elephant"
BLOCKLIST = f"# test rules\n{BLOCKED_PHRASE}\nre:\\bzorb+\\b\n"
REASONS = ("More accurate", "Better written", "Safer")
NO_CONSENT_TEXT = "accept the terms of use"
BLOCKED_TEXT = "blocked by this arena's content rules"
THANKS_TEXT = "Thanks: your reasons were recorded"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    work = tmp_path_factory.mktemp("public")
    terms = work / "terms.md"
    terms.write_text(TERMS, encoding="utf-8")
    blocklist = work / "blocklist.txt"
    blocklist.write_text(BLOCKLIST, encoding="utf-8")
    with stub_server(work, tokens=4, delay=0.02) as stub:
        roster = write_roster(
            work / "roster.toml", [(n, stub.base_url) for n in ("stub-one", "stub-two")]
        )
        env = {
            "ARENA_TERMS_FILE": str(terms),
            "ARENA_MODERATION": "block",
            "ARENA_MODERATION_BLOCKLIST": str(blocklist),
            "ARENA_VOTE_REASONS": ",".join(REASONS),
        }
        with start_app(work, roster=roster, env=env) as running:
            yield running


def new_session() -> str:
    return uuid.uuid4().hex[:12]


def call(app: App, api: str, data: list[Any], session: str) -> list[Any]:
    """One event of ``session`` through the raw queue; its final output data."""
    status, body, messages = queue_call(app, app.fn_index(api), data, session=session)
    assert status == 200, body
    # Only a vote's reply reveals the battle's models.
    assert_clean(json.dumps(messages), app, may_name_models="_vote_" in api)
    return final_output(messages)


def send(app: App, prompt: str, session: str) -> str:
    """A first prompt (new anonymous battle); the status line of the reply."""
    reply = call(app, "battle_send", [prompt, None, None, None, None, None], session)
    return str(reply[RAW_STATUS])


def battle_ids(app: App) -> set[str]:
    return {r[0] for r in app.rows("SELECT id FROM battle")}


def blocked_decisions(app: App) -> int:
    return int(app.scalar("SELECT count(*) FROM moderation_decision WHERE action = 'blocked'"))


def test_prompt_without_consent_is_refused_until_the_session_accepts(app: App) -> None:
    session = new_session()
    before = battle_ids(app)
    status = send(app, "What is the tallest mountain?", session)
    assert NO_CONSENT_TEXT in status, status
    assert battle_ids(app) == before

    # Another session's acceptance does not count for this one.
    call(app, "accept_terms", [], new_session())
    status = send(app, "What is the tallest mountain?", session)
    assert NO_CONSENT_TEXT in status, status
    assert battle_ids(app) == before

    call(app, "accept_terms", [], session)
    status = send(app, "What is the tallest mountain?", session)
    assert READY_TEXT in status, status
    new = battle_ids(app) - before
    assert len(new) == 1, new
    # The battle stores the version of the terms the session accepted.
    version = app.scalar("SELECT consent_version FROM battle WHERE id = :b", b=new.pop())
    assert str(version).startswith("sha256:"), version


def test_blocked_prompt_is_refused_with_its_message(app: App) -> None:
    session = new_session()
    call(app, "accept_terms", [], session)
    before, decisions = battle_ids(app), blocked_decisions(app)
    # Case and spacing differ from the rule: it still matches (whole words, any whitespace).
    status = send(app, f"Tell me about the PURPLE   {BLOCKED_PHRASE.split()[1]}.", session)
    assert BLOCKED_TEXT in status, status
    assert battle_ids(app) == before
    assert blocked_decisions(app) == decisions + 1
    assert app.scalar("SELECT battle_id FROM moderation_decision ORDER BY id DESC LIMIT 1") in (
        None,
        "",
    )
    # The regular-expression rule blocks too; a near miss of the phrase does not.
    assert BLOCKED_TEXT in send(app, "zorbbb is the word", session)
    assert blocked_decisions(app) == decisions + 2
    status = send(app, "Tell me about purple elephants' cousins.", session)
    assert READY_TEXT in status, status
    assert len(battle_ids(app) - before) == 1


def test_reasons_only_for_the_sessions_own_vote(app: App) -> None:
    owner, other = new_session(), new_session()
    for s in (owner, other):
        call(app, "accept_terms", [], s)
    before = battle_ids(app)
    assert READY_TEXT in send(app, "Name a prime number.", owner)
    (bid,) = battle_ids(app) - before
    vote = call(app, "battle_vote_a", [None], owner)
    assert str(vote[RAW_STATUS]).startswith(RECORDED_TEXT), vote

    # Another session, even with the real battle id in the State slot, stores nothing: the
    # voted battle lives in the owner's server-side state.
    reply = call(app, "battle_reasons", [bid, ["Safer"]], other)
    assert THANKS_TEXT not in json.dumps(reply)
    assert app.rows("SELECT reason FROM vote_reason WHERE battle_id = :b", b=bid) == []
    # A label that is not on the operator's list is refused by name (Gradio's own check of
    # the CheckboxGroup's choices, before the handler runs).
    _, _, messages = queue_call(
        app, app.fn_index("battle_reasons"), [None, ["Longer"]], session=owner
    )
    done = [m for m in messages if m.get("msg") == "process_completed"]
    assert done and done[-1].get("success") is False, messages
    assert "'Longer'" in json.dumps(done[-1]), done
    assert_clean(json.dumps(messages), app)
    assert app.rows("SELECT reason FROM vote_reason WHERE battle_id = :b", b=bid) == []
    # The owner's own reasons are stored.
    reply = call(app, "battle_reasons", [None, ["Safer", "More accurate"]], owner)
    assert THANKS_TEXT in str(reply[0]), reply
    stored = {r[0] for r in app.rows("SELECT reason FROM vote_reason WHERE battle_id = :b", b=bid)}
    assert stored == {"Safer", "More accurate"}
