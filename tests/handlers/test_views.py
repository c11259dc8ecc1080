"""查看, 我的, 清单, 进度, 检查, 报送, 统计, 台账, 帮助."""

from __future__ import annotations

import json
from io import BytesIO

from openpyxl import load_workbook
from sqlmodel import select

from models.tables import CheckRecord, Submission
from tests.school import REPORT, Chat


def test_show_gives_details_and_history(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.advance(hours=1)
    chat.say("wang_jianguo", "整改 #1 已清理通道")
    reply = chat.say("zhang_wei", "#1")
    assert reply.startswith("隐患 #1｜待验收")
    assert "部位：3号教学楼二楼东侧" in reply and "单位：总务基建处｜责任人：王建国" in reply
    assert "12-05 10:00 张伟 上报" in reply and "12-05 11:00 王建国 报整改 已清理通道" in reply


def test_show_marks_overdue(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.advance(days=7)
    assert "整改中（已逾期2天）" in chat.say("zhang_wei", "查看 #1")


def test_mine_lists_what_i_am_responsible_for_or_reported(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("chen_jing", "隐患\n部位：操场\n问题：篮球架松动\n责任人：陈静")
    mine = chat.say("wang_jianguo", "我的")
    assert "#1" in mine and "#2" not in mine
    assert "没有未销号的隐患" in chat.say("xu_qiang", "我的")


def test_list_shows_the_units_open_items_overdue_first(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", "隐患\n部位：车棚\n问题：电线私拉乱接\n责任人：王建国\n期限：明天")
    chat.advance(days=2)
    listing = chat.say("wang_jianguo", "清单")
    assert "总务基建处 未销号隐患（共2条，逾期1条，待验收0条）" in listing
    assert listing.index("#2") < listing.index("#1")
    assert "已逾期1天" in listing
    school = chat.say("li_na", "清单")
    assert "城关一中 未销号隐患（共2条" in school
    assert "共0条" in chat.say("zhang_wei", "清单") or "没有未销号的隐患" in chat.say("zhang_wei", "清单")


def test_list_of_a_named_unit(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "总务基建处 未销号隐患（共1条" in chat.say("zhao_min", "清单 单位：总务处")
    assert "没有找到您可查看的单位" in chat.say("wang_jianguo", "清单 单位：教务处")


def test_progress_report_shows_phase_milestones_and_totals(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    reply = chat.say("zhao_min", "进度")
    assert "冬春安全整治大会战" in reply
    assert "第15天" in reply
    assert "当前阶段：第2阶段 自查自改" in reply
    assert "节点：2023-12-19（周二） 阶段性情况（还剩14天）" in reply
    assert "下次报送：2023-12-06（周三）" in reply
    assert "累计发现1条，已销号0条，未销号1条" in reply


def test_check_records_coverage(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "检查 部位：3号教学楼三楼；检查内容：疏散通道；结果：无隐患")
    assert "已记录：3号教学楼三楼（疏散通道） 检查无隐患" in reply
    with chat.session() as session:
        record = session.exec(select(CheckRecord)).one()
    assert (record.building_id, record.person_id) == ("b1", "zhang_wei")
    assert "请用「隐患」上报" in chat.say("zhang_wei", "检查 部位：食堂；结果：燃气泄漏")


def test_submit_records_the_period_once(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "报送由部门负责人" in chat.say("zhang_wei", "报送")
    reply = chat.say("wang_jianguo", "报送")
    assert "总务基建处已报送本期统计（11-27至12-06）" in reply and "新发现1" in reply
    assert "无需重复报送" in chat.say("wang_jianguo", "报送")
    chat.advance(days=2)
    assert "已报送本期统计（12-07至12-16）" in chat.say("wang_jianguo", "报送")
    with chat.session() as session:
        rows = session.exec(select(Submission).order_by(Submission.id)).all()
    assert [str(r.period_due) for r in rows] == ["2023-12-06", "2023-12-16"]
    assert json.loads(rows[0].figures)["outstanding"] == 1


def test_safety_officer_submits_for_the_whole_school(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "城关一中已报送本期统计" in chat.say("li_na", "报送")


def test_stats_counts_per_unit(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", "隐患\n部位：教务处办公室\n问题：插座过载")
    chat.say("li_na", "销号 #2")
    reply = chat.say("zhao_min", "统计")
    assert "发现2｜销号1｜未销号1｜逾期0｜重大0" in reply
    assert "· 总务基建处：1/0/1/0" in reply and "· 教务处：1/1/0/0" in reply


def test_export_produces_the_official_ledger(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", "隐患\n部位：操场\n问题：篮球架松动")
    chat.say("li_na", "销号 #2")
    reply = chat.say("zhao_min", "台账")
    assert "共2条（已销号1条，未销号1条）" in reply
    data = chat.last[0].file_data
    assert data is not None and chat.last[0].file_name.endswith(".xlsx")  # type: ignore[union-attr]
    sheet = load_workbook(BytesIO(data)).active
    header = [cell.value for cell in sheet[3]]
    assert header == ["序号", "部位", "检查内容", "存在隐患问题", "整改措施", "整改完成情况", "责任人", "检查时间", "销号时间", "备注"]
    assert [sheet.cell(row=4, column=c).value for c in (1, 2, 4, 7, 8)] == [1, "3号教学楼二楼东侧", "消防通道堆放杂物", "王建国", "2023-12-05"]
    assert sheet.cell(row=5, column=9).value == "2023-12-05"
    assert sheet.freeze_panes == "A4"
    assert sheet.page_setup.orientation == "landscape"


def test_help_overview_and_per_command(chat: Chat) -> None:
    assert "上报示例" in chat.say("zhang_wei", "帮助")
    assert "延期 #23 12月20日" in chat.say("zhang_wei", "帮助 延期")


def test_gibberish_gets_help_not_a_stack_trace(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "今天天气不错")
    assert "帮助" in reply and "Traceback" not in reply


def test_a_late_submit_fills_the_missed_period(chat: Chat) -> None:
    # Report day 2023-12-06 was missed (e.g. its reminder moved off a holiday); 12-07 fills it.
    chat.advance(days=2)
    late = chat.say("wang_jianguo", "报送")
    assert "总务基建处已补报统计（11-27至12-06）" in late and "下一期截至2023-12-16（周六）" in late
    assert "已报送本期统计（12-07至12-16）" in chat.say("wang_jianguo", "报送")
    assert "无需重复报送" in chat.say("wang_jianguo", "报送")
