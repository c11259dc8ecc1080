"""WeCom cards with buttons in HTTP-callback mode (issue 15), driven through the fake WeCom's `CallbackDriver`.

In a group a card is only possible as a passive (encrypted) answer: a message is acknowledged with an
unfinished stream, WeCom's refreshes of that stream get the finished reply with its card, and a tap
(`template_card_event`) is answered with `update_template_card` within 5 s, through the same commands and
permission checks as typed words. A reply no refresh picked up goes by response_url, once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from bot.app import create_app
from bot.config import load_config
from bot.platforms import wecom
from bot.secrets import Secrets
from models import outbox as outbox_store
from models.clock import SystemClock
from models.tables import Hazard, HazardEvent, InboundMessage, OutboxMessage
from tests.bot.test_wecom import AES_KEY, CHAT, REPORT, SECRET_ENV, TOKEN, WEBHOOK_KEY, _LostHandOff, wait_for, wecom_toml
from tests.bot.test_wecom_e2e import Bot, start_bot
from tests.conftest import campaign_clock
from tests.fakes.wecom_server import (
    CallbackDriver, FakeWeCom, PassiveRefused, callback_query, card_tap, encrypt_text, open_passive,
    passive_problem, post_aibot_callback, stream_refresh,
)

CARD_WINDOW = 5.0  # WeCom drops a card event's answer after this


@pytest.fixture
def fake() -> Iterator[FakeWeCom]:
    with FakeWeCom(window=60.0) as server:
        server.add_webhook_key(WEBHOOK_KEY)
        yield server


@pytest.fixture
def clock() -> SystemClock:
    return campaign_clock()


@pytest.fixture
def client(config_path: Path, fake: FakeWeCom, clock: SystemClock) -> Iterator[TestClient]:
    config_path.write_text(config_path.read_text(encoding="utf-8") + wecom_toml(fake) + "\n[cards]\nenabled = true\n",
                           encoding="utf-8")
    app = create_app(load_config(config_path), secrets=Secrets(environ=SECRET_ENV), clock=clock)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def driver(client: TestClient) -> CallbackDriver:
    return CallbackDriver("/wecom/callback", TOKEN, AES_KEY, http=client)


def _count(client: TestClient, statement: Any) -> int:
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        return int(session.exec(statement).one())


def _status(client: TestClient) -> str:
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        return str(session.exec(select(Hazard.status)).one())


def _closes(client: TestClient) -> int:
    return _count(client, select(func.count()).select_from(HazardEvent).where(HazardEvent.action == "close"))


def _report(driver: CallbackDriver, fake: FakeWeCom, text: str = REPORT) -> tuple[dict[str, Any], dict[str, Any]]:
    """Post a report; the acknowledgement is an unfinished stream. Returns the message and the finished answer."""
    message = fake.aibot_text("@安全助手 " + text, userid="ZhangWei", chatid=CHAT)
    ack = driver.post(message)
    assert ack is not None and ack["msgtype"] == "stream" and ack["stream"]["finish"] is False
    assert "正在处理" in ack["stream"]["content"]
    done = driver.poll(ack["stream"]["id"], userid="ZhangWei", chatid=CHAT)
    assert done["stream"]["id"] == ack["stream"]["id"]
    return message, done


def _tap(driver: CallbackDriver, key: str, task_id: str, *, userid: str, msgid: str | None = None) -> dict[str, Any]:
    answer, took = driver.tap(card_tap(key, task_id, userid=userid, chatid=CHAT, msgid=msgid))
    assert took < CARD_WINDOW, f"answered after {took:.1f} s: WeCom would have dropped it"
    assert answer is not None
    return dict(answer["template_card"])


def test_a_report_is_acknowledged_with_a_stream_and_its_refresh_brings_the_card(
    client: TestClient, fake: FakeWeCom, driver: CallbackDriver
) -> None:
    message, done = _report(driver, fake)
    assert done["msgtype"] == "stream_with_template_card"
    assert re.search(r"已登记隐患 #1", done["stream"]["content"]), done["stream"]["content"]
    card = done["template_card"]
    assert card["card_type"] == "button_interaction" and card["task_id"]
    assert [(b["text"], b["key"]) for b in card["button_list"]] == [
        ("整改", "整改 #1"), ("查看照片", "查看 #1"), ("转交", "转交 #1")]
    # Given once, by the refresh: the response_url stays unused, and a later refresh does not repeat it.
    again = driver.refresh(done["stream"]["id"], userid="ZhangWei", chatid=CHAT)
    assert again["msgtype"] == "stream" and again["stream"]["finish"] is True
    assert "已登记" not in again["stream"]["content"]
    code = message["response_url"].rsplit("=", 1)[1]
    assert not [r for r in fake.responses if r["response_code"] == code]
    held = [r for r in outbox_store.list_messages(client.app.state.engine.db, limit=50)  # type: ignore[attr-defined]
            if r.channel == wecom.CHANNEL_PASSIVE]
    # The replies row rendered into the held stream (its child) and the notice: it was expanded, not sent.
    assert sorted((r.kind, r.state) for r in held) == [("replies", "expanded"), ("stream", "sent")]
    # The owner's phone still rings: the webhook @-notice goes as before.
    notice = wait_for(lambda: [m for m in fake.sent_to(WEBHOOK_KEY) if "请留意" in m.content])
    assert "<@WangJianGuo>" in notice[0].content  # type: ignore[index]


def test_taps_fix_refuse_and_close_once_on_the_card(client: TestClient, fake: FakeWeCom, driver: CallbackDriver) -> None:
    _, done = _report(driver, fake)
    task = done["template_card"]["task_id"]

    fixed = _tap(driver, "整改 #1", task, userid="WangJianGuo")
    assert "已报整改" in fixed["main_title"]["title"] and "王建国 点了「整改」" in fixed["main_title"]["desc"]
    assert [b["key"] for b in fixed["button_list"]] == ["销号 #1", "退回 #1"]
    assert _status(client) == "rectified"

    # The person who fixed it may not verify it: refused on the card, nothing changes, the button stays.
    refused = _tap(driver, "销号 #1", task, userid="WangJianGuo")
    assert "王建国 点了「销号」" in refused["main_title"]["desc"]
    assert any(word in refused["main_title"]["title"] + refused.get("sub_title_text", "") for word in ("不能", "没有"))
    assert [b["key"] for b in refused["button_list"]] == ["销号 #1"]
    assert _status(client) == "rectified" and _closes(client) == 0

    # The safety officer taps 销号: closed, once.
    closed = _tap(driver, "销号 #1", task, userid="LiNa", msgid="tap-close-lina")
    assert "李娜 点了「销号」" in closed["main_title"]["desc"]
    assert _status(client) == "closed" and _closes(client) == 1

    # WeCom repeats the same callback: recorded once, and nothing more to answer.
    retried, _ = driver.tap(card_tap("销号 #1", task, userid="LiNa", chatid=CHAT, msgid="tap-close-lina"))
    assert retried is None
    # A second tap is a new message that finds the work done.
    again = _tap(driver, "销号 #1", task, userid="LiNa")
    assert "无需再处理" in again["main_title"]["title"] + again.get("sub_title_text", "")
    assert _closes(client) == 1
    assert _count(client, select(func.count()).select_from(InboundMessage)
                  .where(InboundMessage.platform_msg_id.like("card:%"))) == 4  # type: ignore[attr-defined]
    # Every tap's answer went as the callback's own answer: none left for response_url or webhook.
    rows = outbox_store.list_messages(client.app.state.engine.db, limit=100)  # type: ignore[attr-defined]
    assert [r.state for r in rows if r.kind == "card_update"] == ["sent"] * 4


def test_a_reply_never_refreshed_goes_by_response_url_once(
    client: TestClient, fake: FakeWeCom, driver: CallbackDriver, clock: SystemClock
) -> None:
    message = fake.aibot_text("@安全助手 " + REPORT, userid="ZhangWei", chatid=CHAT)
    ack = driver.post(message)
    assert ack is not None and ack["stream"]["finish"] is False
    db = client.app.state.engine.db  # type: ignore[attr-defined]
    held = wait_for(lambda: [r for r in outbox_store.list_messages(db, limit=50) if r.channel == wecom.CHANNEL_PASSIVE])
    assert held[0].state == "pending"  # type: ignore[index]
    code = message["response_url"].rsplit("=", 1)[1]
    assert not [r for r in fake.responses if r["response_code"] == code]

    # WeCom stops refreshing 6 minutes after the message: then the response_url (valid an hour) carries it.
    clock.offset += timedelta(minutes=6, seconds=5)
    client.app.state.runtime.sender.kick()  # type: ignore[attr-defined]
    sent = wait_for(lambda: [r for r in fake.responses if r["response_code"] == code], timeout=20)
    assert re.search(r"已登记隐患 #1", sent[0]["markdown"]["content"])  # type: ignore[index]
    # A refresh that comes after all finds it given: the stream ends without repeating it.
    late = driver.refresh(ack["stream"]["id"], userid="ZhangWei", chatid=CHAT)
    assert late["stream"]["finish"] is True and "已登记" not in late["stream"]["content"]
    assert len([r for r in fake.responses if r["response_code"] == code]) == 1
    assert [r.state for r in outbox_store.list_messages(db, limit=50)
            if r.channel == wecom.CHANNEL_PASSIVE and r.kind != "replies"] == ["sent"]


def test_a_tap_whose_answer_would_be_late_says_so_and_the_answer_follows_by_webhook(
    client: TestClient, fake: FakeWeCom, driver: CallbackDriver
) -> None:
    _, done = _report(driver, fake)
    task = done["template_card"]["task_id"]
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    runtime.hand_off = lost = _LostHandOff()  # the handler process died with the tap
    pending = _tap(driver, "查看 #1", task, userid="LiNa")
    assert "正在处理「查看」" in pending["main_title"]["title"] and "李娜 点了「查看」" in pending["main_title"]["desc"]
    assert [b["key"] for b in pending["button_list"]] == ["查看 #1"]
    assert len(lost.lost) == 1
    runtime.hand_off = None
    # Recovery handles it; past the tap's 5 s the answer goes to the group by webhook (the event had no response_url).
    assert client.portal.call(lambda: runtime.recover(older_than=timedelta(0))) == 1  # type: ignore[union-attr]
    pushed = wait_for(lambda: [m for m in fake.sent_to(WEBHOOK_KEY) if "点了「查看」" in m.content], timeout=20)
    assert "李娜" in pushed[0].content and "消防通道堆放杂物" in pushed[0].content  # type: ignore[index]


def _exact_request(client: TestClient, body: dict[str, Any], *, nonce: str) -> Callable[[], Any]:
    """One encrypted, signed callback, to be posted as often as WeCom repeats it (the very same bytes)."""
    encrypt = encrypt_text(AES_KEY, json.dumps(body, ensure_ascii=False))
    query = callback_query(TOKEN, encrypt, nonce=nonce)
    return lambda: client.post("/wecom/callback", params=query, content=json.dumps({"encrypt": encrypt}),
                               headers={"Content-Type": "application/json"})


def test_passive_answers_are_signed_with_the_callbacks_nonce_and_replays_take_nothing(
    client: TestClient, fake: FakeWeCom
) -> None:
    message = fake.aibot_text("@安全助手 帮助", userid="ZhangWei", chatid=CHAT)
    response = _exact_request(client, message, nonce="n0nce12345")
    ack = open_passive(response(), token=TOKEN, encoding_aes_key=AES_KEY, nonce="n0nce12345")
    assert ack is not None and ack["stream"]["finish"] is False
    # WeCom repeats the exact request (its first answer may be what got lost): the same stream, stored once.
    assert open_passive(response(), token=TOKEN, encoding_aes_key=AES_KEY, nonce="n0nce12345") == ack
    # ... or sends it again newly encrypted: the same again.
    again = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, nonce="n0nce12346",
                                http=client)
    assert open_passive(again, token=TOKEN, encoding_aes_key=AES_KEY, nonce="n0nce12346") == ack
    assert _count(client, select(func.count()).select_from(InboundMessage)
                  .where(InboundMessage.platform_msg_id == message["msgid"])) == 1
    # A replayed refresh gets nothing: a replay never takes the held reply.
    # (Once the sender has looked at the held row and let it go: while it holds the lease, a refresh must wait.)
    wait_for(lambda: _count(client, select(func.count()).select_from(OutboxMessage)
                            .where(OutboxMessage.channel == wecom.CHANNEL_PASSIVE, OutboxMessage.kind != "replies")
                            .where(col(OutboxMessage.attempts) >= 1, col(OutboxMessage.claimed_until).is_(None))))
    refresh = _exact_request(client, stream_refresh(ack["stream"]["id"], userid="ZhangWei", chatid=CHAT), nonce="r3fresh")
    answered = open_passive(refresh(), token=TOKEN, encoding_aes_key=AES_KEY, nonce="r3fresh")
    assert open_passive(refresh(), token=TOKEN, encoding_aes_key=AES_KEY, nonce="r3fresh") is None
    assert answered is not None and answered["stream"]["finish"] is True and len(answered["stream"]["content"]) > 20
    response = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY,
                                   nonce="n0nce12345", http=client)
    with pytest.raises(PassiveRefused, match="nonce"):
        open_passive(response, token=TOKEN, encoding_aes_key=AES_KEY, nonce="other")
    with pytest.raises(PassiveRefused, match="msgsignature"):
        open_passive(response, token="another-token", encoding_aes_key=AES_KEY, nonce="n0nce12345")
    # A refresh is authenticated like any callback: a bad signature is refused and learns nothing.
    refused = post_aibot_callback("/wecom/callback", stream_refresh(ack["stream"]["id"], userid="ZhangWei", chatid=CHAT),
                                  token=TOKEN, encoding_aes_key=AES_KEY, bad_signature=True, http=client)
    assert refused.status_code == 403 and "encrypt" not in refused.text


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bot, FakeWeCom]]:
    """`safetybot serve` as it runs by default (a handler process handles what the web process records)."""
    with FakeWeCom(window=60.0) as server:
        server.add_webhook_key(WEBHOOK_KEY)
        for bot in start_bot(tmp_path_factory.mktemp("wecom-callback-cards"), server, bot_mode="callback",
                             extra_toml="\n[cards]\nenabled = true\n"):
            yield bot, server


def test_served_with_a_handler_process_the_refresh_and_the_tap_are_answered_from_the_outbox(
    served: tuple[Bot, FakeWeCom]
) -> None:
    bot, fake = served
    driver = CallbackDriver(f"{bot.url}/wecom/callback", TOKEN, AES_KEY)
    _, done = _report(driver, fake)
    assert done["msgtype"] == "stream_with_template_card"
    task = done["template_card"]["task_id"]
    fixed = _tap(driver, "整改 #1", task, userid="WangJianGuo")
    assert "王建国 点了「整改」" in fixed["main_title"]["desc"]
    assert bot.query("select status from hazard") == [("rectified",)]
    assert bot.query("select channel, state from outbox where channel = 'wecom_passive' and kind <> 'replies'") == [
        ("wecom_passive", "sent"), ("wecom_passive", "sent")]


def test_the_fake_refuses_passive_answers_wecom_would_drop() -> None:
    card = {"card_type": "button_interaction", "main_title": {"title": "隐患 #1"}, "task_id": "sb-1",
            "button_list": [{"text": "销号", "key": "销号 #1"}]}
    done = {"id": "s1", "finish": True, "content": "已登记隐患 #1"}
    assert passive_problem({"msgtype": "stream_with_template_card", "stream": done, "template_card": card},
                           stream_id="s1") is None
    assert passive_problem({"msgtype": "stream", "stream": done}, stream_id="s2") == "stream.id is not the refreshed stream's"
    assert passive_problem({"msgtype": "stream_with_template_card", "stream": {**done, "finish": False},
                            "template_card": card}) == "the card comes with the finished stream"
    assert passive_problem({"msgtype": "text", "text": {"content": "x"}}) == "invalid msgtype 'text'"
    assert passive_problem({"msgtype": "stream", "stream": {**done, "content": "长" * 7000}})
    assert passive_problem({"msgtype": "stream_with_template_card", "stream": done,
                            "template_card": {**card, "card_type": "text_notice"}})
    assert passive_problem({"response_type": "update_template_card", "template_card": card}, card_event=True) is None
    assert passive_problem({"msgtype": "stream", "stream": done}, card_event=True)
