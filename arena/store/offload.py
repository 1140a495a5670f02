"""Database calls from async code: each runs in a worker thread, and an outage becomes a
retryable refusal instead of an exception that ends a stream.

The battle flow is async (it streams two models at once); SQLAlchemy sessions are not, and a
commit that waits for an fsync or a lock must not stall the event loop that serves every
other voter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from arena.lifecycle import Refusal, refuse
from arena.store.ops import new_session

__all__ = ["Offload"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Offload:
    """Run store calls in worker threads.

    Parameters
    ----------
    engine
        The arena's database.
    observe
        Receives the seconds each call took (for the database-latency metric).
    """

    def __init__(self, engine: Engine, observe: Callable[[float], object] | None = None) -> None:
        self.engine = engine
        self._observe = observe

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` in a worker thread.

        Raises
        ------
        arena.lifecycle.BattleRefused
            ``db_unavailable`` when the database cannot be reached (nothing was recorded).
        """
        t0 = time.monotonic()
        try:
            return await asyncio.to_thread(fn)
        except (OperationalError, InterfaceError, DisconnectionError) as exc:
            log.warning("database unavailable: %s", str(exc).splitlines()[0])
            raise refuse(Refusal.DB_UNAVAILABLE) from None
        finally:
            if self._observe is not None:
                self._observe(time.monotonic() - t0)

    async def call(self, op: Callable[..., T], /, **kwargs: Any) -> T:
        """Run a keyword-only store operation (``op(session=..., **kwargs)``) in a new session.

        Raises
        ------
        arena.lifecycle.BattleRefused
            ``db_unavailable`` as :meth:`run`.
        """

        def in_session() -> T:
            with new_session(self.engine) as session:
                return op(session=session, **kwargs)

        return await self.run(in_session)
