"""台账 exports: the three official forms, checked cell by cell against the ledger in the database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from io import BytesIO
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlmodel import Session

from bot.engine import Engine
from handlers.exports import BUILDING_COLUMNS, LEDGER_COLUMNS, STATISTICS_COLUMNS, export_workbook, form_title
from models.ledger import descendants, next_hazard_number, total_figures, unit_figures
from models.reports import LEDGER_STATUS_TEXT, BuildingInfo, ledger_counts
from models.tables import CampaignRow, Hazard
from tests.school import REPORT, TZ, Chat

TODAY = date(2023, 12, 5)
LEDGER_HEADER = [
    "序号", "部位", "检查内容", "存在隐患问题", "整改措施", "整改完成情况", "责任人", "检查时间", "销号时间", "备注",
]
BUILDINGS = [
    BuildingInfo("b1", "3号教学楼", "school"),
    BuildingInfo("b2", "食堂", "school"),
    BuildingInfo("b3", "实验楼", "school", built_year=1995),
]


def add_hazard(
    session: Session,
    *,
    unit: str,
    status: str = "rectifying",
    location: str = "3号教学楼二楼东侧",
    problem: str = "消防通道堆放杂物",
    deadline: date = date(2023, 12, 10),
    found: datetime = datetime(2023, 12, 5, 10, 0, tzinfo=TZ),
    closed: datetime | None = None,
    **fields: Any,
) -> Hazard:
    """Insert a hazard straight into the ledger (no chat), numbered like the bot numbers them."""
    rectified = fields.pop("rectified", None)
    if status in ("rectified", "closed") and rectified is None:
        rectified = found + timedelta(hours=1)
    if status == "closed" and closed is None:
        closed = found + timedelta(days=1)
    hazard = Hazard(
        campaign_id="c1",
        number=next_hazard_number(session, "c1"),
        unit_id=unit,
        location=location,
        problem=problem,
        reporter_id=fields.pop("reporter", "zhang_wei"),
        responsible_name=fields.pop("responsible", "王建国"),
        deadline=deadline,
        status=status,
        found_at=found,
        rectified_at=rectified,
        closed_at=closed,
        **fields,
    )
    session.add(hazard)
    session.flush()
    return hazard


@pytest.fixture
def ledger(engine: Engine) -> Iterator[Session]:
    """Six reports across two schools: open, closed, withdrawn, major, overdue, and one found just after midnight."""
    with Session(engine.db) as session:
        add_hazard(session, unit="teaching", building_id="b1", check_item="消防通道", measure="清理杂物")
        add_hazard(session, unit="logistics", status="closed", location="食堂后厨", problem="灭火器过期",
                   found=datetime(2023, 12, 1, 9, 0, tzinfo=TZ), closed=datetime(2023, 12, 3, 16, 0, tzinfo=TZ),
                   building_id="b2", immediate=True, completion="已更换灭火器", category="消防")
        add_hazard(session, unit="security", status="withdrawn", location="实验楼", problem="误报",
                   building_id="b3", closed_building=True)
        add_hazard(session, unit="teaching", status="rectified", level="重大", location="3号教学楼顶层",
                   problem='=HYPERLINK("http://example.com","点我")', remark="需更换", building_id="b1",
                   immediate=True, category="建筑")
        add_hazard(session, unit="school2", location="操场", problem="篮球架松动", deadline=date(2023, 12, 1),
                   category="设施设备")
        add_hazard(session, unit="school", location="食堂", problem="燃气管道老化\x0b漏气", immediate=True,
                   closed_building=True, building_id="b2", deadline=date(2023, 12, 20), category="燃气",
                   found=datetime(2023, 12, 6, 0, 30, tzinfo=TZ))
        session.commit()
        yield session


def export(session: Session, forms: list[str], unit_ids: set[str] | None = None) -> Any:
    campaign = session.get(CampaignRow, "c1")
    assert campaign is not None
    result = export_workbook(
        session, campaign=campaign, forms=forms, unit_ids=unit_ids,  # type: ignore[arg-type]
        unit_name="城关一中", on=TODAY, buildings=BUILDINGS,
    )
    return load_workbook(BytesIO(result.data))


def values(sheet: Worksheet, row: int) -> list[Any]:
    return [cell.value for cell in sheet[row]]


def table(sheet: Worksheet, first: int) -> list[list[Any]]:
    """Data rows from `first` down to the first blank row."""
    rows = []
    for row in sheet.iter_rows(min_row=first, values_only=True):
        if all(value is None for value in row):
            break
        rows.append(list(row))
    return rows


def assert_printable(sheet: Worksheet, *, freeze: str, titles: str) -> None:
    assert sheet.freeze_panes == freeze
    assert sheet.print_title_rows == titles
    assert sheet.page_setup.orientation == "landscape"
    assert str(sheet.page_setup.paperSize) == "9"  # A4
    assert sheet.page_setup.fitToWidth == 1 and sheet.page_setup.fitToHeight == 0
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert any(str(rng).startswith("A1:") for rng in sheet.merged_cells.ranges)  # the title spans the table


# -- ledger ------------------------------------------------------------------------------------------


def school_ledger(session: Session) -> Worksheet:
    return export(session, ["ledger"], descendants(session, ["school"]))["隐患台账"]


def test_ledger_has_the_seed_columns_and_every_live_hazard(ledger: Session) -> None:
    sheet = school_ledger(ledger)
    assert sheet["A1"].value == "城关一中安全隐患自查整改清单"
    assert "填报单位（章）：城关一中" in sheet["A2"].value and "日期：2023年12月5日" in sheet["A2"].value
    assert values(sheet, 3) == LEDGER_HEADER
    rows = table(sheet, 4)
    assert [row[0] for row in rows] == [1, 2, 3, 4]  # 序号 is the row number: no gap where #3 was withdrawn
    assert [row[9].split("；")[0] for row in rows] == ["#1", "#2", "#4", "#6"]  # the chat's numbers, in 备注
    assert rows[0] == [1, "3号教学楼二楼东侧", "消防通道", "消防通道堆放杂物", "清理杂物", "整改中", "王建国",
                       "2023-12-05", None, "#1；期限2023-12-10"]
    assert rows[1][5:10] == ["已更换灭火器", "王建国", "2023-12-01", "2023-12-03", "#2"]
    assert rows[2][5] == "已整改待验收" and rows[2][9] == "#4；重大隐患；期限2023-12-10；需更换"
    assert rows[3][7] == "2023-12-06"  # 00:30 local time is the 6th, though still the 5th in UTC


def test_ledger_rows_match_the_database_counts(ledger: Session) -> None:
    book = export(ledger, ["ledger"])
    assert book.sheetnames == ["台账-城关一中", "台账-城南小学"]  # one form per school, each numbered from 1
    counts = ledger_counts(ledger, campaign_id="c1", unit_ids=None)
    rows = [row for name in book.sheetnames for row in table(book[name], 4)]
    assert len(rows) == counts.total == 5
    assert sum(1 for row in rows if row[8]) == counts.closed == 1
    other = table(book["台账-城南小学"], 4)
    assert book["台账-城南小学"]["A1"].value == "城南小学安全隐患自查整改清单"
    assert [row[0] for row in other] == [1] and other[0][9] == "#5；期限2023-12-01（已逾期）"


def test_ledger_text_stays_text(ledger: Session) -> None:
    """A report that starts with '=' must not become a live formula; control characters are dropped."""
    sheet = school_ledger(ledger)
    rows = {row[0]: row for row in table(sheet, 4)}
    cell = sheet.cell(row=6, column=4)
    assert cell.value == '=HYPERLINK("http://example.com","点我")' and cell.data_type == "s"
    assert rows[4][3] == "燃气管道老化漏气"


def test_ledger_is_ready_to_print(ledger: Session) -> None:
    sheet = school_ledger(ledger)
    assert_printable(sheet, freeze="A4", titles="$3:$3")
    widths = [sheet.column_dimensions[chr(ord("A") + i)].width for i in range(len(LEDGER_COLUMNS))]
    assert widths == [width for _, width in LEDGER_COLUMNS]
    assert sheet["D4"].alignment.wrap_text and sheet["D4"].border.left.style == "thin"
    assert sheet["A3"].font.b
    footer = [row[0] for row in sheet.iter_rows(min_row=8, values_only=True) if row[0]]
    assert footer == ["上报人：__________　　　联系方式：__________"]


def test_every_cell_of_every_form_is_in_songti(ledger: Session) -> None:
    book = export(ledger, ["ledger", "buildings", "statistics"], descendants(ledger, ["school"]))
    for sheet in book.worksheets:
        fonts = {cell.font.name for row in sheet.iter_rows() for cell in row if cell.value is not None}
        assert fonts == {"宋体"}, sheet.title


def test_ledger_of_one_school_leaves_the_other_out(ledger: Session) -> None:
    sheet = school_ledger(ledger)
    assert [row[9].split("；")[0] for row in table(sheet, 4)] == ["#1", "#2", "#4", "#6"]


def test_an_empty_ledger_is_the_blank_seed_form(engine: Engine) -> None:
    with Session(engine.db) as session:
        sheet = export(session, ["ledger"], descendants(session, ["school"]))["隐患台账"]
    rows = table(sheet, 4)
    assert [row[0] for row in rows] == list(range(1, 11))  # seed 003 附件2: rows 1–10 to fill in by hand
    assert all(value is None for row in rows for value in row[1:])


def test_completion_shows_where_the_hazard_stands(ledger: Session) -> None:
    """After 退回 the rejected fix note is no completion; a fix awaiting verification is marked so."""
    add_hazard(ledger, unit="teaching", completion="已清理", problem="退回过的")  # 整改 then 退回: rectifying again
    add_hazard(ledger, unit="teaching", status="rectified", completion="已更换", problem="待验收的")
    ledger.commit()
    rows = {row[3]: row for row in table(school_ledger(ledger), 4)}
    assert rows["退回过的"][5] == "整改中"
    assert rows["待验收的"][5] == "已更换（待验收）" and rows["待验收的"][8] is None


def test_completion_words_match_the_model() -> None:
    for status, words in LEDGER_STATUS_TEXT.items():
        hazard = Hazard(campaign_id="c", number=1, unit_id="u", location="x", problem="y", reporter_id="p",
                        deadline=TODAY, status=status, found_at=datetime(2023, 1, 1, tzinfo=TZ))
        assert hazard.status_label_for_ledger() == words


# -- statistics (seed 002 附件1) -----------------------------------------------------------------------


def test_statistics_rows_are_schools_with_their_departments_rolled_up(ledger: Session) -> None:
    sheet = export(ledger, ["statistics"])["销号统计表"]
    assert sheet["A1"].value == "冬春安全整治大会战隐患排查整改销号统计表"
    assert "统计时段：2023-11-21 至 2023-12-05" in sheet["A2"].value
    assert values(sheet, 3) == [name for name, _ in STATISTICS_COLUMNS]
    rows = table(sheet, 4)
    end = [row[1] for row in rows].index("合计")
    body, total = rows[:end], rows[end]
    assert rows[end + 1][0].startswith("注：每所学校（幼儿园）一行")  # the definitions sit right under the table
    assert [row[:2] for row in body] == [[1, "城关一中"], [2, "城南小学"]]  # 统计表只填写学校和幼儿园项
    figures = unit_figures(ledger, campaign_id="c1", unit_ids=None, today=TODAY)
    for row, school in zip(body, ["school", "school2"]):
        t = total_figures(figures[u] for u in descendants(ledger, [school]) if u in figures)
        assert row[2:8] == [t.found, t.rectified, t.closed, t.outstanding, t.overdue, t.major], school
    assert body[0][2:8] == [4, 2, 1, 3, 0, 1]  # the school's row holds its departments' hazards
    assert total[2:8] == [5, 2, 1, 4, 1, 1]  # found, rectified, closed, outstanding, overdue, major
    ledger_rows = [row for name in ("台账-城关一中", "台账-城南小学")
                   for row in table(export(ledger, ["ledger"])[name], 4)]
    assert total[2] == len(ledger_rows) and total[4] == sum(1 for row in ledger_rows if row[8])
    t = total_figures(figures.values())
    assert total[2:8] == [t.found, t.rectified, t.closed, t.outstanding, t.overdue, t.major]
    assert_printable(sheet, freeze="A4", titles="$3:$3")
    texts = [row[0] for row in sheet.iter_rows(min_row=4 + end + 2, values_only=True) if row[0]]
    assert texts == ["主要负责人签字：__________　　　填表人签字：__________　　　联系电话：__________"]


def test_a_single_school_lists_its_departments_under_it_outside_the_total(ledger: Session) -> None:
    rows = table(export(ledger, ["statistics"], descendants(ledger, ["school"]))["销号统计表"], 4)
    assert [row[:2] for row in rows[:4]] == [[1, "城关一中"], [None, "　其中：安全保卫处"],
                                            [None, "　其中：总务基建处"], [None, "　其中：教务处"]]
    total = next(row for row in rows if row[1] == "合计")
    assert total[2:8] == rows[0][2:8] == [4, 2, 1, 3, 0, 1]


def test_the_bureau_has_a_row_only_for_hazards_of_its_own(two_schools: Chat) -> None:
    with Session(two_schools.engine.db) as session:
        add_hazard(session, unit="teaching")
        session.commit()
        rows = table(export(session, ["statistics"])["销号统计表"], 4)
        assert [row[1] for row in rows[:3]] == ["城关一中", "城南小学", "合计"]
        add_hazard(session, unit="bureau", problem="局机关配电室杂物")
        session.commit()
        rows = table(export(session, ["statistics"])["销号统计表"], 4)
    assert [row[1] for row in rows[:4]] == ["县教育局（本级）", "城关一中", "城南小学", "合计"]
    assert rows[0][2] == 1 and rows[3][2] == 2


def test_form_titles_do_not_repeat_the_campaign_name_s_words() -> None:
    assert form_title("2026—2027学年冬春校园安全隐患排查整治", "排查", "情况汇总表") == (
        "2026—2027学年冬春校园安全隐患排查整治情况汇总表")
    assert form_title("2026—2027学年冬春校园安全隐患排查整治", "隐患", "排查", "整改销号统计表") == (
        "2026—2027学年冬春校园安全隐患排查整治整改销号统计表")
    assert form_title("冬春安全整治大会战", "排查", "情况汇总表") == "冬春安全整治大会战排查情况汇总表"


# -- buildings (seed 004 附件) -------------------------------------------------------------------------

TOTALS = re.compile(
    r"校内建筑单体数：（(\d+)）栋；发现隐患单体数：（(\d+)）栋，能立即整改单体数：（(\d+)）栋，"
    r"短期内难以整改单体数：（(\d+)）栋，停用的单体数：（(\d+)）栋。"
)


def totals_of(rows: list[list[Any]]) -> list[int]:
    total = next(row for row in rows if row[0] == "合计")
    match = TOTALS.fullmatch(total[1])
    assert match is not None, total[1]
    return [int(n) for n in match.groups()]


def test_building_summary_has_the_seed_layout_and_totals(ledger: Session) -> None:
    sheet = export(ledger, ["buildings"], descendants(ledger, ["school"]))["建筑单体汇总"]
    assert sheet["A1"].value == "冬春安全整治大会战排查情况汇总表"
    assert "填报单位：城关一中（盖章）" in sheet["A2"].value
    names = [name for name, _ in BUILDING_COLUMNS]
    assert values(sheet, 3) == [*names[:4], "不能立即整改的隐患", None, None, "备注"]
    assert values(sheet, 4)[4:7] == ["计划完成日期", "具体\n责任人", "是否停用"]
    merged = {str(rng) for rng in sheet.merged_cells.ranges}
    assert {"A3:A4", "B3:B4", "C3:C4", "D3:D4", "E3:G3", "H3:H4"} <= merged
    assert_printable(sheet, freeze="A5", titles="$3:$4")

    rows = table(sheet, 5)
    b1, b2, b3, total = rows[:4]
    assert b1[:2] == [1, "3号教学楼"]
    assert b1[2].splitlines() == [
        "1.3号教学楼二楼东侧：消防通道堆放杂物（#1）",
        '2.3号教学楼顶层：=HYPERLINK("http://example.com","点我")（#4）',
    ]
    assert b1[3:7] == ["否", "2023-12-10", "王建国", "否"]  # #1: 5 days to fix, still open
    assert b2[3:7] == ["是", None, None, "是"]  # all immediate; the gas leak closed the canteen
    assert b3[2] == "未检查" and b3[3:7] == [None] * 4  # the withdrawn report does not count; nobody checked it
    assert b3[7] == "尚未检查；1995年建（1998年以前建筑）"
    assert totals_of(rows) == [3, 2, 1, 1, 1]
    assert f"B{5 + 3}:H{5 + 3}" in merged
    tail = [row[0] for row in sheet.iter_rows(min_row=9, values_only=True) if row[0]]
    assert tail == ["注：1栋尚未检查（无隐患也请发「检查」记录）。",
                    "主要负责人签字：__________　　　填表人签字：__________　　　联系电话：__________"]


def test_building_summary_notes_hazards_without_a_building(ledger: Session) -> None:
    add_hazard(ledger, unit="logistics", location="操场", problem="篮球架松动")
    ledger.commit()
    sheet = export(ledger, ["buildings"])["建筑单体汇总"]
    texts = [row[0] for row in sheet.iter_rows(min_row=5, values_only=True) if row[0]]
    assert "注：另有1项隐患未关联建筑单体，见隐患台账。" in texts


def test_a_hazard_is_immediate_when_its_deadline_is_near_or_it_was_fixed_at_once(engine: Engine) -> None:
    """能立即整改: said so, or a deadline within IMMEDIATE_DAYS of the finding, or 整改 within them."""
    found = datetime(2023, 12, 5, 10, 0, tzinfo=TZ)
    with Session(engine.db) as session:
        add_hazard(session, unit="teaching", building_id="b1", deadline=date(2023, 12, 8))  # 3 days: immediate
        add_hazard(session, unit="teaching", building_id="b2", deadline=date(2023, 12, 30), status="rectified",
                   rectified=found + timedelta(days=1))  # fixed the next day
        add_hazard(session, unit="teaching", building_id="b3", deadline=date(2023, 12, 9))  # 4 days: not
        session.commit()
        rows = table(export(session, ["buildings"], descendants(session, ["school"]))["建筑单体汇总"], 5)
    assert [row[3] for row in rows[:3]] == ["是", "是", "否"]
    assert totals_of(rows) == [3, 3, 2, 1, 0]


def test_long_building_lists_are_cut_with_a_pointer_to_the_ledger(engine: Engine) -> None:
    with Session(engine.db) as session:
        for i in range(14):
            add_hazard(session, unit="logistics", location=f"3号教学楼{i + 1}层", problem="应急灯损坏",
                       building_id="b1")
        session.commit()
        sheet = export(session, ["buildings"])["建筑单体汇总"]
    content = sheet["C5"].value.splitlines()
    assert len(content) == 11 and content[0].startswith("1.") and content[-1] == "……共14项，详见隐患台账"


# -- all forms together, and large ledgers -----------------------------------------------------------


def test_one_workbook_can_hold_every_form(ledger: Session) -> None:
    book = export(ledger, ["ledger", "buildings", "statistics"], descendants(ledger, ["school"]))
    assert book.sheetnames == ["隐患台账", "建筑单体汇总", "销号统计表"]
    assert book.active.title == "隐患台账"


def test_a_few_thousand_rows_stream_out(engine: Engine) -> None:
    with Session(engine.db) as session:
        for i in range(3000):
            add_hazard(session, unit=("teaching", "logistics", "security")[i % 3], problem=f"问题{i}")
        session.commit()
        sheet = export(session, ["ledger"], descendants(session, ["school"]))["隐患台账"]
    assert sheet.max_row == 3 + 3000 + 2
    assert sheet.cell(row=3003, column=1).value == 3000
    assert sheet.cell(row=3003, column=4).value == "问题2999"


# -- through the chat ----------------------------------------------------------------------------------


def test_ledger_command_posts_all_three_forms(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", "隐患\n部位：操场\n问题：篮球架松动")
    chat.say("li_na", "销号 #2")
    reply = chat.say("zhao_min", "台账")
    assert "共2条（已销号1条，未销号1条）" in reply and "可直接打印签字" in reply
    data = chat.last[0].file_data
    assert data is not None
    book = load_workbook(BytesIO(data))
    assert book.sheetnames == ["隐患台账", "建筑单体汇总", "销号统计表"]
    buildings = table(book["建筑单体汇总"], 5)
    assert buildings[0][1] == "3号教学楼" and "消防通道堆放杂物" in buildings[0][2]
    statistics = table(book["销号统计表"], 4)
    total = next(row for row in statistics if row[1] == "合计")
    assert total[2] == 2 and total[4] == 1


def test_a_school_without_buildings_gets_the_ledger_and_statistics(chat: Chat) -> None:
    chat.say("zhou_tao", "隐患\n部位：操场\n问题：篮球架松动", group="s2")
    chat.say("sun_li", "台账", group="s2")
    data = chat.last[0].file_data
    assert data is not None
    book = load_workbook(BytesIO(data))
    assert book.sheetnames == ["隐患台账", "销号统计表"]
    assert book["隐患台账"]["A1"].value == "城南小学安全隐患自查整改清单"
