"""battle_features: per-battle style counts (conv_metadata) and category tags

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

One row per voted battle: answer and prompt tokens, markdown headers (h1..h6), list items
(ordered / unordered) and bold spans (** / __) per side, summed over turns; the detected
language and category tags, with the version of the tagger that set them.  Battles stored
before this revision get their rows from `arena db backfill-style`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = (
    [f"header_{s}_h{k}" for s in "ab" for k in range(1, 7)]
    + [f"list_{s}_{kind}" for s in "ab" for kind in ("ordered", "unordered")]
    + [f"bold_{s}_{kind}" for s in "ab" for kind in ("star", "under")]
)
_TAGS = ("tag_coding", "tag_math", "tag_multi_turn", "tag_long_query", "tag_hard_prompt")


def upgrade() -> None:
    op.create_table(
        "battle_features",
        sa.Column("battle_id", sa.String(length=64), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("sum_user_tokens", sa.Integer(), nullable=False),
        sa.Column("sum_assistant_a_tokens", sa.Integer(), nullable=False),
        sa.Column("sum_assistant_b_tokens", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        sa.Column("language", sa.String(length=20), nullable=True),
        *(sa.Column(name, sa.Boolean(), nullable=True) for name in _TAGS),
        sa.Column("tagger_version", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["battle_id"], ["battle.id"]),
        sa.PrimaryKeyConstraint("battle_id"),
    )


def downgrade() -> None:
    op.drop_table("battle_features")
