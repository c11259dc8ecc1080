"""Locked doors: every command is bounded by the chat it came from, and buildings match within the school.

Two schools of one county (tests/school.py TWO_SCHOOLS): a group sees its own units; a private chat sees the
sender's school; a county admin's private chat and the county group see both schools.
"""

from __future__ import annotations

from io import BytesIO

from openpyxl import load_workbook
from sqlmodel import select

from handlers.context import BuildingRef
from handlers.directory import find_building
from models.ledger import school_of
from models.tables import CheckRecord, DuePush, Hazard, HazardEvent, Submission
from tests.school import Chat

SCHOOL1_REPORT = "隐患\n部位：3号教学楼二楼\n问题：一中灭火器过期\n期限：12月10日"
SCHOOL2_REPORT = "隐患\n部位：操场\n问题：城南篮球架松动\n期限：12月10日"
PRIVATE = "dm"  # a chat id that is no configured group: a private chat with the bot


def report_both(chat: Chat) -> None:
    """Each school's #1 (numbers are per school): 城关一中 (教务处) and 城南小学."""
    assert "#1" in chat.say("zhang_wei", SCHOOL1_REPORT)
    assert "#1" in chat.say("zhou_tao", SCHOOL2_REPORT, group="s2")


def hazards(chat: Chat) -> list[Hazard]:
    with chat.session() as session:
        return list(session.exec(select(Hazard).order_by(Hazard.number)))


def workbook_text(chat: Chat) -> str:
    """Every cell of the XLSX the last reply carried, as one string."""
    data = chat.last[0].file_data
    assert data is not None
    book = load_workbook(BytesIO(data))
    return "\n".join(
        str(value) for sheet in book for row in sheet.iter_rows(values_only=True) for value in row if value is not None
    )


# -- 清单 / 查看 / 我的 / 统计 / 台账 / 进度 ----------------------------------------------------------------


def test_an_admin_in_a_school_group_lists_only_that_school(two_schools: Chat) -> None:
    report_both(two_schools)
    in_school2 = two_schools.say("he_jun", "清单", group="s2")
    assert "城南篮球架松动" in in_school2 and "#1" in in_school2
    assert "一中灭火器过期" not in in_school2
    in_school1 = two_schools.say("liu_yang", "清单")
    assert "一中灭火器过期" in in_school1 and "城南篮球架松动" not in in_school1


def test_an_admin_cannot_see_or_change_another_schools_hazard_from_its_group(two_schools: Chat) -> None:
    report_both(two_schools)
    assert "#2" in two_schools.say("zhang_wei", SCHOOL1_REPORT.replace("3号教学楼二楼", "3号教学楼三楼"))
    for command in ("查看 #2", "#2", "销号 #2", "撤销 #2", "延期 #2 12月30日 等配件", "整改 #2 已更换"):
        reply = two_schools.say("he_jun", command, group="s2")  # 城南小学 has no #2; 城关一中's is out of reach
        assert reply.startswith("没有找到隐患 #2"), (command, reply)
        assert "一中灭火器过期" not in reply
    first = next(h for h in hazards(two_schools) if h.school_id == "school" and h.number == 2)
    assert (first.status, first.deadline.isoformat(), first.completion) == ("rectifying", "2023-12-10", "")
    with two_schools.session() as session:
        assert [e.action for e in session.exec(select(HazardEvent).where(HazardEvent.hazard_id == first.id))] == ["report"]


def test_the_same_admin_command_works_in_the_hazards_own_group(two_schools: Chat) -> None:
    report_both(two_schools)
    assert "一中灭火器过期" in two_schools.say("liu_yang", "查看 #1")
    assert "已撤销" in two_schools.say("liu_yang", "撤销 #1")


def test_an_admins_private_chat_covers_the_admins_own_school(two_schools: Chat) -> None:
    report_both(two_schools)
    listing = two_schools.say("he_jun", "清单", group=PRIVATE)
    assert "城南篮球架松动" in listing and "一中灭火器过期" not in listing
    mine = two_schools.say("he_jun", "查看 #1", group=PRIVATE)  # the own school's #1
    assert "城南篮球架松动" in mine and "一中灭火器过期" not in mine
    stats = two_schools.say("he_jun", "统计", group=PRIVATE)
    assert "发现1｜" in stats and "城关一中" not in stats and "教务处" not in stats
    assert "累计发现1条" in two_schools.say("he_jun", "进度", group=PRIVATE)
    two_schools.say("he_jun", "台账", group=PRIVATE)
    cells = workbook_text(two_schools)
    assert "城南篮球架松动" in cells and "一中灭火器过期" not in cells


def test_a_county_admin_and_the_county_group_see_both_schools(two_schools: Chat) -> None:
    report_both(two_schools)
    for group in (PRIVATE, "county"):
        listing = two_schools.say("wu_ju", "清单", group=group)
        assert "城南篮球架松动" in listing and "一中灭火器过期" in listing, group
        assert "累计发现2条" in two_schools.say("wu_ju", "进度", group=group)


def test_my_own_report_is_not_shown_in_another_schools_group(two_schools: Chat) -> None:
    report_both(two_schools)
    assert "一中灭火器过期" in two_schools.say("zhang_wei", "我的")
    elsewhere = two_schools.say("zhang_wei", "我的", group="s2")
    assert "一中灭火器过期" not in elsewhere and "#1" not in elsewhere
    assert "没有找到隐患 #1" in two_schools.say("zhang_wei", "查看 #1", group="s2")


# -- 隐患 / 检查 / 报送 into another school -------------------------------------------------------------


def test_a_private_report_naming_another_schools_person_is_refused(two_schools: Chat) -> None:
    reply = two_schools.say("zhou_tao", "隐患\n部位：食堂\n问题：燃气管老化\n等级：重大\n责任人：张伟", group=PRIVATE)
    assert "「张伟」不属于您所在的学校" in reply and "没有登记" in reply and "例如：责任人：周涛" in reply
    assert hazards(two_schools) == []
    with two_schools.session() as session:
        assert session.exec(select(DuePush)).all() == []  # no alert to the other school's leaders


def test_a_private_report_naming_another_schools_unit_is_refused(two_schools: Chat) -> None:
    reply = two_schools.say("zhou_tao", "隐患\n部位：食堂\n问题：燃气管老化\n等级：重大\n单位：教务处", group=PRIVATE)
    assert "「教务处」不属于您所在的学校" in reply and "例如：单位：城南小学" in reply
    assert hazards(two_schools) == []


def test_a_private_report_picks_the_namesake_of_the_own_school(two_schools: Chat) -> None:
    reply = two_schools.say("zhou_tao", "隐患\n部位：食堂\n问题：燃气管老化\n等级：重大\n责任人：王建国", group=PRIVATE)
    assert "#1" in reply and "城南小学后勤处" in reply
    (hazard,) = hazards(two_schools)
    assert (hazard.unit_id, hazard.responsible_id) == ("s2_logistics", "wang_jianguo2")
    with two_schools.session() as session:
        alerted = {push.group_id for push in session.exec(select(DuePush).where(DuePush.kind == "major_alert"))}
    assert alerted == {"s2_leaders", "county"}


def test_a_unit_alias_in_a_private_chat_means_the_own_schools_unit(two_schools: Chat) -> None:
    two_schools.say("zhou_tao", "隐患\n部位：车棚\n问题：电线私拉乱接\n单位：总务处", group=PRIVATE)
    assert [h.unit_id for h in hazards(two_schools)] == ["s2_logistics"]
    two_schools.say("zhang_wei", "隐患\n部位：车棚\n问题：电线私拉乱接\n单位：总务处", group=PRIVATE)
    assert [h.unit_id for h in hazards(two_schools)] == ["s2_logistics", "logistics"]


def test_a_report_in_another_schools_group_is_refused(two_schools: Chat) -> None:
    reply = two_schools.say("zhang_wei", SCHOOL1_REPORT, group="s2")
    assert "您的单位不属于本群负责的单位" in reply and "例如：单位：" in reply
    assert hazards(two_schools) == []


def test_a_check_and_a_submission_in_another_schools_group_are_refused(two_schools: Chat) -> None:
    assert "没有记录" in two_schools.say("zhang_wei", "检查\n部位：食堂\n结果：无隐患", group="s2")
    assert "不能在这里报送" in two_schools.say("wang_jianguo", "报送", group="s2")
    with two_schools.session() as session:
        assert session.exec(select(CheckRecord)).all() == []
        assert session.exec(select(Submission)).all() == []


# -- buildings of the hazard's school ------------------------------------------------------------------


def test_each_schools_canteen_gets_its_own_hazards(two_schools: Chat) -> None:
    two_schools.say("zhang_wei", "隐患\n部位：食堂后厨\n问题：一中燃气管老化")
    two_schools.say("zhou_tao", "隐患\n部位：食堂后厨\n问题：城南油烟管积油", group="s2")
    two_schools.say("zhou_tao", "隐患\n部位：3号教学楼\n问题：城南楼梯扶手松动", group=PRIVATE)
    assert [h.building_id for h in hazards(two_schools)] == ["b2", "s2_b2", "s2_b1"]

    two_schools.say("liu_yang", "台账")
    book = load_workbook(BytesIO(two_schools.last[0].file_data or b""))
    rows = [row for row in book["建筑单体汇总"].iter_rows(min_row=5, values_only=True) if row[1] == "食堂"]
    assert len(rows) == 1 and "一中燃气管老化" in str(rows[0]) and "城南" not in str(rows[0])
    assert "城南" not in workbook_text(two_schools)


def test_a_check_records_the_building_of_the_checkers_school(two_schools: Chat) -> None:
    two_schools.say("ma_li", "检查\n部位：餐厅\n结果：无隐患", group=PRIVATE)
    two_schools.say("li_na", "检查\n部位：食堂\n结果：无隐患")
    with two_schools.session() as session:
        records = session.exec(select(CheckRecord).order_by(CheckRecord.id)).all()
    assert [(r.unit_id, r.building_id) for r in records] == [("s2_security", "s2_b2"), ("security", "b2")]


def test_the_school_of_a_unit_is_the_nearest_unit_owning_buildings(two_schools: Chat) -> None:
    with two_schools.session() as session:
        schools = {"school", "school2"}
        assert school_of(session, "logistics", schools) == "school"
        assert school_of(session, "s2_logistics", schools) == "school2"
        assert school_of(session, "bureau", schools) == "bureau"  # above every school: no school of its own
        # A school without buildings is its own top: never widened to the county.
        assert school_of(session, "s2_security", {"school"}) == "school2"
        buildings = [BuildingRef("b2", "school", ("食堂",)), BuildingRef("s2_b2", "school2", ("食堂",))]
        assert find_building(session, "食堂后厨", buildings, unit_id="s2_logistics") == buildings[1]
        assert find_building(session, "食堂后厨", buildings, unit_id="bureau") is None
