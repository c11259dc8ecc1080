"""Taking a sender's pending photos and dropping the expired ones in one statement (run by every report)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, event
from sqlmodel import Session

from models.db import upgrade
from models.ledger import count_pending_photos, keep_pending_photo, take_pending_photos_dropping_expired

TZ = ZoneInfo("Asia/Shanghai")


def test_the_senders_fresh_photos_are_taken_and_every_expired_one_is_dropped(any_engine: Engine) -> None:
    upgrade(any_engine)
    at = datetime(2023, 12, 5, 10, 0, tzinfo=TZ)
    owner = {"platform": "dingtalk", "sender_id": "zhang_wei", "chat_id": "cid1"}
    other_chat = {**owner, "chat_id": "cid2"}
    someone = {**owner, "sender_id": "li_na"}
    data = b"\xff\xd8\xff" + bytes(range(256)) * 4  # binary, NULs included
    with Session(any_engine) as session:
        for who, minutes, name in ((owner, 20, "old.jpg"), (owner, 0, "a.jpg"), (owner, 1, "b.jpg"),
                                   (other_chat, 0, "c.jpg"), (someone, 30, "stale.jpg")):
            keep_pending_photo(session, **who, at=at - timedelta(minutes=minutes), filename=name,
                               content_type="image/jpeg", data=data)
        session.commit()
    since = at - timedelta(minutes=10)
    statements: list[str] = []
    event.listen(any_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with Session(any_engine) as session:
        taken = take_pending_photos_dropping_expired(session, **owner, since=since)
        session.commit()
    assert len(statements) == 1
    assert [(row.filename, row.data) for row in taken] == [("a.jpg", data), ("b.jpg", data)]  # as they were kept
    with Session(any_engine) as session:
        assert take_pending_photos_dropping_expired(session, **owner, since=since) == []
        assert count_pending_photos(session, **other_chat, since=since) == 1  # another chat's photo stays
        assert count_pending_photos(session, **someone, since=since - timedelta(hours=1)) == 0  # expired: gone
