"""Proof of work before voting (issue 17): ALTCHA challenges, passes, replays, and the vote
gate.  The solver here is an independent one (hashlib), not the widget's."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from arena.backends.scripted import Script
from arena.battles import BattleRefused
from arena.pow import ProofOfWork
from tests.battles.scripted import scripted_arena

SECRET = "pow-test-secret-0123456789abcdef0123456789"


def solve(ch: dict[str, Any]) -> str:
    for n in range(ch["maxnumber"] + 1):
        if hashlib.sha256(f"{ch['salt']}{n}".encode()).hexdigest() == ch["challenge"]:
            fields = ("algorithm", "challenge", "salt", "signature")
            payload = {"number": n, **{k: ch[k] for k in fields}}
            return base64.b64encode(json.dumps(payload).encode()).decode()
    raise AssertionError("unsolvable challenge")


def test_a_solution_earns_one_pass_and_cannot_be_replayed() -> None:
    pow = ProofOfWork(SECRET, difficulty=3000)
    ch = pow.challenge()
    assert ch["maxnumber"] == 3000 and ch["algorithm"] == "SHA-256"
    payload = solve(ch)
    token = pow.redeem(payload)
    assert token is not None and pow.valid_pass(token)
    assert pow.redeem(payload) is None  # replayed
    # Another arena (another replica with the same secret) accepts the pass.
    assert ProofOfWork(SECRET, difficulty=10).valid_pass(token)
    assert not ProofOfWork(SECRET + "x", difficulty=10).valid_pass(token)


def test_bad_solutions_and_passes_are_refused() -> None:
    pow = ProofOfWork(SECRET, difficulty=2000)
    ch = pow.challenge()
    good = json.loads(base64.b64decode(solve(ch)))
    wrong = base64.b64encode(json.dumps({**good, "number": good["number"] + 1}).encode())
    assert pow.redeem(wrong.decode()) is None
    assert pow.redeem("not base64 at all") is None
    assert pow.redeem("") is None
    forged = {**good, "signature": "0" * 64}
    assert pow.redeem(base64.b64encode(json.dumps(forged).encode()).decode()) is None
    token = pow.redeem(solve(pow.challenge()))
    assert token is not None
    expiry, _, mac = token.partition(".")
    assert not pow.valid_pass(f"{int(expiry) + 3600}.{mac}")  # a tampered expiry
    assert not pow.valid_pass(None) and not pow.valid_pass("garbage")


def test_expired_challenges_and_passes_are_refused() -> None:
    pow = ProofOfWork(SECRET, difficulty=500, challenge_ttl_s=-5, pass_ttl_s=-5)
    assert pow.redeem(solve(pow.challenge())) is None  # the challenge expired
    fresh = ProofOfWork(SECRET, difficulty=500, pass_ttl_s=1)
    token = fresh.redeem(solve(fresh.challenge()))
    assert token is not None and fresh.valid_pass(token)
    time.sleep(2.1)
    assert not fresh.valid_pass(token)


def test_votes_need_a_pass_when_proof_of_work_is_on(tmp_path: Path) -> None:
    arena = scripted_arena(tmp_path, {"m1": Script(), "m2": Script()})
    arena.pow = ProofOfWork(SECRET, difficulty=1000)

    async def main() -> None:
        updates = [u async for u in arena.turn(owner="s", user_key="k", prompt="hi")]
        bid = updates[-1].battle_id
        with pytest.raises(BattleRefused) as info:
            await arena.vote(owner="s", user_key="k", battle_id=bid, winner="a")
        assert info.value.reason == "no_proof_of_work"
        assert arena.pow is not None
        token = arena.pow.redeem(solve(arena.pow.challenge()))
        await arena.vote(owner="s", user_key="k", battle_id=bid, winner="a", pow_pass=token)

    asyncio.run(main())
