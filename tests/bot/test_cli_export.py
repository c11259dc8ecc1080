"""`safetybot export`: the official forms written to a file from the command line."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlmodel import Session

from bot.app import build_engine
from bot.cli import main
from bot.config import load_config
from models.ledger import next_hazard_number
from models.tables import Hazard

TZ = ZoneInfo("Asia/Shanghai")
FOUND = datetime(2026, 11, 20, 9, 0, tzinfo=TZ)


@pytest.fixture
def with_hazards(config_path: Path) -> Path:
    """The example config's database with three reports: two in 城关第一中学, one in 城南小学."""
    engine = build_engine(load_config(config_path))
    engine.start()
    with Session(engine.db) as session:
        for unit, location, problem, building, status in (
            ("teaching", "1号教学楼三楼", "灭火器过期", "s1-teach1", "rectifying"),
            ("logistics", "食堂后厨", "燃气管道老化", "s1-canteen", "closed"),
            ("school2", "教学楼", "楼梯扶手松动", "s2-teach", "rectifying"),
        ):
            session.add(Hazard(
                campaign_id="winter-2026", number=next_hazard_number(session, "winter-2026"), unit_id=unit,
                location=location, problem=problem, reporter_id="zhang_wei", responsible_name="王建国",
                building_id=building, deadline=date(2026, 11, 27), status=status, found_at=FOUND,
                rectified_at=FOUND + timedelta(hours=2) if status == "closed" else None,
                closed_at=FOUND + timedelta(hours=3) if status == "closed" else None,
            ))
        session.commit()
    engine.db.dispose()
    return config_path


NOW = "2026-11-23T10:00+08:00"  # before the hazards' deadline: none is overdue, on any wall-clock date


def export(config: Path, out: Path, form: str, *extra: str) -> int:
    return main(["export", "--config", str(config), "--campaign", "winter-2026", "--form", form,
                 "--out", str(out), "--now", NOW, *extra])


def test_ledger_form(with_hazards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "ledger.xlsx"
    assert export(with_hazards, out, "ledger") == 0
    assert "ledger form of winter-2026, 3 hazards" in capsys.readouterr().out
    book = load_workbook(out)
    assert book.sheetnames == ["台账-城关第一中学", "台账-城南小学"]  # each school files its own form
    sheet = book["台账-城关第一中学"]
    assert [cell.value for cell in sheet[3]] == [
        "序号", "部位", "检查内容", "存在隐患问题", "整改措施", "整改完成情况", "责任人", "检查时间", "销号时间",
        "备注",
    ]
    assert [sheet.cell(row=r, column=4).value for r in (4, 5, 6)] == ["灭火器过期", "燃气管道老化", None]
    assert sheet.cell(row=5, column=9).value == "2026-11-20"
    assert "城关第一中学" in sheet["A2"].value  # the school fills in 填报单位
    other = book["台账-城南小学"]
    assert other.cell(row=4, column=1).value == 1 and other.cell(row=4, column=4).value == "楼梯扶手松动"
    assert not list(tmp_path.glob("out/*.part"))


def test_one_unit_only(with_hazards: Path, tmp_path: Path) -> None:
    out = tmp_path / "school2.xlsx"
    assert export(with_hazards, out, "ledger", "--unit", "school2") == 0
    sheet = load_workbook(out).active
    assert sheet["A1"].value == "城南小学安全隐患自查整改清单"
    assert sheet.cell(row=4, column=4).value == "楼梯扶手松动" and sheet.cell(row=5, column=4).value is None


def test_buildings_form_counts_every_configured_building(with_hazards: Path, tmp_path: Path) -> None:
    out = tmp_path / "buildings.xlsx"
    assert export(with_hazards, out, "buildings", "--unit", "school") == 0
    sheet = load_workbook(out).active
    names = [row[1] for row in sheet.iter_rows(min_row=5, values_only=True) if isinstance(row[0], int)]
    assert names[:3] == ["1号教学楼", "2号教学楼", "实验楼"] and len(names) == 9
    total = next(row for row in sheet.iter_rows(min_row=5, values_only=True) if row[0] == "合计")
    counts = [int(n) for n in re.findall(r"（(\d+)）栋", total[1])]
    assert counts == [9, 2, 1, 1, 0]  # 9 buildings, 2 with hazards, 1 fixed at once (the canteen), 1 still open
    remarks = {row[1]: row[7] for row in sheet.iter_rows(min_row=5, values_only=True) if isinstance(row[0], int)}
    assert remarks["1号教学楼"].startswith("1997年建（1998年以前建筑）")


def test_statistics_form_totals(with_hazards: Path, tmp_path: Path) -> None:
    out = tmp_path / "statistics.xlsx"
    assert export(with_hazards, out, "statistics") == 0
    sheet = load_workbook(out).active
    total = next(row for row in sheet.iter_rows(min_row=4, values_only=True) if row[1] == "合计")
    assert list(total[2:8]) == [3, 1, 1, 2, 0, 0]


def test_statistics_form_counts_overdue_as_of_now(with_hazards: Path, tmp_path: Path) -> None:
    out = tmp_path / "statistics.xlsx"
    assert main(["export", "--config", str(with_hazards), "--campaign", "winter-2026", "--form", "statistics",
                 "--out", str(out), "--now", "2026-12-01T10:00+08:00"]) == 0
    total = next(row for row in load_workbook(out).active.iter_rows(min_row=4, values_only=True) if row[1] == "合计")
    assert list(total[2:8]) == [3, 1, 1, 2, 2, 0]  # both open hazards are past 11-27


def test_unknown_campaign_or_unit_is_refused(with_hazards: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.xlsx"
    assert main(["export", "--config", str(with_hazards), "--campaign", "nope", "--form", "ledger",
                 "--out", str(out)]) == 2
    assert "unknown campaign 'nope'; known: lookback-2027, winter-2018, winter-2026" in capsys.readouterr().err
    assert export(with_hazards, out, "ledger", "--unit", "nowhere") == 2
    assert export(with_hazards, out, "statistics", "--period", "99") == 2
    assert "winter-2026 has 18 reporting periods" in capsys.readouterr().err
    assert export(with_hazards, out, "ledger", "--period", "1") == 2
    assert not out.exists()
    with pytest.raises(SystemExit):
        export(with_hazards, out, "photos")


def test_checklist_form_is_seed_003_attachment_1(with_hazards: Path, tmp_path: Path) -> None:
    out = tmp_path / "checklist.xlsx"
    assert export(with_hazards, out, "checklist") == 0
    sheet = load_workbook(out).active
    assert sheet["A1"].value == "2026—2027学年冬春校园安全隐患排查整治项目清单"
    assert [cell.value for cell in sheet[3]] == ["督查项目", "序号", "督查内容", "督查方法", "责任部门"]
    rows = [list(row) for row in sheet.iter_rows(min_row=4, values_only=True)]
    assert rows[0] == ["消防安全", 1, "“消防安全检查日”制度落实情况。", "查阅资料 现场查看", "安全保卫处"]
    assert rows[1][:2] == [None, 2] and rows[1][4] == "安全保卫处、总务基建处"
    assert rows[5][:2] == ["冬季易发安全隐患", 1]
    assert len(rows) == 15 and rows[-1][0] == "备注\n（问题隐患补充）"
    merged = {str(rng) for rng in sheet.merged_cells.ranges}
    assert {"A4:A8", "A9:A12", "A13:A17", "B18:E18"} <= merged


def test_statistics_of_one_reporting_period(with_hazards: Path, tmp_path: Path) -> None:
    out = tmp_path / "period.xlsx"
    assert export(with_hazards, out, "statistics", "--period", "1") == 0
    sheet = load_workbook(out).active
    assert "统计时段：第1期 2026-11-16 至 2026-11-20" in sheet["A2"].value
    rows = [row for row in sheet.iter_rows(min_row=4, values_only=True) if row[1]]
    assert [row[1] for row in rows[:3]] == ["城关第一中学", "城南小学", "合计"]  # no row for 县教育局 itself
    assert list(rows[0][2:11]) == [2, 1, 1, 1, 0, 0, None, None, "未报送"]
    assert list(rows[2][2:8]) == [3, 1, 1, 2, 0, 0]
