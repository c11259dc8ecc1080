"""Hazard numbers per school within a campaign: #1 in each school's group, 城南小学#1 in the county's."""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlmodel import select

from models.tables import Hazard, HazardCounter
from tests.school import Chat

ONE = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：12月10日"
TWO = "隐患\n部位：食堂后厨\n问题：插座老化\n期限：12月12日"


def _numbers(chat: Chat) -> list[tuple[str | None, int, str]]:
    with chat.session() as session:
        return [(h.school_id, h.number, h.location) for h in session.exec(select(Hazard).order_by(Hazard.id))]  # type: ignore[arg-type]


def test_each_school_numbers_its_own_hazards(two_schools: Chat) -> None:
    chat = two_schools
    assert "已登记隐患 #1" in chat.say("zhang_wei", ONE)
    assert "已登记隐患 #1" in chat.say("zhou_tao", TWO, group="s2")
    assert "已登记隐患 #2" in chat.say("zhou_tao", "隐患\n部位：餐厅\n问题：地面湿滑\n期限：12月12日", group="s2")
    assert _numbers(chat) == [("school", 1, "3号教学楼二楼东侧"), ("school2", 1, "食堂后厨"), ("school2", 2, "餐厅")]
    # In a school's group, #1 is that school's 1.
    assert "插座老化" in chat.say("zhou_tao", "查看 #1", group="s2")
    assert "消防通道堆放杂物" in chat.say("zhang_wei", "#1")


def test_the_county_names_the_school(two_schools: Chat) -> None:
    chat = two_schools
    chat.say("zhang_wei", ONE)
    chat.say("zhou_tao", TWO, group="s2")
    asked = chat.say("wu_ju", "查看 #1", group="county")
    assert asked == "这里有2所学校的 #1：城关一中#1、城南小学#1。请写明学校，例如：查看 城关一中#1"
    shown = chat.say("wu_ju", "查看 城南小学#1", group="county")
    assert shown.startswith("隐患 城南小学#1｜整改中") and "插座老化" in shown
    assert chat.say("wu_ju", "城南小学#1", group="county").startswith("隐患 城南小学#1｜")
    assert "消防通道堆放杂物" in chat.say("wu_ju", "查看 城关一中#1", group="county")
    listed = chat.say("wu_ju", "清单", group="county").splitlines()
    assert any(line.startswith("城关一中#1 3号教学楼二楼东侧") for line in listed), listed
    assert any(line.startswith("城南小学#1 食堂后厨") for line in listed), listed
    assert "没有找到隐患 城南小学#9" in chat.say("wu_ju", "查看 城南小学#9", group="county")
    assert "12-20" in chat.say("wu_ju", "延期 城南小学#1 12月20日 等待配件", group="county")
    with chat.session() as session:
        deadlines = {h.school_id: h.deadline.isoformat() for h in session.exec(select(Hazard))}
    assert deadlines == {"school": "2023-12-10", "school2": "2023-12-20"}


def test_hazards_numbered_before_per_school_numbers_keep_them(two_schools: Chat) -> None:
    chat = two_schools
    chat.say("zhang_wei", ONE)
    chat.say("zhang_wei", "隐患\n部位：食堂\n问题：灭火器过期\n期限：12月10日")
    chat.say("zhou_tao", TWO, group="s2")
    with chat.session() as session:  # as migration 0009 leaves them: campaign-wide numbers, no school yet
        session.execute(update(Hazard).where(Hazard.unit_id == "school2").values(number=3))  # type: ignore[arg-type]
        session.execute(update(Hazard).values(school_id=None))
        session.execute(delete(HazardCounter))
        session.commit()
    chat.engine.start()  # the start-up sync gives them their schools
    assert _numbers(chat) == [("school", 1, "3号教学楼二楼东侧"), ("school", 2, "食堂"), ("school2", 3, "食堂后厨")]
    assert "插座老化" in chat.say("zhou_tao", "#3", group="s2")  # still reachable by the number people wrote down
    assert "已登记隐患 #4" in chat.say("zhou_tao", "隐患\n部位：餐厅\n问题：地面湿滑\n期限：12月12日", group="s2")
    assert "已登记隐患 #3" in chat.say("zhang_wei", "隐患\n部位：3号教学楼\n问题：窗户松动\n期限：12月12日")


def test_lifecycle_replies_in_the_county_name_the_school(two_schools: Chat) -> None:
    """Issue 14: every step taken in a county chat names the hazard as 城南小学#1, as 查看 and 清单 do."""
    chat = two_schools
    chat.say("zhang_wei", ONE)
    chat.say("zhou_tao", TWO, group="s2")
    chat.say("zhou_tao", "隐患\n部位：餐厅\n问题：地面湿滑\n期限：12月12日", group="s2")
    county = {"group": "county"}
    progress = chat.say("wu_ju", "进展 城南小学#1 已联系电工", **county)
    assert progress.startswith("已记录隐患 城南小学#1 的进展"), progress
    extended = chat.say("wu_ju", "延期 城南小学#1 12月20日 等待配件", **county)
    assert extended.startswith("隐患 城南小学#1 期限已调整"), extended
    moved = chat.say("wu_ju", "转交 城南小学#1 钱红", **county)
    assert moved.startswith("隐患 城南小学#1 已转交 钱红") and "「整改 城南小学#1 说明」" in moved, moved
    fixed = chat.say("wu_ju", "整改 城南小学#1 已更换插座", **county)
    assert fixed.startswith("隐患 城南小学#1 已报整改") and "「销号 城南小学#1」" in fixed, fixed
    rejected = chat.say("wu_ju", "退回 城南小学#1 插座面板松动", **county)
    assert rejected.startswith("隐患 城南小学#1 验收未通过") and "「整改 城南小学#1 说明」" in rejected, rejected
    chat.say("qian_hong", "整改 #1 已加固面板", group="s2")
    closed = chat.say("wu_ju", "销号 城南小学#1", **county)
    assert closed.startswith("隐患 城南小学#1 已销号"), closed
    assert chat.say("wu_ju", "进展 城南小学#1 再看看", **county) .startswith("隐患 城南小学#1 已于")
    assert chat.say("wu_ju", "撤销 城南小学#2", **county) == "隐患 城南小学#2 已撤销（保留记录，不计入统计）。"
    assert chat.say("wu_ju", "整改 城关一中#1 已清理", **county).startswith("隐患 城关一中#1 已报整改")
    # In the school's own groups the number stays bare.
    assert chat.say("zhao_min", "销号 #1").startswith("隐患 #1 已销号")
    assert chat.say("sun_li", "进展 #1 复查", group="s2").startswith("隐患 #1 已于")


def test_plain_words_take_the_school_too(two_schools: Chat) -> None:
    """Issue 14: 城南小学#1 修好了, 城南小学#1 验收合格 and 看看城南小学#1 work like the typed commands."""
    chat = two_schools
    chat.say("zhang_wei", ONE)
    chat.say("zhou_tao", TWO, group="s2")
    shown = chat.say("wu_ju", "看看城南小学#1", group="county")
    assert shown.startswith("隐患 城南小学#1｜整改中") and "插座老化" in shown, shown
    fixed = chat.say("wu_ju", "城南小学#1 修好了", group="county")
    assert fixed.startswith("隐患 城南小学#1 已报整改") and "说明：修好了" in fixed, fixed
    closed = chat.say("wu_ju", "城南小学#1 验收合格", group="county")
    assert closed.startswith("隐患 城南小学#1 已销号"), closed
    with chat.session() as session:
        status = {h.school_id: h.status for h in session.exec(select(Hazard))}
    assert status == {"school": "rectifying", "school2": "closed"}
    assert "插座老化" in chat.say("wu_ju", "看看 城南小学#1", group="county")
    assert chat.say("wu_ju", "城关一中#1 延期到12月20日 等配件", group="county").startswith("隐患 城关一中#1 期限已调整")


def test_registering_in_the_county_names_the_school(two_schools: Chat) -> None:
    """已登记 in a county chat says 城南小学#1, as its lifecycle replies do; a school's own group keeps #1."""
    chat = two_schools
    assert chat.say("zhang_wei", ONE).startswith("已登记隐患 #1（")
    county = {"group": "county"}
    reply = chat.say("wu_ju", "隐患\n部位：城南小学食堂\n问题：插座老化\n责任人：钱红\n期限：12月12日", **county)
    assert reply.startswith("已登记隐患 城南小学#1（"), reply
    assert "「整改 城南小学#1 说明」" in reply and "整改 #1" not in reply, reply
    chat.say("wu_ju", "隐患\n1. 城南小学3号教学楼 楼梯扶手松动，责任人钱红\n2. 城南小学餐厅 地面湿滑，责任人钱红", **county)
    both = chat.say("wu_ju", "确认", **county).splitlines()
    assert both[0] == "已登记2条隐患：", both
    assert both[1].startswith("城南小学#2 3号教学楼") and both[2].startswith("城南小学#3 餐厅"), both
    assert "「整改 城南小学#编号 说明」" in both[-1], both
    # A repeated report: the question and the answer name the school too.
    asked = chat.say("wu_ju", "隐患\n部位：城南小学食堂\n问题：插座老化了\n责任人：钱红\n期限：12月12日", **county)
    assert "可能与 城南小学#1 重复" in asked and "「同 城南小学#1」" in asked, asked
    assert chat.say("wu_ju", "同 #1", **county).startswith("这里有2所学校的 #1：城关一中#1、城南小学#1。")
    joined = chat.say("wu_ju", "同 城南小学#1", **county)
    assert joined.startswith("已补充到隐患 城南小学#1（城南小学食堂 插座老化）"), joined
    # In the school's own group the number stays bare.
    own = chat.say("zhou_tao", "隐患\n部位：3号教学楼\n问题：窗户松动\n期限：12月12日", group="s2")
    assert own.startswith("已登记隐患 #4（") and "「整改 #4 说明」" in own, own


def test_a_county_list_of_one_schools_hazards_names_the_school(two_schools: Chat) -> None:
    """Even when only one school has open hazards, the county's 清单 says 城南小学#1 (its bare #1 would be asked about)."""
    chat = two_schools
    chat.say("zhou_tao", TWO, group="s2")
    listed = chat.say("wu_ju", "清单", group="county").splitlines()
    assert any(line.startswith("城南小学#1 食堂后厨") for line in listed), listed
    own = chat.say("sun_li", "清单", group="s2").splitlines()
    assert any(line.startswith("#1 食堂后厨") for line in own), own
