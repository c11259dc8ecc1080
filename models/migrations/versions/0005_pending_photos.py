"""pending_photo: a photo sent without words waits for its sender's next report or 整改

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 04:20:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'pending_photo',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('sender_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('chat_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('source_msg_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ['source_msg_id'], ['inbound_message.id'], name=op.f('fk_pending_photo_source_msg_id_inbound_message')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_photo')),
    )
    with op.batch_alter_table('pending_photo', schema=None) as batch_op:
        batch_op.create_index('ix_pending_photo_sender_chat', ['platform', 'sender_id', 'chat_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pending_photo_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pending_photo', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_photo_received_at'))
        batch_op.drop_index('ix_pending_photo_sender_chat')
    op.drop_table('pending_photo')
