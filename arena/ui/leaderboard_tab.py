"""The Leaderboard tab: a category selector and a style-control toggle over a cached table
(LMArena's rank, P(#1)), its method note, the CI plot and the win-rate heatmap."""

from __future__ import annotations

from typing import Any

import gradio as gr

from arena.standings import CATEGORY_CHOICES, COLUMNS, Standings, View

__all__ = ["PUSH_S", "build_leaderboard_tab"]

#: Seconds between two pushes of the overall table to an open Leaderboard tab (one small
#: event per open page; the figures follow on Refresh and on load).
PUSH_S = 5.0


def build_leaderboard_tab(standings: Standings) -> tuple[Any, list[Any]]:
    """Build the tab inside the current ``gr.Tab``; return (load function, its outputs)."""
    with gr.Row():
        category = gr.Dropdown(
            choices=list(CATEGORY_CHOICES),
            value="Overall",
            label="Category",
            elem_id="leaderboard-category",
        )
        style = gr.Checkbox(
            value=False,
            label="Style control (discount answer length and markdown)",
            elem_id="leaderboard-style",
        )
    note = gr.Markdown("Loading…", elem_id="leaderboard-note")
    table = gr.Dataframe(
        headers=list(COLUMNS), interactive=False, wrap=True, elem_id="leaderboard-table"
    )
    with gr.Row():
        ci_plot = gr.Plot(label="Ratings with 95% confidence intervals")
        heatmap = gr.Plot(label="Observed win rate (row beats column)")
    with gr.Row():
        show_deprecated = gr.Checkbox(
            value=True, label="Show deprecated models", elem_id="leaderboard-deprecated"
        )
        refresh = gr.Button("Refresh", elem_id="leaderboard-refresh")

    def load(
        show: bool = True, category_label: str = "Overall", style_control: bool = False
    ) -> list[Any]:
        # An unknown label (a hand-made API call) falls back to the overall board.
        view = View(CATEGORY_CHOICES.get(category_label), bool(style_control))
        # wait=True: a refresh that is due finishes first; one that is not due costs nothing.
        snap = standings.get(view, wait=True)
        rows = snap.shown_rows(include_deprecated=show)
        return [
            snap.note,
            gr.Dataframe(value=rows or None, headers=list(COLUMNS)),
            snap.ci_figure,
            snap.heatmap_figure,
        ]

    outputs = [note, table, ci_plot, heatmap]
    inputs = [show_deprecated, category, style]
    refresh.click(load, inputs=inputs, outputs=outputs, api_name="leaderboard")
    for control in (show_deprecated, category, style):
        control.change(load, inputs=inputs, outputs=outputs, api_visibility="private")

    def push(
        show: bool = True, category_label: str = "Overall", style_control: bool = False
    ) -> list[Any]:
        view = View(CATEGORY_CHOICES.get(category_label), bool(style_control))
        if view != View():  # the other views are recomputed from the whole table: on request
            return [gr.skip(), gr.skip()]
        snap = standings.get(view)  # never waits: the update runs in the background
        rows = snap.shown_rows(include_deprecated=show)
        return [snap.note, gr.Dataframe(value=rows or None, headers=list(COLUMNS))]

    gr.Timer(max(PUSH_S, standings.refresh_s)).tick(
        push,
        inputs=inputs,
        outputs=[note, table],
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
    return load, outputs
