"""The Leaderboard tab: a cached table, its method note, the CI plot and win-rate heatmap."""

from __future__ import annotations

from typing import Any

import gradio as gr

from arena.standings import COLUMNS, Standings

__all__ = ["build_leaderboard_tab"]


def build_leaderboard_tab(standings: Standings) -> tuple[Any, list[Any]]:
    """Build the tab inside the current ``gr.Tab``; return (load function, its outputs)."""
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

    def load(show: bool = True) -> list[Any]:
        # wait=True: a refresh that is due finishes first; one that is not due costs nothing.
        snap = standings.get(wait=True)
        rows = snap.shown_rows(include_deprecated=show)
        return [
            snap.note,
            gr.Dataframe(value=rows or None, headers=list(COLUMNS)),
            snap.ci_figure,
            snap.heatmap_figure,
        ]

    outputs = [note, table, ci_plot, heatmap]
    refresh.click(load, inputs=[show_deprecated], outputs=outputs, api_name="leaderboard")
    show_deprecated.change(
        load, inputs=[show_deprecated], outputs=outputs, api_visibility="private"
    )
    return load, outputs
