"""Answers cannot make a voter's browser fetch an outside address (issue 11, part 4).

A model server answers every prompt with a Markdown image, an ``<img>`` tag and a
reference-style image, all pointing at a "tracker": a real HTTP server on another loopback
port that counts the requests it gets.  The answers are shown in real Chromium; the tracker
must see nothing (the app's Content-Security-Policy refuses remote images, whatever markup
asks for them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import start_app
from tests.integration.harness import stub_server, write_roster

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class _Tracker(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "image/gif")
        self.end_headers()
        self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tracker() -> Iterator[tuple[str, list[str]]]:
    hits: ClassVar[list[str]] = []
    handler = type("Tracker", (_Tracker,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()


def test_images_in_answers_cause_no_outside_request(
    tmp_path: Path, chromium: Browser, tracker: tuple[str, list[str]]
) -> None:
    base, hits = tracker
    reply = (
        f"Here: ![pixel]({base}/md.gif) and <img src='{base}/html.gif'> and ![ref][r]"
        f"\n\n[r]: {base}/ref.gif"
    )
    with stub_server(tmp_path, tokens=1, delay=0.01, reply=reply) as stub:
        roster = write_roster(
            tmp_path / "roster.toml", [("img-one", stub.base_url), ("img-two", stub.base_url)]
        )
        (tmp_path / "app").mkdir()
        with start_app(tmp_path / "app", env={"ARENA_ROSTER": str(roster)}) as app:
            page = chromium.new_page()
            try:
                page.goto(app.url + "/", wait_until="load")
                page.wait_for_selector("#battle-prompt textarea", state="visible")
                page.fill("#battle-prompt textarea", "Show me a picture.")
                page.click("#battle-send")
                page.wait_for_function(
                    """() => ['a', 'b'].every((s) => (document.querySelector(
                        `#battle-chat-${s} [data-testid='bot']`)?.innerText || '')
                        .includes('Here'))""",
                    timeout=60_000,
                )
                page.wait_for_timeout(1500)  # time for any image request to go out
                # The answer was rendered (the check is not vacuous) ...
                assert "Here" in page.inner_text("#battle-chat-a")
                # ... yet the tracker saw nothing.
                assert hits == [], f"the browser fetched {hits}"
            finally:
                page.close()
