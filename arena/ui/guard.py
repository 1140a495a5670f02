"""HTTP hardening around the Gradio app: no uploads, no remote images, fewer leaks.

A pure ASGI middleware, installed with ``launch(app_kwargs={"middleware": [...]})``:

* **Uploads are closed.**  The arena has no file inputs, yet Gradio's ``/upload`` route took a
  30 MB file from any anonymous client and served it back (issue 11).  Every request to a
  path ending in ``/upload`` is refused with 403 before Gradio reads a byte of its body;
  ``max_file_size=0`` and ``delete_cache`` at launch are the second and third locks.
* **No remote images.**  A model's answer (or a name imported into the leaderboard) with a
  Markdown image or an ``<img>`` tag would make every viewer's browser fetch an outside
  address: a tracking channel.  ``Content-Security-Policy: img-src 'self' data: blob:`` makes
  the browser refuse such requests whatever markup produced them.
* ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` on every response.
"""

from __future__ import annotations

from arena.ui.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "GuardMiddleware"]

#: Images and media only from the arena itself (or inline data): no third-party fetches.
CONTENT_SECURITY_POLICY = (
    "img-src 'self' data: blob:; media-src 'self' data: blob:; object-src 'none'; "
    "frame-ancestors 'self'; base-uri 'self'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_REFUSAL = b"This arena accepts no file uploads."


class GuardMiddleware:
    """Refuse uploads and add the security headers (see the module docstring).

    Parameters
    ----------
    app
        The ASGI app to wrap.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", "")).rstrip("/")
        if path.endswith("/upload") or path == "/upload":
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(_REFUSAL)).encode()),
                        *_HEADERS,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _REFUSAL})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
