"""Sign-in on the page (ARENA_AUTH_MODE optional or required): who is signed in, the sign-in
and sign-out links, and the "My votes" tab -- a leaderboard from one's own votes only."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import numpy as np

from arena import store
from arena.auth import AuthMode
from arena.battles import Arena
from arena.lifecycle import BattleRefused
from arena.ui.common import person_of
from ratings import RatingOptions, compute_leaderboard
from ratings.data import Battles

__all__ = ["MY_VOTES_COLUMNS", "account_line", "build_account_bar", "build_my_votes_tab"]

MY_VOTES_COLUMNS = ("Model", "Your rating", "Battles", "Wins", "Ties", "Losses")


def account_line(arena: Arena, request: gr.Request | None) -> str:
    """The line above the tabs (HTML: the links open in this tab, not a new one): signed in
    as whom, or how to sign in."""
    if arena.auth is None:
        return ""
    person = person_of(arena, request)
    if person is not None:
        return (
            f"Signed in as <strong>{html.escape(person.label)}</strong> · "
            "<a href='auth/logout'>Sign out</a>"
        )
    if arena.auth.mode is AuthMode.REQUIRED:
        return (
            "This arena is for signed-in members: <strong><a href='auth/login'>Sign in</a>"
            "</strong> to prompt and vote."
        )
    return "<a href='auth/login'>Sign in</a> to vote as yourself and see your own leaderboard."


def build_account_bar(arena: Arena) -> tuple[gr.HTML, Any]:
    """The account line; returns it and its loader (for ``demo.load``)."""
    line = gr.HTML("", elem_id="account", visible=arena.auth is not None)

    def load(request: gr.Request) -> str:
        return account_line(arena, request)

    return line, load


def my_votes(arena: Arena, request: gr.Request | None) -> tuple[str, list[list[Any]]]:
    """The note and rows of the person's own leaderboard."""
    person = person_of(arena, request)
    if person is None:
        return "Sign in to see the leaderboard of your own votes.", []
    votes = store.votes_of_judge(engine=arena.engine, judge=person.key)
    if not votes:
        return "You have not voted yet. Your leaderboard appears after your first vote.", []
    a, b, w = (list(col) for col in zip(*votes, strict=True))
    battles = Battles.from_columns(a, b, w, source="your votes")
    note = f"From your {len(votes)} vote{'s' if len(votes) != 1 else ''} only."
    if battles.n_models < 2:
        return note, []
    board = compute_leaderboard(battles, RatingOptions(ci="none"))
    rows = [
        [r.model, round(float(r.rating)), r.battles, r.wins, r.ties, r.losses]
        for r in sorted(board.rows, key=lambda r: -r.rating)
        if np.isfinite(r.rating)
    ]
    return note, rows


def build_my_votes_tab(arena: Arena) -> tuple[Any, list[Any]]:
    """The "My votes" tab's body; returns its loader and outputs (for ``tab.select``)."""
    note = gr.Markdown("Sign in to see the leaderboard of your own votes.", elem_id="my-votes-note")
    table = gr.Dataframe(
        headers=list(MY_VOTES_COLUMNS), interactive=False, elem_id="my-votes-table"
    )
    refresh = gr.Button("Refresh", elem_id="my-votes-refresh")

    async def load(request: gr.Request) -> list[Any]:
        try:
            text, rows = await arena.db.run(lambda: my_votes(arena, request))
        except BattleRefused as exc:  # the database is down
            text, rows = f"⚠️ {exc}", []
        return [text, gr.Dataframe(value=rows or None, headers=list(MY_VOTES_COLUMNS))]

    refresh.click(load, outputs=[note, table], api_name="my_votes")
    return load, [note, table]
