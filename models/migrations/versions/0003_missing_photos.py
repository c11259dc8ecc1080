"""attachment: a photo whose file could not be written is kept as missing and fetched again

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 03:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('attachment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_msg_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('missing_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column(
            'missing_reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False, server_default=''
        ))
        batch_op.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_attachment_source_msg_id_inbound_message'), 'inbound_message', ['source_msg_id'], ['id']
        )
        batch_op.create_index(batch_op.f('ix_attachment_retry_at'), ['retry_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('attachment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachment_retry_at'))
        batch_op.drop_constraint(batch_op.f('fk_attachment_source_msg_id_inbound_message'), type_='foreignkey')
        batch_op.drop_column('retry_at')
        batch_op.drop_column('missing_reason')
        batch_op.drop_column('missing_since')
        batch_op.drop_column('source_msg_id')
