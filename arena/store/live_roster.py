"""The live roster in the database: the admin page's changes, and what replicas read back.

A change (enable, disable, reweight, add) is one transaction that updates the model row and
appends a :class:`~arena.store.models.ModelEvent`.  Every replica notices it by polling
:func:`latest_model_event_id` (one index lookup) and, when that moved, reads the whole state
with :func:`roster_state`: the event id is read *before* the state, so a change committed in
between is seen again on the next poll rather than missed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from arena.store.engine import reader
from arena.store.errors import InvalidValue, UnknownModel
from arena.store.models import Model, ModelEvent, utcnow
from arena.store.ops import _finish, _transaction

__all__ = [
    "ModelState",
    "add_model_entry",
    "latest_model_event_id",
    "roster_state",
    "set_model_enabled",
    "set_model_weight",
]


@dataclass(frozen=True)
class ModelState:
    """What the admin page decided about one model (the roster file decides the rest)."""

    name: str
    enabled: bool
    weight: float | None
    entry_toml: str | None
    deprecated: bool


def _locked_model(session: Session, name: str) -> Model:
    model = session.exec(select(Model).where(Model.name == name).with_for_update()).first()
    if model is None or model.id is None:
        raise UnknownModel(f"unknown model {name!r}")
    return model


def set_model_enabled(
    *, session: Session, name: str, enabled: bool, note: str | None = None
) -> ModelEvent | None:
    """Enable or disable a model for new battles.

    Parameters
    ----------
    session
        From :func:`arena.store.new_session`.
    name
        The model.
    enabled
        ``False``: no new battle draws it (battles already running finish).
    note
        Stored on the event (who asked, why).

    Returns
    -------
    ModelEvent or None
        The ``enabled`` / ``disabled`` event, or ``None`` when the model already was so.

    Raises
    ------
    UnknownModel
        No model has this name.
    """
    with _transaction(session):
        model = _locked_model(session, name)
        if (model.disabled_at is None) == enabled:
            _finish(session)
            return None
        model.disabled_at = None if enabled else utcnow()
        assert model.id is not None
        event = ModelEvent(
            model_id=model.id,
            kind="enabled" if enabled else "disabled",
            config_hash=model.config_hash,
            detail=note,
        )
        session.add(event)
        _finish(session)
        return event


def set_model_weight(
    *, session: Session, name: str, weight: float, note: str | None = None
) -> ModelEvent:
    """Set a model's sampling weight (``weighted`` policy), overriding the roster file's.

    Raises
    ------
    InvalidValue
        The weight is not a finite number above 0.
    UnknownModel
        No model has this name.
    """
    if not (isinstance(weight, int | float) and math.isfinite(weight) and weight > 0):
        raise InvalidValue(f"a sampling weight must be a finite number above 0, got {weight!r}")
    with _transaction(session):
        model = _locked_model(session, name)
        old = model.weight
        model.weight = float(weight)
        assert model.id is not None
        detail = f"weight {old if old is not None else 'roster'} -> {float(weight):g}"
        event = ModelEvent(
            model_id=model.id,
            kind="reweighted",
            config_hash=model.config_hash,
            detail=f"{detail}; {note}" if note else detail,
        )
        session.add(event)
        _finish(session)
        return event


def add_model_entry(
    *,
    session: Session,
    name: str,
    backend: str,
    config_hash: str,
    entry_toml: str,
    note: str | None = None,
) -> ModelEvent:
    """Register a model added on the admin page, with its validated roster TOML.

    The caller validates ``entry_toml`` (:func:`arena.roster.parse_roster`); replicas build
    the backend from it.

    Raises
    ------
    InvalidValue
        The name is already taken, or a value is empty.
    """
    if not name or not backend or not entry_toml.strip():
        raise InvalidValue("an added model needs a name, a backend and its roster TOML")
    with _transaction(session):
        if session.exec(select(Model.id).where(Model.name == name)).first() is not None:
            raise InvalidValue(
                f"a model called {name!r} already exists (names are never reused; pick another)"
            )
        model = Model(name=name, backend=backend, config_hash=config_hash, entry_toml=entry_toml)
        session.add(model)
        session.flush()
        assert model.id is not None
        event = ModelEvent(model_id=model.id, kind="added", config_hash=config_hash, detail=note)
        session.add(event)
        _finish(session)
        return event


def latest_model_event_id(*, engine: Engine) -> int:
    """The newest model event's id (0 when there is none): the cheap "has anything changed"."""
    with reader(engine).connect() as conn:
        value = conn.execute(select(func.max(ModelEvent.id))).scalar()
    return int(value or 0)


def roster_state(*, engine: Engine) -> dict[str, ModelState]:
    """Every model's live state, by name."""
    with reader(engine).connect() as conn:
        rows = conn.execute(
            sa.select(
                col(Model.name),
                col(Model.disabled_at),
                col(Model.weight),
                col(Model.entry_toml),
                col(Model.deprecated_at),
            )
        ).all()
    return {
        r[0]: ModelState(
            name=r[0],
            enabled=r[1] is None,
            weight=r[2],
            entry_toml=r[3],
            deprecated=r[4] is not None,
        )
        for r in rows
    }
