"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23

Tables model, model_event, battle, message, vote (see arena/store/models.py).
Migrations spell out plain SQLAlchemy types so that they never import the models they
describe: a later change to models.py must not rewrite history.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model",
        sa.Column("backend", sa.String(length=50), nullable=False),
        sa.Column("config_hash", sa.String(length=128), nullable=False),
        sa.Column("params_b", sa.Float(), nullable=True),
        sa.Column("license", sa.String(length=100), nullable=True),
        sa.Column("open_weights", sa.Boolean(), nullable=True),
        sa.Column("organisation", sa.String(length=200), nullable=True),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("url", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_served_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_served_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deprecated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "battle",
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("pair_probability", sa.Float(), nullable=True),
        sa.Column("policy_name", sa.String(length=100), nullable=False),
        sa.Column("policy_version", sa.String(length=50), nullable=False),
        sa.Column("language", sa.String(length=20), nullable=True),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("model_a_id", sa.Integer(), nullable=False),
        sa.Column("model_b_id", sa.Integer(), nullable=False),
        sa.Column("user_key", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_reason", sa.String(length=2000), nullable=True),
        sa.CheckConstraint("mode IN ('anony', 'named')", name="ck_battle_mode"),
        sa.CheckConstraint(
            "status IN ('streaming', 'ready', 'voted', 'error', 'abandoned')",
            name="ck_battle_status",
        ),
        sa.CheckConstraint("model_a_id <> model_b_id", name="ck_battle_two_models"),
        sa.CheckConstraint(
            "pair_probability IS NULL OR (pair_probability > 0 AND pair_probability <= 1)",
            name="ck_battle_pair_probability",
        ),
        sa.ForeignKeyConstraint(
            ["model_a_id"],
            ["model.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_b_id"],
            ["model.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_battle_created_at", "battle", ["created_at"], unique=False)

    op.create_table(
        "model_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("config_hash", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.String(length=2000), nullable=True),
        sa.CheckConstraint(
            "kind IN ('registered', 'updated', 'deprecated')", name="ck_model_event_kind"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_model_event_model_id", "model_event", ["model_id"], unique=False)

    op.create_table(
        "message",
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=True),
        sa.Column("latency_s", sa.Float(), nullable=True),
        sa.Column("finish_reason", sa.String(length=50), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("battle_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("side IN ('a', 'b', 'user')", name="ck_message_side"),
        sa.CheckConstraint("turn >= 1", name="ck_message_turn"),
        sa.ForeignKeyConstraint(
            ["battle_id"],
            ["battle.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("battle_id", "turn", "side", name="uq_message_battle_turn_side"),
    )
    op.create_table(
        "vote",
        sa.Column("winner", sa.String(length=20), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("battle_id", sa.String(length=64), nullable=False),
        sa.Column("model_a_id", sa.Integer(), nullable=False),
        sa.Column("model_b_id", sa.Integer(), nullable=False),
        sa.Column("anony", sa.Boolean(), nullable=False),
        sa.Column("judge", sa.String(length=128), nullable=False),
        sa.Column("question_id", sa.String(length=128), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("voted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exclusion", sa.String(length=100), nullable=True),
        sa.CheckConstraint(
            "winner IN ('model_a', 'model_b', 'tie', 'tie (bothbad)')", name="ck_vote_winner"
        ),
        sa.CheckConstraint("model_a_id <> model_b_id", name="ck_vote_two_models"),
        sa.ForeignKeyConstraint(
            ["battle_id"],
            ["battle.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_a_id"],
            ["model.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_b_id"],
            ["model.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("battle_id"),
    )
    op.create_index("ix_vote_voted_at", "vote", ["voted_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_vote_voted_at", table_name="vote")

    op.drop_table("vote")
    op.drop_table("message")
    op.drop_index("ix_model_event_model_id", table_name="model_event")

    op.drop_table("model_event")
    op.drop_index("ix_battle_created_at", table_name="battle")

    op.drop_table("battle")
    op.drop_table("model")
