"""Operator endpoints beside the Gradio app: ``/healthz``, ``/readyz`` and ``/metrics``.

A pure ASGI middleware (like :mod:`arena.ui.guard`), so the routes work with Gradio's own
``launch()`` and under a ``--root-path``:

* ``GET /healthz`` -- 200 ``ok`` while the process serves HTTP (liveness).
* ``GET /readyz`` -- 200 when the database answers and at least two roster models are
  healthy (no recent failure without a success since); 503 with the reason otherwise.  A
  balancer sends new sessions only to ready replicas.
* ``GET /metrics`` -- the Prometheus exposition of :class:`arena.metrics.ArenaMetrics`.
  Per-model counters would let a voter see which models the battle they just started uses
  (read, start a battle, read again), so the route is not public: it answers a request
  with ``Authorization: Bearer $ARENA_METRICS_TOKEN`` when a token is set, and otherwise
  only a direct loopback request (no ``X-Forwarded-For``: a local reverse proxy forwards the
  public's requests from loopback too).  Everyone else gets 404.
"""

from __future__ import annotations

import asyncio
import hmac

from sqlalchemy.engine import Engine

from arena import store
from arena.metrics import ArenaMetrics
from arena.ui.asgi import ASGIApp, Receive, Scope, Send, app_path, reply

__all__ = ["OpsMiddleware", "ready"]


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_PROMETHEUS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_DB_TIMEOUT_S = 3.0


async def ready(engine: Engine, metrics: ArenaMetrics, models: tuple[str, ...]) -> tuple[bool, str]:
    """Whether this replica should get new sessions, and why (not).

    Returns
    -------
    tuple
        ``(ready, reason)``.
    """
    try:
        await asyncio.wait_for(asyncio.to_thread(store.ping, engine=engine), _DB_TIMEOUT_S)
    except Exception as exc:  # any failure to reach the database means not ready
        return False, f"database unreachable: {type(exc).__name__}"
    healthy = metrics.healthy_models(models)
    if len(healthy) < 2:
        return False, f"{len(healthy)} healthy model(s) of {len(models)}; a battle needs 2"
    return True, f"ready: database up, {len(healthy)} of {len(models)} models healthy"


class OpsMiddleware:
    """Serve the operator endpoints; pass everything else to the app.

    Parameters
    ----------
    app
        The ASGI app to wrap.
    engine, metrics, models
        What readiness and the metrics read.
    metrics_token
        Bearer token for ``/metrics`` (empty: loopback-only, see the module docstring).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        engine: Engine,
        metrics: ArenaMetrics,
        models: tuple[str, ...],
        metrics_token: str = "",
    ) -> None:
        self.app = app
        self.engine = engine
        self.metrics = metrics
        self.models = models
        self.token = metrics_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path = app_path(scope).rstrip("/") or "/"
        if path == "/healthz":
            await reply(send, 200, b"ok\n")
        elif path == "/readyz":
            ok, reason = await ready(self.engine, self.metrics, self.models)
            await reply(send, 200 if ok else 503, reason.encode() + b"\n")
        elif path == "/metrics":
            if self._may_read_metrics(scope):
                await reply(send, 200, self.metrics.render(), _PROMETHEUS_TYPE)
            else:
                await reply(send, 404, b"Not Found\n")
        else:
            await self.app(scope, receive, send)

    def _may_read_metrics(self, scope: Scope) -> bool:
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.token:
            given = headers.get(b"authorization", b"").decode("latin-1")
            return hmac.compare_digest(given, f"Bearer {self.token}")
        client = scope.get("client") or ("", 0)
        return client[0] in _LOOPBACK and b"x-forwarded-for" not in headers
