"""The moderator: runs the configured checkers on prompts and answers, and turns findings into
an action according to the mode (off, log, warn, block)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from arena.backends import Backend, BackendError
from arena.config import Settings
from arena.moderation.base import Action, Checker, Decision, Finding, ModerationMode
from arena.moderation.blocklist import BlocklistChecker
from arena.moderation.guard import GuardModelChecker
from arena.moderation.pii import PiiChecker

__all__ = ["Moderator"]

log = logging.getLogger(__name__)

_ACTION = {
    ModerationMode.OFF: Action.NONE,
    ModerationMode.LOG: Action.LOGGED,
    ModerationMode.WARN: Action.WARNED,
    ModerationMode.BLOCK: Action.BLOCKED,
}


class Moderator:
    """Check texts and decide.

    Parameters
    ----------
    mode
        What a finding leads to.
    checkers
        Fast synchronous checkers (blocklist, PII): run on prompts and on answers (on every
        streamed frame, so that in ``block`` mode nothing flagged is ever shown).
    guard
        Optional guard model: run on prompts only (one model call per prompt, before any
        arena model sees it).
    """

    def __init__(
        self,
        mode: ModerationMode | str = ModerationMode.OFF,
        checkers: Sequence[Checker] = (),
        guard: GuardModelChecker | None = None,
    ) -> None:
        self.mode = ModerationMode(mode)
        self.checkers = tuple(checkers)
        self.guard = guard

    @classmethod
    def from_settings(cls, settings: Settings, backends: dict[str, Backend]) -> Moderator:
        """The moderator the settings describe.

        Raises
        ------
        ValueError
            An unknown mode, an unusable blocklist, an unknown phone region, or a guard
            model that is not a roster entry; the message names the setting.
        """
        try:
            mode = ModerationMode(settings.moderation.strip().lower())
        except ValueError:
            choices = ", ".join(m.value for m in ModerationMode)
            raise ValueError(
                f"ARENA_MODERATION={settings.moderation!r}: expected one of {choices}"
            ) from None
        checkers: list[Checker] = []
        if settings.moderation_blocklist:
            checkers.append(BlocklistChecker.from_file(settings.moderation_blocklist))
        if settings.moderation_pii:
            try:
                checkers.append(PiiChecker(settings.moderation_pii_regions.split(",")))
            except ValueError as exc:
                raise ValueError(f"ARENA_MODERATION_PII_REGIONS: {exc}") from None
        guard = None
        if settings.moderation_guard_model:
            name = settings.moderation_guard_model
            if name not in backends:
                raise ValueError(
                    f"ARENA_MODERATION_GUARD_MODEL={name!r} is not a roster entry "
                    f"(entries: {', '.join(backends)})"
                )
            guard = GuardModelChecker(backends[name])
        return cls(mode, checkers, guard)

    @property
    def active(self) -> bool:
        """Whether anything is checked at all."""
        return self.mode != ModerationMode.OFF and bool(self.checkers or self.guard)

    def _versions(self, with_guard: bool) -> tuple[tuple[str, str], ...]:
        out = [(c.name, c.version) for c in self.checkers]
        if with_guard and self.guard is not None:
            out.append((self.guard.name, self.guard.version))
        return tuple(out)

    def _decide(self, where: str, findings: list[Finding], with_guard: bool) -> Decision:
        action = _ACTION[self.mode] if findings else Action.NONE
        return Decision(where, tuple(findings), action, self._versions(with_guard))

    def check_fast(self, text: str, where: str) -> Decision:
        """Run the fast checkers only (for streamed answers)."""
        if not self.active:
            return Decision(where)
        findings = [f for c in self.checkers for f in c.check(text)]
        return self._decide(where, findings, with_guard=False)

    async def check_prompt(self, text: str) -> Decision:
        """Run every checker, the guard model included, on a prompt.

        A guard model that fails is logged and treated as "no finding" in ``log``/``warn``
        mode; in ``block`` mode the prompt is refused rather than let through unchecked.
        """
        if not self.active:
            return Decision("prompt")
        findings = [f for c in self.checkers for f in c.check(text)]
        if self.guard is not None:
            try:
                findings += await self.guard.acheck(text)
            except BackendError as exc:
                log.warning("guard model failed: %s", exc)
                if self.mode == ModerationMode.BLOCK:
                    findings.append(
                        Finding(self.guard.name, self.guard.version, "guard_unavailable", str(exc))
                    )
        return self._decide("prompt", findings, with_guard=True)
