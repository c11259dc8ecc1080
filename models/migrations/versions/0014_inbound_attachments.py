"""inbound_attachment: a recorded message's photos, downloaded by the receiving side after the ack;
inbound_message.photos counts them

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 12:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision: str = '0014'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'inbound_attachment',
        sa.Column('inbound_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ['inbound_id'], ['inbound_message.id'], name=op.f('fk_inbound_attachment_inbound_id_inbound_message')
        ),
        sa.PrimaryKeyConstraint('inbound_id', 'position', name=op.f('pk_inbound_attachment')),
    )
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photos', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.drop_column('photos')
    op.drop_table('inbound_attachment')
