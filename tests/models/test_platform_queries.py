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
