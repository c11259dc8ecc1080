"""An index on outbox.robot: WeCom callbacks look up the reply held for their passive answer by it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 12:00:00
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ix_outbox_robot', 'outbox', ['robot'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_robot', table_name='outbox')
