"""End to end: `safetybot serve` as a subprocess, driven by the fake WeCom over real HTTP and WebSocket."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from bot.config import load_config
from bot.services import build_pushes
from handlers.messages import Reply
from models.db import make_engine
from models.tables import GroupRow
from tests.bot.test_wecom import AES_KEY, CHAT, REPORT, ROBOT_WEBHOOK_KEY, SECRET_ENV, TOKEN, WEBHOOK_KEY, wecom_toml
from tests.conftest import CAMPAIGN_NOW, EXAMPLE_CONFIG, REPO_ROOT, campaign_clock, with_local_storage
from tests.fakes.wecom_server import FakeWeCom, post_aibot_callback

BOT_WINDOW = 3.0
# The fake (the "platform") counts a slightly shorter window than the bot: each send is stamped by the
# bot just before the request leaves and by the platform on arrival, so network jitter of a few
# milliseconds must not turn the 21st send into a false 45009.
FAKE_WINDOW = BOT_WINDOW - 0.2
LIMIT = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Bot:
    url: str
    db_path: Path
    config_path: Path
    process: subprocess.Popen[bytes]

    def query(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.db_path) as db:
            return db.execute(sql).fetchall()


def start_bot(tmp: Path, fake: FakeWeCom, *, bot_mode: str, extra_toml: str = "") -> Iterator[Bot]:
    tmp.mkdir(parents=True, exist_ok=True)
    db_path = tmp / "safetybot.db"
    config_path = tmp / "config.toml"
    text = with_local_storage(
        EXAMPLE_CONFIG.read_text(encoding="utf-8"), db_url=f"sqlite:///{db_path}", data_dir=str(tmp / "data"),
        handler_processes=1,  # as `safetybot serve` runs by default
    )
    config_path.write_text(text + wecom_toml(fake, window=BOT_WINDOW, bot_mode=bot_mode) + extra_toml, encoding="utf-8")
    port = free_port()
    env = {**os.environ, **SECRET_ENV, "PYTHONUNBUFFERED": "1"}
    log = (tmp / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--config", str(config_path), "--port", str(port), "--now", CAMPAIGN_NOW],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError((tmp / "serve.log").read_text(errors="replace"))
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, what="safetybot serve")
        yield Bot(url, db_path, config_path, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        served = (tmp / "serve.log").read_text(errors="replace")
        for secret in (WEBHOOK_KEY, ROBOT_WEBHOOK_KEY, AES_KEY, TOKEN):
            assert secret not in served, "a secret appeared in the bot's log"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWeCom]:
    with FakeWeCom(rate_limit=LIMIT, window=FAKE_WINDOW) as server:
        server.add_webhook_key(WEBHOOK_KEY)
        server.add_webhook_key(ROBOT_WEBHOOK_KEY)
        server.ws_bots["aibot-id-1"] = "aibot-secret-1"
        yield server


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, fake: FakeWeCom) -> Iterator[Bot]:
    yield from start_bot(tmp_path_factory.mktemp("wecom-callback"), fake, bot_mode="callback")


def say(bot: Bot, fake: FakeWeCom, text: str, *, userid: str = "ZhangWei", msgid: str | None = None,
        **kwargs: object) -> tuple[dict, httpx.Response]:
    message = fake.aibot_text(f"@安全助手 {text}", userid=userid, chatid=CHAT, msgid=msgid)
    response = post_aibot_callback(f"{bot.url}/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY,
                                   **kwargs)  # type: ignore[arg-type]
    return message, response


def reply_for(fake: FakeWeCom, message: dict) -> str:
    code = message["response_url"].rsplit("=", 1)[1]
    found = wait_for(lambda: [r for r in fake.responses if r["response_code"] == code], what="the reply")
    return str(found[0]["markdown"]["content"])  # type: ignore[index]


def test_report_reply_bad_signature_and_retry(bot: Bot, fake: FakeWeCom) -> None:
    before = bot.query("select count(*) from inbound_message")[0][0]
    _, refused = say(bot, fake, REPORT, bad_signature=True)
    assert refused.status_code == 403
    assert bot.query("select count(*) from inbound_message")[0][0] == before

    started = time.monotonic()
    message, response = say(bot, fake, REPORT)
    assert response.status_code == 200 and time.monotonic() - started < 1.0
    text = reply_for(fake, message)
    number = re.search(r"已登记隐患 #(\d+)", text)
    assert number, text

    # WeCom retries after 5 s with the same msgid: acknowledged, not stored again.
    _, retry = say(bot, fake, REPORT, msgid=message["msgid"])
    assert retry.status_code == 200
    time.sleep(1.0)
    assert bot.query("select count(*) from hazard")[0][0] == 1
    assert bot.query(f"select count(*) from inbound_message where platform_msg_id = '{message['msgid']}'")[0][0] == 1

    shown, _ = say(bot, fake, f"查看 #{number.group(1)}")
    assert f"#{number.group(1)}" in reply_for(fake, shown)


def test_statistics_and_ledger_file(bot: Bot, fake: FakeWeCom) -> None:
    before = len(fake.sent_to(WEBHOOK_KEY))
    stats, _ = say(bot, fake, "统计", userid="LiNa")
    assert "发现" in reply_for(fake, stats)
    images = [s for s in fake.sent_to(WEBHOOK_KEY)[before:] if s.msgtype == "image"]
    for image in images:  # once the charts land, 统计 carries a chart: the fake checked its md5 already
        raw = base64.b64decode(image.body["image"]["base64"])
        assert hashlib.md5(raw).hexdigest() == image.body["image"]["md5"] and raw.startswith(b"\x89PNG")

    ledger, _ = say(bot, fake, "台账", userid="LiNa")
    assert "隐患台账已导出" in reply_for(fake, ledger)
    files = wait_for(lambda: [s for s in fake.sent_to(WEBHOOK_KEY) if s.msgtype == "file"], what="the ledger file")
    key, filename, data = fake.uploads[files[0].body["file"]["media_id"]]  # type: ignore[index]
    assert key == WEBHOOK_KEY and filename.endswith(".xlsx") and data.startswith(b"PK")


def test_45_pushes_within_the_rate_limit(bot: Bot, fake: FakeWeCom) -> None:
    config = load_config(bot.config_path)
    group = next(g for g in config.groups if g.id == "wecom-staff")
    db = make_engine(config.database.url)
    marker = f"推送{time.monotonic_ns()}"
    now = campaign_clock().now()  # the bot's clock (`serve --now`): the rows must be due for it
    pushes = build_pushes(config)  # what the scheduler is given in the bot
    with Session(db) as session:
        row = session.get(GroupRow, group.id)
        assert row is not None
        for i in range(45):
            for _ in range(2):  # the second attempt of each push must store nothing
                pushes.enqueue_push(
                    session, group=row, dedupe_key=f"test:{marker}:{i}", replies=[Reply(f"{marker} 第{i}条")],
                    now=now, give_up_after=timedelta(hours=1),
                )
        session.commit()
    started = time.monotonic()

    def ours() -> list:
        return [s for s in fake.sent_to(WEBHOOK_KEY) if s.content.startswith(marker)]

    wait_for(lambda: len(ours()) >= 45, timeout=60, what="45 pushes")
    time.sleep(BOT_WINDOW)  # nothing more may arrive
    sent = ours()
    contents = [s.content for s in sent]
    assert sorted(contents) == sorted(f"{marker} 第{i}条" for i in range(45)), "each push exactly once"
    everything = fake.sent_to(WEBHOOK_KEY)
    for first in everything:
        within = [s for s in everything if first.at <= s.at < first.at + FAKE_WINDOW]
        assert len(within) <= LIMIT
    assert all(code != 45009 for key, code in fake.attempts if key == WEBHOOK_KEY), "the bot exceeded the limit"
    assert time.monotonic() - started < 3 * BOT_WINDOW + 10


@pytest.fixture(scope="module")
def ws_bot(tmp_path_factory: pytest.TempPathFactory, fake: FakeWeCom) -> Iterator[Bot]:
    yield from start_bot(tmp_path_factory.mktemp("wecom-ws"), fake, bot_mode="websocket")


def test_long_connection_message_gets_a_reply_over_ws(ws_bot: Bot, fake: FakeWeCom) -> None:
    assert fake.wait_subscribed(20), "the bot did not subscribe over the long connection"
    body = fake.aibot_text("@安全助手 " + REPORT, userid="ZhangWei", chatid=CHAT)
    req_id = wait_for(lambda: _try_push(fake, body), what="a live connection")

    def answered() -> list:
        return [f for f in fake.ws_received if f.get("cmd") == "aibot_respond_msg" and f["headers"]["req_id"] == req_id]

    frames = wait_for(answered, what="the reply over the long connection")
    stream = frames[0]["body"]["stream"]  # type: ignore[index]
    assert frames[0]["body"]["msgtype"] == "stream" and stream["finish"] is True  # type: ignore[index]
    assert re.search(r"已登记隐患 #\d+", stream["content"]), stream["content"]
    assert ws_bot.query("select count(*) from hazard")[0][0] == 1


def test_a_photo_over_the_long_connection_is_downloaded_once_before_the_handler_process_gets_it(
    ws_bot: Bot, fake: FakeWeCom, tiny_png: bytes
) -> None:
    """The serving process downloads the photo after the frame is recorded; its handler process calls no platform."""
    assert fake.wait_subscribed(20), "the bot did not subscribe over the long connection"
    gets, photos = len(fake.media_gets), ws_bot.query("select count(*) from attachment")[0][0]
    key = os.urandom(32)
    url = fake.host_media(tiny_png, key)
    body = fake.aibot_text("", userid="ZhangWei", chatid=CHAT)
    del body["text"]
    body.update(msgtype="mixed", mixed={"msg_item": [
        {"msgtype": "text", "text": {"content": "@安全助手 " + REPORT.replace("二楼", "四楼")}},
        {"msgtype": "image", "image": {"url": url, "aeskey": base64.b64encode(key).decode()}},
    ]})
    req_id = wait_for(lambda: _try_push(fake, body), what="a live connection")

    def answered() -> list:
        return [f for f in fake.ws_received if f.get("cmd") == "aibot_respond_msg" and f["headers"]["req_id"] == req_id]

    frames = wait_for(answered, what="the reply over the long connection")
    assert "照片：1张已保存" in frames[0]["body"]["stream"]["content"]  # type: ignore[index]
    assert len(fake.media_gets) == gets + 1
    assert ws_bot.query("select count(*) from attachment")[0][0] == photos + 1
    assert ws_bot.query("select count(*) from inbound_attachment")[0][0] == 0


def _try_push(fake: FakeWeCom, body: dict) -> str | None:
    try:
        return fake.push_ws("aibot-id-1", body)
    except RuntimeError:
        return None
