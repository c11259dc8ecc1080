"""The official forms of a ledger built through the chat (the real engine, console platform), checked school by
school and for the county against the ledger: two schools that both have a 食堂 and a 3号教学楼."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from bot.config import parse_config
from models.ledger import descendants, total_figures, unit_figures
from models.reports import ledger_counts
from tests.school import TWO_SCHOOLS, TZ, Chat, start_engine

DAY = datetime(2023, 12, 5, 10, 0, tzinfo=TZ)  # inside campaign c1, period 2 (11-27 … 12-06)
CHECKLIST = [
    {"project": "消防安全", "seq": 1, "content": "“消防安全检查日”制度落实情况。", "method": "查阅资料 现场查看",
     "departments": ["security"]},
    {"project": "消防安全", "seq": 2, "content": "人员密集场所消防设施设备落实情况。", "method": "现场查看",
     "departments": ["security", "logistics"]},
    {"project": "校园安防", "seq": 1, "content": "专职保安员配备情况。", "method": "查阅资料",
     "departments": ["s2_security"]},
]


@pytest.fixture
def county(tmp_path: Path) -> Iterator[Chat]:
    engine = start_engine(parse_config({**TWO_SCHOOLS, "checklist": CHECKLIST}), tmp_path)
    chat = Chat(engine, DAY)
    steps = [
        ("zhang_wei", "staff", "隐患\n部位：食堂后厨\n问题：灭火器过期\n责任人：王建国\n期限：12月7日"),  # #1
        ("zhou_tao", "s2", "隐患\n部位：食堂操作间\n问题：燃气管道老化\n责任人：王建国\n期限：12月30日"),  # 城南小学#1
        ("zhang_wei", "staff", "隐患\n部位：3号教学楼二楼\n问题：消防通道堆放杂物\n责任人：王建国\n期限：12月20日"),  # #2
        ("wang_jianguo", "staff", "整改 #1 已更换灭火器"),
        ("li_na", "staff", "销号 #1"),
        ("wang_jianguo", "staff", "整改 #2 已清理"),
        ("li_na", "staff", "退回 #2 仍有纸箱"),
        ("qian_hong", "s2", "检查\n部位：3号教学楼\n结果：无隐患"),
        ("zhang_wei", "staff", "隐患\n部位：操场\n问题：误报\n责任人：王建国"),  # #3
        ("zhang_wei", "staff", "撤销 #3"),
        ("qian_hong", "s2", "隐患\n部位：餐厅\n问题：地面湿滑\n责任人：王建国\n期限：明天"),  # 城南小学#2
        ("wang_jianguo2", "s2", "整改 #2 已铺防滑垫"),
    ]
    for person, group, text in steps:
        reply = chat.say(person, text, group=group)  # numbers are per school
        assert ("#" in reply or "已记录" in reply) and "没有找到" not in reply, reply
    yield chat
    engine.db.dispose()


def workbook(chat: Chat, person: str, text: str, group: str) -> Workbook:
    chat.say(person, text, group=group)
    data = chat.last[0].file_data
    assert data is not None, chat.last[0].text
    return load_workbook(BytesIO(data))


def rows(sheet: Worksheet, first: int) -> list[list[Any]]:
    found = []
    for row in sheet.iter_rows(min_row=first, values_only=True):
        if all(value is None for value in row):
            break
        found.append(list(row))
    return found


def statistics_table(sheet: Worksheet) -> list[list[Any]]:
    """The statistics rows down to and including 合计 (the notes follow right under it)."""
    table = rows(sheet, 4)
    end = next(i for i, row in enumerate(table) if row[1] == "合计")
    return table[: end + 1]


TOTALS = re.compile(r"（(\d+)）栋")


def test_county_forms_match_the_ledger_school_by_school(county: Chat) -> None:
    book = workbook(county, "wu_ju", "台账", "county")
    assert book.sheetnames == ["台账-城关一中", "台账-城南小学", "汇总表-城关一中", "汇总表-城南小学", "销号统计表",
                               "项目清单"]
    with county.session() as session:
        for school, name in (("school", "城关一中"), ("school2", "城南小学")):
            units = descendants(session, [school])
            counts = ledger_counts(session, campaign_id="c1", unit_ids=units)
            ledger = rows(book[f"台账-{name}"], 4)
            assert book[f"台账-{name}"]["A1"].value == f"{name}安全隐患自查整改清单"
            assert [row[0] for row in ledger] == list(range(1, counts.total + 1))  # 序号: 1, 2, 3 … per school
            assert sum(1 for row in ledger if row[8]) == counts.closed
        figures = unit_figures(session, campaign_id="c1", unit_ids=None, today=DAY.date())
        per_school = {
            school: total_figures(figures[u] for u in descendants(session, [school]) if u in figures)
            for school in ("school", "school2")
        }

    first = {row[9].split("；")[0]: row for row in rows(book["台账-城关一中"], 4)}
    # 备注 names the school with the number: a county's export holds every school's #1.
    assert set(first) == {"城关一中#1", "城关一中#2"}  # the withdrawn #3 is left out, with no gap in 序号
    assert first["城关一中#2"][5] == "整改中"  # 退回: the rejected "已清理" is not shown as the completion
    assert first["城关一中#1"][5] == "已更换灭火器" and first["城关一中#1"][8] == "2023-12-05"
    second = {row[9].split("；")[0]: row for row in rows(book["台账-城南小学"], 4)}
    assert set(second) == {"城南小学#1", "城南小学#2"}
    assert second["城南小学#2"][5] == "已铺防滑垫（待验收）" and second["城南小学#2"][8] is None

    # Each school's 食堂 holds that school's hazards only.
    s1 = {row[1]: row for row in rows(book["汇总表-城关一中"], 5)}
    s2 = {row[1]: row for row in rows(book["汇总表-城南小学"], 5)}
    assert s1["食堂"][2] == "1.食堂后厨：灭火器过期（#1）" and s1["食堂"][3] == "是"
    assert s2["食堂"][2].splitlines() == ["1.食堂操作间：燃气管道老化（#1）", "2.餐厅：地面湿滑（#2）"]
    assert s2["食堂"][3:6] == ["否", "2023-12-30", "王建国"]
    assert s1["3号教学楼"][2] == "1.3号教学楼二楼：消防通道堆放杂物（#2）"
    assert s2["3号教学楼"][2] == "无"  # checked (检查), nothing found
    s1_total, s2_total = (next(row for row in rows(book[f"汇总表-{n}"], 5) if row[0] == "合计") for n in ("城关一中", "城南小学"))
    assert [int(n) for n in TOTALS.findall(s1_total[1])] == [2, 2, 1, 1, 0]
    assert [int(n) for n in TOTALS.findall(s2_total[1])] == [2, 1, 0, 1, 0]
    assert book["汇总表-城南小学"]["A2"].value.startswith("填报单位：城南小学")

    statistics = statistics_table(book["销号统计表"])
    assert [row[1] for row in statistics] == ["城关一中", "城南小学", "合计"]  # no row for the bureau itself
    for row, school in zip(statistics, ("school", "school2")):
        f = per_school[school]
        assert row[2:8] == [f.found, f.rectified, f.closed, f.outstanding, f.overdue, f.major]
        assert row[2] == len(rows(book[f"台账-{row[1]}"], 4))
    assert statistics[2][2:8] == [4, 2, 1, 3, 0, 0]
    ledger_total = sum(len(rows(book[f"台账-{name}"], 4)) for name in ("城关一中", "城南小学"))
    assert statistics[2][2] == ledger_total

    checklist = rows(book["项目清单"], 3)
    assert checklist[0] == ["督查项目", "序号", "督查内容", "督查方法", "责任部门"]
    assert checklist[2][:2] == [None, 2] and checklist[2][4] == "安全保卫处、总务基建处"
    assert checklist[3][0] == "校园安防" and checklist[3][4] == "城南小学保卫科"


def test_a_school_group_gets_its_own_forms_only(county: Chat) -> None:
    book = workbook(county, "sun_li", "台账", "s2_leaders")
    assert book.sheetnames == ["隐患台账", "建筑单体汇总", "销号统计表", "项目清单"]
    ledger = rows(book["隐患台账"], 4)
    assert [row[0] for row in ledger] == [1, 2] and all("食堂" in row[1] or "餐厅" in row[1] for row in ledger)
    assert [row[9].split("；")[0] for row in ledger] == ["#1", "#2"]  # one school: the number as in its chats
    statistics = statistics_table(book["销号统计表"])
    assert [row[1] for row in statistics] == ["城南小学", "　其中：城南小学保卫科", "　其中：城南小学后勤处", "合计"]
    assert statistics[-1][2:8] == statistics[0][2:8] == [2, 1, 0, 2, 0, 0]


def test_one_form_by_name_and_a_polite_answer_to_an_unknown_one(county: Chat) -> None:
    book = workbook(county, "wu_ju", "导出 清单表", "county")
    assert book.sheetnames == ["项目清单"]
    assert book["项目清单"]["A1"].value == "冬春安全整治大会战项目清单"
    reply = county.say("wu_ju", "导出 周报", group="county")
    assert reply == "没有「周报」这张表。可以导出：台账、汇总表、统计表、清单表，例如：导出 统计表；只发「台账」导出全部。"
    assert county.last[0].file_data is None


def test_a_period_s_statistics_show_what_each_school_submitted(county: Chat) -> None:
    county.say("zhao_min", "报送", group="leaders")  # 城关一中: found 2, rectified 1, closed 1, open 1
    county.say("zhang_wei", "隐患\n部位：食堂\n问题：排风扇损坏\n责任人：王建国\n期限：12月6日", group="staff")
    book = workbook(county, "wu_ju", "导出 统计表 第2期", "county")
    sheet = book["销号统计表"]
    assert "统计时段：第2期 2023-11-27 至 2023-12-06" in sheet["A2"].value
    assert [cell.value for cell in sheet[3]][8:11] == ["报送数\n（发现/整改/销号/\n未销号/逾期/重大）", "报送时间",
                                                      "与台账核对"]
    first, second, total = rows(sheet, 4)[:3]
    assert first[1] == "城关一中" and first[2:8] == [3, 1, 1, 2, 0, 0]
    assert first[8:11] == ["2/1/1/1/0/0", "12-05 10:00", "不一致：发现报2/台账3，未销号报1/台账2"]
    assert second[1] == "城南小学" and second[8:11] == [None, None, "未报送"]
    assert total[1] == "合计" and total[2] == 5
    reply = county.say("wu_ju", "导出 统计表 第30期", group="county")
    assert reply == "本活动共17期报送，请改为例如：导出 统计表 第17期"


def test_a_school_s_departments_reports_add_up_when_the_school_sent_none(county: Chat) -> None:
    assert "已报送本期统计" in county.say("wang_jianguo", "报送", group="staff")  # 总务基建处 for itself
    book = workbook(county, "wu_ju", "导出 统计表 第2期", "county")
    first = statistics_table(book["销号统计表"])[0]
    assert first[1] == "城关一中" and first[8:11] == ["2/1/1/1/0/0", "12-05 10:00", "一致"]


def test_the_county_s_statistics_text_has_one_line_per_school(county: Chat) -> None:
    reply = county.say("wu_ju", "统计", group="county")
    assert "· 城关一中：2/1/1/0" in reply and "· 城南小学：2/0/2/0" in reply
    assert "总务基建处" not in reply and "县教育局" not in reply.split("单位：")[1]
