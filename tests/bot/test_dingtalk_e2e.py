"""End to end: `safetybot serve` as a subprocess against the fake DingTalk (HTTP callback, Stream, pushes)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, func, select

from bot.config import load_config
from bot.services import build_pushes
from handlers.messages import Reply
from models.tables import AttachmentFile, GroupRow, Hazard, InboundMessage, PlatformApiCalls
from tests.conftest import CAMPAIGN_NOW, EXAMPLE_CONFIG, REPO_ROOT, campaign_clock, with_local_storage
from tests.fakes.dingtalk_server import FakeDingTalk, post_callback, robot_message

REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"
HTTP_KEY, HTTP_SECRET = "dinghttp0001", "http-app-secret-0001"
STREAM_KEY, STREAM_SECRET = "dingstream0001", "stream-app-secret-0001"
WEBHOOK_TOKEN, WEBHOOK_SECRET = "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "SECfedcba9876543210fedcba9876543210"
HTTP_CID, STREAM_CID = "cidHttpStaff0001==", "cidStreamStaff001=="
SECRETS = {
    "SAFETYBOT_DT_HTTP_KEY": HTTP_KEY,
    "SAFETYBOT_DT_HTTP_SECRET": HTTP_SECRET,
    "SAFETYBOT_DT_STREAM_KEY": STREAM_KEY,
    "SAFETYBOT_DT_STREAM_SECRET": STREAM_SECRET,
    "SAFETYBOT_DT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    "SAFETYBOT_DT_WEBHOOK_SECRET": WEBHOOK_SECRET,
}


def config_text(tmp: Path, base_url: str) -> str:
    text = with_local_storage(
        EXAMPLE_CONFIG.read_text(encoding="utf-8"),
        db_url=f"sqlite:///{tmp / 'safetybot.db'}",
        data_dir=str(tmp / "data"),
        handler_processes=1,  # as `safetybot serve` runs by default
    )
    return text + f"""
[dingtalk]
api_base = "{base_url}"
oapi_base = "{base_url}"

[[dingtalk.robots]]
id = "dt-http"
mode = "callback"
credentials = {{ app_key = "SAFETYBOT_DT_HTTP_KEY", app_secret = "SAFETYBOT_DT_HTTP_SECRET" }}

[[dingtalk.robots]]
id = "dt-stream"
mode = "stream"
credentials = {{ app_key = "SAFETYBOT_DT_STREAM_KEY", app_secret = "SAFETYBOT_DT_STREAM_SECRET" }}

[outbox]
window_seconds = 2
retry_base_seconds = 0.2
retry_max_seconds = 1.0

[[groups]]
id = "dt-staff"
name = "一中安全工作群（钉钉）"
platform = "dingtalk"
kind = "staff"
units = ["school"]
campaign = "winter-2026"
chat_id = "{HTTP_CID}"
bot = "dt-http"
credentials = {{ webhook_token = "SAFETYBOT_DT_WEBHOOK_TOKEN", webhook_secret = "SAFETYBOT_DT_WEBHOOK_SECRET" }}

[[groups]]
id = "dt-stream-staff"
name = "一中安全工作群（钉钉 Stream）"
platform = "dingtalk"
kind = "staff"
units = ["school"]
campaign = "winter-2026"
chat_id = "{STREAM_CID}"
bot = "dt-stream"
credentials = {{ app_key = "SAFETYBOT_DT_STREAM_KEY", app_secret = "SAFETYBOT_DT_STREAM_SECRET" }}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Bot:
    url: str
    config: Path
    db_url: str
    log: Path
    fake: FakeDingTalk

    def count(self, table: object) -> int:
        engine = create_engine(self.db_url)
        try:
            with Session(engine) as session:
                return session.exec(select(func.count()).select_from(table)).one()  # type: ignore[arg-type]
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    tmp = tmp_path_factory.mktemp("dingtalk-e2e")
    fake = FakeDingTalk()
    fake.add_app(HTTP_KEY, HTTP_SECRET)
    fake.add_app(STREAM_KEY, STREAM_SECRET)
    fake.add_custom_robot(WEBHOOK_TOKEN, secret=WEBHOOK_SECRET)
    fake.start()
    config = tmp / "config.toml"
    config.write_text(config_text(tmp, fake.base_url), encoding="utf-8")
    port = free_port()
    log = tmp / "serve.log"
    env = {**os.environ, **SECRETS, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--config", str(config), "--port", str(port), "--now", CAMPAIGN_NOW],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield Bot(url=url, config=config, db_url=f"sqlite:///{tmp / 'safetybot.db'}", log=log, fake=fake)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        fake.stop()
        output = log.read_text(errors="replace")
        leaked = [name for name, value in SECRETS.items() if value in output]
        leaked += ["an access token" for token in fake.tokens if token in output]
        assert not leaked, f"secrets in the bot's log: {leaked}"


def replies_for(fake: FakeDingTalk, message: dict[str, object], timeout: float = 20) -> list[dict[str, object]]:
    """The sessionWebhook replies to one message (matched by its session)."""
    session = str(message["sessionWebhook"]).split("session=")[1]
    return fake.wait_for(lambda: [m for m in fake.session_messages if m["_session"] == session], timeout)


def text_of(replies: list[dict[str, object]]) -> str:
    return "\n".join(r["markdown"]["text"] for r in replies)  # type: ignore[index]


def test_signed_report_gets_a_number_back(bot: Bot) -> None:
    message = robot_message(bot.fake, text=REPORT, conversation_id=HTTP_CID, robot_code=HTTP_KEY)
    started = time.monotonic()
    response = post_callback(bot.url, HTTP_SECRET, message)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 2.0  # acknowledged before the work is done
    text = text_of(replies_for(bot.fake, message))
    assert re.search(r"已登记隐患 #\d+", text), text
    assert "@0135210002" in text  # 王建国, the responsible person, is @-ed


def test_bad_signature_is_refused_and_nothing_stored(bot: Bot) -> None:
    before = bot.count(InboundMessage)
    message = robot_message(bot.fake, text=REPORT, conversation_id=HTTP_CID)
    assert post_callback(bot.url, "not the secret", message).status_code == 403
    assert post_callback(bot.url, STREAM_SECRET, message).status_code == 403  # a Stream robot's secret
    stale = int(time.time() * 1000) - 2 * 3_600_000
    assert post_callback(bot.url, HTTP_SECRET, message, now_ms=stale).status_code == 403
    assert bot.count(InboundMessage) == before


def test_duplicate_callback_gives_one_hazard(bot: Bot) -> None:
    before = bot.count(Hazard)
    message = robot_message(bot.fake, text=REPORT.replace("3号", "5号"), conversation_id=HTTP_CID)
    for _ in range(3):
        assert post_callback(bot.url, HTTP_SECRET, message).status_code == 200
    replies_for(bot.fake, message)
    time.sleep(1.0)
    assert bot.count(Hazard) == before + 1
    assert len(replies_for(bot.fake, message)) == 1


def test_picture_is_downloaded_and_stored(bot: Bot, tiny_png: bytes) -> None:
    before = bot.count(AttachmentFile)
    message = robot_message(
        bot.fake, text=REPORT.replace("3号", "7号"), pictures=(tiny_png,), conversation_id=HTTP_CID, robot_code=HTTP_KEY
    )
    assert message["msgtype"] == "richText"
    assert post_callback(bot.url, HTTP_SECRET, message).status_code == 200
    assert "照片：1张已保存" in text_of(replies_for(bot.fake, message))
    assert bot.count(AttachmentFile) == before + 1


def test_stream_message_is_acked_and_answered(bot: Bot) -> None:
    fake = bot.fake
    fake.wait_for(lambda: fake.stream_connected, timeout=30)
    opened = fake.stream_opens[-1]
    assert opened["clientId"] == STREAM_KEY
    assert {"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"} in opened["subscriptions"]
    ping = fake.ping_stream("opaque-42")
    assert ping["code"] == 200 and '"opaque-42"' in ping["data"]
    message = robot_message(fake, text=REPORT.replace("3号", "9号"), conversation_id=STREAM_CID, robot_code=STREAM_KEY)
    ack = fake.push_stream(message)
    assert ack["code"] == 200 and ack["headers"]["contentType"] == "application/json"
    assert re.search(r"已登记隐患 #\d+", text_of(replies_for(fake, message)))
    engine = create_engine(bot.db_url)  # the Stream push counted against the month's API budget
    try:
        deadline = time.monotonic() + 10  # counts are written about once a second, so another process waits
        while True:
            with Session(engine) as session:
                kinds = {row.kind for row in session.exec(select(PlatformApiCalls)) if row.platform == "dingtalk"}
            if "stream_message" in kinds or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        engine.dispose()
    assert "stream_message" in kinds


def test_a_stream_picture_is_downloaded_once_by_the_serving_process(bot: Bot, tiny_png: bytes) -> None:
    fake = bot.fake
    fake.wait_for(lambda: fake.stream_connected, timeout=30)
    download = ("POST", "/v1.0/robot/messageFiles/download")
    before, downloads = bot.count(AttachmentFile), fake.requests.count(download)
    message = robot_message(
        fake, text=REPORT.replace("3号", "4号"), pictures=(tiny_png,), conversation_id=STREAM_CID, robot_code=STREAM_KEY
    )
    assert fake.push_stream(message)["code"] == 200
    assert "照片：1张已保存" in text_of(replies_for(fake, message))
    assert bot.count(AttachmentFile) == before + 1
    assert fake.requests.count(download) == downloads + 1  # by the web process; the handler process calls no one


def test_stream_reconnects_after_disconnect(bot: Bot) -> None:
    fake = bot.fake
    fake.wait_for(lambda: fake.stream_connected, timeout=30)
    opens = len(fake.stream_opens)
    fake.disconnect_stream()
    fake.wait_for(lambda: len(fake.stream_opens) > opens and fake.stream_connected, timeout=30)
    message = robot_message(fake, text="我的", conversation_id=STREAM_CID, robot_code=STREAM_KEY)
    assert fake.push_stream(message)["code"] == 200
    replies_for(fake, message)


def test_ledger_export_is_uploaded_and_sent_as_sample_file(bot: Bot) -> None:
    fake = bot.fake
    message = robot_message(fake, text="台账", conversation_id=HTTP_CID, sender_staff_id="0135210003", sender_nick="李娜")
    assert post_callback(bot.url, HTTP_SECRET, message).status_code == 200
    assert "隐患台账已导出" in text_of(replies_for(fake, message))
    sent = fake.wait_for(lambda: [m for m in fake.group_messages if m["msgKey"] == "sampleFile"], timeout=20)
    param = sent[0]["msgParam"]
    assert sent[0]["openConversationId"] == HTTP_CID and sent[0]["robotCode"] == HTTP_KEY
    assert param["fileType"] == "xlsx" and param["fileName"].endswith(".xlsx")
    media = fake.media[param["mediaId"]]
    assert media["type"] == "file" and media["data"][:2] == b"PK"


def test_custom_robot_push_is_signed(bot: Bot) -> None:
    """What the scheduler does: enqueue a push into the outbox; the running bot signs and sends it."""
    config = load_config(bot.config)
    engine = create_engine(bot.db_url)
    now = campaign_clock().now()  # the bot's clock (`serve --now`), not the wall clock: the row must be due for it
    pushes = build_pushes(config)  # what the scheduler is given in the bot
    with Session(engine) as session:
        group = session.get(GroupRow, "dt-staff")
        assert group is not None
        created = pushes.enqueue_push(
            session, group=group, dedupe_key="push:e2e:nudge:1",
            replies=[Reply("逾期提醒：请尽快整改 #1", mentions=("wang_jianguo",))],
            now=now, give_up_after=timedelta(minutes=5),
        )
        session.commit()
    engine.dispose()
    assert created == 1
    fake = bot.fake
    pushed = fake.wait_for(lambda: [m for m in fake.webhook_messages if "逾期提醒" in m["markdown"]["text"]], 20)
    assert pushed[0]["_token"] == WEBHOOK_TOKEN
    assert pushed[0]["at"]["atUserIds"] == ["0135210002"] and "@0135210002" in pushed[0]["markdown"]["text"]
    assert fake.webhook_errors == []  # the fake checked timestamp + sign like DingTalk


def test_a_lone_picture_waits_for_the_report_after_it(bot: Bot, tiny_png: bytes) -> None:
    before = bot.count(AttachmentFile)
    picture = robot_message(bot.fake, pictures=(tiny_png,), conversation_id=HTTP_CID, robot_code=HTTP_KEY)
    assert picture["msgtype"] == "picture"
    assert post_callback(bot.url, HTTP_SECRET, picture).status_code == 200
    assert text_of(replies_for(bot.fake, picture)) == "收到1张照片，请接着发隐患内容或「整改 #N 说明」，10分钟内有效。"
    report = robot_message(bot.fake, text=REPORT.replace("3号", "8号"), conversation_id=HTTP_CID, robot_code=HTTP_KEY)
    assert post_callback(bot.url, HTTP_SECRET, report).status_code == 200
    text = text_of(replies_for(bot.fake, report))
    assert re.search(r"已登记隐患 #\d+", text) and "已附上刚才的1张照片" in text, text
    assert bot.count(AttachmentFile) == before + 1


def test_a_report_replying_to_a_picture_takes_that_picture(bot: Bot, tiny_png: bytes) -> None:
    before = bot.count(AttachmentFile)
    message = robot_message(
        bot.fake, text=REPORT.replace("3号", "6号"), replied_picture=tiny_png, conversation_id=HTTP_CID,
        robot_code=HTTP_KEY,
    )
    assert post_callback(bot.url, HTTP_SECRET, message).status_code == 200
    assert "照片：1张已保存" in text_of(replies_for(bot.fake, message))
    assert bot.count(AttachmentFile) == before + 1
