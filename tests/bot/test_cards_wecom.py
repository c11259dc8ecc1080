"""WeCom cards with buttons (issue 15), end to end: `safetybot serve` on the 智能机器人's long connection,
driven by the fake WeCom. A report gets a button card; taps come back as template_card_event and are
answered by updating the card within 5 s, through the same commands and permission checks as typed words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.bot.test_wecom import CHAT, REPORT, WEBHOOK_KEY
from tests.bot.test_wecom_e2e import Bot, start_bot, wait_for
from tests.fakes.wecom_server import FakeWeCom, card_problem, card_tap

BOT = "aibot-id-1"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWeCom]:
    with FakeWeCom() as server:
        server.ws_bots[BOT] = "aibot-secret-1"
        server.add_webhook_key(WEBHOOK_KEY)
        yield server


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, fake: FakeWeCom) -> Iterator[Bot]:
    yield from start_bot(tmp_path_factory.mktemp("wecom-cards"), fake, bot_mode="websocket",
                         extra_toml="\n[cards]\nenabled = true\n")


def _frames(fake: FakeWeCom, cmd: str, req_id: str) -> list[dict[str, Any]]:
    return [f for f in list(fake.ws_received) if f.get("cmd") == cmd and f["headers"]["req_id"] == req_id]


def _push(fake: FakeWeCom, push: Any) -> str:
    def attempt() -> str | None:
        try:
            return str(push())
        except RuntimeError:  # not (re)connected yet
            return None
    return str(wait_for(attempt, what="a live connection"))


def tap(fake: FakeWeCom, key: str, task_id: str, *, userid: str, msgid: str | None = None,
        req_id: str | None = None) -> tuple[str, dict[str, Any]]:
    """Tap a button; returns the event's req_id and the card the bot updated it to."""
    body = card_tap(key, task_id, userid=userid, chatid=CHAT, msgid=msgid)
    sent = _push(fake, lambda: fake.push_ws_event(BOT, body, req_id=req_id))
    frames = wait_for(lambda: _frames(fake, "aibot_respond_update_msg", sent), what="the card update")
    frame = frames[0]  # type: ignore[index]
    assert frame["body"]["response_type"] == "update_template_card"
    return sent, frame["body"]["template_card"]


def _status(bot: Bot) -> str:
    return str(bot.query("select status from hazard")[0][0])


def test_report_card_then_taps_fix_refuse_close_once(bot: Bot, fake: FakeWeCom) -> None:
    assert fake.wait_subscribed(30), "the bot did not subscribe over the long connection"
    body = fake.aibot_text("@安全助手 " + REPORT, userid="ZhangWei", chatid=CHAT)
    req_id = _push(fake, lambda: fake.push_ws("aibot-id-1", body))
    reply = wait_for(lambda: _frames(fake, "aibot_respond_msg", req_id), what="the report's reply")[0]  # type: ignore[index]
    assert reply["body"]["msgtype"] == "stream_with_template_card"
    assert card_problem(reply["body"]) is None
    assert re.search(r"已登记隐患 #1", reply["body"]["stream"]["content"])
    card = reply["body"]["template_card"]
    assert [(b["text"], b["key"]) for b in card["button_list"]] == [
        ("整改", "整改 #1"), ("查看照片", "查看 #1"), ("转交", "转交 #1")]
    task = card["task_id"]

    # The responsible person taps 整改: the card now offers 销号 / 退回 and says who did it.
    _, fixed = tap(fake, "整改 #1", task, userid="WangJianGuo")
    assert "已报整改" in fixed["main_title"]["title"] and "王建国" in fixed["main_title"]["desc"]
    assert [b["key"] for b in fixed["button_list"]] == ["销号 #1", "退回 #1"]
    assert _status(bot) == "rectified"

    # The same person may not verify their own fix: refused on the card, nothing changes, the button stays.
    _, refused = tap(fake, "销号 #1", task, userid="WangJianGuo")
    assert "销号" in refused["main_title"]["title"] and "王建国 点了「销号」" in refused["main_title"]["desc"]
    assert any(word in refused["main_title"]["title"] + refused.get("sub_title_text", "") for word in ("不能", "没有"))
    assert [b["key"] for b in refused["button_list"]] == ["销号 #1"]
    assert _status(bot) == "rectified"

    # The safety officer taps 销号: closed, once.
    msgid = "tap-close-lina"
    close_req, closed = tap(fake, "销号 #1", task, userid="LiNa", msgid=msgid)
    assert "李娜 点了「销号」" in closed["main_title"]["desc"]
    assert _status(bot) == "closed"
    # WeCom retries the same callback (same msgid, same req_id): recorded once, no second answer.
    _push(fake, lambda: fake.push_ws_event(BOT, card_tap("销号 #1", task, userid="LiNa", chatid=CHAT, msgid=msgid),
                                           req_id=close_req))
    # A second tap is a new message that finds the work done.
    _, again = tap(fake, "销号 #1", task, userid="LiNa")
    assert "无需再处理" in again["main_title"]["title"] + again.get("sub_title_text", "")
    assert len(_frames(fake, "aibot_respond_update_msg", close_req)) == 1
    assert bot.query("select count(*) from hazard_event where action = 'close'")[0][0] == 1
    assert bot.query("select count(*) from inbound_message where platform_msg_id like 'card:%'")[0][0] == 4
    # Every card update was accepted by the platform (in time, with a valid card).
    assert bot.query("select count(*) from outbox where state = 'failed'")[0][0] == 0


def test_a_card_update_wecom_refuses_as_late_reaches_the_group_by_webhook(bot: Bot, fake: FakeWeCom) -> None:
    assert fake.wait_subscribed(30)
    body = fake.aibot_text("@安全助手 隐患\n部位：食堂后厨\n问题：插座老化\n责任人：王建国\n期限：明天",
                           userid="ZhangWei", chatid=CHAT)
    req_id = _push(fake, lambda: fake.push_ws("aibot-id-1", body))
    reply = wait_for(lambda: _frames(fake, "aibot_respond_msg", req_id), what="the report's reply")[0]  # type: ignore[index]
    task = reply["body"]["template_card"]["task_id"]
    fake.card_update_window = -1.0  # every update arrives "after 5 s"
    try:
        sent = _push(fake, lambda: fake.push_ws_event(BOT, card_tap("查看 #2", task, userid="LiNa", chatid=CHAT)))
        wait_for(lambda: _frames(fake, "aibot_respond_update_msg", sent), what="the refused card update")
        pushed = wait_for(lambda: [m for m in fake.sent_to(WEBHOOK_KEY) if "点了「查看」" in m.content],
                          what="the answer by webhook")
    finally:
        fake.card_update_window = 5.0
    assert "李娜" in pushed[0].content and "插座老化" in pushed[0].content  # type: ignore[index]


def test_a_tap_parses_into_the_command_and_odd_events_are_ignored() -> None:
    from bot.platforms.wecom.inbound import parse_card_event

    parsed = parse_card_event(card_tap("销号 #12", "sb-1", userid="LiNa", chatid=CHAT, msgid="e1"))
    assert parsed is not None and (parsed.msg_id, parsed.text, parsed.user_id, parsed.chat_id, parsed.card_task_id) == (
        "card:e1", "销号 #12", "LiNa", CHAT, "sb-1")
    flat = {"msgid": "e2", "msgtype": "event", "from": {"userid": "LiNa"},
            "event": {"eventtype": "template_card_event", "event_key": "整改 #3", "task_id": "t"}}
    assert parse_card_event(flat) is not None  # the event's fields flat under `event`
    for odd in ({}, {"msgtype": "event", "event": "x", "from": {}},
                {**flat, "event": {"eventtype": "enter_chat"}}, {**flat, "from": None},
                {**flat, "event": {"eventtype": "template_card_event", "event_key": 12, "task_id": "t"}}):
        assert parse_card_event(odd) is None


def test_the_fake_refuses_cards_wecom_would_refuse() -> None:
    good = {"card_type": "button_interaction", "main_title": {"title": "隐患 #1"}, "task_id": "sb-1",
            "button_list": [{"text": "销号", "key": "销号 #1"}]}
    assert card_problem({"msgtype": "template_card", "template_card": good}) is None
    assert card_problem({"msgtype": "template_card", "template_card": {**good, "task_id": "有空格 x"}})
    assert card_problem({"msgtype": "template_card", "template_card": {**good, "button_list": []}})
    assert card_problem({"msgtype": "template_card", "template_card": {**good, "button_list": [{"text": "x"}] * 7}})
