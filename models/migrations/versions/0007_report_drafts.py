"""report_draft, draft_photo: a doubtful report waits for its sender's answer before it is registered

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 08:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'report_draft',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('sender_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('chat_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('campaign_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('source_msg_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_report_draft_campaign_id_campaign')),
        sa.ForeignKeyConstraint(
            ['source_msg_id'], ['inbound_message.id'], name=op.f('fk_report_draft_source_msg_id_inbound_message')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_report_draft')),
    )
    with op.batch_alter_table('report_draft', schema=None) as batch_op:
        batch_op.create_index('ix_report_draft_sender_chat', ['platform', 'sender_id', 'chat_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_draft_expires_at'), ['expires_at'], unique=False)
    op.create_table(
        'draft_photo',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('draft_id', sa.Integer(), nullable=False),
        sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('source_msg_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['draft_id'], ['report_draft.id'], name=op.f('fk_draft_photo_draft_id_report_draft')),
        sa.ForeignKeyConstraint(
            ['source_msg_id'], ['inbound_message.id'], name=op.f('fk_draft_photo_source_msg_id_inbound_message')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_draft_photo')),
    )
    with op.batch_alter_table('draft_photo', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_draft_photo_draft_id'), ['draft_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('draft_photo', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_draft_photo_draft_id'))
    op.drop_table('draft_photo')
    with op.batch_alter_table('report_draft', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_draft_expires_at'))
        batch_op.drop_index('ix_report_draft_sender_chat')
    op.drop_table('report_draft')
