"""The terms-of-use gate: shown before the first prompt when the operator set terms."""

from __future__ import annotations

from typing import Any

import gradio as gr

from arena.battles import Arena
from arena.ui.common import owner_of

__all__ = ["build_consent_gate"]


def build_consent_gate(arena: Arena) -> None:
    """Build the gate when ``arena.terms`` is set.

    It shows the operator's Markdown and an accept button.  Accepting records the version
    for this browser session in the arena (server side: a client cannot claim consent it
    never gave) and hides the gate; until then the arena refuses the session's prompts and
    votes.  A new page load shows the gate again, and so do changed terms.
    """
    terms = arena.terms
    if terms is None:
        return
    with gr.Group(elem_id="consent-gate") as gate:
        gr.Markdown(terms.text, elem_id="consent-terms")
        gr.Markdown(
            "You must accept these terms before you send a prompt or vote.",
            elem_id="consent-note",
        )
        accept = gr.Button("I accept", variant="primary", elem_id="consent-accept")

    def on_accept(request: gr.Request) -> Any:
        arena.accept_terms(owner=owner_of(request), version=terms.version)
        return gr.update(visible=False)

    accept.click(on_accept, outputs=[gate], api_name="accept_terms")
