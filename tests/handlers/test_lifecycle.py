"""整改 → 销号 / 退回, 进展, 延期, 撤销, with who may do which step."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bot.config import ConfigError
from bot.engine import Engine
from handlers.messages import Attachment
from models.clock import FixedClock
from models.db import make_engine
from models.tables import Hazard, HazardEvent
from tests.school import REPORT, TZ, Chat, make_config

START = datetime(2023, 12, 5, 10, 0, tzinfo=TZ)


def _hazard(chat: Chat) -> Hazard:
    with chat.session() as session:
        return session.exec(select(Hazard).where(Hazard.number == 1)).one()


def _actions(chat: Chat) -> list[tuple[str, str, str | None, str | None]]:
    with chat.session() as session:
        return [(e.action, e.actor_id, e.from_status, e.to_status) for e in session.exec(select(HazardEvent).order_by(HazardEvent.id))]


def test_full_closed_loop_report_rectify_close(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.advance(days=1)
    reply = chat.say("wang_jianguo", "整改 #1 已清理通道")
    assert "隐患 #1 已报整改，待验收" in reply and "销号 #1" in reply
    assert chat.last[0].mentions == ("zhang_wei",)
    chat.advance(hours=2)
    reply = chat.say("zhang_wei", "销号 #1")
    assert "隐患 #1 已销号" in reply and "张伟" in reply
    hazard = _hazard(chat)
    assert hazard.status == "closed" and hazard.completion == "已清理通道"
    assert hazard.closed_at == chat.now
    assert _actions(chat) == [
        ("report", "zhang_wei", "rectifying", "rectifying"),
        ("rectify", "wang_jianguo", "rectifying", "rectified"),
        ("close", "zhang_wei", "rectified", "closed"),
    ]


def test_reject_sends_it_back_with_a_reason(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("wang_jianguo", "整改 #1 已清理")
    reply = chat.say("li_na", "退回 #1 仍有纸箱")
    assert "验收未通过，已退回整改" in reply and "原因：仍有纸箱" in reply
    assert _hazard(chat).status == "rectifying"
    assert "需要退回" in chat.say("li_na", "退回 #1 还是不行")
    assert "原因" in chat.say("li_na", "退回 #1")


def test_finder_cannot_close_before_rectification_but_safety_officer_can(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "还没有报整改" in chat.say("zhang_wei", "销号 #1")
    assert _hazard(chat).status == "rectifying"
    reply = chat.say("li_na", "验收 #1")
    assert "已销号" in reply
    assert _hazard(chat).status == "closed"


def test_a_teacher_who_is_neither_finder_nor_verifier_cannot_close(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("wang_jianguo", "整改 #1 好了")
    assert "您没有销号权限" in chat.say("xu_qiang", "销号 #1")
    assert "您没有销号权限" in chat.say("chen_jing", "销号 #1")
    assert _hazard(chat).status == "rectified"
    assert "已销号" in chat.say("zhao_min", "销号 #1")


def test_closed_hazard_cannot_be_changed_again(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("li_na", "销号 #1")
    assert "已于 2023-12-05 销号" in chat.say("wang_jianguo", "整改 #1 再次清理")
    assert "已于" in chat.say("li_na", "销号 #1")


def test_progress_notes_go_into_the_history(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    reply = chat.say("wang_jianguo", "进展 #1 已联系后勤")
    assert "已记录隐患 #1 的进展" in reply and "还剩5天" in reply
    assert "已联系后勤" in chat.say("zhang_wei", "查看 #1")
    assert "进展" in chat.say("zhang_wei", "进展 #1") or "说明" in chat.say("zhang_wei", "进展 #1")


def test_extend_is_for_unit_heads_and_leaders_only(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "只有部门负责人或校领导可以延期" in chat.say("zhang_wei", "延期 #1 12月20日 等待配件")
    assert "只有部门负责人或校领导可以延期" in chat.say("li_na", "延期 #1 12月20日 等待配件")
    reply = chat.say("wang_jianguo", "延期 #1 12月20日 等待配件")
    assert "2023-12-10（周日） → 2023-12-20（周三）" in reply and "原因：等待配件" in reply
    assert _hazard(chat).deadline == date(2023, 12, 20)
    assert "2023-12-25" in chat.say("zhao_min", "延期 #1 12月25日")
    with chat.session() as session:
        details = [e.detail for e in session.exec(select(HazardEvent).where(HazardEvent.action == "extend"))]
    assert details == ["期限 2023-12-10 → 2023-12-20；等待配件", "期限 2023-12-20 → 2023-12-25"]


def test_extend_beyond_the_campaign_end_is_refused_with_the_end_date(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    reply = chat.say("wang_jianguo", "延期 #1 9999年12月31日 等待配件")
    assert "期限 9999-12-31 晚于本次排查整治的结束日期 2024-05-10" in reply
    assert "例如：延期 #1 2024年5月10日 等待配件" in reply
    assert _hazard(chat).deadline == date(2023, 12, 10)
    # Someone who may not extend still hears that first, whatever the date.
    assert "只有部门负责人或校领导可以延期" in chat.say("zhang_wei", "延期 #1 9999年12月31日")
    reply = chat.say("wang_jianguo", "延期 #1 2024年5月10日 等待配件")
    assert "→ 2024-05-10" in reply
    assert _hazard(chat).deadline == date(2024, 5, 10)


def test_extend_needs_a_date(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    reply = chat.say("wang_jianguo", "延期 #1 等待配件")
    assert "日期" in reply or "期限" in reply
    assert _hazard(chat).deadline == date(2023, 12, 10)


def test_withdraw_by_the_reporter_soon_after_or_by_an_admin(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "只有上报人或管理员" in chat.say("chen_jing", "撤销 #1")
    chat.advance(minutes=10)
    assert "已撤销" in chat.say("zhang_wei", "撤销 #1")
    assert _hazard(chat).status == "withdrawn"
    chat.say("zhang_wei", REPORT)
    chat.advance(hours=1)
    assert "超过30分钟" in chat.say("zhang_wei", "撤销 #2")
    assert "已撤销" in chat.say("liu_yang", "撤销 #2")


def test_unknown_number_is_answered_politely(chat: Chat) -> None:
    assert "没有找到隐患 #99" in chat.say("li_na", "销号 #99")


def test_another_schools_hazard_is_invisible(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "没有找到隐患 #1" in chat.say("sun_li", "查看 #1", group="s2")
    assert "没有找到隐患 #1" in chat.say("sun_li", "销号 #1", group="s2")
    assert "没有找到隐患 #1" in chat.say("zhou_tao", "整改 #1 已清理", group="s2")
    assert _hazard(chat).status == "rectifying"


def test_rectify_with_photo_records_it(chat: Chat) -> None:
    from handlers.messages import Attachment

    chat.say("zhang_wei", REPORT)
    reply = chat.say("wang_jianguo", "整改 #1", photos=(Attachment("fix.jpg", "image/jpeg", b"\xff\xd8\xff" + b"1" * 50),))
    assert "照片：1张已保存" in reply and "说明：已整改" in reply


def test_reopen_is_admin_only_and_keeps_the_history(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("li_na", "销号 #1")
    assert "重开只能由管理员操作" in chat.say("zhao_min", "重开 #1 没有整改照片")
    assert "重开只能由管理员操作" in chat.say("li_na", "重开 #1 没有整改照片")
    assert _hazard(chat).status == "closed"
    reply = chat.say("liu_yang", "重开 #1 没有整改照片")
    assert "隐患 #1 已重开，回到整改中" in reply and "原因：没有整改照片" in reply
    hazard = _hazard(chat)
    assert hazard.status == "rectifying" and hazard.closed_at is None
    assert [a[0] for a in _actions(chat)] == ["report", "close", "reopen"]
    assert "原因" in chat.say("liu_yang", "重开 #1")
    assert "不需要重开" in chat.say("liu_yang", "重开 #1 再开一次")


# -- verification by someone else, after-photos, leader override -------------------------------------------

FIX_PHOTO = Attachment("fix.jpg", "image/jpeg", b"\xff\xd8\xff" + b"2" * 50)
MAJOR_REPORT = "隐患\n部位：食堂操作间\n问题：燃气软管老化\n等级：重大\n责任人：王建国"


def _close_details(chat: Chat) -> list[str]:
    with chat.session() as session:
        return [e.detail for e in session.exec(select(HazardEvent).where(HazardEvent.action == "close"))]


def test_the_finder_who_fixed_it_cannot_close_it_nor_can_the_responsible_person(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert "下一步：请安全员、部门负责人或校领导现场验收" in chat.say("zhang_wei", "整改 #1 已清理")
    reply = chat.say("zhang_wei", "销号 #1")
    assert reply == "整改人不能自己验收销号。请单位负责人、安全员或校领导现场验收后发「销号 #1」。"
    reply = chat.say("wang_jianguo", "验收 #1")
    assert reply.startswith("责任人不能自己验收销号。") and "销号 #1" in reply
    assert _hazard(chat).status == "rectified" and _close_details(chat) == []
    assert "已销号" in chat.say("li_na", "销号 #1")
    assert _hazard(chat).status == "closed"


def test_the_responsible_person_cannot_close_their_own_fix(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("wang_jianguo", "整改 #1 已清理通道")
    reply = chat.say("wang_jianguo", "销号 #1")
    assert reply == "整改人不能自己验收销号。请发现人张伟、单位负责人、安全员或校领导现场验收后发「销号 #1」。"
    assert _hazard(chat).status == "rectified"
    assert "已销号" in chat.say("zhang_wei", "销号 #1")


def test_a_head_cannot_close_straight_from_rectifying_what_they_are_responsible_for(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    assert chat.say("wang_jianguo", "销号 #1").startswith("责任人不能自己验收销号。")
    assert _hazard(chat).status == "rectifying"
    assert "已销号" in chat.say("li_na", "销号 #1")


def test_a_leader_may_close_their_own_fix_and_the_history_says_so(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT.replace("王建国", "赵敏"))
    chat.say("zhao_min", "整改 #1 已清理通道")
    chat.advance(hours=1)
    reply = chat.say("zhao_min", "销号 #1")
    assert "隐患 #1 已销号 ✔" in reply and "验收人：赵敏（领导直接销号：本人整改），2023-12-05 11:00" in reply
    assert _close_details(chat) == ["验收通过（领导直接销号：本人整改）"]
    assert "赵敏 销号 验收通过（领导直接销号：本人整改）" in chat.say("zhang_wei", "查看 #1")


def test_a_major_fix_without_photo_is_refused_and_nothing_is_stored(chat: Chat) -> None:
    chat.say("zhang_wei", MAJOR_REPORT)
    reply = chat.say("wang_jianguo", "整改 #1 已更换燃气软管")
    assert reply == (
        "重大隐患报整改必须附整改后的照片，这条没有登记。请在同一条消息里附上照片重新发送，"
        "例如：整改 #1 已更换燃气软管（附照片）"
    )
    hazard = _hazard(chat)
    assert hazard.status == "rectifying" and hazard.completion == "" and hazard.rectified_at is None
    assert [a[0] for a in _actions(chat)] == ["report"]
    reply = chat.say("wang_jianguo", "整改 #1 已更换燃气软管", photos=(FIX_PHOTO,))
    assert "隐患 #1 已报整改，待验收" in reply and "照片：1张已保存" in reply
    assert "已销号" in chat.say("li_na", "销号 #1")
    assert _close_details(chat) == ["验收通过"]


def test_a_general_fix_needs_no_photo_by_default(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    reply = chat.say("wang_jianguo", "整改 #1 已清理通道")
    assert "已报整改" in reply and "建议补一张整改后的照片" in reply


def test_closing_a_major_hazard_on_site_needs_a_photo_unless_a_leader_overrides(chat: Chat) -> None:
    chat.say("zhang_wei", MAJOR_REPORT)
    chat.say("zhang_wei", MAJOR_REPORT)
    chat.say("zhang_wei", "新的")  # the same words again are asked about first
    reply = chat.say("li_na", "销号 #1")
    assert reply.startswith("重大隐患销号需要整改后的照片。") and "附现场照片发「销号 #1」" in reply
    assert _hazard(chat).status == "rectifying"
    assert "已销号" in chat.say("li_na", "销号 #1 现场已更换", photos=(FIX_PHOTO,))
    reply = chat.say("zhao_min", "销号 #2")
    assert "验收人：赵敏（领导直接销号：无整改照片）" in reply
    assert _close_details(chat) == ["现场已更换", "现场验收通过（未经报整改直接销号）（领导直接销号：无整改照片）"]


def test_the_close_reply_names_finder_rectifier_and_verifier(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("xu_qiang", "整改 #1 已清理通道")
    chat.advance(hours=3)
    reply = chat.say("li_na", "销号 #1")
    assert reply == (
        "隐患 #1 已销号 ✔\n3号教学楼二楼东侧 消防通道堆放杂物\n"
        "发现人：张伟\n整改人：徐强\n验收人：李娜，2023-12-05 13:00"
    )
    chat.say("zhang_wei", REPORT)
    reply = chat.say("li_na", "销号 #2")
    assert "发现人：张伟\n整改人：王建国（未报整改，现场验收）\n验收人：李娜" in reply


def test_the_policy_can_require_photos_for_all_levels_and_allow_self_verification(tmp_path: Path) -> None:
    config = make_config(policy={"withdraw_minutes": 30, "verify_by_other": False, "photo_required": "all"})
    db = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    engine = Engine(config=config, db=db, data_dir=tmp_path / "data", clock=FixedClock(START))
    engine.start()
    try:
        chat = Chat(engine, START)
        chat.say("zhang_wei", REPORT)
        assert chat.say("wang_jianguo", "整改 #1 已清理").startswith("一般隐患报整改必须附整改后的照片")
        assert "已报整改" in chat.say("wang_jianguo", "整改 #1 已清理", photos=(FIX_PHOTO,))
        assert "验收人：王建国，2023-12-05 10:00" in chat.say("wang_jianguo", "销号 #1")
    finally:
        db.dispose()


def test_photo_required_must_name_levels() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(policy={"photo_required": ["严重"]})
    assert caught.value.problems == ["policy.photo_required[0]: unknown value '严重'; use one of '一般' or '重大'"]


def test_photos_that_meet_a_full_disk_are_reported_as_not_saved_yet_and_the_steps_still_count(chat: Chat) -> None:
    from handlers.messages import Attachment
    from tests.fakes.full_disk import FullDisk

    chat.say("zhang_wei", REPORT)
    fix = Attachment("fix.jpg", "image/jpeg", b"\xff\xd8\xff" + b"1" * 50)
    other = Attachment("fix2.jpg", "image/jpeg", b"\xff\xd8\xff" + b"2" * 50)
    chat.say("wang_jianguo", "进展 #1 已联系后勤", photos=(fix,))  # this one is written before the disk fills
    with FullDisk(chat.engine.data_dir):
        progress = chat.say("wang_jianguo", "进展 #1 周五前清运", photos=(other,))
        rectify = chat.say("wang_jianguo", "整改 #1", photos=(fix, other))
    assert "已记录隐患 #1 的进展：周五前清运" in progress
    assert "照片暂未保存（服务器存储空间不足），稍后自动重试" in progress
    assert "隐患 #1 已报整改，待验收" in rectify
    assert "照片：1张已保存，1张暂未保存（服务器存储空间不足），稍后自动重试" in rectify  # the same photo is on disk
    assert _hazard(chat).status == "rectified"
    assert "照片：4张（2张暂未保存）" in chat.say("wang_jianguo", "查看 #1")
