"""转交: a unit head, the safety officer or a leader gives a hazard a new 责任人."""

from __future__ import annotations

from sqlmodel import select

from models.tables import Hazard, HazardEvent
from tests.school import Chat

# Reported by a teacher of 教务处 with 陈静 (教务处) as the owner: the hazard is 教务处's.
REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：陈静\n期限：12月10日"


def _hazard(chat: Chat) -> Hazard:
    with chat.session() as session:
        return session.exec(select(Hazard)).one()


def test_a_leader_transfers_to_someone_of_another_unit_of_the_school(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    reply = chat.say("zhao_min", "转交 #1 王建国")
    assert reply.startswith("隐患 #1 已转交 王建国（总务基建处）负责。")
    assert "责任人 陈静 → 王建国" in reply and "单位 教务处 → 总务基建处" in reply
    assert chat.last[0].mentions == ("wang_jianguo",)
    hazard = _hazard(chat)
    assert (hazard.responsible_id, hazard.responsible_name, hazard.unit_id) == ("wang_jianguo", "王建国", "logistics")


def test_every_way_of_writing_it_works(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "已转交 王建国" in chat.say("li_na", "#1 转给王建国")
    assert "已转交 徐强" in chat.say("wang_jianguo", "#1 责任人：徐强")
    assert "已转交 陈静" in chat.say("zhao_min", "转交 #1 给陈静 属于教务处管理")
    assert _hazard(chat).responsible_id == "chen_jing"


def test_the_history_shows_the_transfer(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("li_na", "转交 #1 王建国 属于后勤维修")
    with chat.session() as session:
        event = session.exec(select(HazardEvent).where(HazardEvent.action == "transfer")).one()
    assert event.actor_id == "li_na"
    assert event.detail == "责任人 陈静 → 王建国；单位 教务处 → 总务基建处；属于后勤维修"
    shown = chat.say("zhang_wei", "#1")
    assert "李娜 转交 责任人 陈静 → 王建国" in shown


def test_the_new_owner_may_then_report_the_fix(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhao_min", "转交 #1 王建国")
    assert "已报整改" in chat.say("wang_jianguo", "整改 #1 已清理通道")


def test_teachers_and_other_units_heads_may_not_transfer(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    refused = chat.say("zhang_wei", "转交 #1 王建国")  # the finder, a teacher
    assert refused.startswith("只有部门负责人、安全员或校领导可以转交隐患 #1")
    assert "只有部门负责人" in chat.say("xu_qiang", "转交 #1 王建国")
    assert "只有部门负责人" in chat.say("wang_jianguo", "转交 #1 王建国")  # head of 总务基建处, not of 教务处
    hazard = _hazard(chat)
    assert (hazard.responsible_id, hazard.unit_id) == ("chen_jing", "teaching")
    with chat.session() as session:
        assert session.exec(select(HazardEvent).where(HazardEvent.action == "transfer")).all() == []


def test_an_unknown_name_is_refused_with_the_closest_names(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    reply = chat.say("zhao_min", "转交 #1 王建图")
    assert reply.startswith("没有找到「王建图」。您是想写：王建国（总务基建处）吗？")
    assert "转交 #1 王建国" in reply
    assert _hazard(chat).responsible_id == "chen_jing"


def test_never_to_someone_of_another_school(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    reply = chat.say("zhao_min", "转交 #1 周涛")  # 周涛 teaches at 城南小学
    assert reply.startswith("没有找到「周涛」")
    hazard = _hazard(chat)
    assert (hazard.responsible_id, hazard.unit_id) == ("chen_jing", "teaching")


def test_an_ambiguous_name_asks_for_the_unit(chat: Chat) -> None:
    from models.tables import PersonRow

    with chat.session() as session:
        session.add(PersonRow(id="wang_fang_a", name="王芳", unit_id="teaching"))
        session.add(PersonRow(id="wang_fang_b", name="王芳", unit_id="security"))
        session.commit()
    chat.say("zhang_wei", REPORT)
    reply = chat.say("zhao_min", "转交 #1 王芳")
    assert reply.startswith("有2位「王芳」：") and "单位：" in reply
    assert _hazard(chat).responsible_id == "chen_jing"
    assert "已转交 王芳（安全保卫处）" in chat.say("zhao_min", "转交 #1 责任人：王芳 单位：保卫处")


def test_a_name_is_needed_and_a_closed_hazard_is_not_transferred(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "请写上新的责任人，例如：转交 #1 王建国" in chat.say("zhao_min", "转交 #1")
    assert "已经是隐患 #1 的责任人" in chat.say("zhao_min", "转交 #1 陈静")
    chat.say("zhao_min", "销号 #1")
    assert "已销号，不需要再转交" in chat.say("zhao_min", "转交 #1 王建国")
