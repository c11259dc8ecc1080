"""The tick: make planned pushes into due-push rows, skip what was missed, send what is due — exactly once.

Each push is a `due_push` row with a unique key, inserted with ON CONFLICT DO NOTHING, so any number
of ticks (or processes) store it once. A due row is claimed atomically (PostgreSQL: FOR UPDATE SKIP
LOCKED; SQLite: a compare-and-set UPDATE as the transaction's first statement, which also takes
SQLite's single write lock), composed, written to the outbox and marked sent in ONE transaction:
a crash before the commit leaves the row pending and the outbox untouched; after it, the row is sent
and the outbox key is unique. Rows whose time passed longer ago than the grace window are marked
skipped with the reason. `now` is always a parameter: tests drive the clock, nothing sleeps.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from bot import pushes
from bot.config import Config
from models.tables import CampaignRow, DuePush, DuePushState, GroupRow
from scheduler.calendar import WorkCalendar
from scheduler.messages import ComposeSettings, compose
from scheduler.plan import PlannedPush, plan_pushes

log = logging.getLogger(__name__)

# Kinds that are never skipped for lateness: a 重大 hazard still matters hours later (safety first).
NEVER_LATE = ("major_alert",)
PLANNED_KINDS = ("report_reminder", "phase_nudge", "milestone_nudge", "overdue_digest", "leader_digest")


@dataclass(slots=True)
class TickResult:
    """What one tick did (keys of the rows it touched)."""

    materialized: int = 0
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


class Ticker:
    """Materializes, skips and sends due pushes for one config; safe to run in several processes."""

    def __init__(
        self,
        *,
        config: Config,
        db: Engine,
        calendar: WorkCalendar | None = None,
        name: str | None = None,
        horizon: timedelta = timedelta(days=2),
        lookback: timedelta = timedelta(days=7),
        materialize_every: timedelta = timedelta(minutes=10),
    ) -> None:
        self.config = config
        self.db = db
        self.calendar = calendar or WorkCalendar.from_config(config)
        self.tz = self.calendar.tz
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.grace = timedelta(minutes=config.scheduler.grace_minutes)
        self.give_up_after = timedelta(minutes=config.outbox.give_up_after_minutes)
        self.horizon = horizon
        self.lookback = lookback
        self.materialize_every = materialize_every
        self.settings = ComposeSettings(
            charts_in_digests=config.scheduler.charts_in_digests, reminder_charts=config.scheduler.reminder_charts
        )
        self._materialized_at: datetime | None = None
        self._reconciled = False

    # -- the tick --------------------------------------------------------------------------------

    def tick(self, now: datetime) -> TickResult:
        """One pass at `now` (zone-aware): materialize, skip missed rows, send due rows."""
        if now.tzinfo is None:
            raise ValueError("naive datetime: pass a zone-aware time")
        result = TickResult()
        last = self._materialized_at
        if last is None or abs(now - last) >= self.materialize_every or last.astimezone(self.tz).date() != now.astimezone(self.tz).date():
            result.materialized = self.materialize(now)
            self._materialized_at = now
        result.skipped += self.skip_missed(now)
        self.send_due(now, result)
        return result

    # -- materialize -----------------------------------------------------------------------------

    def planned(self, now: datetime) -> list[PlannedPush]:
        """The pushes planned from `now - lookback` to `now + horizon` (by planned day)."""
        local = now.astimezone(self.tz)
        return plan_pushes(
            self.config, self.calendar, first=(local - self.lookback).date(), last=(local + self.horizon).date()
        )

    def materialize(self, now: datetime) -> int:
        """Store planned pushes as pending rows (once per key); returns how many rows were new."""
        planned = self.planned(now)
        with Session(self.db) as session:
            groups = set(session.exec(select(GroupRow.id)))
            campaigns = set(session.exec(select(CampaignRow.id)))
            planned = [p for p in planned if p.group_id in groups and p.campaign_id in campaigns]
            if not planned:
                return 0
            rows = [
                dict(
                    key=p.key, kind=p.kind, campaign_id=p.campaign_id, group_id=p.group_id, due_at=p.due_at,
                    send_at=p.send_at, state=DuePushState.PENDING.value, reason="",
                    payload=_json(p.payload), created_at=now,
                )
                for p in planned
            ]
            insert = _insert(session)
            added = 0
            for start in range(0, len(rows), 200):
                statement = (
                    insert(DuePush).values(rows[start : start + 200])
                    .on_conflict_do_nothing(index_elements=["key"])
                    .returning(DuePush.id)  # type: ignore[arg-type]
                )
                added += len(session.execute(statement).all())
            if not self._reconciled:
                self._reconcile(session, planned, now)
            session.commit()
        if added:
            log.info("scheduler: %d new pushes planned up to %s", added, (now + self.horizon).date())
        self._reconciled = True
        return added

    def _reconcile(self, session: Session, planned: list[PlannedPush], now: datetime) -> None:
        """After a config change: move pending rows to their new time, skip those no longer planned."""
        by_key = {p.key: p for p in planned}
        first = min(p.due_at for p in planned)
        pending = session.exec(
            select(DuePush).where(
                DuePush.state == DuePushState.PENDING.value,
                DuePush.kind.in_(PLANNED_KINDS),  # type: ignore[attr-defined]
                DuePush.due_at >= first,
            ).order_by(DuePush.id)  # type: ignore[arg-type]
        ).all()
        last = max(p.due_at for p in planned)
        for row in pending:
            plan = by_key.get(row.key)
            if plan is None:
                if row.due_at <= last:
                    row.state, row.reason = DuePushState.SKIPPED.value, "no longer planned (the config changed)"
                    session.add(row)
            elif row.send_at != plan.send_at or row.payload != _json(plan.payload):
                row.due_at, row.send_at, row.payload = plan.due_at, plan.send_at, _json(plan.payload)
                session.add(row)

    # -- skip ------------------------------------------------------------------------------------

    def skip_missed(self, now: datetime) -> list[str]:
        """Mark rows whose time is older than the grace window as skipped, with the reason."""
        cutoff = now - self.grace
        with Session(self.db) as session:
            keys = list(
                session.exec(
                    select(DuePush.key).where(
                        DuePush.state == DuePushState.PENDING.value,
                        DuePush.send_at < cutoff,
                        DuePush.kind.not_in(NEVER_LATE),  # type: ignore[attr-defined]
                    )
                )
            )
            if not keys:
                return []
            reason = (
                f"missed: not sent within the grace window ({self.config.scheduler.grace_minutes} min) "
                f"after its time; noticed at {now.astimezone(self.tz).isoformat(timespec='minutes')} "
                "(was the bot down?)"
            )
            result = session.execute(
                update(DuePush)
                .where(
                    DuePush.key.in_(keys),  # type: ignore[attr-defined]
                    DuePush.state == DuePushState.PENDING.value,
                    DuePush.send_at < cutoff,
                )
                .values(state=DuePushState.SKIPPED.value, reason=reason, claimed_by=self.name, claimed_at=now)
                .returning(DuePush.key)  # type: ignore[arg-type]
            )
            skipped = [str(key) for key in result.scalars()]
            session.commit()
        if skipped:
            shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
            log.warning("scheduler: skipped %d missed pushes (%s): %s", len(skipped), shown, reason)
        return skipped

    # -- send ------------------------------------------------------------------------------------

    def _due(self, now: datetime, excluded: set[int]):  # type: ignore[no-untyped-def]
        statement = select(DuePush).where(DuePush.state == DuePushState.PENDING.value, DuePush.send_at <= now)
        if excluded:
            statement = statement.where(DuePush.id.not_in(excluded))  # type: ignore[union-attr]
        return statement.order_by(DuePush.send_at, DuePush.id).limit(1)  # type: ignore[arg-type]

    def _claim(self, session: Session, now: datetime, excluded: set[int]) -> DuePush | None:
        """Lock one due row for this transaction, or None when nothing (unclaimed) is due."""
        if session.get_bind().dialect.name == "postgresql":
            return session.exec(self._due(now, excluded).with_for_update(skip_locked=True)).first()
        while True:
            with Session(self.db) as peek:
                candidate = peek.exec(self._due(now, excluded)).first()
                row_id = candidate.id if candidate is not None else None
            if row_id is None:
                return None
            # The compare-and-set is this transaction's first statement, so SQLite takes its write lock
            # here (waiting on busy_timeout) instead of failing a read-to-write upgrade later.
            claimed = session.execute(
                update(DuePush)
                .where(DuePush.id == row_id, DuePush.state == DuePushState.PENDING.value)
                .values(claimed_by=self.name, claimed_at=now)
            )
            if claimed.rowcount == 1:
                return session.get(DuePush, row_id)
            session.rollback()
            excluded.add(row_id)

    def send_due(self, now: datetime, result: TickResult | None = None) -> TickResult:
        """Compose and enqueue every due row, one transaction per row."""
        result = result or TickResult()
        excluded: set[int] = set()
        while True:
            with Session(self.db) as session:
                row = self._claim(session, now, excluded)
                if row is None:
                    return result
                row_id, key = int(row.id), row.key  # type: ignore[arg-type]
                try:
                    self._send(session, row, now)
                    state = row.state
                    session.commit()
                except Exception as exc:  # one bad push must not block the others
                    session.rollback()
                    excluded.add(row_id)
                    result.failed.append(key)
                    log.exception("scheduler: composing or enqueueing %s failed; will retry", key)
                    self._note_error(row_id, f"{type(exc).__name__}: {exc}")
                    continue
            (result.sent if state == DuePushState.SENT.value else result.skipped).append(key)
            log.info("scheduler: %s %s", state, key)

    def _send(self, session: Session, row: DuePush, now: datetime) -> None:
        composed = compose(session, row, now=now, settings=self.settings)
        row.claimed_by, row.claimed_at = self.name, now
        if composed.skip_reason is not None:
            row.state, row.reason = DuePushState.SKIPPED.value, composed.skip_reason
        else:
            group = session.get(GroupRow, row.group_id)
            assert group is not None  # compose() skips pushes of unknown groups
            pushes.enqueue_push(
                session, group=group, dedupe_key=f"push:{row.key}", replies=composed.replies, now=now,
                give_up_after=self.give_up_after,
            )
            row.state, row.sent_at, row.reason = DuePushState.SENT.value, now, ""
        session.add(row)
        session.flush()

    def _note_error(self, row_id: int, error: str) -> None:
        try:
            with Session(self.db) as session:
                session.execute(update(DuePush).where(DuePush.id == row_id).values(reason=f"last error: {error}"[:2000]))
                session.commit()
        except Exception:
            log.exception("scheduler: could not record the error of due push %s", row_id)


def _json(payload: object) -> str:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True)
