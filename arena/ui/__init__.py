"""Gradio Blocks only: the Battle, Side-by-side, Leaderboard and Insights tabs.

No rule of the arena lives here; see :mod:`arena.battles`.
"""

from __future__ import annotations

import gradio as gr

from arena.battles import Arena
from arena.insight_board import InsightBoard
from arena.standings import Standings
from arena.ui.account import build_account_bar, build_my_votes_tab
from arena.ui.chat_tab import build_chat_tab
from arena.ui.consent import build_consent_gate
from arena.ui.insights_tab import build_insights_tab
from arena.ui.leaderboard_tab import build_leaderboard_tab

__all__ = ["build_app"]


def build_app(arena: Arena, standings: Standings) -> gr.Blocks:
    """Build the arena's Gradio app (call ``.queue(...)`` and ``.launch(...)`` on it).

    Parameters
    ----------
    arena
        The running arena.
    standings
        The leaderboard cache.

    Returns
    -------
    gradio.Blocks
    """
    # delete_cache: Gradio's temporary files (there should be none: uploads are refused) are
    # swept every hour and removed on restart.
    with gr.Blocks(title="Arena", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# ⚔️ Arena\nChat with two models side by side and vote for the better one.")
        account, load_account = build_account_bar(arena)
        build_consent_gate(arena)
        with gr.Tabs():
            with gr.Tab("⚔️ Battle", id="battle"):
                build_chat_tab(arena, "anony")
            with gr.Tab("👀 Side-by-side", id="named"):
                build_chat_tab(arena, "named")
            with gr.Tab("🏆 Leaderboard", id="leaderboard") as board_tab:
                load, outputs = build_leaderboard_tab(standings)
            with gr.Tab("📈 Insights", id="insights") as insights_tab:
                board = InsightBoard(
                    engine=arena.engine, roster=arena.roster, refresh_s=standings.refresh_s
                )
                load_insights, insights_outputs = build_insights_tab(board)
            # A leaderboard from the signed-in person's own votes (sign-in arenas only).
            with gr.Tab("🙋 My votes", id="my-votes", visible=arena.auth is not None) as mine:
                load_mine, mine_outputs = build_my_votes_tab(arena)
        mine.select(load_mine, outputs=mine_outputs, api_visibility="private")
        demo.load(load_account, outputs=account, api_visibility="private", show_progress="hidden")
        board_tab.select(load, outputs=outputs, api_visibility="private")
        insights_tab.select(load_insights, outputs=insights_outputs, api_visibility="private")
        demo.load(load, outputs=outputs, api_visibility="private")
    return demo
