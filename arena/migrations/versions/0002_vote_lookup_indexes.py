"""indexes for the per-vote lookups: vote.question_id, vote (judge, voted_at)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Every vote in the app asks how many counted votes share its question (the duplicate-prompt
exclusion) and how many votes its voter cast in the last day (the votes-per-day limit);
without these indexes each is a scan of the whole vote table per vote.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_vote_question_id", "vote", ["question_id"], unique=False)
    op.create_index("ix_vote_judge_voted_at", "vote", ["judge", "voted_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_vote_judge_voted_at", table_name="vote")
    op.drop_index("ix_vote_question_id", table_name="vote")
