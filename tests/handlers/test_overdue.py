"""逾期: the open hazards of my units that are past their deadline (the chat's clock is fixed at 2023-12-05 10:00)."""

from __future__ import annotations

from handlers.overdue import HELP
from tests.school import REPORT, Chat

DUE_TOMORROW = "隐患\n部位：车棚\n问题：电线私拉乱接\n责任人：王建国\n期限：明天"


def test_overdue_lists_only_what_is_past_its_deadline(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)  # due 12-10
    chat.say("zhang_wei", DUE_TOMORROW)  # due 12-06
    chat.advance(days=2)
    reply = chat.say("wang_jianguo", "逾期")
    assert reply.startswith("总务基建处 逾期隐患（共1条，逾期1条，待验收0条）")
    assert "#2 车棚 电线私拉乱接｜王建国｜12-06 已逾期1天" in reply
    assert "#1" not in reply


def test_overdue_without_overdue_items_says_so_politely(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", DUE_TOMORROW)
    assert chat.say("wang_jianguo", "逾期") == "总务基建处 逾期隐患\n目前没有逾期隐患 ✔"
    chat.advance(days=2)
    chat.say("wang_jianguo", "整改 #2 已拆除私拉电线")  # rectified, waiting for acceptance: no longer overdue
    assert "目前没有逾期隐患 ✔" in chat.say("wang_jianguo", "逾期")


def test_overdue_keeps_to_the_senders_units(chat: Chat) -> None:
    chat.say("zhang_wei", DUE_TOMORROW)
    chat.advance(days=2)
    assert "#1" in chat.say("li_na", "逾期")  # the safety officer acts for the whole school
    assert "目前没有逾期隐患 ✔" in chat.say("zhang_wei", "逾期")  # 教务处 has none
    assert "#1" in chat.say("zhao_min", "逾期 单位：总务处")
    assert "没有找到您可查看的单位" in chat.say("wang_jianguo", "逾期 单位：教务处")


def test_overdue_is_not_mistaken_for_a_typo_of_extend(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "逾期")
    assert "延期" not in reply and "没看懂" not in reply


def test_help_lists_overdue_and_explains_it(chat: Chat) -> None:
    assert "· 逾期 —— 本单位已逾期的隐患" in chat.say("zhang_wei", "帮助")
    assert chat.say("zhang_wei", "帮助 逾期") == HELP
