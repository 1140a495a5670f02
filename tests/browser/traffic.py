"""Record everything a Playwright page receives: HTTP bodies, SSE messages, websocket frames.

Gradio 6 streams event results over Server-Sent Events (``POST /gradio_api/queue/join``, then
``GET /gradio_api/queue/data?session_hash=...``).  Playwright's ``response.body()`` only
resolves once a response has ended, and the heartbeat stream never ends, so event streams are
read through a CDP session instead: ``Network.streamResourceContent`` turns on delivery of
each received chunk in ``Network.dataReceived`` (plus whatever was buffered before).  Every
other response body is read through Playwright after the fact (:meth:`Traffic.collect`).

Each record gets a sequence number when it arrives, so a test can cut the traffic into
windows (``mark()`` before and after acting on a tab) and into "before/after the vote".
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Response, WebSocket

__all__ = ["Record", "Traffic", "apply_diff", "chat_text", "strings_in"]

EVENT_STREAM = "text/event-stream"


@dataclass
class Record:
    """One thing the browser received.

    Attributes
    ----------
    seq
        Arrival order across all kinds.
    t
        ``time.monotonic()`` when the recorder saw it.
    kind
        ``http`` (a whole response body), ``sse`` (one Server-Sent Events message) or
        ``ws`` (one websocket frame received).
    url
        Where it came from.
    text
        The body / message / frame as text (HTTP bodies are filled in by ``collect``).
    """

    seq: int
    t: float
    kind: str
    url: str
    text: str = ""
    status: int = 0
    content_type: str = ""
    response: Response | None = field(default=None, repr=False)
    body_error: str | None = None

    def json(self) -> Any:
        """The JSON payload of an SSE ``data:`` message (None when it has none)."""
        if self.kind != "sse":
            return None
        data = "\n".join(
            line[5:].lstrip() for line in self.text.splitlines() if line.startswith("data:")
        )
        try:
            return json.loads(data)
        except ValueError:
            return None

    def searchable(self) -> str:
        """The raw text plus every string inside its JSON (escapes undone), for searching."""
        payload = self.json() if self.kind == "sse" else None
        if payload is None and self.kind == "http" and "json" in self.content_type:
            try:
                payload = json.loads(self.text)
            except ValueError:
                payload = None
        if payload is None:
            return self.text
        return self.text + "\n" + "\n".join(strings_in(payload))


def strings_in(value: Any) -> Iterable[str]:
    """Every string (dict keys included) inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


class Traffic:
    """Records what ``page`` receives from now on (attach before ``page.goto``)."""

    def __init__(self, page: Page) -> None:
        self.records: list[Record] = []
        self.stream_errors: list[str] = []
        self.cdp_streams: list[tuple[int, str]] = []  # (seq at start, url) read through CDP
        self._lock = threading.Lock()
        self._buffers: dict[str, str] = {}
        self._early: dict[str, list[bytes]] = {}
        self._urls: dict[str, str] = {}
        page.on("response", self._on_response)
        page.on("websocket", self._on_websocket)
        self._cdp = page.context.new_cdp_session(page)
        self._cdp.on("Network.responseReceived", self._on_cdp_response)
        self._cdp.on("Network.dataReceived", self._on_cdp_data)
        self._cdp.on("Network.loadingFinished", self._on_cdp_finished)
        self._cdp.on("Network.loadingFailed", self._on_cdp_finished)
        self._cdp.send("Network.enable")

    # -- recording ----------------------------------------------------------------------------

    def _add(self, kind: str, url: str, **kw: Any) -> Record:
        with self._lock:
            record = Record(len(self.records), time.monotonic(), kind, url, **kw)
            self.records.append(record)
            return record

    def mark(self) -> int:
        """A boundary: records with ``seq >= mark()`` arrived after this call."""
        with self._lock:
            return len(self.records)

    def _on_response(self, response: Response) -> None:
        content_type = response.headers.get("content-type", "")
        self._add(
            "http",
            response.url,
            status=response.status,
            content_type=content_type,
            response=None if EVENT_STREAM in content_type else response,
        )

    def _on_websocket(self, ws: WebSocket) -> None:
        def frame(payload: str | bytes) -> None:
            text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
            self._add("ws", ws.url, text=text)

        ws.on("framereceived", frame)

    def _on_cdp_response(self, event: dict[str, Any]) -> None:
        response = event["response"]
        if EVENT_STREAM not in str(response.get("mimeType", "")):
            return
        request_id = event["requestId"]
        self._urls[request_id] = response["url"]
        # Chunks whose events are dispatched before the command's reply wait here, so that
        # they come after the data buffered before streaming was switched on.
        self._early[request_id] = []
        try:
            result = self._cdp.send("Network.streamResourceContent", {"requestId": request_id})
        except PlaywrightError as exc:
            del self._early[request_id]
            # A short stream may have ended already: then its whole body is still there.
            try:
                body = self._cdp.send("Network.getResponseBody", {"requestId": request_id})
            except PlaywrightError as exc2:
                self.stream_errors.append(f"{response['url']}: {exc}; then {exc2}")
                return
            text = body.get("body", "")
            raw = base64.b64decode(text) if body.get("base64Encoded") else text.encode()
            self.cdp_streams.append((self.mark(), response["url"]))
            self._buffers[request_id] = ""
            self._feed(request_id, raw)
            self._on_cdp_finished({"requestId": request_id})
            return
        self.cdp_streams.append((self.mark(), response["url"]))
        self._buffers[request_id] = ""
        self._feed(request_id, base64.b64decode(result.get("bufferedData", "")))
        for chunk in self._early.pop(request_id):
            self._feed(request_id, chunk)

    def _on_cdp_data(self, event: dict[str, Any]) -> None:
        request_id = event["requestId"]
        if not event.get("data"):
            return
        if request_id in self._early:
            self._early[request_id].append(base64.b64decode(event["data"]))
        elif request_id in self._buffers:
            self._feed(request_id, base64.b64decode(event["data"]))

    def _on_cdp_finished(self, event: dict[str, Any]) -> None:
        request_id = event["requestId"]
        rest = self._buffers.pop(request_id, "")
        if rest.strip():
            self._add("sse", self._urls.get(request_id, "?"), text=rest.strip())

    def _feed(self, request_id: str, chunk: bytes) -> None:
        buffer = self._buffers[request_id] + chunk.decode("utf-8", "replace")
        buffer = buffer.replace("\r\n", "\n")
        *messages, rest = buffer.split("\n\n")
        self._buffers[request_id] = rest
        for message in messages:
            if message.strip():
                self._add("sse", self._urls[request_id], text=message.strip())

    # -- reading ------------------------------------------------------------------------------

    def collect(self) -> None:
        """Read the bodies of the finished non-streaming responses recorded so far."""
        for record in list(self.records):
            response = record.response
            if response is None:
                continue
            record.response = None
            if 300 <= record.status < 400 or record.status == 204:
                continue
            try:
                record.text = response.body().decode("utf-8", "replace")
            except PlaywrightError as exc:
                record.body_error = str(exc)

    def wait_for(
        self, page: Page, predicate: Callable[[Record], bool], what: str, timeout_s: float = 60
    ) -> Record:
        """Pump the page's events until a record matching ``predicate`` has arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            for record in self.window(0):
                if predicate(record):
                    return record
            if time.monotonic() > deadline:
                raise AssertionError(f"the browser received no {what} within {timeout_s:g} s")
            page.wait_for_timeout(100)

    def wait_streams_read(self, page: Page, timeout_s: float = 10) -> tuple[int, int]:
        """Pump the page's events until every event stream seen has been read through CDP.

        Playwright's ``response`` event and CDP's ``Network.responseReceived`` arrive on
        separate channels, so near a ``mark()`` one may land on either side of it: compare
        whole-recording counts, not windows.  Returns ``(read, seen)``; ``read < seen`` only
        when a stream was seen but never read within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                seen = sum(
                    1 for r in self.records if r.kind == "http" and EVENT_STREAM in r.content_type
                )
                read = len(self.cdp_streams)
            if read >= seen or time.monotonic() > deadline:
                return read, seen
            page.wait_for_timeout(100)

    def window(self, start: int, end: int | None = None) -> list[Record]:
        """Records with ``start <= seq < end``."""
        with self._lock:
            return [r for r in self.records[start:end]]

    def dump(self, records: Iterable[Record]) -> str:
        """JSON lines of the records (an artifact for humans)."""
        return "\n".join(
            json.dumps(
                {
                    "seq": r.seq,
                    "t": round(r.t, 3),
                    "kind": r.kind,
                    "url": r.url,
                    "status": r.status,
                    "text": r.text[:20000],
                    "body_error": r.body_error,
                },
                ensure_ascii=False,
            )
            for r in records
        )


# -- Gradio payloads -------------------------------------------------------------------------


def apply_diff(value: Any, diff: list[list[Any]]) -> Any:
    """Apply one of Gradio's output diffs (``gradio.utils.diff``) to a copy of ``value``."""
    value = copy.deepcopy(value)
    for op, path, *rest in diff:
        arg = rest[0] if rest else None
        if not path:
            value = value + arg if op == "append" else arg
            continue
        target = value
        for key in path[:-1]:
            target = target[key]
        last = path[-1]
        if op == "replace":
            target[last] = arg
        elif op == "append":
            target[last] = target[last] + arg
        elif op == "add":
            if isinstance(target, list):
                target.insert(last, arg)
            else:
                target[last] = arg
        elif op == "delete":
            del target[last]
        else:
            raise ValueError(f"unknown diff operation {op!r}")
    return value


def chat_text(messages: Any, role: str = "assistant") -> str:
    """Text of the last ``role`` message of a Chatbot value (``""`` when there is none)."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == role:
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(
                    str(part.get("text", "")) for part in content if isinstance(part, dict)
                )
            return ""
    return ""
