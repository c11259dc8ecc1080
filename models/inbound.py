"""The inbound journal: callbacks recorded before they are acknowledged, claimed and finished by handlers."""

from __future__ import annotations

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
from sqlmodel import Session, col, select

from models.directory_cache import version_column
from models.ids import stored_ids
from models.tables import InboundAttachment, InboundMessage, PendingPhoto, ReportDraft
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


class Claimed(NamedTuple):
    """A claimed message: its route (JSON text), the directory version, and whether statements that find nothing
    in the common case can be skipped: False when no photo waits in the pending table (anyone's, expired ones
    too) or no draft report is kept in the message's chat (anyone's)."""

    route: str
    version: int | None
    pending_photos: bool = True
    drafts_in_chat: bool = True


def claim_inbound(session: Session, inbound_id: int) -> Claimed | None:
    """Move a `received` row to `processing` in the caller's transaction, reading in the same statement the
    directory version (see models/directory_cache.py) and whether photos or drafts wait; None when it was not
    `received` (handled meanwhile)."""
    row = session.connection().execute(_CLAIM, {"inbound_id": inbound_id}).first()
    return None if row is None else Claimed(str(row[0] or "{}"), int(row[1] or 0), bool(row[2]), bool(row[3]))


def finish_inbound(session: Session, inbound_id: int, *, state: str, reply_text: str) -> None:
    """Mark a claimed row handled (or failed) with its reply, in the caller's transaction."""
    session.connection().execute(_FINISH, {"inbound_id": inbound_id, "state": state, "reply_text": reply_text})


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
_FINISH = update(_TABLE).where(_TABLE.c.id == bindparam("inbound_id")).values(
    state=bindparam("state"), reply_text=bindparam("reply_text")
)
