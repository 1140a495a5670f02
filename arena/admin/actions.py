"""What an admin can do, each as one method: the store change, the audit-log row, and (for
roster changes) this replica's re-sync, so the change shows at once here and within
``ARENA_ROSTER_POLL_S`` on every other replica.

A refused action raises :class:`ActionRefused` with a message that names what was wrong;
nothing is written for it except nothing -- only actions that happened are logged.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from arena import store
from arena.battles import Arena
from arena.lifecycle import Exclusion
from arena.roster import RosterError, parse_entry_toml
from arena.roster_sync import ADDED_SOURCE
from arena.store import browse, live_roster
from arena.store.admin_log import record_admin_action

__all__ = ["FINDING_REASONS", "ActionRefused", "AdminActions", "Who"]

#: The exclusions an audit finding applies (``arena audit --apply`` stores the same).
FINDING_REASONS: tuple[str, ...] = (str(Exclusion.ANOMALOUS_VOTER), str(Exclusion.SYBIL_GROUP))
_MAX_TOML_CHARS = 20_000

T = TypeVar("T")


class ActionRefused(ValueError):
    """An admin action that was not done; the message says why."""


@dataclass(frozen=True)
class Who:
    """The admin behind an action: the name given at login and the hashed address."""

    actor: str
    address_key: str


class AdminActions:
    """The admin actions on one running arena.

    Parameters
    ----------
    arena
        The arena this replica serves (its database, roster and sync).
    """

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.engine = arena.engine

    async def _db(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    def _log_now(self, who: Who, action: str, target: str = "", detail: str | None = None) -> None:
        with store.new_session(self.engine) as session:
            record_admin_action(
                session=session,
                actor=who.actor,
                address_key=who.address_key,
                action=action,
                target=target,
                detail=detail,
            )

    async def log(self, who: Who, action: str, target: str = "", detail: str | None = None) -> None:
        """Append one row to the audit log."""
        await self._db(lambda: self._log_now(who, action, target, detail))

    # ----------------------------------------------------------------------------------------
    # the roster

    async def set_enabled(self, who: Who, name: str, enabled: bool) -> str:
        """Enable or disable ``name`` for new battles; returns what happened."""
        note = f"by {who.actor or 'admin'}"

        def change() -> bool:
            with store.new_session(self.engine) as session:
                event = live_roster.set_model_enabled(
                    session=session, name=name, enabled=enabled, note=note
                )
            return event is not None

        try:
            changed = await self._db(change)
        except store.UnknownModel as exc:
            raise ActionRefused(str(exc)) from None
        word = "enabled" if enabled else "disabled"
        if not changed:
            return f"{name} was already {word}."
        await self.log(who, "enable" if enabled else "disable", name)
        await self.arena.sync_roster(force=True)
        return f"{name} {word}: new battles {'may' if enabled else 'no longer'} draw it."

    async def set_weight(self, who: Who, name: str, weight_text: str) -> str:
        """Set ``name``'s sampling weight from form text; returns what happened."""
        try:
            weight = float(weight_text)
        except ValueError:
            raise ActionRefused(f"weight {weight_text!r} is not a number") from None
        if not (math.isfinite(weight) and weight > 0):
            raise ActionRefused(f"weight must be a finite number above 0, got {weight_text!r}")

        def change() -> None:
            with store.new_session(self.engine) as session:
                live_roster.set_model_weight(session=session, name=name, weight=weight)

        try:
            await self._db(change)
        except (store.UnknownModel, store.InvalidValue) as exc:
            raise ActionRefused(str(exc)) from None
        await self.log(who, "reweight", name, f"weight {weight:g}")
        await self.arena.sync_roster(force=True)
        policy = self.arena.settings.sampling_policy
        note = "" if policy == "weighted" else f" (the {policy} policy ignores weights)"
        return f"{name}: sampling weight {weight:g}{note}."

    async def add_model(self, who: Who, toml_text: str) -> str:
        """Add a roster entry from TOML (one ``[[models]]`` table), validated like a roster
        file; every replica builds and loads it, then draws it."""
        if len(toml_text) > _MAX_TOML_CHARS:
            raise ActionRefused(f"the entry is over {_MAX_TOML_CHARS:,} characters")
        source = self.arena.roster.path.parent / ADDED_SOURCE
        try:
            entry = parse_entry_toml(toml_text, path=source)
        except RosterError as exc:
            raise ActionRefused(str(exc)) from None

        def change() -> None:
            with store.new_session(self.engine) as session:
                live_roster.add_model_entry(
                    session=session,
                    name=entry.name,
                    backend=entry.backend,
                    config_hash=entry.config_hash,
                    entry_toml=toml_text,
                    note=f"by {who.actor or 'admin'}",
                )

        try:
            await self._db(change)
        except store.InvalidValue as exc:
            raise ActionRefused(str(exc)) from None
        await self.log(who, "add_model", entry.name, f"backend {entry.backend}, {entry.model}")
        await self.arena.sync_roster(force=True)
        return f"{entry.name} added: each replica loads it, then draws it for new battles."

    # ----------------------------------------------------------------------------------------
    # audit findings

    def _check_finding(self, judge: str, reason: str) -> None:
        if reason not in FINDING_REASONS:
            raise ActionRefused(
                f"unknown finding reason {reason!r} (choose from {', '.join(FINDING_REASONS)})"
            )
        if not judge.strip():
            raise ActionRefused("which voter? the voter key is empty")

    async def apply_finding(self, who: Who, judge: str, reason: str) -> str:
        """Exclude the voter's counted votes with the finding's reason."""
        self._check_finding(judge, reason)

        def change() -> int:
            with store.new_session(self.engine) as session:
                return browse.apply_finding(session=session, judge=judge, reason=reason)

        n = await self._db(change)
        await self.log(who, "apply_finding", judge, f"{reason}: {n} votes excluded")
        return f"{n} votes of voter {judge[:12]}… excluded as {reason}."

    async def undo_finding(self, who: Who, judge: str, reason: str) -> str:
        """Count again the voter's votes excluded with the finding's reason."""
        self._check_finding(judge, reason)

        def change() -> int:
            with store.new_session(self.engine) as session:
                return browse.undo_finding(session=session, judge=judge, reason=reason)

        n = await self._db(change)
        await self.log(who, "undo_finding", judge, f"{reason}: {n} votes counted again")
        return f"{n} votes of voter {judge[:12]}… counted again."

    # ----------------------------------------------------------------------------------------
    # export

    async def export(self, who: Who, *, with_conversations: bool) -> Path:
        """Write the ``clean_battle`` export (``arena export battles``) to a temporary file;
        the caller sends it and deletes it."""
        folder = Path(tempfile.mkdtemp(prefix="arena-admin-export-"))
        out = folder / "battles.jsonl.gz"
        n = await self._db(
            lambda: store.export_battles(
                engine=self.engine, out=out, with_conversations=with_conversations
            )
        )
        await self.log(
            who, "export", "battles", f"{n} records{', with conversations' * with_conversations}"
        )
        return out
