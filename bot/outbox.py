"""The outbox sender: drains pending messages per robot within the platforms' rate limits.

Every outgoing message is first a row with a unique dedupe key (models.outbox.enqueue);
this sender leases due rows, delivers them through the platform's `Delivery`, and records
the outcome. Retries back off exponentially; a row past its give-up time is marked failed
with the reason, which `safetybot outbox` shows.

A handled message's replies wait as one platform-neutral `replies` row (`replies_payload`): its
platform renders them when the row is delivered and sends the first message they make in place; the
others come back with its result (`DeliveryResult.then`), and this sender stores them as the row's
children (`<key>#2`, `#3` …) in the transaction that records the first's outcome. When the first cannot
go in place (another channel or robot, or held for a callback), all of them come back
(`DeliveryResult.expand`) and become `<key>#1`, `#2` …. Children are delivered like any other rows.

A pass leases its rows in one statement and delivers them side by side (at most
`DELIVERY_CONCURRENCY` awaiting their platform): each robot's first row alone, so a platform that
throttles the robot answers before it gets more; then that robot's rows by message, the parts of
one message (`reply:…#1`, `#2`, …, or `…:0`, `:1` for rows queued already rendered) in order, different
messages at once. Replies to different messages of one chat may therefore arrive in either order, as
their handling already could. Each delivered row is marked sent (a replies row: with its children queued)
before its lane moves on; deliveries that finish together share one transaction.

Rows of a kind the platform merges (`MERGED_KIND`: a group webhook's @-notices) are one lane per robot, in
id order: the first takes the pending others along in one message and names them in its result
(`DeliveryResult.took_along`, marked sent, or failed with a message refused for good, by the delivery),
and the lane skips them. Lanes of their own would race for the webhook and each find another's message
already under way.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

import anyio
from sqlalchemy import Engine

from handlers.messages import Reply, reply_from_json, reply_to_json
from models import outbox as store
from models.clock import SystemClock
from models.ids import storable_id, stored_id
from models.tables import OutboxMessage

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What a platform said: sent, or why not and whether trying again can help."""

    ok: bool
    retryable: bool = False
    error: str = ""
    rate_limited: bool = False  # e.g. HTTP 429, WeCom 45009, DingTalk 130101 / 410100
    retry_after: str | None = None  # the platform's Retry-After header, as sent (seconds or an HTTP date)
    waiting: bool = False  # not a failure: the row waits by design (a reply held for a callback's answer)
    called: bool = True  # False: no platform call was made (the row already went inside another row's message)
    # A `replies` row rendered into several messages, nothing sent yet: the sender queues them in its place.
    expansion: tuple[Draft, ...] | None = None
    # A `replies` row whose first message was tried in place (this result): the rest of its messages, which
    # the sender queues as its children `#2`, `#3` … in the transaction that records this result.
    rest: tuple[Draft, ...] = ()
    # The ids of other pending rows this row's message carried (merged), their outcome (sent, or refused for
    # good) already recorded by the delivery; the sender skips those it holds in the same pass.
    took_along: tuple[int, ...] = ()

    @classmethod
    def sent(cls) -> "DeliveryResult":
        return cls(ok=True)

    @classmethod
    def carried(cls) -> "DeliveryResult":
        """Sent already, inside another row's merged message: nothing to call, and no send to count."""
        return cls(ok=True, called=False)

    @classmethod
    def retry(cls, error: str, *, rate_limited: bool = False, retry_after: str | None = None) -> "DeliveryResult":
        return cls(ok=False, retryable=True, error=error, rate_limited=rate_limited, retry_after=retry_after)

    @classmethod
    def wait(cls, reason: str, *, retry_after: str) -> "DeliveryResult":
        """Not yet, by design: look again after `retry_after` seconds (logged quietly, not as a problem)."""
        return cls(ok=False, retryable=True, error=reason, retry_after=retry_after, waiting=True)

    @classmethod
    def fail(cls, error: str) -> "DeliveryResult":
        return cls(ok=False, retryable=False, error=error)

    @classmethod
    def expand(cls, drafts: Sequence[Draft]) -> "DeliveryResult":
        """Not sent: the row's replies make these messages, to be queued as its children (in this order)."""
        return cls(ok=False, error=f"rendered into {len(drafts)} messages", expansion=tuple(drafts))

    def then(self, rest: Sequence[Draft]) -> "DeliveryResult":
        """This result of a row's first message, with the messages that follow it, to be queued as children."""
        return replace(self, rest=tuple(rest))


RETRY_AFTER_MAX_SECONDS = 86_400  # a longer wait outlasts any give-up time anyway


def retry_after_delay(value: str | None, now: datetime) -> timedelta | None:
    """How long a Retry-After header (delta-seconds or an HTTP date) asks us to wait; None if absent or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=min(int(text), RETRY_AFTER_MAX_SECONDS))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(timedelta(0), when - now)


PLATFORM_MESSAGE_MAX_CHARS = 80


def _clip(value: object, limit: int = PLATFORM_MESSAGE_MAX_CHARS) -> str:
    """One line of at most `limit` characters (control characters become spaces)."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def platform_error(answer: object) -> str | None:
    """`errcode 45009: <errmsg>` (WeCom / DingTalk legacy) or `<code>: <message>` (DingTalk OpenAPI) when
    the answer is a platform's own JSON error object; None for anything else."""
    if not isinstance(answer, dict):
        return None
    errcode, errmsg = answer.get("errcode"), answer.get("errmsg")
    if isinstance(errcode, int) and not isinstance(errcode, bool) and isinstance(errmsg, str):
        return f"errcode {errcode}: {_clip(errmsg)}".rstrip(": ")
    code, message = answer.get("code"), answer.get("message")
    if isinstance(code, str) and code and isinstance(message, str):
        return f"{_clip(code)}: {_clip(message)}".rstrip(": ")
    return None


def answer_reason(status: int, body: bytes | str) -> str:
    """Why a delivery was refused, short and safe to keep in `last_error`: `HTTP 502`, plus the platform's
    error code and (clipped) message when the body is its JSON. Never the body itself: a foreign or
    internal page's text (HTML, secrets) must not end up in the outbox or `safetybot outbox`."""
    try:
        detail = platform_error(json.loads(body))
    except (ValueError, UnicodeDecodeError, RecursionError):
        detail = None
    return f"HTTP {status} {detail}" if detail else f"HTTP {status}"


class Delivery(Protocol):
    """A platform's way of delivering one outbox row (implemented in bot/platforms)."""

    async def deliver(self, message: OutboxMessage) -> DeliveryResult: ...


class SlidingWindowLimiter:
    """At most `limit` sends per robot in any `window` seconds (stricter than a refilling bucket)."""

    def __init__(self, *, limit: int, window: float) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window)
        self._sent: dict[str, deque[datetime]] = defaultdict(deque)

    def _trim(self, robot: str, now: datetime) -> deque[datetime]:
        times = self._sent[robot]
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def available(self, robot: str, now: datetime) -> int:
        return self.limit - len(self._trim(robot, now))

    def next_free(self, robot: str, now: datetime) -> datetime:
        times = self._trim(robot, now)
        return now if len(times) < self.limit else times[0] + self.window

    def record(self, robot: str, at: datetime) -> None:
        self._sent[robot].append(at)

    def forget(self, robot: str, at: datetime) -> None:
        """Take back a send recorded at `at` that did not happen (a replies row that was only expanded)."""
        times = self._sent.get(robot)
        if times and at in times:
            times.remove(at)

    def saturated(self, now: datetime) -> set[str]:
        """Robots with no send left in the current window (robots with none in it are forgotten)."""
        full: set[str] = set()
        for robot in list(self._sent):
            if not self._trim(robot, now):
                del self._sent[robot]  # one-off robots (a WeCom stream's held reply) must not pile up
            elif self.available(robot, now) <= 0:
                full.add(robot)
        return full


# Deliveries in flight at once: they mostly wait for the platform's answer, so a few overlap that wait;
# the rate limits are per robot and counted before each send, so this does not change them.
DELIVERY_CONCURRENCY = 16


# Rows of this kind are merged by their platform with the other pending rows of their robot into one message
# (WeCom's group-webhook @-notices): the sender keeps them in one lane per robot.
MERGED_KIND = "notice"


def message_of(dedupe_key: str) -> str:
    """The message an outbox row is a part of: its dedupe key without the part index (`reply:wecom:m1#2`,
    a replies row's child; `push:…:0`, a row queued already rendered)."""
    for separator in ("#", ":"):
        head, found, part = dedupe_key.rpartition(separator)
        if found and part.isdigit():
            return head
    return dedupe_key


class _Batched(Generic[T]):
    """Records outcomes several at once: a delivery waits until its outcome is written (as one by one did), but
    outcomes that come while a write is under way share the next transaction."""

    def __init__(self, write: Callable[[list[T]], None]) -> None:
        self.write = write
        self._waiting: list[T] = []
        self._lock = anyio.Lock()

    async def add(self, item: T) -> None:
        self._waiting.append(item)
        async with self._lock:
            batch, self._waiting = self._waiting, []
            if batch:  # else an earlier waiter took this one along
                await anyio.to_thread.run_sync(lambda: self.write(batch))


@dataclass(frozen=True, slots=True)
class _Pass:
    """What the deliveries of one drain pass share."""

    in_flight: anyio.CapacityLimiter  # deliveries awaiting their platform at once
    sent: _Batched[tuple[int, datetime]]  # rows delivered: (id, when)
    settled: _Batched[store.Settled]  # replies rows whose first message went in place, with their children
    carried: set[int] = field(default_factory=set)  # rows another row's merged message took along (sent or refused)


class OutboxSender:
    """Leases due rows, respects each robot's rate, delivers, and records the result."""

    def __init__(
        self,
        *,
        db: Engine,
        deliveries: Mapping[str, Delivery],
        clock: Callable[[], datetime] | None = None,
        per_minute: int = 20,
        window_seconds: float = 60.0,
        retry_base_seconds: float = 2.0,
        retry_max_seconds: float = 300.0,
        lease_seconds: float = 120.0,
        batch: int = 200,
        concurrency: int = DELIVERY_CONCURRENCY,
        may_send: Callable[[], bool] | None = None,
    ) -> None:
        self.db = db
        self.deliveries: Mapping[str, Delivery] = MappingProxyType(dict(deliveries))  # fixed at construction
        self.clock = clock or SystemClock(timezone.utc).now
        self.limiter = SlidingWindowLimiter(limit=per_minute, window=window_seconds)
        self.retry_base = retry_base_seconds
        self.retry_max = retry_max_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.batch = batch
        # Robots the platform throttled (429 / 45009 …), until when: none of their rows is tried before.
        self._paused: dict[str, datetime] = {}
        self._wake = anyio.Event()
        self._seeded = False
        self.concurrency = concurrency
        # With several processes, only the leader sends, so each robot's rate is counted in one place.
        self.may_send = may_send or (lambda: True)

    def kick(self) -> None:
        """Wake the run loop now (new rows were enqueued)."""
        self._wake.set()

    def _seed(self, now: datetime) -> None:
        # After a restart, sends made just before still count against each robot's window.
        for robot, sent_at in store.recent_sends(self.db, since=now - self.limiter.window):
            self.limiter.record(robot, sent_at)
        self._seeded = True

    def _backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.retry_max, self.retry_base * (2 ** max(0, attempts))))

    def _blocked_robots(self, now: datetime) -> set[str]:
        """Robots that may not send now: at their rate limit, or paused by the platform."""
        self._paused = {robot: until for robot, until in self._paused.items() if until > now}
        return self.limiter.saturated(now) | set(self._paused)

    async def drain_once(self) -> int:
        """Send what is due and allowed now, robots taking turns; returns how many rows were attempted."""
        if not self.may_send():
            return 0
        now = self.clock()
        if not self._seeded:
            await anyio.to_thread.run_sync(self._seed, now)
        blocked = self._blocked_robots(now)
        candidates = await anyio.to_thread.run_sync(
            lambda: store.due_candidates(
                self.db, now=now, limit=self.batch, per_robot=self.limiter.limit, skip_robots=blocked
            )
        )
        budget: dict[str, int] = {}
        chosen: list[int] = []
        for row_id, robot in candidates:
            if robot not in budget:
                budget[robot] = self.limiter.available(robot, now)
            if budget[robot] > 0:
                budget[robot] -= 1
                chosen.append(row_id)
        if not chosen:
            return 0
        rows = await anyio.to_thread.run_sync(lambda: store.claim(self.db, chosen, now=now, lease=self.lease))
        by_robot: dict[str, list[OutboxMessage]] = {}
        for row in rows:
            by_robot.setdefault(row.robot, []).append(row)
        run = _Pass(
            anyio.CapacityLimiter(self.concurrency),
            _Batched(lambda batch: store.mark_sent_many(self.db, batch)),
            _Batched(lambda batch: store.settle_many(self.db, batch)),
        )
        async with anyio.create_task_group() as tasks:
            for robot_rows in by_robot.values():
                tasks.start_soon(self._deliver_robot, robot_rows, run)
        return len(rows)

    async def _deliver_robot(self, rows: list[OutboxMessage], run: "_Pass") -> None:
        """One robot's rows of a pass: the first alone, so a platform that throttles the robot is heard before
        it gets more; then each message's parts in order, different messages side by side."""
        await self._attempt(rows[0], run)
        lanes: dict[str, list[OutboxMessage]] = {}
        merged: list[OutboxMessage] = []
        for row in rows[1:]:
            if row.kind == MERGED_KIND:
                merged.append(row)
            else:
                lanes.setdefault(message_of(row.dedupe_key), []).append(row)
        if merged:  # a robot's merging rows: one lane, oldest first, so each message takes the most along
            merged.sort(key=stored_id)
            lanes[f"{MERGED_KIND}:{rows[0].robot}"] = merged
        async with anyio.create_task_group() as tasks:
            for lane in lanes.values():
                tasks.start_soon(self._deliver_merged_lane if lane is merged else self._deliver_lane, lane, run)

    async def _deliver_lane(self, rows: list[OutboxMessage], run: "_Pass") -> None:
        for row in rows:
            await self._attempt(row, run)

    async def _deliver_merged_lane(self, rows: list[OutboxMessage], run: "_Pass") -> None:
        """Rows the platform merges, in turn; once the platform throttles their robot, the rest are handed back
        in one statement (not one each)."""
        for index, row in enumerate(rows):
            until = self._paused.get(row.robot)
            if until is not None and until > self.clock():
                ids = [stored_id(rest) for rest in rows[index:] if stored_id(rest) not in run.carried]
                error = _throttled(row.robot, until)
                await anyio.to_thread.run_sync(lambda: store.hand_back(self.db, ids, next_attempt_at=until, error=error))
                return
            await self._attempt(row, run)

    async def _attempt(self, row: OutboxMessage, run: "_Pass") -> None:
        if stored_id(row) in run.carried:
            return  # already sent (or refused) inside another row's merged message, and marked so
        paused_until = self._paused.get(row.robot)
        if paused_until is not None and paused_until > self.clock():
            await self._release(row, paused_until)
            return
        async with run.in_flight:
            await self._deliver(row, run)

    async def _release(self, row: OutboxMessage, until: datetime) -> None:
        """Hand back a row claimed in this pass whose robot was throttled meanwhile; it was not tried."""
        row_id = stored_id(row)
        error = _throttled(row.robot, until)
        now = self.clock()
        await anyio.to_thread.run_sync(
            lambda: store.mark_retry(self.db, row_id, now=now, next_attempt_at=until, error=error, counts=False)
        )

    def _retry_wait(self, row: OutboxMessage, result: DeliveryResult, done: datetime) -> timedelta:
        """How long before trying again: what Retry-After asked for, else exponential backoff (throttled: at
        least until the robot's window has room, and half a window)."""
        asked = retry_after_delay(result.retry_after, done)
        if asked is not None:
            return asked
        wait = self._backoff(row.attempts)
        if not result.rate_limited:
            return wait
        return max(wait, self.limiter.next_free(row.robot, done) - done, self.limiter.window / 2)

    async def _deliver(self, row: OutboxMessage, run: "_Pass") -> None:
        delivery = self.deliveries.get(row.channel)
        now = self.clock()
        row_id = stored_id(row)
        if delivery is None:
            await anyio.to_thread.run_sync(
                lambda: store.mark_failed(self.db, row_id, error=f"no delivery configured for channel {row.channel}")
            )
            return
        self.limiter.record(row.robot, now)  # failed attempts count against the platform's limit too
        try:
            result = await delivery.deliver(row)
        except Exception as exc:  # a bug in a delivery must not stop the sender
            log.exception("delivery of outbox row %s crashed", row_id)
            result = DeliveryResult.retry(f"{type(exc).__name__}: {exc}")
        done = self.clock()
        run.carried.update(result.took_along)
        if result.expansion is not None:
            self.limiter.forget(row.robot, now)  # rendering sent nothing; the children count when they go
            await self._expand(row, result.expansion, done)
        elif result.ok:
            if not result.called:
                self.limiter.forget(row.robot, now)
            if result.rest:
                await self._settle(row, result, done, run.settled)
            else:
                await run.sent.add((row_id, done))
        elif result.retryable:
            if result.waiting:
                self.limiter.forget(row.robot, now)  # it waits by design: no platform call was made
            wait = self._retry_wait(row, result, done)
            if result.rate_limited:
                self._paused[row.robot] = max(self._paused.get(row.robot, done), done + wait)
            level = logging.DEBUG if result.waiting else logging.WARNING
            log.log(level, "outbox row %s: %s; retrying in %.0fs", row_id, result.error, wait.total_seconds())
            await anyio.to_thread.run_sync(
                lambda: store.mark_retry(self.db, row_id, now=done, next_attempt_at=done + wait, error=result.error)
            )
        else:
            log.warning("outbox row %s failed: %s", row_id, result.error)
            if result.rest:  # the first message cannot go; the others still can (as when all were children)
                await self._settle(row, result, done, run.settled)
            else:
                await anyio.to_thread.run_sync(lambda: store.mark_failed(self.db, row_id, error=result.error))

    async def _expand(self, row: OutboxMessage, drafts: Sequence[Draft], now: datetime) -> None:
        """Queue the messages a replies row rendered into, as its children, in one transaction; then send them."""
        row_id = stored_id(row)
        children = _queued(row, drafts)
        added = await anyio.to_thread.run_sync(lambda: store.expand(self.db, row_id, children, now=now))
        log.debug("outbox row %s: rendered into %d messages (%d new)", row_id, len(children), added)
        self.kick()

    async def _settle(
        self, row: OutboxMessage, result: DeliveryResult, done: datetime,
        settled: "_Batched[store.Settled] | None" = None,
    ) -> None:
        """A replies row whose first message went in place (or failed for good): record that and queue the rest
        as its children `#2` … in one transaction (a retried row adds no child twice), shared with the other
        rows of the pass settled meanwhile; then send them."""
        children = _queued(row, result.rest)
        batch = settled or _Batched(lambda batch: store.settle_many(self.db, batch))
        await batch.add(store.Settled(row, children, at=done, sent=result.ok, error=result.error))
        log.debug("outbox row %s: first message %s, %d more queued",
                  stored_id(row), "sent" if result.ok else "failed", len(children))
        self.kick()

    async def run(self, *, poll_seconds: float = 1.0) -> None:
        """Drain forever: after each pass, wait for a kick or the next poll."""
        while True:
            # A fresh event before draining: a kick that lands mid-drain is not lost.
            self._wake = anyio.Event()
            try:
                sent = await self.drain_once()
            except Exception:
                log.exception("outbox drain failed; retrying")
                sent = 0
            if sent:
                continue
            with anyio.move_on_after(poll_seconds):
                await self._wake.wait()


def _throttled(robot: str, until: datetime) -> str:
    return f"not tried: {robot} is throttled by the platform until {until.isoformat()}"


def _queued(row: OutboxMessage, drafts: Sequence[Draft]) -> list[store.QueuedMessage]:
    """A row's rendered messages as rows to add (a draft's channel and robot default to the row's)."""
    return [
        store.QueuedMessage(
            channel=draft.channel or row.channel, robot=storable_id(draft.robot) if draft.robot else row.robot,
            kind=draft.kind, payload=dict(draft.payload), blob=draft.blob,
        )
        for draft in drafts
    ]


@dataclass(frozen=True, slots=True)
class Draft:
    """One outgoing platform message before it gets its row (kind, JSON payload, optional bytes)."""

    kind: str  # text / markdown / image / file
    payload: dict[str, object]
    blob: bytes | None = None
    channel: str | None = None  # override the route's channel (e.g. images go by webhook)
    robot: str | None = None  # override the route's robot


REPLIES_KIND = "replies"  # an outbox row holding a handled message's replies, not yet rendered for its platform


def replies_payload(
    replies: Sequence[Reply], route: Mapping[str, Any], directory_version: int | None = None
) -> dict[str, Any]:
    """A `replies` row's payload: the route the message came by, its platform-neutral replies and the directory
    version they were handled at (rendering needs a directory at least that new, and no SELECT to know it)."""
    payload: dict[str, Any] = {"route": dict(route), "replies": [reply_to_json(reply) for reply in replies]}
    if directory_version is not None:
        payload["directory_version"] = directory_version
    return payload


@dataclass(frozen=True, slots=True)
class RepliesRow:
    """What a `replies` row holds (`directory_version` None: queued before rows carried it)."""

    replies: list[Reply]
    route: dict[str, Any]
    directory_version: int | None = None


def read_replies_row(payload: str) -> RepliesRow:
    """The replies, route and directory version a `replies` row holds; ValueError when the payload is not one."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ValueError("the payload is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("route"), dict) or not isinstance(data.get("replies"), list):
        raise ValueError("the payload has no route and replies")
    version = data.get("directory_version")
    return RepliesRow(
        [reply_from_json(reply) for reply in data["replies"]], data["route"],
        version if isinstance(version, int) and not isinstance(version, bool) else None,
    )


def read_replies_payload(payload: str) -> tuple[list[Reply], dict[str, Any]]:
    """The replies and route a `replies` row holds; ValueError when the payload is not one."""
    row = read_replies_row(payload)
    return row.replies, row.route


def rendered_row(row: OutboxMessage, draft: Draft) -> OutboxMessage:
    """The row as its one rendered message (not stored): what a channel's delivery reads, with the row's
    id, key, attempts and times, and the draft's kind, payload and bytes."""
    fields = row.model_dump()
    fields.update(kind=draft.kind, payload=json.dumps(dict(draft.payload), ensure_ascii=False), blob=draft.blob)
    return OutboxMessage(**fields)


def summary(row: OutboxMessage, limit: int = 40) -> str:
    """What a row says, in one short line, for `safetybot outbox` (replies rows: how many, and the first line)."""
    if row.kind != REPLIES_KIND:
        return ""
    try:
        replies, _ = read_replies_payload(row.payload)
    except ValueError:
        return "replies: unreadable"
    first = next((line.strip() for r in replies for line in r.text.split("\n") if line.strip()), "")
    extra = sum((r.image_png is not None) + (r.file_data is not None) for r in replies)
    media = f" +{extra} attachment{'s' if extra != 1 else ''}" if extra else ""
    return f"{len(replies)} repl{'ies' if len(replies) != 1 else 'y'}{media}: {_clip(first, limit)}"


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """Split text into parts of at most max_bytes UTF-8 bytes, at line breaks where possible.

    A character is never cut; a line is only cut when it alone exceeds the limit.
    """
    if max_bytes < 4:  # a 4-byte character could never fit, and the loop below would not advance
        raise ValueError("max_bytes must be at least 4")
    if len(text.encode("utf-8")) <= max_bytes:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = line if not current else current + "\n" + line
        if len(candidate.encode("utf-8")) <= max_bytes:
            current = candidate
            continue
        if current:
            parts.append(current)
            current = ""
        while len(line.encode("utf-8")) > max_bytes:
            cut, size = 0, 0
            for index, char in enumerate(line):
                size += len(char.encode("utf-8"))
                if size > max_bytes:
                    cut = index
                    break
            parts.append(line[:cut])
            line = line[cut:]
        current = line
    if current:
        parts.append(current)
    return parts
