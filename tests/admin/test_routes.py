"""The admin page over HTTP (Starlette's test client, a real arena on SQLite): who gets in,
and what each action stores."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from arena import store
from arena.admin.app import COOKIE, MAX_FAILED_LOGINS
from arena.admin.auth import SessionSigner, hash_password
from arena.battles import Arena
from arena.lifecycle import BattleRefused
from arena.store.browse import moderation_queue

from .conftest import (
    MODELS,
    PASSWORD,
    PASSWORD_HASH,
    SECRET,
    client_for,
    csrf_of,
    login,
    make_arena,
)

GET_ROUTES = (
    "/admin",
    "/admin/battles",
    "/admin/battles/some-id",
    "/admin/findings",
    "/admin/moderation",
    "/admin/export",
    "/admin/log",
)
POST_ROUTES = (
    "/admin/logout",
    "/admin/models/enable",
    "/admin/models/disable",
    "/admin/models/weight",
    "/admin/models/add",
    "/admin/findings/apply",
    "/admin/findings/undo",
    "/admin/export",
)


def rows(arena: Arena, sql: str) -> list[tuple[object, ...]]:
    with arena.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql)).all()]


def events(arena: Arena) -> list[tuple[object, ...]]:
    return rows(arena, "SELECT kind FROM model_event WHERE kind NOT IN ('registered') ORDER BY id")


def actions(arena: Arena) -> list[tuple[object, ...]]:
    return rows(arena, "SELECT actor, action, target FROM admin_action ORDER BY id")


# ------------------------------------------------------------------------------------------
# off, and refused


def test_without_a_password_hash_every_admin_path_is_404(tmp_path: Path) -> None:
    arena = make_arena(tmp_path)  # no ARENA_ADMIN_PASSWORD_HASH
    try:
        with client_for(arena) as client:
            for path in (*GET_ROUTES, "/admin/login", "/admin/anything"):
                assert client.get(path).status_code == 404, path
            for path in (*POST_ROUTES, "/admin/login"):
                r = client.post(path, data={"password": "", "name": MODELS[0]})
                assert r.status_code == 404, path
            # Not an admin path: passed on to the app behind.
            assert client.get("/administrator").text == "the battle app"
            assert client.get("/").text == "the battle app"
        assert actions(arena) == []
    finally:
        arena.engine.dispose()


def test_admin_routes_refuse_a_visitor_without_a_login(arena: Arena, client: TestClient) -> None:
    for path in GET_ROUTES:
        r = client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/admin/login", path
        assert MODELS[0] not in r.text
    for path in POST_ROUTES:
        r = client.post(path, data={"name": MODELS[0], "judge": "j", "reason": "sybil_group"})
        assert r.status_code == 403, path
        assert "Log in first" in r.text
    assert events(arena) == [] and actions(arena) == []
    assert client.get("/admin/login").status_code == 200


def test_a_wrong_password_is_refused_logged_and_gets_no_session(
    arena: Arena, client: TestClient
) -> None:
    r = client.post("/admin/login", data={"actor": "mallory", "password": PASSWORD + "x"})
    assert r.status_code == 401
    assert "Wrong password." in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")
    assert client.get("/admin").status_code == 303
    r = client.post("/admin/models/disable", data={"name": MODELS[0]})
    assert r.status_code == 403
    assert actions(arena) == [("mallory", "login_failed", "")]
    assert events(arena) == []


def test_failed_logins_are_limited_per_address_in_the_database(
    tmp_path: Path, arena: Arena
) -> None:
    with client_for(arena) as client:
        for _ in range(MAX_FAILED_LOGINS):
            assert client.post("/admin/login", data={"password": "guess"}).status_code == 401
        # Now even the right password is not tried from this address.
        r = client.post("/admin/login", data={"password": PASSWORD})
        assert r.status_code == 429 and "Too many failed logins" in r.text
        assert COOKIE not in r.headers.get("set-cookie", "")
    # Another replica (a new process on the same database) knows it too.
    replica = make_arena(tmp_path, admin_password_hash=PASSWORD_HASH)
    try:
        with client_for(replica) as other:
            assert other.post("/admin/login", data={"password": PASSWORD}).status_code == 429
    finally:
        replica.engine.dispose()
    # Another address is not locked out (behind a trusted proxy that names the client).
    trusting = make_arena(
        tmp_path / "t",
        db_url=str(arena.engine.url),
        admin_password_hash=PASSWORD_HASH,
        trusted_proxies="testclient",
    )
    try:
        with client_for(trusting) as proxied:
            elsewhere = {"x-forwarded-for": "203.0.113.9"}
            ok = proxied.post("/admin/login", data={"password": PASSWORD}, headers=elsewhere)
            assert ok.status_code == 303
            # The proxy's own address is still the locked-out one.
            assert proxied.post("/admin/login", data={"password": PASSWORD}).status_code == 429
    finally:
        trusting.engine.dispose()
    failed = rows(arena, "SELECT count(*) FROM admin_action WHERE action = 'login_failed'")
    assert failed == [(MAX_FAILED_LOGINS,)]


def test_forged_expired_and_other_password_cookies_are_refused(
    arena: Arena, client: TestClient
) -> None:
    login(client)
    token = client.cookies[COOKIE]
    assert client.get("/admin").status_code == 200
    body, mac = token.split(".")
    forged = [
        f"{body}.{mac[:-2]}AA",
        "x" + token,
        # The same actor and time, signed for another password: changing the password
        # ends every session.
        SessionSigner(SECRET, hash_password("other")).issue("ops-ann"),
        # Signed right, but issued nine hours ago.
        SessionSigner(SECRET, PASSWORD_HASH).issue("ops-ann", now=0),
        "",
    ]
    for value in forged:
        client.cookies.clear()
        client.cookies.set(COOKIE, value, domain="arena.test", path="/admin")
        assert client.get("/admin").status_code == 303, value
    client.cookies.clear()
    client.cookies.set(COOKIE, token, domain="arena.test", path="/admin")
    assert client.get("/admin").status_code == 200


def test_login_cookie_is_httponly_strict_and_posts_need_the_csrf_token(
    arena: Arena, client: TestClient
) -> None:
    r = client.post("/admin/login", data={"actor": "ops-ann", "password": PASSWORD})
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/admin" in cookie
    for data in ({"name": MODELS[0]}, {"name": MODELS[0], "csrf": "not-the-token"}):
        refused = client.post("/admin/models/disable", data=data)
        assert refused.status_code == 403 and "CSRF" in refused.text
    assert events(arena) == []
    token = csrf_of(client)
    done = client.post("/admin/models/disable", data={"name": MODELS[0], "csrf": token})
    assert done.status_code == 303 and "no+longer" in done.headers["location"]
    assert events(arena) == [("disabled",)]
    assert actions(arena)[-1] == ("ops-ann", "disable", MODELS[0])


def test_two_factor_needs_the_current_code(tmp_path: Path) -> None:
    from arena.admin.auth import new_totp_secret, totp

    secret = new_totp_secret()
    arena = make_arena(tmp_path, admin_password_hash=PASSWORD_HASH, admin_totp_secret=secret)
    try:
        with client_for(arena) as client:
            assert 'name="code"' in client.get("/admin/login").text
            r = client.post("/admin/login", data={"password": PASSWORD, "code": "000000"})
            if r.status_code == 303:  # 1 in 10^6 * 3: the zero code happened to be current
                pytest.skip("000000 was a valid code at this moment")
            assert r.status_code == 401
            assert client.post("/admin/login", data={"password": PASSWORD}).status_code == 401
            import time

            code = totp(secret, time.time())
            r = client.post("/admin/login", data={"password": PASSWORD + "!", "code": code})
            assert r.status_code == 401  # a right code does not stand in for the password
            r = client.post("/admin/login", data={"password": PASSWORD, "code": code})
            assert r.status_code == 303
        assert [a[1] for a in actions(arena)] == ["login_failed"] * 3 + ["login"]
    finally:
        arena.engine.dispose()


def test_a_malformed_password_hash_stops_the_start(tmp_path: Path) -> None:
    from arena.admin.app import admin_enabled
    from arena.admin.auth import AdminAuthError

    arena = make_arena(tmp_path)
    try:
        for bad, words in (
            ("hunter2", "is not of the form"),
            ("scrypt$15$8$1$!!$!!", "not a number or base64"),
            ("scrypt$40$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "out of range"),
        ):
            with pytest.raises(AdminAuthError, match=re.escape(words)):
                admin_enabled(arena.settings.with_overrides(admin_password_hash=bad))
        with pytest.raises(AdminAuthError, match="not base32"):
            admin_enabled(
                arena.settings.with_overrides(
                    admin_password_hash=PASSWORD_HASH, admin_totp_secret="not base32 !"
                )
            )
    finally:
        arena.engine.dispose()


# ------------------------------------------------------------------------------------------
# the roster


def test_disabling_a_model_takes_it_out_of_new_battles_here_and_on_other_replicas(
    tmp_path: Path, arena: Arena, client: TestClient
) -> None:
    import asyncio

    replica = make_arena(tmp_path / "r2", db_url=str(arena.engine.url), admin_password_hash="")
    try:
        asyncio.run(replica.sync_roster(force=True))
        assert replica.policy is not None and set(replica.policy.models) == set(MODELS)
        login(client)
        token = csrf_of(client)
        client.post("/admin/models/disable", data={"name": "m-beta", "csrf": token})
        # This replica: at once.
        assert arena.policy is not None and arena.policy.models == ("m-alpha", "m-gamma")
        page = client.get("/admin").text
        assert re.search(r'data-model="m-beta">.*?<td class="state">disabled', page)
        # The other replica: on its next battle (poll interval 0 here).
        asyncio.run(replica.sync_roster())
        assert replica.policy is not None and replica.policy.models == ("m-alpha", "m-gamma")
        with pytest.raises(BattleRefused, match="not taking battles"):
            replica._draw("named", ("m-alpha", "m-beta"))
        import random

        rng = random.Random(7)
        drawn = {m for _ in range(200) for m in astuple(replica.policy.draw(rng))}
        assert drawn == {"m-alpha", "m-gamma"}
        # Disabling a second one leaves no pair: anonymous battles are refused, clearly.
        client.post("/admin/models/disable", data={"name": "m-gamma", "csrf": token})
        with pytest.raises(BattleRefused, match="Fewer than two models"):
            arena._draw("anony", None)
        client.post("/admin/models/enable", data={"name": "m-beta", "csrf": token})
        assert arena.policy is not None and arena.policy.models == ("m-alpha", "m-beta")
        r = client.post("/admin/models/disable", data={"name": "nope", "csrf": token})
        assert "unknown+model" in r.headers["location"]
    finally:
        replica.engine.dispose()
    assert events(arena) == [("disabled",), ("disabled",), ("enabled",)]


def astuple(draw: object) -> tuple[str, str]:
    return (draw.model_a, draw.model_b)  # type: ignore[attr-defined]


def test_weights_change_the_draw_and_bad_weights_are_refused(tmp_path: Path) -> None:
    arena = make_arena(tmp_path, admin_password_hash=PASSWORD_HASH, sampling_policy="weighted")
    try:
        with client_for(arena) as client:
            login(client)
            token = csrf_of(client)
            before = arena.policy.exposure() if arena.policy else {}
            assert before["m-alpha"] == pytest.approx(1 / 3)
            r = client.post(
                "/admin/models/weight", data={"name": "m-alpha", "weight": "4", "csrf": token}
            )
            assert r.status_code == 303 and "sampling+weight+4" in r.headers["location"]
            after = arena.policy.exposure() if arena.policy else {}
            # Pair weights w_i * w_j: alpha is in the pairs weighing 4, 4 and 1 of 9.
            assert after["m-alpha"] == pytest.approx((4 + 4) / 9 / 2 + 0 / 9)
            for bad in ("0", "-1", "nan", "inf", "heavy"):
                r = client.post(
                    "/admin/models/weight", data={"name": "m-alpha", "weight": bad, "csrf": token}
                )
                assert "error=weight" in r.headers["location"], bad
            assert rows(arena, "SELECT weight FROM model WHERE name = 'm-alpha'") == [(4.0,)]
    finally:
        arena.engine.dispose()


def test_adding_an_entry_validates_the_toml_and_serves_it(arena: Arena, client: TestClient) -> None:
    login(client)
    token = csrf_of(client)
    bad = [
        ("[[models]]\nname = 'x'\nbackend = 'openai'\n", "missing required key"),
        ("[[models]]\nname = 'x'\nbackend = 'openai'\nmodel = 'x'\ncolour = 1\n", "colour"),
        ("[[models]\n", "invalid TOML"),
        (
            f"[[models]]\nname = '{MODELS[0]}'\nbackend = 'openai'\nmodel = 'x'\n"
            "base_url = 'http://127.0.0.1:9/v1'\n",
            "already exists",
        ),
    ]
    for toml, words in bad:
        r = client.post("/admin/models/add", data={"toml": toml, "csrf": token})
        location = r.headers["location"]
        assert "error=" in location, toml
        assert words.replace(" ", "+") in location, (toml, location)
    assert rows(arena, "SELECT count(*) FROM model") == [(3,)]
    good = (
        "[[models]]\nname = 'm-delta'\nbackend = 'openai'\nmodel = 'delta'\n"
        "base_url = 'http://127.0.0.1:9/v1'\n"
    )
    r = client.post("/admin/models/add", data={"toml": good, "csrf": token})
    assert "note=m-delta+added" in r.headers["location"]
    assert events(arena) == [("added",)]
    stored = rows(arena, "SELECT entry_toml FROM model WHERE name = 'm-delta'")
    assert stored == [(good.replace("\n", "\r\n"),)] or stored == [(good,)]

    # The load runs as a task on the app's loop (the test client's thread); an openai
    # entry loads at once, so it is done within a few requests.
    for _ in range(50):
        if "m-delta" in arena.roster:
            break
        time.sleep(0.05)
    assert "m-delta" in arena.roster
    assert arena.policy is not None and "m-delta" in arena.policy.models
    assert 'data-model="m-delta"' in client.get("/admin").text


# ------------------------------------------------------------------------------------------
# battles, findings, moderation, export, log


def _battle(
    arena: Arena, a: str, b: str, judge: str, prompt: str, winner: str | None = "model_a"
) -> str:
    with store.new_session(arena.engine) as s:
        battle = store.create_battle(
            session=s,
            mode="anony",
            model_a=a,
            model_b=b,
            user_key=judge,
            pair_probability=1 / 6,
            policy_name="uniform",
            policy_version="1",
        )
        store.append_message(session=s, battle_id=battle.id, turn=1, side="user", content=prompt)
        store.append_message(session=s, battle_id=battle.id, turn=1, side="a", content="ans A")
        store.append_message(session=s, battle_id=battle.id, turn=1, side="b", content="ans B")
        store.set_status(session=s, battle_id=battle.id, status="ready")
        if winner is not None:
            store.record_vote(session=s, battle_id=battle.id, winner=winner, user_key=judge)
    return battle.id


def test_battles_are_filtered_and_a_conversation_is_read_escaped(
    arena: Arena, client: TestClient
) -> None:
    one = _battle(arena, "m-alpha", "m-beta", "judge-1", "<script>alert(1)</script> hi")
    two = _battle(arena, "m-beta", "m-gamma", "judge-2", "second", winner=None)
    three = _battle(arena, "m-alpha", "m-gamma", "judge-2", "third")
    with store.new_session(arena.engine) as s:
        store.mark_exclusion(session=s, battle_id=three, reason="duplicate_prompt")
    login(client)

    def shown(**query: str) -> set[str]:
        page = client.get("/admin/battles", params=query).text
        return set(re.findall(r"/admin/battles/([0-9a-f-]{36})", page))

    assert shown() == {one, two, three}
    assert shown(model="m-alpha") == {one, three}
    assert shown(judge="judge-2") == {two, three}
    assert shown(exclusion="duplicate_prompt") == {three}
    assert shown(exclusion="(counted)") == {one}
    assert shown(exclusion="(any excluded)") == {three}
    assert shown(since="2000-01-01", until="2000-12-31") == set()
    today = store.utcnow().date().isoformat()
    assert shown(since=today, until=today) == {one, two, three}
    bad = client.get("/admin/battles", params={"since": "yesterday"}).text
    assert "date &#x27;yesterday&#x27; is not YYYY-MM-DD" in bad

    page = client.get(f"/admin/battles/{one}").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hi" in page
    assert page.index("hi</pre>") < page.index("ans A") < page.index("ans B")
    assert "m-alpha" in page and "judge-1" in page
    assert client.get("/admin/battles/no-such-battle").status_code == 404
    assert actions(arena)[-1] == ("ops-ann", "view_battle", one)


def test_findings_are_applied_and_undone_and_logged(arena: Arena, client: TestClient) -> None:
    ids = [_battle(arena, "m-alpha", "m-beta", "judge-x", f"p{i}") for i in range(3)]
    other = _battle(arena, "m-alpha", "m-beta", "judge-y", "other")
    with store.new_session(arena.engine) as s:
        store.mark_exclusion(session=s, battle_id=ids[0], reason="identity_leak")
    login(client, actor="ops-bo")
    token = csrf_of(client, "/admin/findings")
    data = {"judge": "judge-x", "reason": "anomalous_voter", "csrf": token}
    r = client.post("/admin/findings/apply", data=data)
    assert "note=2+votes" in r.headers["location"]
    excl = dict(rows(arena, "SELECT battle_id, exclusion FROM vote"))
    assert excl == {ids[0]: "identity_leak", ids[1]: "anomalous_voter",
                    ids[2]: "anomalous_voter", other: None}  # fmt: skip
    page = client.get("/admin/findings").text
    assert re.search(r"judge-x.*?anomalous_voter</td><td>2</td>", page, re.S)
    r = client.post("/admin/findings/undo", data=data)
    assert "note=2+votes" in r.headers["location"]
    excl = dict(rows(arena, "SELECT battle_id, exclusion FROM vote"))
    assert excl[ids[0]] == "identity_leak" and excl[ids[1]] is None and excl[ids[2]] is None
    r = client.post("/admin/findings/apply", data={**data, "reason": "identity_leak"})
    assert "error=unknown+finding+reason" in r.headers["location"]
    assert [a[1:] for a in actions(arena)[-2:]] == [
        ("apply_finding", "judge-x"),
        ("undo_finding", "judge-x"),
    ]
    assert actions(arena)[-1][0] == "ops-bo"


def test_moderation_queue_export_and_audit_log(arena: Arena, client: TestClient) -> None:
    bid = _battle(arena, "m-alpha", "m-beta", "judge-1", "moderated prompt")
    _battle(arena, "m-beta", "m-gamma", "judge-2", "plain")
    with store.new_session(arena.engine) as s:
        store.record_moderation(
            session=s,
            battle_id=bid,
            user_key="judge-1",
            turn=1,
            side="user",
            action="warned",
            checkers=["blocklist@1"],
            categories=["blocklist:<b>word</b>"],
        )
    assert len(moderation_queue(engine=arena.engine)) == 1
    login(client, actor="ops-cy")
    page = client.get("/admin/moderation").text
    assert f"/admin/battles/{bid}" in page and "warned" in page
    assert "blocklist:&lt;b&gt;word&lt;/b&gt;" in page
    token = csrf_of(client, "/admin/export")
    r = client.post("/admin/export", data={"csrf": token, "conversations": "1"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/gzip"
    assert "attachment" in r.headers["content-disposition"]
    records = [json.loads(line) for line in gzip.decompress(r.content).splitlines()]
    assert len(records) == 2 and all("conversation_a" in rec for rec in records)
    assert client.post("/admin/export", data={"conversations": "1"}).status_code == 403
    log = client.get("/admin/log").text
    assert "ops-cy" in log and "export" in log and "2 records, with conversations" in log
    logged = [a[1] for a in actions(arena)]
    assert logged == ["login", "export"]
    r = client.post("/admin/logout", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    assert client.get("/admin").status_code == 303


def test_a_restarted_replica_starts_with_the_admin_state(
    tmp_path: Path, arena: Arena, client: TestClient
) -> None:
    import asyncio

    login(client)
    token = csrf_of(client)
    client.post("/admin/models/disable", data={"name": "m-gamma", "csrf": token})
    added = (
        "[[models]]\nname = 'm-delta'\nbackend = 'openai'\nmodel = 'delta'\n"
        "base_url = 'http://127.0.0.1:9/v1'\n"
    )
    client.post("/admin/models/add", data={"toml": added, "csrf": token})
    said: list[str] = []
    restarted = make_arena(tmp_path / "again", db_url=str(arena.engine.url))
    try:
        assert restarted.policy is not None and set(restarted.policy.models) == set(MODELS)
        asyncio.run(restarted.load(said.append))  # what `arena serve` does before serving
        assert restarted.policy is not None
        assert restarted.policy.models == ("m-alpha", "m-beta", "m-delta")
        assert "m-delta" in restarted.backends and "m-delta" in restarted.roster
        assert "disabled on the admin page: m-gamma" in said
    finally:
        restarted.engine.dispose()


def test_oversized_and_non_form_posts_are_refused_before_reading(
    arena: Arena, client: TestClient
) -> None:
    login(client)
    token = csrf_of(client)
    huge = "[[models]]\n# " + "x" * 70_000
    r = client.post("/admin/models/add", data={"toml": huge, "csrf": token})
    assert r.status_code == 413 and "at most 65,536 bytes" in r.text
    r = client.post("/admin/models/add", files={"toml": ("a.toml", b"x")}, data={"csrf": token})
    assert r.status_code == 415
    r = client.post("/admin/login", content=b'{"password": "x"}',
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 415

    def chunks() -> Iterator[bytes]:
        yield b"csrf=" + token.encode() + b"&toml="
        for _ in range(100):
            yield b"y" * 1024

    r = client.post(
        "/admin/models/add",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert rows(arena, "SELECT count(*) FROM model") == [(3,)]
    assert [a[1] for a in actions(arena)] == ["login"]


def test_a_flagged_attacker_is_listed_and_its_finding_applied_from_the_page(
    tmp_path: Path, arena: Arena, client: TestClient
) -> None:
    import random

    # 1,500 honest votes on three evenly matched models from 150 voters, and one voter who
    # makes m-gamma win all 80 of its battles.
    rng = random.Random(5)
    lines = []
    for _ in range(1500):
        a, b = rng.sample(MODELS, 2)
        winner = rng.choice(("model_a", "model_b", "tie"))
        lines.append((a, b, winner, f"honest-{rng.randrange(150)}"))
    for i in range(80):
        other = rng.choice(MODELS[:2])
        a, b = (other, "m-gamma") if i % 2 else ("m-gamma", other)
        lines.append((a, b, "model_b" if i % 2 else "model_a", "attacker"))
    log = tmp_path / "votes.jsonl"
    with log.open("w") as f:
        for i, (a, b, w, j) in enumerate(lines):
            record = {"question_id": f"q{i}", "model_a": a, "model_b": b, "winner": w,
                      "judge": j, "anony": True, "tstamp": 1.7e9 + 60 * i}  # fmt: skip
            f.write(json.dumps(record) + "\n")
    store.import_battles(engine=arena.engine, path=log)

    login(client)
    page = client.get("/admin/findings").text
    flagged = page.split('id="flags"')[1].split("</table>")[0]
    assert "attacker" in flagged and "anomalous_voter" in flagged and "m-gamma" in flagged
    assert "honest-" not in flagged
    token = csrf_of(client, "/admin/findings")
    r = client.post(
        "/admin/findings/apply",
        data={"judge": "attacker", "reason": "anomalous_voter", "csrf": token},
    )
    assert "note=80+votes" in r.headers["location"]
    excluded = rows(arena, "SELECT judge, count(*) FROM vote WHERE exclusion IS NOT NULL "
                           "GROUP BY judge")  # fmt: skip
    assert excluded == [("attacker", 80)]
    page = client.get("/admin/findings").text
    assert "attacker" not in page.split('id="flags"')[1].split("</table>")[0]
    applied = page.split('id="applied"')[1]
    assert "attacker" in applied and "anomalous_voter</td><td>80</td>" in applied
