"""directory_version: a counter that triggers bump on every directory change (for per-process caches)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 08:50:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The directory tables, and for an UPDATE the columns a cached copy keeps (campaign.next_number changes with
# every report and is never cached, so it bumps nothing).
WATCHED = {
    'campaign': 'name, start, "end", timezone, report_every_days, report_first, report_at',
    'unit': None,
    'person': None,
    'chat_group': None,
    'group_unit': None,
}
BUMP = 'UPDATE directory_version SET version = version + 1 WHERE id = 1'


def upgrade() -> None:
    op.create_table(
        'directory_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_version')),
    )
    op.execute("INSERT INTO directory_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            "CREATE FUNCTION bump_directory_version() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table, columns in WATCHED.items():
            update = f"UPDATE OF {columns}" if columns else "UPDATE"
            op.execute(
                f"CREATE TRIGGER {table}_directory_version AFTER INSERT OR {update} OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_version()"
            )
        return
    for table, columns in WATCHED.items():  # SQLite: row triggers only
        for event in ('INSERT', f'UPDATE OF {columns}' if columns else 'UPDATE', 'DELETE'):
            name = f"{table}_directory_version_{event.split()[0].lower()}"
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_directory_version ON {table}")
        op.execute("DROP FUNCTION IF EXISTS bump_directory_version()")
    else:
        for table in WATCHED:
            for event in ('insert', 'update', 'delete'):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_directory_version_{event}")
    op.drop_table('directory_version')
