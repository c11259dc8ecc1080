"""The duplicate check's place keys on hazards: hazard.place_numbers, hazard.place_head, and their indexes

Existing hazards get their keys from their 部位, computed as models.places computes them (copied here, so
that this migration means the same thing later).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 12:00:00
"""
import re
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes


revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_PUNCTUATION_RE = re.compile(r"[\s，,。.；;、！!？?：:（）()了的]+")
_CN_DIGITS = str.maketrans("零一二两三四五六七八九", "01223456789")
_NUMBER_RE = re.compile(r"\d+")
_BATCH = 1000


def _keys(location: str) -> dict[str, str]:
    return {
        "numbers": ",".join(_NUMBER_RE.findall(location.translate(_CN_DIGITS))),
        "head": _NUMBER_RE.sub("", _PUNCTUATION_RE.sub("", location).translate(_CN_DIGITS))[:2],
    }


def upgrade() -> None:
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('place_numbers', sqlmodel.sql.sqltypes.AutoString(), server_default='', nullable=False)
        )
        batch_op.add_column(
            sa.Column('place_head', sqlmodel.sql.sqltypes.AutoString(length=8), server_default='', nullable=False)
        )
    hazard = sa.table(
        'hazard', sa.column('id', sa.Integer()), sa.column('location', sa.String()),
        sa.column('place_numbers', sa.String()), sa.column('place_head', sa.String()),
    )
    fill = (
        sa.update(hazard).where(hazard.c.id == sa.bindparam('the_id'))
        .values(place_numbers=sa.bindparam('numbers'), place_head=sa.bindparam('head'))
    )
    connection = op.get_bind()
    last = 0
    while True:
        rows = connection.execute(
            sa.select(hazard.c.id, hazard.c.location).where(hazard.c.id > last).order_by(hazard.c.id).limit(_BATCH)
        ).all()
        if not rows:
            break
        connection.execute(fill, [{"the_id": row.id, **_keys(row.location or "")} for row in rows])
        last = rows[-1].id
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.create_index('ix_hazard_place_numbers', ['campaign_id', 'unit_id', 'place_numbers'], unique=False)
        batch_op.create_index(
            'ix_hazard_place_head', ['campaign_id', 'unit_id', 'place_head', 'place_numbers'], unique=False
        )
        batch_op.create_index(
            'ix_hazard_place_building', ['campaign_id', 'building_id', 'unit_id', 'place_numbers'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.drop_index('ix_hazard_place_building')
        batch_op.drop_index('ix_hazard_place_head')
        batch_op.drop_index('ix_hazard_place_numbers')
        batch_op.drop_column('place_head')
        batch_op.drop_column('place_numbers')
