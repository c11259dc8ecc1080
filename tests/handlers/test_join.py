"""New people and new groups in chat: 我是 教务处, 同意 张三, 登记本群 (no directory API: the app has no permission)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.config import parse_config
from bot.engine import Engine
from bot.sync import sync_config
from handlers.messages import Inbound, Reply
from models.clock import FixedClock
from models.tables import DirectoryRequest, GroupRow, GroupUnit, Hazard, PersonRow, SeenChat
from tests.school import REPORT, START, TWO_SCHOOLS, TZ, start_engine

SCHOOL_CHAT = "wrkSCHOOL1"


def county(**directory: Any) -> dict[str, Any]:
    """The two-school county on WeCom: one staff group bound in the TOML, the directory without API access."""
    data = copy.deepcopy(TWO_SCHOOLS)
    data["groups"] = [{
        "id": "staff", "name": "一中安全工作群", "platform": "wecom", "units": ["school"], "campaign": "c1",
        "chat_id": SCHOOL_CHAT, "credentials": {"webhook_key": "SCHOOL1_KEY"},
    }]
    for person in data["people"]:
        person["wecom_userid"] = person["id"]
    data["directory"] = {"platform": "wecom", "schools": {"10": "school", "20": "school2"}, **directory}
    return data


class WeComChat:
    """Messages as the WeCom adapter hands them to the engine; returns the reply texts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        engine.clock = FixedClock(START, TZ)
        self._ids = itertools.count(1)
        self.last: list[Reply] = []

    def say(self, user_id: str, text: str, *, chat: str = SCHOOL_CHAT, name: str = "") -> str:
        msg = Inbound(platform="wecom", msg_id=f"w{next(self._ids)}", chat_id=chat, sender_id=user_id, text=text,
                      received_at=START, sender_name=name or user_id)
        self.last = self.engine.handle_sync(msg)
        return "\n".join(reply.text for reply in self.last)

    def session(self) -> Session:
        return Session(self.engine.db)


@pytest.fixture
def wecom(tmp_path: Path) -> Iterator[WeComChat]:
    engine = start_engine(parse_config(county()), tmp_path)
    yield WeComChat(engine)
    engine.db.dispose()


@pytest.fixture
def approving(tmp_path: Path) -> Iterator[WeComChat]:
    engine = start_engine(parse_config(county(approve=True)), tmp_path)
    yield WeComChat(engine)
    engine.db.dispose()


def person_of(chat: WeComChat, user_id: str) -> PersonRow | None:
    with chat.session() as session:
        return session.exec(select(PersonRow).where(PersonRow.wecom_userid == user_id)).first()


# -- unknown senders -------------------------------------------------------------------------------------------


def test_an_unknown_sender_is_asked_for_their_unit_in_one_line_and_binds_in_one_exchange(wecom: WeComChat) -> None:
    asked = wecom.say("newbie", REPORT, name="马明")

    assert asked == "您好，马明！我还不认识您，请告诉我您的单位，回复如：我是 安全保卫处"
    assert person_of(wecom, "newbie") is None
    with wecom.session() as session:
        assert session.exec(select(Hazard)).all() == []  # nothing stored for an unknown sender

    bound = wecom.say("newbie", "我是 教务处", name="马明")

    assert bound.startswith("好的，马明（教务处），已登记。")
    person = person_of(wecom, "newbie")
    assert person is not None
    assert (person.name, person.unit_id, person.role_set, person.source) == ("马明", "teaching", {"teacher"}, "chat")
    assert "#1" in wecom.say("newbie", REPORT, name="马明")  # a teacher of the group's school now
    assert "已登记为 马明（教务处）" in wecom.say("newbie", "我是 教务处", name="马明")


def test_no_reply_to_a_teacher_speaks_of_config_files(wecom: WeComChat) -> None:
    replies = [wecom.say("newbie", "你好"), wecom.say("newbie", "我是 火星处"), wecom.say("other", "统计", chat="single:x")]
    for reply in replies:
        assert reply and "配置" not in reply and "config" not in reply.lower() and "[[" not in reply


def test_a_sender_without_a_display_name_gives_it_with_the_unit(wecom: WeComChat) -> None:
    assert wecom.say("u123", "我是 总务处") == "请写上您的姓名，如：我是 总务基建处 张三"
    assert wecom.say("u123", "我是 总务处 孙强").startswith("好的，孙强（总务基建处），已登记。")


def test_a_unit_the_group_does_not_serve_is_refused_with_its_units(wecom: WeComChat) -> None:
    reply = wecom.say("newbie", "我是 城南小学后勤处", name="马明")

    assert reply.startswith("没有找到单位「城南小学后勤处」。本群的单位有：")
    assert "教务处" in reply and "城南小学" not in reply.split("本群的单位有：")[1]
    assert reply.endswith("请回复如：我是 安全保卫处")
    assert person_of(wecom, "newbie") is None


def test_an_unknown_sender_in_a_private_chat_is_sent_to_the_school_group(wecom: WeComChat) -> None:
    reply = wecom.say("newbie", "我是 教务处", chat="single:newbie")

    assert reply == "您好！请在学校的安全工作群里 @我 并发送「我是 单位名」完成登记，如：我是 教务处"
    assert person_of(wecom, "newbie") is None


def test_with_approve_an_admin_lets_the_sender_in(approving: WeComChat) -> None:
    waiting = approving.say("newbie", "我是 教务处", name="马明")

    assert waiting == "收到，马明（教务处）的登记已交给管理员。请管理员回复：同意 马明"
    assert approving.last[0].mentions == ("liu_yang",)  # the school's admin
    assert person_of(approving, "newbie") is None
    assert approving.say("newbie", REPORT, name="马明") == "您的登记（马明）正在等管理员同意，同意后即可使用。"
    assert approving.say("zhang_wei", "同意 马明") == "只有管理员可以同意新同事登记。"
    assert approving.say("liu_yang", "同意") == "待同意：马明（教务处）。回复如：同意 马明"
    assert approving.say("liu_yang", "同意 马红").startswith("没有等待同意的「马红」。待同意：马明（教务处）")

    approved = approving.say("liu_yang", "同意 马明")

    assert approved == "已同意：马明（教务处）现在可以 @我 上报隐患了。"
    person = person_of(approving, "newbie")
    assert person is not None and person.unit_id == "teaching"
    with approving.session() as session:
        assert session.exec(select(DirectoryRequest)).one().decided_by == "liu_yang"
    assert "#1" in approving.say("newbie", REPORT, name="马明")


def test_a_directory_sync_takes_over_a_person_bound_in_chat(wecom: WeComChat) -> None:
    from bot.directory import Department, Member, Snapshot, apply_snapshot

    wecom.say("newbie", "我是 教务处", name="马明")
    snapshot = Snapshot("wecom", (Department("10", "城关一中", None),),
                        (Member("newbie", "马明", ("10",), leader_of=("10",)),))
    with wecom.session() as session:
        report = apply_snapshot(session, wecom.engine.config, snapshot, START)
        session.commit()

    assert report.people.added == 0 and report.people.moved == 1  # the same row, now the directory's
    person = person_of(wecom, "newbie")
    assert person is not None and (person.source, person.unit_id, person.role_set) == ("platform", "school", {"unit_head"})


# -- unknown chats ---------------------------------------------------------------------------------------------


def test_the_first_at_in_an_unknown_chat_answers_admins_with_what_to_do(wecom: WeComChat) -> None:
    first = wecom.say("zhang_wei", REPORT, chat="wrkNEW")
    assert first == "您好！本群还没有开通安全助手，请学校管理员在群里 @我 登记后再使用。"
    assert wecom.say("zhang_wei", REPORT, chat="wrkNEW") == ""  # one polite line, once
    assert wecom.say("stranger", "你好", chat="wrkNEW") == ""

    told = wecom.say("liu_yang", "统计", chat="wrkNEW")

    assert told.startswith("本群还没有登记，我还不知道它属于哪所学校。")
    assert "登记本群 城关一中 安全工作群 教职工" in told
    with wecom.session() as session:
        seen = session.exec(select(SeenChat)).one()
        assert (seen.chat_id, seen.messages, seen.group_id) == ("wrkNEW", 4, None)
        assert session.exec(select(Hazard)).all() == []


def test_an_admin_binds_a_chat_to_a_school_in_the_chat(wecom: WeComChat) -> None:
    wecom.say("zhang_wei", "你好", chat="wrkNEW")
    assert wecom.say("zhang_wei", "登记本群 城关一中 安全工作群 教职工", chat="wrkNEW") == ""  # not an admin

    bound = wecom.say("liu_yang", "登记本群 城关一中 一中安全群 教职工", chat="wrkNEW")

    assert bound.startswith("已登记本群：一中安全群（城关一中，教职工群）。")
    # What the pushes need (the key is a secret: it goes to the server, never into the chat).
    assert bound.splitlines()[-1] == ("定时提醒要经本群的「消息推送」发出：请在群设置里添加消息推送，把地址中的 key 交给"
                                      "系统管理员，设为环境变量 SAFETYBOT_PUSH_KEY_WECOM_CHAT_WRKNEW。")
    with wecom.session() as session:
        group = session.exec(select(GroupRow).where(GroupRow.chat_id == "wrkNEW")).one()
        assert (group.name, group.kind, group.source) == ("一中安全群", "staff", "chat")
        assert session.exec(select(GroupUnit.unit_id).where(GroupUnit.group_id == group.id)).all() == ["school"]
        assert session.exec(select(SeenChat)).one().group_id == group.id
    assert "#1" in wecom.say("zhang_wei", REPORT, chat="wrkNEW")
    # A stranger in the new group binds to its school.
    assert wecom.say("newbie", "我是 总务处", chat="wrkNEW", name="马明").startswith("好的，马明（总务基建处）")
    # Reloading the config (sync_config at start and on SIGHUP) keeps the chat's group and its school.
    with wecom.session() as session:
        sync_config(session, wecom.engine.config)
    with wecom.session() as session:
        group_id = session.exec(select(GroupRow.id).where(GroupRow.chat_id == "wrkNEW")).one()
        assert session.exec(select(GroupUnit.unit_id).where(GroupUnit.group_id == group_id)).all() == ["school"]


def test_a_leaders_group_is_bound_and_an_unknown_school_is_refused(wecom: WeComChat) -> None:
    refused = wecom.say("wu_ju", "登记本群 火星中学 火星群 教职工", chat="wrkS2")
    assert refused.startswith("没有找到学校「火星中学」，请写您负责的学校的名称。")

    bound = wecom.say("wu_ju", "登记本群 城南小学 城南小学领导群 领导", chat="wrkS2")  # the county admin

    assert bound.startswith("已登记本群：城南小学领导群（城南小学，领导群）。")
    with wecom.session() as session:
        assert session.exec(select(GroupRow).where(GroupRow.chat_id == "wrkS2")).one().kind == "leaders"
