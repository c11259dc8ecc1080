"""Bad input, property-based: the parser, the engine and both callback endpoints never let an exception out.

Every chat reply is Chinese and never a stack trace. A callback that is oversized, not the platform's
envelope (form data, binary, broken XML/JSON), stale, badly signed or an exact replay is refused (or, for
a replay, acknowledged) without storing anything. The endpoints judge a body by its content, not by its
Content-Type header (neither platform documents the header strictly; the signature is what counts).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, func, select

from bot.app import create_app
from bot.config import load_config
from bot.engine import INTERNAL_ERROR_TEXT, Engine
from bot.platforms import dingtalk, wecom
from bot.secrets import Secrets
from handlers.messages import Inbound
from handlers.parser import parse_message
from models.clock import FixedClock
from models.db import make_engine
from models.tables import InboundMessage, OutboxMessage
from tests.bot.test_dingtalk import APP_SECRET, ENV as DT_ENV, dingtalk_toml
from tests.bot.test_wecom import AES_KEY, CHAT, SECRET_ENV, TOKEN, wecom_toml
from tests.conftest import EXAMPLE_CONFIG, campaign_clock, fresh_postgres_schema, with_local_storage
from tests.fakes.dingtalk_server import FakeDingTalk, callback_headers, robot_message
from tests.fakes.wecom_server import FakeWeCom, callback_query, encrypt_text
from tests.school import START, make_config

CJK = re.compile(r"[\u4e00-\u9fff]")
LEAKS = re.compile(r"Traceback|Exception|Error\b|File \"|line \d+|NoneType|object has no attribute")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])

# Text that looks like chat: command words, field labels, numbers, punctuation, plus anything at all.
WORDS = ["隐患", "部位：", "问题：", "责任人：", "期限：", "明天", "12月10日", "重大", "整改", "验收", "销号", "撤销",
         "查看", "清单", "统计", "台账", "帮助", "延期", "退回", "检查", "报送", "#", "#12", "#0", "#999999999999",
         "\n", " ", "：", ":", "，", "@安全助手", "3号教学楼", "王建国", "😀", "\x00", "\u200b", "‮", "%s", "{}", "<xml>",
         "#" + "9" * 4_400, "期限：9999年12月31日", "[点这里](http://evil)", "<@LiNa>"]
chat_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=30).map("".join),
)


def _stored(engine: Engine) -> tuple[int, int]:
    with Session(engine.db) as session:
        return (session.exec(select(func.count()).select_from(InboundMessage)).one(),
                # Replies rows, not the children the sender renders them into meanwhile (an earlier example's)
                session.exec(select(func.count()).select_from(OutboxMessage)
                             .where(col(OutboxMessage.dedupe_key).not_like("%#%"))).one())


# -- the parser and the engine ---------------------------------------------------------------------------


@FUZZ
@given(text=chat_text)
def test_parser_gives_a_command_or_chinese_errors(text: str) -> None:
    command = parse_message(text, today=date(2026, 12, 1))
    assert command.command is not None or command.errors, f"neither a command nor an error for {text!r}"
    for error in command.errors:
        assert CJK.search(error) and not LEAKS.search(error), error


@pytest.fixture(scope="module")
def console_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    tmp = tmp_path_factory.mktemp("fuzz-engine")
    db = make_engine(f"sqlite:///{tmp / 'fuzz.db'}")
    engine = Engine(config=make_config(), db=db, data_dir=tmp / "data", clock=FixedClock(START))
    engine.start()
    yield engine
    db.dispose()


_ids = itertools.count()


@FUZZ
@given(text=chat_text, person=st.sampled_from(["zhang_wei", "wang_jianguo", "li_na", "nobody-known"]))
def test_any_text_from_anyone_gets_a_chinese_reply(console_engine: Engine, text: str, person: str) -> None:
    msg = Inbound(platform="console", msg_id=f"fuzz-{next(_ids)}", chat_id="staff", sender_id=person, text=text,
                  received_at=console_engine.now())
    replies = console_engine.handle_sync(msg)
    assert replies, f"no reply to {text!r}"
    joined = "\n".join(reply.text for reply in replies)
    assert CJK.search(joined) and not LEAKS.search(joined), joined
    assert INTERNAL_ERROR_TEXT not in joined, f"a handler crashed on {text!r} (see the log)"


# -- the callback endpoints -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeWeCom, FakeDingTalk]]:
    dt = FakeDingTalk()
    dt.add_app("dingapp0001", APP_SECRET)
    with FakeWeCom(window=60.0) as wc, dt:
        yield wc, dt


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite in a temporary file, or a fresh PostgreSQL schema when TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fuzz-db') / 'fuzz.db'}"
        return
    with fresh_postgres_schema("fuzz") as schema:
        yield schema.url


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, fakes: tuple[FakeWeCom, FakeDingTalk],
           database_url: str) -> Iterator[TestClient]:
    wc, dt = fakes
    tmp = tmp_path_factory.mktemp("fuzz-app")
    config_text = with_local_storage(EXAMPLE_CONFIG.read_text(encoding="utf-8"), db_url=database_url,
                              data_dir=str(tmp / "data"))
    # Both platform blocks declare [outbox]; keep the WeCom one.
    dt_block = dingtalk_toml(dt.base_url).replace("[outbox]\nwindow_seconds = 60.0\nretry_base_seconds = 0.2\nretry_max_seconds = 1.0\n", "")
    path = tmp / "config.toml"
    path.write_text(config_text + wecom_toml(wc) + dt_block, encoding="utf-8")
    app = create_app(load_config(path), secrets=Secrets(environ={**SECRET_ENV, **DT_ENV}), clock=campaign_clock())
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client
    app.state.engine.db.dispose()


def _engine(client: TestClient) -> Engine:
    return client.app.state.engine  # type: ignore[attr-defined,no-any-return]


CONTENT_TYPES = st.sampled_from([
    None, "application/json", "text/xml", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/octet-stream", "image/png", "application/json; charset=gbk",
])
NOT_AN_ENVELOPE = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"", b"{", b"[]", b"null", b"1", b'"encrypt"', b'{"encrypt": 1}', b'{"encrypt": ""}',
                     b"<xml>", b"<xml><Encrypt></Encrypt></xml>", b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>",
                     b"a=1&encrypt=x", b"--x\r\nContent-Disposition: form-data; name=\"encrypt\"\r\n\r\nabc\r\n--x--\r\n",
                     b"\xef\xbb\xbf{\"encrypt\": \"abc\"}", b"\xff\xfe<\x00x\x00"]),
)


def _headers(content_type: str | None) -> dict[str, str]:
    return {"Content-Type": content_type} if content_type else {}


@FUZZ
@given(body=NOT_AN_ENVELOPE, content_type=CONTENT_TYPES, signed=st.booleans())
def test_wecom_refuses_what_is_not_a_signed_envelope(client: TestClient, body: bytes, content_type: str | None,
                                                      signed: bool) -> None:
    before = _stored(_engine(client))
    # A correct signature over the whole body as "encrypt": gets past the signature check to decryption.
    params = callback_query(TOKEN, body.decode("utf-8", "replace")) if signed else {
        "msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "n"}
    response = client.post("/wecom/callback", params=params, content=body, headers=_headers(content_type))
    assert response.status_code in (400, 403), (response.status_code, response.text)
    assert _stored(_engine(client)) == before


@FUZZ
@given(encrypt=st.text(alphabet=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="),
                       max_size=400), xml=st.booleans())
def test_wecom_signed_garbage_ciphertext_is_refused(client: TestClient, encrypt: str, xml: bool) -> None:
    before = _stored(_engine(client))
    body = (f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode() if xml
            else json.dumps({"encrypt": encrypt}).encode())
    response = client.post("/wecom/callback", params=callback_query(TOKEN, encrypt), content=body)
    assert response.status_code in (400, 403), (response.status_code, response.text)
    assert _stored(_engine(client)) == before


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                          max_leaves=10)


def nested(depth: int, kind: str, leaf: str = "1") -> str:
    """JSON text nested `depth` levels deep, written as text (json.dumps would itself recurse)."""
    if kind == "list":
        return "[" * depth + leaf + "]" * depth
    return '{"a":' * depth + leaf + "}" * depth


# Raw JSON that json.dumps cannot produce, or that trips code reading it: nesting below and far past the
# recursion limit, a number with more digits than int() takes, 1e999 (float inf), NaN and lone surrogates.
DEPTHS = st.one_of(st.sampled_from([1, 5, 31, 32, 33, 500, 990, 1_000, 5_000, 200_000]), st.integers(1, 3_000))
odd_json = st.one_of(
    st.builds(nested, DEPTHS, st.sampled_from(["list", "dict"]), st.sampled_from(["1", '"隐患"', "null", "{}"])),
    st.sampled_from(["9" * 4_301, "-" + "9" * 5_000, "1e999", "-1e999", "NaN", "Infinity", "-0", "1.5",
                     "99999999999999999999", "10000000000000000", "true", '""', "[]", "{}", '"\\ud800"',
                     '"隐患 部位：\\u0000一楼"', '{"content": ["隐患"]}', '[{"msgtype": "text"}]']),
)


def with_raw_json(message: dict[str, Any], fragments: dict[tuple[str, ...], str]) -> str:
    """`message` as JSON text with the value at each path replaced by a raw JSON fragment."""
    message = copy.deepcopy(message)
    for index, path in enumerate(fragments):
        target = message
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = f"\x00raw{index}\x00"
    text = json.dumps(message, ensure_ascii=False)
    for index, fragment in enumerate(fragments.values()):
        text = text.replace(json.dumps(f"\x00raw{index}\x00"), fragment)
    return text


@st.composite
def aibot_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """A decrypted AI-bot message whose fields have arbitrary types and values."""
    message: dict[str, Any] = {}
    for key, good in [("msgid", st.text(min_size=1, max_size=20).map(lambda s: f"fz-{uuid.uuid4().hex[:8]}-{s}")),
                      ("from", st.just({"userid": "ZhangWei"})), ("chattype", st.sampled_from(["group", "single"])),
                      ("chatid", st.just(CHAT)), ("msgtype", st.sampled_from(["text", "mixed", "image", "voice", "event", "stream", "file"])),
                      ("text", st.builds(lambda c: {"content": c}, chat_text)),
                      ("mixed", st.builds(lambda items: {"msg_item": items}, json_value)),
                      ("quote", json_value), ("voice", json_value), ("image", json_value),
                      ("response_url", st.just("http://127.0.0.1:9/cgi-bin/aibot/response?response_code=x"))]:
        choice = draw(st.sampled_from(["good", "weird", "absent"]))
        if choice == "good":
            message[key] = draw(good)
        elif choice == "weird":
            message[key] = draw(json_value)
    return message


@FUZZ
@example(plain=json.dumps({"msgid": "fz-items", "from": {"userid": "ZhangWei"}, "chatid": CHAT, "chattype": "group",
                           "msgtype": "mixed", "mixed": {"msg_item": 5}}))  # once a TypeError → HTTP 500
@example(plain=json.dumps({"msgid": "fz-quote", "from": {"userid": "ZhangWei"}, "chatid": CHAT, "msgtype": "text",
                           "text": {"content": "整改"}, "quote": {"msgtype": "mixed", "mixed": {"msg_item": 7}}}))
@example(plain=json.dumps({"msgid": "fz-nul\x00" + "x" * 200, "from": {"userid": "ZhangWei\x00"}, "chatid": "c" * 300,
                           "msgtype": "text", "text": {"content": "隐患\x00 \ud800 部位：一楼"}}))  # PostgreSQL: 500
@given(plain=st.one_of(aibot_shaped().map(lambda m: json.dumps(m, ensure_ascii=False)),
                       json_value.map(json.dumps), st.text(max_size=300)))
def test_wecom_any_decrypted_payload_is_handled_or_refused(client: TestClient, plain: str) -> None:
    engine = _engine(client)
    before = _stored(engine)
    encrypt = encrypt_text(AES_KEY, plain)
    response = client.post("/wecom/callback", params=callback_query(TOKEN, encrypt), content=json.dumps({"encrypt": encrypt}),
                           headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400), (response.status_code, response.text)
    inbound, _ = _stored(engine)
    if response.status_code != 200:
        assert _stored(engine) == before
    assert inbound - before[0] in (0, 1)
    _assert_replies_chinese(engine)


AIBOT_PATHS = [("msgid",), ("from",), ("from", "userid"), ("chatid",), ("chattype",), ("msgtype",), ("text",),
               ("text", "content"), ("mixed",), ("mixed", "msg_item"), ("quote",), ("quote", "text", "content"),
               ("voice",), ("voice", "content"), ("image",), ("image", "url"), ("response_url",), ("webhook_url",)]


@FUZZ
@example(plain=nested(200_000, "list"))  # once a RecursionError → HTTP 500
@example(plain=nested(990, "dict"))
@given(plain=st.one_of(
    st.builds(nested, DEPTHS, st.sampled_from(["list", "dict"])),
    st.builds(lambda fragments, text, group: with_raw_json(
        {"msgid": f"fz-{uuid.uuid4().hex}", "from": {"userid": "ZhangWei"}, "chatid": CHAT, "chattype": "group",
         "msgtype": "text", "text": {"content": text},
         **({"webhook_url": "http://127.0.0.1:9/cgi-bin/webhook/send?key=x"} if group else {})}, fragments),
        st.dictionaries(st.sampled_from(AIBOT_PATHS), odd_json, min_size=1, max_size=3), chat_text, st.booleans()),
))
def test_wecom_encrypted_payloads_with_wrong_types_and_deep_nesting_never_fail(client: TestClient, plain: str) -> None:
    """Payloads that pass the signature check and decrypt (real crypto), but are nested deep or odd-typed."""
    engine = _engine(client)
    before = _stored(engine)
    encrypt = encrypt_text(AES_KEY, plain)
    body = json.dumps({"encrypt": encrypt})
    response = client.post("/wecom/callback", params=callback_query(TOKEN, encrypt), content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code in _wecom_outcomes(body), (response.status_code, response.text[:300])
    if response.status_code != 200:
        assert _stored(engine) == before
    assert _stored(engine)[0] - before[0] in (0, 1)
    _assert_replies_chinese(engine)


def _wecom_outcomes(body: str) -> tuple[int, ...]:
    return (413,) if len(body.encode()) > wecom.MAX_BODY_BYTES else (200, 400)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=DEPTHS, where=st.sampled_from(["root", "text"]))
def test_wecom_encrypted_deep_xml_is_handled_or_refused(client: TestClient, depth: int, where: str) -> None:
    engine = _engine(client)
    before = _stored(engine)
    deep = "<a>" * depth + "x" + "</a>" * depth
    plain = (f"<xml>{deep}<MsgId>fz-{uuid.uuid4().hex}</MsgId><From><UserId>ZhangWei</UserId></From>"
             f"<ChatId>{CHAT}</ChatId><MsgType>text</MsgType><Text><Content>{deep if where == 'text' else '清单'}"
             "</Content></Text></xml>")
    encrypt = encrypt_text(AES_KEY, plain)
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    response = client.post("/wecom/callback", params=callback_query(TOKEN, encrypt), content=body)
    assert response.status_code in _wecom_outcomes(body), (response.status_code, response.text[:300])
    assert _stored(engine)[0] - before[0] in (0, 1)
    _assert_replies_chinese(engine)


def test_wecom_malformed_unauthenticated_input_is_refused_not_a_500(client: TestClient) -> None:
    """No signature needed to reach these: each once answered 500."""
    before = _stored(_engine(client))
    deep = nested(200_000, "list").encode()
    response = client.post("/wecom/callback", params=callback_query(TOKEN, "x"), content=deep)
    assert (response.status_code, response.text) == (400, "broken JSON")
    query = {**callback_query(TOKEN, "abc"), "msg_signature": "签名" * 20}  # non-ASCII: compare_digest raised
    assert client.post("/wecom/callback", params=query, content=json.dumps({"encrypt": "abc"})).status_code == 403
    assert client.get("/wecom/callback", params={**query, "echostr": "abc"}).status_code == 403
    for timestamp in ("١٧٠٠٠٠٠٠٠٠", "²", "9" * 5_000):  # int() takes Arabic-Indic digits; '²'.isdigit() is True
        query = callback_query(TOKEN, "abc", timestamp=timestamp)
        assert client.post("/wecom/callback", params=query, content=json.dumps({"encrypt": "abc"})).status_code == 403
    assert _stored(_engine(client)) == before


def _assert_replies_chinese(engine: Engine) -> None:
    """Wait for recorded messages to be handled, then check every reply text."""
    deadline = time.monotonic() + 10
    with Session(engine.db) as session:
        while session.exec(select(func.count()).select_from(InboundMessage).where(InboundMessage.state == "received")).one():
            assert time.monotonic() < deadline, "a recorded message was not handled"
            time.sleep(0.02)
            session.expire_all()
        for row in session.exec(select(InboundMessage)):
            assert row.state == "handled", (row.text, row.state, row.reply_text)
            assert row.reply_text and CJK.search(row.reply_text) and not LEAKS.search(row.reply_text), row.reply_text


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(skew=st.one_of(st.integers(min_value=301, max_value=10**9), st.integers(min_value=-10**9, max_value=-301)),
       text=chat_text)
def test_wecom_stale_timestamps_are_refused(client: TestClient, fakes: tuple[FakeWeCom, FakeDingTalk], skew: int,
                                            text: str) -> None:
    before = _stored(_engine(client))
    message = fakes[0].aibot_text(f"@安全助手 {text}", userid="ZhangWei", chatid=CHAT)
    encrypt = encrypt_text(AES_KEY, json.dumps(message, ensure_ascii=False))
    params = callback_query(TOKEN, encrypt, timestamp=str(int(time.time()) + skew))
    response = client.post("/wecom/callback", params=params, content=json.dumps({"encrypt": encrypt}))
    assert response.status_code == 403
    assert _stored(_engine(client)) == before


def test_wecom_replays_and_oversized_bodies_store_nothing(client: TestClient, fakes: tuple[FakeWeCom, FakeDingTalk]) -> None:
    engine = _engine(client)
    message = fakes[0].aibot_text("@安全助手 清单", userid="ZhangWei", chatid=CHAT)
    encrypt = encrypt_text(AES_KEY, json.dumps(message, ensure_ascii=False))
    params, body = callback_query(TOKEN, encrypt), json.dumps({"encrypt": encrypt})
    assert client.post("/wecom/callback", params=params, content=body).status_code == 200
    after_first = _stored(engine)[0]
    for _ in range(3):  # the exact request again: acknowledged, nothing new stored
        assert client.post("/wecom/callback", params=params, content=body).status_code == 200
    # The captured signature with another body (another message) does not verify.
    other = encrypt_text(AES_KEY, json.dumps({**message, "msgid": "forged"}, ensure_ascii=False))
    assert client.post("/wecom/callback", params=params, content=json.dumps({"encrypt": other})).status_code == 403
    assert _stored(engine)[0] == after_first

    big = b'{"encrypt": "' + b"A" * (wecom.MAX_BODY_BYTES + 10) + b'"}'
    assert client.post("/wecom/callback", params=callback_query(TOKEN, "A"), content=big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        for _ in range(wecom.MAX_BODY_BYTES // 65536 + 2):
            yield b"A" * 65536

    assert client.post("/wecom/callback", params=callback_query(TOKEN, "A"), content=chunks()).status_code == 413
    assert _stored(engine)[0] == after_first
    # Let the first message's reply reach the outbox now, not during the next test's count.
    _assert_replies_chinese(engine)


# -- DingTalk ------------------------------------------------------------------------------------------------


@FUZZ
@given(body=NOT_AN_ENVELOPE, content_type=CONTENT_TYPES, signed=st.booleans())
def test_dingtalk_refuses_what_is_not_a_signed_json_object(client: TestClient, body: bytes, content_type: str | None,
                                                           signed: bool) -> None:
    before = _stored(_engine(client))
    headers = callback_headers(APP_SECRET) if signed else {"timestamp": str(int(time.time() * 1000)), "sign": "x"}
    headers = {k: v for k, v in headers.items() if k != "Content-Type"} | _headers(content_type)
    response = client.post("/dingtalk/callback", content=body, headers=headers)
    assert response.status_code in (200, 400, 403), (response.status_code, response.text)
    assert _stored(_engine(client)) == before


@st.composite
def robot_shaped(draw: st.DrawFn, fake: FakeDingTalk) -> dict[str, Any]:
    """A DingTalk robot message with some fields replaced by arbitrary JSON values or dropped."""
    message = robot_message(fake, text=draw(chat_text), msg_id=f"fz{uuid.uuid4().hex}")
    for key in draw(st.lists(st.sampled_from(sorted(message)), max_size=4, unique=True)):
        if draw(st.booleans()):
            message[key] = draw(json_value)
        else:
            del message[key]
    return message


@FUZZ
@given(data=st.data())
def test_dingtalk_any_signed_object_is_handled_or_refused(client: TestClient, fakes: tuple[FakeWeCom, FakeDingTalk],
                                                          data: st.DataObject) -> None:
    engine = _engine(client)
    message = data.draw(st.one_of(robot_shaped(fakes[1]), st.dictionaries(st.text(max_size=10), json_value, max_size=6)))
    before = _stored(engine)
    body = json.dumps(message, ensure_ascii=False).encode()
    response = client.post("/dingtalk/callback", content=body, headers=callback_headers(APP_SECRET))
    assert response.status_code in (200, 400), (response.status_code, response.text)
    if response.status_code != 200:
        assert _stored(engine) == before
    assert _stored(engine)[0] - before[0] in (0, 1)
    _assert_replies_chinese(engine)


def test_dingtalk_stale_replayed_and_oversized_store_nothing(client: TestClient, fakes: tuple[FakeWeCom, FakeDingTalk]) -> None:
    engine = _engine(client)
    message = robot_message(fakes[1], text="清单")
    body = json.dumps(message, ensure_ascii=False).encode()
    now = int(time.time() * 1000)
    for stale in (now - 3_600_000 - 1_000, now + 3_600_000 + 1_000, 0):
        assert client.post("/dingtalk/callback", content=body, headers=callback_headers(APP_SECRET, now_ms=stale)).status_code == 403
    before = _stored(engine)[0]
    headers = callback_headers(APP_SECRET)
    for _ in range(3):  # DingTalk's sign does not cover the body: a replay is caught by msgId
        assert client.post("/dingtalk/callback", content=body, headers=headers).status_code == 200
    assert _stored(engine)[0] == before + 1
    big = b'{"x":"' + b"a" * (dingtalk.MAX_CALLBACK_BYTES + 10) + b'"}'
    assert client.post("/dingtalk/callback", content=big, headers=headers).status_code == 413
    assert _stored(engine)[0] == before + 1


ROBOT_PATHS = [("msgId",), ("conversationId",), ("conversationType",), ("senderStaffId",), ("senderId",),
               ("senderNick",), ("msgtype",), ("text",), ("text", "content"), ("content",), ("content", "richText"),
               ("content", "downloadCode"), ("content", "recognition"), ("sessionWebhook",),
               ("sessionWebhookExpiredTime",), ("createAt",), ("robotCode",), ("conversationTitle",), ("atUsers",)]


def _post_signed_dingtalk(client: TestClient, raw: str) -> None:
    """POST a body under a valid `sign` (DingTalk's signature does not cover the body); check the outcome."""
    engine = _engine(client)
    before = _stored(engine)
    body = raw.encode()
    response = client.post("/dingtalk/callback", content=body, headers=callback_headers(APP_SECRET))
    expected = (413,) if len(body) > dingtalk.MAX_CALLBACK_BYTES else (200, 400)
    assert response.status_code in expected, (response.status_code, response.text[:300])
    if response.status_code != 200:
        assert _stored(engine) == before
    assert _stored(engine)[0] - before[0] in (0, 1)
    _assert_replies_chinese(engine)


@FUZZ
@example(depth=120_000, kind="list")  # once a RecursionError → HTTP 500
@example(depth=990, kind="list")
@given(depth=DEPTHS, kind=st.sampled_from(["list", "dict"]))
def test_dingtalk_signed_deeply_nested_bodies_are_refused(client: TestClient, depth: int, kind: str) -> None:
    _post_signed_dingtalk(client, nested(depth, kind))


@FUZZ
@given(data=st.data())
def test_dingtalk_signed_messages_with_wrong_types_and_deep_nesting_never_fail(
    client: TestClient, fakes: tuple[FakeWeCom, FakeDingTalk], data: st.DataObject
) -> None:
    kind = data.draw(st.sampled_from(["text", "richText", "audio", "picture"]))
    text = data.draw(chat_text)
    message = robot_message(fakes[1], text=text, msg_id=f"fz{uuid.uuid4().hex}")
    message.update(msgtype=kind, content={"richText": [{"text": text}], "recognition": text, "downloadCode": "x"})
    fragments = data.draw(st.dictionaries(st.sampled_from(ROBOT_PATHS), odd_json, min_size=1, max_size=3))
    _post_signed_dingtalk(client, with_raw_json(message, fragments))


def test_dingtalk_non_ascii_timestamp_header_is_refused_not_a_500(client: TestClient) -> None:
    """Headers arrive as raw bytes (read as Latin-1): b'\\xb2' is '²', which passes isdigit() but not int()."""
    before = _stored(_engine(client))
    for timestamp in (b"\xb2", b"1\xb3", b"\xb9" * 13, b"9" * 5_000):
        headers = [(b"timestamp", timestamp), (b"sign", callback_headers(APP_SECRET)["sign"].encode()),
                   (b"content-type", b"application/json")]
        assert _raw_post(client, "/dingtalk/callback", headers, b"{}") == 403
    fresh = callback_headers(APP_SECRET)["timestamp"].encode()
    for sign in (b"\xe9" * 44, "签名".encode()):
        headers = [(b"timestamp", fresh), (b"sign", sign), (b"content-type", b"application/json")]
        assert _raw_post(client, "/dingtalk/callback", headers, b"{}") == 403
    assert _stored(_engine(client)) == before


def _raw_post(client: TestClient, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """POST with header bytes as given (the test client re-encodes header values as UTF-8), on the app's loop."""

    async def post() -> int:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.post(path, content=body, headers=headers)
        assert b"Traceback" not in response.content
        return response.status_code

    assert client.portal is not None
    return client.portal.call(post)
