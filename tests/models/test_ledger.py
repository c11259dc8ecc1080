"""Ledger primitives: atomic numbering, aggregates in SQL, and zone-aware timestamps."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session

from models.db import upgrade
from models.ledger import next_hazard_number, total_figures, unit_figures
from models.tables import CampaignRow, Hazard, PersonRow, UnitRow

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
