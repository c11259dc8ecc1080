"""Alembic environment: runs against the connection handed over by models.db.upgrade."""

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

import models.tables  # noqa: F401  (registers every table on the metadata)
from models.tables import metadata

config = context.config


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our zone-aware column type as the plain SQL type it stores."""
    if type_ == "type" and isinstance(obj, models.tables.AwareDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")

if connection is None:  # `alembic` CLI use: take the URL from -x url=...
    from models.db import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///data/safetybot.db")
    engine = make_engine(url)
    with engine.begin() as connection:
        run_migrations(connection)
else:
    run_migrations(connection)
