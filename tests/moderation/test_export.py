"""Exports after moderation: moderated conversations stay out unless asked for, personal data
can be scrubbed, and vote reasons are written (issue 17).  Real SQLite, the real CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from arena.backends.scripted import Script
from arena.cli import main
from arena.moderation import BlocklistChecker, Moderator, PiiChecker
from tests.battles.scripted import scripted_arena

SAYS_EMAIL = Script((" write", " to", " ann@example.org", " or", " 203.0.113.9"))
CLEAN = Script((" fine",))


def test_export_scrubs_pii_keeps_moderated_out_and_writes_reasons(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"m1": SAYS_EMAIL, "m2": CLEAN})

    async def battle(prompt: str, reasons: list[str]) -> str:
        updates = [u async for u in arena.turn(owner="s", user_key="k", prompt=prompt)]
        bid = updates[-1].battle_id
        await arena.vote(owner="s", user_key="k", battle_id=bid, winner="a")
        if reasons:
            await arena.add_reasons(owner="s", user_key="k", battle_id=bid, reasons=reasons)
        return bid

    plain = asyncio.run(battle("my mail is bob@example.com", ["Safer"]))
    arena.moderator = Moderator("warn", [BlocklistChecker([(1, "forbidden")]), PiiChecker()])
    arena.turns.moderator = arena.moderator
    moderated = asyncio.run(battle("a forbidden question", []))
    url = arena.settings.resolved_db_url

    def export(*flags: str) -> dict[str, dict[str, object]]:
        out = tmp_path / f"out{len(flags)}{'-'.join(flags)}.jsonl"
        assert main(["export", "battles", "--db", url, "--out", str(out), *flags]) == 0
        lines = out.read_text(encoding="utf-8").splitlines()
        return {r["battle_id"]: r for r in map(json.loads, lines)}

    base = export("--with-conversations")
    assert base[plain]["reasons"] == ["Safer"] and "reasons" not in base[moderated]
    assert base[moderated]["exclusion"] == "moderated"
    assert "conversation_a" not in base[moderated]  # kept out unless asked for
    assert "bob@example.com" in json.dumps(base[plain]["conversation_a"])
    everything = export("--with-conversations", "--include-moderated")
    assert "conversation_a" in everything[moderated]
    scrubbed = export("--with-conversations", "--scrub-pii")
    text = json.dumps(scrubbed[plain])
    assert "bob@example.com" not in text and "ann@example.org" not in text
    assert "203.0.113.9" not in text
    assert "[EMAIL]" in text and "[IP]" in text
    # Without conversations nothing changes but the new fields.
    assert set(export()[plain]) == set(base[plain]) - {"conversation_a", "conversation_b"}


def test_ratings_by_reason_from_the_database_and_from_an_export(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"m1": CLEAN, "m2": Script((" other",))})

    async def battle(winner: str, reasons: list[str]) -> None:
        updates = [u async for u in arena.turn(owner="s", user_key="k", prompt="q")]
        bid = updates[-1].battle_id
        await arena.vote(owner="s", user_key="k", battle_id=bid, winner=winner)
        if reasons:
            await arena.add_reasons(owner="s", user_key="k", battle_id=bid, reasons=reasons)

    for winner, reasons in [
        ("a", ["Safer"]),
        ("a", ["Safer", "More accurate"]),
        ("b", ["Better written"]),
        ("tie", ["Safer"]),
        ("a", []),
    ]:
        asyncio.run(battle(winner, reasons))
    url = arena.settings.resolved_db_url
    out_db = tmp_path / "db.json"
    assert main(["ratings", "--db", url, "--by", "reason", "--out", str(out_db)]) == 0
    from_db = json.loads(out_db.read_text(encoding="utf-8"))
    assert from_db["votes"] == 5 and from_db["votes_with_reasons"] == 4
    assert {r["reason"]: r["votes"] for r in from_db["reasons"]} == {
        "Safer": 3,
        "More accurate": 1,
        "Better written": 1,
    }
    assert sum(m["wins_with_reasons"] for m in from_db["models"]) == 3  # the tie has no winner
    log = tmp_path / "votes.jsonl"
    assert main(["export", "battles", "--db", url, "--out", str(log)]) == 0
    out_log = tmp_path / "log.json"
    assert main(["ratings", str(log), "--by", "reason", "--out", str(out_log)]) == 0
    assert json.loads(out_log.read_text(encoding="utf-8")) == from_db
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"model_a": "x", "model_b": "y", "winner": "tie", "reasons": "Safer"}\n')
    assert main(["ratings", str(bad), "--by", "reason"]) == 2
