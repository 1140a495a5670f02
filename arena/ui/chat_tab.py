"""The Battle tab (anonymous) and the Side-by-side tab (named): one layout, two modes.

Handlers only translate between Gradio values and :mod:`arena.battles`.  What they send to
the browser for an anonymous battle is chat text, an opaque battle id kept in server-side
``gr.State``, and button states; the model names leave the server only in the vote
handler's reply, after the vote is committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import gradio as gr

from arena.battles import Arena, BattleRefused, TurnUpdate
from arena.lifecycle import Refusal, refuse
from arena.markup import escape_markdown
from arena.ui.common import address_key_of, owner_of, render_side, user_key_of
from arena.ui.pow import pass_from_cookies

__all__ = ["build_chat_tab"]

_STOP_WAIT_S = 5.0  # a stopped stream ends within ~1 s; this only bounds a stuck one

_VOTES = (
    ("a", "👈 A is better"),
    ("b", "👉 B is better"),
    ("tie", "🤝 Tie"),
    ("bothbad", "👎 Both are bad"),
)


def _status_line(update: TurnUpdate) -> str:
    if update.message:
        return f"⚠️ {update.message}"
    if update.status == "ready":
        return "Both answers are in. Vote, or ask a follow-up question to both models."
    return "Generating…"


def _heading(side: str, name: str | None = None) -> str:
    label = f"Model {side.upper()}"
    return f"**{label}: {escape_markdown(name)}**" if name else f"**{label}**"


def build_chat_tab(arena: Arena, mode: str) -> None:
    """Build one chat tab's components and events inside the current ``gr.Tab``."""
    named = mode == "named"
    prefix = "named" if named else "battle"
    names = list(arena.roster.names)
    picks: list[gr.Dropdown | gr.State] = []
    if named:
        with gr.Row():
            picks.append(
                gr.Dropdown(
                    names,
                    value=names[0],
                    label="Model A",
                    interactive=True,
                    elem_id=f"{prefix}-pick-a",
                )
            )
            picks.append(
                gr.Dropdown(
                    names,
                    value=names[1 % len(names)],
                    label="Model B",
                    interactive=True,
                    elem_id=f"{prefix}-pick-b",
                )
            )
    else:
        gr.Markdown(
            "Two anonymous models answer your prompt side by side. Vote for the better "
            "answer; their names are revealed after your vote."
        )
    battle_id = gr.State(None)
    # Each side's name is a Markdown heading, not the Chatbot's label: updating a property of
    # a Chatbot makes Gradio rebuild it and its JSON schema (~5 ms of the event loop each),
    # while a Markdown value is just a value.
    with gr.Row():
        with gr.Column():
            name_a = gr.Markdown(_heading("a"), elem_id=f"{prefix}-name-a")
            chat_a = gr.Chatbot(
                label="Model A", show_label=False, height=420, elem_id=f"{prefix}-chat-a"
            )
        with gr.Column():
            name_b = gr.Markdown(_heading("b"), elem_id=f"{prefix}-name-b")
            chat_b = gr.Chatbot(
                label="Model B", show_label=False, height=420, elem_id=f"{prefix}-chat-b"
            )
    status = gr.Markdown("", elem_id=f"{prefix}-status")
    with gr.Row():
        vote_buttons = [
            gr.Button(label, interactive=False, elem_id=f"{prefix}-vote-{key}")
            for key, label in _VOTES
        ]
    with gr.Row():
        prompt = gr.Textbox(
            placeholder="Type a prompt and press Enter",
            show_label=False,
            scale=8,
            max_lines=8,
            elem_id=f"{prefix}-prompt",
        )
        send = gr.Button("Send", variant="primary", scale=1, elem_id=f"{prefix}-send")
    # After a vote: optional reasons from the operator's list (ARENA_VOTE_REASONS).
    voted_id = gr.State(None)
    with gr.Row(visible=False, elem_id=f"{prefix}-reasons-row") as reasons_row:
        reasons = gr.CheckboxGroup(
            list(arena.reasons),
            label="Why? (optional)",
            scale=8,
            elem_id=f"{prefix}-reasons",
        )
        send_reasons = gr.Button("Send reasons", scale=1, elem_id=f"{prefix}-reasons-send")
    with gr.Row():
        new_round = gr.Button("🎲 New round", elem_id=f"{prefix}-new")
        regenerate = gr.Button("🔄 Regenerate", elem_id=f"{prefix}-regenerate")
        stop = gr.Button("⏹ Stop", elem_id=f"{prefix}-stop")

    def votes(active: bool) -> list[Any]:
        return [gr.update(interactive=active) for _ in vote_buttons]

    # The streaming events do not update the vote buttons: Gradio builds a new component
    # (and its JSON schema) for every property update of every frame -- even gr.skip() --
    # which cost ~15% of the app's CPU under load.  A stream keeps "votable" in a
    # server-side State; the buttons are switched off before it starts and set from that
    # State once it ends (see `streamed` below).
    votable = gr.State(False)

    # The streams skip Gradio's postprocess (see `streamed`): it would move every output of
    # every frame through a worker thread (four hops a frame, ~0.05 s each under load, and
    # 50 streams saturate its 40 threads).  The chats are put into the Chatbot's wire format
    # here instead, on the event loop; every other output is a plain string, bool or State.
    def shown(chat: gr.Chatbot, history: list[dict[str, Any]] | None) -> Any:
        return chat.postprocess(cast(Any, history or [])).model_dump()

    def outputs_for(
        update: TurnUpdate, prev_a: list[dict[str, Any]], prev_b: list[dict[str, Any]]
    ) -> list[Any]:
        ended = update.status in ("error", "abandoned")
        return [
            shown(chat_a, render_side(prev_a, update, "a")),
            shown(chat_b, render_side(prev_b, update, "b")),
            None if ended else update.battle_id,
            _status_line(update),
            update.votable,
        ]

    stream_outputs = [chat_a, chat_b, battle_id, status, votable]
    once_outputs = [name_a, name_b, battle_id, status, *vote_buttons]

    async def on_send(
        text: str,
        bid: str | None,
        hist_a: list[dict[str, Any]] | None,
        hist_b: list[dict[str, Any]] | None,
        pick_a: str | None,
        pick_b: str | None,
        request: gr.Request,
    ) -> AsyncIterator[list[Any]]:
        prev_a, prev_b = (hist_a or [], hist_b or []) if bid else ([], [])
        models = (pick_a or "", pick_b or "") if named and not bid else None
        try:
            async for update in arena.turn(
                owner=owner_of(request),
                user_key=user_key_of(arena, request),
                address_key=address_key_of(arena, request),
                prompt=text or "",
                battle_id=bid,
                mode=mode,
                models=models,
            ):
                if update.withdrawn:
                    # New round took the panels; even this stream's final message (which
                    # Gradio re-sends in full) must leave them alone.
                    yield [gr.skip()] * (len(stream_outputs) + 1)
                    continue
                yield [*outputs_for(update, prev_a, prev_b), ""]
        except BattleRefused as exc:
            # The prompt goes back into its box, minus what cannot be sent as UTF-8 (a lone
            # surrogate would break Gradio's JSON encoder and with it the whole event stream).
            keep = text.encode("utf-8", "replace").decode("utf-8") if isinstance(text, str) else ""
            yield [shown(chat_a, hist_a), shown(chat_b, hist_b), bid, f"⚠️ {exc}", False, keep]

    async def on_regenerate(
        bid: str | None,
        hist_a: list[dict[str, Any]] | None,
        hist_b: list[dict[str, Any]] | None,
        request: gr.Request,
    ) -> AsyncIterator[list[Any]]:
        prev_a, prev_b = (hist_a or [])[:-2], (hist_b or [])[:-2]
        try:
            if not bid:
                raise refuse(Refusal.NOTHING_TO_REGENERATE)
            async for update in arena.regenerate(
                owner=owner_of(request), user_key=user_key_of(arena, request), battle_id=bid
            ):
                yield (
                    [gr.skip()] * len(stream_outputs)
                    if update.withdrawn
                    else outputs_for(update, prev_a, prev_b)
                )
        except BattleRefused as exc:
            yield [shown(chat_a, hist_a), shown(chat_b, hist_b), bid, f"⚠️ {exc}", False]

    def make_vote(choice: str) -> Any:
        async def on_vote(bid: str | None, request: gr.Request) -> list[Any]:
            try:
                if not bid:
                    raise BattleRefused(Refusal.NOT_FOUND, "There is no battle to vote on.")
                reveal = await arena.vote(
                    owner=owner_of(request),
                    user_key=user_key_of(arena, request),
                    battle_id=bid,
                    winner=choice,
                    pow_pass=pass_from_cookies(request.headers.get("cookie")),
                )
            except BattleRefused as exc:
                return [gr.skip(), gr.skip(), bid, f"⚠️ {exc}", *votes(False), gr.skip(), None]
            return [
                _heading("a", reveal.model_a),
                _heading("b", reveal.model_b),
                None,
                f"✅ Vote recorded. **Model A: {escape_markdown(reveal.model_a)}** · "
                f"**Model B: {escape_markdown(reveal.model_b)}**. Type a new prompt to start "
                "another round.",
                *votes(False),
                gr.update(visible=bool(arena.reasons)),
                reveal.battle_id,
            ]

        return on_vote

    async def on_send_reasons(
        bid: str | None, picked: list[str] | None, request: gr.Request
    ) -> list[Any]:
        if not bid or not picked:
            return [gr.skip(), gr.skip()]
        try:
            stored = await arena.add_reasons(
                owner=owner_of(request),
                user_key=user_key_of(arena, request),
                battle_id=bid,
                reasons=list(picked),
            )
        except BattleRefused as exc:
            return [f"⚠️ {exc}", gr.skip()]
        listed = ", ".join(escape_markdown(r) for r in stored)
        return [f"🙏 Thanks: your reasons were recorded ({listed}).", gr.update(visible=False)]

    async def on_stop(bid: str | None, request: gr.Request) -> Any:
        if not bid:
            return ""
        try:
            # Returns once the stream has shown its own last status ("Stopped"), which this
            # reply then leaves alone.
            await arena.stop(
                owner=owner_of(request),
                user_key=user_key_of(arena, request),
                battle_id=bid,
                wait_s=_STOP_WAIT_S,
            )
        except BattleRefused as exc:
            return f"⚠️ {exc}"
        return gr.skip()

    async def on_new_round(bid: str | None, request: gr.Request) -> list[Any]:
        if bid:
            # Stop a stream still running and wait for its last update, so that it cannot
            # land in the fresh round's panels after they are cleared.  (Already voted or
            # gone: nothing to abandon.)
            with contextlib.suppress(BattleRefused):
                await arena.stop(
                    owner=owner_of(request),
                    user_key=user_key_of(arena, request),
                    battle_id=bid,
                    wait_s=_STOP_WAIT_S,
                    withdraw=True,
                )
        return [_heading("a"), _heading("b"), None, "", *votes(False), [], [], ""]

    if not named:
        # Same handler, no model choice: hidden constants stand in for the two dropdowns.
        picks = [gr.State(None), gr.State(None)]
    send_inputs = [prompt, battle_id, chat_a, chat_b, *picks]

    def streamed(trigger: Any, fn: Any, inputs: list[Any], outputs: list[Any], **kw: Any) -> Any:
        # Votes off and names hidden at once (outside the queue: a battle being answered is
        # never voted yet), then the stream, then the votes as the stream left them.
        stream = trigger(
            lambda: [*votes(False), _heading("a"), _heading("b")],
            outputs=[*vote_buttons, name_a, name_b],
            queue=False,
            api_visibility="private",
        ).then(fn, inputs=inputs, outputs=outputs, postprocess=False, **kw)
        stream.then(
            votes, inputs=[votable], outputs=vote_buttons, queue=False, api_visibility="private"
        )
        return stream

    streams = [
        streamed(
            send.click, on_send, send_inputs, [*stream_outputs, prompt], api_name=f"{prefix}_send"
        ),
        streamed(
            prompt.submit, on_send, send_inputs, [*stream_outputs, prompt], api_visibility="private"
        ),
    ]
    streams.append(
        streamed(
            regenerate.click,
            on_regenerate,
            [battle_id, chat_a, chat_b],
            stream_outputs,
            api_name=f"{prefix}_regenerate",
        )
    )
    for (key, _), button in zip(_VOTES, vote_buttons, strict=True):
        button.click(
            make_vote(key),
            inputs=[battle_id],
            outputs=[*once_outputs, reasons_row, voted_id],
            api_name=f"{prefix}_vote_{key}",
            # Its values are plain Markdown strings and updates, which Gradio's postprocess
            # would only strip -- in one worker-thread hop per output, ~0.2 s of the vote's
            # acknowledgement under load (profiled with GRADIO_PROFILING=1; BENCHMARKS.md).
            postprocess=False,
            # The spinner goes on the status line only: over the headings it would sit on the
            # revealed names ("processing | 0.1s") until the page catches up.
            show_progress_on=[status],
            # Outside the queue: one HTTP POST answered directly, instead of a queue join, a
            # wait behind the streams for a worker, and a reply over the event stream.  A vote
            # is a short database write (the vote gate serialises a battle's votes itself).
            queue=False,
        )
    send_reasons.click(
        on_send_reasons,
        inputs=[voted_id, reasons],
        outputs=[status, reasons_row],
        api_name=f"{prefix}_reasons",
    )
    # A new prompt or round puts the reasons away (their own events: the send and new-round
    # events keep the outputs clients already rely on).
    for trigger in (send.click, prompt.submit, new_round.click):
        trigger(
            lambda: [gr.update(visible=False), []],
            outputs=[reasons_row, reasons],
            queue=False,
            api_visibility="private",
        )
    stop.click(on_stop, inputs=[battle_id], outputs=[status], api_name=f"{prefix}_stop")
    new_round.click(
        on_new_round,
        inputs=[battle_id],
        outputs=[*once_outputs, chat_a, chat_b, prompt],
        api_name=f"{prefix}_new_round",
        # A stream whose battle id has not reached the browser yet cannot be stopped by id:
        # the page drops it instead (its later messages are ignored; the server abandons it).
        cancels=streams,
    )
