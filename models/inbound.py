"""The inbound journal: callbacks recorded before they are acknowledged, claimed and finished by handlers."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    bindparam,
    delete,
    exists,
    literal_column,
    or_,
    update,
)
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col, select

from models.directory_cache import version_column
from models.ids import stored_ids
from models.tables import InboundAttachment, InboundMessage, OutboxMessage, PendingPhoto, ReportDraft
from models.upsert import dialect_of, insert_on_conflict, table_of


def record_inbound(connection: Connection, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Insert journal rows in one executemany, skipping platform ids already stored; returns
    {(platform, platform_msg_id): row id} of the rows that were new."""
    statement = insert_on_conflict(
        dialect_of(connection), InboundMessage, conflict=("platform", "platform_msg_id"),
        returning=("id", "platform", "platform_msg_id"),
    )
    return {(platform, msg_id): row_id for row_id, platform, msg_id in connection.execute(statement, list(rows))}


def unhandled_inbound(session: Session, *, received_before: datetime) -> list[int]:
    """Ids of rows still `received` that arrived at or before a time, oldest first."""
    return stored_ids(
        session.exec(
            select(col(InboundMessage.id))
            .where(InboundMessage.state == "received", InboundMessage.received_at <= received_before)
            .order_by(col(InboundMessage.id))
        )
    )


class InboundRow(NamedTuple):
    """A recorded message as stored (what handling needs of its row); `photos`: how many are stored with it."""

    platform: str
    platform_msg_id: str
    chat_id: str
    sender_id: str
    text: str
    received_at: datetime
    route: str
    photos: int


class Claimed(NamedTuple):
    """A claimed message: its route (JSON text), the directory version, and whether statements that find nothing
    in the common case can be skipped: False when no photo waits in the pending table (anyone's, expired ones
    too) or no draft report is kept in the message's chat (anyone's). `row`: the message itself, read by the
    claim (None for a message that was never recorded)."""

    route: str
    version: int | None
    pending_photos: bool = True
    drafts_in_chat: bool = True
    row: InboundRow | None = None


def claim_inbound(session: Session, inbound_id: int, *, message: bool = False) -> Claimed | None:
    """Move a `received` row to `processing` in the caller's transaction, reading in the same statement the
    directory version (see models/directory_cache.py), whether photos or drafts wait and (`message`) the
    message itself; None when it was not `received` (handled meanwhile)."""
    row = session.connection().execute(_CLAIM_MESSAGE if message else _CLAIM, {"inbound_id": inbound_id}).first()
    if row is None:
        return None
    route = str(row[0] or "{}")
    read = InboundRow(row[4], row[5], row[6], row[7], row[8], row[9], route, int(row[10] or 0)) if message else None
    return Claimed(route, int(row[1] or 0), bool(row[2]), bool(row[3]), read)


def load_inbound(session: Session, inbound_id: int) -> InboundRow | None:
    """A recorded message while it still awaits handling (`received`), else None; one prebuilt Core SELECT."""
    row = session.connection().execute(_LOAD, {"inbound_id": inbound_id}).first()
    return None if row is None else InboundRow(*row[:6], str(row[6] or "{}"), int(row[7] or 0))


def finish_inbound(
    session: Session, inbound_id: int, *, state: str, reply_text: str, reply: dict[str, Any] | None = None
) -> None:
    """Mark a claimed row handled (or failed) with its reply, in the caller's transaction, and queue `reply`
    (an outbox row's values, models/outbox.py `new_row`; nothing when its dedupe key is queued already): on
    PostgreSQL one statement (the finish as a data-modifying CTE of the outbox INSERT), on SQLite two."""
    connection = session.connection()
    finish = {"inbound_id": inbound_id, "inbound_state": state, "reply_text": reply_text}
    if reply is None:
        connection.execute(_FINISH, finish)
    elif dialect_of(connection) == "postgresql":
        statement = _finish_and_queue(tuple(reply))
        connection.execute(statement, {**{f"outbox_{name}": value for name, value in reply.items()}, **finish})
    else:
        connection.execute(_FINISH, finish)
        connection.execute(insert_on_conflict("sqlite", OutboxMessage, conflict=("dedupe_key",)), reply)


def store_inbound_attachments(session: Session, inbound_id: int, files: Sequence[tuple[str, str, bytes]]) -> None:
    """Keep a recorded message's downloaded photos, (filename, content type, bytes) in message order, and
    their number on the message, in the caller's transaction (a second download replaces the first)."""
    session.execute(delete(InboundAttachment).where(col(InboundAttachment.inbound_id) == inbound_id))
    session.add_all(
        InboundAttachment(inbound_id=inbound_id, position=position, filename=name, content_type=kind, data=data)
        for position, (name, kind, data) in enumerate(files)
    )
    session.execute(update(InboundMessage).where(col(InboundMessage.id) == inbound_id).values(photos=len(files)))


def inbound_attachments(session: Session, inbound_id: int) -> list[InboundAttachment]:
    """A recorded message's stored photos, in message order (read only when its `photos` count says so)."""
    return list(session.exec(
        select(InboundAttachment)
        .where(InboundAttachment.inbound_id == inbound_id)
        .order_by(col(InboundAttachment.position))
    ))


def take_inbound_attachments(session: Session, inbound_id: int) -> list[tuple[str, str, bytes]]:
    """Delete a message's stored photos in the caller's transaction and return them, (filename, content type,
    bytes) in message order: one DELETE … RETURNING (a rollback keeps them for the next attempt)."""
    rows = session.connection().execute(_TAKE_ATTACHMENTS, {"inbound_id": inbound_id}).all()
    return [(str(name), str(kind), bytes(data)) for _position, name, kind, data in sorted(rows, key=lambda r: r[0])]


def drop_inbound_attachments(session: Session, inbound_id: int) -> None:
    """Delete a message's stored photos, in the caller's transaction (the one that handles it)."""
    session.execute(delete(InboundAttachment).where(col(InboundAttachment.inbound_id) == inbound_id))


def drop_stale_inbound_attachments(session: Session, *, received_before: datetime) -> int:
    """Delete the stored photos of messages no longer awaiting handling, or received before a time; how many."""
    stale = select(col(InboundMessage.id)).where(
        or_(col(InboundMessage.state) != "received", col(InboundMessage.received_at) < received_before)
    )
    result = session.execute(delete(InboundAttachment).where(col(InboundAttachment.inbound_id).in_(stale)))
    return int(cast(CursorResult[Any], result).rowcount or 0)  # a DELETE's result is a CursorResult


# Built once (Core, on the table): handling runs them for every message.
_TABLE = table_of(InboundMessage)
_PENDING = table_of(PendingPhoto)
_DRAFT = table_of(ReportDraft)
_ATTACHMENT = table_of(InboundAttachment)
# The message's own columns, after the route (the claim's first column): what `InboundRow` holds.
_MESSAGE = (_TABLE.c.platform, _TABLE.c.platform_msg_id, _TABLE.c.chat_id, _TABLE.c.sender_id, _TABLE.c.text,
            _TABLE.c.received_at)
_LOAD = sa_select(*_MESSAGE, _TABLE.c.route, _TABLE.c.photos).where(
    _TABLE.c.id == bindparam("inbound_id"), _TABLE.c.state == "received"
)
_TAKE_ATTACHMENTS = (
    delete(_ATTACHMENT)
    .where(_ATTACHMENT.c.inbound_id == bindparam("inbound_id"))
    .returning(_ATTACHMENT.c.position, _ATTACHMENT.c.filename, _ATTACHMENT.c.content_type, _ATTACHMENT.c.data)
)
_CLAIM = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("inbound_id"), _TABLE.c.state == "received")
    .values(state="processing")
    .returning(
        _TABLE.c.route, version_column(),
        exists(sa_select(literal_column("1")).select_from(_PENDING)),
        exists(sa_select(literal_column("1")).select_from(_DRAFT).where(
            # qualified by hand: SQLite's RETURNING names the row's columns bare, which the subquery would take
            # as the draft's own
            _DRAFT.c.platform == literal_column("inbound_message.platform"),
            _DRAFT.c.chat_id == literal_column("inbound_message.chat_id"),
        )),
    )
)
_CLAIM_MESSAGE = _CLAIM.returning(*_MESSAGE, _TABLE.c.photos)  # adds to the RETURNING list
# Its own parameter names: the outbox row it may go with has a `state` too.
_FINISH = update(_TABLE).where(_TABLE.c.id == bindparam("inbound_id")).values(
    state=bindparam("inbound_state"), reply_text=bindparam("reply_text")
)


@functools.cache
def _finish_and_queue(columns: tuple[str, ...]) -> Any:
    """WITH finished AS (UPDATE inbound_message …) INSERT INTO outbox … ON CONFLICT DO NOTHING. The outbox
    values are bound by names of their own: a parameter named like an inbound_message column would be SET by
    the UPDATE too."""
    values: dict[str, Any] = {name: bindparam(f"outbox_{name}") for name in columns}
    return (
        postgresql.insert(table_of(OutboxMessage)).values(values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .add_cte(_FINISH.cte("finished"))
    )
