"""models.lookback: the reproducible 复查 draw, and archive gaps of records no chat can produce (legacy rows)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session

from models.db import upgrade
from models.lookback import GAP_DATES, GAP_VERIFIER, archive_gaps, draw_sample, normalize_origin
from models.tables import CampaignRow, Hazard, PersonRow, UnitRow

AT = datetime(2024, 3, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def hazard(number: int, level: str = "一般", campaign: str = "c1", **extra: object) -> Hazard:
    return Hazard(campaign_id=campaign, number=number, unit_id="u", location=f"{number}号楼", problem="p",
                  reporter_id="p1", level=level, deadline=date(2024, 1, 1), found_at=AT, **extra)  # type: ignore[arg-type]


def test_draw_takes_every_major_and_the_share_of_the_rest_the_same_way_each_time() -> None:
    rows = [hazard(n, "重大" if n % 10 == 0 else "一般") for n in range(1, 41)]  # 4 重大, 36 一般
    first = draw_sample(rows, share=0.25, seed="lookback-2027")
    assert sum(1 for h in first if h.level == "重大") == 4
    assert sum(1 for h in first if h.level == "一般") == 9
    again = draw_sample([hazard(h.number, h.level) for h in reversed(rows)], share=0.25, seed="lookback-2027")
    assert sorted(h.number for h in again) == sorted(h.number for h in first)  # order of the rows does not matter
    other = draw_sample(rows, share=0.25, seed="lookback-2028")
    assert sorted(h.number for h in other) != sorted(h.number for h in first)  # another look-back, another draw
    assert [h.number for h in draw_sample(rows, share=0, seed="x")] == [10, 20, 30, 40]
    assert len(draw_sample(rows, share=1, seed="x")) == 40


def test_origins_are_read_as_the_seeds_write_them() -> None:
    assert [normalize_origin(t) for t in ("县级普查", "市级抽查", "省级督查", "督导组", "审计调查", "通报", "x")] == [
        "县普查", "市抽查", "省督查", "督查", "审计", "通报", None,
    ]


def test_archive_gaps_of_a_closed_row_without_dates_or_verifier(sqlite_engine: Engine) -> None:
    upgrade(sqlite_engine)
    with Session(sqlite_engine) as session:
        session.add(CampaignRow(id="c1", name="c", start=date(2023, 11, 1), end=date(2024, 5, 1)))
        session.add(UnitRow(id="u", name="一中"))
        session.flush()
        session.add(PersonRow(id="p1", name="张伟", unit_id="u"))
        session.flush()
        session.add(hazard(1, status="closed", closed_at=AT))  # closed, never rectified, no close event
        session.add(hazard(2, status="rectifying"))  # open: not an archive question
        session.commit()
        gaps = archive_gaps(session, ["c1"])
    assert [(g.hazard.number, g.gaps) for g in gaps] == [
        (1, ["无整改前照片", "无整改后照片", GAP_VERIFIER, GAP_DATES]),
    ]
