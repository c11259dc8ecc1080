"""The outbox's rows still to send get their own partial index (state = 'pending'), in place of (state, next_attempt_at)

The sender's queries read only pending rows; the old index also held every sent row, and the @-notice merge's
lookup by robot read all of a webhook's rows ever sent.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 19:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0016'
down_revision: Union[str, None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.create_index('ix_outbox_pending', 'outbox', ['robot', 'next_attempt_at'], unique=False,
                    postgresql_where=_PENDING, sqlite_where=_PENDING)
    op.drop_index('ix_outbox_state_next', table_name='outbox')


def downgrade() -> None:
    op.create_index('ix_outbox_state_next', 'outbox', ['state', 'next_attempt_at'], unique=False)
    op.drop_index('ix_outbox_pending', table_name='outbox')
