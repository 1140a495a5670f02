"""The admin audit log: every admin action, and every failed login, as one row each.

Failed logins double as the login rate limit's memory: counting an address's recent
``login_failed`` rows is one index range scan, and it holds across replicas and restarts
(limits live in the database, never in one process).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from arena.store.engine import reader
from arena.store.errors import InvalidValue
from arena.store.models import AdminAction
from arena.store.ops import _finish, _transaction

__all__ = ["LOGIN_FAILED", "failed_logins_since", "list_admin_actions", "record_admin_action"]

#: The action stored for a refused login (its count is the rate limit).
LOGIN_FAILED = "login_failed"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_admin_action(
    *,
    session: Session,
    actor: str,
    address_key: str,
    action: str,
    target: str = "",
    detail: str | None = None,
) -> AdminAction:
    """Append one row to the audit log (who, what, when, from which hashed address).

    Raises
    ------
    InvalidValue
        An empty action.
    """
    if not action:
        raise InvalidValue("an admin action needs a name")
    row = AdminAction(
        actor=_clip(actor, 100),
        address_key=address_key,
        action=action,
        target=_clip(target, 200),
        detail=None if detail is None else _clip(detail, 2000),
    )
    with _transaction(session):
        session.add(row)
        _finish(session)
        return row


def failed_logins_since(*, engine: Engine, address_key: str, since: dt.datetime) -> int:
    """Refused logins from one hashed address at or after ``since``."""
    with reader(engine).connect() as conn:
        n = conn.execute(
            select(func.count())
            .select_from(AdminAction)
            .where(
                AdminAction.address_key == address_key,
                AdminAction.action == LOGIN_FAILED,
                col(AdminAction.at) >= since,
            )
        ).scalar()
    return int(n or 0)


def list_admin_actions(*, engine: Engine, limit: int = 200) -> list[AdminAction]:
    """The newest ``limit`` audit log rows, newest first."""
    with Session(reader(engine)) as session:
        rows = list(
            session.exec(
                select(AdminAction).order_by(col(AdminAction.id).desc()).limit(limit)
            ).all()
        )
        session.expunge_all()
    return rows
