"""DingTalk adapter: signing vectors, callback verification and dedupe, parsing, rendering, deliveries."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, create_engine, func, select

from bot.app import create_app
from bot.config import load_config
from bot.platforms.replies import render_capped
from bot.outbox import OutboxSender
from bot.platforms import dingtalk
from bot.platforms.dingtalk.inbound import to_inbound
from bot.secrets import Secrets
from bot.services import build_pushes
from handlers.messages import Reply
from models import outbox as outbox_store
from bot.photo_retry import fetch_missing_photos
from models.ledger import photo_path
from models.tables import AttachmentFile, GroupRow, Hazard, InboundAttachment, InboundMessage, OutboxMessage
from tests.fakes.full_disk import FullDisk
from tests.fakes.dingtalk_server import FakeDingTalk, callback_headers, post_callback, robot_message
from tests.fakes.internal_page import SECRET as page_secret, InternalPage
from tests.conftest import campaign_clock

REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"
APP_KEY, APP_SECRET = "dingapp0001", "app-secret-0001-abcdef"
WEBHOOK_TOKEN, WEBHOOK_SECRET = "1c53e149ba5de6597ca2442f0e901fd8", "SEC0123456789abcdef0123456789abcdef"
ENV = {
    "SAFETYBOT_DT_APP_KEY": APP_KEY,
    "SAFETYBOT_DT_APP_SECRET": APP_SECRET,
    "SAFETYBOT_DT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    "SAFETYBOT_DT_WEBHOOK_SECRET": WEBHOOK_SECRET,
}


def dingtalk_toml(base_url: str, *, stream: bool = False, window_seconds: float = 60.0) -> str:
    """Config blocks appended to the example config: robots, a DingTalk group, a fast outbox."""
    mode = "stream" if stream else "callback"
    return f"""
[dingtalk]
api_base = "{base_url}"
oapi_base = "{base_url}"

[[dingtalk.robots]]
id = "dt-app"
mode = "{mode}"
credentials = {{ app_key = "SAFETYBOT_DT_APP_KEY", app_secret = "SAFETYBOT_DT_APP_SECRET" }}

[outbox]
window_seconds = {window_seconds}
retry_base_seconds = 0.2
retry_max_seconds = 1.0

[[groups]]
id = "dt-staff"
name = "一中安全工作群（钉钉）"
platform = "dingtalk"
kind = "staff"
units = ["school"]
campaign = "winter-2026"
chat_id = "cidSafetyStaff001=="
bot = "dt-app"
credentials = {{ webhook_token = "SAFETYBOT_DT_WEBHOOK_TOKEN", webhook_secret = "SAFETYBOT_DT_WEBHOOK_SECRET" }}
"""


@pytest.fixture
def fake() -> Iterator[FakeDingTalk]:
    server = FakeDingTalk()
    server.add_app(APP_KEY, APP_SECRET)
    server.add_custom_robot(WEBHOOK_TOKEN, secret=WEBHOOK_SECRET)
    with server:
        yield server


@pytest.fixture
def dt_config(config_path: Path, fake: FakeDingTalk) -> Path:
    config_path.write_text(config_path.read_text(encoding="utf-8") + dingtalk_toml(fake.base_url), encoding="utf-8")
    return config_path


@pytest.fixture
def client(dt_config: Path) -> Iterator[TestClient]:
    app = create_app(load_config(dt_config), secrets=Secrets(environ=ENV), clock=campaign_clock())
    with TestClient(app) as test_client:
        yield test_client


def count(client: TestClient, table: Any) -> int:
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        return session.exec(select(func.count()).select_from(table)).one()


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["markdown"]["text"] if m["msgtype"] == "markdown" else m["text"]["content"] for m in messages)


# -- signing -------------------------------------------------------------------------------------

VECTORS = [
    ("1577262236757", "this is secret", "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="),
    ("1577262236757", "this is a secret", "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA="),
    ("1582163555000", "SECb90923e19e58b466481e9e7b7a5b4f108a4531abde590ad3967fb29f0eae5c68",
     "BQKsG+QOCl+bYJOLc6pxDHxjVquzlZPWgvRzeN2J5zY="),
    ("1700000000000", "SEC1234567890abcdef", "RqBq3E1RTBDv3n2QBCh4adZ2WHk9mVklyUoDBLxarjI="),
]


@pytest.mark.parametrize(("timestamp", "secret", "expected"), VECTORS)
def test_sign_vectors(timestamp: str, secret: str, expected: str) -> None:
    assert dingtalk.sign(timestamp, secret) == expected
    assert dingtalk.sign(int(timestamp), secret) == expected


def test_signed_webhook_url_encodes_the_sign_once() -> None:
    url = dingtalk.signed_webhook_url(
        "https://oapi.dingtalk.com/robot/send?access_token=1c53e149ba5de6597ca2442f0e901fd86156780b8ac141e4a75afdc44c85ca4f",
        "SECb90923e19e58b466481e9e7b7a5b4f108a4531abde590ad3967fb29f0eae5c68",
        1582163555000,
    )
    assert url.endswith("&timestamp=1582163555000&sign=BQKsG%2BQOCl%2BbYJOLc6pxDHxjVquzlZPWgvRzeN2J5zY%3D")
    assert dingtalk.signed_webhook_url("https://x/robot/send?access_token=t", "this is secret", 1577262236757).endswith(
        "&timestamp=1577262236757&sign=hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D"
    )


def test_login_free_signature_is_not_the_robot_signature() -> None:
    assert dingtalk.sign("1546084445901", "testappSecret") != "HCbG3xNE3vzhO+u7qCUL1jS5hsu2n5r2cFhnTrtyDAE="


def test_verify_callback_window_and_encoding() -> None:
    ts, secret, good = 1577262236757, "this is a secret", "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA="
    assert dingtalk.verify_callback(str(ts), good, secret, ts)
    assert dingtalk.verify_callback(str(ts), good, secret, ts + 3_600_000)
    assert dingtalk.verify_callback(str(ts), good, secret, ts - 3_600_000)
    assert not dingtalk.verify_callback(str(ts), good, secret, ts + 3_600_001)
    assert not dingtalk.verify_callback(str(ts), good, secret, ts - 3_600_001)
    assert not dingtalk.verify_callback(str(ts), good.replace("=", "%3D"), secret, ts)  # header is not URL-encoded
    assert not dingtalk.verify_callback(str(ts), good, "another secret", ts)
    assert not dingtalk.verify_callback(None, good, secret, ts)
    assert not dingtalk.verify_callback("abc", good, secret, ts)
    assert not dingtalk.verify_callback(str(ts), None, secret, ts)


def test_redact_hides_tokens_signs_sessions_and_known_secrets() -> None:
    text = (
        "POST http://h/robot/send?access_token=abcd1234&timestamp=1&sign=xy%2Bz "
        "http://h/robot/sendBySession?session=s3cr3t {\"accessToken\": \"tok999\"} my-secret-value"
    )
    redacted = dingtalk.redact(text, "my-secret-value")
    for secret in ("abcd1234", "xy%2Bz", "s3cr3t", "tok999", "my-secret-value"):
        assert secret not in redacted
    assert "timestamp=1" in redacted


# -- parsing and rendering -----------------------------------------------------------------------


def test_parse_text_picture_rich_text_and_audio(fake: FakeDingTalk, tiny_png: bytes) -> None:
    text = dingtalk.parse_robot_message(robot_message(fake, text="隐患 部位：食堂"))
    assert text is not None and text.text == "隐患 部位：食堂" and text.download_codes == ()
    assert text.sender_id == "0135210001" and text.conversation_id == "cidSafetyStaff001=="
    assert text.session_webhook.startswith(fake.base_url) and text.session_expires_ms > 0

    picture = dingtalk.parse_robot_message(robot_message(fake, pictures=(tiny_png,)))
    assert picture is not None and picture.msgtype == "picture" and len(picture.download_codes) == 1 and not picture.text

    rich = dingtalk.parse_robot_message(robot_message(fake, text=REPORT, pictures=(tiny_png, tiny_png)))
    assert rich is not None and rich.msgtype == "richText" and rich.text == REPORT and len(rich.download_codes) == 2

    audio = dict(robot_message(fake, text="x"), msgtype="audio", content={"downloadCode": "d", "recognition": "查看 #3"})
    parsed = dingtalk.parse_robot_message(audio)
    assert parsed is not None and parsed.text == "查看 #3"

    assert dingtalk.parse_robot_message(dict(robot_message(fake, text="x"), msgtype="file", content={})) is None

    reply = dingtalk.parse_robot_message(robot_message(fake, text="整改 #3 已清理", replied_picture=tiny_png))
    assert reply is not None and reply.text == "整改 #3 已清理" and len(reply.download_codes) == 1
    odd = robot_message(fake, text="整改 #3")
    odd["text"]["repliedMsg"] = {"msgType": "text", "content": "not a mapping"}
    assert dingtalk.parse_robot_message(odd).download_codes == ()  # type: ignore[union-attr]
    assert dingtalk.parse_robot_message({"msgtype": "text", "text": {"content": "hi"}}) is None  # no ids


def test_markdown_parts_split_on_lines_and_carry_the_at() -> None:
    lines = [f"#{i} 3号教学楼二楼东侧消防通道堆放杂物，需要尽快清理｜王建国｜期限11-30" for i in range(1, 120)]
    text = "\n".join(lines)
    parts = dingtalk.markdown_parts(text, user_ids=["0135210002"], mobiles=["13800000003"])
    assert len(parts) > 1
    for part in parts:
        assert len(part.text.encode()) <= dingtalk.MARKDOWN_MAX_BYTES
    # every line survives whole, in order; "#12" does not become a heading
    rebuilt = "  \n".join(p.plain for p in parts)
    assert rebuilt.split("  \n") == ["＃" + line[1:] for line in lines]
    assert parts[0].at == {"atUserIds": ["0135210002"], "atMobiles": ["13800000003"], "isAtAll": False}
    assert parts[0].text.endswith("@0135210002 @13800000003")
    assert all("atUserIds" not in p.at for p in parts[1:])
    assert parts[0].title.startswith("#1 ") and len(parts[0].title) <= 24  # a title is plain text


def test_markdown_never_cuts_a_character() -> None:
    text = "安" * 5000  # one line longer than the limit: cut, but only between characters
    parts = dingtalk.markdown_parts(text)
    assert "".join(p.plain for p in parts) == text
    assert all(len(p.text.encode()) <= dingtalk.MARKDOWN_MAX_BYTES for p in parts)


# -- the HTTP callback ---------------------------------------------------------------------------


def test_bad_sign_stale_timestamp_oversize_and_broken_json_store_nothing(client: TestClient, fake: FakeDingTalk) -> None:
    body = json.dumps(robot_message(fake, text=REPORT), ensure_ascii=False).encode()
    now = int(time.time() * 1000)
    bad = callback_headers("wrong secret", now_ms=now)
    assert client.post("/dingtalk/callback", content=body, headers=bad).status_code == 403
    stale = callback_headers(APP_SECRET, now_ms=now - 3_600_000 - 60_000)
    assert client.post("/dingtalk/callback", content=body, headers=stale).status_code == 403
    assert client.post("/dingtalk/callback", content=body).status_code == 403  # no headers at all
    encoded = dict(callback_headers(APP_SECRET, now_ms=now))
    encoded["sign"] = encoded["sign"].replace("+", "%2B").replace("=", "%3D")
    if encoded["sign"] != callback_headers(APP_SECRET, now_ms=now)["sign"]:
        assert client.post("/dingtalk/callback", content=body, headers=encoded).status_code == 403
    good = callback_headers(APP_SECRET, now_ms=now)
    big = b'{"x":"' + b"a" * (dingtalk.MAX_CALLBACK_BYTES + 10) + b'"}'
    assert client.post("/dingtalk/callback", content=big, headers=good).status_code == 413
    assert client.post("/dingtalk/callback", content=b"{not json", headers=good).status_code == 400
    assert client.post("/dingtalk/callback", content=b"[1, 2]", headers=good).status_code == 400
    assert count(client, InboundMessage) == 0
    assert count(client, Hazard) == 0
    assert fake.session_messages == []


def test_report_is_acknowledged_then_answered_by_session_webhook(client: TestClient, fake: FakeDingTalk) -> None:
    message = robot_message(fake, text=REPORT)
    response = post_callback("", APP_SECRET, message, client=client)
    assert response.status_code == 200, response.text
    reply = fake.wait_for(lambda: fake.session_messages)[0]
    assert reply["msgtype"] == "markdown"
    assert re.search(r"已登记隐患 #\d+", reply["markdown"]["text"])
    assert reply["_session"] in message["sessionWebhook"]
    # the hazard's responsible person (王建国) is @-ed: in `at` and in the text
    assert reply["at"]["atUserIds"] == ["0135210002"]
    assert "@0135210002" in reply["markdown"]["text"]
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        row = session.exec(select(OutboxMessage)).first()
        assert row is not None and row.channel == dingtalk.CH_SESSION and row.robot == "dingtalk:app:dt-app:dt-staff"


def test_a_report_hundreds_of_lines_long_is_stored_whole_and_answered_in_at_most_three_messages(
    client: TestClient, fake: FakeDingTalk
) -> None:
    problem = "\n".join(f"第{i}处插座老化，电线裸露" for i in range(3000))
    message = robot_message(fake, text=f"隐患\n部位：3号教学楼\n问题：{problem}\n期限：明天")
    assert post_callback("", APP_SECRET, message, client=client).status_code == 200
    fake.wait_for(lambda: fake.session_messages)
    db = client.app.state.engine.db  # type: ignore[attr-defined]
    fake.wait_for(lambda: not outbox_store.list_messages(db, state="pending"))
    with Session(db) as session:
        hazard = session.exec(select(Hazard)).one()
    assert hazard.problem == problem  # the ledger keeps everything; only the reply is short
    assert 1 <= len(fake.session_messages) <= 3
    shown = "".join(message["markdown"]["text"] for message in fake.session_messages)
    assert "已登记隐患 #1" in shown and re.search(r"……回复太长，另有 \d+ 行未显示", shown)


def test_many_separate_replies_become_at_most_three_messages_plus_attachments(tiny_png: bytes) -> None:
    # DingTalk sends each reply as its own message: ten replies would be ten messages.
    route = {"robot": "dingtalk:app:dt-app:dt-staff", "session_webhook": "https://example.invalid/s"}
    few = [Reply("第一条"), Reply("第二条")]
    many = [Reply(f"第{i}条回复") for i in range(10)] + [Reply("统计图", image_png=tiny_png)]
    with Session(create_engine("sqlite://")) as session:
        assert len(render_capped(dingtalk.render_replies, session, few, route)) == 2  # unchanged
        drafts = render_capped(dingtalk.render_replies, session, many, route)
    assert [d.kind for d in drafts] == ["markdown", "image"]
    text = drafts[0].payload["body"]["markdown"]["text"]  # type: ignore[index]
    assert "第0条回复" in text and "第9条回复" in text and "统计图" in text


def test_echoed_user_text_cannot_link_or_format(client: TestClient, fake: FakeDingTalk) -> None:
    """The report echo must not render a disguised link; the bot's own @ still goes with the reply."""
    text = "隐患\n部位：3号教学楼\n问题：[点这里](http://evil.example) 领奖 **紧急** <font color=red>红字</font>\n责任人：王建国"
    assert post_callback("", APP_SECRET, robot_message(fake, text=text), client=client).status_code == 200
    reply = fake.wait_for(lambda: fake.session_messages)[0]
    shown = reply["markdown"]["text"]
    assert "](" not in shown and "**" not in shown and "<font" not in shown, shown
    assert "问题：[点这里］(http://evil.example) 领奖 ＊＊紧急＊＊ ＜font" in shown
    assert reply["at"]["atUserIds"] == ["0135210002"] and shown.endswith("@0135210002")


def test_duplicate_msg_id_gives_one_hazard_and_one_reply(client: TestClient, fake: FakeDingTalk) -> None:
    message = robot_message(fake, text=REPORT)
    for _ in range(3):  # DingTalk retries a callback it thinks failed
        assert post_callback("", APP_SECRET, message, client=client).status_code == 200
    fake.wait_for(lambda: fake.session_messages)
    time.sleep(0.5)
    assert count(client, InboundMessage) == 1
    assert count(client, Hazard) == 1
    assert len(fake.session_messages) == 1


def test_a_callback_that_finds_the_database_locked_is_answered_503_and_its_retry_is_recorded(
    client: TestClient, fake: FakeDingTalk
) -> None:
    message = robot_message(fake, text=REPORT)
    other = sqlite3.connect(client.app.state.engine.db.url.database, isolation_level=None)  # type: ignore[attr-defined]
    other.execute("BEGIN IMMEDIATE")  # another writer holds SQLite's write lock
    try:
        busy = post_callback("", APP_SECRET, message, client=client)
        assert busy.status_code == 503 and "Traceback" not in busy.text
    finally:
        other.rollback()
        other.close()
    assert post_callback("", APP_SECRET, message, client=client).status_code == 200  # DingTalk's retry
    fake.wait_for(lambda: fake.session_messages)
    assert count(client, InboundMessage) == 1 and count(client, Hazard) == 1


def test_rich_text_report_with_photo_stores_the_photo(client: TestClient, fake: FakeDingTalk, tiny_png: bytes) -> None:
    message = robot_message(fake, text=REPORT, pictures=(tiny_png,))
    assert post_callback("", APP_SECRET, message, client=client).status_code == 200
    reply = fake.wait_for(lambda: fake.session_messages)[0]
    assert "照片：1张已保存" in reply["markdown"]["text"]
    assert count(client, AttachmentFile) == 1
    assert ("POST", "/v1.0/robot/messageFiles/download") in fake.requests


DOWNLOAD = ("POST", "/v1.0/robot/messageFiles/download")


class _LostHandOff:
    """A handler process that dies with the messages handed to it."""

    def __init__(self) -> None:
        self.lost: list[int] = []

    def submit(self, inbound_id: int) -> None:
        self.lost.append(inbound_id)

    def pending(self) -> set[int]:
        return set()


def _files_fetched(fake: FakeDingTalk) -> int:
    return sum(1 for method, path in fake.requests if method == "GET" and path.startswith("/files/"))


def test_pictures_are_downloaded_once_by_the_receiving_side_before_the_hand_over(
    client: TestClient, fake: FakeDingTalk, tiny_png: bytes
) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    runtime.hand_off = lost = _LostHandOff()
    assert post_callback("", APP_SECRET, robot_message(fake, text=REPORT, pictures=(tiny_png,)), client=client).status_code == 200
    fake.wait_for(lambda: lost.lost)
    assert count(client, InboundAttachment) == 1 and count(client, Hazard) == 0
    assert fake.requests.count(DOWNLOAD) == 1 and _files_fetched(fake) == 1
    # Handled after its handler process died: with the stored picture, and no call to DingTalk.
    assert client.portal.call(lambda: runtime.recover(older_than=timedelta(0))) == 1
    reply = fake.wait_for(lambda: fake.session_messages)[0]
    assert "照片：1张已保存" in reply["markdown"]["text"]
    assert count(client, AttachmentFile) == 1 and count(client, InboundAttachment) == 0
    assert fake.requests.count(DOWNLOAD) == 1 and _files_fetched(fake) == 1


def test_a_text_report_makes_no_download_call(client: TestClient, fake: FakeDingTalk) -> None:
    assert post_callback("", APP_SECRET, robot_message(fake, text=REPORT), client=client).status_code == 200
    reply = fake.wait_for(lambda: fake.session_messages)[0]
    assert "已登记隐患 #1" in reply["markdown"]["text"]
    assert DOWNLOAD not in fake.requests and _files_fetched(fake) == 0


def test_recovery_after_a_crash_between_record_and_download_still_attaches_the_picture(
    client: TestClient, fake: FakeDingTalk, tiny_png: bytes
) -> None:
    """Recorded and acknowledged, then the process died before the download: recovery downloads by the code."""
    app = client.app
    platform, engine, runtime = app.state.dingtalk, app.state.engine, app.state.runtime  # type: ignore[attr-defined]
    parsed = dingtalk.parse_robot_message(robot_message(fake, text=REPORT, pictures=(tiny_png,)))
    assert parsed is not None
    robot = platform.config.dingtalk.robots[0]
    msg, route = to_inbound(platform.ctx, parsed, robot)  # what the callback records
    assert engine.record(msg, route=route).inbound_id is not None
    assert DOWNLOAD not in fake.requests
    assert client.portal.call(lambda: runtime.recover(older_than=timedelta(0))) == 1
    reply = fake.wait_for(lambda: fake.session_messages)[0]
    assert "照片：1张已保存" in reply["markdown"]["text"]
    assert count(client, AttachmentFile) == 1 and count(client, InboundAttachment) == 0
    assert fake.requests.count(DOWNLOAD) == 1


def test_a_photo_that_meets_a_full_disk_is_downloaded_again_with_its_code_once_space_returns(
    client: TestClient, fake: FakeDingTalk, tiny_png: bytes
) -> None:
    app = client.app
    data_dir: Path = app.state.engine.data_dir  # type: ignore[attr-defined]
    app.state.data_dir_probe.ttl = 0  # type: ignore[attr-defined]  # probe on every call: no waiting out the cache
    message = robot_message(fake, text=REPORT, pictures=(tiny_png,))
    with FullDisk(data_dir) as disk:
        assert post_callback("", APP_SECRET, message, client=client).status_code == 200
        reply = fake.wait_for(lambda: fake.session_messages)[0]
        assert "已登记隐患 #1" in reply["markdown"]["text"]
        assert "照片暂未保存（服务器存储空间不足），稍后自动重试" in reply["markdown"]["text"]
        assert count(client, Hazard) == 1 and disk.refused >= 1
        assert not [path for path in data_dir.rglob("*") if path.is_file()]
        disk.space_returns()
        downloads = fake.requests.count(("POST", "/v1.0/robot/messageFiles/download"))
        runtime, probe = app.state.runtime, app.state.data_dir_probe  # type: ignore[attr-defined]
        assert client.portal.call(fetch_missing_photos, runtime, probe) == 1
    assert fake.requests.count(("POST", "/v1.0/robot/messageFiles/download")) == downloads + 1  # same code again
    with Session(app.state.engine.db) as session:  # type: ignore[attr-defined]
        photo = session.exec(select(AttachmentFile)).one()
    assert not photo.missing and photo_path(data_dir, photo.sha256).read_bytes() == tiny_png


def test_export_sends_the_xlsx_through_media_upload_and_sample_file(client: TestClient, fake: FakeDingTalk) -> None:
    post_callback("", APP_SECRET, robot_message(fake, text=REPORT), client=client)
    fake.wait_for(lambda: fake.session_messages)
    message = robot_message(fake, text="台账", sender_staff_id="0135210003", sender_nick="李娜")
    assert post_callback("", APP_SECRET, message, client=client).status_code == 200
    sent = fake.wait_for(lambda: fake.group_messages)
    assert sent[0]["msgKey"] == "sampleFile"
    param = sent[0]["msgParam"]
    assert param["fileType"] == "xlsx" and param["fileName"].endswith(".xlsx")
    assert fake.media[param["mediaId"]]["type"] == "file"
    assert fake.media[param["mediaId"]]["data"][:2] == b"PK"
    assert sent[0]["openConversationId"] == "cidSafetyStaff001==" and sent[0]["robotCode"] == APP_KEY
    assert "隐患台账已导出" in texts(fake.wait_for(lambda: fake.session_messages[1:]))


# -- deliveries, directly --------------------------------------------------------------------------


class Harness:
    """Deliveries wired to the fake server without the web app, with a short HTTP timeout."""

    def __init__(self, dt_config: Path, fake: FakeDingTalk, environ: dict[str, str] | None = None) -> None:
        from bot.app import build_engine
        from bot.platforms.base import PlatformDeps

        config = load_config(dt_config)
        self.engine = build_engine(config)
        self.engine.start()
        # No keep-alive: each test may drive the client from a fresh event loop (anyio.run).
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(1.0), limits=httpx.Limits(max_keepalive_connections=0))
        self.ctx = dingtalk.DingTalkContext(
            PlatformDeps(config=config, secrets=Secrets(environ=ENV if environ is None else environ), http=self.http,
                         db=self.engine.db, now=self.engine.now),
            clock_ms=lambda: int(time.time() * 1000),
        )
        self.api = dingtalk.DingTalkApi(self.http, api_base=fake.base_url, oapi_base=fake.base_url)
        self.openapi = dingtalk.OpenApiDelivery(self.ctx, self.api)
        self.webhook = dingtalk.CustomWebhookDelivery(self.ctx, self.api)
        self.session = dingtalk.SessionWebhookDelivery(self.ctx, self.api, self.openapi)

    def row(self, channel: str, kind: str, payload: dict[str, Any], blob: bytes | None = None) -> OutboxMessage:
        now = datetime.now(timezone.utc)
        return OutboxMessage(
            id=1, dedupe_key="k", platform="dingtalk", channel=channel, robot="r", group_id=payload.get("group_id"),
            kind=kind, payload=json.dumps(payload, ensure_ascii=False), blob=blob, created_at=now,
            next_attempt_at=now, give_up_at=now,
        )


def _markdown_body(text: str = "每日提醒 #3") -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"title": "提醒", "text": text}, "at": {"isAtAll": False}}


def test_custom_robot_push_is_signed_and_rate_limited(dt_config: Path, fake: FakeDingTalk) -> None:
    fake.rate_limit = 3
    harness = Harness(dt_config, fake)

    async def run() -> list[dingtalk.DeliveryResult]:
        row = harness.row(dingtalk.CH_WEBHOOK, "markdown", {"group_id": "dt-staff", "body": _markdown_body()})
        return [await harness.webhook.deliver(row) for _ in range(4)]

    results = anyio.run(run)
    assert [r.ok for r in results] == [True, True, True, False]
    assert results[3].retryable and results[3].rate_limited and "130101" in results[3].error
    assert len(fake.webhook_messages) == 3 and fake.webhook_messages[0]["_token"] == WEBHOOK_TOKEN


def test_custom_robot_wrong_secret_fails_permanently_without_leaking(dt_config: Path, fake: FakeDingTalk) -> None:
    harness = Harness(dt_config, fake, environ={**ENV, "SAFETYBOT_DT_WEBHOOK_SECRET": "SECwrongwrongwrongwrong"})
    row = harness.row(dingtalk.CH_WEBHOOK, "markdown", {"group_id": "dt-staff", "body": _markdown_body()})
    result = anyio.run(harness.webhook.deliver, row)
    assert not result.ok and not result.retryable and "310000" in result.error
    assert WEBHOOK_TOKEN not in result.error and "SECwrong" not in result.error
    assert fake.webhook_errors and fake.webhook_messages == []


def test_network_errors_and_5xx_are_retried(dt_config: Path, fake: FakeDingTalk) -> None:
    harness = Harness(dt_config, fake)
    row = harness.row(dingtalk.CH_WEBHOOK, "markdown", {"group_id": "dt-staff", "body": _markdown_body()})
    fake.fail_next("/robot/send", 502)
    fake.fail_next("/robot/send", "drop")

    async def run() -> list[dingtalk.DeliveryResult]:
        return [await harness.webhook.deliver(row) for _ in range(3)]

    first, second, third = anyio.run(run)
    assert not first.ok and first.retryable and "502" in first.error and not first.rate_limited
    assert not second.ok and second.retryable and WEBHOOK_TOKEN not in second.error
    assert third.ok


def test_token_is_cached_and_refreshed_when_refused(dt_config: Path, fake: FakeDingTalk, tiny_png: bytes) -> None:
    harness = Harness(dt_config, fake)
    base = {"robot_id": "dt-app", "group_id": "dt-staff", "conversation_id": "cidSafetyStaff001=="}

    async def run() -> list[dingtalk.DeliveryResult]:
        image = harness.row(dingtalk.CH_OPENAPI, "image", {**base, "file_name": "chart.png"}, tiny_png)
        md = harness.row(dingtalk.CH_OPENAPI, "markdown", {**base, "msg_key": "sampleMarkdown",
                                                            "msg_param": {"title": "周报", "text": "### 周报"}})
        results = [await harness.openapi.deliver(image), await harness.openapi.deliver(md)]
        fake.revoke_tokens()
        results.append(await harness.openapi.deliver(md))
        return results

    results = anyio.run(run)
    assert all(r.ok for r in results), results
    assert fake.token_requests == 2  # one for the first two sends, one after the revocation
    keys = [m["msgKey"] for m in fake.group_messages]
    assert keys == ["sampleImageMsg", "sampleMarkdown", "sampleMarkdown"]
    assert fake.media[fake.group_messages[0]["msgParam"]["photoURL"]]["type"] == "image"


def test_openapi_permanent_errors_and_missing_credentials(dt_config: Path, fake: FakeDingTalk) -> None:
    harness = Harness(dt_config, fake)
    bad_key = harness.row(dingtalk.CH_OPENAPI, "markdown", {"robot_id": "dt-app", "conversation_id": "cid",
                                                           "msg_key": "sampleNothing", "msg_param": {}})
    result = anyio.run(harness.openapi.deliver, bad_key)
    assert not result.ok and not result.retryable and "msgKey" in result.error
    fake.fail_next("/v1.0/robot/groupMessages/send", 429)
    md = harness.row(dingtalk.CH_OPENAPI, "markdown", {"robot_id": "dt-app", "conversation_id": "cid",
                                                      "msg_key": "sampleMarkdown", "msg_param": {"title": "t", "text": "x"}})
    throttled = anyio.run(harness.openapi.deliver, md)
    assert throttled.retryable and throttled.rate_limited and throttled.retry_after is None
    fake.retry_after = "12"
    fake.fail_next("/v1.0/robot/groupMessages/send", 429)
    throttled = anyio.run(harness.openapi.deliver, md)
    assert throttled.rate_limited and throttled.retry_after == "12"  # the sender waits as long as it asks
    nobody = Harness(dt_config, fake, environ={})
    assert not anyio.run(nobody.openapi.deliver, md).retryable


def test_expired_session_webhook_falls_back_to_the_openapi(dt_config: Path, fake: FakeDingTalk) -> None:
    harness = Harness(dt_config, fake)
    url, _ = fake.new_session()
    payload = {
        "robot_id": "dt-app", "group_id": "dt-staff", "conversation_id": "cidSafetyStaff001==",
        "url": url, "expires": int(time.time() * 1000) - 1000, "body": _markdown_body("已登记隐患 #1  \n@0135210002"),
        "fallback": {"title": "已登记隐患 #1", "text": "已登记隐患 #1"},
    }
    result = anyio.run(harness.session.deliver, harness.row(dingtalk.CH_SESSION, "markdown", payload))
    assert result.ok
    assert fake.session_messages == []
    assert fake.group_messages[0]["msgParam"] == {"title": "已登记隐患 #1", "text": "已登记隐患 #1"}


def test_push_drafts_use_the_custom_robot_with_at_and_the_openapi_for_files(
    dt_config: Path, fake: FakeDingTalk
) -> None:
    harness = Harness(dt_config, fake)
    config = harness.ctx.config
    replies = [Reply("逾期提醒：#3 请尽快整改", mentions=("wang_jianguo",)), Reply("本周台账", file_name="a.xlsx", file_data=b"PK..")]
    with Session(harness.engine.db) as session:
        drafts = dingtalk.push_drafts(session, config, "dt-staff", replies)
        assert [d.channel for d in drafts] == [dingtalk.CH_WEBHOOK, dingtalk.CH_WEBHOOK, dingtalk.CH_OPENAPI]
        assert drafts[0].robot == "dingtalk:webhook:dt-staff"
        body = drafts[0].payload["body"]
        assert body["at"]["atUserIds"] == ["0135210002"] and "@0135210002" in body["markdown"]["text"]  # type: ignore[index]
        now = datetime.now(timezone.utc)
        pushes = build_pushes(config)  # what the scheduler is given in the bot
        group = session.get(GroupRow, "dt-staff")
        assert group is not None
        for expected in (3, 0):  # the second attempt of the same push adds nothing
            assert pushes.enqueue_push(session, group=group, dedupe_key="push:nudge:1", replies=replies,
                                       now=now, give_up_after=timedelta(hours=1)) == expected
        session.commit()
        with pytest.raises(ValueError):
            dingtalk.push_drafts(session, config, "staff", replies)  # a console group

    sender = OutboxSender(db=harness.engine.db, deliveries={
        dingtalk.CH_WEBHOOK: harness.webhook, dingtalk.CH_OPENAPI: harness.openapi,
    })
    assert anyio.run(sender.drain_once) == 3
    assert [m["msgtype"] for m in fake.webhook_messages] == ["markdown", "markdown"]
    assert fake.group_messages[0]["msgKey"] == "sampleFile"
    assert outbox_store.list_messages(harness.engine.db, state="failed") == []


def test_session_webhook_gone_falls_back_to_the_openapi(dt_config: Path, fake: FakeDingTalk) -> None:
    harness = Harness(dt_config, fake)
    payload = {
        "robot_id": "dt-app", "group_id": "dt-staff", "conversation_id": "cidSafetyStaff001==",
        "url": f"{fake.base_url}/robot/sendBySession?session=unknown", "expires": int(time.time() * 1000) + 3_600_000,
        "body": _markdown_body("已登记隐患 #2"), "fallback": {"title": "已登记隐患 #2", "text": "已登记隐患 #2"},
    }
    result = anyio.run(harness.session.deliver, harness.row(dingtalk.CH_SESSION, "markdown", payload))
    assert result.ok
    assert fake.group_messages[0]["msgKey"] == "sampleMarkdown"


# -- locked doors: replayed signs, URLs from callbacks, foreign answers ---------------------------


def _post(client: TestClient, message: dict[str, Any], headers: dict[str, str]) -> int:
    body = json.dumps(message, ensure_ascii=False).encode()
    return client.post("/dingtalk/callback", content=body, headers=headers).status_code


def test_a_sign_replayed_with_another_body_is_refused(client: TestClient, fake: FakeDingTalk) -> None:
    headers = callback_headers(APP_SECRET)
    assert _post(client, robot_message(fake, text=REPORT), headers) == 200
    fake.wait_for(lambda: fake.session_messages)
    # The sign covers only the timestamp: the captured pair must not carry another message (here, the
    # safety officer asking for the ledger), nor the same message id with other words.
    forged = robot_message(fake, text="台账", sender_staff_id="0135210003", sender_nick="李娜")
    response = client.post("/dingtalk/callback", content=json.dumps(forged, ensure_ascii=False).encode(),
                           headers=headers)
    assert response.status_code == 403 and "隐患" not in response.text
    assert _post(client, {"x": "no msgId at all"}, headers) == 403
    assert count(client, InboundMessage) == 1
    assert count(client, Hazard) == 1
    assert fake.group_messages == []  # no ledger went out


def test_a_retry_with_the_same_headers_is_one_message(client: TestClient, fake: FakeDingTalk) -> None:
    message = robot_message(fake, text=REPORT)
    headers = callback_headers(APP_SECRET)
    for _ in range(3):  # a platform retry may repeat the very same request, headers included
        assert _post(client, message, headers) == 200
    fake.wait_for(lambda: fake.session_messages)
    same_id = dict(message, text={"content": " 隐患\n部位：食堂\n问题：另一处"})  # same msgId, other words
    assert _post(client, same_id, headers) == 200  # taken for the retry, and recorded no second time
    time.sleep(0.5)  # give a wrongly scheduled second reply the time to show up
    assert count(client, InboundMessage) == 1
    assert count(client, Hazard) == 1
    assert len(fake.session_messages) == 1


def test_the_timestamp_window_is_five_minutes_and_configurable(dt_config: Path, fake: FakeDingTalk) -> None:
    now = int(time.time() * 1000)
    body = json.dumps(robot_message(fake, text="清单"), ensure_ascii=False).encode()
    app = create_app(load_config(dt_config), secrets=Secrets(environ=ENV), clock=campaign_clock())
    with TestClient(app) as default:
        for skew in (-400_000, 400_000):
            response = default.post("/dingtalk/callback", content=body,
                                    headers=callback_headers(APP_SECRET, now_ms=now + skew))
            assert response.status_code == 403
    text = dt_config.read_text(encoding="utf-8").replace("[dingtalk]\n", "[dingtalk]\ncallback_window_seconds = 3600\n")
    dt_config.write_text(text, encoding="utf-8")
    with TestClient(create_app(load_config(dt_config), secrets=Secrets(environ=ENV), clock=campaign_clock())) as wide:
        response = wide.post("/dingtalk/callback", content=body, headers=callback_headers(APP_SECRET, now_ms=now - 400_000))
        assert response.status_code == 200
    dt_config.write_text(text.replace("= 3600", "= 7200"), encoding="utf-8")
    with pytest.raises(Exception, match="callback_window_seconds"):
        load_config(dt_config)  # DingTalk itself allows no more than an hour


def test_replay_guard_forgets_a_pair_once_its_timestamp_is_stale() -> None:
    clock = [1_700_000_000_000]
    guard = dingtalk.SignatureReplayGuard(300_000, lambda: clock[0])

    async def check(timestamp: int, key: str) -> str:
        return await guard.check(str(timestamp), "sign", key)

    start = clock[0]
    assert anyio.run(check, start, "msg:a") == guard.FIRST
    assert anyio.run(check, start, "msg:a") == guard.RETRY
    assert anyio.run(check, start, "msg:b") == guard.REPLAY
    clock[0] = start + 300_001  # the pair's timestamp no longer passes the window check: memory lets go
    assert anyio.run(check, start + 300_001, "msg:c") == guard.FIRST
    assert list(guard._pairs) == [(str(start + 300_001), "sign")]


def test_a_session_webhook_on_another_host_is_never_called(
    client: TestClient, fake: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    with InternalPage() as page:
        message = robot_message(fake, text=REPORT)
        message["sessionWebhook"] = f"{page.base_url}/robot/sendBySession?session=internal"
        assert post_callback("", APP_SECRET, message, client=client).status_code == 200
        # The reply came by the group's custom robot instead, with its @ (the OpenAPI would lose it).
        sent = fake.wait_for(lambda: fake.webhook_messages)
        assert sent[0]["_token"] == WEBHOOK_TOKEN and re.search(r"已登记隐患 #\d+", sent[0]["markdown"]["text"])
        assert sent[0]["at"]["atUserIds"] == ["0135210002"] and fake.group_messages == []
        assert count(client, Hazard) == 1  # the message itself was recorded and handled
        assert page.hits == [] and fake.session_messages == []
    assert "callback_url_hosts" in caplog.text


@pytest.mark.parametrize("url", [
    "http://oapi.dingtalk.com/robot/sendBySession?session=s",  # not https
    "https://oapi.dingtalk.com.evil.example/robot/sendBySession",
    "https://oapi.dingtalk.com@127.0.0.1/robot/sendBySession",
    "https://oapi.dingtalk.com:8443/robot/sendBySession",
    "file:///etc/passwd",
])
def test_only_dingtalk_hosts_and_the_configured_bases_are_allowed(dt_config: Path, url: str) -> None:
    urls = dingtalk.callback_urls(load_config(dt_config))
    assert not urls.allows(url)
    assert urls.allows("https://oapi.dingtalk.com/robot/sendBySession?session=76da36b4")
    assert urls.allows("https://api.dingtalk.com/v1.0/robot/groupMessages/send")


def test_a_queued_row_with_a_foreign_session_webhook_falls_back(dt_config: Path, fake: FakeDingTalk) -> None:
    """A row queued before the allow-list existed (or changed) is checked again when sent."""
    harness = Harness(dt_config, fake)
    with InternalPage() as page:
        payload = {
            "robot_id": "dt-app", "group_id": "dt-staff", "conversation_id": "cidSafetyStaff001==",
            "url": f"{page.base_url}/robot/sendBySession?session=x", "expires": int(time.time() * 1000) + 3_600_000,
            "body": _markdown_body("已登记隐患 #4"), "fallback": {"title": "已登记隐患 #4", "text": "已登记隐患 #4"},
        }
        result = anyio.run(harness.session.deliver, harness.row(dingtalk.CH_SESSION, "markdown", payload))
        assert result.ok and page.hits == []
    assert fake.group_messages[0]["msgParam"]["text"] == "已登记隐患 #4"


@pytest.mark.parametrize("status", [200, 400, 502])
def test_last_error_never_holds_a_foreign_answer(config_path: Path, status: int, tiny_png: bytes) -> None:
    """Custom robot and OpenAPI sends that meet an HTML page: the outbox keeps the status, not the page."""
    with InternalPage(status=status) as page:
        config_path.write_text(config_path.read_text(encoding="utf-8") + dingtalk_toml(page.base_url), encoding="utf-8")
        harness = Harness(config_path, page)  # type: ignore[arg-type]  # every DingTalk URL is the page
        now = datetime.now(timezone.utc)
        base = {"robot_id": "dt-app", "group_id": "dt-staff", "conversation_id": "cidSafetyStaff001=="}
        with Session(harness.engine.db) as session:
            outbox_store.enqueue(session, dedupe_key="k1", platform="dingtalk", channel=dingtalk.CH_WEBHOOK,
                                 robot="r1", now=now, give_up_after=timedelta(hours=1), kind="markdown",
                                 payload={"group_id": "dt-staff", "body": _markdown_body()})
            outbox_store.enqueue(session, dedupe_key="k2", platform="dingtalk", channel=dingtalk.CH_OPENAPI,
                                 robot="r2", now=now, give_up_after=timedelta(hours=1), kind="image",
                                 payload={**base, "file_name": "chart.png"}, blob=tiny_png)
            session.commit()
        sender = OutboxSender(db=harness.engine.db, deliveries={
            dingtalk.CH_WEBHOOK: harness.webhook, dingtalk.CH_OPENAPI: harness.openapi,
        })
        assert anyio.run(sender.drain_once) == 2
        assert len(page.hits) == 2
    rows = outbox_store.list_messages(harness.engine.db)
    assert len(rows) == 2
    for row in rows:
        assert row.state != "sent" and row.last_error
        assert f"HTTP {status}" in row.last_error
        assert page_secret not in row.last_error and "<" not in row.last_error and "内网" not in row.last_error
