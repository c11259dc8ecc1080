"""The platforms' queries on SQLite and PostgreSQL: mention targets, re-queued replies, simulator pushes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine
from sqlmodel import Session

from models import outbox as store
from models.db import upgrade
from models.platform_queries import QueuedMessage, console_pushes, dingtalk_targets, requeue, wecom_userids
from models.tables import PersonRow, UnitRow

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def _people(db: Engine) -> None:
    upgrade(db)
    with Session(db) as session:
        session.add(UnitRow(id="u", name="总务处"))
        session.flush()
        session.add(PersonRow(id="zhang", name="张伟", unit_id="u", wecom_userid="ZhangWei", dingtalk_staff_id="0101"))
        session.add(PersonRow(id="li", name="李娜", unit_id="u", mobile="13800000000"))
        session.add(PersonRow(id="wang", name="王芳", unit_id="u"))
        session.commit()


def test_mention_targets_keep_the_order_asked_and_skip_who_has_no_id(any_engine: Engine) -> None:
    _people(any_engine)
    with Session(any_engine) as session:
        assert wecom_userids(session, ["li", "zhang", "zhang", "nobody"]) == ["ZhangWei"]
        assert wecom_userids(session, []) == []
        targets = dingtalk_targets(session, ["wang", "li", "zhang", "nobody"])
    assert targets.user_ids == ["0101"] and targets.mobiles == ["13800000000"]
    assert targets.names == ["王芳", "李娜", "张伟"]


def test_requeue_adds_each_message_once(any_engine: Engine) -> None:
    upgrade(any_engine)
    messages = [QueuedMessage("wecom_webhook", "wecom:webhook:g", "markdown", {"content": f"第{i}段"}) for i in (1, 2)]
    options = dict(dedupe_prefix="reply:wecom:m1:0:webhook", platform="wecom", group_id="g", now=T0,
                   give_up_after=timedelta(hours=1))
    assert requeue(any_engine, messages, **options) == 2  # type: ignore[arg-type]
    assert requeue(any_engine, messages, **options) == 0  # type: ignore[arg-type]
    rows = store.list_messages(any_engine)
    assert sorted(r.dedupe_key for r in rows) == ["reply:wecom:m1:0:webhook:0", "reply:wecom:m1:0:webhook:1"]
    assert {(r.channel, r.robot, r.group_id, r.state) for r in rows} == {("wecom_webhook", "wecom:webhook:g", "g", "pending")}


def test_console_pushes_after_a_row_id(any_engine: Engine) -> None:
    upgrade(any_engine)
    assert console_pushes(any_engine, after=0) == ([], 0)
    with Session(any_engine) as session:
        ids = [
            store.enqueue(session, dedupe_key=f"k{i}", platform=platform, channel=platform, robot="r", now=T0,
                          give_up_after=timedelta(hours=1), payload={"text": f"推送{i}"})
            for i, platform in enumerate(["console", "wecom", "console"])
        ]
        session.commit()
    rows, last_id = console_pushes(any_engine, after=0)
    assert [r.id for r in rows] == [ids[0], ids[2]] and last_id == ids[2]
    rows, last_id = console_pushes(any_engine, after=ids[0])  # type: ignore[arg-type]
    assert [r.id for r in rows] == [ids[2]] and '"推送2"' in rows[0].payload


def test_notices_taken_along_are_leased_once_and_marked_sent_together(any_engine: Engine) -> None:
    from models.platform_queries import mark_sent_together, release, still_pending, take_companions

    upgrade(any_engine)
    with Session(any_engine) as session:
        for i, (robot, kind) in enumerate([("w:g", "notice"), ("w:g", "notice"), ("w:g", "markdown"),
                                           ("w:other", "notice"), ("w:g", "notice"), ("w:g", "notice")]):
            store.enqueue(session, dedupe_key=f"n{i}", platform="wecom", channel="wecom_webhook", robot=robot, now=T0,
                          give_up_after=timedelta(hours=1), kind=kind, payload={"content": f"<@U{i}> 请留意：#{i}"})
        session.commit()
    later = T0 + timedelta(seconds=1)
    [next_leader] = store.claim(any_engine, [6], now=later, lease=timedelta(minutes=2))  # another sender's pass
    [leader, second] = store.claim(any_engine, [1, 2], now=T0, lease=timedelta(minutes=2))  # one sender pass
    taken = take_companions(any_engine, leader, now=T0, lease=timedelta(minutes=2))
    # The same robot's notices: the one claimed in the same pass, and the free one; not the markdown, not the other robot.
    assert [(t.id, t.payload["content"]) for t in taken] == [(2, "<@U1> 请留意：#1"), (5, "<@U4> 请留意：#4")]
    # The other pass's notice finds them leased.
    assert take_companions(any_engine, next_leader, now=later, lease=timedelta(minutes=2)) == []
    release(any_engine, [5])  # did not fit: free again
    assert [t.id for t in take_companions(any_engine, next_leader, now=later, lease=timedelta(minutes=2))] == [5]
    mark_sent_together(any_engine, [1, 2, 5], now=T0)
    assert [still_pending(any_engine, i) for i in (1, 2, 3, 4, 5, 6)] == [False, False, True, True, False, True]
    assert second.id == 2
