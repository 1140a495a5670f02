"""operations: moderation decisions, the accepted terms of use, vote reasons

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

* ``moderation_decision``: every moderation decision that found something (prompt or answer),
  with the checkers (name@version) that ran, the categories found and the action taken.
* ``battle.consent_version``: the version of the terms of use the voter had accepted when the
  battle started (NULL: no terms configured, or a battle from before this revision).
* ``vote_reason``: the reasons a voter picked after a vote, one row each.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("battle") as batch:
        batch.add_column(sa.Column("consent_version", sa.String(length=64), nullable=True))
    op.create_table(
        "moderation_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("battle_id", sa.String(length=64), nullable=True),
        sa.Column("user_key", sa.String(length=128), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("checkers", sa.String(length=500), nullable=False),
        sa.Column("categories", sa.String(length=500), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("side IN ('a', 'b', 'user')", name="ck_moderation_side"),
        sa.ForeignKeyConstraint(["battle_id"], ["battle.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_moderation_decision_at", "moderation_decision", ["at"], unique=False)
    op.create_index(
        "ix_moderation_decision_battle_id", "moderation_decision", ["battle_id"], unique=False
    )
    op.create_table(
        "vote_reason",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("battle_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["battle_id"], ["vote.battle_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("battle_id", "reason", name="uq_vote_reason"),
    )


def downgrade() -> None:
    op.drop_table("vote_reason")
    op.drop_index("ix_moderation_decision_battle_id", table_name="moderation_decision")
    op.drop_index("ix_moderation_decision_at", table_name="moderation_decision")
    op.drop_table("moderation_decision")
    with op.batch_alter_table("battle") as batch:
        batch.drop_column("consent_version")
