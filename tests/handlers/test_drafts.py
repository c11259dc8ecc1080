"""Drafts of doubtful reports: what settles them, what does not, and who they belong to (see handlers/drafts.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlmodel import select

from handlers.parser import parse_message
from models.tables import Hazard, ReportDraft
from tests.school import START, Chat, make_config, start_engine

TYPO = "隐患\n部位：操场\n问题：单杠松动\n责任人：王建图"


def hazards(chat: Chat) -> list[Hazard]:
    with chat.session() as session:
        return list(session.exec(select(Hazard).order_by(Hazard.number)))  # type: ignore[arg-type]


def drafts(chat: Chat) -> list[ReportDraft]:
    with chat.session() as session:
        return list(session.exec(select(ReportDraft)))


def test_confirm_or_cancel_without_a_draft_gets_one_short_line(chat: Chat) -> None:
    for word in ("确认", "是", "取消", "新的", "同 #3"):
        reply = chat.say("zhang_wei", word)
        assert reply == "现在没有等您确认的隐患。要上报请发：隐患 部位：…，问题：…", word
        assert "正确写法" not in reply


def test_words_that_only_count_alone_do_not_swallow_longer_messages() -> None:
    today = date(2023, 12, 5)
    assert parse_message("是否需要整改", today=today).command != "confirm"
    assert parse_message("同学们注意安全", today=today).command != "same"
    assert parse_message("确认销号 #3", today=today).command == "close"
    assert parse_message("同", today=today).errors == ["请写上隐患编号，例如：同 #23"]
    assert "「是」" not in " ".join(parse_message("是否", today=today).errors)  # no typo hint towards 是


def test_a_keyed_correction_settles_the_person(chat: Chat) -> None:
    chat.say("zhang_wei", TYPO)
    reply = chat.say("zhang_wei", "责任人：徐强")
    assert reply.startswith("已登记隐患 #1") and "责任人：徐强（总务基建处）" in reply
    assert drafts(chat) == []


def test_an_answer_that_is_no_name_asks_again_and_keeps_the_draft(chat: Chat) -> None:
    chat.say("zhang_wei", TYPO)
    reply = chat.say("zhang_wei", "这个我也不清楚到底是谁负责的")
    assert reply.startswith("没看懂「这个我也不清楚到底是谁负责的」是谁。") and "王建国" in reply
    assert hazards(chat) == [] and len(drafts(chat)) == 1


def test_a_name_still_unknown_is_asked_again(chat: Chat) -> None:
    chat.say("zhang_wei", TYPO)
    reply = chat.say("zhang_wei", "马小二")
    assert "没有找到「马小二」" in reply and "没有登记" in reply and hazards(chat) == []


def test_a_new_report_replaces_the_senders_earlier_draft(chat: Chat) -> None:
    chat.say("zhang_wei", TYPO)
    chat.say("zhang_wei", "隐患\n部位：车棚\n问题：电线私拉乱接\n责任人：王建图")
    assert len(drafts(chat)) == 1
    chat.say("zhang_wei", "是")
    assert [h.location for h in hazards(chat)] == ["车棚"]


def test_other_commands_go_on_while_a_draft_waits(chat: Chat) -> None:
    chat.say("zhang_wei", TYPO)
    assert "#" not in chat.say("zhang_wei", "我的")  # answered as 我的 (nothing open yet), not as an answer
    assert len(drafts(chat)) == 1
    assert chat.say("zhang_wei", "是").startswith("已登记隐患 #1")


def test_the_draft_minutes_are_configurable(tmp_path: Path) -> None:
    engine = start_engine(make_config(intake={"draft_minutes": 5}), tmp_path)
    chat = Chat(engine, START)
    reply = chat.say("zhang_wei", TYPO)
    assert reply.endswith("这条还没有登记，5分钟内回复有效。")
    chat.advance(minutes=6)
    assert chat.say("zhang_wei", "是") == "刚才的隐患超过5分钟没有确认，已作废、没有登记，请重新发送。"
    engine.db.dispose()


def test_plain_words_that_may_be_no_hazard_are_stored_on_confirm(chat: Chat) -> None:
    assert "没看出这是不是隐患" in chat.say("zhang_wei", "三楼会议室开会")
    assert chat.say("zhang_wei", "确认").startswith("已登记隐患 #1")


def test_several_hazards_with_one_doubt_register_the_rest_and_ask_about_it(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患\n① 图书馆二楼灭火器过期\n② 车棚电线私拉乱接，马小二负责")
    assert "2. 车棚 电线私拉乱接（责任人马小二） —— 没有找到「马小二」" in reply
    reply = chat.say("zhang_wei", "确认")
    assert reply.startswith("已登记隐患 #1") and "没有找到「马小二」" in reply
    assert [h.location for h in hazards(chat)] == ["图书馆二楼"]
    assert chat.say("zhang_wei", "王建国").startswith("已登记隐患 #2")
    assert drafts(chat) == []


def test_one_per_line_with_place_and_problem_each_is_several_hazards(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "图书馆二楼灭火器过期\n车棚电线私拉乱接\n食堂后门插座松动")
    assert reply.startswith("这条消息里有3条隐患") and hazards(chat) == []
    assert chat.say("zhang_wei", "取消") == "好的，已取消，这3条隐患没有登记。"


def test_same_names_an_open_hazard_the_chat_can_see(chat: Chat) -> None:
    chat.say("zhang_wei", "隐患\n部位：食堂操作间\n问题：燃气软管老化\n责任人：王建国")
    assert "可能与 #1 重复" in chat.say("chen_jing", "隐患\n部位：食堂操作间\n问题：燃气软管老化了")
    assert chat.say("chen_jing", "同 #9").startswith("没有找到隐患 #9")
    chat.say("zhou_tao", "隐患\n部位：教学楼\n问题：灭火器过期", group="s2")  # #2, another school
    assert chat.say("chen_jing", "同 #2").startswith("没有找到隐患 #2")
    assert "已补充到隐患 #1" in chat.say("chen_jing", "同 #1")
    assert len(hazards(chat)) == 2


def test_an_unknown_owner_may_be_left_out_and_the_unit_takes_it(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "隐患\n部位：操场\n问题：单杠松动\n责任人：马小二\n单位：总务处")
    assert "（不确定可回复「不写」）" in reply
    reply = chat.say("zhang_wei", "不写")
    assert reply.startswith("已登记隐患 #1") and "责任人：未指定（总务基建处）" in reply


def test_a_photo_sent_with_the_answer_comes_with_the_hazard(chat: Chat) -> None:
    from handlers.messages import Attachment

    chat.say("zhang_wei", TYPO)
    reply = chat.say("zhang_wei", "是", photos=(Attachment("a.jpg", "image/jpeg", b"\xff\xd8\xff" + b"a" * 30),))
    assert reply.startswith("已登记隐患 #1") and "照片：1张已保存" in reply and "收到1张照片" not in reply


def test_a_report_sent_again_in_full_replaces_the_draft(chat: Chat) -> None:
    chat.say("zhang_wei", TYPO)
    reply = chat.say("zhang_wei", "隐患\n部位：操场\n问题：单杠松动\n责任人：王建国")
    assert reply.startswith("已登记隐患 #1") and reply.endswith("（刚才等您确认的那条已作废。）")
    assert drafts(chat) == []
    assert chat.say("zhang_wei", "是").startswith("现在没有等您确认的隐患")


def test_an_ambiguous_owner_is_asked_about_by_unit(two_schools: Chat) -> None:
    chat = two_schools  # the county's leaders' group serves both schools, each with a 王建国
    reply = chat.say("wu_ju", "隐患\n部位：食堂\n问题：灭火器过期\n责任人：王建国", group="county")
    assert "有2位「王建国」：王建国（总务基建处）、王建国（城南小学后勤处）。" in reply and hazards(chat) == []
    reply = chat.say("wu_ju", "单位：城南小学后勤处", group="county")
    assert reply.startswith("已登记隐患 城南小学#1") and "责任人：王建国（城南小学后勤处）" in reply
    assert hazards(chat)[0].responsible_id == "wang_jianguo2"
