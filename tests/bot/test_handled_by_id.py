"""A recorded message handled by its id (`Engine.work`, a handler process's path), on SQLite and PostgreSQL.

The claim reads the message and takes its stored photos; the finish and the replies' outbox row are one
statement on PostgreSQL. These pin what that must keep: handled once, photos with the claim, a failure
final with its photos gone, the outbox row kept once per dedupe key while the message is still finished.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine as DbEngine
from sqlmodel import Session, col, select

from bot.engine import INTERNAL_ERROR_TEXT, Engine
from handlers.messages import Attachment
from models import outbox as outbox_store
from models.tables import AttachmentFile, InboundAttachment, InboundMessage, OutboxMessage
from tests.bot.test_numbers_taken_last import BOOM, _db, _engine, _refuse_boom, message, postgres_url  # noqa: F401

ROUTE = {"channel": "wecom_webhook", "robot": "robot-1", "group_id": "staff", "sender_name": "张伟"}


def _record(engine: Engine, msg_id: str, n: int, photo: bytes | None = None) -> int:
    inbound_id = engine.record(message(msg_id, n), route=ROUTE).inbound_id
    assert inbound_id is not None
    if photo is not None:
        engine.keep_attachments(inbound_id, [Attachment("photo1.png", "image/png", photo)])
    return inbound_id


def _row(db: DbEngine, inbound_id: int) -> InboundMessage:
    with Session(db) as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        return row


def _outbox(db: DbEngine) -> list[OutboxMessage]:
    with Session(db) as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


def _stored_photos(db: DbEngine) -> int:
    with Session(db) as session:
        return len(session.exec(select(InboundAttachment)).all())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_message_handled_by_id_takes_its_photos_and_queues_one_replies_row(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, tiny_png: bytes
) -> None:
    db = _db(kind, tmp_path, request)
    engine = _engine(db, tmp_path)
    engine.start()
    inbound_id = _record(engine, "m1", 1, tiny_png)

    replies = engine.work(inbound_id)
    assert "已登记隐患 #1" in replies[0].text and "照片：1张已保存" in replies[0].text
    assert engine.work(inbound_id) == []  # handled once
    row = _row(db, inbound_id)
    assert row.state == "handled" and "已登记隐患 #1" in (row.reply_text or "")
    assert _stored_photos(db) == 0
    with Session(db) as session:
        assert len(session.exec(select(AttachmentFile)).all()) == 1  # the hazard keeps its photo
    [queued] = _outbox(db)
    assert (queued.dedupe_key, queued.kind, queued.channel, queued.robot, queued.state) == (
        "reply:console:m1", "replies", "wecom_webhook", "robot-1", "pending"
    )
    assert queued.give_up_at - queued.created_at == engine.give_up_after
    assert "已登记隐患 #1" in json.dumps(json.loads(queued.payload), ensure_ascii=False)
    db.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_message_whose_handling_the_database_refuses_fails_once_and_drops_its_photos(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, tiny_png: bytes
) -> None:
    db = _db(kind, tmp_path, request)
    engine = _engine(db, tmp_path)
    engine.start()
    _refuse_boom(db)
    inbound_id = _record(engine, BOOM, 1, tiny_png)

    assert [r.text for r in engine.work(inbound_id)] == [INTERNAL_ERROR_TEXT]
    assert engine.work(inbound_id) == []
    row = _row(db, inbound_id)
    assert row.state == "failed" and row.reply_text == INTERNAL_ERROR_TEXT
    assert _stored_photos(db) == 0  # failed is final: its photos go with it
    with Session(db) as session:
        assert session.exec(select(AttachmentFile)).all() == []
    [queued] = _outbox(db)
    assert queued.dedupe_key == f"reply:console:{BOOM}" and INTERNAL_ERROR_TEXT in queued.payload
    db.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_reply_already_queued_is_not_queued_again_and_the_message_is_still_finished(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = _db(kind, tmp_path, request)
    engine = _engine(db, tmp_path)
    engine.start()
    inbound_id = _record(engine, "m1", 1)
    with Session(db) as session:
        earlier = outbox_store.enqueue(
            session, dedupe_key="reply:console:m1", platform="console", channel="wecom_webhook", robot="robot-1",
            now=engine.now(), give_up_after=timedelta(hours=1), payload={"text": "earlier"},
        )
        session.commit()

    assert "已登记隐患 #1" in engine.work(inbound_id)[0].text
    row = _row(db, inbound_id)
    assert row.state == "handled" and "已登记隐患 #1" in (row.reply_text or "")
    assert [(m.id, json.loads(m.payload)) for m in _outbox(db)] == [(earlier, {"text": "earlier"})]
    db.dispose()
