"""Photos in either order: a photo sent without words waits for its sender's next report, 整改 or 进展."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import func, select

from bot.engine import Engine
from handlers.messages import Attachment
from models.db import make_engine
from models.tables import AttachmentFile, HazardEvent, PendingPhoto
from tests.school import REPORT, START, Chat, make_config

SCENE = Attachment("scene.jpg", "image/jpeg", b"\xff\xd8\xff" + b"s" * 40)
SCENE_2 = Attachment("scene2.jpg", "image/jpeg", b"\xff\xd8\xff" + b"t" * 40)
FIX = Attachment("fix.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"f" * 40)


def _photos_of_event(chat: Chat, action: str) -> list[AttachmentFile]:
    with chat.session() as session:
        event = session.exec(select(HazardEvent).where(HazardEvent.action == action)).one()
        return list(session.exec(select(AttachmentFile).where(AttachmentFile.event_id == event.id)))


def _pending_count(chat: Chat) -> int:
    with chat.session() as session:
        return session.exec(select(func.count()).select_from(PendingPhoto)).one()


def test_a_lone_photo_gets_one_line_and_is_kept(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "", photos=(SCENE, SCENE_2))
    assert reply == "收到2张照片，请接着发隐患内容或「整改 #N 说明」，10分钟内有效。"
    assert "消息是空的" not in reply
    assert _pending_count(chat) == 2


def test_photo_first_words_second_makes_one_hazard_with_the_photo(chat: Chat) -> None:
    chat.say("zhang_wei", "", photos=(SCENE, SCENE_2))
    chat.advance(minutes=3)
    reply = chat.say("zhang_wei", REPORT)
    assert "已登记隐患 #1" in reply
    assert "已附上刚才的2张照片" in reply
    photos = _photos_of_event(chat, "report")
    assert sorted(photo.filename for photo in photos) == ["scene.jpg", "scene2.jpg"]
    assert not any(photo.missing for photo in photos)
    assert _pending_count(chat) == 0
    assert "已附上" not in chat.say("zhang_wei", REPORT)  # taken once, not again


def test_photo_then_rectify_attaches_it_as_the_fix_photo(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("wang_jianguo", "", photos=(FIX,))
    reply = chat.say("wang_jianguo", "整改 #1 已清理通道")
    assert "已报整改" in reply and "已附上刚才的1张照片" in reply
    assert "建议补一张" not in reply
    assert [photo.filename for photo in _photos_of_event(chat, "rectify")] == ["fix.png"]


def test_photo_then_progress_attaches_it(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("wang_jianguo", "", photos=(FIX,))
    reply = chat.say("wang_jianguo", "进展 #1 已联系后勤")
    assert "已附上刚才的1张照片" in reply
    assert len(_photos_of_event(chat, "progress")) == 1


def test_a_pending_photo_counts_as_the_photo_a_major_fix_needs(chat: Chat) -> None:
    chat.say("zhang_wei", "隐患\n部位：食堂操作间\n问题：燃气软管老化\n等级：重大\n责任人：王建国")
    chat.say("wang_jianguo", "", photos=(FIX,))
    reply = chat.say("wang_jianguo", "整改 #1 已更换燃气软管")
    assert "已报整改" in reply and "已附上刚才的1张照片" in reply


def test_a_photo_older_than_ten_minutes_is_dropped(chat: Chat) -> None:
    chat.say("zhang_wei", "", photos=(SCENE,))
    chat.advance(minutes=11)
    reply = chat.say("zhang_wei", REPORT)
    assert "已登记隐患 #1" in reply and "已附上" not in reply
    with chat.session() as session:
        assert session.exec(select(func.count()).select_from(AttachmentFile)).one() == 0
    assert _pending_count(chat) == 0  # expired rows are deleted, not left behind


def test_photos_with_words_that_are_no_command_are_kept_too(chat: Chat) -> None:
    reply = chat.say("zhang_wei", "看这里", photos=(SCENE,))
    assert reply.startswith("没看懂「看这里」")  # the usual help for words it could not use, then the photos
    assert reply.endswith("收到1张照片，请接着发隐患内容或「整改 #N 说明」，10分钟内有效。")
    assert "已附上刚才的1张照片" in chat.say("zhang_wei", REPORT)


def test_photos_belong_to_their_sender_and_chat(chat: Chat) -> None:
    chat.say("zhang_wei", "", photos=(SCENE,))
    assert "已附上" not in chat.say("chen_jing", REPORT)  # someone else's report
    chat.say("sun_li", "", photos=(SCENE_2,), group="staff")
    reply = chat.say("sun_li", "隐患 部位：操场；问题：围墙裂缝", group="s2")  # another chat
    assert "已登记隐患" in reply and "已附上" not in reply
    assert "已附上刚才的1张照片" in chat.say("zhang_wei", "隐患\n部位：操场\n问题：单杠松动")


def test_a_refused_rectify_keeps_the_pending_photo(chat: Chat) -> None:
    chat.say("zhang_wei", REPORT)
    chat.say("wang_jianguo", "", photos=(FIX,))
    assert "没有找到隐患 #9" in chat.say("wang_jianguo", "整改 #9 已清理")
    assert "已附上刚才的1张照片" in chat.say("wang_jianguo", "整改 #1 已清理")


def test_the_window_is_configurable(tmp_path: Path) -> None:
    config = make_config(policy={"withdraw_minutes": 30, "pending_photo_minutes": 2})
    engine = Engine(config=config, db=make_engine(f"sqlite:///{tmp_path / 'w.db'}"), data_dir=tmp_path / "data")
    engine.start()
    chat = Chat(engine, START)
    assert chat.say("zhang_wei", "", photos=(SCENE,)).endswith("2分钟内有效。")
    chat.advance(minutes=3)
    assert "已附上" not in chat.say("zhang_wei", REPORT)
    engine.db.dispose()
