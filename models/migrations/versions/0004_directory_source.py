"""unit, person: where a row comes from (the TOML or the platform directory), platform department ids

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 04:20:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default='config'
        ))
        batch_op.add_column(sa.Column('platform_dept_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default='config'
        ))
        batch_op.add_column(sa.Column('left_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('left_at')
        batch_op.drop_column('source')
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.drop_column('platform_dept_id')
        batch_op.drop_column('source')
