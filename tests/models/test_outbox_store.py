"""Outbox store queries on SQLite and PostgreSQL: fair candidates and requeueing given-up rows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, event
from sqlmodel import Session

from models import outbox as store
from handlers.messages import Reply, reply_from_json, reply_to_json
from models.db import upgrade
from models.tables import OutboxMessage

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def _add(db: Engine, key: str, robot: str, *, priority: int = store.PRIORITY_NORMAL) -> int:
    with Session(db) as session:
        row_id = store.enqueue(
            session, dedupe_key=key, platform="wecom", channel="edge", robot=robot, now=T0,
            give_up_after=timedelta(hours=1), priority=priority,
        )
        session.commit()
    assert row_id is not None
    return row_id


def test_candidates_take_turns_between_robots_urgent_first(any_engine: Engine) -> None:
    upgrade(any_engine)
    plan = [("a0", "a"), ("a1", "a"), ("a2", "a"), ("a3", "a"), ("a4", "a"), ("b0", "b"), ("c0", "c"), ("c1", "c")]
    keys = {_add(any_engine, key, robot): key for key, robot in plan}
    keys[_add(any_engine, "alert", "c", priority=store.PRIORITY_URGENT)] = "alert"
    picked = store.due_candidates(any_engine, now=T0, limit=100, per_robot=3)
    assert [keys[row_id] for row_id, _ in picked] == ["alert", "a0", "b0", "a1", "c0", "a2", "c1"]


def test_candidates_leave_out_blocked_robots(any_engine: Engine) -> None:
    upgrade(any_engine)
    for i in range(3):
        _add(any_engine, f"a{i}", "a")
    _add(any_engine, "b0", "b")
    assert [robot for _, robot in store.due_candidates(any_engine, now=T0, limit=10, skip_robots={"a"})] == ["b"]


def test_requeue_puts_failed_rows_back_and_never_a_sent_one(any_engine: Engine) -> None:
    upgrade(any_engine)
    failed, sent, pending = _add(any_engine, "f", "a"), _add(any_engine, "s", "a"), _add(any_engine, "p", "a")
    store.claim(any_engine, [failed, sent], now=T0, lease=timedelta(minutes=2))
    store.mark_failed(any_engine, failed, error="gave up after 9 attempts: HTTP 502")
    store.mark_sent(any_engine, sent, now=T0)
    later = T0 + timedelta(hours=3)
    outcomes = store.requeue(any_engine, [failed, sent, pending, 99], now=later, give_up_after=timedelta(hours=2))
    assert [(o.row_id, o.outcome) for o in outcomes] == [(failed, "requeued"), (sent, "sent"), (pending, "pending"), (99, "missing")]
    rows = {row.id: row for row in store.list_messages(any_engine)}
    assert (rows[failed].state, rows[failed].attempts, rows[failed].dedupe_key) == ("pending", 0, "f")
    assert rows[failed].give_up_at == later + timedelta(hours=2) and rows[failed].next_attempt_at == later
    assert (rows[sent].state, rows[sent].sent_at) == ("sent", T0)
    # requeued once is one row: asking again does nothing more
    assert store.requeue(any_engine, [failed], now=later, give_up_after=timedelta(hours=2))[0].outcome == "pending"


def test_failed_since_picks_rows_last_tried_after_the_time(any_engine: Engine) -> None:
    upgrade(any_engine)
    early, late = _add(any_engine, "early", "a"), _add(any_engine, "late", "a")
    store.claim(any_engine, [early], now=T0 + timedelta(minutes=5), lease=timedelta(minutes=2))
    store.claim(any_engine, [late], now=T0 + timedelta(minutes=50), lease=timedelta(minutes=2))
    store.mark_failed(any_engine, early, error="x")
    store.mark_failed(any_engine, late, error="x")
    assert store.failed_since(any_engine, T0 + timedelta(minutes=30)) == [late]
    assert store.failed_since(any_engine, T0) == [early, late]


def test_take_held_gives_a_held_reply_once_and_never_while_a_sender_holds_it(any_engine: Engine) -> None:
    upgrade(any_engine)
    assert store.take_held(any_engine, channel="edge", robot="wecom:stream:s1", now=T0) == store.Held()  # not yet there
    row_id = _add(any_engine, "held", "wecom:stream:s1")
    _add(any_engine, "other", "wecom:stream:s2")
    # A sender holds it (it is delivering the fallback): the callback must not give it too.
    store.claim(any_engine, [row_id], now=T0, lease=timedelta(minutes=2))
    assert store.take_held(any_engine, channel="edge", robot="wecom:stream:s1", now=T0 + timedelta(seconds=1)) == store.Held()
    store.mark_retry(any_engine, row_id, now=T0, next_attempt_at=T0 + timedelta(minutes=6), error="held")
    taken = store.take_held(any_engine, channel="edge", robot="wecom:stream:s1", now=T0 + timedelta(seconds=2))
    assert taken.row is not None and taken.row.id == row_id and not taken.done
    assert store.take_held(any_engine, channel="edge", robot="wecom:stream:s1", now=T0 + timedelta(seconds=3)) == store.Held(done=True)
    assert store.take_held(any_engine, channel="other", robot="wecom:stream:s2", now=T0) == store.Held()
    rows = {row.id: row for row in store.list_messages(any_engine)}
    assert (rows[row_id].state, rows[row_id].sent_at) == ("sent", T0 + timedelta(seconds=2))
    # A sender that comes later finds nothing to send.
    assert row_id not in [i for i, _ in store.due_candidates(any_engine, now=T0 + timedelta(hours=1), limit=10)]


def test_a_replies_row_keeps_its_replies_and_expands_once(any_engine: Engine) -> None:
    """A handled message's replies wait whole (text, mentions, bytes) and become their rows once, on both databases."""
    upgrade(any_engine)
    chart = bytes(range(256)) * 4  # every byte value, as a PNG has them
    replies = [Reply("已登记隐患 #1\n问题：插座\x00冒烟 😀", mentions=("wang_jianguo",)), Reply("统计图", image_png=chart)]
    with Session(any_engine) as session:
        parent = store.enqueue(
            session, dedupe_key="reply:wecom:m1", platform="wecom", channel="wecom_response_url", robot="aibot",
            group_id="wecom-staff", kind="replies", now=T0, give_up_after=timedelta(hours=1),
            payload={"route": {"mode": "response_url"}, "replies": [reply_to_json(r) for r in replies]},
            priority=store.PRIORITY_URGENT,
        )
        # a child an earlier expansion left (its key is taken: the expansion skips it)
        store.enqueue(session, dedupe_key="reply:wecom:m1#1", platform="wecom", channel="wecom_response_url",
                      robot="aibot", now=T0, give_up_after=timedelta(hours=1), kind="markdown", payload={"content": "a"})
        session.commit()
    assert parent is not None
    with Session(any_engine) as session:
        row = session.get(OutboxMessage, parent)
        assert row is not None
        assert [reply_from_json(r) for r in json.loads(row.payload)["replies"]] == replies

    children = [
        store.QueuedMessage("wecom_response_url", "aibot", "markdown", {"content": "已登记隐患 #1"}),
        store.QueuedMessage("wecom_webhook", "wecom:webhook:wecom-staff", "image", {"group_id": "wecom-staff"}, chart),
    ]
    later = T0 + timedelta(minutes=1)
    assert store.expand(any_engine, parent, children, now=later) == 1  # #2 only: #1 was there
    assert store.expand(any_engine, parent, children, now=later) == 0  # the parent is no longer pending
    rows = {row.dedupe_key: row for row in store.list_messages(any_engine)}
    assert set(rows) == {"reply:wecom:m1", "reply:wecom:m1#1", "reply:wecom:m1#2"}
    assert (rows["reply:wecom:m1"].state, rows["reply:wecom:m1"].attempts) == ("expanded", 1)
    image = rows["reply:wecom:m1#2"]
    assert (image.state, image.channel, image.blob, image.priority, image.group_id) == (
        "pending", "wecom_webhook", chart, store.PRIORITY_URGENT, "wecom-staff")
    assert image.give_up_at == rows["reply:wecom:m1"].give_up_at  # the reply's deadline, not a new one


def test_a_row_that_sent_its_first_message_queues_the_rest_once(any_engine: Engine) -> None:
    """First in place, the rest as children: the outcome and `#2` … in one transaction, on both databases."""
    upgrade(any_engine)
    with Session(any_engine) as session:
        parent_id = store.enqueue(
            session, dedupe_key="reply:wecom:m2", platform="wecom", channel="wecom_response_url", robot="aibot",
            group_id="wecom-staff", kind="replies", now=T0, give_up_after=timedelta(hours=1),
            payload={"route": {"mode": "response_url"}, "replies": [{"text": "已登记隐患 #2"}]},
            priority=store.PRIORITY_URGENT,
        )
        session.commit()
    later = T0 + timedelta(minutes=1)
    [claimed] = store.claim(any_engine, [parent_id or 0], now=later, lease=timedelta(minutes=2))
    notice = [store.QueuedMessage("wecom_webhook", "wecom:webhook:wecom-staff", "notice", {"content": "<@u> 请留意：#2"})]
    assert store.settle_with_children(any_engine, claimed, notice, now=later, sent=True) == 1
    assert store.settle_with_children(any_engine, claimed, notice, now=later, sent=True) == 0  # a retried row
    rows = {row.dedupe_key: row for row in store.list_messages(any_engine)}
    assert set(rows) == {"reply:wecom:m2", "reply:wecom:m2#2"}
    parent = rows["reply:wecom:m2"]
    assert (parent.state, parent.claimed_until, parent.sent_at is not None) == ("sent", None, True)
    child = rows["reply:wecom:m2#2"]
    assert (child.state, child.kind, child.priority, child.group_id, child.give_up_at) == (
        "pending", "notice", store.PRIORITY_URGENT, "wecom-staff", parent.give_up_at)

    # A first message refused for good: the row fails with the reason, and the rest still go.
    with Session(any_engine) as session:
        other = store.enqueue(session, dedupe_key="reply:wecom:m3", platform="wecom", channel="wecom_response_url",
                              robot="aibot", kind="replies", now=T0, give_up_after=timedelta(hours=1))
        session.commit()
    [claimed] = store.claim(any_engine, [other or 0], now=later, lease=timedelta(minutes=2))
    assert store.settle_with_children(any_engine, claimed, notice, now=later, sent=False, error="HTTP 400") == 1
    rows = {row.dedupe_key: row for row in store.list_messages(any_engine)}
    assert (rows["reply:wecom:m3"].state, rows["reply:wecom:m3"].last_error) == ("failed", "HTTP 400")
    assert rows["reply:wecom:m3#2"].state == "pending"


def test_retry_and_failure_are_recorded_as_before_on_both_databases(any_engine: Engine) -> None:
    """mark_retry / mark_failed are one UPDATE each: counted attempts, the lease dropped, give-up past the row's time."""
    upgrade(any_engine)
    soon, late, uncounted, failed = (_add(any_engine, key, "r1") for key in ("soon", "late", "uncounted", "failed"))
    store.claim(any_engine, [soon, late, uncounted, failed], now=T0, lease=timedelta(minutes=2))
    store.mark_retry(any_engine, soon, now=T0, next_attempt_at=T0 + timedelta(minutes=5), error="HTTP 502")
    store.mark_retry(any_engine, late, now=T0, next_attempt_at=T0 + timedelta(hours=2), error="x" * 3000)
    store.mark_retry(any_engine, uncounted, now=T0, next_attempt_at=T0 + timedelta(seconds=9), error="not tried",
                     counts=False)
    store.mark_failed(any_engine, failed, error="HTTP 404 " + "y" * 3000)
    store.mark_retry(any_engine, 999_999, now=T0, next_attempt_at=T0, error="no such row")  # nothing happens
    rows = {row.id: row for row in store.list_messages(any_engine)}
    assert len(rows) == 4
    fields = {row_id: (row.state, row.attempts, row.next_attempt_at, row.claimed_until) for row_id, row in rows.items()}
    assert fields[soon] == ("pending", 1, T0 + timedelta(minutes=5), None) and rows[soon].last_error == "HTTP 502"
    assert fields[late] == ("failed", 1, T0, None)  # past its give-up time (an hour): the due time stays
    assert rows[late].last_error == ("gave up after 1 attempts: " + "x" * 3000)[:2000]
    assert fields[uncounted] == ("pending", 0, T0 + timedelta(seconds=9), None)
    assert rows[uncounted].last_error == "not tried"
    assert fields[failed] == ("failed", 1, T0, None) and rows[failed].last_error == ("HTTP 404 " + "y" * 3000)[:2000]


def test_rows_settled_together_queue_their_children_once_in_one_transaction(any_engine: Engine) -> None:
    """settle_many: what settle_with_children does, for the rows a sender pass settles at the same time."""
    upgrade(any_engine)
    with Session(any_engine) as session:
        ids = [store.enqueue(session, dedupe_key=f"reply:wecom:s{i}", platform="wecom", channel="wecom_response_url",
                             robot="aibot", group_id="wecom-staff", kind="replies", now=T0,
                             give_up_after=timedelta(hours=1), priority=store.PRIORITY_URGENT * (i == 0))
               for i in range(3)]
        session.commit()
    later = T0 + timedelta(minutes=1)
    claimed = store.claim(any_engine, [i or 0 for i in ids], now=later, lease=timedelta(minutes=2))
    notice = [store.QueuedMessage("wecom_webhook", "wecom:webhook:wecom-staff", "notice", {"content": "<@u> 请留意"})]
    two = [*notice, store.QueuedMessage("wecom_webhook", "wecom:webhook:wecom-staff", "markdown", {"content": "续"})]
    statements: list[str] = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(any_engine, "before_cursor_execute", listen)
    try:
        store.settle_many(any_engine, [
            store.Settled(claimed[0], notice, at=later, sent=True),
            store.Settled(claimed[1], two, at=later, sent=True),
            store.Settled(claimed[2], notice, at=later, sent=False, error="HTTP 400"),
        ])
    finally:
        event.remove(any_engine, "before_cursor_execute", listen)
    assert len(statements) == 3  # the children, the sent, the failed: each one statement sent as a batch
    store.settle_many(any_engine, [store.Settled(claimed[1], two, at=later, sent=True)])  # a retried row: nothing new
    rows = {row.dedupe_key: row for row in store.list_messages(any_engine)}
    assert sorted(rows) == ["reply:wecom:s0", "reply:wecom:s0#2", "reply:wecom:s1", "reply:wecom:s1#2",
                            "reply:wecom:s1#3", "reply:wecom:s2", "reply:wecom:s2#2"]
    assert [(rows[f"reply:wecom:s{i}"].state, rows[f"reply:wecom:s{i}"].claimed_until) for i in range(3)] == [
        ("sent", None), ("sent", None), ("failed", None)]
    assert rows["reply:wecom:s2"].last_error == "HTTP 400" and rows["reply:wecom:s0"].sent_at == later
    assert rows["reply:wecom:s1"].attempts == 2  # settled twice: as settle_with_children, each counts
    child = rows["reply:wecom:s0#2"]
    assert (child.state, child.kind, child.priority, child.give_up_at) == (
        "pending", "notice", store.PRIORITY_URGENT, rows["reply:wecom:s0"].give_up_at)
    assert rows["reply:wecom:s1#3"].kind == "markdown" and json.loads(rows["reply:wecom:s1#3"].payload) == {"content": "续"}


def _plans(db: Engine, calls: "list[tuple[str, object]]") -> list[str]:
    """The plans of captured SELECTs as the server runs them again and again: on PostgreSQL a prepared statement's
    generic plan (which knows no parameter's value), on SQLite the plan of the statement with its parameters."""
    import re

    plans = []
    with db.connect() as connection:
        if db.dialect.name == "postgresql":
            connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        for number, (statement, parameters) in enumerate(calls):
            if db.dialect.name == "sqlite":
                rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()  # type: ignore[arg-type]
                plans.append("\n".join(str(row[-1]) for row in rows))
                continue
            names: list[str] = []

            def numbered(match: "re.Match[str]") -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            numbered_statement = re.sub(r"%\((\w+)\)s", numbered, statement)
            connection.exec_driver_sql(f"PREPARE plan_{number} AS {numbered_statement}")
            raw = connection.connection.dbapi_connection
            assert raw is not None
            import psycopg

            with psycopg.ClientCursor(raw) as cursor:  # type: ignore[arg-type]  # literal arguments for EXECUTE
                values = parameters if isinstance(parameters, dict) else {}
                cursor.execute(f"EXPLAIN EXECUTE plan_{number}({', '.join(['%s'] * len(names))})",
                               [values[name] for name in names])
                plans.append("\n".join(str(row[0]) for row in cursor.fetchall()))
    return plans


def test_the_senders_queries_read_only_the_rows_still_to_send_however_long_the_history(any_engine: Engine) -> None:
    from sqlalchemy import text

    from models.platform_queries import take_companions

    upgrade(any_engine)
    # A year of a school's webhook: thousands of @-notices sent, two waiting.
    with any_engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO outbox (dedupe_key, platform, channel, robot, kind, payload, state, priority, attempts,"
            " created_at, next_attempt_at, give_up_at, last_error)"
            " VALUES (:key, 'wecom', 'wecom_webhook', 'wecom:webhook:g', 'notice', '{}', :state, 0, 1, :at, :at, :at, '')"
        ), [{"key": f"notice-{n}", "state": "sent" if n < 3000 else "pending", "at": T0} for n in range(3002)])
        connection.execute(text("ANALYZE outbox"))
    with Session(any_engine) as session:
        leader = session.get(OutboxMessage, 3001)
    assert leader is not None and leader.state == "pending"
    calls: list[tuple[str, object]] = []

    def seen(conn: object, cursor: object, statement: str, parameters: object, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            calls.append((statement, parameters))

    event.listen(any_engine, "before_cursor_execute", seen)
    try:
        assert len(store.due_candidates(any_engine, now=T0, limit=200, per_robot=20)) == 2
        assert [row.id for row in take_companions(any_engine, leader, now=T0, lease=timedelta(minutes=2)) or []] == [3002]
    finally:
        event.remove(any_engine, "before_cursor_execute", seen)
    plans = _plans(any_engine, calls)
    assert len(plans) == 2
    for plan in plans:
        assert "ix_outbox_pending" in plan, plan
