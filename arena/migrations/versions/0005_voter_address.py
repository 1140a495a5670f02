"""voters are browsers: the client address is kept apart from the voter, as a keyed hash

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

* ``battle.address_key``: keyed hash of the client address the battle came from.  The voter
  (``battle.user_key``, the ``judge`` of its vote) is now a per-browser id when the browser
  holds the arena's voter cookie, so one address can be many voters; the address stays a
  separate, higher ceiling for prompts and votes, and a group signal for the rigging tests.
  NULL for battles from before this revision (their ``user_key`` was the address hash).
* ``ix_battle_address_key_created_at``: one address's recent battles, for those ceilings.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("battle") as batch:
        batch.add_column(sa.Column("address_key", sa.String(length=128), nullable=True))
    op.create_index(
        "ix_battle_address_key_created_at", "battle", ["address_key", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_battle_address_key_created_at", table_name="battle")
    with op.batch_alter_table("battle") as batch:
        batch.drop_column("address_key")
