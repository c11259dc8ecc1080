"""Outbox rows: enqueue once per dedupe key, claim due rows, record the outcome."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, String, bindparam, case, cast, func, literal, literal_column, or_, update
from sqlmodel import Session, select
from sqlmodel import col

from models.ids import stored_id, stored_ids
from models.tables import OutboxMessage, OutboxState
from models.upsert import dialect_of, insert_on_conflict, table_of

PRIORITY_NORMAL = 0
PRIORITY_URGENT = 10  # 重大 alerts: first in their robot's turn


def enqueue(
    session: Session,
    *,
    dedupe_key: str,
    platform: str,
    channel: str,
    robot: str,
    now: datetime,
    give_up_after: timedelta,
    kind: str = "text",
    payload: dict[str, Any] | None = None,
    blob: bytes | None = None,
    group_id: str | None = None,
    priority: int = PRIORITY_NORMAL,
) -> int | None:
    """Insert a message unless its key exists; returns the new row id, or None for a duplicate."""
    values = _new_row(
        dedupe_key=dedupe_key, platform=platform, channel=channel, robot=robot, group_id=group_id,
        priority=priority, kind=kind, payload=payload, blob=blob, now=now, give_up_at=now + give_up_after,
    )
    return _insert_new(session.connection(), values)


def new_row(
    *, dedupe_key: str, platform: str, channel: str, robot: str, now: datetime, give_up_after: timedelta,
    kind: str = "text", payload: dict[str, Any] | None = None, group_id: str | None = None,
    priority: int = PRIORITY_NORMAL,
) -> dict[str, Any]:
    """The values of a pending outbox row, for a statement that inserts it along with other work (`enqueue`'s
    rules: kept once per dedupe key; models/inbound.py `finish_inbound`)."""
    return _new_row(
        dedupe_key=dedupe_key, platform=platform, channel=channel, robot=robot, group_id=group_id,
        priority=priority, kind=kind, payload=payload, blob=None, now=now, give_up_at=now + give_up_after,
    )


def _new_row(
    *, dedupe_key: str, platform: str, channel: str, robot: str, group_id: str | None, priority: int, kind: str,
    payload: dict[str, Any] | None, blob: bytes | None, now: datetime, give_up_at: datetime,
) -> dict[str, Any]:
    return dict(
        dedupe_key=dedupe_key, platform=platform, channel=channel, robot=robot, group_id=group_id,
        priority=priority, kind=kind, payload=json.dumps(payload or {}, ensure_ascii=False), blob=blob,
        state=OutboxState.PENDING.value, attempts=0, created_at=now, next_attempt_at=now,
        give_up_at=give_up_at, last_error="",
    )


def _insert_new(connection: Connection, values: dict[str, Any]) -> int | None:
    # Built once and cached (see models/upsert.py); RETURNING, not rowcount: psycopg reports -1 for DO NOTHING.
    statement = insert_on_conflict(dialect_of(connection), OutboxMessage, conflict=("dedupe_key",), returning=("id",))
    return connection.execute(statement, values).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One outbox message to add (the platform-neutral part of a rendered draft)."""

    channel: str
    robot: str
    kind: str
    payload: dict[str, Any]
    blob: bytes | None = None


def expand(db: Engine, parent_id: int, messages: Sequence[QueuedMessage], *, now: datetime) -> int:
    """Replace a claimed pending row by its messages, in one transaction: each is inserted under
    `<parent key>#1`, `#2` … (an existing key is left alone, so a retried expansion adds nothing) with the
    parent's platform, group, priority and give-up time, and the parent becomes `expanded`. Returns how many
    rows were added; none when the parent is no longer pending (then nothing changes)."""
    with Session(db) as session:
        parent = session.get(OutboxMessage, parent_id)
        if parent is None or parent.state != OutboxState.PENDING.value:
            return 0
        added = _add_children(session, parent, messages, first=1, now=now)
        result = session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == parent_id, col(OutboxMessage.state) == OutboxState.PENDING.value)
            .values(state=OutboxState.EXPANDED.value, claimed_until=None, attempts=OutboxMessage.attempts + 1,
                    last_error="")
        )
        if result.rowcount != 1:  # taken meanwhile (its lease ran out): the other sender expands it
            session.rollback()
            return 0
        session.commit()
    return added


def _add_children(
    session: Session, parent: OutboxMessage, messages: Sequence[QueuedMessage], *, first: int, now: datetime
) -> int:
    """Insert a parent's messages as `<parent key>#<first>`, … (existing keys are left alone); how many were new."""
    return _insert_children(session.connection(), parent, messages, first=first, now=now)


def _insert_children(
    connection: Connection, parent: OutboxMessage, messages: Sequence[QueuedMessage], *, first: int, now: datetime
) -> int:
    added = 0
    for index, message in enumerate(messages, start=first):
        added += _insert_new(connection, _child_row(parent, index, message, now)) is not None
    return added


def _child_row(parent: OutboxMessage, index: int, message: QueuedMessage, now: datetime) -> dict[str, Any]:
    """The values of a parent's message `<parent key>#<index>`: the parent's group, priority and give-up time."""
    return _new_row(
        dedupe_key=f"{parent.dedupe_key}#{index}", platform=parent.platform, channel=message.channel,
        robot=message.robot, group_id=parent.group_id, kind=message.kind, payload=dict(message.payload),
        blob=message.blob, now=now, give_up_at=parent.give_up_at, priority=parent.priority,
    )


_OUTBOX = table_of(OutboxMessage)
# `state = 'pending'` with the value written out, not bound: then even a prepared statement's generic plan
# implies the predicate of the partial index `ix_outbox_pending` and reads only the rows still to send.
PENDING_ONLY = _OUTBOX.c.state == literal_column(f"'{OutboxState.PENDING.value}'")
# Unconditional, as mark_sent / mark_failed: the first message's outcome is what it is.
_SETTLE_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("b_id"))
    .values(state=OutboxState.SENT.value, sent_at=bindparam("b_at"), claimed_until=None,
            attempts=_OUTBOX.c.attempts + 1)
)
_MARK_FAILED = (  # a settled row whose first message failed for good, and mark_failed
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("b_id"))
    .values(state=OutboxState.FAILED.value, claimed_until=None, attempts=_OUTBOX.c.attempts + 1,
            last_error=bindparam("b_error"))
)


def settle_with_children(
    db: Engine, parent: OutboxMessage, messages: Sequence[QueuedMessage], *, now: datetime, sent: bool, error: str = ""
) -> int:
    """Record the outcome of a claimed row that carried its first message itself (sent, or failed with `error`)
    and, in the same transaction, add the messages that follow it as `<parent key>#2`, `#3` … (an existing key
    is left alone, so a retried row adds nothing). Returns how many rows were added."""
    # Core on one connection, prebuilt statements: the claimed row's key, group and times are all the children
    # need (no SELECT, no ORM session).
    with db.begin() as connection:
        added = _insert_children(connection, parent, messages, first=2, now=now)
        if sent:
            connection.execute(_SETTLE_SENT, {"b_id": parent.id, "b_at": now})
        else:
            connection.execute(_MARK_FAILED, {"b_id": parent.id, "b_error": error[:2000]})
    return added


@dataclass(frozen=True, slots=True)
class Settled:
    """A claimed row's first message outcome (at `at`) and the messages that follow it (see `settle_many`)."""

    parent: OutboxMessage
    messages: Sequence[QueuedMessage]
    at: datetime
    sent: bool
    error: str = ""


def settle_many(db: Engine, settled: Sequence[Settled]) -> None:
    """`settle_with_children` for several rows in one transaction: their children in one INSERT … ON CONFLICT DO
    NOTHING sent as a batch (existing keys are left alone), their outcomes in one UPDATE per outcome."""
    if not settled:
        return
    children = [
        _child_row(item.parent, index, message, item.at)
        for item in settled for index, message in enumerate(item.messages, start=2)
    ]
    sent = [{"b_id": item.parent.id, "b_at": item.at} for item in settled if item.sent]
    failed = [{"b_id": item.parent.id, "b_error": item.error[:2000]} for item in settled if not item.sent]
    with db.begin() as connection:
        if children:
            connection.execute(insert_on_conflict(dialect_of(connection), OutboxMessage, conflict=("dedupe_key",)),
                               children)
        if sent:
            connection.execute(_SETTLE_SENT, sent)
        if failed:
            connection.execute(_MARK_FAILED, failed)


def _candidates_statement(skipping: bool) -> Any:
    t = _OUTBOX.c
    due = [
        PENDING_ONLY,
        t.next_attempt_at <= bindparam("b_now", type_=t.next_attempt_at.type),
        or_(t.claimed_until.is_(None), t.claimed_until < bindparam("b_now", type_=t.claimed_until.type)),
    ]
    if skipping:
        due.append(t.robot.not_in(bindparam("b_skip", expanding=True)))
    turn = func.row_number().over(partition_by=t.robot, order_by=(t.priority.desc(), t.id)).label("turn")
    ranked = select(t.id, t.robot, t.priority, turn).where(*due).subquery()
    return (
        select(ranked.c.id, ranked.c.robot)
        .where(ranked.c.turn <= bindparam("b_per_robot"))
        .order_by(ranked.c.priority.desc(), ranked.c.turn, ranked.c.id)
        .limit(bindparam("b_limit"))
    )


# Built once: every sender pass runs one (no statement construction and cache-key walk each time).
_CANDIDATES = {skipping: _candidates_statement(skipping) for skipping in (False, True)}


def due_candidates(
    db: Engine, *, now: datetime, limit: int, per_robot: int | None = None, skip_robots: Collection[str] = ()
) -> list[tuple[int, str]]:
    """(id, robot) of due, unleased pending rows, taking turns between robots.

    Each robot contributes at most `per_robot` rows, its urgent ones first, then oldest first; the
    list takes every robot's first row, then every robot's second row, and so on (urgent rows of any
    robot ahead of all others). So one robot with hundreds of queued parts never fills the batch,
    and robots in `skip_robots` (at their rate limit) take no room at all.
    """
    values: dict[str, Any] = {"b_now": now, "b_per_robot": per_robot or limit, "b_limit": limit}
    if skip_robots:
        values["b_skip"] = sorted(skip_robots)
    with db.connect() as connection:
        rows = connection.execute(_CANDIDATES[bool(skip_robots)], values).all()
    return [(int(row[0]), str(row[1])) for row in rows]


_CLAIM = (  # built once, as the candidates' query
    update(OutboxMessage)
    .where(
        col(OutboxMessage.id).in_(bindparam("b_ids", expanding=True)),
        col(OutboxMessage.state) == OutboxState.PENDING.value,
        or_(col(OutboxMessage.claimed_until).is_(None),
            col(OutboxMessage.claimed_until) < bindparam("b_now", type_=_OUTBOX.c.claimed_until.type)),
    )
    .values(
        claimed_until=bindparam("b_until", type_=_OUTBOX.c.claimed_until.type),
        last_claimed_at=bindparam("b_now", type_=_OUTBOX.c.last_claimed_at.type),
        interrupted_at=case(
            (col(OutboxMessage.claimed_until).is_not(None), OutboxMessage.last_claimed_at),
            else_=OutboxMessage.interrupted_at,
        ),
    )
    .returning(OutboxMessage)
    .execution_options(synchronize_session=False)
)


def claim(db: Engine, ids: Sequence[int], *, now: datetime, lease: timedelta) -> list[OutboxMessage]:
    """Lease rows in one compare-and-set statement, so two senders never take the same row; the rows
    come back in the order of `ids` (the sender's fair order), without those another sender holds."""
    if not ids:
        return []
    values = {"b_ids": list(ids), "b_now": now, "b_until": now + lease}
    with Session(db, expire_on_commit=False) as session:
        claimed = {stored_id(row): row for row in session.scalars(_CLAIM, values).all()}
        session.commit()
    return [claimed[row_id] for row_id in ids if row_id in claimed]


def mark_sent(db: Engine, row_id: int, *, now: datetime) -> None:
    mark_sent_many(db, [(row_id, now)])


_MARK_SENT = (
    update(table_of(OutboxMessage))
    # Only a pending row: one a merged message already marked sent with its companions keeps its count.
    .where(table_of(OutboxMessage).c.id == bindparam("b_id"),
           table_of(OutboxMessage).c.state == OutboxState.PENDING.value)
    .values(
        state=OutboxState.SENT.value, sent_at=bindparam("b_sent_at"), claimed_until=None,
        attempts=table_of(OutboxMessage).c.attempts + 1,
    )
)


def mark_sent_many(db: Engine, sent: Sequence[tuple[int, datetime]]) -> None:
    """Record deliveries (row id, when) in one transaction: one statement sent as a batch."""
    if not sent:
        return
    # Bind names unlike the columns': an UPDATE takes parameters named like its columns as SET values.
    with db.begin() as connection:
        connection.execute(_MARK_SENT, [{"b_id": row_id, "b_sent_at": at} for row_id, at in sent])


def _retry_statement(counts: bool) -> Any:
    attempts = _OUTBOX.c.attempts + (1 if counts else 0)  # SET expressions read the row's old values
    next_at = bindparam("b_next", type_=_OUTBOX.c.next_attempt_at.type)
    gives_up = next_at > _OUTBOX.c.give_up_at
    gave_up = literal("gave up after ") + cast(attempts, String) + literal(" attempts: ") + bindparam("b_error")
    return (
        update(_OUTBOX)
        .where(_OUTBOX.c.id == bindparam("b_id"))
        .values(
            attempts=attempts, claimed_until=None,
            state=case((gives_up, OutboxState.FAILED.value), else_=_OUTBOX.c.state),
            next_attempt_at=case((gives_up, _OUTBOX.c.next_attempt_at), else_=next_at),
            last_error=func.substr(case((gives_up, gave_up), else_=bindparam("b_error")), 1, 2000),
        )
    )


# Built once: the sender's retries are one UPDATE each, no ORM get and flush.
_MARK_RETRY = {counts: _retry_statement(counts) for counts in (True, False)}


def mark_retry(db: Engine, row_id: int, *, now: datetime, next_attempt_at: datetime, error: str, counts: bool = True) -> None:
    """Try again later (or give up when past the row's give-up time)."""
    with db.begin() as connection:
        connection.execute(_MARK_RETRY[counts], {"b_id": row_id, "b_next": next_attempt_at, "b_error": error[:2000]})


def mark_failed(db: Engine, row_id: int, *, error: str) -> None:
    with db.begin() as connection:
        connection.execute(_MARK_FAILED, {"b_id": row_id, "b_error": error[:2000]})


def hand_back(db: Engine, ids: Sequence[int], *, next_attempt_at: datetime, error: str) -> None:
    """Rows claimed but not tried (their attempts do not count): pending again from `next_attempt_at`, in one
    statement."""
    update_pending(db, ids, claimed_until=None, next_attempt_at=next_attempt_at, last_error=error[:2000])


def update_pending(db: Engine, ids: Sequence[int], **values: Any) -> None:
    """Set `values` on those of the rows `ids` still pending (one sent or failed meanwhile is left alone), in one
    statement and transaction."""
    if not ids:
        return
    with db.begin() as connection:
        connection.execute(
            update(_OUTBOX).where(_OUTBOX.c.id.in_(list(ids)), _OUTBOX.c.state == OutboxState.PENDING.value)
            .values(**values)
        )


def recent_sends(db: Engine, *, since: datetime) -> list[tuple[str, datetime]]:
    """(robot, sent_at) of messages sent since a time: seeds the rate limiter after a restart."""
    with Session(db) as session:
        rows = session.exec(
            select(OutboxMessage.robot, OutboxMessage.sent_at).where(col(OutboxMessage.sent_at) >= since)
        ).all()
    return [(str(robot), sent_at) for robot, sent_at in rows if sent_at is not None]


def list_messages(db: Engine, *, state: str | None = None, limit: int = 50) -> list[OutboxMessage]:
    with Session(db, expire_on_commit=False) as session:
        statement = select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).limit(limit)
        if state:
            statement = statement.where(OutboxMessage.state == state)
        return list(session.exec(statement))


@dataclass(frozen=True, slots=True)
class Requeued:
    """What `requeue` did with one row: `requeued`, or why not (`sent`, `pending`, `missing`)."""

    row_id: int
    outcome: str
    dedupe_key: str = ""
    last_error: str = ""


def failed_since(db: Engine, since: datetime) -> list[int]:
    """Ids of failed rows whose last attempt (or, never attempted, creation) was at or after `since`."""
    attempted = func.coalesce(OutboxMessage.last_claimed_at, OutboxMessage.created_at)
    with Session(db) as session:
        return stored_ids(
            session.exec(
                select(col(OutboxMessage.id))
                .where(OutboxMessage.state == OutboxState.FAILED.value, attempted >= since)
                .order_by(col(OutboxMessage.id))
            )
        )


def requeue(db: Engine, ids: Sequence[int], *, now: datetime, give_up_after: timedelta) -> list[Requeued]:
    """Put failed rows back to pending with fresh attempts and a new give-up time.

    The row keeps its dedupe key, and only a row still `failed` changes (compare-and-set): a row that
    was sent is never sent again.
    """
    outcomes: list[Requeued] = []
    with Session(db) as session:
        for row_id in ids:
            result = session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row_id, col(OutboxMessage.state) == OutboxState.FAILED.value)
                .values(
                    state=OutboxState.PENDING.value, attempts=0, next_attempt_at=now,
                    give_up_at=now + give_up_after, claimed_until=None,
                )
            )
            session.commit()
            row = session.get(OutboxMessage, row_id)
            if row is None:
                outcomes.append(Requeued(row_id, "missing"))
                continue
            outcome = "requeued" if result.rowcount == 1 else row.state
            outcomes.append(Requeued(row_id, outcome, row.dedupe_key, row.last_error))
    return outcomes


@dataclass(frozen=True, slots=True)
class Held:
    """A reply held for a callback's passive answer: `row` is set when this caller took it (now sent);
    `done` when it was already given (by an earlier answer, or by its fallback)."""

    row: OutboxMessage | None = None
    done: bool = False


def take_held(db: Engine, *, channel: str, robot: str, now: datetime) -> Held:
    """Take the pending reply of `robot` on `channel` and mark it sent, unless a sender holds it right now.

    A compare-and-set like `claim`: the sender's fallback and a callback never both give the same reply."""
    with Session(db, expire_on_commit=False) as session:
        row = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.robot) == robot, col(OutboxMessage.channel) == channel)
            # A reply not yet rendered (kind "replies") or already rendered into its children is not the
            # answer itself: the sender renders it into a held row first (bot/platforms/replies.py).
            .where(col(OutboxMessage.kind) != "replies")
            .order_by(col(OutboxMessage.id))
        ).first()
        if row is None:
            return Held()
        if row.state != OutboxState.PENDING.value:
            return Held(done=True)
        result = session.exec(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id) == row.id,
                col(OutboxMessage.state) == OutboxState.PENDING.value,
                or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now),
            )
            .values(state=OutboxState.SENT.value, sent_at=now, claimed_until=None, attempts=OutboxMessage.attempts + 1)
        )
        session.commit()
        return Held(row=row) if result.rowcount == 1 else Held()
