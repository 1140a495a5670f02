"""The one settings object: every knob, its default, its help text and its ``ARENA_*`` variable.

Settings are read from the environment once (``Settings.from_env()``) and passed explicitly;
nothing reads configuration from module globals.  Command-line flags override the environment
by building a new object with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "describe_settings", "settings_markdown"]

ENV_PREFIX = "ARENA_"


class SettingsError(ValueError):
    """An ``ARENA_*`` variable holds a value that cannot be used; the message names it."""


def _setting(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


def _default_data_dir() -> str:
    return str(Path.cwd() / "arena-data")


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "arena")


@dataclass(frozen=True)
class Settings:
    """Arena settings.  Each field maps to the environment variable ``ARENA_<NAME>``."""

    data_dir: str = field(
        default_factory=_default_data_dir,
        metadata={
            "help": "Directory for the default SQLite database and the generated secret "
            "(default: ./arena-data in the working directory)."
        },
    )
    cache_dir: str = field(
        default_factory=_default_cache_dir,
        metadata={
            "help": "Directory for converted model weights (default: $XDG_CACHE_HOME/arena "
            "or ~/.cache/arena)."
        },
    )
    db_url: str = _setting(
        "",
        "Database URL. Empty means SQLite at <data_dir>/arena.db; for PostgreSQL use "
        "postgresql+psycopg://user:password@host:5432/dbname.",
    )
    secret: str = _setting(
        "",
        "Key for hashing user identities, at least 32 bytes (python -c 'import secrets; "
        "print(secrets.token_hex(32))'). Empty means: generate one on first run and keep it "
        "in <data_dir>/secret.",
        secret=True,
    )
    metrics_token: str = _setting(
        "",
        "Bearer token for GET /metrics. Empty means /metrics answers only direct loopback "
        "requests (per-model counters must not reach voters).",
        secret=True,
        shown_default="(not set)",
    )
    admin_password_hash: str = _setting(
        "",
        "Password hash for the admin page at /admin (make one with `arena admin "
        "hash-password`). Empty: no admin page (/admin answers 404). See docs/admin.md.",
        secret=True,
        shown_default="(not set)",
    )
    admin_totp_secret: str = _setting(
        "",
        "Optional second factor for /admin: a base32 TOTP secret (RFC 6238, 6 digits, 30 s; "
        "make one with `arena admin totp-secret`). Empty: password only.",
        secret=True,
        shown_default="(not set)",
    )
    roster_poll_s: float = _setting(
        2.0,
        "Least seconds between two checks, on a new battle, for roster changes made on the "
        "admin page (by any replica: one cheap query for the newest model event).",
    )
    terms_file: str = _setting(
        "",
        "Terms of use and privacy notice (Markdown) shown before the first prompt; visitors "
        "must accept them to prompt or vote, and each battle stores the accepted version. "
        "Empty: no terms.",
    )
    vote_reasons: str = _setting(
        "More accurate,Better written,Followed instructions,Safer",
        "Reasons a voter may pick after a vote (comma-separated); empty: no reason chips.",
    )
    pow_difficulty: int = _setting(
        0,
        "Proof of work before the first vote (ALTCHA): the largest number a challenge hides "
        "(the browser tries about half as many SHA-256 hashes; 50000 is about a second). 0 "
        "turns it off.",
    )
    moderation: str = _setting(
        "off",
        "Content moderation: off, log (store decisions only), warn (tell the voter; the "
        "battle's vote is not counted) or block (a flagged prompt never reaches a model, a "
        "flagged answer is never shown). See docs/moderation.md.",
    )
    moderation_blocklist: str = _setting(
        "", "Operator blocklist file (words, phrases, re: regular expressions); empty: none."
    )
    moderation_pii: bool = _setting(
        True,
        "Check for personal data (e-mail, phone, card numbers, IP addresses) when moderation "
        "is on.",
    )
    moderation_pii_regions: str = _setting(
        "US",
        "Comma-separated regions whose national phone formats the personal-data check knows "
        "(international +... numbers are always recognised).",
    )
    moderation_guard_model: str = _setting(
        "",
        "Roster entry used as a guard model (Llama Guard style) on prompts; it is then not "
        "drawn for battles. Empty: no guard model.",
    )
    roster: str = _setting(
        "", "Model roster file (TOML). Empty means the bundled data/models.toml."
    )
    host: str = _setting("127.0.0.1", "Address the web app listens on.")
    port: int = _setting(7860, "Port the web app listens on.")
    root_path: str = _setting(
        "",
        "URL prefix the app is served under behind a reverse proxy that strips it (e.g. "
        "/arena); empty: served at the root.",
    )
    max_prompt_chars: int = _setting(4000, "Longest prompt accepted, in characters.")
    max_turns: int = _setting(8, "Most user turns in one battle before a vote is required.")
    generation_timeout_s: float = _setting(
        120.0, "Seconds a model may take for one reply before the battle is marked error."
    )
    slot_wait_s: float = _setting(
        20.0,
        "Longest wait for a free model slot (max_concurrency) before a battle is refused as "
        "busy, with a 'try again in N s'. The reply's own timeout starts after the wait.",
    )
    max_queued: int = _setting(
        16,
        "Most requests that may wait for one model's slots; more are refused at once as busy.",
    )
    max_live_battles: int = _setting(
        2,
        "Most battles one voter may have being answered at the same time (0: no cap).",
    )
    max_live_battles_per_address: int = _setting(
        12,
        "Most battles one client address may have being answered at the same time, all its "
        "voters together (0: no cap). Higher than the per-voter cap: behind one NAT (an "
        "office, a campus, a VPN) many browsers share an address.",
    )
    leaderboard_refresh_s: float = _setting(
        1.0,
        "Least seconds between two leaderboard updates in the app (each folds in the votes "
        "committed since the last one, from every replica; milliseconds at any table size).",
    )
    min_battles: int = _setting(
        50, "Models with fewer counted battles are marked preliminary on the leaderboard."
    )
    concurrency_limit: int = _setting(
        256,
        "Most events of one kind (send, regenerate, ...) Gradio processes at once; more wait "
        "in its queue (votes skip it: one direct request each). The handlers are async and "
        "each model's own max_concurrency decides who waits for a model, so this only caps "
        "what a flood of requests can hold.",
    )
    trusted_proxies: str = _setting(
        "",
        "Comma-separated addresses whose X-Forwarded-For header is believed. Empty: trust none.",
    )
    sampling_policy: str = _setting(
        "weighted",
        "How anonymous battles pick their pair: uniform, weighted (roster weights) or active "
        "(favours uncertain pairs of the least-known models; refreshed with the leaderboard).",
    )
    prompts_per_minute: int = _setting(
        20,
        "Most prompts one voter (a browser's voter cookie; a client without the cookie is "
        "its address) may send per minute; 0 disables the limit.",
    )
    votes_per_day: int = _setting(
        500, "Most votes one voter may cast per 24 hours; 0 disables the limit."
    )
    prompts_per_minute_per_address: int = _setting(
        200,
        "Most prompts one client address may send per minute, all its voters together (a "
        "ceiling over the per-voter limit, which clearing cookies does not reset); 0 disables.",
    )
    votes_per_day_per_address: int = _setting(
        5000,
        "Most votes one client address may cast per 24 hours, all its voters together; "
        "0 disables the limit.",
    )
    duplicate_prompt_cap: int = _setting(
        20,
        "Votes counted per identical first prompt; later votes on the same prompt are kept "
        "but excluded with reason duplicate_prompt. 0 disables the cap.",
    )
    connect_timeout_s: float = _setting(
        10.0, "Seconds to wait for a TCP/TLS connection to an OpenAI-compatible model server."
    )
    read_timeout_s: float = _setting(
        60.0,
        "Most seconds between two chunks from an OpenAI-compatible model server (the first "
        "chunk included) before the reply is a timeout.",
    )
    tag_languages: str = _setting(
        "",
        "Comma-separated languages the category tagger chooses between (lingua names, e.g. "
        "English,German,Chinese). Empty: the 30 most used on public arenas "
        "(arena.features.DEFAULT_LANGUAGES). Each loaded language costs memory and load time.",
    )
    backend_retries: int = _setting(
        2,
        "Retries of a model-server request that failed before its first token (connection "
        "refused, HTTP 429/5xx); never retried once text has streamed.",
    )
    auth_mode: str = _setting(
        "anonymous",
        "Sign-in (docs/auth.md): anonymous (no sign-in; a voter is a browser), optional "
        "(signed-in votes carry the person's keyed id) or required (nobody prompts or votes "
        "without signing in). optional and required need the ARENA_OIDC_* settings.",
    )
    oidc_issuer: str = _setting(
        "", "OpenID Connect issuer URL (its /.well-known/openid-configuration is read)."
    )
    oidc_client_id: str = _setting("", "OpenID Connect client id registered for this arena.")
    oidc_client_secret_env: str = _setting(
        "ARENA_OIDC_CLIENT_SECRET",
        "Name of the environment variable that holds the client secret (the secret itself is "
        "never a setting, so it never reaches logs or docs).",
    )
    oidc_scopes: str = _setting(
        "openid email profile", "Scopes asked for at sign-in (space-separated; openid needed)."
    )
    oidc_redirect_url: str = _setting(
        "",
        "The callback URL registered with the provider, e.g. https://arena.example/auth/"
        "callback. Empty: built from the request (scheme, host, --root-path).",
    )
    auth_allowed_domains: str = _setting(
        "",
        "Comma-separated email domains allowed to sign in (the provider must say the email "
        "is verified). Empty: any domain.",
    )
    auth_allowed_groups: str = _setting(
        "",
        "Comma-separated groups allowed to sign in (any one suffices), read from the ID "
        "token's ARENA_AUTH_GROUP_CLAIM. Empty: no group rule. With domains too, both apply.",
    )
    auth_group_claim: str = _setting("groups", "ID token claim that lists the person's groups.")
    auth_session_hours: float = _setting(
        12.0, "How long a sign-in lasts before the person signs in again."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``ARENA_*`` variables, falling back to the defaults.

        Parameters
        ----------
        environ
            Mapping to read instead of ``os.environ`` (tests pass their own).

        Returns
        -------
        Settings

        Raises
        ------
        SettingsError
            When a variable cannot be converted to its field's type; the variable is named.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name not in env:
                continue
            raw = env[name]
            values[f.name] = _convert(name, raw, f.type)
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the non-``None`` overrides applied (command-line flags)."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def resolved_db_url(self) -> str:
        """The database URL, with the SQLite default filled in."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_path / 'arena.db').resolve()}"

    @property
    def trusted_proxy_set(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.trusted_proxies.split(",") if p.strip())


def _convert(name: str, raw: str, type_name: Any) -> Any:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            low = raw.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None
    return raw


def describe_settings() -> list[tuple[str, str, str]]:
    """Return ``(variable, default, help)`` for every setting, for docs and ``--help``."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = repr(f.default) if f.default is not dataclasses.MISSING else "(computed)"
        if f.metadata.get("secret"):
            default = f.metadata.get("shown_default", "(generated)")
        rows.append((ENV_PREFIX + f.name.upper(), default, f.metadata["help"]))
    return rows


def settings_markdown() -> str:
    """The settings as a Markdown table (the generated part of docs/configuration.md)."""
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, default, help_text in describe_settings():
        lines.append(f"| `{name}` | `{default}` | {help_text} |")
    return "\n".join(lines) + "\n"
