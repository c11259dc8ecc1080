"""WeCom (企业微信) adapter: 智能机器人 callbacks and long connection, group-robot callbacks, outbox deliveries.

Receiving
- `/wecom/callback` (and `/wecom/callback/{credential_id}`): the 智能机器人 API-mode callback (encrypted
  JSON) and the group-robot callback (encrypted XML, a beta some tenants have). GET answers the URL
  verification; POST is verified (timestamp window, msg_signature, replayed signature+nonce),
  decrypted, recorded under its msgid and acknowledged with an empty 200 before the handler runs.
- Long connection (WebSocket) for bots with `mode = "websocket"`: one `WsConnection` per bot.

Sending (outbox channels registered in `runtime.sender.deliveries`)
- `wecom_response_url`: the single-use `response_url` of an AI-bot callback (markdown).
- `wecom_webhook`: a group's 消息推送 webhook (text / markdown / image / file).
- `wecom_ws`: `aibot_respond_msg` / `aibot_send_msg` over the long connection.

The scheduler's pushes go through `bot.pushes.Pushes`, which renders them with `push_drafts()`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import random
import re
import uuid
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
import httpx
from anyio.abc import TaskGroup
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.routing import Route
from sqlmodel import Session, select
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from bot.config import Config, Group, WeComBot
from bot.logging_setup import RedactingFilter, redact
from bot.outbox import DeliveryResult, Draft, answer_reason, platform_error, split_utf8
from bot.platforms.base import Runtime
from bot.secrets import Secrets
from bot.untrusted import MalformedPayload, ascii_int, load_json, same_secret
from bot.url_allowlist import UrlAllowList
from handlers.format import escape_markdown
from handlers.messages import Attachment, Inbound, Reply
from models import outbox as outbox_store
from models.clock import wall_clock_seconds
from models.tables import GroupRow, OutboxMessage, PersonRow

log = logging.getLogger(__name__)
RESPONSE_URL_VALIDITY = timedelta(hours=1)  # a callback's response_url works once, within an hour

# -- limits and windows ------------------------------------------------------------------------

TIMESTAMP_WINDOW_SECONDS = 300  # a callback's timestamp may differ from our clock by at most this
MAX_BODY_BYTES = 1024 * 1024  # larger callback bodies are refused with 413
TEXT_MAX_BYTES = 2048  # webhook text.content
MARKDOWN_MAX_BYTES = 4096  # webhook markdown.content
RESPONSE_MAX_BYTES = 20480  # AI-bot response_url markdown and stream content
IMAGE_MAX_BYTES = 2 * 1024 * 1024  # webhook image, before base64
FILE_MAX_BYTES = 20 * 1024 * 1024  # webhook upload_media type=file
WS_IMAGE_MAX_BYTES = 10 * 1024 * 1024  # stream msg_item image
WS_MAX_IMAGES = 10
MEDIA_MAX_BYTES = 10 * 1024 * 1024  # a downloaded photo
HEARTBEAT_SECONDS = 30.0
WS_ACK_TIMEOUT_SECONDS = 5.0
WS_RECONNECT_MAX_SECONDS = 60.0
# Handlers running at once. Under a burst, more would only contend for the GIL and the database's locks
# with the acknowledgements (measured: 4.5× fewer acks/s with 40); the rest wait their turn in memory.
HANDLER_SLOTS = 2

# errcodes worth another try; every other non-zero errcode is permanent (93000 bad key, 40058 too long…)
RETRYABLE_ERRCODES = frozenset({-1, 45009, 45033})
RATE_LIMITED_ERRCODES = frozenset({45009})

CHANNEL_RESPONSE_URL = "wecom_response_url"
CHANNEL_WEBHOOK = "wecom_webhook"
CHANNEL_WS = "wecom_ws"

TRUNCATED_NOTE = "\n……（内容过长，已截断）"
NO_WEBHOOK_NOTE = "（图表和文件要通过本群的“消息推送”机器人发送，本群还没有配置，请联系管理员。）"


# -- crypto (WXBizMsgCrypt through wechatpy; receiveid is "" for robots and internal AI bots) ----------


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """sha1 over the sorted concatenation of token, timestamp, nonce and the encrypted text."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode("utf-8")).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key behind a 43-character EncodingAESKey."""
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


def decrypt_media(data: bytes, key: bytes) -> bytes:
    """Decrypt a downloaded image/file: AES-256-CBC, IV = key[:16], PKCS#7 padded to 32 bytes."""
    if not data or len(data) % 16:
        raise ValueError("encrypted media is empty or not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad PKCS#7 padding in decrypted media")
    return plain[:-pad]


@dataclass(frozen=True, slots=True)
class CallbackCredentials:
    """Token + EncodingAESKey of one callback receiver (an AI bot, or a group's robot callback)."""

    id: str  # bot id, or "group:<group id>"
    token: str
    encoding_aes_key: str
    bot: str | None = None  # the [[wecom.bots]] id, for AI-bot callbacks
    group: str | None = None  # the group id, for group-robot callbacks

    def crypto(self) -> WeChatCrypto:
        return WeChatCrypto(self.token, self.encoding_aes_key, "")

    def matches(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> bool:
        return same_secret(msg_signature(self.token, timestamp, nonce, encrypt), signature)


class ReplayGuard:
    """Remembers (msg_signature, nonce) pairs for the timestamp window: a replay within it is refused."""

    def __init__(self, window_seconds: float = TIMESTAMP_WINDOW_SECONDS, clock: Callable[[], float] = wall_clock_seconds):
        self.window = window_seconds
        self.clock = clock
        # In expiry order (every pair lives equally long), so forgetting is popping from the front.
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def seen(self, signature: str, nonce: str) -> bool:
        now = self.clock()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        expiry = self._seen.get((signature, nonce))
        return expiry is not None and expiry > now

    def remember(self, signature: str, nonce: str) -> None:
        # Twice the window: a pair stays refused for as long as its timestamp could be accepted.
        self._seen[(signature, nonce)] = self.clock() + 2 * self.window
        self._seen.move_to_end((signature, nonce))


def _replay_key(signature: str, nonce: str) -> str:
    return "wecom:replay:" + hashlib.sha1(f"{signature}:{nonce}".encode()).hexdigest()


class CallbackRejected(Exception):
    """A callback that must be refused with an HTTP status (nothing stored)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def timestamp_ok(timestamp: str, now: float, window: float = TIMESTAMP_WINDOW_SECONDS) -> bool:
    """True when a callback's Unix timestamp (ASCII digits) is within ±window seconds of now."""
    seconds = ascii_int(timestamp) if isinstance(timestamp, str) else None
    return seconds is not None and abs(now - seconds) <= window


# -- parsing callback payloads -----------------------------------------------------------------

_LEADING_MENTIONS = re.compile(r"^(?:\s*@\S+)+\s*")
_NUMBER = re.compile(r"#\s*\d+")


@dataclass(frozen=True, slots=True)
class MediaRef:
    """An encrypted photo to download after the acknowledgement (5 minutes valid)."""

    url: str
    aeskey: str | None = None  # long-connection messages carry their own key; HTTP mode uses the bot's


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A user message from a WeCom callback, before it becomes an `Inbound`."""

    msg_id: str
    chat_id: str
    chat_type: str
    user_id: str
    text: str
    sender_name: str = ""
    media: tuple[MediaRef, ...] = ()
    response_url: str | None = None
    webhook_url: str | None = None


def strip_mentions(text: str) -> str:
    """Remove the leading @bot mention(s) WeCom puts before a group message."""
    return _LEADING_MENTIONS.sub("", text or "", count=1).strip()


def _text_of(item: dict[str, Any]) -> str:
    text = item.get("text")
    return str(text.get("content", "")) if isinstance(text, dict) else ""


def _images_of(item: dict[str, Any]) -> list[MediaRef]:
    image = item.get("image")
    if isinstance(image, dict) and image.get("url"):
        return [MediaRef(str(image["url"]), image.get("aeskey"))]
    return []


def _msg_items(mixed: Any) -> list[dict[str, Any]]:
    """The dict items of a `mixed.msg_item` list; anything else in their place counts as none."""
    items = mixed.get("msg_item") if isinstance(mixed, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def parse_aibot_message(body: dict[str, Any]) -> ParsedMessage | None:
    """Translate a decrypted 智能机器人 message (text, mixed, quote, image, voice); None for events."""
    msgtype = body.get("msgtype")
    msg_id = body.get("msgid")
    user_id = (body.get("from") or {}).get("userid") if isinstance(body.get("from"), dict) else None
    if not msg_id or not user_id or msgtype in (None, "event", "stream"):
        return None
    texts: list[str] = []
    media: list[MediaRef] = []
    if msgtype == "text":
        texts.append(_text_of(body))
    elif msgtype == "mixed":
        mixed = body.get("mixed") or {}
        for item in _msg_items(mixed):
            if item.get("msgtype") == "text":
                texts.append(_text_of(item))
            elif item.get("msgtype") == "image":
                media += _images_of(item)
    elif msgtype == "image":
        media += _images_of(body)
    elif msgtype == "voice":
        voice = body.get("voice") or {}
        texts.append(str(voice.get("content", "")) if isinstance(voice, dict) else "")
    else:
        return None
    text = strip_mentions("\n".join(t for t in texts if t))
    quote = body.get("quote")
    if isinstance(quote, dict):
        quoted = _text_of(quote)
        # Words that quote an earlier photo (the only way a photo reaches the bot in a group besides `mixed`)
        # bring that photo along when the quote carries it.
        media += _images_of(quote)
        if quote.get("msgtype") == "mixed" and isinstance(quote.get("mixed"), dict):
            quoted = "\n".join(_text_of(i) for i in _msg_items(quote["mixed"]))
            media += [ref for item in _msg_items(quote["mixed"]) for ref in _images_of(item)]
        # "整改" quoting the bot's "已登记隐患 #12" means #12: carry the number over when none was typed.
        number = _NUMBER.search(quoted)
        if number and not _NUMBER.search(text):
            text = f"{text} {number.group(0)}".strip()
    chat_type = str(body.get("chattype") or "single")
    chat_id = str(body.get("chatid") or f"single:{user_id}")
    return ParsedMessage(
        msg_id=str(msg_id), chat_id=chat_id, chat_type=chat_type, user_id=str(user_id), text=text,
        media=tuple(media), response_url=body.get("response_url") or None,
    )


def _xml_text(node: ET.Element | None, path: str) -> str:
    found = node.find(path) if node is not None else None
    return (found.text or "").strip() if found is not None and found.text else ""


def parse_group_robot_xml(xml_text: str) -> ParsedMessage | None:
    """Translate a decrypted group-robot callback (XML); None for events and unsupported types."""
    root = ET.fromstring(xml_text)
    msgtype = _xml_text(root, "MsgType")
    msg_id = _xml_text(root, "MsgId")
    user_id = _xml_text(root, "From/UserId")
    if not msg_id or not user_id:
        return None
    texts: list[str] = []
    media: list[MediaRef] = []
    if msgtype == "text":
        texts.append(_xml_text(root, "Text/Content"))
    elif msgtype == "mixed":
        for item in root.findall("MixedMessage/MsgItem"):
            if _xml_text(item, "MsgType") == "text":
                texts.append(_xml_text(item, "Text/Content"))
            elif _xml_text(item, "MsgType") == "image" and _xml_text(item, "Image/ImageUrl"):
                media.append(MediaRef(_xml_text(item, "Image/ImageUrl")))
    elif msgtype == "image" and _xml_text(root, "Image/ImageUrl"):
        media.append(MediaRef(_xml_text(root, "Image/ImageUrl")))
    else:
        return None
    chat_id = _xml_text(root, "ChatId") or f"single:{user_id}"
    return ParsedMessage(
        msg_id=msg_id, chat_id=chat_id, chat_type=_xml_text(root, "ChatType") or "group", user_id=user_id,
        text=strip_mentions("\n".join(t for t in texts if t)), sender_name=_xml_text(root, "From/Name"),
        media=tuple(media), webhook_url=_xml_text(root, "WebhookUrl") or None,
    )


def _sniff_image(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\x89PNG"):
        return "image/png", "png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg", "jpg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", "gif"
    return "application/octet-stream", "bin"


# -- rendering replies into drafts -------------------------------------------------------------


def webhook_robot(group_id: str) -> str:
    """The outbox rate bucket of a group's webhook (20 messages/minute per robot)."""
    return f"wecom:webhook:{group_id}"


def mention_userids(session: Session, person_ids: Iterable[str]) -> list[str]:
    """WeCom userids of configured people (person keys without a userid are skipped)."""
    ids = list(dict.fromkeys(person_ids))
    if not ids:
        return []
    rows = session.exec(select(PersonRow).where(PersonRow.id.in_(ids))).all()  # type: ignore[attr-defined]
    by_id = {row.id: row.wecom_userid for row in rows}
    return [uid for pid in ids if (uid := by_id.get(pid))]


def _reply_block(session: Session, reply: Reply) -> str:
    userids = mention_userids(session, reply.mentions)
    # Escaped before the mentions go in: only the bot's own <@userid> may mention anyone.
    text = escape_markdown(reply.text.replace("\r\n", "\n").strip())
    prefix = " ".join(f"<@{uid}>" for uid in userids)
    return f"{prefix} {text}".strip() if prefix else text


def _text_of_replies(session: Session, replies: Iterable[Reply]) -> str:
    return "\n\n".join(block for r in replies if (block := _reply_block(session, r)))


def _truncate(text: str, max_bytes: int) -> str:
    """The first part of text within max_bytes, marked as truncated when anything was cut."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    room = max_bytes - len(TRUNCATED_NOTE.encode("utf-8"))
    return split_utf8(text, room)[0] + TRUNCATED_NOTE


def _webhook_media_drafts(
    replies: Iterable[Reply], *, group_id: str | None, robot: str, webhook_url: str | None = None
) -> list[Draft]:
    drafts: list[Draft] = []
    base: dict[str, object] = {"group_id": group_id} if group_id else {}
    if webhook_url:
        base["webhook_url"] = webhook_url
    for reply in replies:
        if reply.image_png is not None:
            drafts.append(Draft("image", dict(base), blob=reply.image_png, channel=CHANNEL_WEBHOOK, robot=robot))
        if reply.file_data is not None:
            payload = {**base, "filename": reply.file_name or "file.bin"}
            drafts.append(Draft("file", payload, blob=reply.file_data, channel=CHANNEL_WEBHOOK, robot=robot))
    return drafts


def _webhook_text_drafts(
    text: str, *, group_id: str | None, robot: str, webhook_url: str | None = None, kind: str = "markdown"
) -> list[Draft]:
    limit = MARKDOWN_MAX_BYTES if kind == "markdown" else TEXT_MAX_BYTES
    base: dict[str, object] = {"group_id": group_id} if group_id else {}
    if webhook_url:
        base["webhook_url"] = webhook_url
    return [
        Draft(kind, {**base, "content": part}, channel=CHANNEL_WEBHOOK, robot=robot)
        for part in split_utf8(text, limit) if part.strip()
    ]


def push_drafts(session: Session, group: GroupRow, replies: Sequence[Reply], *, kind: str = "markdown") -> list[Draft]:
    """Drafts that push replies to a WeCom group through its webhook (for the scheduler).

    Text becomes markdown (or `kind="text"`) split at the byte limit without cutting a character or
    a line, with `<@userid>` for each mentioned person; images and files become their own drafts.
    Given to `bot.pushes.Pushes` (bot/services.py), through which the scheduler stores pushes.
    """
    robot = webhook_robot(group.id)
    text = _text_of_replies(session, replies)
    drafts = _webhook_text_drafts(text, group_id=group.id, robot=robot, kind=kind) if text else []
    return drafts + _webhook_media_drafts(replies, group_id=group.id, robot=robot)


# -- the adapter -------------------------------------------------------------------------------


class WeComAdapter:
    """Callback routes, renderer and deliveries of one running bot."""

    def __init__(self, runtime: Runtime, *, clock: Callable[[], float] = wall_clock_seconds) -> None:
        self.runtime = runtime
        self.config: Config = runtime.config
        self.secrets: Secrets = runtime.secrets
        self.clock = clock
        self.replays = ReplayGuard(clock=clock)
        self.connections: dict[str, WsConnection] = {}
        self.api_base = self.config.wecom.api_base.rstrip("/")
        # response_url and photo URLs come from the callback body: only WeCom's hosts (and api_base) are called.
        self.urls = UrlAllowList(self.config.wecom.callback_url_hosts, (self.api_base,))
        self._tasks: TaskGroup | None = None
        self._handler_slots: anyio.CapacityLimiter | None = None

    async def run_handlers(self) -> None:
        """App service: own the task group handlers run in, so a callback's HTTP exchange ends at the ack.

        (A BackgroundTask would keep the keep-alive connection busy until the handler finished, so the
        platform's next callback on that connection would wait for it.)
        """
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                await anyio.sleep_forever()
            finally:
                self._tasks = None

    def _start_work(self, background: BackgroundTasks, inbound_id: int) -> None:
        if self._tasks is None:  # the app's services are not running (lifespan off): after the response
            self.runtime.after_ack(inbound_id, lambda i: background.add_task(self.runtime.work, i))
        else:
            tasks = self._tasks
            self.runtime.after_ack(inbound_id, lambda i: tasks.start_soon(self._work, i))

    async def _work(self, inbound_id: int) -> None:
        # A failure must not tear down the task group (and with it the app); recovery retries the message.
        if self._handler_slots is None:
            self._handler_slots = anyio.CapacityLimiter(HANDLER_SLOTS)
        try:
            async with self._handler_slots:
                await self.runtime.work(inbound_id)
        except Exception:
            log.exception("wecom: handling inbound message %s failed", inbound_id)

    # config lookups ------------------------------------------------------------------------

    def group(self, group_id: str | None) -> Group | None:
        return next((g for g in self.config.groups if g.id == group_id and g.platform == "wecom"), None)

    def group_for_chat(self, chat_id: str) -> Group | None:
        return next((g for g in self.config.groups if g.platform == "wecom" and g.chat_id == chat_id), None)

    def webhook_key(self, group: Group | None) -> str | None:
        return self.secrets.credential(group.credentials, "webhook_key") if group else None

    def bot(self, bot_id: str | None) -> WeComBot | None:
        return next((b for b in self.config.wecom.bots if b.id == bot_id), None)

    def callback_credentials(self) -> list[CallbackCredentials]:
        """Every configured callback receiver whose token and EncodingAESKey are set."""
        found: list[CallbackCredentials] = []
        for bot in self.config.wecom.bots:
            if bot.mode != "callback":
                continue
            token = self.secrets.credential(bot.credentials, "token")
            key = self.secrets.credential(bot.credentials, "encoding_aes_key")
            if token and key:
                found.append(CallbackCredentials(bot.id, token, key, bot=bot.id))
        for group in self.config.groups:
            if group.platform != "wecom":
                continue
            token = self.secrets.credential(group.credentials, "token")
            key = self.secrets.credential(group.credentials, "encoding_aes_key")
            if token and key:
                found.append(CallbackCredentials(f"group:{group.id}", token, key, group=group.id))
        return found

    def _all_secrets(self) -> list[str]:
        values: list[str] = []
        for holder in [*self.config.wecom.bots, *(g for g in self.config.groups if g.platform == "wecom")]:
            for env in holder.credentials.values():
                value = self.secrets.get(env)
                if value:
                    values.append(value)
        return values

    def redact(self, text: str) -> str:
        return redact(text, *self._all_secrets())

    # routes -------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """GET (URL verification) and POST (messages) on /wecom/callback[/{credential_id}].

        Plain Starlette routes: a callback needs no FastAPI dependency solving, and every callback pays for it.
        """

        async def endpoint(request: Request) -> Response:
            credential_id = request.path_params.get("credential_id")
            if request.method == "POST":
                return await self.callback(request, credential_id)
            return self.verify_url(request.query_params, credential_id)

        return [Route(path, endpoint, methods=["GET", "POST"], include_in_schema=False)
                for path in ("/wecom/callback", "/wecom/callback/{credential_id}")]

    def _candidates(self, credential_id: str | None) -> list[CallbackCredentials]:
        found = self.callback_credentials()
        if credential_id is not None:
            found = [c for c in found if c.id == credential_id or c.group == credential_id]
        return found

    def _authenticate(
        self, params: Any, encrypt: str, credential_id: str | None
    ) -> tuple[CallbackCredentials, str]:
        """Check timestamp and signature, then decrypt; raises CallbackRejected."""
        signature = str(params.get("msg_signature", ""))
        timestamp = str(params.get("timestamp", ""))
        nonce = str(params.get("nonce", ""))
        if not signature or not timestamp or not nonce:
            raise CallbackRejected(403, "missing msg_signature, timestamp or nonce")
        if not timestamp_ok(timestamp, self.clock()):
            raise CallbackRejected(403, "timestamp outside the allowed window")
        for creds in self._candidates(credential_id):
            if creds.matches(signature, timestamp, nonce, encrypt):
                try:
                    plain = creds.crypto().decrypt_message({"Encrypt": encrypt}, signature, timestamp, nonce)
                except (InvalidSignatureException, InvalidCorpIdException) as exc:
                    raise CallbackRejected(403, f"signature or receiveid check failed ({type(exc).__name__})")
                except Exception as exc:
                    raise CallbackRejected(400, f"cannot decrypt ({type(exc).__name__})") from None
                return creds, plain
        raise CallbackRejected(403, "bad msg_signature")

    def verify_url(self, params: Any, credential_id: str | None) -> Response:
        """The URL check: return the decrypted echostr as plain text (no quotes, no newline)."""
        echostr = str(params.get("echostr", ""))
        if not echostr:
            return PlainTextResponse("missing echostr", status_code=400)
        attempts = [echostr] if " " not in echostr else [echostr, echostr.replace(" ", "+")]
        reason = "bad msg_signature"
        for candidate in attempts:  # a doubly decoded query turns "+" into " "
            try:
                _, plain = self._authenticate(params, candidate, credential_id)
                return PlainTextResponse(plain)
            except CallbackRejected as exc:
                reason = exc.reason
                if exc.status != 403:
                    return PlainTextResponse(exc.reason, status_code=exc.status)
        log.warning("wecom URL verification refused: %s", reason)
        return PlainTextResponse("forbidden", status_code=403)

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and (ascii_int(declared) or 0) > MAX_BODY_BYTES:
            raise CallbackRejected(413, "body too large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise CallbackRejected(413, "body too large")
            chunks.append(chunk)
        return b"".join(chunks)

    async def callback(self, request: Request, credential_id: str | None) -> Response:
        """Verify, decrypt, record and acknowledge a POSTed callback; the handler runs afterwards."""
        try:
            body = await self._read_body(request)
            encrypt, is_xml = self._envelope(body)
            params = request.query_params
            signature, nonce = str(params.get("msg_signature", "")), str(params.get("nonce", ""))
            creds, plain = self._authenticate(params, encrypt, credential_id)
            if await self._replayed(signature, nonce):
                # A platform retry repeats the exact request; it was recorded the first time.
                log.info("wecom callback: replayed signature/nonce ignored")
                return Response(status_code=200)
            parsed = self._parse_plain(plain, is_xml)
        except CallbackRejected as exc:
            log.warning("wecom callback refused (%s): %s", exc.status, exc.reason)
            return PlainTextResponse(exc.reason, status_code=exc.status)
        if parsed is None:  # events, stream refreshes, unsupported types: acknowledged, nothing to do
            await self._remember(signature, nonce)
            return Response(status_code=200)
        msg, route = self._inbound(parsed, creds)
        inbound_id = await self.runtime.record(msg, route)
        await self._remember(signature, nonce)
        background = BackgroundTasks()
        if inbound_id is not None:
            self._start_work(background, inbound_id)
        else:
            log.info("wecom callback: message %s already recorded (platform retry)", parsed.msg_id)
        return Response(status_code=200, background=background if background.tasks else None)

    async def _replayed(self, signature: str, nonce: str) -> bool:
        """Seen within the window, by this process or (with Redis) by any replica."""
        if self.replays.seen(signature, nonce):
            return True
        shared = self.runtime.shared
        return shared is not None and bool(await shared.exists(_replay_key(signature, nonce)))

    async def _remember(self, signature: str, nonce: str) -> None:
        self.replays.remember(signature, nonce)
        if self.runtime.shared is not None:
            await self.runtime.shared.add_once(_replay_key(signature, nonce), 2 * self.replays.window)

    @staticmethod
    def _envelope(body: bytes) -> tuple[str, bool]:
        """The `encrypt` field of a JSON or XML callback body; raises CallbackRejected(400)."""
        stripped = body.lstrip()
        if stripped.startswith(b"<"):
            try:
                root = ET.fromstring(stripped.decode("utf-8"))
            except (ET.ParseError, UnicodeDecodeError):
                raise CallbackRejected(400, "broken XML") from None
            encrypt = _xml_text(root, "Encrypt")
            if not encrypt:
                raise CallbackRejected(400, "no Encrypt element")
            return encrypt, True
        try:
            data = load_json(body)
        except MalformedPayload:
            raise CallbackRejected(400, "broken JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("encrypt"), str) or not data["encrypt"]:
            raise CallbackRejected(400, "no encrypt field")
        return data["encrypt"], False

    @staticmethod
    def _parse_plain(plain: str, is_xml: bool) -> ParsedMessage | None:
        text = plain.strip()
        try:
            if text.startswith("<"):
                return parse_group_robot_xml(text)
            data = load_json(text)
        except (ET.ParseError, ValueError):  # MalformedPayload is a ValueError
            raise CallbackRejected(400, "decrypted message is not valid JSON/XML") from None
        if not isinstance(data, dict):
            raise CallbackRejected(400, "decrypted message is not an object")
        try:
            if "webhook_url" in data and "msgid" in data:  # group-robot callback in JSON format
                return _group_json(data)
            return parse_aibot_message(data)
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
            # A verified sender with fields of the wrong shape: refuse it as input, not as our failure.
            raise CallbackRejected(400, f"unreadable message ({type(exc).__name__})") from None

    def _inbound(
        self, parsed: ParsedMessage, creds: CallbackCredentials | None, *, ws_bot: str | None = None,
        req_id: str | None = None,
    ) -> tuple[Inbound, dict[str, Any]]:
        """The internal message and its route: where replies go, and which photos to fetch with which key."""
        group = self.group_for_chat(parsed.chat_id)
        if group is None and creds is not None and creds.group:
            group = self.group(creds.group)
        if group is None and parsed.chat_type == "group":
            # Admins find a new group's chatid here (WeCom shows it nowhere in its UI).
            log.info("wecom: message from chat %s, which is not in the config", parsed.chat_id)
        route: dict[str, Any] = {"chat_id": parsed.chat_id, "group_id": group.id if group else None,
                                 "chat_type": parsed.chat_type}
        bot_id = ws_bot or (creds.bot if creds else None)
        if ws_bot is not None:
            route.update(mode="ws", channel=CHANNEL_WS, robot=f"wecom:aibot:{ws_bot}:{parsed.chat_id}",
                         bot=ws_bot, req_id=req_id, chat_type=parsed.chat_type)
        elif parsed.response_url and self._allowed(parsed.response_url, "response_url"):
            route.update(mode="response_url", channel=CHANNEL_RESPONSE_URL,
                         robot=f"wecom:aibot:{bot_id}:{parsed.chat_id}", bot=bot_id, response_url=parsed.response_url)
        else:
            route.update(mode="webhook", channel=CHANNEL_WEBHOOK,
                         robot=webhook_robot(group.id) if group else f"wecom:webhook:chat:{parsed.chat_id}")
            if parsed.webhook_url and not self.webhook_key(group):
                route["webhook_url"] = parsed.webhook_url
        msg = Inbound(
            platform="wecom", msg_id=parsed.msg_id, chat_id=parsed.chat_id, sender_id=parsed.user_id,
            text=parsed.text, received_at=self.runtime.engine.now(), sender_name=parsed.sender_name or parsed.user_id,
        )
        if parsed.media:
            # The photo URLs stay valid for 5 minutes; the bot's own key is looked up again at fetch time,
            # so no secret is stored with the message.
            route["media"] = [{"url": ref.url, "aeskey": ref.aeskey} for ref in parsed.media]
            route["credential"] = creds.id if creds else None
        return msg, route

    def _allowed(self, url: str, what: str) -> bool:
        """Whether a URL from a callback may be called; a refused one is logged (host only, never the URL)."""
        if self.urls.allows(url):
            return True
        try:
            host = httpx.URL(url).host or "?"
        except (httpx.InvalidURL, TypeError, ValueError):
            host = "?"
        log.warning("wecom: a callback's %s points at %s, not a host in wecom.callback_url_hosts; not calling it",
                    what, host)
        return False

    async def fetch_media(self, route: dict[str, Any]) -> tuple[Attachment, ...]:
        """Download and decrypt the photos a recorded message's route names (after the acknowledgement)."""
        media = [MediaRef(url=str(item.get("url", "")), aeskey=item.get("aeskey")) for item in route.get("media") or ()]
        media = [ref for ref in media if self._allowed(ref.url, "photo URL")]
        if not media:
            return ()
        creds = next((c for c in self.callback_credentials() if c.id == route.get("credential")), None)
        bot_key = aes_key(creds.encoding_aes_key) if creds else None
        found: list[Attachment] = []
        for index, ref in enumerate(media):
            key = base64.b64decode(ref.aeskey + "=" * (-len(ref.aeskey) % 4)) if ref.aeskey else bot_key
            if key is None or len(key) != 32:
                log.warning("wecom: no usable AES key for a downloaded photo")
                continue
            try:
                response = await self.runtime.http.get(ref.url)
                response.raise_for_status()
                if len(response.content) > MEDIA_MAX_BYTES + 32:
                    log.warning("wecom: photo over %d bytes skipped", MEDIA_MAX_BYTES)
                    continue
                data = decrypt_media(response.content, key)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("wecom: photo download failed: %s", self.redact(f"{type(exc).__name__}: {exc}"))
                continue
            content_type, ext = _sniff_image(data)
            found.append(Attachment(filename=f"photo{index + 1}.{ext}", content_type=content_type, data=data))
        return tuple(found)

    # renderer -----------------------------------------------------------------------------

    def render(self, session: Session, replies: list[Reply], route: dict[str, Any]) -> list[Draft]:
        """Turn replies into drafts for the route the message came by (engine.renderers['wecom'])."""
        group = self.group(route.get("group_id"))
        has_webhook = bool(self.webhook_key(group)) or bool(route.get("webhook_url"))
        group_id = group.id if group else None
        robot = webhook_robot(group.id) if group else str(route.get("robot", ""))
        webhook_url = route.get("webhook_url") if not self.webhook_key(group) else None
        mode = route.get("mode")
        text = _text_of_replies(session, replies)
        has_media = any(r.image_png is not None or r.file_data is not None for r in replies)

        if mode == "webhook":
            return (_webhook_text_drafts(text, group_id=group_id, robot=robot, webhook_url=webhook_url) if text else []) + (
                _webhook_media_drafts(replies, group_id=group_id, robot=robot, webhook_url=webhook_url)
            )

        drafts: list[Draft] = []
        if mode == "ws":
            images = [r.image_png for r in replies if r.image_png is not None]
            files = [r for r in replies if r.file_data is not None]
            if files and not has_webhook:
                text = f"{text}\n\n{NO_WEBHOOK_NOTE}".strip()
            parts = split_utf8(text, RESPONSE_MAX_BYTES) if text else [""]
            inline = [img for img in images if len(img) <= WS_IMAGE_MAX_BYTES][:WS_MAX_IMAGES]
            first = {"cmd": "aibot_respond_msg", "bot": route.get("bot"), "req_id": route.get("req_id"),
                     "content": parts[0] or "（见图）",
                     "images": [base64.b64encode(img).decode("ascii") for img in inline]}
            drafts.append(Draft("stream", first))
            for part in parts[1:]:
                drafts.append(Draft("markdown", {"cmd": "aibot_send_msg", "bot": route.get("bot"),
                                                 "chatid": route.get("chat_id"), "content": part}))
            if has_webhook:
                drafts += _webhook_media_drafts(files, group_id=group_id, robot=robot, webhook_url=webhook_url)
            return drafts

        # response_url: single use, markdown only; what does not fit or is not text goes by webhook.
        if has_media and not has_webhook:
            text = f"{text}\n\n{NO_WEBHOOK_NOTE}".strip()
        parts = split_utf8(text, RESPONSE_MAX_BYTES) if text else []
        if parts:
            first_text = parts[0] if (has_webhook or len(parts) == 1) else _truncate(text, RESPONSE_MAX_BYTES)
            drafts.append(Draft("markdown", {"url": route.get("response_url"), "content": first_text,
                                             "group_id": group_id}))
            if has_webhook:
                rest = "\n".join(parts[1:])
                if rest:
                    drafts += _webhook_text_drafts(rest, group_id=group_id, robot=robot, webhook_url=webhook_url)
        if has_webhook:
            drafts += _webhook_media_drafts(replies, group_id=group_id, robot=robot, webhook_url=webhook_url)
        return drafts

    # deliveries ---------------------------------------------------------------------------

    async def _post_json(self, url: str, body: dict[str, Any]) -> DeliveryResult | dict[str, Any]:
        """POST JSON; a DeliveryResult for transport-level outcomes, else the decoded answer."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            response = await self.runtime.http.post(url, content=data, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            return DeliveryResult.retry(self.redact(f"network error: {type(exc).__name__}: {exc}"))
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> DeliveryResult | dict[str, Any]:
        if response.status_code == 429:  # throttled before the API answered: wait as long as it asks
            return DeliveryResult.retry(
                "HTTP 429 Too Many Requests", rate_limited=True, retry_after=response.headers.get("Retry-After")
            )
        if response.status_code >= 500:
            return DeliveryResult.retry(f"HTTP {response.status_code}")
        if response.status_code >= 400:  # the status and WeCom's own errcode, never the body (answer_reason)
            return DeliveryResult.fail(self.redact(answer_reason(response.status_code, response.content)))
        try:
            answer = response.json()
        except ValueError:
            return DeliveryResult.retry(f"HTTP {response.status_code}: not JSON")
        if not isinstance(answer, dict):
            return DeliveryResult.retry("answer is not a JSON object")
        return answer

    def _result(self, answer: dict[str, Any]) -> DeliveryResult:
        code = answer.get("errcode", 0)
        if code == 0:
            return DeliveryResult.sent()
        detail = platform_error({"errcode": code, "errmsg": str(answer.get("errmsg") or "")})
        error = self.redact(detail or f"errcode {str(code)[:20]}")
        if code in RETRYABLE_ERRCODES:
            return DeliveryResult.retry(error, rate_limited=code in RATE_LIMITED_ERRCODES)
        return DeliveryResult.fail(error)

    def _webhook_url(self, payload: dict[str, Any], path: str, **query: str) -> str | None:
        group = self.group(payload.get("group_id"))
        key = self.webhook_key(group)
        if key is None and payload.get("webhook_url"):
            match = re.search(r"[?&]key=([^&]+)", str(payload["webhook_url"]))
            key = match.group(1) if match else None
        if not key:
            return None
        return str(httpx.URL(f"{self.api_base}/cgi-bin/webhook/{path}", params={"key": key, **query}))

    async def deliver_webhook(self, row: OutboxMessage) -> DeliveryResult:
        """Send one row through a group's webhook (text / markdown / image / file)."""
        payload = json.loads(row.payload or "{}")
        send_url = self._webhook_url(payload, "send")
        if send_url is None:
            return DeliveryResult.fail(
                f"no webhook key for group {payload.get('group_id')!r}: set credentials.webhook_key and its variable"
            )
        if row.kind in ("markdown", "text"):
            content = str(payload.get("content", ""))
            limit = MARKDOWN_MAX_BYTES if row.kind == "markdown" else TEXT_MAX_BYTES
            if len(content.encode("utf-8")) > limit:
                return DeliveryResult.fail(f"{row.kind} is {len(content.encode('utf-8'))} bytes, over {limit}")
            inner: dict[str, Any] = {"content": content}
            if row.kind == "text" and payload.get("mentioned_list"):
                inner["mentioned_list"] = list(payload["mentioned_list"])
            body: dict[str, Any] = {"msgtype": row.kind, row.kind: inner}
        elif row.kind == "image":
            data = row.blob or b""
            if not data:
                return DeliveryResult.fail("image row has no bytes")
            if len(data) > IMAGE_MAX_BYTES:
                return DeliveryResult.fail(
                    f"image is {len(data) / 1024 / 1024:.1f} MB, over WeCom's 2 MB limit for webhook images"
                )
            body = {"msgtype": "image", "image": {"base64": base64.b64encode(data).decode("ascii"),
                                                  "md5": hashlib.md5(data).hexdigest()}}
        elif row.kind == "file":
            uploaded = await self._upload(payload, row.blob or b"")
            if isinstance(uploaded, DeliveryResult):
                return uploaded
            body = {"msgtype": "file", "file": {"media_id": uploaded}}
        else:
            return DeliveryResult.fail(f"unknown kind {row.kind!r} for {CHANNEL_WEBHOOK}")
        answer = await self._post_json(send_url, body)
        return answer if isinstance(answer, DeliveryResult) else self._result(answer)

    async def _upload(self, payload: dict[str, Any], data: bytes) -> str | DeliveryResult:
        if len(data) <= 5:
            return DeliveryResult.fail("file must be larger than 5 bytes")
        if len(data) > FILE_MAX_BYTES:
            return DeliveryResult.fail(f"file is {len(data) / 1024 / 1024:.1f} MB, over WeCom's 20 MB limit")
        url = self._webhook_url(payload, "upload_media", type="file")
        assert url is not None
        filename = str(payload.get("filename") or "file.bin")
        mime = (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            if filename.endswith(".xlsx") else "application/octet-stream"
        )
        try:
            response = await self.runtime.http.post(url, files={"media": (filename, data, mime)})
        except httpx.HTTPError as exc:
            return DeliveryResult.retry(self.redact(f"upload network error: {type(exc).__name__}: {exc}"))
        answer = self._answer(response)
        if isinstance(answer, DeliveryResult):
            return answer
        result = self._result(answer)
        if not result.ok:
            return DeliveryResult(ok=False, retryable=result.retryable, error=f"upload_media: {result.error}",
                                  rate_limited=result.rate_limited, retry_after=result.retry_after)
        media_id = answer.get("media_id")
        return str(media_id) if media_id else DeliveryResult.retry("upload_media returned no media_id")

    async def deliver_response_url(self, row: OutboxMessage) -> DeliveryResult:
        """Answer through the callback's single-use response_url; when refused, re-queue via webhook."""
        payload = json.loads(row.payload or "{}")
        url = payload.get("url")
        content = str(payload.get("content", ""))
        if not url:
            return await self._fallback(row, payload, "no response_url")
        if not self._allowed(str(url), "response_url"):
            return await self._fallback(row, payload, "response_url not on an allowed host")
        answer = await self._post_json(str(url), {"msgtype": "markdown", "markdown": {"content": content}})
        result = answer if isinstance(answer, DeliveryResult) else self._result(answer)
        if result.ok or result.retryable:
            return result
        if row.interrupted_at is not None and self.runtime.engine.now() - row.interrupted_at < RESPONSE_URL_VALIDITY:
            # An earlier attempt died before its outcome was recorded, and the URL (valid for an hour,
            # usable once) is now refused: that attempt used it, so the reply was delivered.
            log.info("outbox row %s: response_url already used by an interrupted attempt; counted as sent", row.id)
            return DeliveryResult.sent()
        return await self._fallback(row, payload, result.error)

    async def _fallback(self, row: OutboxMessage, payload: dict[str, Any], error: str) -> DeliveryResult:
        group = self.group(payload.get("group_id"))
        if group is None or not self.webhook_key(group):
            return DeliveryResult.fail(f"response_url refused ({error}); the group has no webhook to fall back to")
        drafts = _webhook_text_drafts(str(payload.get("content", "")), group_id=group.id, robot=webhook_robot(group.id))
        engine = self.runtime.engine

        def store() -> None:
            with Session(engine.db) as session:
                for index, draft in enumerate(drafts):
                    outbox_store.enqueue(
                        session, dedupe_key=f"{row.dedupe_key}:webhook:{index}", platform="wecom",
                        channel=CHANNEL_WEBHOOK, robot=draft.robot or webhook_robot(group.id), group_id=group.id,
                        kind=draft.kind, payload=dict(draft.payload), now=engine.now(), give_up_after=engine.give_up_after,
                    )
                session.commit()

        await anyio.to_thread.run_sync(store)
        self.runtime.sender.kick()
        return DeliveryResult.fail(f"response_url refused ({error}); re-sent through the group webhook")

    async def deliver_ws(self, row: OutboxMessage) -> DeliveryResult:
        """Reply (aibot_respond_msg) or push (aibot_send_msg) over a bot's long connection."""
        payload = json.loads(row.payload or "{}")
        connection = self.connections.get(str(payload.get("bot")))
        if connection is None:
            return DeliveryResult.fail(f"bot {payload.get('bot')!r} has no long connection configured")
        if not connection.ready:
            return DeliveryResult.retry(f"long connection of bot {payload.get('bot')!r} is not up")
        content = str(payload.get("content", ""))
        if payload.get("cmd") == "aibot_respond_msg":
            stream: dict[str, Any] = {"id": hashlib.sha1(row.dedupe_key.encode()).hexdigest()[:32],
                                      "finish": True, "content": content}
            images = [base64.b64decode(b) for b in payload.get("images", [])]
            if images:
                stream["msg_item"] = [
                    {"msgtype": "image", "image": {"base64": base64.b64encode(i).decode("ascii"),
                                                   "md5": hashlib.md5(i).hexdigest()}}
                    for i in images
                ]
            frame = {"cmd": "aibot_respond_msg", "headers": {"req_id": payload.get("req_id")},
                     "body": {"msgtype": "stream", "stream": stream}}
        else:
            frame = {"cmd": "aibot_send_msg", "headers": {"req_id": f"aibot_send_msg_{uuid.uuid4().hex}"},
                     "body": {"chatid": payload.get("chatid"), "msgtype": "markdown", "markdown": {"content": content}}}
        try:
            ack = await connection.request(frame)
        except (TimeoutError, ConnectionError) as exc:
            return DeliveryResult.retry(f"long connection: {type(exc).__name__}: {exc}")
        return self._result(ack)


def _group_json(data: dict[str, Any]) -> ParsedMessage | None:
    """A group-robot callback in JSON format (`?robot_callback_format=json`)."""
    sender = data.get("from") or {}
    if data.get("msgtype") != "text" or not isinstance(sender, dict) or not sender.get("userid"):
        return None
    return ParsedMessage(
        msg_id=str(data["msgid"]), chat_id=str(data.get("chatid") or f"single:{sender['userid']}"),
        chat_type=str(data.get("chattype") or "group"), user_id=str(sender["userid"]),
        text=strip_mentions(_text_of(data)), sender_name=str(sender.get("name") or ""),
        webhook_url=str(data.get("webhook_url") or "") or None,
    )


# -- long connection ---------------------------------------------------------------------------


@dataclass
class WsConnection:
    """One 智能机器人 long connection: subscribe, heartbeat, receive callbacks, send replies."""

    adapter: WeComAdapter
    bot: WeComBot
    url: str
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    ready: bool = False
    _ws: Any = None
    _pending: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def run_forever(self) -> None:
        """Connect, and reconnect with back-off, until cancelled; never raises into the app."""
        try:
            from websockets.asyncio.client import connect
        except ImportError:
            log.error("wecom bot %s: mode=websocket needs the 'websockets' package", self.bot.id)
            return
        secrets = self.adapter.secrets
        bot_id = secrets.credential(self.bot.credentials, "bot_id")
        secret = secrets.credential(self.bot.credentials, "secret")
        if not bot_id or not secret:
            log.error("wecom bot %s: credentials.bot_id / credentials.secret are not set", self.bot.id)
            return
        delay = 1.0
        async with anyio.create_task_group() as work:
            while True:
                try:
                    async with connect(self.url, open_timeout=10, ping_interval=None, max_size=16 * 1024 * 1024) as ws:
                        self._ws = ws
                        await self._session(ws, bot_id, secret, work)
                        delay = 1.0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("wecom bot %s long connection: %s", self.bot.id,
                                self.adapter.redact(f"{type(exc).__name__}: {exc}"))
                finally:
                    self.ready = False
                    self._ws = None
                    for future in self._pending.values():
                        if not future.done():
                            future.set_exception(ConnectionError("long connection closed"))
                    self._pending.clear()
                await anyio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, WS_RECONNECT_MAX_SECONDS)

    async def _session(self, ws: Any, bot_id: str, secret: str, work: TaskGroup) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._reader, ws, work)
            ack = await self.request(
                {"cmd": "aibot_subscribe", "headers": {"req_id": f"aibot_subscribe_{uuid.uuid4().hex}"},
                 "body": {"bot_id": bot_id, "secret": secret}},
                ready_required=False,
            )
            if ack.get("errcode", 0) != 0:
                raise ConnectionError(f"subscribe refused: errcode {ack.get('errcode')} {ack.get('errmsg', '')}")
            log.info("wecom bot %s: long connection subscribed", self.bot.id)
            self.ready = True
            self.adapter.runtime.sender.kick()
            tasks.start_soon(self._heartbeat, ws)

    async def _heartbeat(self, ws: Any) -> None:
        missed = 0
        while True:
            await anyio.sleep(self.heartbeat_seconds)
            try:
                await self.request({"cmd": "ping", "headers": {"req_id": f"ping_{uuid.uuid4().hex}"}},
                                   ready_required=False)
                missed = 0
            except TimeoutError:
                missed += 1
                if missed >= 2:
                    await ws.close()
                    return

    async def _reader(self, ws: Any, work: TaskGroup) -> None:
        async for raw in ws:
            try:
                frame = json.loads(raw)
            except ValueError:
                log.warning("wecom bot %s: a frame that is not JSON was ignored", self.bot.id)
                continue
            if not isinstance(frame, dict):
                continue
            cmd = frame.get("cmd")
            req_id = str((frame.get("headers") or {}).get("req_id", ""))
            if cmd == "aibot_msg_callback":
                await self._on_message(frame.get("body") or {}, req_id, work)
            elif cmd == "aibot_event_callback":
                event = ((frame.get("body") or {}).get("event") or {}).get("eventtype")
                if event == "disconnected_event":
                    log.warning("wecom bot %s: another connection took over this bot", self.bot.id)
            elif not cmd:
                future = self._pending.pop(req_id, None)
                if future is not None and not future.done():
                    future.set_result(frame)
        raise ConnectionError("closed by server")

    async def _on_message(self, body: dict[str, Any], req_id: str, work: TaskGroup) -> None:
        parsed = parse_aibot_message(body) if isinstance(body, dict) else None
        if parsed is None:
            return
        msg, route = self.adapter._inbound(parsed, None, ws_bot=self.bot.id, req_id=req_id)
        inbound_id = await self.adapter.runtime.record(msg, route)
        if inbound_id is not None:
            self.adapter.runtime.after_ack(inbound_id, lambda i: work.start_soon(self._work, i))

    async def _work(self, inbound_id: int) -> None:
        # A failure here must not tear down the long connection's task group (and with it the app).
        try:
            await self.adapter.runtime.work(inbound_id)
        except Exception:
            log.exception("wecom bot %s: handling inbound message %s failed", self.bot.id, inbound_id)

    async def request(
        self, frame: dict[str, Any], *, timeout: float = WS_ACK_TIMEOUT_SECONDS, ready_required: bool = True
    ) -> dict[str, Any]:
        """Send a frame and wait for its ack (same req_id); frames of one req_id go one at a time."""
        ws = self._ws
        if ws is None or (ready_required and not self.ready):
            raise ConnectionError("not connected")
        req_id = str(frame["headers"]["req_id"])
        lock = self._locks.setdefault(req_id, asyncio.Lock())
        async with lock:
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[req_id] = future
            try:
                await ws.send(json.dumps(frame, ensure_ascii=False))
                return await asyncio.wait_for(future, timeout)
            finally:
                self._pending.pop(req_id, None)
        if not lock.locked():
            self._locks.pop(req_id, None)


# -- install -----------------------------------------------------------------------------------


def wire(runtime: Runtime) -> WeComAdapter:
    """WeCom's deliveries, renderer, photo fetcher and long connections on a runtime (no web server needed)."""
    adapter = WeComAdapter(runtime)
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, RedactingFilter) for f in httpx_log.filters):
        httpx_log.addFilter(RedactingFilter())
    runtime.engine.renderers["wecom"] = adapter.render
    runtime.fetchers["wecom"] = adapter.fetch_media
    runtime.sender.deliveries[CHANNEL_WEBHOOK] = _Delivery(adapter.deliver_webhook)
    runtime.sender.deliveries[CHANNEL_RESPONSE_URL] = _Delivery(adapter.deliver_response_url)
    runtime.sender.deliveries[CHANNEL_WS] = _Delivery(adapter.deliver_ws)
    runtime.services.append(adapter.run_handlers)
    ws_url = runtime.config.wecom.ws_url
    for bot in runtime.config.wecom.bots:
        if bot.mode == "websocket":
            connection = WsConnection(adapter, bot, ws_url)
            adapter.connections[bot.id] = connection
            runtime.services.append(connection.run_forever)
    return adapter


def install_routes(app: FastAPI, adapter: WeComAdapter) -> None:
    """Serve WeCom's callback routes from the web app."""
    app.router.routes.extend(adapter.routes())
    app.state.wecom = adapter


def install(app: FastAPI, runtime: Runtime) -> WeComAdapter:
    """`wire` the runtime and serve the routes (for a runtime built by hand, as in tests)."""
    adapter = wire(runtime)
    install_routes(app, adapter)
    return adapter


@dataclass(frozen=True, slots=True)
class _Delivery:
    """Adapts a bound coroutine to the outbox's Delivery protocol."""

    send: Callable[[OutboxMessage], Awaitable[DeliveryResult]]

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        return await self.send(message)

