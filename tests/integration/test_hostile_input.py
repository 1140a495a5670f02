"""Hostile input through the real app's API, skipping the UI.

One app (SQLite) on a slow-ish stub model server serves the whole module.  Each test drives
it with Gradio's client (one browser session each) or with raw HTTP to Gradio's queue and
REST routes, and then reads the database itself: a refused request records nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.harness import (
    RAW_STATUS,
    READY_TEXT,
    RECORDED_TEXT,
    STATUS,
    VOTE_NAMES,
    WINNERS,
    App,
    assert_clean,
    battle,
    chat_text,
    final_output,
    queue_call,
    rest_call,
    start_app,
    stub_server,
    vote,
    write_roster,
)

MAX_PROMPT = 200
NOT_VOTABLE = "⚠️ There is no battle to vote on."

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    work = tmp_path_factory.mktemp("hostile")
    # 10 words, 0.2 s apart: a battle streams for ~2 s, long enough to vote in the middle.
    with stub_server(work, tokens=10, delay=0.2) as stub:
        roster = write_roster(
            work / "roster.toml",
            [(n, stub.base_url) for n in ("stub-alpha", "stub-bravo", "stub-charlie")],
        )
        with start_app(
            work, roster=roster, env={"ARENA_MAX_PROMPT_CHARS": str(MAX_PROMPT)}
        ) as running:
            yield running


def newest_battle(app: App, before: set[str]) -> str:
    ids = {r[0] for r in app.rows("SELECT id FROM battle")} - before
    assert len(ids) == 1, f"expected one new battle, got {ids}"
    return ids.pop()


def battle_ids(app: App) -> set[str]:
    return {r[0] for r in app.rows("SELECT id FROM battle")}


def votes_on(app: App, battle_id: str) -> list[str]:
    return [r[0] for r in app.rows("SELECT winner FROM vote WHERE battle_id = :b", b=battle_id)]


def streamed_some_text(outputs: list[Any]) -> bool:
    """Whether either side's answer already shows streamed words (not the "…" placeholder)."""
    if not outputs:
        return False
    for chat in outputs[-1][:2]:
        lines = chat_text(chat).splitlines()
        if len(lines) >= 2 and lines[-1].strip("… "):
            return True
    return False


def status_of(app: App, battle_id: str) -> str:
    return str(app.scalar("SELECT status FROM battle WHERE id = :b", b=battle_id))


def test_another_session_can_neither_see_nor_vote_a_battle(app: App) -> None:
    before = battle_ids(app)
    owner = app.client()
    out = battle(owner, "What is the capital of France?")
    assert READY_TEXT in str(out[STATUS])
    bid = newest_battle(app, before)
    answer = chat_text(out[1]).splitlines()[-1]

    intruder = app.client()
    for choice in VOTE_NAMES:
        reply = intruder.submit(api_name=f"/battle_vote_{choice}").result(timeout=30)
        assert str(reply[STATUS]) == NOT_VOTABLE
        assert_clean(json.dumps(reply), app)
        assert answer not in json.dumps(reply)  # the owner's answers are not shown either
    regen = intruder.submit(api_name="/battle_regenerate").result(timeout=30)
    assert "⚠️" in str(regen[STATUS]) and answer not in json.dumps(regen)
    assert intruder.submit(api_name="/battle_stop").result(timeout=30) == ""

    # Raw HTTP from a third session, with the stolen (real) battle id in the State slot:
    # the State value lives on the server, so what the client puts there is ignored.
    for api in ("battle_vote_a", "named_vote_b"):
        status, body, messages = queue_call(app, app.fn_index(api), [bid])
        assert status == 200, body
        data = final_output(messages)
        assert data[RAW_STATUS] == NOT_VOTABLE
        assert data[2] is None  # the State slot is never echoed back
        assert_clean(json.dumps(messages), app)
        code, text = rest_call(app, api, json.dumps({"data": [bid]}).encode())
        assert code == 200 and "There is no battle to vote on." in text, text
        assert_clean(text, app)

    assert votes_on(app, bid) == []
    assert status_of(app, bid) == "ready"
    # The owner's battle was votable all along.
    assert vote(owner, "b").startswith(RECORDED_TEXT)
    assert votes_on(app, bid) == ["model_b"]


FORGED_IDS = [
    "00000000-0000-4000-8000-000000000000",
    "",
    "' OR 1=1 --",
    "../../../etc/passwd",
    "x" * 100_000,
    12345,
    {"battle_id": "00000000-0000-4000-8000-000000000000"},
    ["a", "b"],
]


@pytest.mark.parametrize("api", ["battle_vote_a", "battle_vote_bothbad", "named_vote_tie"])
def test_forged_battle_ids_record_nothing(app: App, api: str) -> None:
    battles, votes = app.counts()
    fn = app.fn_index(api)
    for forged in FORGED_IDS:
        status, body, messages = queue_call(app, fn, [forged])
        assert status == 200, body
        data = final_output(messages)
        assert str(data[RAW_STATUS]).startswith("⚠️"), data
        assert_clean(json.dumps(messages), app)
        code, text = rest_call(app, api, json.dumps({"data": [forged]}).encode())
        assert code == 200 and "Vote recorded" not in text
        assert "\\u26a0\\ufe0f" in text, text  # the refusal's ⚠️, JSON-escaped
        assert_clean(text, app)
    assert app.counts() == (battles, votes)


def test_a_battle_takes_exactly_one_vote_even_when_votes_race(app: App) -> None:
    before = battle_ids(app)
    client = app.client()
    assert READY_TEXT in str(battle(client, "Name a prime number.")[STATUS])
    bid = newest_battle(app, before)

    # All four buttons at once, from the battle's own session.
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda c: (c, vote(client, c)), VOTE_NAMES))
    accepted = [c for c, text in replies if text.startswith(RECORDED_TEXT)]
    assert len(accepted) == 1, replies
    for c, text in replies:
        if c not in accepted:
            assert text.startswith("⚠️") and "Model A" not in text, replies
    assert votes_on(app, bid) == [WINNERS[accepted[0]]]

    # And once more, later: still refused, still one vote.
    again = vote(client, "a")
    assert again.startswith("⚠️") and "Model A" not in again
    assert votes_on(app, bid) == [WINNERS[accepted[0]]]
    assert status_of(app, bid) == "voted"


def test_vote_while_the_battle_is_still_streaming_is_refused(app: App) -> None:
    before = battle_ids(app)
    client = app.client()
    job = client.submit("Tell me a long story.", api_name="/battle_send")
    deadline = time.monotonic() + 30
    while not streamed_some_text(job.outputs()):
        assert time.monotonic() < deadline, "no streamed text"
        time.sleep(0.02)
    assert not job.done(), "the stream ended before the vote could be tried"
    early = vote(client, "a")
    assert early == "⚠️ Wait for both answers before voting.", early
    assert_clean(early, app)
    # The refusal itself shows the battle was mid-stream when the vote was handled.
    bid = newest_battle(app, before)
    assert votes_on(app, bid) == []

    final = job.result(timeout=30)
    assert READY_TEXT in str(final[STATUS])
    assert vote(client, "tie").startswith(RECORDED_TEXT)
    assert votes_on(app, bid) == ["tie"]


def test_oversized_prompt_is_refused_and_records_nothing(app: App) -> None:
    battles, votes = app.counts()
    client = app.client()
    out = battle(client, "x" * (MAX_PROMPT + 1))
    assert out[STATUS] == f"⚠️ Your prompt is {MAX_PROMPT + 1:,} characters; the limit is 200."
    assert chat_text(out[0]) == "" and chat_text(out[1]) == ""
    assert len(out[-1]) == MAX_PROMPT + 1  # the prompt stays in its box to be shortened
    out = battle(client, "y" * 5000, models=("stub-alpha", "stub-bravo"))
    assert out[STATUS] == "⚠️ Your prompt is 5,000 characters; the limit is 200."

    # A megabyte through the REST route, skipping the client.
    body = json.dumps({"data": ["z" * 1_000_000, None, None, None, None, None]}).encode()
    code, text = rest_call(app, "battle_send", body)
    assert code == 200 and "the limit is 200" in text, text[:300]
    assert_clean(text.replace("z" * 1000, ""), app)
    assert app.counts() == (battles, votes)

    # The limit itself is accepted.
    assert READY_TEXT in str(battle(client, "w" * MAX_PROMPT)[STATUS])
    assert app.counts() == (battles + 1, votes)


def send_body(app: App, prompt_json: bytes, *, api: str = "battle_send", queue: bool) -> bytes:
    """A hand-made JSON body for a send event; ``prompt_json`` goes in verbatim."""
    picks = b'"stub-alpha", "stub-bravo"' if api == "named_send" else b"null, null"
    data = b'"data": [' + prompt_json + b", null, null, null, " + picks + b"]"
    if not queue:
        return b"{" + data + b"}"
    fn = str(app.fn_index(api)).encode()
    return b"{" + data + b', "fn_index": ' + fn + b', "session_hash": "SESSION_HASH"}'


BAD_TEXT = "⚠️ The prompt contains characters that are not valid text."


@pytest.mark.parametrize(
    ("bad", "parsed"),
    [
        (b'"caf\xc3\x28 \xff\xfe"', False),  # invalid UTF-8 bytes in the body
        (b'"\xc0\xaf overlong"', False),  # an overlong encoding
        # A surrogate encoded as if it were a character: Python's JSON parser lets it
        # through as a lone surrogate, so the app itself must refuse it.
        (b'"\xed\xa0\x80 encoded surrogate"', True),
    ],
    ids=["invalid-bytes", "overlong", "utf8-surrogate"],
)
def test_invalid_utf8_in_the_body_is_refused_cleanly(app: App, bad: bytes, parsed: bool) -> None:
    battles, votes = app.counts()
    status, body, messages = queue_call(app, 0, raw_body=send_body(app, bad, queue=True))
    assert_clean(body + json.dumps(messages), app)
    code, text = rest_call(app, "battle_send", send_body(app, bad, queue=False))
    assert_clean(text, app)
    if parsed:
        assert status == 200 and final_output(messages)[RAW_STATUS] == BAD_TEXT, messages
        assert code == 200 and "not valid text" in text, text
    else:
        assert 400 <= status < 500, (status, body)
        assert 400 <= code < 500, (code, text)
    assert app.counts() == (battles, votes)


@pytest.mark.parametrize(
    "escaped", [b'"\\ud800"', b'"before \\udfff after"', b'"\\ud83d alone \\ude00"']
)
def test_lone_surrogates_in_the_prompt_are_refused_cleanly(app: App, escaped: bytes) -> None:
    battles, votes = app.counts()
    for api in ("battle_send", "named_send"):
        body = send_body(app, escaped, api=api, queue=True)
        status, text, messages = queue_call(app, 0, raw_body=body)
        assert status == 200, text
        kinds = [m.get("msg") for m in messages]
        assert "unexpected_error" not in kinds, messages
        data = final_output(messages)
        assert data[RAW_STATUS] == BAD_TEXT
        assert_clean(json.dumps(messages), app, may_name_models=api == "named_send")
        json.dumps(data).encode("utf-8")  # everything sent back is valid text

        code, rest = rest_call(app, api, send_body(app, escaped, api=api, queue=False))
        assert code == 200 and "not valid text" in rest, rest
        assert_clean(rest, app, may_name_models=api == "named_send")
    assert app.counts() == (battles, votes)


# ------------------------------------------------------------------------------------------
# uploads and security headers (issue 11, part 3)


def _gradio_temp_files() -> set[str]:
    import os
    import tempfile
    from pathlib import Path

    root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
    return {str(p) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.mark.parametrize("size", [30 * 1024 * 1024, 1024, 0])
def test_anonymous_uploads_are_refused_and_nothing_is_kept(app: App, size: int) -> None:
    import httpx

    before = _gradio_temp_files()
    payload = b"\x89PNG" + b"A" * max(size - 4, 0) if size else b""
    with httpx.Client(base_url=app.url, timeout=60, trust_env=False) as http:
        for path in ("/gradio_api/upload", "/gradio_api/upload/", "/upload"):
            r = http.post(path, files={"files": ("x.png", payload, "image/png")})
            assert r.status_code == 403, (path, r.status_code, r.text[:200])
            assert "no file uploads" in r.text
    assert _gradio_temp_files() - before == set(), "an upload was stored"


def test_every_page_forbids_remote_images(app: App) -> None:
    import httpx

    with httpx.Client(base_url=app.url, timeout=30, trust_env=False) as http:
        for path in ("/", "/gradio_api/info", "/config"):
            r = http.get(path)
            csp = r.headers.get("content-security-policy", "")
            assert "img-src 'self' data: blob:" in csp, (path, csp)
            assert r.headers.get("x-content-type-options") == "nosniff"


# ------------------------------------------------------------------------------------------
# operator endpoints (issue 17: observability)


def test_health_readiness_and_metrics_through_the_real_app(app: App) -> None:
    import httpx

    client = app.client()
    battle(client, "count the battle")
    with httpx.Client(base_url=app.url, timeout=30, trust_env=False) as http:
        assert http.get("/healthz").text.strip() == "ok"
        r = http.get("/readyz")
        assert r.status_code == 200 and "ready" in r.text
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "arena_battles_started_total" in metrics.text
        assert 'arena_battles_started_total{model="stub-' in metrics.text
        # Through a proxy (X-Forwarded-For) the public must not read per-model counters:
        # polling them around a battle would reveal its models.
        hidden = http.get("/metrics", headers={"x-forwarded-for": "198.51.100.7"})
        assert hidden.status_code == 404 and "arena_" not in hidden.text
