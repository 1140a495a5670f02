"""What the arena's small ASGI middlewares share: types, the app-relative path, cookies and a
plain reply.  (Each middleware is pure ASGI, so it never buffers Gradio's event streams.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "app_path",
    "cookie",
    "header",
    "reply",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def app_path(scope: Scope) -> str:
    """The request path inside the app: without the ``--root-path`` prefix, never empty."""
    root = str(scope.get("root_path", "")).rstrip("/")
    path = str(scope.get("path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def cookie(header: str | None, name: str) -> str | None:
    """One cookie's value from a ``Cookie`` header (the first of that name), if present."""
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def header(scope: Scope, name: bytes) -> str | None:
    """A request header (``name`` in lower case) as text, if present."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def reply(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"text/plain; charset=utf-8",
    *,
    extra: list[tuple[bytes, bytes]] | None = None,
    no_store: bool = True,
) -> None:
    """Send a whole response (status, headers, body) in two ASGI messages."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if no_store:
        headers.append((b"cache-control", b"no-store"))
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})
