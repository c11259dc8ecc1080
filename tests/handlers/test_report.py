"""隐患: reporting a hazard through the real engine path."""

from __future__ import annotations

import re
from datetime import date

from sqlmodel import select

from handlers.messages import Attachment
from models.tables import AttachmentFile, Hazard, HazardEvent
from tests.school import REPORT, Chat

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_report_numbers_the_hazard_and_echoes_what_was_understood(chat: Chat) -> None:
    reply = chat.say("zhang_wei", REPORT)
    assert "已登记隐患 #1（一般·消防）" in reply
    assert "部位：3号教学楼二楼东侧" in reply
    assert "责任人：王建国（总务基建处）" in reply
    assert "期限：2023-12-10（周日）" in reply
    assert "整改 #1" in reply
    assert chat.last[0].mentions == ("wang_jianguo",)


def test_report_stores_every_ledger_column_and_an_event(chat: Chat) -> None:
    chat.say(
        "zhang_wei",
        "隐患\n部位：食堂操作间\n检查内容：燃气管道\n问题：燃气软管老化\n类别：燃气\n等级：重大\n"
        "责任人：王建国\n期限：2023-12-20\n措施：更换软管并加装报警器\n备注：已临时关阀",
    )
    with chat.session() as session:
        hazard = session.exec(select(Hazard)).one()
        assert (hazard.number, hazard.location, hazard.check_item) == (1, "食堂操作间", "燃气管道")
        assert (hazard.problem, hazard.category, hazard.level) == ("燃气软管老化", "燃气", "重大")
        assert hazard.measure == "更换软管并加装报警器"
        assert hazard.deadline == date(2023, 12, 20)
        assert (hazard.unit_id, hazard.responsible_id, hazard.reporter_id) == ("logistics", "wang_jianguo", "zhang_wei")
        assert hazard.building_id == "b2"
        assert hazard.found_at == chat.now
        events = session.exec(select(HazardEvent)).all()
        assert [(e.action, e.actor_id) for e in events] == [("report", "zhang_wei")]


def test_numbers_increase_per_campaign(chat: Chat) -> None:
    assert "#1" in chat.say("zhang_wei", REPORT)
    assert "#2" in chat.say("chen_jing", "隐患 部位：操场东侧；问题：围墙裂缝")
    assert "可能与 #1 重复" in chat.say("zhang_wei", REPORT)  # the same words again are asked about
    assert "#3" in chat.say("zhang_wei", "新的")


def test_duplicate_check_tells_floors_apart_among_many_open_hazards(chat: Chat) -> None:
    """The numbers are compared before the wording: another floor or room is a new hazard, the same one is asked about."""
    for room in range(101, 111):
        assert "已登记隐患" in chat.say("zhang_wei", f"隐患\n部位：实验楼{room}室\n问题：插座老化冒火花")
    assert "已登记隐患 #11" in chat.say("zhang_wei", "隐患\n部位：实验楼三楼\n问题：插座老化冒火花")
    assert "已登记隐患 #12" in chat.say("zhang_wei", "隐患\n部位：实验楼二楼\n问题：插座老化冒火花")
    assert "可能与 #5 重复（实验楼105室 插座老化冒火花）" in chat.say("zhang_wei", "隐患\n部位：实验楼105室\n问题：插座老化，冒火花")
    assert "可能与 #11 重复" in chat.say("zhang_wei", "隐患\n部位：实验楼3楼\n问题：插座老化冒火花了")


def test_missing_deadline_uses_the_default_for_the_level(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患\n部位：操场\n问题：篮球架松动")
    assert "期限：2023-12-12（周二）（未写期限，按一般隐患默认7天）" in reply
    reply = chat.say("zhang_wei", "隐患\n部位：实验楼\n问题：危化品柜未上锁\n等级：重大")
    assert "2024-01-04" in reply and "默认30天" in reply
    assert "重大隐患" in reply


def test_immediate_fix_defaults_the_deadline_to_today(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患\n部位：图书馆\n问题：应急灯不亮\n立即整改：是")
    assert "期限：2023-12-05（周二）（立即整改）" in reply


def test_category_is_inferred_from_keywords(chat: Chat) -> None:
    assert "（一般·消防）" in chat.say("zhang_wei", "隐患\n部位：1号楼走廊\n问题：灭火器过期")


def test_photo_is_stored_by_content_hash(chat: Chat) -> None:
    reply = chat.say("zhang_wei", REPORT, photos=(Attachment("a.png", "image/png", PNG),))
    assert "照片：1张已保存" in reply
    with chat.session() as session:
        row = session.exec(select(AttachmentFile)).one()
    stored = chat.engine.data_dir / "photos" / row.sha256[:2] / row.sha256
    assert stored.read_bytes() == PNG


def test_unknown_responsible_person_is_asked_about_with_the_closest_names_and_nothing_stored(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患\n部位：操场\n问题：单杠松动\n责任人：王建图")
    assert reply.splitlines()[1] == "没有找到「王建图」。您是想写：王建国（总务基建处）吗？"
    assert "没有登记" in reply and "回复「是」按王建国登记" in reply and len(reply.splitlines()) <= 6
    with chat.session() as session:
        assert session.exec(select(Hazard)).all() == []
        assert session.exec(select(HazardEvent)).all() == []
    assert "已登记隐患 #1" in chat.say("zhang_wei", "隐患\n部位：操场\n问题：单杠松动\n责任人：王建国")


def test_unknown_responsible_person_without_any_close_name_is_refused_too(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患\n部位：操场\n问题：单杠松动\n责任人：马小二")
    assert "没有找到「马小二」" in reply and "没有登记" in reply
    with chat.session() as session:
        assert session.exec(select(Hazard)).all() == []


def test_suggestions_come_from_the_reporters_school_only(chat: Chat) -> None:
    reply = chat.say("zhou_tao", "隐患\n部位：食堂\n问题：灭火器过期\n责任人：张卫", group="s2")
    assert "张伟" not in reply  # 张伟 teaches at another school


def test_unknown_unit_is_refused_and_nothing_stored(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患\n部位：操场\n问题：单杠松动\n单位：火星部")
    assert "没有找到单位「火星部」" in reply and "例如" in reply
    with chat.session() as session:
        assert session.exec(select(Hazard)).all() == []


def test_unit_alias_is_understood(chat: Chat) -> None:
    chat.say("zhang_wei", "隐患\n部位：车棚\n问题：电线私拉乱接\n单位：后勤")
    with chat.session() as session:
        assert session.exec(select(Hazard)).one().unit_id == "logistics"


def test_a_unit_of_another_school_cannot_be_reported_in_this_group(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患\n部位：操场\n问题：单杠松动\n单位：城南小学")
    assert "「城南小学」不属于本群负责的单位" in reply and "例如：单位：教务处" in reply
    with chat.session() as session:
        assert session.exec(select(Hazard)).all() == []


def test_malformed_report_gets_an_error_with_the_template_and_stores_nothing(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患\n部位：3号教学楼")
    assert "问题" in reply and "正确写法" in reply and "部位：3号教学楼二楼东侧" in reply
    with chat.session() as session:
        assert session.exec(select(Hazard)).all() == []


def test_unknown_person_is_asked_to_be_added_by_the_admin(chat: Chat) -> None:
    reply = chat.say("stranger", REPORT)
    assert "不在安全助手的人员名单里" in reply and "刘洋" in reply


def test_a_retried_platform_message_is_handled_once(chat: Chat) -> None:
    assert "#1" in chat.say("zhang_wei", REPORT, msg_id="same")
    assert chat.say("zhang_wei", REPORT, msg_id="same") == ""
    with chat.session() as session:
        assert len(session.exec(select(Hazard)).all()) == 1


def test_a_report_with_thousands_of_mistakes_gets_one_short_reply(chat: Chat) -> None:
    # Each unknown key is its own error; listing them all once made a reply of hundreds of messages.
    keys = "\n".join(f"杂{chr(0x4E00 + i)}：x" for i in range(3000))
    reply = chat.say("zhang_wei", f"隐患\n部位：食堂\n问题：插座老化\n{keys}")
    errors = [line for line in reply.splitlines() if line.startswith("不认识的字段")]
    assert len(errors) == 5 and errors[0].startswith("不认识的字段「杂一」")
    left_out = re.search(r"……另有 (\d+) 条未显示，请先改正以上几处，再重新发送。", reply)
    assert left_out is not None and 2000 < int(left_out[1]) < 3000  # distinct mistakes beyond the first five
    assert "正确写法：" in reply and len(reply.encode("utf-8")) < 4000
    with chat.session() as session:
        assert session.exec(select(Hazard)).first() is None


def test_the_same_mistake_a_thousand_times_is_listed_once(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患 部位：食堂 问题：插座老化 " + " ".join("部位：x" for _ in range(1000)))
    assert reply.count("「部位」写了两次") == 1 and "未显示" not in reply


def test_a_deadline_after_the_campaign_ends_is_refused_with_the_end_date_and_nothing_stored(chat: Chat) -> None:
    # Campaign c1 runs 2023-11-21 … 2024-05-10 (tests/school.py); a deadline in 9999 would never fall due.
    reply = chat.say("zhang_wei", "隐患\n部位：操场\n问题：篮球架松动\n期限：9999年12月31日")
    assert "期限 9999-12-31 晚于本次排查整治的结束日期 2024-05-10" in reply
    assert "请写 2024-05-10 或之前的日期，例如：期限：2024年5月10日" in reply
    with chat.session() as session:
        assert session.exec(select(Hazard)).all() == []
    assert "晚于" in chat.say("zhang_wei", "隐患\n部位：操场\n问题：篮球架松动\n期限：2024年5月11日")
    # The example in the refusal is accepted: the campaign's last day is the latest deadline.
    reply = chat.say("zhang_wei", "隐患\n部位：操场\n问题：篮球架松动\n期限：2024年5月10日")
    assert "已登记隐患 #1" in reply and "期限：2024-05-10" in reply


def test_after_the_campaign_ended_a_written_deadline_is_refused(chat: Chat) -> None:
    chat.now = chat.now.replace(year=2024, month=6, day=1)
    reply = chat.say("zhang_wei", "隐患\n部位：操场\n问题：篮球架松动\n期限：6月5日")
    assert "本次排查整治已于 2024-05-10 结束" in reply and "例如" in reply
    with chat.session() as session:
        assert session.exec(select(Hazard)).all() == []
