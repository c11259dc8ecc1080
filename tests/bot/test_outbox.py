"""The outbox sender: once per key, per-robot rate, retries with backoff, giving up with a reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.cli import main
from bot.outbox import (
    DeliveryResult, Draft, OutboxSender, SlidingWindowLimiter, answer_reason, platform_error, retry_after_delay,
    split_utf8,
)
from models import outbox as store
from models.db import make_engine, upgrade
from models.tables import OutboxMessage

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class PlatformEdge:
    """Stands in for a remote platform: records deliveries, fails on demand."""

    def __init__(self) -> None:
        self.received: list[tuple[str, datetime]] = []
        self.script: list[DeliveryResult] = []
        self.clock: Clock | None = None

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        result = self.script.pop(0) if self.script else DeliveryResult.sent()
        if result.ok:
            assert self.clock is not None
            self.received.append((message.dedupe_key, self.clock.now))
        return result


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'o.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _enqueue(
    db: Engine, key: str, *, robot: str = "r1", at: datetime = T0, give_up: float = 60,
    priority: int = store.PRIORITY_NORMAL,
) -> int | None:
    with Session(db) as session:
        row_id = store.enqueue(
            session, dedupe_key=key, platform="wecom", channel="edge", robot=robot, now=at,
            give_up_after=timedelta(minutes=give_up), payload={"text": key}, priority=priority,
        )
        session.commit()
    return row_id


def _sender(db: Engine, clock: Clock, edge: PlatformEdge, **kw: float) -> OutboxSender:
    edge.clock = clock
    return OutboxSender(db=db, deliveries={"edge": edge}, clock=clock, **kw)  # type: ignore[arg-type]


def test_a_key_is_stored_once(db: Engine) -> None:
    assert _enqueue(db, "k1") is not None
    assert _enqueue(db, "k1") is None
    with Session(db) as session:
        assert len(session.exec(select(OutboxMessage)).all()) == 1


def test_45_pushes_to_one_robot_never_exceed_20_a_minute(db: Engine) -> None:
    clock, edge = Clock(), PlatformEdge()
    sender = _sender(db, clock, edge)
    for i in range(45):
        _enqueue(db, f"push:{i}")
    for _ in range(181):  # three simulated minutes, a drain every second
        anyio.run(sender.drain_once)
        clock.now += timedelta(seconds=1)
    keys = [key for key, _ in edge.received]
    assert sorted(keys) == sorted(f"push:{i}" for i in range(45)) and len(set(keys)) == 45
    times = [at for _, at in edge.received]
    for start in times:
        assert sum(1 for t in times if start <= t < start + timedelta(seconds=60)) <= 20


def test_robots_have_separate_budgets(db: Engine) -> None:
    clock, edge = Clock(), PlatformEdge()
    sender = _sender(db, clock, edge)
    for i in range(25):
        _enqueue(db, f"a:{i}", robot="a")
        _enqueue(db, f"b:{i}", robot="b")
    anyio.run(sender.drain_once)
    assert len(edge.received) == 40


def test_retryable_failure_backs_off_then_succeeds(db: Engine) -> None:
    clock, edge = Clock(), PlatformEdge()
    edge.script = [DeliveryResult.retry("HTTP 502"), DeliveryResult.retry("errcode -1")]
    sender = _sender(db, clock, edge, retry_base_seconds=2)
    _enqueue(db, "k")
    anyio.run(sender.drain_once)
    anyio.run(sender.drain_once)  # not due yet: the backoff holds it
    assert edge.received == [] and len(edge.script) == 1
    clock.now += timedelta(seconds=2)
    anyio.run(sender.drain_once)
    clock.now += timedelta(seconds=4)
    anyio.run(sender.drain_once)
    assert [key for key, _ in edge.received] == ["k"]
    row = store.list_messages(db)[0]
    assert (row.state, row.attempts) == ("sent", 3)


def test_rate_limited_answer_waits_for_the_window(db: Engine) -> None:
    clock, edge = Clock(), PlatformEdge()
    edge.script = [DeliveryResult.retry("errcode 45009 api freq out of limit", rate_limited=True)]
    sender = _sender(db, clock, edge)
    _enqueue(db, "k")
    anyio.run(sender.drain_once)
    clock.now += timedelta(seconds=29)
    anyio.run(sender.drain_once)
    assert edge.received == []
    clock.now += timedelta(seconds=1)
    anyio.run(sender.drain_once)
    assert [key for key, _ in edge.received] == ["k"]


def test_gives_up_after_the_bounded_time_and_records_why(db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock, edge = Clock(), PlatformEdge()
    edge.script = [DeliveryResult.retry("connection refused")] * 50
    sender = _sender(db, clock, edge, retry_base_seconds=10, retry_max_seconds=60)
    _enqueue(db, "k", give_up=3)
    for _ in range(40):
        anyio.run(sender.drain_once)
        clock.now += timedelta(seconds=15)
    row = store.list_messages(db)[0]
    assert row.state == "failed" and "gave up after" in row.last_error and "connection refused" in row.last_error


def test_permanent_failure_is_not_retried(db: Engine) -> None:
    clock, edge = Clock(), PlatformEdge()
    edge.script = [DeliveryResult.fail("errcode 93000 invalid webhook url")]
    sender = _sender(db, clock, edge)
    _enqueue(db, "k")
    anyio.run(sender.drain_once)
    clock.now += timedelta(minutes=5)
    anyio.run(sender.drain_once)
    row = store.list_messages(db)[0]
    assert (row.state, row.attempts, row.last_error) == ("failed", 1, "errcode 93000 invalid webhook url")


def test_a_restart_resumes_and_keeps_counting_the_window(db: Engine) -> None:
    clock, edge = Clock(), PlatformEdge()
    for i in range(30):
        _enqueue(db, f"k{i}")
    anyio.run(_sender(db, clock, edge).drain_once)
    assert len(edge.received) == 20
    restarted = _sender(db, clock, edge)  # a new process: its limiter is seeded from the database
    clock.now += timedelta(seconds=30)
    anyio.run(restarted.drain_once)
    assert len(edge.received) == 20
    clock.now += timedelta(seconds=31)
    anyio.run(restarted.drain_once)
    assert len(edge.received) == 30 and len({k for k, _ in edge.received}) == 30


def test_a_leased_row_is_not_taken_twice(db: Engine) -> None:
    _enqueue(db, "k")
    ids = [row_id for row_id, _ in store.due_candidates(db, now=T0, limit=10)]
    first = store.claim(db, ids, now=T0, lease=timedelta(minutes=2))
    second = store.claim(db, ids, now=T0 + timedelta(seconds=5), lease=timedelta(minutes=2))
    assert len(first) == 1 and second == []
    # an expired lease (the sender died mid-send) is taken again
    assert len(store.claim(db, ids, now=T0 + timedelta(minutes=3), lease=timedelta(minutes=2))) == 1


def test_limiter_is_a_sliding_window() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=60)
    limiter.record("r", T0)
    limiter.record("r", T0 + timedelta(seconds=30))
    assert limiter.available("r", T0 + timedelta(seconds=59)) == 0
    assert limiter.next_free("r", T0 + timedelta(seconds=59)) == T0 + timedelta(seconds=60)
    assert limiter.available("r", T0 + timedelta(seconds=60)) == 1


def test_limiter_forgets_robots_without_a_send_in_the_window() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=60)
    for i in range(1000):  # one-off robots, e.g. a WeCom stream's held reply each
        limiter.record(f"wecom:stream:{i}", T0)
    limiter.record("busy", T0 + timedelta(seconds=50))
    assert len(limiter.saturated(T0 + timedelta(seconds=30))) == 1001
    assert limiter.saturated(T0 + timedelta(seconds=70)) == {"busy"}
    assert set(limiter._sent) == {"busy"}
    assert limiter.available("wecom:stream:1", T0 + timedelta(seconds=70)) == 1


@pytest.mark.parametrize("limit", [10, 2048, 4096])
def test_split_never_cuts_a_character_or_exceeds_the_limit(limit: int) -> None:
    text = "\n".join(f"#{i} 3号教学楼二楼东侧 消防通道堆放杂物｜王建国｜12-10 还剩5天 🔥" for i in range(300))
    parts = split_utf8(text, limit)
    assert all(len(p.encode("utf-8")) <= limit for p in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")
    if limit >= 200:  # lines fit: no line is cut
        assert "\n".join(parts) == text


def _cli_config(tmp_path: Path) -> tuple[Path, Engine]:
    config = tmp_path / "c.toml"
    db_url = f"sqlite:///{tmp_path / 'o.db'}"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[[units]]\nid = "s"\nname = "学校"\n'
        '[[people]]\nid = "a"\nname = "管理员"\nunit = "s"\nroles = ["admin"]\n',
        encoding="utf-8",
    )
    db = make_engine(db_url)
    upgrade(db)
    return config, db


def test_outbox_command_lists_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, db = _cli_config(tmp_path)
    _enqueue(db, "push:1")
    store.mark_failed(db, 1, error="errcode 93000 invalid webhook url")
    assert main(["outbox", "--config", str(config), "--state", "failed"]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "push:1" in out and "93000" in out


def test_a_claim_after_an_expired_lease_remembers_the_interrupted_attempt(db: Engine) -> None:
    _enqueue(db, "k")
    first = store.claim(db, [1], now=T0, lease=timedelta(minutes=2))
    assert first[0].interrupted_at is None
    # the sender died mid-send: no outcome was recorded, the lease runs out
    again = store.claim(db, [1], now=T0 + timedelta(minutes=3), lease=timedelta(minutes=2))
    assert again[0].interrupted_at == T0
    store.mark_retry(db, 1, now=T0 + timedelta(minutes=3), next_attempt_at=T0 + timedelta(minutes=4), error="502")
    later = store.claim(db, [1], now=T0 + timedelta(minutes=4), lease=timedelta(minutes=2))
    assert later[0].interrupted_at == T0  # still known after an ordinary retry


def _enqueue_many(db: Engine, keys: list[str], *, robot: str) -> None:
    with Session(db) as session:
        for key in keys:
            store.enqueue(
                session, dedupe_key=key, platform="wecom", channel="edge", robot=robot, now=T0,
                give_up_after=timedelta(hours=2), payload={"text": key},
            )
        session.commit()


def test_one_busy_robot_does_not_starve_another_school(db: Engine) -> None:
    # The incident: one message became 436 rows for robot A; the old sender looked only at the 200 oldest
    # pending rows, all A's, so B's reply waited until A's backlog drained (over ten minutes at 20/min).
    clock, edge = Clock(), PlatformEdge()
    sender = _sender(db, clock, edge)
    _enqueue_many(db, [f"reply:a:{i}" for i in range(436)], robot="school-a")
    _enqueue(db, "reply:b:0", robot="school-b")
    anyio.run(sender.drain_once)
    keys = [key for key, _ in edge.received]
    assert keys[:2] == ["reply:a:0", "reply:b:0"]  # robots take turns
    assert len(keys) == 21  # A still gets its full 20 a minute
    # A's backlog: the next pass, A is at its limit and B has nothing; nothing more is sent yet.
    clock.now += timedelta(seconds=1)
    assert anyio.run(sender.drain_once) == 0


def test_a_robot_at_its_limit_takes_no_room_in_the_batch(db: Engine) -> None:
    clock, edge = Clock(), PlatformEdge()
    sender = _sender(db, clock, edge, batch=5)
    _enqueue_many(db, [f"a:{i}" for i in range(50)], robot="a")
    anyio.run(sender.drain_once)  # a sends 5 (the batch)
    anyio.run(sender.drain_once)
    anyio.run(sender.drain_once)
    anyio.run(sender.drain_once)  # a has sent 20: at its limit
    _enqueue(db, "b:0", robot="b")
    clock.now += timedelta(seconds=1)
    anyio.run(sender.drain_once)
    assert [key for key, _ in edge.received][-1] == "b:0" and len(edge.received) == 21


def test_a_major_alert_queued_after_500_rows_goes_first(db: Engine) -> None:
    clock, edge = Clock(), PlatformEdge()
    sender = _sender(db, clock, edge)
    _enqueue_many(db, [f"reply:a:{i}" for i in range(300)], robot="a")
    _enqueue_many(db, [f"push:digest:{i}" for i in range(200)], robot="leaders")
    _enqueue(db, "push:major_alert:7:leaders:0", robot="leaders", priority=store.PRIORITY_URGENT)
    anyio.run(sender.drain_once)
    assert edge.received[0][0] == "push:major_alert:7:leaders:0"


def test_http_429_with_retry_after_is_retried_then_delivered_once(db: Engine) -> None:
    clock, edge = Clock(), PlatformEdge()
    edge.script = [DeliveryResult.retry("HTTP 429", rate_limited=True, retry_after="7")]
    sender = _sender(db, clock, edge)
    _enqueue(db, "k")
    _enqueue(db, "k2")  # same robot: throttled too, so not tried in the same pass
    anyio.run(sender.drain_once)
    assert edge.received == [] and edge.script == []
    row, second = store.list_messages(db)[1], store.list_messages(db)[0]
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 1, T0 + timedelta(seconds=7))
    assert (second.state, second.attempts) == ("pending", 0)
    clock.now += timedelta(seconds=6)
    assert anyio.run(sender.drain_once) == 0  # Retry-After is honored
    clock.now += timedelta(seconds=1)
    anyio.run(sender.drain_once)
    assert [key for key, _ in edge.received] == ["k", "k2"]
    assert [(r.state, r.attempts) for r in store.list_messages(db)] == [("sent", 1), ("sent", 2)]


def test_a_throttled_robot_does_not_hold_up_others(db: Engine) -> None:
    clock, edge = Clock(), PlatformEdge()
    edge.script = [DeliveryResult.retry("errcode 45009 api freq out of limit", rate_limited=True)]
    sender = _sender(db, clock, edge)
    _enqueue(db, "a:0", robot="a")
    _enqueue(db, "b:0", robot="b")
    _enqueue(db, "a:1", robot="a")
    anyio.run(sender.drain_once)
    assert [key for key, _ in edge.received] == ["b:0"]
    clock.now += timedelta(seconds=30)
    anyio.run(sender.drain_once)
    assert [key for key, _ in edge.received] == ["b:0", "a:0", "a:1"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120), ("Mon, 23 Nov 2026 08:01:30 GMT", 90), ("soon", None), (None, None), ("-5", None),
        ("Mon, 23 Nov 2026 07:00:00 GMT", 0), ("9" * 40, 86_400),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str | None, seconds: int | None) -> None:
    delay = retry_after_delay(header, T0)
    assert delay == (None if seconds is None else timedelta(seconds=seconds))


def _fail_after_outage(db: Engine, key: str, *, at: datetime) -> int:
    row_id = _enqueue(db, key)
    assert row_id is not None
    store.claim(db, [row_id], now=at, lease=timedelta(minutes=2))
    store.mark_failed(db, row_id, error="gave up after 12 attempts: network error: ConnectError")
    return row_id


def test_requeue_by_id_sends_a_given_up_reply_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, db = _cli_config(tmp_path)
    failed = _fail_after_outage(db, "reply:wecom:m1:0", at=T0)
    sent = _enqueue(db, "reply:wecom:m2:0")
    assert sent is not None
    store.mark_sent(db, sent, now=T0)
    later = T0 + timedelta(hours=3)
    code = main(["outbox", "--config", str(config), "--requeue", str(failed), "--requeue", str(sent),
                 "--now", later.isoformat()])
    out = capsys.readouterr().out
    assert code == 0
    assert f"requeued {failed:>6}  reply:wecom:m1:0" in out and "ConnectError" in out
    assert f"skipped  {sent:>6}  was sent already" in out and "1 message(s) requeued" in out
    # the sender delivers it once; asking again changes nothing
    clock, edge = Clock(), PlatformEdge()
    clock.now = later
    sender = _sender(db, clock, edge)
    anyio.run(sender.drain_once)
    anyio.run(sender.drain_once)
    assert [key for key, _ in edge.received] == ["reply:wecom:m1:0"]
    assert main(["outbox", "--config", str(config), "--requeue", str(failed), "--now", later.isoformat()]) == 0
    assert "was sent already" in capsys.readouterr().out
    anyio.run(sender.drain_once)
    assert len(edge.received) == 1


def test_requeue_failed_since_takes_only_rows_that_failed_after_the_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, db = _cli_config(tmp_path)
    _fail_after_outage(db, "push:old", at=T0 - timedelta(days=1))
    recent = _fail_after_outage(db, "push:major_alert:3:leaders:0", at=T0 + timedelta(minutes=10))
    since = "2026-11-23T16:00+08:00"  # T0 in Shanghai
    assert main(["outbox", "--config", str(config), "--requeue-failed-since", since,
                 "--now", "2026-11-23T18:00+08:00"]) == 0
    out = capsys.readouterr().out
    assert "push:major_alert:3:leaders:0" in out and "push:old" not in out
    states = {row.dedupe_key: (row.state, row.attempts) for row in store.list_messages(db)}
    assert states == {"push:old": ("failed", 1), "push:major_alert:3:leaders:0": ("pending", 0)}
    assert store.list_messages(db, state="pending")[0].id == recent
    assert main(["outbox", "--config", str(config), "--requeue-failed-since", "2026-11-23 16:00"]) == 2
    assert "UTC offset" in capsys.readouterr().err


# -- what a refused delivery leaves in last_error ------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "expected"), [
    (502, b"<html><body>Bad gateway: db password hunter2</body></html>", "HTTP 502"),
    (200, "<!DOCTYPE html><title>内网</title>secret", "HTTP 200"),
    (400, b'{"errcode": 93000, "errmsg": "invalid webhook url, hint: [1733] more info at https://open.work"}',
     "HTTP 400 errcode 93000: invalid webhook url, hint: [1733] more info at https://open.work"),
    (400, '{"code": "invalidParameter.msgKey.invalid", "message": "msgKey无效"}'.encode(),
     "HTTP 400 invalidParameter.msgKey.invalid: msgKey无效"),
    (403, b'{"password": "hunter2"}', "HTTP 403"),  # JSON, but not a platform's error object
    (500, b'{"errcode": "93000", "errmsg": "x"}', "HTTP 500"),  # errcode must be a number
    (404, b"", "HTTP 404"),
])
def test_answer_reason_keeps_the_status_and_the_platform_code_only(status: int, body: bytes | str, expected: str) -> None:
    assert answer_reason(status, body) == expected


def test_a_platform_message_is_clipped_to_one_short_line() -> None:
    reason = platform_error({"errcode": 45009, "errmsg": "api freq out of limit\n" + "x" * 500})
    assert reason is not None and reason.startswith("errcode 45009: api freq out of limit x")
    assert "\n" not in reason and len(reason) <= len("errcode 45009: ") + 80
    assert platform_error({"errcode": 40014}) is None and platform_error(["errcode"]) is None


class ExpandingEdge(PlatformEdge):
    """A platform whose `replies` rows render into two messages (the first on the row's own robot)."""

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        if message.kind == "replies":
            return DeliveryResult.expand([Draft("markdown", {"text": "answer"}), Draft("markdown", {"text": "@"}, robot="r2")])
        return await super().deliver(message)


def test_an_expansion_is_not_a_send_and_its_children_keep_their_order(db: Engine) -> None:
    clock, edge = Clock(), ExpandingEdge()
    sender = _sender(db, clock, edge, per_minute=1)
    with Session(db) as session:
        store.enqueue(session, dedupe_key="reply:wecom:m1", platform="wecom", channel="edge", robot="r1", now=T0,
                      give_up_after=timedelta(minutes=60), kind="replies", payload={"route": {}, "replies": []})
        session.commit()
    assert anyio.run(sender.drain_once) == 1  # rendered and expanded: nothing sent, r1's one send a minute still free
    assert edge.received == []
    assert anyio.run(sender.drain_once) == 2
    assert [key for key, _ in edge.received] == ["reply:wecom:m1#1", "reply:wecom:m1#2"]
    assert [(r.dedupe_key, r.state, r.robot) for r in reversed(store.list_messages(db))] == [
        ("reply:wecom:m1", "expanded", "r1"), ("reply:wecom:m1#1", "sent", "r1"), ("reply:wecom:m1#2", "sent", "r2"),
    ]


class SlowEdge(PlatformEdge):
    """A platform that answers after a while, counting the deliveries it is answering at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await anyio.sleep(0.01)
        self.in_flight -= 1
        return await super().deliver(message)


def test_replies_to_different_messages_go_side_by_side_and_parts_keep_their_order(db: Engine) -> None:
    clock, edge = Clock(), SlowEdge()
    sender = _sender(db, clock, edge, per_minute=1000)
    _enqueue_many(db, ["reply:wecom:m1:0", "reply:wecom:m2:0", "reply:wecom:m2:1", "reply:wecom:m2:2"], robot="chat")
    _enqueue_many(db, [f"reply:wecom:n{i}:0" for i in range(20)], robot="chat")
    assert anyio.run(sender.drain_once) == 24
    keys = [key for key, _ in edge.received]
    assert keys[0] == "reply:wecom:m1:0"  # the robot's first row alone: a throttled robot gets no more
    m2 = [key for key in keys if key.startswith("reply:wecom:m2:")]
    assert m2 == ["reply:wecom:m2:0", "reply:wecom:m2:1", "reply:wecom:m2:2"]
    assert 1 < edge.most_in_flight <= 16
    assert [row.state for row in store.list_messages(db, limit=100)] == ["sent"] * 24
    assert {row.attempts for row in store.list_messages(db, limit=100)} == {1}


def test_a_claim_takes_the_rows_in_the_order_asked_without_those_held(db: Engine) -> None:
    ids = [row_id for i in range(5) if (row_id := _enqueue(db, f"k{i}")) is not None]
    held = store.claim(db, [ids[2]], now=T0, lease=timedelta(minutes=2))
    assert [row.dedupe_key for row in held] == ["k2"]
    order = [ids[4], ids[2], ids[0], ids[3]]
    rows = store.claim(db, order, now=T0 + timedelta(seconds=1), lease=timedelta(minutes=2))
    assert [row.dedupe_key for row in rows] == ["k4", "k0", "k3"]
    assert all(row.claimed_until == T0 + timedelta(seconds=1, minutes=2) for row in rows)
