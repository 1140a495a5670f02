"""The Insights tab: capability density, open-weights lag, frontier and price, with intervals."""

from __future__ import annotations

from typing import Any

import gradio as gr

from arena.insight_board import InsightBoard

__all__ = ["build_insights_tab"]


def build_insights_tab(board: InsightBoard) -> tuple[Any, list[Any]]:
    """Build the tab inside the current ``gr.Tab``; return (load function, its outputs)."""
    with gr.Row():
        density = gr.Plot(label="Rating vs parameters (Pareto front)")
        gap = gr.Plot(label="Open vs proprietary frontiers")
    with gr.Row():
        history = gr.Plot(label="Ratings over time (monthly)")
        price = gr.Plot(label="Rating vs price")
    text = gr.Markdown("Loading…", elem_id="insights-text")
    refresh = gr.Button("Refresh", elem_id="insights-refresh")

    def load() -> list[Any]:
        snap = board.get()
        f = snap.figures
        return [
            f.get("capability_density"),
            f.get("open_gap"),
            f.get("history"),
            f.get("price"),
            snap.markdown,
        ]

    outputs = [density, gap, history, price, text]
    refresh.click(load, outputs=outputs, api_name="insights")
    return load, outputs
