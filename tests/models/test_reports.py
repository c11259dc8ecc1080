"""Report queries on SQLite and PostgreSQL alike: which school a row is for, 能立即整改, and a period's figures."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session

from models.db import upgrade
from models.ledger import next_hazard_number
from models.reports import (
    BuildingInfo,
    PeriodBounds,
    building_summary,
    period_figures,
    report_units,
    statistics_rows,
)
from models.tables import CampaignRow, CheckRecord, Hazard, PersonRow, UnitRow

TZ = ZoneInfo("Asia/Shanghai")
FOUND = datetime(2023, 12, 5, 10, 0, tzinfo=TZ)
UNITS = [("bureau", "县教育局", None), ("s1", "城关一中", "bureau"), ("s1_log", "总务处", "s1"),
         ("s2", "城南小学", "bureau"), ("s2_log", "城南小学后勤处", "s2")]
BUILDINGS = [BuildingInfo("s1_canteen", "食堂", "s1"), BuildingInfo("s2_canteen", "食堂", "s2"),
             BuildingInfo("s2_teach", "教学楼", "s2")]


def setup(engine: Engine) -> Session:
    upgrade(engine)
    session = Session(engine)
    session.add(CampaignRow(id="c1", name="冬春安全整治", start=date(2023, 11, 21), end=date(2024, 5, 10)))
    for seq, (unit, name, parent) in enumerate(UNITS):
        session.add(UnitRow(id=unit, name=name, parent_id=parent, seq=seq))
    session.flush()
    session.add(PersonRow(id="p", name="张伟", unit_id="s1_log"))
    session.flush()
    return session


def hazard(session: Session, unit: str, **fields: object) -> None:
    values: dict[str, object] = {
        "location": "食堂", "problem": "问题", "deadline": date(2023, 12, 30), "found_at": FOUND, **fields,
    }
    session.add(Hazard(campaign_id="c1", number=next_hazard_number(session, "c1"), unit_id=unit,
                       reporter_id="p", **values))  # type: ignore[arg-type]
    session.flush()


def test_report_units_are_the_schools_and_the_bureau_only_for_itself(any_engine: Engine) -> None:
    with setup(any_engine) as session:
        heads = report_units(session, unit_ids=None, schools={"s1", "s2"})
    assert [(h.unit_id, h.label, sorted(h.units)) for h in heads] == [
        ("bureau", "县教育局（本级）", ["bureau"]),
        ("s1", "城关一中", ["s1", "s1_log"]),
        ("s2", "城南小学", ["s2", "s2_log"]),
    ]


def test_buildings_count_their_own_school_s_hazards_and_the_immediate_rule(any_engine: Engine) -> None:
    with setup(any_engine) as session:
        hazard(session, "s1_log", building_id="s1_canteen", deadline=date(2023, 12, 8))  # within 3 days
        hazard(session, "s2_log", building_id="s2_canteen")  # 25 days: hard to fix
        hazard(session, "s2_log", building_id="s1_canteen")  # another school's 食堂: never counted there
        hazard(session, "s2_log", building_id="s2_canteen", status="rectified",
               rectified_at=FOUND + timedelta(days=2))  # fixed at once
        session.add(CheckRecord(campaign_id="c1", unit_id="s2", person_id="p", location="教学楼",
                                building_id="s2_teach", at=FOUND))
        session.commit()
        summary = building_summary(session, campaign_id="c1", buildings=BUILDINGS, unit_ids=None, tz=TZ)
    rows = {row.building.id: row for row in summary.rows}
    assert (rows["s1_canteen"].hazards, rows["s1_canteen"].immediate) == (1, 1)
    assert (rows["s2_canteen"].hazards, rows["s2_canteen"].immediate, rows["s2_canteen"].hard_open) == (2, 1, 1)
    assert rows["s2_teach"].checked and not rows["s2_teach"].has_hazards
    assert summary.unassigned == 1
    assert (summary.totals.buildings, summary.totals.with_hazards, summary.totals.immediate,
            summary.totals.hard_to_fix, summary.totals.unchecked) == (3, 2, 1, 1, 0)


def test_a_period_s_figures_come_from_the_timestamps(any_engine: Engine) -> None:
    period = PeriodBounds(datetime(2023, 11, 27, tzinfo=TZ), datetime(2023, 12, 7, tzinfo=TZ), date(2023, 12, 6))
    with setup(any_engine) as session:
        hazard(session, "s1_log", deadline=date(2023, 12, 1))  # open and overdue at the period's end
        hazard(session, "s1_log", status="closed", rectified_at=FOUND, closed_at=FOUND + timedelta(hours=1))
        hazard(session, "s1_log", status="closed", found_at=FOUND - timedelta(days=20),
               rectified_at=FOUND, closed_at=FOUND + timedelta(days=5))  # found before, closed after the period
        hazard(session, "s1_log", found_at=FOUND + timedelta(days=3))  # found after the period
        hazard(session, "s1_log", status="withdrawn")
        session.commit()
        figures = period_figures(session, campaign_id="c1", unit_ids=None, period=period, today=date(2024, 1, 5))
    f = figures["s1_log"]
    assert (f.found, f.rectified, f.closed, f.outstanding, f.overdue, f.major) == (2, 2, 1, 2, 1, 0)


def test_units_no_longer_configured_keep_their_hazards_in_the_statistics(any_engine: Engine) -> None:
    with setup(any_engine) as session:
        session.add(UnitRow(id="old_dept", name="旧部门", parent_id="s1", seq=9, active=False))
        session.add(UnitRow(id="old_school", name="已撤并学校", parent_id="bureau", seq=10, active=False))
        session.flush()
        hazard(session, "old_dept")
        session.commit()
        rows = statistics_rows(session, campaign_id="c1", unit_ids=None, today=date(2023, 12, 5),
                               schools={"s1", "s2"})
    assert [(row.name, row.figures.found) for row in rows] == [("城关一中", 1), ("城南小学", 0)]
