"""Through the real DingTalk callback: a new group bound in its chat, a newcomer bound there, private chats left alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.app import create_app
from bot.config import load_config
from bot.secrets import Secrets
from models.tables import GroupRow, Hazard, PersonRow
from tests.conftest import campaign_clock
from tests.fakes.dingtalk_server import FakeDingTalk, post_callback, robot_message

APP_KEY, APP_SECRET = "dingapp0001", "app-secret-0001-abcdef"
ENV = {"SAFETYBOT_DT_APP_KEY": APP_KEY, "SAFETYBOT_DT_APP_SECRET": APP_SECRET}
ADMIN = "0135210005"  # 刘洋 in the example config
NEW_CHAT = "cidNewGroup0001=="
REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"


@pytest.fixture
def fake() -> Iterator[FakeDingTalk]:
    server = FakeDingTalk()
    server.add_app(APP_KEY, APP_SECRET)
    with server:
        yield server


@pytest.fixture
def client(config_path: Path, fake: FakeDingTalk) -> Iterator[TestClient]:
    config_path.write_text(config_path.read_text(encoding="utf-8") + f"""
[dingtalk]
api_base = "{fake.base_url}"
oapi_base = "{fake.base_url}"

[[dingtalk.robots]]
id = "dt-app"
mode = "callback"
credentials = {{ app_key = "SAFETYBOT_DT_APP_KEY", app_secret = "SAFETYBOT_DT_APP_SECRET" }}

[directory]  # no contacts permission: newcomers bind in chat
platform = "dingtalk"
schools = {{ 2 = "school" }}
""", encoding="utf-8")
    app = create_app(load_config(config_path), secrets=Secrets(environ=ENV), clock=campaign_clock())
    with TestClient(app) as test_client:
        yield test_client


def say(client: TestClient, fake: FakeDingTalk, sender: str, text: str, *, chat: str = NEW_CHAT,
        private: bool = False, nick: str = "") -> str:
    """Post one robot message and wait for its reply through the session webhook ("" when none comes)."""
    before = len(fake.session_messages)
    message: dict[str, Any] = robot_message(fake, text=text, conversation_id=chat, sender_staff_id=sender,
                                            sender_nick=nick or sender)
    if private:
        message["conversationType"] = "1"
    assert post_callback("", APP_SECRET, message, client=client).status_code == 200
    engine = client.app.state.engine  # type: ignore[attr-defined]
    fake.wait_for(lambda: _handled(engine, message["msgId"]))
    if not _replied(engine, message):
        return ""
    fake.wait_for(lambda: len(fake.session_messages) > before)
    body = fake.session_messages[before]
    return str(body["markdown"]["text"] if body["msgtype"] == "markdown" else body["text"]["content"])


def _handled(engine: Any, msg_id: str) -> bool:
    from models.tables import InboundMessage

    with Session(engine.db) as session:
        row = session.exec(select(InboundMessage).where(InboundMessage.platform_msg_id == msg_id)).first()
        return row is not None and row.state in ("handled", "failed")


def _replied(engine: Any, message: dict[str, Any]) -> bool:
    from models.tables import InboundMessage

    with Session(engine.db) as session:
        row = session.exec(select(InboundMessage).where(InboundMessage.platform_msg_id == message["msgId"])).one()
        return bool(row.reply_text)


def test_a_new_dingtalk_group_is_bound_in_its_chat_and_a_newcomer_binds_there(
    client: TestClient, fake: FakeDingTalk
) -> None:
    assert say(client, fake, "0999000001", "你好", nick="马明").startswith("您好！本群还没有开通安全助手")
    told = say(client, fake, ADMIN, "统计")
    assert "本群还没有登记" in told and "登记本群" in told

    bound = say(client, fake, ADMIN, "登记本群 城关第一中学 一中新群 教职工")

    assert "已登记本群：一中新群（城关第一中学，教职工群）" in bound
    assert "我还不认识您" in say(client, fake, "0999000001", REPORT, nick="马明")
    assert "马明（教务处），已登记" in say(client, fake, "0999000001", "我是 教务处", nick="马明")
    assert "#" in say(client, fake, "0999000001", REPORT, nick="马明")
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine.db) as session:
        group = session.exec(select(GroupRow).where(GroupRow.chat_id == NEW_CHAT)).one()
        newcomer = session.exec(select(PersonRow).where(PersonRow.dingtalk_staff_id == "0999000001")).one()
        hazard = session.exec(select(Hazard).where(Hazard.reporter_id == newcomer.id)).one()
    assert (group.source, newcomer.unit_id, hazard.unit_id) == ("chat", "teaching", "logistics")


def test_a_private_chat_is_no_unknown_group(client: TestClient, fake: FakeDingTalk) -> None:
    reply = say(client, fake, ADMIN, "帮助", chat="cidPrivateChat01==", private=True)

    assert reply and "本群还没有登记" not in reply


def test_a_dingtalk_group_bound_in_chat_gets_the_scheduler_pushes_through_the_app_robot(
    client: TestClient, fake: FakeDingTalk
) -> None:
    from datetime import timedelta

    from handlers.messages import Reply

    assert "已登记本群" in say(client, fake, ADMIN, "登记本群 城关第一中学 一中新群 教职工")
    engine = client.app.state.engine  # type: ignore[attr-defined]
    pushes = client.app.state.services.pushes  # type: ignore[attr-defined]  (what the scheduler is given)
    with Session(engine.db) as session:
        group = session.exec(select(GroupRow).where(GroupRow.chat_id == NEW_CHAT)).one()
        added = pushes.enqueue_push(session, group=group, dedupe_key="push:report_reminder:x", now=engine.now(),
                                    replies=[Reply("【报送提醒】第2期统计报表今天17:00截止")],
                                    give_up_after=timedelta(hours=1))
        session.commit()
    assert added == 1
    client.app.state.runtime.sender.kick()  # type: ignore[attr-defined]
    [sent] = fake.wait_for(lambda: [m for m in fake.group_messages if m.get("openConversationId") == NEW_CHAT])
    assert sent["robotCode"] == APP_KEY and "报送提醒" in sent["msgParam"]["text"]


APP2_KEY, APP2_SECRET = "dingapp0002", "app-secret-0002-abcdef"
OTHER_CHAT = "cidOtherGroup02=="


@pytest.mark.parametrize("directory", [True, False], ids=["binding-in-chat", "router"])
def test_a_group_bound_through_the_second_robot_is_pushed_by_that_robot(
    config_path: Path, fake: FakeDingTalk, directory: bool
) -> None:
    """A county with two app robots: the chat that robot 2 saw (and heard 登记本群 in) is pushed by robot 2,
    whether the chat was unknown ([directory]: bound before anything else) or 登记本群 went through the router."""
    from datetime import timedelta

    from handlers.messages import Reply

    fake.add_app(APP2_KEY, APP2_SECRET)
    config_path.write_text(config_path.read_text(encoding="utf-8") + f"""
[dingtalk]
api_base = "{fake.base_url}"
oapi_base = "{fake.base_url}"

[[dingtalk.robots]]
id = "dt-app"
mode = "callback"
credentials = {{ app_key = "SAFETYBOT_DT_APP_KEY", app_secret = "SAFETYBOT_DT_APP_SECRET" }}

[[dingtalk.robots]]
id = "dt-app2"
mode = "callback"
credentials = {{ app_key = "SAFETYBOT_DT_APP2_KEY", app_secret = "SAFETYBOT_DT_APP2_SECRET" }}
""" + ('\n[directory]\nplatform = "dingtalk"\nschools = { 2 = "school" }\n' if directory else ""), encoding="utf-8")
    environ = {**ENV, "SAFETYBOT_DT_APP2_KEY": APP2_KEY, "SAFETYBOT_DT_APP2_SECRET": APP2_SECRET}
    app = create_app(load_config(config_path), secrets=Secrets(environ=environ), clock=campaign_clock())
    with TestClient(app) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        message = robot_message(fake, text="登记本群 城关第一中学 二号群 教职工", conversation_id=OTHER_CHAT,
                                sender_staff_id=ADMIN, sender_nick="刘洋", robot_code=APP2_KEY)
        assert post_callback("", APP2_SECRET, message, client=client).status_code == 200  # signed by robot 2
        fake.wait_for(lambda: _handled(engine, message["msgId"]))
        pushes = client.app.state.services.pushes  # type: ignore[attr-defined]
        with Session(engine.db) as session:
            group = session.exec(select(GroupRow).where(GroupRow.chat_id == OTHER_CHAT)).one()
            assert (group.source, group.robot) == ("chat", "dt-app2")
            pushes.enqueue_push(session, group=group, dedupe_key="push:report_reminder:y", now=engine.now(),
                                replies=[Reply("【报送提醒】第2期统计报表今天17:00截止")],
                                give_up_after=timedelta(hours=1))
            session.commit()
        client.app.state.runtime.sender.kick()  # type: ignore[attr-defined]
        [sent] = fake.wait_for(lambda: [m for m in fake.group_messages if m.get("openConversationId") == OTHER_CHAT])
    assert sent["robotCode"] == APP2_KEY and "报送提醒" in sent["msgParam"]["text"]
