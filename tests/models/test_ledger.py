"""Ledger primitives: atomic numbering, aggregates in SQL, and zone-aware timestamps."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, select

from models.db import upgrade
from models.ledger import (
    count_pending_photos,
    drop_expired_pending_photos,
    keep_pending_photo,
    mark_photo_still_missing,
    mark_photo_written,
    next_hazard_number,
    photo_path,
    photos_to_fetch_again,
    store_photo,
    take_pending_photos,
    total_figures,
    unit_figures,
    write_photo_file,
)
from models.tables import CampaignRow, Hazard, InboundMessage, PersonRow, UnitRow
from tests.fakes.full_disk import FullDisk

TZ = ZoneInfo("Asia/Shanghai")


def _seed(engine: Engine) -> None:
    upgrade(engine)
    with Session(engine) as session:
        session.add(CampaignRow(id="c", name="活动", start=date(2023, 11, 1), end=date(2024, 5, 1)))
        session.add(UnitRow(id="u1", name="一部"))
        session.add(UnitRow(id="u2", name="二部"))
        session.commit()
        session.add(PersonRow(id="p", name="张三", unit_id="u1"))
        session.commit()


def _hazard(session: Session, *, unit: str, status: str, deadline: date, level: str = "一般", found: datetime) -> None:
    number = next_hazard_number(session, "c")
    session.add(
        Hazard(
            campaign_id="c", number=number, unit_id=unit, location="x", problem="y", reporter_id="p",
            deadline=deadline, status=status, level=level, found_at=found,
            closed_at=found + timedelta(days=1) if status == "closed" else None,
        )
    )
    session.flush()


def test_numbers_are_taken_atomically_in_order(any_engine: Engine) -> None:
    _seed(any_engine)
    with Session(any_engine) as session:
        assert [next_hazard_number(session, "c") for _ in range(3)] == [1, 2, 3]
        session.commit()
    with Session(any_engine) as session:
        assert next_hazard_number(session, "c") == 4


def test_unit_figures_are_aggregated_in_sql(any_engine: Engine) -> None:
    _seed(any_engine)
    found = datetime(2023, 12, 1, 9, tzinfo=TZ)
    with Session(any_engine) as session:
        _hazard(session, unit="u1", status="rectifying", deadline=date(2023, 12, 3), found=found)
        _hazard(session, unit="u1", status="rectified", deadline=date(2023, 12, 3), found=found, level="重大")
        _hazard(session, unit="u1", status="closed", deadline=date(2023, 12, 3), found=found)
        _hazard(session, unit="u2", status="withdrawn", deadline=date(2023, 12, 3), found=found)
        session.commit()
        figures = unit_figures(session, campaign_id="c", unit_ids=["u1", "u2"], today=date(2023, 12, 5))
    u1 = figures["u1"]
    assert (u1.found, u1.closed, u1.outstanding, u1.overdue, u1.major) == (3, 1, 2, 1, 1)
    assert figures["u2"].found == 0 and figures["u2"].outstanding == 0
    assert total_figures(figures.values()).outstanding == 2


def test_timestamps_come_back_zone_aware(any_engine: Engine) -> None:
    _seed(any_engine)
    found = datetime(2023, 12, 1, 9, 30, tzinfo=TZ)
    with Session(any_engine) as session:
        _hazard(session, unit="u1", status="rectifying", deadline=date(2023, 12, 3), found=found)
        session.commit()
    with Session(any_engine) as session:
        hazard = session.get(Hazard, 1)
        assert hazard is not None and hazard.found_at.tzinfo is not None
        assert hazard.found_at == found and hazard.found_at.astimezone(timezone.utc).hour == 1


def _hazard_with_message(session: Session, found: datetime) -> tuple[int, int]:
    _hazard(session, unit="u1", status="rectifying", deadline=date(2023, 12, 3), found=found, level="重大")
    message = InboundMessage(platform="wecom", platform_msg_id="m1", chat_id="c", sender_id="p", text="隐患",
                             received_at=found, route='{"media": []}')
    session.add(message)
    session.flush()
    hazard = session.exec(select(Hazard)).one()
    return hazard.id, message.id  # type: ignore[return-value]


def test_a_photo_that_meets_a_full_disk_is_kept_as_missing_and_retried_less_often_until_given_up(
    any_engine: Engine, tmp_path: Path
) -> None:
    _seed(any_engine)
    at = datetime(2023, 12, 1, 9, tzinfo=TZ)
    data_dir = tmp_path / "data"
    with Session(any_engine) as session, FullDisk(data_dir) as disk:
        hazard_id, message_id = _hazard_with_message(session, at)
        row = store_photo(session, data_dir=data_dir, hazard_id=hazard_id, event_id=None, filename="p.jpg",
                          content_type="image/jpeg", data=b"photo", at=at, source_msg_id=message_id)
        session.commit()
        assert disk.refused == 1
        assert row.missing and row.missing_reason == "ENOSPC" and row.retry_at == at
        assert not [path for path in data_dir.rglob("*") if path.is_file()]  # the temporary file is gone too
        due = photos_to_fetch_again(session, now=at)
        assert [(photo.id, message.id) for photo, message in due] == [(row.id, message_id)]  # type: ignore[union-attr]

        mark_photo_still_missing(session, row, now=at + timedelta(minutes=1), reason="ENOSPC")
        assert row.retry_at == at + timedelta(minutes=1, seconds=30)  # half the time it has been missing
        assert photos_to_fetch_again(session, now=at + timedelta(minutes=1)) == []
        mark_photo_still_missing(session, row, now=at + timedelta(days=1), reason="ENOSPC")
        assert row.retry_at == at + timedelta(days=1, hours=1)  # at most hourly
        mark_photo_still_missing(session, row, now=at + timedelta(days=3), reason="ENOSPC")
        assert row.retry_at is None and row.missing  # given up: the platform's links have expired
        session.commit()

        disk.space_returns()
        write_photo_file(data_dir, row.sha256, b"photo")
        mark_photo_written(session, row)
        session.commit()
        assert not row.missing and photo_path(data_dir, row.sha256).read_bytes() == b"photo"


def test_a_photo_is_written_whole_with_no_temporary_file_left(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MB: more than one write() may take
    digest = hashlib.sha256(data).hexdigest()
    write_photo_file(tmp_path, digest, data)
    assert photo_path(tmp_path, digest).read_bytes() == data
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == [digest]


def test_pending_photos_are_kept_taken_once_and_expire(any_engine: Engine) -> None:
    upgrade(any_engine)
    at = datetime(2023, 12, 5, 10, 0, tzinfo=TZ)
    owner = {"platform": "dingtalk", "sender_id": "zhang_wei", "chat_id": "cid1"}
    data = b"\xff\xd8\xff" + bytes(range(256)) * 4  # binary, NULs included
    with Session(any_engine) as session:
        keep_pending_photo(session, **owner, at=at - timedelta(minutes=20), filename="old.jpg",
                           content_type="image/jpeg", data=b"old")
        keep_pending_photo(session, **owner, at=at, filename="a.jpg", content_type="image/jpeg", data=data)
        keep_pending_photo(session, **{**owner, "chat_id": "cid2"}, at=at, filename="b.jpg",
                           content_type="image/jpeg", data=b"other chat")
        session.commit()
    since = at - timedelta(minutes=10)
    with Session(any_engine) as session:
        assert count_pending_photos(session, **owner, since=since) == 1
        taken = take_pending_photos(session, **owner, since=since)
        assert [(row.filename, row.data, row.received_at) for row in taken] == [("a.jpg", data, at)]
        assert drop_expired_pending_photos(session, before=since) == 1  # old.jpg
        session.commit()
    with Session(any_engine) as session:
        assert take_pending_photos(session, **owner, since=since) == []
        assert count_pending_photos(session, **{**owner, "chat_id": "cid2"}, since=since) == 1
