"""admin: the live roster's state on ``model``, more model event kinds, the admin audit log

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

* ``model.disabled_at``, ``model.weight``, ``model.entry_toml``: the admin page's live roster
  (a disabled model is not drawn for new battles; a weight overrides the roster file's; an
  entry added on the page keeps its validated TOML so every replica can build it).
* ``model_event.kind`` may also be ``enabled``, ``disabled``, ``reweighted`` or ``added``.
* ``admin_action``: every admin action (and failed login): who, what, when, from where.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KINDS = "kind IN ('registered', 'updated', 'deprecated')"
_NEW_KINDS = (
    "kind IN ('registered', 'updated', 'deprecated', 'enabled', 'disabled', 'reweighted', 'added')"
)


def upgrade() -> None:
    with op.batch_alter_table("model") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("weight", sa.Float(), nullable=True))
        batch.add_column(sa.Column("entry_toml", sa.Text(), nullable=True))
    with op.batch_alter_table("model_event") as batch:
        batch.drop_constraint("ck_model_event_kind", type_="check")
        batch.create_check_constraint("ck_model_event_kind", _NEW_KINDS)
    op.create_table(
        "admin_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("address_key", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.String(length=2000), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_admin_action_at", "admin_action", ["at"], unique=False)
    op.create_index(
        "ix_admin_action_address_action_at",
        "admin_action",
        ["address_key", "action", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_admin_action_address_action_at", table_name="admin_action")
    op.drop_index("ix_admin_action_at", table_name="admin_action")
    op.drop_table("admin_action")
    # Events of the new kinds cannot satisfy the old constraint: they go with it.
    op.execute(
        "DELETE FROM model_event WHERE kind IN ('enabled', 'disabled', 'reweighted', 'added')"
    )
    with op.batch_alter_table("model_event") as batch:
        batch.drop_constraint("ck_model_event_kind", type_="check")
        batch.create_check_constraint("ck_model_event_kind", _OLD_KINDS)
    with op.batch_alter_table("model") as batch:
        batch.drop_column("entry_toml")
        batch.drop_column("weight")
        batch.drop_column("disabled_at")
