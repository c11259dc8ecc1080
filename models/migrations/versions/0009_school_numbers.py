"""Hazard numbers per school within a campaign: hazard.school_id, the hazard_counter table

Existing hazards keep their numbers (unique in their campaign, so also in their school): every #N people
wrote down still finds its hazard. Their school_id is filled at the next start-up from the config's
buildings (models.ledger.assign_hazard_schools), which also starts each school's counter after its
highest number.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'hazard_counter',
        sa.Column('campaign_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('school_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('next_number', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_hazard_counter_campaign_id_campaign')),
        sa.PrimaryKeyConstraint('campaign_id', 'school_id', name=op.f('pk_hazard_counter')),
    )
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.add_column(sa.Column('school_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.drop_constraint('uq_hazard_campaign_id', type_='unique')
        batch_op.create_unique_constraint('uq_hazard_campaign_school_number', ['campaign_id', 'school_id', 'number'])


def downgrade() -> None:
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.drop_constraint('uq_hazard_campaign_school_number', type_='unique')
        batch_op.create_unique_constraint('uq_hazard_campaign_id', ['campaign_id', 'number'])
        batch_op.drop_column('school_id')
    op.drop_table('hazard_counter')
