"""The battle store: SQLModel tables and the only code that writes the database
(``ops.py`` for the live app, ``exchange.py`` for imports).

SQLite by default (WAL, ``synchronous=FULL``, busy timeout, ``BEGIN IMMEDIATE`` writes);
PostgreSQL with ``ARENA_DB_URL=postgresql+psycopg://...``.  Modules, one idea each:

``models``     tables and their public shapes (a battle's public shape has no model names)
``engine``     opening a database, SQLite pragmas, Alembic schema check and upgrade
``ops``        keyword-only write operations on an explicit session (one commit each)
``identity``   keyed-hash user keys and the secret behind them
``reads``      votes -> ``ratings.data.Battles`` arrays, fast; per-vote lookups
``exchange``   ``clean_battle`` JSONL export and all-or-nothing import
``live_roster`` the admin page's roster changes, and the cheap "what changed" replicas poll
``admin_log``  the admin audit log (and the failed logins the login limit counts)
``browse``     the admin page's battle/vote/moderation reads and audit-finding writes
``errors``     typed failures

See docs/store.md.
"""

from __future__ import annotations

from arena.store.engine import (
    check_schema,
    current_revision,
    head_revision,
    open_engine,
    reader,
    redact_url,
    upgrade,
)
from arena.store.errors import (
    AlreadyVoted,
    BattleErrored,
    BattleImportError,
    BattleNotFound,
    BattleNotReady,
    ForeignBattle,
    InvalidTransition,
    InvalidValue,
    SchemaOutOfDate,
    StoreError,
    UnknownModel,
    VoteNotFound,
    VoteRefused,
)
from arena.store.exchange import ImportReport, export_battles, import_battles, iter_export_records
from arena.store.identity import resolve_secret, user_key
from arena.store.models import (
    BATTLE_MODES,
    BATTLE_STATUSES,
    MESSAGE_SIDES,
    WINNERS,
    Battle,
    BattlePublic,
    Message,
    Model,
    ModelEvent,
    ModerationDecision,
    Vote,
    VoteReason,
    utcnow,
)
from arena.store.ops import (
    ALLOWED_TRANSITIONS,
    add_vote_reasons,
    append_message,
    battle_model_names,
    create_battle,
    deprecate_model,
    get_battle,
    get_vote,
    list_messages,
    mark_exclusion,
    new_session,
    question_id_for,
    record_moderation,
    record_vote,
    set_status,
    upsert_model,
)
from arena.store.reads import (
    AuditTables,
    audit_tables,
    battles_for_ratings,
    counted_votes_on_question,
    deprecated_model_names,
    live_vote_cells,
    live_votes_after,
    live_votes_new,
    model_names_by_id,
    ping,
    recent_prompts_by,
    recent_votes_by,
    vote_id_before,
    votes_of_judge,
    votes_with_reasons,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "BATTLE_MODES",
    "BATTLE_STATUSES",
    "MESSAGE_SIDES",
    "WINNERS",
    "AlreadyVoted",
    "AuditTables",
    "Battle",
    "BattleErrored",
    "BattleImportError",
    "BattleNotFound",
    "BattleNotReady",
    "BattlePublic",
    "ForeignBattle",
    "ImportReport",
    "InvalidTransition",
    "InvalidValue",
    "Message",
    "Model",
    "ModelEvent",
    "ModerationDecision",
    "SchemaOutOfDate",
    "StoreError",
    "UnknownModel",
    "Vote",
    "VoteNotFound",
    "VoteReason",
    "VoteRefused",
    "add_vote_reasons",
    "append_message",
    "audit_tables",
    "battle_model_names",
    "battles_for_ratings",
    "check_schema",
    "counted_votes_on_question",
    "create_battle",
    "current_revision",
    "deprecate_model",
    "deprecated_model_names",
    "export_battles",
    "get_battle",
    "get_vote",
    "head_revision",
    "import_battles",
    "iter_export_records",
    "list_messages",
    "live_vote_cells",
    "live_votes_after",
    "live_votes_new",
    "mark_exclusion",
    "model_names_by_id",
    "new_session",
    "open_engine",
    "ping",
    "question_id_for",
    "reader",
    "recent_prompts_by",
    "recent_votes_by",
    "record_moderation",
    "record_vote",
    "redact_url",
    "resolve_secret",
    "set_status",
    "upgrade",
    "upsert_model",
    "user_key",
    "utcnow",
    "vote_id_before",
    "votes_of_judge",
    "votes_with_reasons",
]
