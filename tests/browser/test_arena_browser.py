"""The arena in a real browser: Debian's Chromium, driven by Playwright, against ``app.py``
on loopback with the real bundled model (three SmolLM2-135M variants on CPU).

One test walks the whole product: an empty prompt, a full anonymous battle (prompt, both
answers streaming, vote, reveal), a new round with a follow-up turn and a second vote, the
side-by-side tab, and the leaderboard counting the votes.  Meanwhile every response the
browser receives (HTTP bodies, SSE messages, websocket frames) is recorded, and everything
received while the battle tab is in use must not name or otherwise identify a roster model
(name, ``variant`` label, config hash) -- except the vote acknowledgements, which must name
exactly the battle's pair.  Screenshots and the recorded traffic go to
``test-artifacts/browser/<test>/``.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page
from playwright.sync_api import Error as PlaywrightError

from arena.roster import load_roster
from arena.standings import COLUMNS
from tests.browser.conftest import AppProcess
from tests.browser.traffic import Record, Traffic, apply_diff, chat_text

pytestmark = [pytest.mark.browser, pytest.mark.model, pytest.mark.slow]

VOTE_KEYS = ("a", "b", "tie", "bothbad")
READY = "Both answers are in"
VOTED = "Vote recorded"
EMPTY_PROMPT_MESSAGE = "Type a prompt first."
PLACEHOLDER = "…"
RENDER_SLACK_MS = 1000.0
TURN_TIMEOUT_MS = 180_000  # one turn of both sides on a busy 2-core CPU, generously

# Neutral prompts: an answer that names the model ("I'm SmolLM by Hugging Face") is a leak by
# the model itself, which the arena may exclude from the leaderboard.
PROMPT_1 = "In two sentences, why is the sky blue?"
PROMPT_2 = "Name three colours."
PROMPT_3 = "Now name two fruits."
PROMPT_NAMED = "Name two animals."
SELF_NAMING = re.compile(r"smol\s*lm|hugging\s*face", re.IGNORECASE)

# Outputs of the chat tab's streaming send event (arena/ui/chat_tab.py: stream_outputs).
OUT_CHAT_A, OUT_CHAT_B, OUT_STATUS, OUT_VOTABLE = 0, 1, 3, 4


@dataclass
class Battle:
    names: tuple[str, str]
    answers: list[str]  # every answer of both sides, for the self-naming check


class ChatTab:
    """The battle or side-by-side tab of the page, by elem_id prefix."""

    def __init__(self, page: Page, prefix: str) -> None:
        self.page = page
        self.prefix = prefix

    def sel(self, name: str) -> str:
        return f"#{self.prefix}-{name}"

    def status(self) -> str:
        return self.page.inner_text(self.sel("status")).strip()

    def vote_enabled(self) -> list[bool]:
        return [self.page.is_enabled(self.sel(f"vote-{k}")) for k in VOTE_KEYS]

    def label(self, side: str) -> str:
        """The heading above one side's answers: "Model A", or "Model A: NAME" after a vote."""
        return self.page.inner_text(self.sel("name-" + side))

    def wait_names_hidden(self) -> None:
        self.page.wait_for_function(
            """(p) => ['a', 'b'].every((s) => (document.querySelector(`#${p}-name-${s}`)
                ?.innerText || '').trim() === `Model ${s.toUpperCase()}`)""",
            arg=self.prefix,
        )

    def messages(self, side: str, role: str) -> list[str]:
        testid = "bot" if role == "assistant" else "user"
        loc = self.page.locator(f"{self.sel('chat-' + side)} [data-testid='{testid}']")
        return [t.strip() for t in loc.all_inner_texts()]

    def send(self, text: str) -> None:
        self.page.fill(f"{self.sel('prompt')} textarea", text)
        self.page.click(self.sel("send"))

    def wait_status(self, needle: str, timeout_ms: float = 30_000) -> None:
        self.page.wait_for_function(
            "([sel, needle]) => (document.querySelector(sel)?.innerText || '').includes(needle)",
            arg=[self.sel("status"), needle],
            timeout=timeout_ms,
        )

    def wait_ready(self, turns: int) -> None:
        """Both answers of turn ``turns`` are complete and the vote buttons are active."""
        self.page.wait_for_function(
            """([p, turns, ready]) => {
                const q = (s) => document.querySelector(s);
                const bots = (side) =>
                    document.querySelectorAll(`#${p}-chat-${side} [data-testid='bot']`).length;
                return bots('a') === turns && bots('b') === turns
                    && (q(`#${p}-status`)?.innerText || '').includes(ready)
                    && !q(`#${p}-vote-a`).disabled;
            }""",
            arg=[self.prefix, turns, READY],
            timeout=TURN_TIMEOUT_MS,
        )

    def revealed(self) -> tuple[str, str]:
        """The names in the headings after a vote ("Model A: NAME")."""
        # The vote's reply and the page's repaint are separate steps: wait (bounded) for both
        # headings to read "Model X: NAME" and nothing else, then check them.
        with contextlib.suppress(PlaywrightError):
            self.page.wait_for_function(
                """(p) => ['a', 'b'].every((s) => /^Model [AB]: \\S+$/.test(
                    (document.querySelector(`#${p}-name-${s}`)?.innerText || '').trim()))""",
                arg=self.prefix,
                timeout=10_000,
            )
        names = []
        for side in ("a", "b"):
            label = self.label(side)
            m = re.fullmatch(rf"Model {side.upper()}: (\S+)", label.strip())
            assert m, f"heading of side {side} after the vote is {label!r}"
            names.append(m.group(1))
        return names[0], names[1]


# A MutationObserver that samples the battle tab on every DOM change: the last answer of each
# side, the vote buttons' disabled flags, and the status line.
SAMPLER_JS = """(p) => {
    const q = (s) => document.querySelector(s);
    const last = (side) => {
        const els = document.querySelectorAll(`#${p}-chat-${side} [data-testid='bot']`);
        return els.length ? els[els.length - 1].innerText.trim() : '';
    };
    window.__samples = [];
    const sample = () => window.__samples.push({
        t: performance.now(), a: last('a'), b: last('b'),
        status: (q(`#${p}-status`)?.innerText || '').trim(),
        disabled: ['a', 'b', 'tie', 'bothbad'].map((k) => q(`#${p}-vote-${k}`).disabled),
    });
    if (window.__observer) window.__observer.disconnect();
    window.__observer = new MutationObserver(sample);
    window.__observer.observe(document.body, {
        subtree: true, childList: true, characterData: true,
        attributes: true, attributeFilter: ['disabled', 'class'],
    });
    sample();
}"""


def identifiers() -> dict[str, str]:
    """Every string that identifies a roster model -> what it is."""
    found: dict[str, str] = {}
    for entry in load_roster():
        found[entry.name] = f"name of {entry.name}"
        if entry.variant:
            found[entry.variant] = f"variant label of {entry.name}"
        found[entry.config_hash] = f"config hash of {entry.name}"
    return found


def mentions(record: Record, needles: dict[str, str]) -> list[str]:
    hay = record.searchable().lower()
    hits = []
    for needle, what in needles.items():
        at = hay.find(needle.lower())
        if at >= 0:
            excerpt = hay[max(0, at - 80) : at + len(needle) + 80].replace("\n", " ")
            hits.append(f"{what} in {record.kind} #{record.seq} {record.url}: ...{excerpt}...")
    return hits


def sse_events(records: list[Record]) -> dict[str, list[dict[str, Any]]]:
    """Gradio queue messages by event id, in arrival order."""
    events: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in records:
        payload = r.json()
        if isinstance(payload, dict) and payload.get("event_id"):
            events[payload["event_id"]].append(payload)
    return events


def output_states(messages: list[dict[str, Any]]) -> list[list[Any]]:
    """The outputs after each generating/completed message of one event (diffs applied)."""
    states: list[list[Any]] = []
    state: list[Any] | None = None
    for m in messages:
        if m.get("msg") not in ("process_generating", "process_completed"):
            continue
        data = m["output"]["data"]
        if state is None or m["msg"] == "process_completed":
            state = list(data)  # the first generating message and the last carry full values
        else:
            state = [apply_diff(v, d) for v, d in zip(state, data, strict=True)]
        states.append(state)
    return states


def answer_len(chat: Any) -> int:
    text = chat_text(chat)
    return 0 if text.strip() in ("", PLACEHOLDER) else len(text)


def check_streaming_over_sse(records: list[Record], prompt: str) -> str:
    """Both sides of the turn streamed concurrently; the stream never touched the votes.

    The vote buttons are switched by separate events before and after the stream (their
    state on screen is checked by ``check_buttons_in_dom``); the stream's "votable" flag is
    server-side state, never sent.

    Returns a one-line summary for the report.
    """
    turn = None
    for messages in sse_events(records).values():
        states = output_states(messages)
        if states and chat_text(states[0][OUT_CHAT_A], role="user") == prompt:
            turn = states
            break
    assert turn is not None, f"no SSE event streamed the answers to {prompt!r}"
    lengths = [(answer_len(s[OUT_CHAT_A]), answer_len(s[OUT_CHAT_B])) for s in turn]
    final_a, final_b = lengths[-1]
    assert final_a > 0 and final_b > 0, f"an answer is empty: {lengths[-1]}"
    assert len(turn) >= 4, f"the answers came in {len(turn)} SSE messages, not streamed"

    assert all(len(state) == OUT_VOTABLE + 2 for state in turn), "unexpected stream outputs"
    assert all(state[OUT_VOTABLE] is None for state in turn), "the votable State was sent"
    assert READY in turn[-1][OUT_STATUS]

    # Concurrency: both sides partly written at the same time, and their growth interleaves.
    both_partial = [
        i for i, (la, lb) in enumerate(lengths) if 0 < la < final_a and 0 < lb < final_b
    ]
    growth = []
    for (pa, pb), (la, lb) in itertools.pairwise(lengths):
        grew = ("A" if la > pa else "") + ("B" if lb > pb else "")
        if grew:
            growth.append(grew)
    singles = [g for g in growth if len(g) == 1]
    switches = sum(1 for x, y in itertools.pairwise(singles) if x != y)
    summary = (
        f"{len(turn)} SSE updates, final lengths A={final_a} B={final_b}, "
        f"{len(both_partial)} with both sides partial, growth order "
        f"{''.join(g if len(g) == 1 else '(' + g + ')' for g in growth)[:120]}"
    )
    assert both_partial, (
        f"the two answers never streamed at the same time: {summary}; lengths {lengths}"
    )
    assert switches >= 2 or growth.count("AB") >= 2, (
        f"the two sides' updates do not interleave: {summary}"
    )
    return summary


def check_buttons_in_dom(samples: list[dict[str, Any]], final: tuple[str, str]) -> None:
    """Browser side: vote buttons disabled while the answers on screen are incomplete.

    Components re-render independently, so a button may come alive a frame before the last
    token is painted; samples within ``RENDER_SLACK_MS`` of the answers' completion are not
    held against it.  (The buttons are switched on by an event that starts only after the
    stream's last message, so on a fast machine there is nothing to forgive.)
    """
    assert samples, "the DOM sampler recorded nothing"
    done_at = next((s["t"] for s in samples if (s["a"], s["b"]) == final), samples[-1]["t"])
    partial_seen = 0
    for s in samples:
        if (s["a"], s["b"]) == final:
            continue
        if any(x not in ("", PLACEHOLDER) for x in (s["a"], s["b"])) and all(s["disabled"]):
            partial_seen += 1
        if s["t"] < done_at - RENDER_SLACK_MS:
            assert all(s["disabled"]), f"vote buttons active while streaming: {s}"
    assert partial_seen, "the browser never showed a partial answer (no streaming on screen)"
    assert not any(samples[-1]["disabled"]), f"votes still off at the end: {samples[-1]}"


def leaderboard_rows(page: Page) -> list[list[str]]:
    rows: list[list[str]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('#leaderboard-table [role=row]'))
            .map((row) => Array.from(row.querySelectorAll("[data-testid^='cell-']"))
                .map((cell) => cell.innerText.trim()))
            .filter((cells) => cells.length > 0)"""
    )
    return rows


@contextlib.contextmanager
def on_failure(app: AppProcess, page: Page, traffic: Traffic, out: Path) -> Iterator[None]:
    """Save a screenshot and the traffic, and put the app's log tail in the message."""
    try:
        yield
    except (AssertionError, PlaywrightError) as exc:
        with contextlib.suppress(PlaywrightError):
            page.screenshot(path=str(out / "failure.png"), full_page=True)
        with contextlib.suppress(Exception):
            traffic.collect()
            (out / "traffic-at-failure.jsonl").write_text(traffic.dump(traffic.records))
        raise AssertionError(f"{type(exc).__name__}: {exc}{app.failure_context()}") from exc


def test_battle_named_and_leaderboard_in_browser(
    chromium: Browser, arena_app: AppProcess, artifacts_dir: Path
) -> None:
    started = time.monotonic()
    needles = identifiers()
    roster_names = set(load_roster().names)
    context = chromium.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(30_000)
    traffic = Traffic(page)
    out = artifacts_dir

    def shot(name: str) -> None:
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)

    try:
        with on_failure(arena_app, page, traffic, out):
            page.goto(arena_app.url + "/")
            battle = ChatTab(page, "battle")
            page.wait_for_selector(f"{battle.sel('prompt')} textarea")
            # The page load also fills the (hidden) leaderboard; let it finish first.
            traffic.wait_for(
                page,
                lambda r: "close_stream" in r.text,
                "end of the page-load event stream (the leaderboard)",
            )
            assert battle.vote_enabled() == [False] * 4
            battle_start = traffic.mark()

            # -- an empty prompt gets a clear message and starts nothing ----------------------
            page.click(battle.sel("send"))
            battle.wait_status(EMPTY_PROMPT_MESSAGE)
            assert EMPTY_PROMPT_MESSAGE in battle.status()
            assert battle.messages("a", "assistant") == battle.messages("b", "assistant") == []
            assert battle.vote_enabled() == [False] * 4
            shot("01-empty-prompt")

            # -- battle 1: both answers stream, the votes stay off until both are done --------
            page.evaluate(SAMPLER_JS, "battle")
            turn1_start = traffic.mark()
            battle.send(PROMPT_1)
            page.wait_for_function(
                """() => ['a', 'b'].some((s) => {
                    const els = document.querySelectorAll(`#battle-chat-${s} [data-testid='bot']`);
                    const t = els.length ? els[els.length - 1].innerText.trim() : '';
                    return t !== '' && t !== '…';
                })""",
                timeout=TURN_TIMEOUT_MS,
            )
            shot("02-streaming")
            battle.wait_ready(turns=1)
            samples: list[dict[str, Any]] = page.evaluate(
                "() => { window.__observer.disconnect(); return window.__samples; }"
            )
            assert battle.vote_enabled() == [True] * 4
            final_1 = (battle.messages("a", "assistant")[-1], battle.messages("b", "assistant")[-1])
            check_buttons_in_dom(samples, final_1)
            assert battle.label("a").strip() == "Model A"
            assert battle.label("b").strip() == "Model B"
            on_screen = page.inner_text("#battle-chat-a") + page.inner_text("#battle-chat-b")
            on_screen += battle.status()
            assert not [n for n in roster_names if n in on_screen], on_screen
            shot("03-both-answers")
            turn1_end = traffic.mark()

            # -- vote and reveal ----------------------------------------------------------------
            page.click(battle.sel("vote-a"))
            battle.wait_status(VOTED)
            names_1 = battle.revealed()
            assert set(names_1) <= roster_names and names_1[0] != names_1[1], names_1
            status = battle.status()
            assert f"Model A: {names_1[0]}" in status and f"Model B: {names_1[1]}" in status
            assert battle.vote_enabled() == [False] * 4
            battles = [Battle(names_1, list(final_1))]
            shot("04-revealed")

            # -- new round, then a battle with a follow-up turn ---------------------------------
            page.click(battle.sel("new"))
            battle.wait_names_hidden()
            page.wait_for_function(
                """() => ['a', 'b'].every(
                    (s) => !document.querySelector(`#battle-chat-${s} [data-testid='bot']`))"""
            )
            assert battle.status() == ""
            assert battle.vote_enabled() == [False] * 4
            shot("05-new-round")
            battle.send(PROMPT_2)
            battle.wait_ready(turns=1)
            battle.send(PROMPT_3)
            battle.wait_ready(turns=2)
            for side in ("a", "b"):
                assert battle.messages(side, "user") == [PROMPT_2, PROMPT_3]
                assert all(t not in ("", PLACEHOLDER) for t in battle.messages(side, "assistant"))
            assert battle.label("a").strip() == "Model A"
            answers_2 = battle.messages("a", "assistant") + battle.messages("b", "assistant")
            shot("06-follow-up")
            page.click(battle.sel("vote-tie"))
            battle.wait_status(VOTED)
            names_2 = battle.revealed()
            assert set(names_2) <= roster_names and names_2[0] != names_2[1], names_2
            battles.append(Battle(names_2, answers_2))
            shot("07-revealed-2")
            # A prompt typed straight after a vote starts a new anonymous battle: the last
            # pair's names must go at once.  (Then New round abandons it.)
            battle.send(PROMPT_1)
            battle.wait_names_hidden()
            page.click(battle.sel("new"))
            page.wait_for_timeout(2000)  # the abandoned stream's last messages must not return
            assert battle.messages("a", "assistant") == battle.messages("b", "assistant") == []
            assert battle.status() == "" and battle.vote_enabled() == [False] * 4
            battle.wait_names_hidden()
            page.wait_for_timeout(1000)  # let the last messages arrive before closing the window
            battle_end = traffic.mark()
            traffic.collect()

            # -- what the browser received for the battle tab --------------------------------
            window = traffic.window(battle_start, battle_end)
            (out / "battle-traffic.jsonl").write_text(traffic.dump(window), encoding="utf-8")
            assert not traffic.stream_errors, traffic.stream_errors
            unread = [f"{r.url}: {r.body_error}" for r in window if r.body_error]
            assert not unread, f"response bodies that could not be read: {unread}"
            sse = [r for r in window if r.kind == "sse"]
            streams_seen = [
                r for r in window if r.kind == "http" and "event-stream" in r.content_type
            ]
            assert streams_seen, "the battle tab opened no event stream"
            read, seen = traffic.wait_streams_read(page)
            assert read >= seen, f"{seen} event streams seen but only {read} read through CDP"
            # The vote runs outside the queue: its reply is the response to one direct POST
            # (/gradio_api/run/...), not a message on the event stream.
            acks = [
                r
                for r in window
                if VOTED in r.searchable()
                and (r.kind == "sse" or (r.kind == "http" and "/gradio_api/run/" in r.url))
            ]
            assert len(acks) == 2, f"expected 2 vote acknowledgements, got {len(acks)}"
            for ack, b in zip(acks, battles, strict=True):
                assert ack.kind == "http", f"the vote went through the queue: {ack.url}"
                payload = json.loads(ack.text)
                assert isinstance(payload.get("data"), list), payload
                others = {n: w for n, w in needles.items() if n not in b.names}
                assert not mentions(ack, others), mentions(ack, others)
                for name in b.names:
                    assert name in ack.text, f"{name} missing from the vote reply {ack.text}"
            leaks = [hit for r in window if r not in acks for hit in mentions(r, needles)]
            assert not leaks, "battle-tab traffic identifies a model before its vote:\n" + (
                "\n".join(leaks[:10])
            )
            assert any(PROMPT_1 in r.text for r in sse), "the recorder saw no battle stream"
            streaming = check_streaming_over_sse(traffic.window(turn1_start, turn1_end), PROMPT_1)

            # -- the side-by-side tab: chosen models, streamed answers, vote ------------------
            page.get_by_role("tab", name="👀 Side-by-side").click()
            named = ChatTab(page, "named")
            page.wait_for_selector(f"{named.sel('prompt')} textarea", state="visible")
            pick_a = page.input_value(f"{named.sel('pick-a')} input")
            pick_b = page.input_value(f"{named.sel('pick-b')} input")
            assert {pick_a, pick_b} <= roster_names and pick_a != pick_b, (pick_a, pick_b)
            named.send(PROMPT_NAMED)
            named.wait_ready(turns=1)
            assert all(t not in ("", PLACEHOLDER) for t in named.messages("a", "assistant"))
            assert all(t not in ("", PLACEHOLDER) for t in named.messages("b", "assistant"))
            page.click(named.sel("vote-b"))
            named.wait_status(VOTED)
            assert named.revealed() == (pick_a, pick_b)
            shot("08-side-by-side")

            # -- the leaderboard counts the two anonymous votes (not the named one) ----------
            page.get_by_role("tab", name="🏆 Leaderboard").click()
            # A battle whose answer names the model itself may be excluded by the arena.
            sure = [b for b in battles if not any(SELF_NAMING.search(t) for t in b.answers)]
            counted_js = (
                "() => /from [0-9]+ counted/.test("
                "document.querySelector('#leaderboard-note')?.innerText || '')"
            )
            try:
                page.wait_for_function(counted_js, timeout=45_000)
            except PlaywrightError:
                # Not shown by the tab's own load or the live push: the Refresh button, once,
                # with the app's log in the message if that does not show it either.
                page.click("#leaderboard-refresh")
                page.wait_for_function(counted_js, timeout=45_000)
            note = page.inner_text("#leaderboard-note")
            m = re.search(r"from (\d+) counted anonymous votes", note)
            assert m, note
            counted = int(m.group(1))
            assert len(sure) <= counted <= len(battles), (note, [b.names for b in battles])
            rows = leaderboard_rows(page)
            shot("09-leaderboard")
            header = list(COLUMNS)
            by_model = {r[header.index("Model")].rstrip(" *"): r for r in rows}
            low = collections.Counter(n for b in sure for n in b.names)
            high = collections.Counter(n for b in battles for n in b.names)
            assert set(low) <= set(by_model) <= set(high), (rows, low, high)
            for name, row in by_model.items():
                assert low[name] <= int(row[header.index("Battles")]) <= high[name], row
            if counted == len(battles):
                assert {n: int(r[header.index("Battles")]) for n, r in by_model.items()} == dict(
                    high
                ), rows
    finally:
        context.close()
    elapsed = time.monotonic() - started
    (out / "summary.txt").write_text(
        f"battles: {[b.names for b in battles]}\nturn 1 streaming: {streaming}\n"
        f"leaderboard: {note}\nbrowser part took {elapsed:.1f} s\n",
        encoding="utf-8",
    )
