"""Teachers as they really write: plain reports, copula forms, plain lifecycle words, questions, chit-chat."""

from __future__ import annotations

from sqlmodel import select

from models.tables import Hazard
from tests.school import REPORT, Chat


def hazards(chat: Chat) -> list[Hazard]:
    with chat.session() as session:
        return list(session.exec(select(Hazard).order_by(Hazard.number)))


def test_plain_report_with_a_known_person_is_stored_field_by_field(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "三楼东侧灭火器过期了，王建国负责，周五前弄好")
    assert "已登记隐患 #1" in reply and "按您的原话理解" in reply
    (hazard,) = hazards(chat)
    assert (hazard.location, hazard.problem, hazard.responsible_name) == ("三楼东侧", "灭火器过期", "王建国")
    assert hazard.deadline.isoformat() == "2023-12-08"
    assert hazard.category == "消防"


def test_plain_report_with_an_unknown_person_is_shown_back_not_stored(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患 三楼东侧灭火器过期了 王建图负责 周五前弄好")
    assert hazards(chat) == []
    assert len(reply.splitlines()) <= 6
    assert "「王建图」" in reply and "王建国" in reply and "没有登记" in reply
    assert reply.splitlines()[0] == "我理解的是：部位「三楼东侧」，问题「灭火器过期」，责任人「王建图」，期限12月8日。"
    assert "已登记隐患 #1" in chat.say("zhang_wei", "是")
    (hazard,) = hazards(chat)
    assert (hazard.responsible_id, hazard.deadline.isoformat()) == ("wang_jianguo", "2023-12-08")


def test_plain_report_without_a_place_asks_for_it(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患 灭火器过期了")
    assert hazards(chat) == []
    assert "部位" in reply and len(reply.splitlines()) <= 6
    assert "问题「灭火器过期」" in reply
    assert "已登记隐患 #1" in chat.say("zhang_wei", "三楼东侧")
    assert (hazards(chat)[0].location, hazards(chat)[0].problem) == ("三楼东侧", "灭火器过期")


def test_plain_report_deadline_after_the_campaign_is_a_doubt(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "三楼东侧灭火器过期了，2024年6月1日前弄好")
    assert hazards(chat) == []
    assert "晚于本次排查整治的结束日期" in reply


def test_copula_form_keeps_values_without_the_copula(chat: Chat) -> None:
    assert "已登记隐患 #1" in chat.say("zhang_wei", "隐患，部位是图书馆二楼，问题是书架不稳，责任人是王建国")
    (hazard,) = hazards(chat)
    assert (hazard.location, hazard.problem, hazard.responsible_name) == ("图书馆二楼", "书架不稳", "王建国")


def test_dictation_with_glued_keys(chat: Chat) -> None:
    assert "已登记隐患 #1" in chat.say("zhang_wei", "隐患部位二号楼一楼男厕所问题插座冒烟了")
    (hazard,) = hazards(chat)
    assert (hazard.location, hazard.problem) == ("二号楼一楼男厕所", "插座冒烟了")


def test_chitchat_gets_one_friendly_line_and_no_hazard(chat: Chat) -> None:
    for text in ("谢谢", "收到", "好的", "辛苦了", "👍", "ok", "收到！"):
        reply = chat.say("zhang_wei", text)
        assert reply.count("\n") == 0 and "隐患" in reply and "部位" not in reply, text
    assert hazards(chat) == []


def test_lifecycle_in_plain_words(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "已报整改" in chat.say("wang_jianguo", "#1 修好了")
    assert "退回整改" in chat.say("li_na", "#1 验收不合格 还有杂物")
    assert hazards(chat)[0].status == "rectifying"
    assert "已报整改" in chat.say("wang_jianguo", "1号隐患整改完成")
    chat.say("li_na", "#1 验收合格")
    assert hazards(chat)[0].status == "closed"
    assert "隐患 #1" in chat.say("zhang_wei", "看看#1")


def test_plain_extend_and_withdraw(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", "新的")  # the same words again: asked whether it repeats #1
    chat.say("wang_jianguo", "#1 延期到月底 等配件")
    assert hazards(chat)[0].deadline.isoformat() == "2023-12-31"
    chat.say("zhang_wei", "#2 报错了 撤销")
    assert hazards(chat)[1].status == "withdrawn"


def test_leaders_questions_filter_the_list(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", "隐患\n部位：配电房\n问题：电缆沟积水\n等级：重大\n责任人：王建国")
    chat.say("zhang_wei", "隐患\n部位：车棚\n问题：电线私拉乱接\n责任人：王建国\n期限：明天")
    for question in ("重大", "重大隐患"):
        major = chat.say("zhao_min", question)
        assert "#2" in major and "#1" not in major and "#3" not in major, question
    chat.say("wang_jianguo", "整改 #1 已清理")
    waiting = chat.say("zhao_min", "待验收")
    assert "#1" in waiting and "#2" not in waiting
    chat.advance(days=2)
    overdue = chat.say("zhao_min", "清单 逾期")
    assert "#3" in overdue and "#2" not in overdue
    assert "#3" in chat.say("zhao_min", "逾期 总务处")
    assert "#3" not in chat.say("zhao_min", "逾期 教务处")


def test_list_names_a_unit_without_its_key(chat: Chat) -> None:
    reply = chat.say("zhao_min", "清单 城关一中")
    assert reply.startswith("城关一中 未销号隐患")


def test_replies_to_mistakes_are_short(chat: Chat) -> None:
    for text in ("明天开会", "隐患", "整改", "延期 #1", "隐患 部位：三楼", "隐患\n部位：三楼\n问提：坏了", "退回 #1"):
        reply = chat.say("zhang_wei", text)
        assert len(reply.splitlines()) <= 8, (text, reply)


def test_plain_words_that_name_no_defect_are_asked_back(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "三楼会议室开会")
    assert hazards(chat) == [] and "没看出这是不是隐患" in reply and len(reply.splitlines()) <= 6


def test_plain_report_with_a_past_deadline_is_asked_back(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "三楼东侧灭火器过期了，本周一前弄好")  # the clock stands on Tuesday 2023-12-05
    assert hazards(chat) == [] and "期限已经过去了（2023-12-04（周一））" in reply
    assert "请直接回复 2024-05-10 或之前的新期限，例如：12月12日" in reply and len(reply.splitlines()) <= 6
    assert "已登记隐患 #1" in chat.say("zhang_wei", "12月20日")
    assert hazards(chat)[0].deadline.isoformat() == "2023-12-20"
