"""The tick: make planned pushes into due-push rows, skip what was missed, send what is due — exactly once.

Each push is a `due_push` row with a unique key, inserted with ON CONFLICT DO NOTHING, so any number
of ticks (or processes) store it once. A due row is claimed atomically (PostgreSQL: FOR UPDATE SKIP
LOCKED; SQLite: a compare-and-set UPDATE as the transaction's first statement, which also takes
SQLite's single write lock), composed, written to the outbox and marked sent in ONE transaction
(a batch of due rows shares it): a crash before the commit leaves the rows pending and the outbox
untouched; after it, the rows are sent and the outbox keys are unique. Pending rows whose time passed longer ago than the grace window are marked
skipped with the reason. `now` is always a parameter: tests drive the clock, nothing sleeps.

When a platform's monthly API budget runs low, a due non-urgent row is not sent but *held* (state `held`,
`send_at` = the next `[dingtalk] merged_push_time`); a later tick claims the held rows whose time came, the
same way, and sends each group's as ONE message. 重大 alerts and escalations are never held.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine
from sqlmodel import Session

from models import queries_schedule
from models.config import Config
from models.ids import stored_id
from models.outbox import PRIORITY_NORMAL, PRIORITY_URGENT
from models.platform_usage import budgeted_calls, month_of
from models.queries_directory import campaign_ids, groups_by_id
from models.push_groups import stored_groups
from handlers.context import BuildingRef
from handlers.format import merge_replies
from handlers.messages import Reply
from models.tables import DuePush, DuePushState, GroupRow
from scheduler.calendar import WorkCalendar
from scheduler.messages import ComposeSettings, compose_many
from scheduler.plan import PlanGroup, PlannedPush, plan_pushes, push_groups

log = logging.getLogger(__name__)

# Kinds that are never skipped for lateness: a 重大 hazard still matters hours later (safety first).
NEVER_LATE = ("major_alert",)
# Kinds that go at once even when a platform's API budget runs low (the others wait for the merged message).
URGENT_KINDS = ("major_alert", "escalation")
PLANNED_KINDS = (
    "report_reminder", "phase_nudge", "milestone_nudge", "overdue_digest", "leader_digest", "escalation",
    "supervision",
)


class EnqueuePush(Protocol):
    """Stores a push's messages in the outbox inside the caller's transaction (bot.pushes.Pushes.enqueue_push)."""

    def __call__(
        self, session: Session, *, group: GroupRow, dedupe_key: str, replies: Sequence[Reply], now: datetime,
        give_up_after: timedelta, priority: int = PRIORITY_NORMAL,
    ) -> int: ...


@dataclass(slots=True)
class TickResult:
    """What one tick did (keys of the rows it touched)."""

    materialized: int = 0
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # waiting for their group's merged message (budget low)


class Ticker:
    """Materializes, skips and sends due pushes for one config; safe to run in several processes."""

    def __init__(
        self,
        *,
        config: Config,
        db: Engine,
        enqueue_push: EnqueuePush,
        calendar: WorkCalendar | None = None,
        name: str | None = None,
        horizon: timedelta = timedelta(days=2),
        lookback: timedelta = timedelta(days=7),
        materialize_every: timedelta = timedelta(minutes=10),
        batch: int = 100,
        flush_counts: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.enqueue_push = enqueue_push  # platform rendering lives in bot/, which hands it in
        # Writes the platform calls this process counted in memory (bot/usage.py), so the budget check reads them.
        self.flush_counts = flush_counts or (lambda: None)
        self.calendar = calendar or WorkCalendar.from_config(config)
        self.tz = self.calendar.tz
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.grace = timedelta(minutes=config.scheduler.grace_minutes)
        self.give_up_after = timedelta(minutes=config.outbox.give_up_after_minutes)
        self.horizon = horizon
        self.lookback = lookback
        self.materialize_every = materialize_every
        self.batch = batch  # due rows claimed per transaction: 10,000 reminders in one minute are 100 commits
        self.settings = ComposeSettings(
            charts_in_digests=config.scheduler.charts_in_digests, reminder_charts=config.scheduler.reminder_charts,
            buildings=tuple(BuildingRef(b.id, b.unit, (b.name, *b.aliases), b.built_year) for b in config.buildings),
            supervision=config.supervision.enabled, supervision_every_days=config.supervision.every_days,
            schools=frozenset(building.unit for building in config.buildings),
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
        self.send_held(now, result)
        return result

    # -- materialize -----------------------------------------------------------------------------

    def planned(self, now: datetime, groups: list[PlanGroup] | None = None) -> list[PlannedPush]:
        """The pushes planned from `now - lookback` to `now + horizon` (by planned day) for `groups` (None: the
        groups of the database, the TOML's and those bound in chat alike)."""
        if groups is None:
            with Session(self.db) as session:
                groups = push_groups(self.config, stored_groups(session))
        local = now.astimezone(self.tz)
        return plan_pushes(
            self.config, self.calendar, first=(local - self.lookback).date(), last=(local + self.horizon).date(),
            groups=groups,
        )

    def materialize(self, now: datetime) -> int:
        """Store planned pushes as pending rows (once per key); returns how many rows were new."""
        with Session(self.db) as session:
            # The database's groups: a group an admin bound in chat (登记本群) is planned like a configured one.
            planned = self.planned(now, push_groups(self.config, stored_groups(session)))
            campaigns = set(campaign_ids(session))
            planned = [p for p in planned if p.campaign_id in campaigns]
            if not planned:
                return 0
            # Re-planning every few minutes finds nearly every key stored already (10,000 groups plan 70,000
            # pushes a week): read the window's stored keys and insert only new ones. ON CONFLICT still
            # settles races between processes and rows whose time a config change moved.
            stored = queries_schedule.stored_keys_due_between(
                session, min(p.due_at for p in planned), max(p.due_at for p in planned)
            )
            rows = [
                dict(
                    key=p.key, kind=p.kind, campaign_id=p.campaign_id, group_id=p.group_id, due_at=p.due_at,
                    send_at=p.send_at, state=DuePushState.PENDING.value, reason="",
                    payload=_json(p.payload), created_at=now,
                )
                for p in planned if p.key not in stored
            ]
            added = queries_schedule.insert_due_pushes(session, rows)  # executemany, batched by SQLAlchemy
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
        pending = queries_schedule.pending_due_from(session, PLANNED_KINDS, first)
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
        reason = (
            f"missed: not sent within the grace window ({self.config.scheduler.grace_minutes} min) "
            f"after its time; noticed at {now.astimezone(self.tz).isoformat(timespec='minutes')} "
            "(was the bot down?)"
        )
        with Session(self.db) as session:
            skipped = queries_schedule.skip_missed(
                session, before=cutoff, never_late=NEVER_LATE, reason=reason, claimed_by=self.name, now=now
            )
            if not skipped:
                return []
            session.commit()
        if skipped:
            shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
            log.warning("scheduler: skipped %d missed pushes (%s): %s", len(skipped), shown, reason)
        return skipped

    # -- send ------------------------------------------------------------------------------------

    def _claim(
        self, session: Session, now: datetime, excluded: set[int], limit: int, kinds: tuple[str, ...] | None = None,
        state: DuePushState = DuePushState.PENDING,
    ) -> list[DuePush]:
        """Lock up to `limit` due rows (of `kinds`, else any; in `state`) for this transaction, oldest first; []
        when nothing (unclaimed) is due."""
        if session.get_bind().dialect.name == "postgresql":
            return queries_schedule.lock_due(session, now, excluded, limit, kinds, state)
        while True:
            with Session(self.db) as peek:
                candidates = queries_schedule.due_ids(peek, now, excluded, limit, kinds, state)
            if not candidates:
                return []
            # The compare-and-set is this transaction's first statement, so SQLite takes its write lock
            # here (waiting on busy_timeout) instead of failing a read-to-write upgrade later.
            claimed = queries_schedule.claim_due(session, candidates, claimed_by=self.name, now=now, state=state)
            excluded.update(row_id for row_id in candidates if row_id not in claimed)  # another ticker took them
            if claimed:
                return queries_schedule.due_pushes_by_id(session, claimed)
            session.rollback()

    def send_due(self, now: datetime, result: TickResult | None = None) -> TickResult:
        """Compose and enqueue every due row, up to `batch` rows per transaction; 重大 alerts first, in their
        own transactions, so composing a long digest due at the same minute does not hold them back."""
        result = result or TickResult()
        self._send_kinds(now, result, NEVER_LATE)
        self._send_kinds(now, result, None)
        return result

    def send_held(self, now: datetime, result: TickResult | None = None) -> TickResult:
        """Send the held rows whose merge time has come: one message per group (a batch's rows of one group)."""
        result = result or TickResult()
        self._send_kinds(now, result, None, DuePushState.HELD)
        return result

    def _send_kinds(
        self, now: datetime, result: TickResult, kinds: tuple[str, ...] | None,
        state: DuePushState = DuePushState.PENDING,
    ) -> None:
        """Send the due rows of `kinds` (None: every kind) in `state` (held: their merged messages), batch by batch."""
        excluded: set[int] = set()
        size = self.batch
        while True:
            failed: tuple[int, str, Exception] | None = None
            self.flush_counts()  # the budget check below reads the counts: this process's first, in their own commit
            with Session(self.db) as session:
                rows = self._claim(session, now, excluded, size, kinds, state)
                if not rows:
                    return
                claimed = [(stored_id(row), row.key) for row in rows]
                try:
                    if state == DuePushState.HELD:
                        states = self._send_merged(session, rows, now)
                    else:
                        states = self._send(session, rows, now)
                    session.commit()
                except Exception as exc:  # one bad push must not block the others
                    session.rollback()
                    if len(rows) > 1:
                        # The batch is pending again: retry one row at a time until the bad one shows.
                        size = 1
                        continue
                    failed = (*claimed[0], exc)
            if failed is not None:
                row_id, key, error = failed
                excluded.add(row_id)
                result.failed.append(key)
                log.error("scheduler: composing or enqueueing %s failed; will retry", key, exc_info=error)
                self._note_error(row_id, f"{type(error).__name__}: {error}")
                size = self.batch
                continue
            for (_, key), outcome in zip(claimed, states):
                if outcome == DuePushState.HELD.value:
                    result.held.append(key)
                else:
                    (result.sent if outcome == DuePushState.SENT.value else result.skipped).append(key)
                log.info("scheduler: %s %s", outcome, key)

    def _send(self, session: Session, rows: list[DuePush], now: datetime) -> list[str]:
        """Compose the rows, enqueue their messages and mark them, in the caller's transaction; returns their states."""
        # Held here so compose_many and the loop below find the groups in the session's identity map.
        groups = groups_by_id(session, {r.group_id for r in rows})
        composed = compose_many(session, rows, now=now, settings=self.settings)
        budget = platform_budget(session, self.config, now)
        states = []
        with session.no_autoflush:  # the rows' updates go out together at the flush below
            for row, message in zip(rows, composed):
                row.claimed_by, row.claimed_at = self.name, now
                if message.skip_reason is not None:
                    row.state, row.reason = DuePushState.SKIPPED.value, message.skip_reason
                elif row.kind not in URGENT_KINDS and budget.low(groups[row.group_id].platform):
                    # Composed again at the merge time, so the merged message says how things stand then.
                    row.state, row.send_at = DuePushState.HELD.value, self.merge_time(now)
                    row.reason = (
                        f"held for the group's merged message at {row.send_at.astimezone(self.tz):%Y-%m-%d %H:%M}: "
                        f"{budget.why(groups[row.group_id].platform)}"
                    )
                else:
                    self.enqueue_push(
                        session, group=groups[row.group_id], dedupe_key=f"push:{row.key}", replies=message.replies,
                        now=now, give_up_after=self.give_up_after,
                        priority=PRIORITY_URGENT if row.kind == "major_alert" else PRIORITY_NORMAL,
                    )
                    row.state, row.sent_at, row.reason = DuePushState.SENT.value, now, ""
                session.add(row)
                states.append(row.state)
        session.flush()
        return states

    def merge_time(self, now: datetime) -> datetime:
        """When a push held at `now` goes: the first `[dingtalk] merged_push_time` at or after `now`, moved
        by the calendar (quiet hours, non-workdays)."""
        local = now.astimezone(self.tz)
        at = datetime.combine(local.date(), self.config.dingtalk.merged_push_time, self.tz)
        if at < local:
            at += timedelta(days=1)
        return self.calendar.next_allowed(at)

    def _send_merged(self, session: Session, rows: list[DuePush], now: datetime) -> list[str]:
        """The held rows whose merge time came: composed now, ONE message per group, marked sent (or skipped
        when there is nothing left to say) in the caller's transaction; returns their states."""
        groups = groups_by_id(session, {r.group_id for r in rows})
        composed = compose_many(session, rows, now=now, settings=self.settings)
        budget = platform_budget(session, self.config, now)
        merging: dict[str, list[tuple[DuePush, list[Reply]]]] = {}
        with session.no_autoflush:
            for row, message in zip(rows, composed):
                row.claimed_by, row.claimed_at = self.name, now
                if message.skip_reason is not None:
                    row.state, row.reason = DuePushState.SKIPPED.value, f"held, then: {message.skip_reason}"
                else:
                    merging.setdefault(row.group_id, []).append((row, list(message.replies)))
                    row.state, row.sent_at = DuePushState.SENT.value, now
                session.add(row)
            for group_id, pushes in merging.items():
                self._send_saving(session, groups[group_id], pushes, budget, now)
        session.flush()
        return [row.state for row in rows]

    def _send_saving(
        self, session: Session, group: GroupRow, pushes: list[tuple[DuePush, list[Reply]]], budget: PlatformBudget,
        now: datetime,
    ) -> None:
        """The platform's monthly API budget runs low: a group's held pushes of the day go as ONE message, text
        only (images and files need the platform's API; the custom robot webhook cannot send them)."""
        texts = [
            replace(reply, image_png=None, file_name=None, file_data=None)
            for _, replies in pushes for reply in replies if reply.text.strip()
        ]
        left_out = any(r.image_png is not None or r.file_data is not None for _, replies in pushes for r in replies)
        if left_out:
            texts.append(Reply(budget.note(group.platform)))
        merged = merge_replies(texts)
        first = pushes[0][0]
        self.enqueue_push(
            session, group=group, dedupe_key=f"push:{first.key}" + (f"+{len(pushes) - 1}" if len(pushes) > 1 else ""),
            replies=merged, now=now, give_up_after=self.give_up_after, priority=PRIORITY_NORMAL,
        )
        for row, _ in pushes:
            row.reason = (
                f"merged with {len(pushes) - 1} other push(es) into one message: {budget.why(group.platform)}"
                if len(pushes) > 1 else f"held for the day's merged message: {budget.why(group.platform)}"
            )
            session.add(row)

    def _note_error(self, row_id: int, error: str) -> None:
        try:
            with Session(self.db) as session:
                queries_schedule.note_due_push_error(session, row_id, f"last error: {error}"[:2000])
                session.commit()
        except Exception:
            log.exception("scheduler: could not record the error of due push %s", row_id)


@dataclass(frozen=True, slots=True)
class PlatformBudget:
    """Each budgeted platform's API calls this month against its monthly budget (only DingTalk has one)."""

    used: dict[str, int]
    budget: dict[str, int]
    low_percent: dict[str, int]

    def percent(self, platform: str) -> float:
        budget = self.budget.get(platform, 0)
        return 100.0 * self.used.get(platform, 0) / budget if budget else 0.0

    def low(self, platform: str) -> bool:
        """True from `budget_low_percent` of the month's budget on."""
        return bool(self.budget.get(platform)) and self.percent(platform) >= self.low_percent.get(platform, 100)

    def why(self, platform: str) -> str:
        return f"{self.used.get(platform, 0)} of {self.budget.get(platform, 0)} {platform} API calls used this month"

    def note(self, platform: str) -> str:
        name = {"dingtalk": "钉钉"}.get(platform, platform)
        return f"（本月{name}接口调用已用 {self.percent(platform):.0f}%，图表和文件暂不推送，需要时请 @我 查询。）"


def platform_budget(session: Session, config: Config, now: datetime) -> PlatformBudget:
    """This month's budgeted API calls of each platform with a budget (one query per such platform)."""
    budget = {"dingtalk": config.dingtalk.monthly_call_budget} if config.dingtalk.monthly_call_budget else {}
    month = month_of(now, config.tz)
    used = {platform: budgeted_calls(session, platform, month) for platform in budget}
    return PlatformBudget(used=used, budget=budget, low_percent={"dingtalk": config.dingtalk.budget_low_percent})


def _json(payload: object) -> str:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True)
