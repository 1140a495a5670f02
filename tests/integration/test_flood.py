"""One client cannot stall the arena (issue 11), through the real app with the default caps.

The attacker (source address 127.0.0.2) opens 20 battles at once on models that allow two
generations at a time; the victim (127.0.0.3) then sends one prompt.  The victim's battle
completes; the attacker gets two battles and 18 clear refusals.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.harness import (
    RAW_STATUS,
    READY_TEXT,
    App,
    final_output,
    queue_call,
    start_app,
    stub_server,
)

pytestmark = pytest.mark.slow

REFUSED = "You already have 2 battles being answered"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    work = tmp_path_factory.mktemp("flood")
    # 30 words 0.1 s apart: a reply takes ~3 s, so the flood is still running when the
    # victim arrives.
    with stub_server(work, tokens=30, delay=0.1) as stub:
        roster = work / "roster.toml"
        roster.write_text(
            "".join(
                f'[[models]]\nname = "{name}"\nbackend = "openai"\nmodel = "stub"\n'
                f'base_url = "{stub.base_url}"\ntemperature = {t}\nmax_new_tokens = 64\n'
                "max_concurrency = 2\n\n"
                for name, t in (("stub-alpha", 0.0), ("stub-bravo", 0.5))
            ),
            encoding="utf-8",
        )
        # The harness turns limits off; the flood test wants the defaults back.
        env = {"ARENA_MAX_LIVE_BATTLES": "2", "ARENA_MAX_LIVE_BATTLES_PER_ADDRESS": "2"}
        with start_app(work, roster=roster, env=env) as running:
            yield running


def prompt(app: App, text: str, peer: str) -> str:
    status, body, messages = queue_call(
        app,
        app.fn_index("battle_send"),
        [text, None, None, None, None, None],
        local_address=peer,
        timeout=60,
    )
    assert status == 200, body
    return str(final_output(messages)[RAW_STATUS])


def test_a_flooding_client_does_not_stall_another(app: App) -> None:
    with ThreadPoolExecutor(max_workers=21) as pool:
        flood = [pool.submit(prompt, app, f"flood {i}", "127.0.0.2") for i in range(20)]
        time.sleep(0.5)  # the flood is in
        t0 = time.monotonic()
        victim = prompt(app, "my own question", "127.0.0.3")
        victim_s = time.monotonic() - t0
        outcomes = [f.result() for f in flood]
    assert READY_TEXT in victim, victim
    assert victim_s < 30, victim_s
    refused = [o for o in outcomes if REFUSED in o]
    ready = [o for o in outcomes if READY_TEXT in o]
    assert len(refused) == 18 and len(ready) == 2, outcomes
    # The refused prompts created nothing; the two accepted and the victim's are stored.
    assert app.scalar("SELECT count(*) FROM battle") == 3
