"""look-back campaigns (回头看): campaign kind, hazard origin, recheck items, 三看 answers

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 08:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'kind', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='campaign', nullable=False
        ))
        batch_op.add_column(sa.Column('looks_back_on', sqlmodel.sql.sqltypes.AutoString(), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('recheck_share', sa.Float(), server_default='0.2', nullable=False))
        batch_op.add_column(sa.Column('recheck_photo', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('three_looks', sqlmodel.sql.sqltypes.AutoString(), server_default='',
                                      nullable=False))
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'origin', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='自查', nullable=False
        ))
        batch_op.add_column(sa.Column('origin_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('linked_hazard_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('missed_by_school', sa.Boolean(), server_default='0', nullable=False))
        batch_op.create_foreign_key(
            batch_op.f('fk_hazard_linked_hazard_id_hazard'), 'hazard', ['linked_hazard_id'], ['id']
        )
    op.create_table(
        'recheck_item',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('hazard_id', sa.Integer(), nullable=False),
        sa.Column('unit_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('checked_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('new_hazard_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_recheck_item_campaign_id_campaign')),
        sa.ForeignKeyConstraint(['checked_by'], ['person.id'], name=op.f('fk_recheck_item_checked_by_person')),
        sa.ForeignKeyConstraint(['hazard_id'], ['hazard.id'], name=op.f('fk_recheck_item_hazard_id_hazard')),
        sa.ForeignKeyConstraint(['new_hazard_id'], ['hazard.id'], name=op.f('fk_recheck_item_new_hazard_id_hazard')),
        sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_recheck_item_unit_id_unit')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recheck_item')),
        sa.UniqueConstraint('campaign_id', 'number', name=op.f('uq_recheck_item_campaign_id')),
    )
    with op.batch_alter_table('recheck_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recheck_item_hazard_id'), ['hazard_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_recheck_item_unit_id'), ['unit_id'], unique=False)
    op.create_table(
        'lookback_answer',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('unit_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('item', sa.Integer(), nullable=False),
        sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('person_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_lookback_answer_campaign_id_campaign')),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_lookback_answer_person_id_person')),
        sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_lookback_answer_unit_id_unit')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lookback_answer')),
        sa.UniqueConstraint('campaign_id', 'unit_id', 'item', name=op.f('uq_lookback_answer_campaign_id')),
    )


def downgrade() -> None:
    op.drop_table('lookback_answer')
    with op.batch_alter_table('recheck_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recheck_item_unit_id'))
        batch_op.drop_index(batch_op.f('ix_recheck_item_hazard_id'))
    op.drop_table('recheck_item')
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_hazard_linked_hazard_id_hazard'), type_='foreignkey')
        batch_op.drop_column('missed_by_school')
        batch_op.drop_column('linked_hazard_id')
        batch_op.drop_column('origin_date')
        batch_op.drop_column('origin')
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.drop_column('recheck_photo')
        batch_op.drop_column('recheck_share')
        batch_op.drop_column('looks_back_on')
        batch_op.drop_column('kind')
