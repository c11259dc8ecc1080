"""WeCom adapter: crypto vectors, callback checks, splitting, rendering and deliveries against the fake."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session, func, select
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from bot.app import create_app
from bot.config import load_config
from bot.outbox import OutboxSender, split_utf8
from bot.platforms import wecom
from bot.platforms.wecom.inbound import to_inbound
from bot.secrets import Secrets
from bot.url_allowlist import UrlAllowList
from handlers.messages import Reply
from models import outbox as outbox_store
from bot.photo_retry import fetch_missing_photos
from models.ledger import photo_path
from models.platform_usage import month_of, usage_of_month
from models.tables import (
    AttachmentFile,
    DuePush,
    GroupRow,
    Hazard,
    InboundAttachment,
    InboundMessage,
    OutboxMessage,
)
from tests.fakes.full_disk import FullDisk
from tests.fakes.wecom_server import (
    FakeWeCom,
    encrypt_media,
    group_robot_xml,
    post_aibot_callback,
    post_group_callback,
    verify_url_query,
)
from tests.fakes.internal_page import SECRET as page_secret, InternalPage
from tests.conftest import campaign_clock

REPORT = "隐患\n部位：3号教学楼二楼东侧\n问题：消防通道堆放杂物\n责任人：王建国\n期限：明天"
CHAT = "wrkSFfCgAAtest0001"
ROBOT_CHAT = "wrkSFfCgAArobot001"
WEBHOOK_KEY = "693a91f6-7a0c-4bc4-97a0-0ec2sifa5aaa"
ROBOT_WEBHOOK_KEY = "11111111-2222-4333-8444-555555555555"
TOKEN = "QDG6eKtesttoken"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")
GROUP_TOKEN = "RobotToken123"
GROUP_AES_KEY = base64.b64encode(bytes(range(100, 132))).decode().rstrip("=")


# -- official vectors (docs/wecom-protocol.md §3) ------------------------------------------------------

V1 = dict(token="QDG6eK", key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", receiveid="wx5823bf96d3bd56c7")
V1_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
V4 = dict(token="123456", key="kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", receiveid="wx49f0ab532d5d035a")


def test_v1_official_url_verification_and_message() -> None:
    crypto = WeChatCrypto(V1["token"], V1["key"], V1["receiveid"])
    echostr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    assert crypto.check_signature("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", echostr) == (
        "1616140317555161061"
    )
    assert wecom.msg_signature(V1["token"], "1409659813", "1372623149", V1_ENCRYPT) == (
        "477715d11cdb4164915debcba66cb864d751f3e6"
    )
    plain = crypto.decrypt_message(
        {"Encrypt": V1_ENCRYPT}, "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149"
    )
    assert plain.startswith("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]>") and "<Content><![CDATA[hello]]>" in plain
    assert len(plain.encode()) == 284


def test_v2_tencent_python_sample() -> None:
    crypto = WeChatCrypto("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee")
    echostr = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
    assert crypto.check_signature("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", echostr) == (
        "1288432023552776189"
    )


def test_v4_wechatpy_vectors_and_wrong_nonce() -> None:
    crypto = WeChatCrypto(V4["token"], V4["key"], V4["receiveid"])
    echostr = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
    sig = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    assert crypto.check_signature(sig, "1411443780", "437374425", echostr) == "5927782489442352469"
    with pytest.raises(InvalidSignatureException):
        crypto.check_signature(sig, "1411443780", "437374424", echostr)


def test_v4_deterministic_encrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = (
        "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n"
        "<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
    )
    monkeypatch.setattr(PrpCrypto, "get_random_string", lambda self: "1234567890123456")
    envelope = WeChatCrypto(V4["token"], V4["key"], V4["receiveid"]).encrypt_message(plain, "461056294", "1411525903")
    assert "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk" in envelope
    assert "407518b7649e86ef23978113f92d27afa9296533" in envelope


def test_v5_empty_receiveid_for_robots() -> None:
    creds = wecom.CallbackCredentials("robot", "xxx", "x" * 43)
    echostr = "oCdlC8pJ/DIjXnC8F9reyjDYlSImCmIgxA4prPD+l2Fj5qBHjFiWnpelQofsDCJrSEvNVTET6oQmoXLQxzUkyQ=="
    assert creds.matches("09380007d4f0891d966988e5450ad794c77fa01c", "1703041184", "1703023880", echostr)
    assert creds.crypto().check_signature(
        "09380007d4f0891d966988e5450ad794c77fa01c", "1703041184", "1703023880", echostr
    ) == "6534946348215556778"
    assert not creds.matches("09380007d4f0891d966988e5450ad794c77fa01c", "1703041184", "1703023881", echostr)


def test_media_decryption_round_trip_and_bad_padding(tiny_png: bytes) -> None:
    key = wecom.aes_key(AES_KEY)
    for data in (tiny_png, b"x" * 32, b"y" * 31, b"z"):
        assert wecom.decrypt_media(encrypt_media(data, key), key) == data
    with pytest.raises(ValueError):
        wecom.decrypt_media(encrypt_media(tiny_png, key), bytes(32))


# -- checks ------------------------------------------------------------------------------------


def test_timestamp_window() -> None:
    now = 1_800_000_000.0
    window = wecom.TIMESTAMP_WINDOW_SECONDS
    assert wecom.timestamp_ok(str(int(now)), now)
    assert wecom.timestamp_ok(str(int(now - window)), now)
    assert not wecom.timestamp_ok(str(int(now - window - 1)), now)
    assert not wecom.timestamp_ok(str(int(now + window + 1)), now)
    assert not wecom.timestamp_ok("yesterday", now)


def test_replay_guard_remembers_within_the_window() -> None:
    clock = [1000.0]
    guard = wecom.ReplayGuard(window_seconds=300, clock=lambda: clock[0])
    assert not guard.seen("sig", "n1")
    guard.remember("sig", "n1")
    assert guard.seen("sig", "n1") and not guard.seen("sig", "n2")
    clock[0] += 601
    assert not guard.seen("sig", "n1")


def test_redaction_hides_keys_and_response_codes() -> None:
    text = "POST http://x/cgi-bin/webhook/send?key=abc-123&debug=1 and /aibot/response?response_code=SECRET failed"
    cleaned = wecom.redact(text, "topsecretvalue")
    assert "abc-123" not in cleaned and "SECRET" not in cleaned and "key=***" in cleaned
    assert wecom.redact("token topsecretvalue", "topsecretvalue") == "token ***"


def test_httpx_request_logs_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import httpx

    logger = logging.getLogger("httpx")
    handler_filter = wecom.RedactingFilter()
    logger.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="httpx"):
            logger.info("HTTP Request: %s %s", "POST", httpx.URL("http://h/cgi-bin/webhook/send?key=SECRETKEY"))
    finally:
        logger.removeFilter(handler_filter)
    assert "SECRETKEY" not in caplog.text and "key=***" in caplog.text


# -- splitting -------------------------------------------------------------------------------------


def _random_text(rng: random.Random) -> str:
    alphabet = ["a", "b", " ", "汉", "字", "隐", "患", "😀", "é", "#", "\n", "\n"]
    lines = []
    for _ in range(rng.randint(0, 60)):
        lines.append("".join(rng.choice(alphabet[:-2]) for _ in range(rng.randint(0, rng.choice([5, 40, 900])))))
    return "\n".join(lines)


@pytest.mark.parametrize("limit", [4, 7, 64, 2048, 4096])
def test_split_never_cuts_a_character_or_a_fitting_line(limit: int) -> None:
    rng = random.Random(limit)
    for _ in range(200):
        text = _random_text(rng)
        parts = split_utf8(text, limit)
        assert all(len(p.encode("utf-8")) <= limit for p in parts)
        # Parts are whole str slices, so no UTF-8 sequence is cut; joined they give the text modulo newlines.
        assert "".join(parts).replace("\n", "") == text.replace("\n", "")
        lines = [line for line in text.split("\n") if len(line.encode("utf-8")) <= limit]
        part_lines = {line for part in parts for line in part.split("\n")}
        assert all(line in part_lines for line in lines if line), "a line that fits was cut in half"
        if all(len(line.encode("utf-8")) <= limit for line in text.split("\n")) and "\n\n" not in text:
            assert "\n".join(parts) in (text, text.lstrip("\n"))  # only newlines at the cuts are dropped


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(st.text(alphabet=st.sampled_from(list("ab 汉字隐患😀é#")), max_size=120), max_size=40).map("\n".join),
    limit=st.integers(min_value=4, max_value=300),
)
def test_split_property(text: str, limit: int) -> None:
    parts = split_utf8(text, limit)
    assert all(len(part.encode("utf-8")) <= limit for part in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")
    for line in text.split("\n"):  # a line that fits is never cut in half
        if line and len(line.encode("utf-8")) <= limit:
            assert any(line in part.split("\n") for part in parts)


def test_split_refuses_a_limit_below_one_character() -> None:
    with pytest.raises(ValueError):
        split_utf8("😀😀", 3)


def test_digest_over_the_markdown_limit_splits_at_lines() -> None:
    lines = [f"· #{i} 教学楼消防通道堆放杂物，责任人王建国，期限12月{i % 28 + 1}日" for i in range(200)]
    parts = split_utf8("\n".join(lines), wecom.MARKDOWN_MAX_BYTES)
    assert len(parts) > 1
    assert [line for part in parts for line in part.split("\n")] == lines


# -- parsing -----------------------------------------------------------------------------------


def test_parse_text_mixed_and_quote() -> None:
    text = wecom.parse_aibot_message({
        "msgid": "m1", "aibotid": "B", "chatid": "C", "chattype": "group", "from": {"userid": "u"},
        "response_url": "http://r", "msgtype": "text", "text": {"content": "@安全助手 清单"},
    })
    assert text is not None and text.text == "清单" and text.chat_id == "C" and text.response_url == "http://r"
    mixed = wecom.parse_aibot_message({
        "msgid": "m2", "chattype": "single", "from": {"userid": "u"}, "msgtype": "mixed",
        "mixed": {"msg_item": [{"msgtype": "text", "text": {"content": "@bot 隐患"}},
                               {"msgtype": "image", "image": {"url": "http://img"}}]},
    })
    assert mixed is not None and mixed.text == "隐患" and mixed.media == (wecom.MediaRef("http://img"),)
    assert mixed.chat_id == "single:u"
    quote = wecom.parse_aibot_message({
        "msgid": "m3", "chattype": "group", "chatid": "C", "from": {"userid": "u"}, "msgtype": "text",
        "text": {"content": "@bot 整改 已清理"}, "quote": {"msgtype": "text", "text": {"content": "已登记隐患 #12"}},
    })
    assert quote is not None and quote.text == "整改 已清理 #12"
    photo_quote = wecom.parse_aibot_message({
        "msgid": "m4", "chattype": "group", "chatid": "C", "from": {"userid": "u"}, "msgtype": "text",
        "text": {"content": "@bot 整改 #12 已清理"},
        "quote": {"msgtype": "image", "image": {"url": "http://img1", "aeskey": "K"}},
    })
    assert photo_quote is not None and photo_quote.media == (wecom.MediaRef("http://img1", "K"),)
    mixed_quote = wecom.parse_aibot_message({
        "msgid": "m5", "chattype": "group", "chatid": "C", "from": {"userid": "u"}, "msgtype": "text",
        "text": {"content": "@bot 整改 已清理"},
        "quote": {"msgtype": "mixed", "mixed": {"msg_item": [{"msgtype": "text", "text": {"content": "#7 现场"}},
                                                             {"msgtype": "image", "image": {"url": "http://img2"}}]}},
    })
    assert mixed_quote is not None and mixed_quote.text == "整改 已清理 #7"
    assert mixed_quote.media == (wecom.MediaRef("http://img2"),)
    assert wecom.parse_aibot_message({"msgid": "e", "from": {"userid": "u"}, "msgtype": "event"}) is None


def test_parse_group_robot_xml() -> None:
    parsed = wecom.parse_group_robot_xml(
        group_robot_xml("@RobotA 清单", userid="zhangsan", chatid="wrkX", webhook_url="http://h/send?key=K",
                        msgid="abcd", name="张三")
    )
    assert parsed is not None
    assert (parsed.msg_id, parsed.chat_id, parsed.user_id, parsed.text, parsed.sender_name) == (
        "abcd", "wrkX", "zhangsan", "清单", "张三"
    )
    assert parsed.webhook_url == "http://h/send?key=K"


# -- the adapter in-process, against the fake --------------------------------------------------------


def wecom_toml(fake: FakeWeCom, *, window: float = 3.0, bot_mode: str = "callback") -> str:
    """Config text adding two WeCom groups, one AI bot and a fast outbox."""
    bot_credentials = (
        '{ token = "SAFETYBOT_WECOM_TOKEN", encoding_aes_key = "SAFETYBOT_WECOM_AES_KEY" }'
        if bot_mode == "callback" else '{ bot_id = "SAFETYBOT_WECOM_BOT_ID", secret = "SAFETYBOT_WECOM_BOT_SECRET" }'
    )
    return f"""
[[groups]]
id = "wecom-staff"
name = "一中安全工作群（企业微信）"
platform = "wecom"
kind = "staff"
units = ["school"]
campaign = "winter-2026"
chat_id = "{CHAT}"
bot = "aibot"
credentials = {{ webhook_key = "SAFETYBOT_WECOM_STAFF_WEBHOOK_KEY" }}

[[groups]]
id = "wecom-robot"
name = "一中后勤群（企业微信群机器人）"
platform = "wecom"
kind = "staff"
units = ["school"]
campaign = "winter-2026"
chat_id = "{ROBOT_CHAT}"
credentials = {{ webhook_key = "SAFETYBOT_WECOM_ROBOT_WEBHOOK_KEY", token = "SAFETYBOT_WECOM_ROBOT_TOKEN", encoding_aes_key = "SAFETYBOT_WECOM_ROBOT_AES_KEY" }}

[wecom]
api_base = "{fake.base_url}"
ws_url = "{fake.ws_url}"

[[wecom.bots]]
id = "aibot"
mode = "{bot_mode}"
credentials = {bot_credentials}

[outbox]
window_seconds = {window}
retry_base_seconds = 0.2
retry_max_seconds = 1.0
"""


SECRET_ENV = {
    "SAFETYBOT_WECOM_TOKEN": TOKEN,
    "SAFETYBOT_WECOM_AES_KEY": AES_KEY,
    "SAFETYBOT_WECOM_STAFF_WEBHOOK_KEY": WEBHOOK_KEY,
    "SAFETYBOT_WECOM_ROBOT_WEBHOOK_KEY": ROBOT_WEBHOOK_KEY,
    "SAFETYBOT_WECOM_ROBOT_TOKEN": GROUP_TOKEN,
    "SAFETYBOT_WECOM_ROBOT_AES_KEY": GROUP_AES_KEY,
    "SAFETYBOT_WECOM_BOT_ID": "aibot-id-1",
    "SAFETYBOT_WECOM_BOT_SECRET": "aibot-secret-1",
}


def write_config(config_path: Path, fake: FakeWeCom, **kwargs: object) -> Path:
    config_path.write_text(config_path.read_text(encoding="utf-8") + wecom_toml(fake, **kwargs), encoding="utf-8")  # type: ignore[arg-type]
    return config_path


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.fixture
def fake() -> Iterator[FakeWeCom]:
    with FakeWeCom(window=60.0) as server:
        server.add_webhook_key(WEBHOOK_KEY)
        server.add_webhook_key(ROBOT_WEBHOOK_KEY)
        yield server


@pytest.fixture
def client(config_path: Path, fake: FakeWeCom) -> Iterator[TestClient]:
    config = load_config(write_config(config_path, fake))
    with TestClient(create_app(config, secrets=Secrets(environ=SECRET_ENV), clock=campaign_clock())) as test_client:
        yield test_client


def db_count(client: TestClient, table: type) -> int:
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        return session.exec(select(func.count()).select_from(table)).one()


def outbox_rows(client: TestClient) -> list[OutboxMessage]:
    return outbox_store.list_messages(client.app.state.engine.db, limit=500)  # type: ignore[attr-defined]


@pytest.fixture
def poster(client: TestClient, fake: FakeWeCom) -> Callable[..., object]:
    """Send an encrypted AI-bot text message from ZhangWei in the staff group into the app."""

    def send(content: str, **kwargs: object):
        message = fake.aibot_text(content, userid="ZhangWei", chatid=CHAT, msgid=kwargs.pop("msgid", None))  # type: ignore[arg-type]
        return message, post_aibot_callback(
            "/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client, **kwargs  # type: ignore[arg-type]
        )

    return send


def test_url_verification_answers_the_plain_echo(client: TestClient) -> None:
    query = verify_url_query(TOKEN, AES_KEY, "6534946348215556778")
    response = client.get("/wecom/callback", params=query)
    assert response.status_code == 200 and response.text == "6534946348215556778"
    assert response.headers["content-type"].startswith("text/plain")
    bad = dict(query, msg_signature="0" * 40)
    assert client.get("/wecom/callback", params=bad).status_code == 403
    old = verify_url_query(TOKEN, AES_KEY, "1")
    assert client.get("/wecom/callback", params={**old, "timestamp": "1409659589"}).status_code == 403


def test_report_gets_a_numbered_reply_at_the_response_url(client: TestClient, fake: FakeWeCom, poster) -> None:
    _, response = poster(REPORT)
    assert response.status_code == 200 and response.text == ""
    wait_for(lambda: fake.responses)
    content = fake.responses[0]["markdown"]["content"]
    assert re.search(r"已登记隐患 #\d+", content), content
    assert db_count(client, Hazard) == 1


PHISHING = "隐患\n部位：3号教学楼\n问题：[点这里](http://evil.example) 领奖 <@LiNa> **紧急** <font color=\"warning\">红字</font>\n责任人：王建国"


def test_echoed_user_text_cannot_link_mention_or_format(client: TestClient, fake: FakeWeCom, poster) -> None:
    """The report echo must not render a disguised link or a fake <@userid>; the bot's own mention still works."""
    poster(PHISHING)
    wait_for(lambda: fake.responses)
    content = fake.responses[0]["markdown"]["content"]
    # <@userid> is not documented to render in a response_url reply: the responsible person by name there,
    # and the bot's own mention goes by the group webhook.
    assert content.startswith("已登记隐患") and content.rstrip().endswith("请王建国留意。"), content
    assert "<@" not in content and "<font" not in content and "](" not in content and "**" not in content
    assert "问题：[点这里］(http://evil.example) 领奖 ＜@LiNa> ＊＊紧急＊＊ ＜font" in content  # still readable
    notice = wait_for(lambda: fake.sent_to(WEBHOOK_KEY))[0].content  # type: ignore[index]
    assert notice.startswith("<@WangJianGuo> 请留意：已登记隐患") and notice.count("<@") == 1, notice
    engine = client.app.state.engine  # type: ignore[attr-defined]
    client.app.state.wecom.ctx.meter.flush()  # type: ignore[attr-defined]  # counted in memory: written within a second
    with Session(engine.db) as session:  # both calls counted for the month (safetybot outbox --usage)
        usage = {(u.platform, u.kind): u.calls for u in usage_of_month(session, month_of(engine.now(), engine.config.tz))}
    assert usage == {("wecom", "response_url"): 1, ("wecom", "webhook_send"): 1}


def test_bad_signature_is_refused_and_nothing_is_stored(client: TestClient, poster) -> None:
    _, response = poster(REPORT, bad_signature=True)
    assert response.status_code == 403
    _, stale = poster(REPORT, timestamp=str(int(time.time()) - wecom.TIMESTAMP_WINDOW_SECONDS - 60))
    assert stale.status_code == 403
    assert db_count(client, InboundMessage) == 0 and db_count(client, Hazard) == 0


def test_broken_and_oversized_bodies(client: TestClient) -> None:
    params = {"msg_signature": "a", "timestamp": str(int(time.time())), "nonce": "n"}
    assert client.post("/wecom/callback", params=params, content=b"{not json").status_code == 400
    assert client.post("/wecom/callback", params=params, content=b"<xml><Encrypt>").status_code == 400
    assert client.post("/wecom/callback", params=params, content=b'{"other": 1}').status_code == 400
    big = b'{"encrypt": "' + b"A" * (wecom.MAX_BODY_BYTES + 10) + b'"}'
    assert client.post("/wecom/callback", params=params, content=big).status_code == 413
    assert db_count(client, InboundMessage) == 0


def test_platform_retry_and_replay_store_one_hazard(client: TestClient, fake: FakeWeCom, poster) -> None:
    message, first = poster(REPORT, nonce="nonce-1", timestamp=str(int(time.time())))
    assert first.status_code == 200
    _, retry = poster(REPORT, msgid=message["msgid"])  # WeCom's retry: same msgid, new signature
    assert retry.status_code == 200
    # An exact replay of the first request (same signature and nonce) is acknowledged and ignored.
    _, replay = poster(REPORT, msgid=message["msgid"], nonce="nonce-1", timestamp=first.request.url.params["timestamp"])
    assert replay.status_code == 200
    wait_for(lambda: fake.responses)
    time.sleep(0.3)
    assert db_count(client, Hazard) == 1 and db_count(client, InboundMessage) == 1
    assert len(fake.responses) == 1


def test_a_callback_that_finds_the_database_locked_is_answered_503_and_its_retry_is_recorded(
    client: TestClient, fake: FakeWeCom, poster
) -> None:
    database = client.app.state.engine.db.url.database  # type: ignore[attr-defined]
    other = sqlite3.connect(database, isolation_level=None)  # another writer holds SQLite's write lock
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        message, busy = poster(REPORT)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "Traceback" not in busy.text
        assert time.monotonic() - started < 5.0  # answered before WeCom gives up on the callback
    finally:
        other.rollback()
        other.close()
    _, retry = poster(REPORT, msgid=message["msgid"])  # WeCom's retry of the same message
    assert retry.status_code == 200
    wait_for(lambda: fake.responses)
    assert db_count(client, Hazard) == 1 and db_count(client, InboundMessage) == 1


def test_a_callback_kept_waiting_by_another_writer_of_the_sqlite_file_is_answered_503(
    client: TestClient, fake: FakeWeCom, poster
) -> None:
    gate = client.app.state.engine.write_gate  # type: ignore[attr-defined]
    with open(gate.path, "a") as holder:  # e.g. a handler process stuck in a long write
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        started = time.monotonic()
        message, busy = poster(REPORT)
        assert busy.status_code == 503 and time.monotonic() - started < 5.0
    _, retry = poster(REPORT, msgid=message["msgid"])
    assert retry.status_code == 200
    wait_for(lambda: fake.responses)
    assert db_count(client, Hazard) == 1


def _report_with_photo(fake: FakeWeCom, png: bytes, msgid: str, text: str = REPORT) -> dict[str, object]:
    """A mixed AI-bot message from ZhangWei: the report text and one encrypted photo hosted by the fake."""
    url = fake.host_media(png, wecom.aes_key(AES_KEY))
    return {
        "msgid": msgid, "aibotid": "B", "chatid": CHAT, "chattype": "group", "from": {"userid": "ZhangWei"},
        "response_url": fake.new_response_url(), "msgtype": "mixed",
        "mixed": {"msg_item": [{"msgtype": "text", "text": {"content": "@安全助手 " + text}},
                               {"msgtype": "image", "image": {"url": url}}]},
    }


def test_mixed_message_photo_is_downloaded_and_decrypted(client: TestClient, fake: FakeWeCom, tiny_png: bytes) -> None:
    message = _report_with_photo(fake, tiny_png, "mixed-1")
    response = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
    assert response.status_code == 200
    wait_for(lambda: fake.responses)
    assert "照片：1张已保存" in fake.responses[0]["markdown"]["content"]
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        assert session.exec(select(func.count()).select_from(AttachmentFile)).one() == 1


def test_a_major_report_whose_photo_meets_a_full_disk_is_kept_and_the_photo_written_once_space_returns(
    client: TestClient, fake: FakeWeCom, tiny_png: bytes
) -> None:
    app = client.app
    data_dir: Path = app.state.engine.data_dir  # type: ignore[attr-defined]
    app.state.data_dir_probe.ttl = 0  # type: ignore[attr-defined]  # probe on every call: no waiting out the cache
    message = _report_with_photo(fake, tiny_png, "full-disk-1")
    message["mixed"]["msg_item"][0]["text"]["content"] += "\n等级：重大"  # type: ignore[index]
    with FullDisk(data_dir) as disk:
        response = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
        assert response.status_code == 200
        wait_for(lambda: fake.responses)
        content = fake.responses[0]["markdown"]["content"]
        assert "已登记隐患 #1（重大" in content and "照片暂未保存（服务器存储空间不足），稍后自动重试" in content
        assert disk.refused >= 1
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "degraded", "reason": "data_dir not writable (ENOSPC)"}
        with Session(app.state.engine.db) as session:  # type: ignore[attr-defined]
            hazard = session.exec(select(Hazard)).one()
            assert hazard.level == "重大"
            assert session.exec(select(DuePush).where(DuePush.kind == "major_alert")).all()  # leaders hear of it
            photo = session.exec(select(AttachmentFile)).one()
            assert photo.missing and photo.missing_reason == "ENOSPC" and photo.hazard_id == hazard.id
            assert session.exec(select(InboundMessage.state)).one() == "handled"
        assert not [path for path in data_dir.rglob("*") if path.is_file()]  # no photo, no .tmp left behind
        runtime = app.state.runtime  # type: ignore[attr-defined]
        probe = app.state.data_dir_probe  # type: ignore[attr-defined]
        assert client.portal.call(fetch_missing_photos, runtime, probe) == 0  # still full: nothing downloaded

        disk.space_returns()
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.portal.call(fetch_missing_photos, runtime, probe) == 1
    with Session(app.state.engine.db) as session:  # type: ignore[attr-defined]
        photo = session.exec(select(AttachmentFile)).one()
        assert not photo.missing and photo.retry_at is None
    assert photo_path(data_dir, photo.sha256).read_bytes() == tiny_png
    assert not list(data_dir.rglob("*.tmp"))


def test_a_missing_photo_sent_again_meanwhile_is_found_on_disk_without_downloading_it(
    client: TestClient, fake: FakeWeCom, tiny_png: bytes
) -> None:
    app = client.app
    data_dir: Path = app.state.engine.data_dir  # type: ignore[attr-defined]
    app.state.data_dir_probe.ttl = 0  # type: ignore[attr-defined]  # probe on every call: no waiting out the cache
    with FullDisk(data_dir) as disk:
        first = _report_with_photo(fake, tiny_png, "again-1")
        response = post_aibot_callback("/wecom/callback", first, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
        assert response.status_code == 200
        wait_for(lambda: fake.responses)
        disk.space_returns()
    fake.media.clear()  # the first message's media link has expired
    second = _report_with_photo(fake, tiny_png, "again-2", REPORT.replace("二楼", "三楼"))  # another hazard
    response = post_aibot_callback("/wecom/callback", second, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
    assert response.status_code == 200
    wait_for(lambda: len(fake.responses) == 2)
    assert "照片：1张已保存" in fake.responses[1]["markdown"]["content"]
    fake.media.clear()
    runtime, probe = app.state.runtime, app.state.data_dir_probe  # type: ignore[attr-defined]
    assert client.portal.call(fetch_missing_photos, runtime, probe) == 1
    with Session(app.state.engine.db) as session:  # type: ignore[attr-defined]
        assert not any(photo.missing for photo in session.exec(select(AttachmentFile)))


class _LostHandOff:
    """A handler process that dies with the messages handed to it."""

    def __init__(self) -> None:
        self.lost: list[int] = []

    def submit(self, inbound_id: int) -> None:
        self.lost.append(inbound_id)

    def pending(self) -> set[int]:
        return set()  # dead: it holds nothing any more


def test_a_message_lost_with_its_handler_process_is_recovered_with_the_photo_downloaded_before_the_hand_off(
    client: TestClient, fake: FakeWeCom, tiny_png: bytes
) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    runtime.hand_off = lost = _LostHandOff()
    message = _report_with_photo(fake, tiny_png, "mixed-lost")
    assert post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client).status_code == 200
    wait_for(lambda: lost.lost)  # handed over once the receiving side downloaded and stored the photo
    assert len(lost.lost) == 1 and db_count(client, Hazard) == 0
    assert db_count(client, InboundAttachment) == 1 and len(fake.media_gets) == 1
    fake.media.clear()  # the photo's URL has expired (5 minutes): recovery must not need it
    assert client.portal.call(lambda: runtime.recover(older_than=timedelta(0))) == 1  # type: ignore[union-attr]
    wait_for(lambda: fake.responses)
    assert "照片：1张已保存" in fake.responses[0]["markdown"]["content"]
    assert db_count(client, Hazard) == 1 and db_count(client, AttachmentFile) == 1
    assert len(fake.media_gets) == 1  # handling called no platform
    assert db_count(client, InboundAttachment) == 0  # taken by the handling


def test_recovery_after_a_crash_between_record_and_download_still_attaches_the_photo(
    client: TestClient, fake: FakeWeCom, tiny_png: bytes
) -> None:
    """The web process recorded and acknowledged the message, then died before downloading its photo."""
    app = client.app
    platform, engine, runtime = app.state.wecom, app.state.engine, app.state.runtime  # type: ignore[attr-defined]
    parsed = wecom.parse_aibot_message(_report_with_photo(fake, tiny_png, "mixed-crash"))
    assert parsed is not None
    creds = platform.ctx.callback_credentials()[0]
    msg, route = to_inbound(platform.ctx, parsed, creds)  # what the callback records
    assert engine.record(msg, route=route).inbound_id is not None
    assert fake.media_gets == [] and db_count(client, InboundAttachment) == 0
    # The next leading web process recovers it: the photo's URL and key come from the stored route.
    assert client.portal.call(lambda: runtime.recover(older_than=timedelta(0))) == 1
    wait_for(lambda: fake.responses)
    assert "照片：1张已保存" in fake.responses[0]["markdown"]["content"]
    assert db_count(client, Hazard) == 1 and db_count(client, AttachmentFile) == 1
    assert len(fake.media_gets) == 1 and db_count(client, InboundAttachment) == 0


def test_a_failed_photo_download_is_logged_and_the_report_handled_without_it(
    client: TestClient, fake: FakeWeCom, tiny_png: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    message = _report_with_photo(fake, tiny_png, "mixed-gone")
    fake.media.clear()  # WeCom answers 404: the link expired before the download
    response = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
    assert response.status_code == 200
    wait_for(lambda: fake.responses)
    assert re.search(r"已登记隐患 #\d+", fake.responses[0]["markdown"]["content"])
    assert len(fake.media_gets) == 1 and "wecom: photo download failed" in caplog.text
    assert db_count(client, Hazard) == 1 and db_count(client, AttachmentFile) == 0
    assert db_count(client, InboundAttachment) == 0


def test_a_text_report_makes_no_download(client: TestClient, fake: FakeWeCom, poster) -> None:  # type: ignore[no-untyped-def]
    _, response = poster(REPORT)
    assert response.status_code == 200
    wait_for(lambda: fake.responses)
    assert re.search(r"已登记隐患 #\d+", fake.responses[0]["markdown"]["content"])
    assert fake.media_gets == [] and db_count(client, InboundAttachment) == 0


def test_group_robot_xml_callback_replies_through_the_webhook(client: TestClient, fake: FakeWeCom) -> None:
    xml = group_robot_xml("@机器人 " + REPORT, userid="ZhangWei", chatid=ROBOT_CHAT,
                          webhook_url=f"{fake.base_url}/cgi-bin/webhook/send?key={ROBOT_WEBHOOK_KEY}")
    response = post_group_callback("/wecom/callback", xml, token=GROUP_TOKEN, encoding_aes_key=GROUP_AES_KEY,
                                   http=client)
    assert response.status_code == 200
    sent = wait_for(lambda: fake.sent_to(ROBOT_WEBHOOK_KEY))
    assert sent[0].msgtype == "markdown" and re.search(r"已登记隐患 #\d+", sent[0].content)  # type: ignore[index]
    # On the webhook <@userid> renders: the responsible person is mentioned in the reply itself, once.
    assert sent[0].content.startswith("<@WangJianGuo> 已登记隐患") and len(sent) == 1  # type: ignore[index]


def test_a_reply_hundreds_of_messages_long_is_cut_to_three(client: TestClient, fake: FakeWeCom) -> None:
    problem = "\n".join(f"第{i}处插座老化，电线裸露" for i in range(3000))
    xml = group_robot_xml(f"@机器人 隐患\n部位：3号教学楼\n问题：{problem}\n期限：明天", userid="ZhangWei",
                          chatid=ROBOT_CHAT, webhook_url=f"{fake.base_url}/cgi-bin/webhook/send?key={ROBOT_WEBHOOK_KEY}")
    response = post_group_callback("/wecom/callback", xml, token=GROUP_TOKEN, encoding_aes_key=GROUP_AES_KEY,
                                   http=client)
    assert response.status_code == 200
    # The replies row is rendered when it is sent: in place (one message) or as its children (several).
    wait_for(lambda: (rows := outbox_rows(client)) and all(r.state in ("sent", "expanded") for r in rows))
    sent = fake.sent_to(ROBOT_WEBHOOK_KEY)
    assert 1 <= len(sent) <= 3
    shown = "\n".join(s.content for s in sent)
    assert "已登记隐患 #" in shown and re.search(r"……回复太长，另有 \d+ 行未显示", shown)
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        assert session.exec(select(Hazard)).one().problem == problem


def _enqueue(client: TestClient, drafts: list, prefix: str) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine.db) as session:
        for i, draft in enumerate(drafts):
            outbox_store.enqueue(
                session, dedupe_key=f"{prefix}:{i}", platform="wecom", channel=draft.channel, robot=draft.robot,
                group_id="wecom-staff", kind=draft.kind, payload=dict(draft.payload), blob=draft.blob,
                now=engine.now(), give_up_after=timedelta(minutes=5),
            )
        session.commit()
    client.app.state.runtime.sender.kick()  # type: ignore[attr-defined]


def _group(client: TestClient):
    return next(g for g in client.app.state.engine.config.groups if g.id == "wecom-staff")  # type: ignore[attr-defined]


def test_push_markdown_with_mentions_image_and_file(client: TestClient, fake: FakeWeCom, tiny_png: bytes) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    pushes = client.app.state.services.pushes  # type: ignore[attr-defined]  (what the scheduler is given)
    replies = [
        Reply("今日未整改隐患提醒", mentions=("wang_jianguo", "nobody")),
        Reply("本周统计图", image_png=tiny_png),
        Reply("台账", file_name="隐患台账.xlsx", file_data=b"PK\x03\x04" + b"x" * 100),
    ]
    with Session(engine.db) as session:
        group = session.get(GroupRow, _group(client).id)
        assert group is not None
        added = pushes.enqueue_push(session, group=group, dedupe_key="digest:2026-11-23", replies=replies, now=engine.now(), give_up_after=timedelta(hours=1))
        again = pushes.enqueue_push(session, group=group, dedupe_key="digest:2026-11-23", replies=replies, now=engine.now(), give_up_after=timedelta(hours=1))
        session.commit()
    assert added == 3 and again == 0
    client.app.state.runtime.sender.kick()  # type: ignore[attr-defined]
    sent = wait_for(lambda: len(fake.sent_to(WEBHOOK_KEY)) >= 3 and fake.sent_to(WEBHOOK_KEY))
    kinds = {s.msgtype: s for s in sent}  # type: ignore[union-attr]
    assert "<@WangJianGuo>" in kinds["markdown"].content
    image = kinds["image"].body["image"]
    assert base64.b64decode(image["base64"]) == tiny_png and image["md5"] == hashlib.md5(tiny_png).hexdigest()
    key, filename, data = fake.uploads[kinds["file"].body["file"]["media_id"]]
    assert (key, filename, data[:4]) == (WEBHOOK_KEY, "隐患台账.xlsx", b"PK\x03\x04")


def test_oversized_image_fails_with_a_clear_error(client: TestClient, fake: FakeWeCom) -> None:
    big = b"\x89PNG" + os.urandom(wecom.IMAGE_MAX_BYTES)
    _enqueue(client, wecom.push_drafts(Session(client.app.state.engine.db), _group(client), [Reply("", image_png=big)]), "big")  # type: ignore[attr-defined]
    row = wait_for(lambda: next((r for r in outbox_rows(client) if r.state == "failed"), None))
    assert "2 MB" in row.last_error  # type: ignore[union-attr]
    assert fake.sent_to(WEBHOOK_KEY) == []


def test_transient_failures_are_retried_and_bad_keys_are_permanent(client: TestClient, fake: FakeWeCom) -> None:
    fake.fail_next(1, "500")
    fake.fail_next(1, "-1")
    fake.fail_next(1, "drop")
    fake.fail_next(1, "45009")
    _enqueue(client, wecom.push_drafts(Session(client.app.state.engine.db), _group(client), [Reply("重试测试")]), "retry")  # type: ignore[attr-defined]
    wait_for(lambda: fake.sent_to(WEBHOOK_KEY), timeout=20)
    assert [s.content for s in fake.sent_to(WEBHOOK_KEY)] == ["重试测试"]
    row = next(r for r in outbox_rows(client) if r.dedupe_key == "retry:0")
    wait_for(lambda: outbox_store.list_messages(client.app.state.engine.db, state="sent"))  # type: ignore[attr-defined]
    assert row.attempts >= 4

    fake.keys.discard(WEBHOOK_KEY)
    _enqueue(client, wecom.push_drafts(Session(client.app.state.engine.db), _group(client), [Reply("坏钥匙")]), "badkey")  # type: ignore[attr-defined]
    failed = wait_for(lambda: next((r for r in outbox_rows(client) if r.state == "failed"), None))
    assert "93000" in failed.last_error and WEBHOOK_KEY not in failed.last_error  # type: ignore[union-attr]
    assert failed.attempts == 1  # type: ignore[union-attr]


def test_http_429_waits_as_long_as_retry_after_asks_then_delivers_once(client: TestClient, fake: FakeWeCom) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    runtime.sender.may_send = lambda: False  # this test drives its own sender on a fixed clock
    fake.retry_after = "30"
    fake.fail_next(1, "429")
    _enqueue(client, wecom.push_drafts(Session(runtime.engine.db), _group(client), [Reply("限流测试")]), "throttled")
    now = [runtime.engine.now()]  # fixed from here on
    sender = OutboxSender(
        db=runtime.engine.db, deliveries={wecom.CHANNEL_WEBHOOK: runtime.sender.deliveries[wecom.CHANNEL_WEBHOOK]},
        clock=lambda: now[0],
    )
    assert client.portal.call(sender.drain_once) == 1  # type: ignore[union-attr]
    [row] = outbox_rows(client)
    assert (row.state, row.attempts) == ("pending", 1) and "429" in row.last_error
    assert row.next_attempt_at == now[0] + timedelta(seconds=30)
    now[0] += timedelta(seconds=29)
    assert client.portal.call(sender.drain_once) == 0  # type: ignore[union-attr]
    now[0] += timedelta(seconds=1)
    assert client.portal.call(sender.drain_once) == 1  # type: ignore[union-attr]
    assert [s.content for s in fake.sent_to(WEBHOOK_KEY)] == ["限流测试"]
    [row] = outbox_rows(client)
    assert (row.state, row.attempts) == ("sent", 2)


def test_used_response_url_falls_back_to_the_webhook(client: TestClient, fake: FakeWeCom, poster) -> None:
    url = fake.new_response_url()
    fake.response_codes[url.rsplit("=", 1)[1]] = True  # already used
    message = fake.aibot_text("@安全助手 " + REPORT, userid="ZhangWei", chatid=CHAT, response_url=url)
    response = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
    assert response.status_code == 200
    sent = wait_for(lambda: fake.sent_to(WEBHOOK_KEY))
    assert re.search(r"已登记隐患 #\d+", sent[0].content)  # type: ignore[index]
    failed = next(r for r in outbox_rows(client) if r.channel == wecom.CHANNEL_RESPONSE_URL)
    assert failed.state == "failed" and "re-sent through the group webhook" in failed.last_error
    assert "response_code=***" not in failed.last_error or url.rsplit("=", 1)[1] not in failed.last_error


def test_long_reply_is_split_for_the_webhook(client: TestClient) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    text = "\n".join(f"第{i}行：隐患内容描述，教学楼东侧消防通道堆放杂物" for i in range(400))
    with Session(engine.db) as session:
        drafts = wecom.push_drafts(session, _group(client), [Reply(text)])
        text_drafts = wecom.push_drafts(session, _group(client), [Reply(text)], kind="text")
    assert len(drafts) > 1 and all(len(str(d.payload["content"]).encode()) <= 4096 for d in drafts)
    assert all(len(str(d.payload["content"]).encode()) <= 2048 for d in text_drafts)
    assert "\n".join(str(d.payload["content"]) for d in drafts) == text


def test_render_routes_by_mode(client: TestClient, tiny_png: bytes) -> None:
    adapter: wecom.WeComPlatform = client.app.state.wecom  # type: ignore[attr-defined]
    replies = [Reply("图表", image_png=tiny_png), Reply("文件", file_name="a.xlsx", file_data=b"123456789")]
    with Session(client.app.state.engine.db) as session:  # type: ignore[attr-defined]
        by_url = adapter.render(session, replies, {"mode": "response_url", "group_id": "wecom-staff",
                                                   "response_url": "http://r", "channel": "wecom_response_url"})
        alone = adapter.render(session, replies, {"mode": "response_url", "group_id": None, "response_url": "http://r"})
        ws = adapter.render(session, replies, {"mode": "ws", "group_id": "wecom-staff", "bot": "aibot", "req_id": "R"})
    assert [(d.kind, d.channel) for d in by_url] == [
        ("markdown", None), ("image", "wecom_webhook"), ("file", "wecom_webhook")
    ]
    assert by_url[1].robot == "wecom:webhook:wecom-staff"
    assert len(alone) == 1 and wecom.NO_WEBHOOK_NOTE in str(alone[0].payload["content"])
    assert ws[0].kind == "stream" and ws[0].payload["images"] and [d.kind for d in ws[1:]] == ["file"]
    assert json.dumps(ws[0].payload)  # JSON-serialisable for the outbox row


# -- locked doors: URLs from callbacks, foreign answers -------------------------------------------


def test_a_response_url_on_another_host_is_never_called(client: TestClient, fake: FakeWeCom,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with InternalPage() as page:
        url = f"{page.base_url}/cgi-bin/aibot/response?response_code=internal"
        message = fake.aibot_text("@安全助手 " + REPORT, userid="ZhangWei", chatid=CHAT, response_url=url)
        response = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
        assert response.status_code == 200
        sent = wait_for(lambda: fake.sent_to(WEBHOOK_KEY))  # the reply came by the group's webhook instead
        assert re.search(r"已登记隐患 #\d+", sent[0].content)  # type: ignore[index]
        assert db_count(client, Hazard) == 1
        assert page.hits == [] and fake.responses == []
    assert "wecom.callback_url_hosts" in caplog.text


def test_a_photo_url_on_another_host_is_never_fetched(client: TestClient, fake: FakeWeCom, tiny_png: bytes) -> None:
    with InternalPage() as page:
        message = _report_with_photo(fake, tiny_png, "mixed-internal")
        message["mixed"]["msg_item"][1]["image"]["url"] = f"{page.base_url}/latest/meta-data/"  # type: ignore[index]
        response = post_aibot_callback("/wecom/callback", message, token=TOKEN, encoding_aes_key=AES_KEY, http=client)
        assert response.status_code == 200
        wait_for(lambda: fake.responses)
        assert db_count(client, Hazard) == 1 and db_count(client, AttachmentFile) == 0
        assert page.hits == []


def test_callback_url_hosts_default_to_wecom_and_tencent_storage(config_path: Path) -> None:
    config = load_config(config_path)
    urls = UrlAllowList(config.wecom.callback_url_hosts, (config.wecom.api_base,))
    assert urls.allows("https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=abc")
    assert urls.allows("https://ww-aibot-img-1258476243.cos.ap-guangzhou.myqcloud.com/BHoPdA3/757?sign=x")
    for bad in ("http://qyapi.weixin.qq.com/cgi-bin/aibot/response", "https://myqcloud.com.evil.example/x",
                "https://127.0.0.1/latest/meta-data/", "https://qyapi.weixin.qq.com@10.0.0.1/x"):
        assert not urls.allows(bad), bad


@pytest.mark.parametrize("status", [200, 400, 502])
def test_last_error_never_holds_a_foreign_answer(config_path: Path, fake: FakeWeCom, status: int) -> None:
    """A webhook send whose api_base answers with an HTML page: the outbox keeps the status, not the page."""
    with InternalPage(status=status) as page:
        elsewhere = SimpleNamespace(base_url=page.base_url, ws_url=fake.ws_url)  # api_base is the page
        config = load_config(write_config(config_path, elsewhere))  # type: ignore[arg-type]
        with TestClient(create_app(config, secrets=Secrets(environ=SECRET_ENV), clock=campaign_clock())) as client:
            _enqueue(client, wecom.push_drafts(Session(client.app.state.engine.db), _group(client),  # type: ignore[attr-defined]
                                               [Reply("内网测试")]), "foreign")
            row = wait_for(lambda: next((r for r in outbox_rows(client) if r.last_error), None))
        assert page.hits
    assert f"HTTP {status}" in row.last_error  # type: ignore[union-attr]
    assert page_secret not in row.last_error and "<" not in row.last_error  # type: ignore[union-attr]
