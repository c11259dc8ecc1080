"""The receive pipeline: dedupe by platform id, recovery after a crash, no stack traces in chats."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from bot.engine import INTERNAL_ERROR_TEXT, Engine
from handlers.messages import Inbound
from models.tables import Hazard, InboundMessage
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
