"""The 统计 chart: data built in SQL, and a PNG that reads on a phone (size, width, Chinese text, memory)."""

from __future__ import annotations

import gc
import os
import struct
import threading
import warnings
from datetime import date, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import Session

from bot.engine import Engine
from handlers.charts import OVERDUE, WIDTH_PX, chart_fonts, render_outstanding_chart, short_labels
from models.ledger import descendants
from models.reports import MAX_OVERDUE_BARS, ChartData, StatusCounts, chart_data
from models.tables import CampaignRow, UnitRow
from tests.handlers.test_exports import add_hazard
from bot.config import parse_config
from handlers import charts
from tests.school import REPORT, TWO_SCHOOLS, TZ, Chat, start_engine

NOW = datetime(2023, 12, 5, 10, 0, tzinfo=TZ)
WECOM_IMAGE_LIMIT = 2 * 1024 * 1024


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def sample(units: int, *, days: int = 15, overdue: bool = True) -> ChartData:
    """A chart's worth of plain data, without a database."""
    rows = [StatusCounts(f"第{i + 1}中学", 3 + i % 4, i % 3, (i % 2) if overdue else 0) for i in range(units)]
    categories = [StatusCounts(name, 2 + i, i % 2, 1 if overdue else 0)
                  for i, name in enumerate(["消防", "用电", "建筑", "食品", "交通"])] if units else []
    first = date(2023, 11, 21)
    totals = StatusCounts("合计")
    for row in rows:
        totals = totals + row
    return ChartData(
        campaign_name="冬春安全整治大会战", as_of=NOW, scope_name="城关一中", units=rows[:12], unit_count=units,
        categories=categories, days=tuple(first + timedelta(days=d) for d in range(days)),
        found=tuple(d % 5 for d in range(days)), closed=tuple(d % 3 for d in range(days)), major=1, totals=totals,
    )


def campaign(session: Session) -> CampaignRow:
    row = session.get(CampaignRow, "c1")
    assert row is not None
    return row


# -- the data --------------------------------------------------------------------------------------------


def test_chart_data_splits_outstanding_items_by_status_unit_and_category(engine: Engine) -> None:
    with Session(engine.db) as session:
        add_hazard(session, unit="teaching", category="消防")  # within its deadline
        add_hazard(session, unit="teaching", category="消防", deadline=date(2023, 12, 1))  # overdue
        add_hazard(session, unit="logistics", status="rectified", category="用电", level="重大")
        add_hazard(session, unit="logistics", status="closed", category="用电")  # closed: not outstanding
        add_hazard(session, unit="security", status="withdrawn", category="用电")  # withdrawn: nowhere
        add_hazard(session, unit="school", category="其他")  # the school's own item (本级)
        add_hazard(session, unit="school2", category="消防")  # another school: out of scope
        session.commit()
        data = chart_data(session, campaign=campaign(session), unit_ids=descendants(session, ["school"]), now=NOW)
    units = {row.label: (row.rectifying, row.awaiting, row.overdue) for row in data.units}
    assert units == {"教务处": (1, 0, 1), "总务基建处": (0, 1, 0), "城关一中（本级）": (1, 0, 0)}
    assert data.units[0].label == "教务处"  # the unit with overdue items comes first
    assert data.unit_count == 4  # the school itself (本级, it has an item of its own) and its three departments
    categories = {row.label: (row.rectifying, row.awaiting, row.overdue) for row in data.categories}
    assert categories == {"消防": (1, 0, 1), "用电": (0, 1, 0), "其他": (1, 0, 0)}
    assert data.categories[-1].label == "其他"
    assert (data.totals.total, data.totals.overdue, data.totals.awaiting, data.major) == (4, 1, 1, 1)


def test_a_county_sees_one_bar_per_school_with_departments_rolled_up(engine: Engine) -> None:
    with Session(engine.db) as session:
        add_hazard(session, unit="teaching")
        add_hazard(session, unit="logistics")
        add_hazard(session, unit="school2")
        session.commit()
        data = chart_data(session, campaign=campaign(session), unit_ids=None, now=NOW)
    assert {row.label: row.total for row in data.units} == {"城关一中": 2, "城南小学": 1}


def test_found_and_closed_are_counted_per_local_day(engine: Engine) -> None:
    with Session(engine.db) as session:
        add_hazard(session, unit="teaching", found=datetime(2023, 11, 22, 0, 30, tzinfo=TZ))  # 11-21 in UTC
        add_hazard(session, unit="teaching", found=datetime(2023, 11, 10, 9, 0, tzinfo=TZ))  # before the start
        add_hazard(session, unit="teaching", status="closed", found=datetime(2023, 11, 23, 9, 0, tzinfo=TZ),
                   closed=datetime(2023, 12, 5, 8, 0, tzinfo=TZ))
        add_hazard(session, unit="teaching", status="withdrawn", found=datetime(2023, 11, 23, 9, 0, tzinfo=TZ))
        session.commit()
        data = chart_data(session, campaign=campaign(session), unit_ids=None, now=NOW)
    assert data.days[0] == date(2023, 11, 21) and data.days[-1] == date(2023, 12, 5) and len(data.days) == 15
    found = dict(zip(data.days, data.found))
    assert found[date(2023, 11, 21)] == 1  # the early one folds into the first day
    assert found[date(2023, 11, 22)] == 1 and found[date(2023, 11, 23)] == 1 and sum(data.found) == 3
    assert dict(zip(data.days, data.closed))[date(2023, 12, 5)] == 1 and sum(data.closed) == 1


def test_three_hundred_units_fold_the_tail_into_other(engine: Engine) -> None:
    with Session(engine.db) as session:
        for i in range(300):
            session.add(UnitRow(id=f"k{i}", name=f"第{i + 1}小学"))
        session.flush()
        for i in range(300):
            for _ in range(1 + i % 3):
                add_hazard(session, unit=f"k{i}", deadline=date(2023, 12, 1) if i % 7 == 0 else date(2023, 12, 9))
        session.commit()
        scope = {f"k{i}" for i in range(300)}
        data = chart_data(session, campaign=campaign(session), unit_ids=scope, now=NOW)
    late = [i for i in range(300) if i % 7 == 0]  # 43 units with overdue items
    assert len(data.units) == MAX_OVERDUE_BARS and data.units[-1].label == f"其他{300 - MAX_OVERDUE_BARS + 1}个单位"
    assert data.folded_units == 300 - MAX_OVERDUE_BARS + 1
    assert sum(row.total for row in data.units) == data.totals.total == sum(1 + i % 3 for i in range(300))
    assert all(row.overdue for row in data.units[:-1])  # the named bars are the most urgent units
    assert sum(row.overdue for row in data.units) == sum(1 + i % 3 for i in late)
    png = render_outstanding_chart(data)
    assert png_size(png)[0] >= WIDTH_PX and len(png) <= WECOM_IMAGE_LIMIT


def test_units_with_overdue_items_are_never_folded_into_other(engine: Engine) -> None:
    """Twelve bars at most, except that every unit with overdue items keeps its own (up to MAX_OVERDUE_BARS)."""
    with Session(engine.db) as session:
        for i in range(20):
            session.add(UnitRow(id=f"k{i}", name=f"第{i + 1}小学"))
        session.flush()
        for i in range(20):
            for _ in range(5 if i < 15 else 1):  # the 15 big units are on time; the 5 small ones are late
                add_hazard(session, unit=f"k{i}", deadline=date(2023, 12, 1) if i >= 15 else date(2023, 12, 9))
        session.commit()
        data = chart_data(session, campaign=campaign(session), unit_ids={f"k{i}" for i in range(20)}, now=NOW,
                          max_units=6)
    named = {row.label for row in data.units[:-1]}
    assert {f"第{i + 1}小学" for i in range(15, 20)} <= named and len(data.units) == 6
    assert data.units[-1].overdue == 0 and data.units[-1].label == "其他15个单位"


def test_the_bureau_is_not_a_unit_of_itself(two_schools: Chat) -> None:
    with Session(two_schools.engine.db) as session:
        add_hazard(session, unit="teaching")
        add_hazard(session, unit="s2_logistics")
        session.commit()
        data = chart_data(session, campaign=campaign(session), unit_ids=descendants(session, ["bureau"]), now=NOW)
        assert [row.label for row in data.units] == ["城关一中", "城南小学"] and data.unit_count == 2
        add_hazard(session, unit="bureau")
        session.commit()
        data = chart_data(session, campaign=campaign(session), unit_ids=descendants(session, ["bureau"]), now=NOW)
    assert data.unit_count == 3 and "县教育局（本级）" in {row.label for row in data.units}


def test_an_empty_chart_tells_nothing_reported_from_all_closed(engine: Engine) -> None:
    with Session(engine.db) as session:
        empty = chart_data(session, campaign=campaign(session), unit_ids=None, now=NOW)
        add_hazard(session, unit="teaching", status="closed")
        session.commit()
        closed = chart_data(session, campaign=campaign(session), unit_ids=None, now=NOW)
    assert (empty.reported, closed.reported) == (0, 1) and not empty.units and not closed.units
    assert charts._empty_text(empty) == "尚未登记隐患"
    assert charts._empty_text(closed) == "已登记1项隐患，已全部销号"
    for data in (empty, closed):
        assert png_size(render_outstanding_chart(data))[0] == WIDTH_PX


def test_long_unit_names_keep_the_part_that_tells_them_apart() -> None:
    labels = short_labels(["通榆县第二实验小学", "通榆县第二实验幼儿园", "城关一中", "通榆县第一中学"])
    assert labels == ["…县第二实验小学", "…第二实验幼儿园", "城关一中", "通榆县第一中学"]
    assert all(len(label) <= 8 for label in labels)
    twins = short_labels(["通榆县第二实验小学东校区", "通榆县第三实验小学东校区"])
    assert len(set(twins)) == 2 and all(len(label) <= 8 for label in twins)


def test_the_chart_is_titled_with_the_school_not_the_group(tmp_path: Path) -> None:
    from scheduler.messages import chart_scope_name

    engine = start_engine(parse_config(TWO_SCHOOLS), tmp_path)
    try:
        with Session(engine.db) as session:
            assert chart_scope_name(session, "staff") == "城关一中"  # not 一中安全工作群
            assert chart_scope_name(session, "county") == "县教育局"
    finally:
        engine.db.dispose()
    assert charts._title_lines(sample(1)) == ["城关一中｜冬春安全整治大会战"]


# -- the picture -----------------------------------------------------------------------------------------


def test_chinese_text_renders_with_a_cjk_font() -> None:
    """A missing glyph only warns in matplotlib: make it fail here, so CI catches tofu boxes."""
    assert chart_fonts(), "no CJK font installed: run scripts/setup.sh (installs fonts-noto-cjk)"
    assert chart_fonts()[0] == "Noto Sans CJK SC"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = render_outstanding_chart(sample(4))
    assert png_size(png)[0] == WIDTH_PX


@pytest.mark.parametrize("units", [0, 1, 12, 300])
def test_chart_fits_a_phone_and_wecom(units: int) -> None:
    png = render_outstanding_chart(sample(units, days=1 if units == 0 else 120))
    width, height = png_size(png)
    assert width >= 1080 and 1000 < height < 4000
    assert len(png) <= WECOM_IMAGE_LIMIT


def _overdue_pixels(png: bytes) -> int:
    image = Image.open(BytesIO(png)).convert("RGB")
    target = tuple(int(OVERDUE[i : i + 2], 16) for i in (1, 3, 5))
    return sum(count for count, colour in image.getcolors(maxcolors=1 << 20) or [] if colour == target)


def test_overdue_is_drawn_in_the_warning_colour() -> None:
    assert _overdue_pixels(render_outstanding_chart(sample(3))) > 2000
    assert _overdue_pixels(render_outstanding_chart(sample(3, overdue=False))) < 2000  # only the legend key


def test_rendering_from_several_threads_is_serialised() -> None:
    results: list[bytes] = []

    def render() -> None:
        results.append(render_outstanding_chart(sample(3)))

    threads = [threading.Thread(target=render) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(set(results)) == 1


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc to read RSS")
def test_five_hundred_charts_in_a_row_do_not_grow_memory() -> None:
    # Small real charts keep this test near a minute; what leaked (the Agg buffer pinned by drawn texts,
    # figures kept by reference cycles) does not depend on how many bars a chart has.
    charts = [sample(units, days=days) for units, days in ((1, 5), (0, 1))]
    for data in charts:
        render_outstanding_chart(data)  # font and layout caches fill on the first renders
    gc.collect()
    before = _rss_mb()
    for i in range(500):
        render_outstanding_chart(charts[i % len(charts)])
    grown = _rss_mb() - before
    assert grown < 30, f"RSS grew by {grown:.1f} MB over 500 charts"


# -- through the chat ------------------------------------------------------------------------------------


def test_stats_command_attaches_the_chart(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    reply = chat.say("zhao_min", "统计")
    assert "未销号1" in reply
    image = chat.last[0].image_png
    assert image is not None and png_size(image)[0] >= 1080 and len(image) <= WECOM_IMAGE_LIMIT
