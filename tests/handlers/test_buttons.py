"""Card buttons (issue 15): the replies that lead to an action carry the commands they lead to."""

from __future__ import annotations

from pathlib import Path

from handlers.buttons import hazard_buttons, overdue_buttons
from handlers.messages import Button
from tests.school import REPORT, START, Chat, make_config, start_engine


def _buttons(chat: Chat) -> list[tuple[str, str]]:
    return [(b.label, b.command) for reply in chat.last for b in reply.buttons]


def test_report_fix_and_overdue_replies_carry_their_next_commands(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert _buttons(chat) == [("整改", "整改 #1"), ("查看照片", "查看 #1"), ("转交", "转交 #1")]
    chat.advance(days=30)
    assert "逾期" in chat.say("wang_jianguo", "逾期")
    assert _buttons(chat) == [("进展", "进展 #1"), ("申请延期", "延期 #1")]
    chat.say("wang_jianguo", "整改 #1 已清理通道")
    assert _buttons(chat) == [("销号", "销号 #1"), ("退回", "退回 #1")]
    assert "退回原因" in chat.say("li_na", "退回 #1")  # the 退回 button asks for the reason, changes nothing
    assert _buttons(chat) == []


def test_refusals_and_lists_without_overdue_items_carry_no_buttons(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", "逾期")
    assert _buttons(chat) == []
    chat.say("zhang_wei", "销号 #1")
    assert _buttons(chat) == []


def test_several_overdue_items_name_their_numbers_and_stop_at_six_buttons() -> None:
    buttons = overdue_buttons([f"#{n}" for n in range(1, 6)])
    assert len(buttons) == 6 and buttons[0] == Button("进展 #1", "进展 #1") and buttons[-1] == Button("延期 #3", "延期 #3")
    assert hazard_buttons("城南小学#12")[0] == Button("整改", "整改 城南小学#12")


def _page(chat: Chat, person_id: str, *, verify_by_other: bool = True) -> list[str]:
    from handlers.buttons import page_buttons
    from models.tables import Hazard, PersonRow

    with chat.session() as session:
        hazard = session.get(Hazard, 1)
        person = session.get(PersonRow, person_id)
        assert hazard is not None and person is not None
        return [b.label for b in page_buttons(session, person, hazard, "#1", verify_by_other=verify_by_other)]


def test_the_hazard_page_offers_each_person_the_buttons_their_role_and_the_state_allow(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)  # a teacher finds it; 王建国 (a unit head) answers for it
    assert _page(chat, "zhang_wei") == ["整改", "进展"]  # the finder may report the fix, not close it unfixed
    assert _page(chat, "wang_jianguo") == ["整改", "进展", "申请延期", "转交"]  # no 销号 of his own task
    assert _page(chat, "li_na") == ["整改", "进展", "转交", "验收销号"]  # a safety officer may close it seen fixed
    assert _page(chat, "chen_jing") == []
    chat.say("wang_jianguo", "整改 #1 已清理通道")
    assert _page(chat, "wang_jianguo") == ["进展"]  # he fixed it: someone else verifies
    assert _page(chat, "zhang_wei")[:2] == ["验收销号", "退回"]  # the finder verifies
    assert _page(chat, "li_na")[:2] == ["验收销号", "退回"]
    assert "销号" in chat.say("li_na", "销号 #1")
    assert _page(chat, "li_na") == [] and _page(chat, "zhang_wei") == []


def test_the_page_offers_verification_by_the_same_rule_as_the_command(chat: Chat, tmp_path: Path) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("zhang_wei", "整改 #1 已清理通道")  # the finder reported the fix himself: someone else verifies it
    assert "验收销号" not in _page(chat, "zhang_wei")
    assert "不能自己验收销号" in chat.say("zhang_wei", "销号 #1")  # what the button would have led to
    assert "验收销号" not in _page(chat, "wang_jianguo")  # he answers for it
    assert _page(chat, "li_na")[:2] == ["验收销号", "退回"]

    # A school that lets whoever fixed it verify it: the command allows it, so the page offers it.
    engine = start_engine(make_config(policy={"verify_by_other": False}), tmp_path / "self")
    try:
        own = Chat(engine, START)
        own.say("zhang_wei", REPORT)
        own.say("wang_jianguo", "整改 #1 已清理通道")
        assert _page(own, "wang_jianguo", verify_by_other=False)[:2] == ["验收销号", "退回"]
        assert "已销号" in own.say("wang_jianguo", "销号 #1")
    finally:
        engine.db.dispose()
