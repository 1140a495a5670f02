"""Integrity building blocks: rate limits, trusted proxies, leak detection, voter scoring."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from arena.integrity import LeakDetector, RateLimited, RateLimiter, client_address, score_voters
from arena.roster import parse_roster


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_sliding_window_and_message() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 60.0, "prompts", clock=clock)
    for _ in range(3):
        limiter.hit("user:1", "addr:9")
    with pytest.raises(RateLimited) as info:
        limiter.hit("user:1", "addr:9")
    assert "at most 3 per minute. Try again in 1 minute." in str(info.value)
    assert info.value.retry_after_s == pytest.approx(60.0)
    limiter.hit("user:2", "addr:8")  # other keys are not affected
    with pytest.raises(RateLimited):
        limiter.hit("user:3", "addr:9")  # same address, new user key: still limited
    clock.now += 60.0
    limiter.hit("user:1", "addr:9")  # the window slid
    RateLimiter(0, 1.0, "votes").hit("anyone")  # 0 disables


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = frozenset({"10.0.0.2"})
    assert client_address("203.0.113.5", "1.2.3.4", trusted) == "203.0.113.5"
    assert client_address("10.0.0.2", "1.2.3.4", trusted) == "1.2.3.4"
    # A client cannot prepend a fake hop: the right-most untrusted hop is the one our proxy saw.
    assert client_address("10.0.0.2", "6.6.6.6, 1.2.3.4", trusted) == "1.2.3.4"
    assert client_address("10.0.0.2", None, trusted) == "10.0.0.2"
    assert client_address(None, "1.2.3.4", trusted) == "unknown"


def test_leak_detector_finds_names_stems_and_organisations() -> None:
    roster = parse_roster(
        {
            "models": [
                {
                    "name": "llama-3-8b",
                    "backend": "openai",
                    "model": "x",
                    "base_url": "http://127.0.0.1:1/v1",
                    "organisation": "Meta",
                },
                {
                    "name": "qwen2.5-7b",
                    "backend": "openai",
                    "model": "y",
                    "base_url": "http://127.0.0.1:1/v1",
                },
            ]
        },
        path=Path("roster.toml"),
    )
    leaks = LeakDetector.from_roster(roster)
    assert leaks.find("I am Llama 3 8B, a model by meta.") == ["llama", "llama-3-8b", "meta"]
    assert leaks.find("As QWEN, I think...") == ["qwen"]
    assert leaks.find("qwen2.5 7b here") == ["qwen2", "qwen2.5-7b"]
    assert leaks.find("Metadata and llamas are fine.") == []
    assert leaks.find("The answer is 42.") == []


def test_anomalous_voter_is_flagged_and_honest_voters_are_not() -> None:
    rng = random.Random(3)
    ratings = {f"m{i}": 1000.0 + 40 * i for i in range(8)}
    names = list(ratings)
    judges, a_s, b_s, winners = [], [], [], []
    for v in range(200):  # honest voters vote by the model's probabilities
        for _ in range(40):
            a, b = rng.sample(names, 2)
            pa = 1 / (1 + 10 ** ((ratings[b] - ratings[a]) / 400))
            judges.append(f"honest{v}")
            a_s.append(a)
            b_s.append(b)
            winners.append("model_a" if rng.random() < pa else "model_b")
    for _ in range(60):  # the attacker always votes for the weakest model, m0
        b = rng.choice(names[1:])
        judges.append("attacker")
        a_s.append("m0")
        b_s.append(b)
        winners.append("model_a")
    scores = score_voters(judges=judges, model_a=a_s, model_b=b_s, winners=winners, ratings=ratings)
    flagged = [s.judge for s in scores if s.flagged]
    assert flagged == ["attacker"]
    assert scores[0].judge == "attacker" and scores[0].z < -6
