"""The one INSERT … ON CONFLICT helper, and the directory version the triggers of migration 0006 keep."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, select

from models.db import upgrade
from models.directory_cache import DirectoryCache, read_version
from models.ledger import next_hazard_number
from models.tables import CampaignRow, DuePush, GroupRow, GroupUnit, PersonRow, UnitRow
from models.upsert import dialect_of, insert_on_conflict

AT = datetime(2026, 12, 7, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def _push(key: str, reason: str = "") -> dict[str, object]:
    return dict(key=key, kind="phase_nudge", campaign_id="c1", group_id="g1", due_at=AT, send_at=AT,
                state="pending", reason=reason, payload="{}", created_at=AT)


def test_insert_on_conflict_returns_only_new_rows_or_updates_the_named_columns(any_engine: Engine) -> None:
    upgrade(any_engine)
    with Session(any_engine) as session:
        _seed(session)
        dialect = dialect_of(session)
        ignore = insert_on_conflict(dialect, DuePush, conflict=("key",), returning=("key",))
        assert insert_on_conflict(dialect, DuePush, conflict=("key",), returning=("key",)) is ignore  # built once
        first = session.connection().execute(ignore, [_push("a"), _push("b")]).scalars().all()
        again = session.connection().execute(ignore, [_push("b"), _push("c")]).scalars().all()
        assert sorted(first) == ["a", "b"] and again == ["c"]
        upsert = insert_on_conflict(dialect, DuePush, conflict=("key",), update=("reason",), returning=("key", "reason"))
        assert session.connection().execute(upsert, _push("a", reason="moved")).all() == [("a", "moved")]
        session.commit()
        assert session.exec(select(DuePush.reason).where(DuePush.key == "a")).one() == "moved"
        assert len(session.exec(select(DuePush)).all()) == 3


def _seed(session: Session) -> None:
    session.add(CampaignRow(id="c1", name="冬春", start=AT.date(), end=AT.date()))
    session.add(UnitRow(id="school", name="城关一中"))
    session.commit()
    session.add(PersonRow(id="p1", name="张伟", unit_id="school"))
    session.add(GroupRow(id="g1", name="群", platform="console"))
    session.commit()
    session.add(GroupUnit(group_id="g1", unit_id="school"))
    session.commit()


def test_every_directory_change_moves_the_version_and_numbering_hazards_does_not(any_engine: Engine) -> None:
    upgrade(any_engine)
    with Session(any_engine) as session:
        before = read_version(session)
        _seed(session)
        seeded = read_version(session)
        assert seeded > before
        next_hazard_number(session, "c1")  # every report: must not throw the caches away
        session.commit()
        assert read_version(session) == seeded
        person = session.get(PersonRow, "p1")
        assert person is not None
        person.active = False
        session.add(person)
        session.commit()
        deactivated = read_version(session)
        assert deactivated > seeded
        campaign = session.get(CampaignRow, "c1")
        assert campaign is not None
        campaign.name = "冬春安全整治"
        session.add(campaign)
        session.commit()
        assert read_version(session) > deactivated
        renamed = read_version(session)
        session.delete(session.exec(select(GroupUnit)).one())
        session.commit()
        assert read_version(session) > renamed


def test_the_cache_reads_the_tables_again_only_when_the_version_moved(any_engine: Engine) -> None:
    upgrade(any_engine)
    cache = DirectoryCache(any_engine)
    with Session(any_engine) as session:
        _seed(session)
    with Session(any_engine) as session:
        snapshot = cache.at(session, read_version(session))
        assert cache.at(session, read_version(session)) is snapshot and cache.loads == 1
        assert [p.id for p in snapshot.people_by_name["张伟"]] == ["p1"]
        assert snapshot.group_units == {"g1": frozenset({"school"})}
    with Session(any_engine) as other:  # another process adds a colleague
        other.add(PersonRow(id="p2", name="王建国", unit_id="school"))
        other.commit()
    with Session(any_engine) as session:
        fresh = cache.at(session, read_version(session))
        assert fresh is not snapshot and cache.loads == 2
        assert [p.id for p in fresh.people_by_name["王建国"]] == ["p2"]
        assert fresh.people["p2"].name == "王建国"  # detached, yet readable after the session closed
    assert fresh.people["p1"].unit_id == "school"
