"""Alembic environment: runs against the connection handed over by models.db.upgrade."""

from alembic import context

import models.tables  # noqa: F401  (registers every table on the metadata)
from models.tables import metadata

config = context.config


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Render our zone-aware column type as the plain SQL type it stores."""
    if type_ == "type" and isinstance(obj, models.tables.AwareDateTime):
        return "sa.DateTime(timezone=True)"
    return False


OPTIONS = dict(target_metadata=metadata, render_as_batch=True, compare_type=True, render_item=render_item)
connection = config.attributes.get("connection")

if connection is None:  # `alembic` CLI use: take the URL from -x url=...
    from models.db import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///data/safetybot.db")
    engine = make_engine(url)
    with engine.begin() as connection:
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()
