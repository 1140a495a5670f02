"""The admin page's HTML: plain server-rendered pages with forms, no script.

Every value that came from a user, a model or the database goes through :func:`e`
(``html.escape``): model answers, prompts, voter keys and model names are all untrusted.
Every POST form carries the session's CSRF token.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

from arena.lifecycle import Exclusion
from arena.store.browse import COUNTED, EXCLUDED, BattleFilter, BattleRow, Conversation
from arena.store.models import AdminAction, ModerationDecision

__all__ = [
    "RosterRow",
    "battles_page",
    "conversation_page",
    "e",
    "export_page",
    "findings_page",
    "layout",
    "log_page",
    "login_page",
    "moderation_page",
    "roster_page",
]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:80rem;color:#222}
nav a,nav button{margin-right:1rem}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .5rem;
text-align:left;vertical-align:top}
.note{background:#e8f5e9;padding:.5rem}.error{background:#fdecea;padding:.5rem}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5rem;margin:.2rem 0}
form.inline{display:inline}textarea{width:100%;font-family:monospace}
.key{font-family:monospace}
"""


def e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Page:
    """What every page needs: the URL prefix, the CSRF token and the flash messages."""

    prefix: str
    csrf: str
    note: str = ""
    error: str = ""

    def url(self, path: str, **query: str) -> str:
        q = {k: v for k, v in query.items() if v}
        return f"{self.prefix}/admin{path}" + (f"?{urlencode(q)}" if q else "")

    def form(self, path: str, fields: dict[str, str], button: str, *, inline: bool = True) -> str:
        hidden = "".join(
            f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in fields.items()
        )
        cls = ' class="inline"' if inline else ""
        return (
            f'<form method="post" action="{e(self.url(path))}"{cls}>'
            f'<input type="hidden" name="csrf" value="{e(self.csrf)}">{hidden}'
            f"<button>{e(button)}</button></form>"
        )


def layout(page: Page, title: str, body: str) -> str:
    """A whole admin page: navigation, flash messages, ``body``."""
    links = [
        ("", "Roster"),
        ("/battles", "Battles"),
        ("/findings", "Audit findings"),
        ("/moderation", "Moderation"),
        ("/export", "Export"),
        ("/log", "Audit log"),
    ]
    nav = "".join(f'<a href="{e(page.url(p))}">{e(t)}</a>' for p, t in links)
    nav += page.form("/logout", {}, "Log out")
    flash = ""
    if page.note:
        flash += f'<p class="note" id="note">{e(page.note)}</p>'
    if page.error:
        flash += f'<p class="error" id="error">{e(page.error)}</p>'
    return _document(title, f"<nav>{nav}</nav><h1>{e(title)}</h1>{flash}{body}")


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)} · Arena admin</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def login_page(*, prefix: str, error: str = "", totp: bool = False, actor: str = "") -> str:
    """The login form (name for the audit log, password, and the code when 2FA is on)."""
    code = (
        '<p><label>Authenticator code <input name="code" id="code" inputmode="numeric" '
        'autocomplete="one-time-code" required></label></p>'
        if totp
        else ""
    )
    flash = f'<p class="error" id="error">{e(error)}</p>' if error else ""
    body = (
        f"<h1>Arena admin</h1>{flash}"
        f'<form method="post" action="{e(prefix)}/admin/login">'
        '<p><label>Your name (for the audit log) <input name="actor" id="actor" '
        f'maxlength="100" value="{e(actor)}"></label></p>'
        '<p><label>Password <input type="password" name="password" id="password" '
        'autocomplete="current-password" required></label></p>'
        f'{code}<p><button id="login">Log in</button></p></form>'
    )
    return _document("Log in", body)


@dataclass(frozen=True)
class RosterRow:
    """One model as the roster page shows it."""

    name: str
    backend: str
    enabled: bool
    roster_weight: float | None
    weight: float | None
    share: float | None
    state: str


def roster_page(page: Page, rows: Sequence[RosterRow], *, policy: str) -> str:
    """The live roster: enable/disable, weights, and the form to add an entry."""
    out = [
        f"<p>Sampling policy: <b>{e(policy)}</b>. Changes are stored as model events and "
        "reach every replica on its next battle (within ARENA_ROSTER_POLL_S).</p>",
        '<table id="roster"><tr><th>Model</th><th>Backend</th><th>State</th>'
        "<th>Share of battle slots</th><th>Weight (roster → live)</th><th></th></tr>",
    ]
    for r in rows:
        toggle = page.form(
            "/models/disable" if r.enabled else "/models/enable",
            {"name": r.name},
            "Disable" if r.enabled else "Enable",
        )
        weight_form = (
            f'<form method="post" action="{e(page.url("/models/weight"))}" class="inline">'
            f'<input type="hidden" name="csrf" value="{e(page.csrf)}">'
            f'<input type="hidden" name="name" value="{e(r.name)}">'
            f'<input name="weight" size="5" value="{e(r.weight if r.weight is not None else "")}"'
            f' aria-label="weight of {e(r.name)}"><button>Set weight</button></form>'
        )
        share = "" if r.share is None else f"{100 * r.share:.1f}%"
        roster_w = "" if r.roster_weight is None else f"{r.roster_weight:g}"
        live_w = "" if r.weight is None else f"{r.weight:g}"
        out.append(
            f'<tr data-model="{e(r.name)}"><td>{e(r.name)}</td><td>{e(r.backend)}</td>'
            f'<td class="state">{e(r.state)}</td><td>{e(share)}</td>'
            f"<td>{e(roster_w)} → {e(live_w or roster_w)}</td><td>{toggle} {weight_form}</td></tr>"
        )
    out.append("</table>")
    out.append(
        "<h2>Add a model</h2><p>One <code>[[models]]</code> table, checked like a roster file "
        "(docs/backends.md). Names are never reused.</p>"
        f'<form method="post" action="{e(page.url("/models/add"))}">'
        f'<input type="hidden" name="csrf" value="{e(page.csrf)}">'
        '<textarea name="toml" rows="8" id="toml">[[models]]\nname = ""\nbackend = "openai"\n'
        'model = ""\nbase_url = ""\n</textarea><p><button>Add</button></p></form>'
    )
    return layout(page, "Roster", "".join(out))


def _options(values: Iterable[tuple[str, str]], selected: str | None) -> str:
    return "".join(
        f'<option value="{e(v)}"{" selected" if v == (selected or "") else ""}>{e(label)}</option>'
        for v, label in values
    )


def battles_page(
    page: Page, rows: Sequence[BattleRow], where: BattleFilter, models: Sequence[str]
) -> str:
    """Battles and votes by filter (model, date, exclusion reason, voter)."""
    exclusions = [("", "(any or none)"), (COUNTED, COUNTED), (EXCLUDED, EXCLUDED)]
    exclusions += [(str(x), str(x)) for x in Exclusion]
    since = where.since.date().isoformat() if where.since else ""
    until = (where.until - dt.timedelta(days=1)).date().isoformat() if where.until else ""
    model_options = _options([("", "(any)")] + [(m, m) for m in models], where.model)
    exclusion_options = _options(exclusions, where.exclusion)
    form = (
        f'<form method="get" action="{e(page.url("/battles"))}">'
        f'<label>Model <select name="model">{model_options}</select></label> '
        f'<label>From <input type="date" name="since" value="{e(since)}"></label> '
        f'<label>To <input type="date" name="until" value="{e(until)}"></label> '
        f'<label>Exclusion <select name="exclusion">{exclusion_options}</select></label> '
        f'<label>Voter key <input name="judge" value="{e(where.judge or "")}" size="20"></label> '
        "<button>Filter</button></form>"
    )
    table = [
        '<table id="battles"><tr><th>Started</th><th>Battle</th><th>Mode</th><th>Status</th>'
        "<th>Model A</th><th>Model B</th><th>Winner</th><th>Exclusion</th><th>Voter</th></tr>"
    ]
    for r in rows:
        table.append(
            f"<tr><td>{e(_when(r.created_at))}</td>"
            f'<td><a href="{e(page.url("/battles/" + r.battle_id))}" class="key">'
            f"{e(r.battle_id[:8])}</a></td><td>{e(r.mode)}</td><td>{e(r.status)}</td>"
            f"<td>{e(r.model_a)}</td><td>{e(r.model_b)}</td><td>{e(r.winner or '')}</td>"
            f"<td>{e(r.exclusion or '')}</td>"
            f'<td><a class="key" href="{e(page.url("/battles", judge=r.user_key))}">'
            f"{e(r.user_key[:12])}</a></td></tr>"
        )
    table.append("</table>")
    count = f"<p>{len(rows)} battles shown (newest first, at most 200).</p>"
    return layout(page, "Battles", form + count + "".join(table))


def conversation_page(page: Page, conv: Conversation) -> str:
    """One battle's conversation, turn by turn."""
    b = conv.battle
    exclusion = (b.exclusion or "(counted)") if b.winner else ""
    head = (
        f'<p class="key">{e(b.battle_id)}</p><p>{e(_when(b.created_at))} · {e(b.mode)} · '
        f"{e(b.status)} · A = <b>{e(b.model_a)}</b>, B = <b>{e(b.model_b)}</b> · winner: "
        f"{e(b.winner or '(no vote)')} · exclusion: {e(exclusion)}"
        f'</p><p>Voter: <a class="key" href="{e(page.url("/battles", judge=b.user_key))}">'
        f"{e(b.user_key)}</a></p>"
    )
    labels = {"user": "Prompt", "a": f"A ({b.model_a})", "b": f"B ({b.model_b})"}
    parts = [
        f"<h3>Turn {m.turn} · {e(labels.get(m.side, m.side))}</h3><pre>{e(m.content)}</pre>"
        for m in conv.messages
    ]
    return layout(page, "Battle", head + "".join(parts))


@dataclass(frozen=True)
class FlagRow:
    """One flagged voter from ``arena audit`` (its strongest flag)."""

    judge: str
    reason: str
    test: str
    model: str
    detail: str


def findings_page(
    page: Page,
    flags: Sequence[FlagRow],
    applied: Sequence[tuple[str, str, int]],
    *,
    problem: str = "",
) -> str:
    """The audit's flagged voters (apply) and the findings already applied (undo)."""
    out = []
    if problem:
        out.append(f'<p class="error">{e(problem)}</p>')
    out.append(
        "<h2>Flagged now</h2><p>From the same tests as <code>arena audit</code> "
        "(docs/integrity.md). Applying excludes the voter's counted votes; nothing is "
        "deleted.</p>"
    )
    out.append(
        '<table id="flags"><tr><th>Voter</th><th>Reason</th><th>Test</th><th>Model</th>'
        "<th>Detail</th><th></th></tr>"
    )
    for f in flags:
        out.append(
            f'<tr><td><a class="key" href="{e(page.url("/battles", judge=f.judge))}">'
            f"{e(f.judge[:12])}</a></td><td>{e(f.reason)}</td><td>{e(f.test)}</td>"
            f"<td>{e(f.model)}</td><td>{e(f.detail)}</td>"
            f"<td>{page.form('/findings/apply', {'judge': f.judge, 'reason': f.reason}, 'Apply')}"
            "</td></tr>"
        )
    out.append("</table>")
    out.append('<h2>Applied</h2><table id="applied"><tr><th>Voter</th><th>Reason</th>'
               "<th>Votes excluded</th><th></th></tr>")  # fmt: skip
    for judge, reason, n in applied:
        out.append(
            f'<tr><td><a class="key" href="{e(page.url("/battles", judge=judge))}">'
            f"{e(judge[:12])}</a></td><td>{e(reason)}</td><td>{n}</td>"
            f"<td>{page.form('/findings/undo', {'judge': judge, 'reason': reason}, 'Undo')}"
            "</td></tr>"
        )
    out.append("</table>")
    return layout(page, "Audit findings", "".join(out))


def moderation_page(page: Page, rows: Sequence[ModerationDecision]) -> str:
    """The moderation queue: stored decisions, newest first."""
    out = [
        '<table id="moderation"><tr><th>When</th><th>Battle</th><th>Turn</th><th>Side</th>'
        "<th>Action</th><th>Categories</th><th>Checkers</th></tr>"
    ]
    for d in rows:
        battle = (
            f'<a class="key" href="{e(page.url("/battles/" + d.battle_id))}">'
            f"{e(d.battle_id[:8])}</a>"
            if d.battle_id
            else "(blocked before a battle)"
        )
        out.append(
            f"<tr><td>{e(_when(d.at))}</td><td>{battle}</td><td>{d.turn}</td>"
            f"<td>{e(d.side)}</td><td>{e(d.action)}</td><td>{e(d.categories)}</td>"
            f"<td>{e(d.checkers)}</td></tr>"
        )
    out.append("</table>")
    return layout(page, "Moderation queue", "".join(out))


def export_page(page: Page) -> str:
    """Download the ``clean_battle`` export (the same file as ``arena export battles``)."""
    body = (
        "<p>Every vote as <code>clean_battle</code> JSONL, gzipped, the same as "
        "<code>arena export battles</code> (docs/cli.md); excluded votes are included with "
        "their reasons.</p>"
        + page.form("/export", {"conversations": ""}, "Download votes", inline=False)
        + page.form(
            "/export", {"conversations": "1"}, "Download votes with conversations", inline=False
        )
    )
    return layout(page, "Export", body)


def log_page(page: Page, rows: Sequence[AdminAction]) -> str:
    """The audit log: who did what, when."""
    out = [
        '<table id="log"><tr><th>When (UTC)</th><th>Who</th><th>Address key</th><th>Action</th>'
        "<th>Target</th><th>Detail</th></tr>"
    ]
    for r in rows:
        out.append(
            f"<tr><td>{e(_when(r.at))}</td><td>{e(r.actor)}</td>"
            f'<td class="key">{e(r.address_key[:12])}</td><td>{e(r.action)}</td>'
            f"<td>{e(r.target)}</td><td>{e(r.detail or '')}</td></tr>"
        )
    out.append("</table>")
    return layout(page, "Audit log", "".join(out))
