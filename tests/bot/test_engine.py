"""The receive pipeline: dedupe by platform id, recovery after a crash, no stack traces in chats."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from bot.engine import INTERNAL_ERROR_TEXT, Engine
from handlers.messages import Attachment, Inbound
from models.tables import AttachmentFile, Hazard, InboundAttachment, InboundMessage
from tests.school import REPORT, Chat, chat, engine  # noqa: F401  (fixtures)


def _inbound(chat: Chat, msg_id: str, text: str = REPORT) -> Inbound:
    return Inbound(
        platform="console", msg_id=msg_id, chat_id="staff", sender_id="zhang_wei", text=text,
        received_at=chat.now,
    )


def test_a_message_acknowledged_but_never_handled_is_finished_by_recovery(engine: Engine, chat: Chat) -> None:
    recorded = engine.record(_inbound(chat, "m-crash"))
    assert not recorded.duplicate
    # the process "died" here: recorded, acknowledged, never processed
    chat.advance(minutes=1)
    assert engine.recover(older_than=timedelta(seconds=30)) == 1
    assert engine.recover(older_than=timedelta(seconds=30)) == 0
    with Session(engine.db) as session:
        assert len(session.exec(select(Hazard)).all()) == 1
        row = session.exec(select(InboundMessage)).one()
        assert row.state == "handled" and "已登记隐患 #1" in (row.reply_text or "")


def test_recovery_leaves_fresh_messages_to_their_own_worker(engine: Engine, chat: Chat) -> None:
    engine.record(_inbound(chat, "m-fresh"))
    chat.advance(seconds=5)
    assert engine.recover(older_than=timedelta(seconds=30)) == 0


def test_a_handler_crash_is_answered_politely_and_rolled_back(engine: Engine, chat: Chat, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import handlers.intake

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    # the ledger write fails half-way, after the hazard and its event (e.g. the photos' disk): nothing may remain
    monkeypatch.setattr(handlers.intake, "store_attachments", explode)
    replies = engine.handle_sync(_inbound(chat, "m1"))
    assert [r.text for r in replies] == [INTERNAL_ERROR_TEXT]
    assert "Traceback" not in replies[0].text and "disk on fire" not in replies[0].text
    with Session(engine.db) as session:
        assert session.exec(select(Hazard)).all() == []
        assert session.exec(select(InboundMessage)).one().state == "failed"


def _stored_photos(engine: Engine) -> int:
    with Session(engine.db) as session:
        return len(session.exec(select(InboundAttachment)).all())


def test_photos_stored_with_a_message_are_handled_with_it_and_then_dropped(
    engine: Engine, chat: Chat, tiny_png: bytes
) -> None:
    inbound_id = engine.record(_inbound(chat, "m-photo")).inbound_id
    assert inbound_id is not None
    engine.keep_attachments(inbound_id, [Attachment("photo1.png", "image/png", tiny_png)])
    loaded = engine.load(inbound_id)
    assert loaded is not None and loaded[0].attachments == (Attachment("photo1.png", "image/png", tiny_png),)
    replies = engine.process(loaded[0], inbound_id)
    assert "照片：1张已保存" in replies[0].text
    with Session(engine.db) as session:
        assert len(session.exec(select(AttachmentFile)).all()) == 1  # the hazard keeps its photo
    assert _stored_photos(engine) == 0


def test_a_handler_crash_keeps_no_stored_photo_and_stale_ones_are_dropped(
    engine: Engine, chat: Chat, tiny_png: bytes, monkeypatch  # type: ignore[no-untyped-def]
) -> None:
    import handlers.intake

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(handlers.intake, "store_attachments", explode)
    failed = engine.record(_inbound(chat, "m-fail")).inbound_id
    assert failed is not None
    engine.keep_attachments(failed, [Attachment("photo1.png", "image/png", tiny_png)])
    loaded = engine.load(failed)
    assert loaded is not None
    assert engine.process(loaded[0], failed)[0].text == INTERNAL_ERROR_TEXT
    assert _stored_photos(engine) == 0  # failed is final: its photos go with it

    waiting = engine.record(_inbound(chat, "m-waiting")).inbound_id
    assert waiting is not None
    engine.keep_attachments(waiting, [Attachment("photo1.png", "image/png", tiny_png)])
    assert engine.drop_stale_attachments(older_than=timedelta(days=1)) == 0  # still awaited
    chat.advance(days=1, minutes=1)
    assert engine.drop_stale_attachments(older_than=timedelta(days=1)) == 1
