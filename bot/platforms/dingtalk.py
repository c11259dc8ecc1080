"""DingTalk (钉钉) adapter.

Receive: an enterprise-internal app robot, either by HTTP callback at /dingtalk/callback (headers
`timestamp` + `sign` = Base64(HmacSHA256(appSecret, f"{timestamp}\\n{appSecret}")), 1-hour window)
or by Stream mode (the `dingtalk-stream` SDK's outbound WebSocket, no public address).

Send (all through the outbox):
  dingtalk_session_webhook  replies to the callback's sessionWebhook (markdown + at.atUserIds);
  dingtalk_webhook          proactive pushes through a group's custom robot (signed URL, @ works);
  dingtalk_openapi          images / files (media/upload, then robot groupMessages/send) and
                            markdown pushes by the app robot (no @: the OpenAPI does not support it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import anyio
import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.routing import Route
from sqlmodel import Session

from bot.config import Config, DingTalkRobot, Group
from bot.logging_setup import RedactingFilter, redact
from bot.outbox import DeliveryResult, Draft, answer_reason, platform_error, split_utf8
from bot.platforms.base import Runtime
from bot.shared import SharedCache
from bot.untrusted import MalformedPayload, ascii_int, load_json
from bot.url_allowlist import UrlAllowList
from handlers.format import escape_markdown
from handlers.messages import Attachment, Inbound, Reply
from models.clock import wall_clock_ms
from models.tables import GroupRow, OutboxMessage, PersonRow

log = logging.getLogger(__name__)

PLATFORM = "dingtalk"
CALLBACK_PATH = "/dingtalk/callback"
STREAM_TOPIC = "/v1.0/im/bot/messages/get"  # dingtalk_stream.ChatbotMessage.TOPIC

CH_SESSION = "dingtalk_session_webhook"
CH_WEBHOOK = "dingtalk_webhook"
CH_OPENAPI = "dingtalk_openapi"

SIGN_WINDOW_MS = 3_600_000
MAX_CALLBACK_BYTES = 256 * 1024
# Markdown over ~3500 characters renders unreliably; 3500 bytes is ≤3500 characters in any script and far
# below the 20000-byte webhook body and the 15000-byte msgParam limits.
MARKDOWN_MAX_BYTES = 3500
MAX_MEDIA_BYTES = 20 * 1024 * 1024
SESSION_MARGIN_MS = 60_000  # do not use a sessionWebhook in its last minute
TOKEN_MARGIN_SECONDS = 300

RATE_LIMIT_CODES = frozenset({130101, 410100})  # send too fast / 发送速度太快而限流
TRANSIENT_CODES = frozenset({-1, 15, 88, 90002})  # 系统繁忙 and other "try again" codes
TOKEN_CODES = frozenset({40014, 42001})  # invalid / expired access_token (legacy oapi)
SESSION_GONE_CODES = frozenset({300001})  # session 不存在: the sessionWebhook expired

UPLOAD_TYPES = {  # file extension -> media/upload type (the extension is also sampleFile's fileType)
    "png": "image", "jpg": "image", "jpeg": "image", "gif": "image", "bmp": "image",
    "xlsx": "file", "xls": "file", "docx": "file", "doc": "file", "pdf": "file",
    "pptx": "file", "ppt": "file", "zip": "file", "rar": "file",
}


# -- signing -------------------------------------------------------------------------------------


def sign(timestamp_ms: int | str, secret: str) -> str:
    """DingTalk's robot signature: raw Base64 of HmacSHA256(secret, f"{timestamp}\\n{secret}")."""
    message = f"{timestamp_ms}\n{secret}".encode("utf-8")
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")


def signed_webhook_url(url: str, secret: str, now_ms: int | None = None) -> str:
    """A custom-robot URL with `&timestamp=…&sign=…` (the sign URL-encoded exactly once)."""
    timestamp = now_ms if now_ms is not None else wall_clock_ms()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp}&sign={quote_plus(sign(timestamp, secret))}"


def timestamp_fresh(timestamp: str | None, now_ms: int, window_ms: int = SIGN_WINDOW_MS) -> bool:
    """A callback's `timestamp` header is ASCII digits within the window of now."""
    sent_ms = ascii_int(timestamp)
    return sent_ms is not None and abs(now_ms - sent_ms) <= window_ms


def verify_callback(
    timestamp: str | None, signature: str | None, app_secret: str, now_ms: int, window_ms: int = SIGN_WINDOW_MS
) -> bool:
    """Check an HTTP callback's `timestamp` / `sign` headers (the sign is not URL-encoded)."""
    if not signature or not timestamp_fresh(timestamp, now_ms, window_ms):
        return False
    return hmac.compare_digest(sign(str(timestamp), app_secret).encode(), signature.encode())


class SignatureReplayGuard:
    """Binds each callback `(timestamp, sign)` pair to the first message that used it, for the window.

    DingTalk's sign covers only the timestamp, never the body: a pair captured once (a log, a proxy)
    would otherwise let anyone post any body, e.g. as the admin, for as long as the timestamp is fresh.
    The platform notes do not say whether DingTalk re-signs a callback it retries, so a retry may carry
    the same headers: the same pair with the same msgId is that retry (accepted again; the database's
    unique msgId records it once), the same pair with another msgId or body is a replay and refused.

    The pairs live in this process's memory and, with Redis, in Redis too (SET NX EX), so a pair used at
    one replica is refused at every other; when Redis does not answer, memory alone still guards this one.
    """

    FIRST, RETRY, REPLAY = "first", "retry", "replay"

    def __init__(self, window_ms: int, clock_ms: Callable[[], int], shared: SharedCache | None = None) -> None:
        self.window_ms = window_ms
        self.clock_ms = clock_ms
        self.shared = shared
        # (timestamp, sign) -> (message key, expiry ms), roughly in expiry order (timestamps arrive in order).
        self._pairs: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()

    async def check(self, timestamp: str, signature: str, message_key: str) -> str:
        """FIRST for a pair not seen before, RETRY for the same message again, REPLAY for another message."""
        now = self.clock_ms()
        while self._pairs and next(iter(self._pairs.values()))[1] <= now:
            self._pairs.popitem(last=False)
        pair = (timestamp, signature)
        known = self._pairs.get(pair)
        if known is not None:
            return self.RETRY if known[0] == message_key else self.REPLAY
        # The pair can pass the timestamp check until timestamp + window: remember it that long.
        expires = int(timestamp) + self.window_ms
        self._pairs[pair] = (message_key, expires)
        holder = message_key
        if self.shared is not None:
            key = "dingtalk:replay:" + hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest()
            held = await self.shared.claim(key, message_key, (expires - now) / 1000 + 1)
            if held is not None:
                holder = held
                self._pairs[pair] = (held, expires)
        return self.FIRST if holder == message_key else self.REPLAY


def message_key(data: Mapping[str, Any], body: bytes) -> str:
    """What makes two callbacks the same message: its msgId, else (no usable msgId) the body's hash."""
    msg_id = data.get("msgId")
    if isinstance(msg_id, str) and msg_id:
        return "msg:" + msg_id
    return "body:" + hashlib.sha256(body).hexdigest()


def _install_log_redaction() -> None:
    """httpx logs every request URL at INFO: access tokens, signs and sessions must not reach the logs."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())


# -- credentials ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """An internal app's Client ID / Client Secret and its robot code (= Client ID unless set)."""

    app_key: str
    app_secret: str
    robot_code: str


def _group(config: Config, group_id: str | None) -> Group | None:
    return next((g for g in config.groups if g.id == group_id and g.platform == PLATFORM), None) if group_id else None


def _group_by_chat(config: Config, chat_id: str) -> Group | None:
    return next((g for g in config.groups if g.platform == PLATFORM and g.chat_id == chat_id), None)


def _robot(config: Config, robot_id: str | None) -> DingTalkRobot | None:
    return next((r for r in config.dingtalk.robots if r.id == robot_id), None) if robot_id else None


def app_credentials(
    runtime: Runtime, *, robot_id: str | None = None, group_id: str | None = None
) -> AppCredentials | None:
    """The app robot's credentials: the robot's own, else (for pushes) the group's or its bot's."""
    names: dict[str, str] = {}
    group = _group(runtime.config, group_id)
    if group is not None:
        names.update(group.credentials)
        robot_id = robot_id or group.bot
    robot = _robot(runtime.config, robot_id)
    if robot is not None:
        names.update(robot.credentials)
    app_key = runtime.secrets.credential(names, "app_key")
    app_secret = runtime.secrets.credential(names, "app_secret")
    if not app_key or not app_secret:
        return None
    return AppCredentials(app_key, app_secret, runtime.secrets.credential(names, "robot_code") or app_key)


# -- inbound parsing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RobotMessage:
    """The fields of a robot callback (HTTP or Stream) the bot uses."""

    msg_id: str
    msgtype: str
    conversation_id: str
    conversation_type: str
    sender_id: str  # senderStaffId (the userid), else the encrypted senderId
    sender_nick: str
    text: str
    download_codes: tuple[str, ...]
    session_webhook: str
    session_expires_ms: int
    created_at_ms: int | None
    robot_code: str


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON 1e999 is float("inf")
        return None


def _replied_picture_codes(text: Any) -> list[str]:
    """The download codes of the photo a text reply quotes (`text.repliedMsg`), when the payload gives them."""
    replied = text.get("repliedMsg") if isinstance(text, Mapping) else None
    content = replied.get("content") if isinstance(replied, Mapping) else None
    if not isinstance(content, Mapping):
        return []
    items = content.get("richText") if isinstance(content.get("richText"), list) else [content]
    codes = (
        item.get("downloadCode") or item.get("pictureDownloadCode") for item in items if isinstance(item, Mapping)
    )
    return [str(code) for code in codes if code]


def parse_robot_message(data: Mapping[str, Any]) -> RobotMessage | None:
    """Read a robot message (text / picture / richText; audio by its recognition); None if unusable."""
    msg_id = str(data.get("msgId") or "")
    conversation_id = str(data.get("conversationId") or "")
    sender = str(data.get("senderStaffId") or data.get("senderId") or "")
    if not msg_id or not conversation_id or not sender:
        return None
    msgtype = str(data.get("msgtype") or "")
    content = data.get("content") if isinstance(data.get("content"), Mapping) else {}
    texts: list[str] = []
    codes: list[str] = []
    if msgtype == "text":
        text = data.get("text")
        texts.append(str(text.get("content") or "") if isinstance(text, Mapping) else "")
        codes += _replied_picture_codes(text)
    elif msgtype == "picture":
        code = content.get("downloadCode") or content.get("pictureDownloadCode")
        if code:
            codes.append(str(code))
    elif msgtype == "richText":
        items = content.get("richText")
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, Mapping):
                continue
            if "text" in item:
                texts.append(str(item["text"]))
            code = item.get("downloadCode") or item.get("pictureDownloadCode")
            if item.get("type") == "picture" and code:
                codes.append(str(code))
    elif msgtype == "audio":
        texts.append(str(content.get("recognition") or ""))
    else:
        return None  # file / video / unknownMsgType never carry a report
    text = "\n".join(t.strip() for t in texts if t.strip())
    if not text and not codes:
        return None
    return RobotMessage(
        msg_id=msg_id,
        msgtype=msgtype,
        conversation_id=conversation_id,
        conversation_type=str(data.get("conversationType") or ""),
        sender_id=sender,
        sender_nick=str(data.get("senderNick") or ""),
        text=text,
        download_codes=tuple(codes),
        session_webhook=str(data.get("sessionWebhook") or ""),
        session_expires_ms=_int(data.get("sessionWebhookExpiredTime")) or 0,
        created_at_ms=_int(data.get("createAt")),
        robot_code=str(data.get("robotCode") or ""),
    )


def _sniff_image(data: bytes, declared: str) -> tuple[str, str]:
    """(content type, extension) of downloaded bytes; the storage's header may be generic."""
    if data.startswith(b"\x89PNG"):
        return "image/png", ".png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg", ".jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif", ".gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", ".webp"
    if data.startswith(b"BM"):
        return "image/bmp", ".bmp"
    return (declared or "application/octet-stream"), ""


# -- HTTP client ---------------------------------------------------------------------------------


class DingTalkError(Exception):
    """A DingTalk call failed; `result` says whether to retry (the message is already redacted)."""

    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.error)
        self.result = result


class _TokenRejected(Exception):
    """The access token was refused (expired or revoked): refresh once and try again."""


def _errcode_result(body: Mapping[str, Any], what: str) -> DeliveryResult | None:
    """None for errcode 0; otherwise retry/fail by DingTalk's legacy errcode."""
    code = _int(body.get("errcode"))
    if code in (0, None):
        return None
    error = f"{what}: {platform_error({'errcode': code, 'errmsg': str(body.get('errmsg') or '')})}"
    if code in RATE_LIMIT_CODES:
        return DeliveryResult.retry(error, rate_limited=True)
    if code in TRANSIENT_CODES:
        return DeliveryResult.retry(error)
    return DeliveryResult.fail(error)


def _has_errcode(error: str, code: int) -> bool:
    """Whether a delivery error (as `_errcode_result` words it) carries this errcode."""
    return f"errcode {code}:" in error or error.endswith(f"errcode {code}")


def _token_key(creds: AppCredentials) -> str:
    return f"dingtalk:token:{creds.app_key}"


class DingTalkApi:
    """OpenAPI calls with a cached access token per app; every failure becomes a DingTalkError."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_base: str,
        oapi_base: str,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedCache | None = None,
    ) -> None:
        self.http = http
        self.shared = shared  # with Redis, one token per app for every replica
        self.api_base = api_base.rstrip("/")
        self.oapi_base = oapi_base.rstrip("/")
        self.clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._media: OrderedDict[tuple[str, str], str] = OrderedDict()  # (app, sha256) -> media_id
        self.token_requests = 0

    def _fail(self, response: httpx.Response, what: str, *secrets: str) -> DingTalkError:
        # The status and the platform's own error code are kept; the body itself never is (see answer_reason).
        error = redact(f"{what}: {answer_reason(response.status_code, response.content)}", *secrets)
        text = response.text[:500].lower()
        if response.status_code == 429 or "throttl" in text or "qpslimit" in text:
            retry_after = response.headers.get("Retry-After")
            return DingTalkError(DeliveryResult.retry(error, rate_limited=True, retry_after=retry_after))
        if response.status_code >= 500:
            return DingTalkError(DeliveryResult.retry(error))
        return DingTalkError(DeliveryResult.fail(error))

    async def access_token(self, creds: AppCredentials) -> str:
        """A cached token, fetched from /v1.0/oauth2/accessToken when missing or about to expire."""
        cached = self._tokens.get(creds.app_key)
        if cached and self.clock() < cached[1]:
            return cached[0]
        lock = self._locks.setdefault(creds.app_key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(creds.app_key)
            if cached and self.clock() < cached[1]:
                return cached[0]
            if self.shared is not None:
                found = await self.shared.get(_token_key(creds))
                if found is not None:
                    self._tokens[creds.app_key] = (found[0], self.clock() + found[1])
                    return found[0]
            self.token_requests += 1
            response = await self.http.post(
                f"{self.api_base}/v1.0/oauth2/accessToken",
                json={"appKey": creds.app_key, "appSecret": creds.app_secret},
            )
            if response.status_code != 200:
                raise self._fail(response, "get access token", creds.app_secret)
            body = response.json()
            token = str(body.get("accessToken") or "")
            if not token:
                raise DingTalkError(DeliveryResult.fail("get access token: no accessToken in the answer"))
            lifetime = max(60.0, float(body.get("expireIn") or 7200) - TOKEN_MARGIN_SECONDS)
            self._tokens[creds.app_key] = (token, self.clock() + lifetime)
            if self.shared is not None:
                await self.shared.put(_token_key(creds), token, lifetime)
            return token

    async def invalidate(self, creds: AppCredentials, token: str) -> None:
        """Forget a refused token (unless another call already replaced it)."""
        cached = self._tokens.get(creds.app_key)
        if cached and cached[0] == token:
            del self._tokens[creds.app_key]
        if self.shared is not None:
            await self.shared.delete_if(_token_key(creds), token)

    async def _with_token(self, creds: AppCredentials, call: Callable[[str], Awaitable[Any]]) -> Any:
        token = await self.access_token(creds)
        try:
            return await call(token)
        except _TokenRejected:
            await self.invalidate(creds, token)
        token = await self.access_token(creds)
        try:
            return await call(token)
        except _TokenRejected:
            await self.invalidate(creds, token)
            raise DingTalkError(DeliveryResult.retry("access token refused twice")) from None

    async def _api_post(self, token: str, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.api_base}{path}", json=body, headers={"x-acs-dingtalk-access-token": token}
        )
        if response.status_code == 401 or (
            response.status_code in (400, 403) and "invalidauthentication" in response.text.lower()
        ):
            raise _TokenRejected()
        if response.status_code != 200:
            raise self._fail(response, what, token)
        return dict(response.json())

    async def group_send(
        self, creds: AppCredentials, conversation_id: str, msg_key: str, msg_param: Mapping[str, Any]
    ) -> str:
        """POST /v1.0/robot/groupMessages/send; returns the processQueryKey."""
        body = {
            "msgKey": msg_key,
            "msgParam": json.dumps(msg_param, ensure_ascii=False),  # a JSON *string*, as the API requires
            "openConversationId": conversation_id,
            "robotCode": creds.robot_code,
        }
        answer = await self._with_token(
            creds, lambda token: self._api_post(token, "/v1.0/robot/groupMessages/send", body, "group send")
        )
        return str(answer.get("processQueryKey") or "")

    async def download_url(self, creds: AppCredentials, download_code: str) -> str:
        """POST /v1.0/robot/messageFiles/download: a short-lived URL of a picture a user sent."""
        body = {"downloadCode": download_code, "robotCode": creds.robot_code}
        answer = await self._with_token(
            creds, lambda token: self._api_post(token, "/v1.0/robot/messageFiles/download", body, "download")
        )
        url = str(answer.get("downloadUrl") or "")
        if not url:
            raise DingTalkError(DeliveryResult.fail("download: no downloadUrl in the answer"))
        return url

    async def upload_media(self, creds: AppCredentials, data: bytes, file_name: str, media_type: str) -> str:
        """POST oapi /media/upload (multipart `media` + `type`); the media_id is cached per content."""
        if len(data) > MAX_MEDIA_BYTES:
            raise DingTalkError(DeliveryResult.fail(f"upload: {file_name} is larger than 20 MB"))
        key = (creds.app_key, hashlib.sha256(data).hexdigest())
        if key in self._media:
            self._media.move_to_end(key)
            return self._media[key]

        async def call(token: str) -> str:
            response = await self.http.post(
                f"{self.oapi_base}/media/upload",
                params={"access_token": token, "type": media_type},
                data={"type": media_type},
                files={"media": (file_name, data, "application/octet-stream")},
            )
            if response.status_code == 401:
                raise _TokenRejected()
            if response.status_code != 200:
                raise self._fail(response, "upload", token)
            body = response.json()
            if _int(body.get("errcode")) in TOKEN_CODES:
                raise _TokenRejected()
            problem = _errcode_result(body, "upload")
            if problem is not None:
                raise DingTalkError(problem)
            media_id = str(body.get("media_id") or "")
            if not media_id:
                raise DingTalkError(DeliveryResult.fail("upload: no media_id in the answer"))
            return media_id

        media_id: str = await self._with_token(creds, call)
        self._media[key] = media_id
        while len(self._media) > 256:
            self._media.popitem(last=False)
        return media_id

    async def post_robot(self, url: str, body: Mapping[str, Any], what: str, *secrets: str) -> None:
        """POST a robot message (custom robot / sessionWebhook) and check its errcode."""
        response = await self.http.post(url, json=body)
        if response.status_code != 200:
            raise self._fail(response, what, *secrets)
        try:
            answer = response.json()
        except ValueError:
            raise DingTalkError(DeliveryResult.retry(f"{what}: HTTP 200, not JSON"))
        problem = _errcode_result(answer, what)
        if problem is not None:
            raise DingTalkError(
                DeliveryResult(
                    ok=False, retryable=problem.retryable, rate_limited=problem.rate_limited,
                    error=redact(problem.error, *secrets),
                )
            )


async def _guard(what: str, call: Callable[[], Awaitable[None]], *secrets: str | None) -> DeliveryResult:
    """Run a send; map DingTalk errors and network failures to a redacted DeliveryResult."""
    try:
        await call()
    except DingTalkError as exc:
        return DeliveryResult(
            ok=False, retryable=exc.result.retryable, rate_limited=exc.result.rate_limited,
            error=redact(exc.result.error, *secrets), retry_after=exc.result.retry_after,
        )
    except httpx.HTTPError as exc:
        return DeliveryResult.retry(redact(f"{what}: {type(exc).__name__}: {exc}", *secrets))
    except ValueError:  # a 200 whose body is not JSON
        return DeliveryResult.retry(f"{what}: HTTP 200, not JSON")
    return DeliveryResult.sent()


# -- rendering -----------------------------------------------------------------------------------


def robot_bucket(robot_id: str, group_id: str | None, conversation_id: str) -> str:
    """The rate-limit bucket of an app robot in one conversation (DingTalk limits per robot and group)."""
    where = group_id or hashlib.sha256(conversation_id.encode()).hexdigest()[:16]
    return f"dingtalk:app:{robot_id}:{where}"


def webhook_bucket(group_id: str) -> str:
    """The rate-limit bucket of a group's custom robot."""
    return f"dingtalk:webhook:{group_id}"


def _markdown_line(line: str) -> str:
    # Our lines such as "#12 …" must not turn into headings or quotes; the full-width ＃/＞ read the same
    # and the parser maps ＃ back to #, so a copied number still works.
    if line.startswith("#"):
        return "＃" + line[1:]
    if line.startswith(">"):
        return "＞" + line[1:]
    return line


def _title(text: str) -> str:
    first = next((line.strip() for line in text.split("\n") if line.strip()), "安全助手")
    return first if len(first) <= 24 else first[:23] + "…"


@dataclass(frozen=True, slots=True)
class MarkdownPart:
    """One markdown message: title, text (with the @ tokens already in it) and its `at` object."""

    title: str
    text: str
    at: dict[str, Any]
    plain: str  # the same text without @ tokens, for channels where @ does not work


def markdown_parts(text: str, *, user_ids: Sequence[str] = (), mobiles: Sequence[str] = ()) -> list[MarkdownPart]:
    """Render text as markdown messages under DingTalk's size limit; the @s go with the first part."""
    user_ids = list(dict.fromkeys(u for u in user_ids if u))
    mobiles = list(dict.fromkeys(m for m in mobiles if m))
    mention = " ".join(f"@{x}" for x in [*user_ids, *mobiles])
    # Two trailing spaces make a hard line break in DingTalk markdown; a bare "\n" may be folded.
    # Escaped before the @s go in: user text echoed in a reply can neither link nor format.
    body = "  \n".join(_markdown_line(line) for line in escape_markdown(text).split("\n"))
    reserve = len(f"  \n{mention}".encode()) if mention else 0
    chunks = split_utf8(body, MARKDOWN_MAX_BYTES - reserve) if body.strip() else [""]
    title = _title(text)
    parts: list[MarkdownPart] = []
    for index, chunk in enumerate(chunks):
        chunk = chunk.removesuffix("  ")  # the hard break belonged to the line now starting the next part
        at: dict[str, Any] = {"isAtAll": False}
        shown = chunk
        if index == 0 and mention:
            shown = f"{chunk}  \n{mention}" if chunk else mention
            at = {"atUserIds": user_ids, "atMobiles": mobiles, "isAtAll": False}
        parts.append(MarkdownPart(title=title, text=shown, at=at, plain=chunk))
    return parts


def _mention_targets(session: Session, person_ids: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(staff ids, mobiles for people without one, names) of the people to @."""
    user_ids: list[str] = []
    mobiles: list[str] = []
    names: list[str] = []
    for person_id in person_ids:
        person = session.get(PersonRow, person_id)
        if person is None:
            continue
        names.append(person.name)
        if person.dingtalk_staff_id:
            user_ids.append(person.dingtalk_staff_id)
        elif person.mobile:
            mobiles.append(person.mobile)
    return user_ids, mobiles, names


def _attachment_drafts(
    reply: Reply, *, base: dict[str, Any], robot: str
) -> list[Draft]:
    drafts: list[Draft] = []
    if reply.image_png is not None:
        drafts.append(
            Draft(kind="image", payload={**base, "file_name": "chart.png"}, blob=reply.image_png,
                  channel=CH_OPENAPI, robot=robot)
        )
    if reply.file_data is not None:
        name = reply.file_name or "file.bin"
        drafts.append(
            Draft(kind="file", payload={**base, "file_name": name}, blob=reply.file_data, channel=CH_OPENAPI, robot=robot)
        )
    return drafts


def render_replies(session: Session, replies: list[Reply], route: dict[str, Any]) -> list[Draft]:
    """engine.renderers["dingtalk"]: text as markdown by sessionWebhook, images/files by the OpenAPI."""
    robot = str(route.get("robot") or "")
    base = {
        "robot_id": route.get("robot_id"),
        "group_id": route.get("group_id"),
        "conversation_id": route.get("conversation_id"),
    }
    drafts: list[Draft] = []
    for reply in replies:
        if reply.text.strip():
            user_ids, mobiles, _ = _mention_targets(session, reply.mentions)
            for part in markdown_parts(reply.text, user_ids=user_ids, mobiles=mobiles):
                drafts.append(
                    Draft(
                        kind="markdown",
                        payload={
                            **base,
                            "url": route.get("session_webhook"),
                            "expires": route.get("session_expires"),
                            "body": {"msgtype": "markdown", "markdown": {"title": part.title, "text": part.text},
                                     "at": part.at},
                            "fallback": {"title": part.title, "text": part.plain},
                        },
                        channel=CH_SESSION,
                        robot=robot,
                    )
                )
        drafts.extend(_attachment_drafts(reply, base=base, robot=robot))
    return drafts


def push_drafts(session: Session, config: Config, group_id: str, replies: Sequence[Reply]) -> list[Draft]:
    """Drafts for a proactive push to a configured DingTalk group (for the scheduler).

    Text goes by the group's custom robot when it has `webhook_token` (so @ works), else by the app
    robot's OpenAPI as sampleMarkdown (no @: the names are written out instead). Images and files need
    the app robot (the custom robot cannot send them); without one they are left out with a warning.
    """
    group = _group(config, group_id)
    if group is None:
        raise ValueError(f"no dingtalk group {group_id!r} in the config")
    has_webhook = "webhook_token" in group.credentials
    has_app = bool(group.chat_id) and (group.bot is not None or "app_key" in group.credentials)
    if not has_webhook and not has_app:
        raise ValueError(f"dingtalk group {group_id!r} has neither webhook_token nor an app robot with chat_id")
    app_robot = robot_bucket(group.bot or "group", group.id, group.chat_id or "")
    base = {"robot_id": group.bot, "group_id": group.id, "conversation_id": group.chat_id}
    drafts: list[Draft] = []
    for reply in replies:
        if reply.text.strip():
            user_ids, mobiles, names = _mention_targets(session, reply.mentions)
            if has_webhook:
                for part in markdown_parts(reply.text, user_ids=user_ids, mobiles=mobiles):
                    body = {"msgtype": "markdown", "markdown": {"title": part.title, "text": part.text}, "at": part.at}
                    drafts.append(
                        Draft(kind="markdown", payload={"group_id": group.id, "body": body},
                              channel=CH_WEBHOOK, robot=webhook_bucket(group.id))
                    )
            else:
                text = reply.text + (f"\n请{'、'.join(names)}留意。" if names else "")
                for part in markdown_parts(text):
                    drafts.append(
                        Draft(kind="markdown",
                              payload={**base, "msg_key": "sampleMarkdown",
                                       "msg_param": {"title": part.title, "text": part.text}},
                              channel=CH_OPENAPI, robot=app_robot)
                    )
        if reply.image_png is not None or reply.file_data is not None:
            if has_app:
                drafts.extend(_attachment_drafts(reply, base=base, robot=app_robot))
            else:
                log.warning("dingtalk group %s has no app robot: an image/file push was left out", group.id)
    return drafts


def push_renderer(config: Config) -> Callable[[Session, GroupRow, Sequence[Reply]], list[Draft]]:
    """The `bot.pushes.Pushes` renderer of DingTalk groups (needs the config: credentials decide the channel)."""

    def render(session: Session, group: GroupRow, replies: Sequence[Reply]) -> list[Draft]:
        return push_drafts(session, config, group.id, replies)

    return render


# -- deliveries ----------------------------------------------------------------------------------


def _payload(message: OutboxMessage) -> dict[str, Any]:
    try:
        value = json.loads(message.payload or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class OpenApiDelivery:
    """dingtalk_openapi: robot group messages; images/files are uploaded at send time."""

    def __init__(self, runtime: Runtime, api: DingTalkApi) -> None:
        self.runtime = runtime
        self.api = api

    async def send_markdown(self, payload: Mapping[str, Any], title: str, text: str) -> DeliveryResult:
        """Send one sampleMarkdown by the app robot (also the sessionWebhook's fallback)."""
        return await self._send(payload, "sampleMarkdown", {"title": title, "text": text}, None, "markdown")

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        payload = _payload(message)
        if message.kind in ("image", "file"):
            return await self._send(payload, "", {}, message.blob, message.kind)
        return await self._send(payload, str(payload.get("msg_key") or "sampleMarkdown"),
                                dict(payload.get("msg_param") or {}), None, message.kind)

    async def _send(
        self, payload: Mapping[str, Any], msg_key: str, msg_param: dict[str, Any], blob: bytes | None, kind: str
    ) -> DeliveryResult:
        creds = app_credentials(self.runtime, robot_id=payload.get("robot_id"), group_id=payload.get("group_id"))
        conversation_id = str(payload.get("conversation_id") or "")
        if creds is None:
            return DeliveryResult.fail("no DingTalk app credentials (app_key / app_secret) for this robot or group")
        if not conversation_id:
            return DeliveryResult.fail("no conversation id (the group's chat_id) to send to")

        async def call() -> None:
            key, param = msg_key, msg_param
            if kind in ("image", "file"):
                if not blob:
                    raise DingTalkError(DeliveryResult.fail(f"{kind} message without data"))
                name = str(payload.get("file_name") or ("chart.png" if kind == "image" else "file.bin"))
                extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
                media_type = "image" if kind == "image" else "file"
                if kind == "file" and UPLOAD_TYPES.get(extension) != "file":
                    raise DingTalkError(DeliveryResult.fail(f"DingTalk does not accept .{extension} files"))
                media_id = await self.api.upload_media(creds, blob, name, media_type)
                if kind == "image":
                    key, param = "sampleImageMsg", {"photoURL": media_id}
                else:
                    key, param = "sampleFile", {"mediaId": media_id, "fileName": name, "fileType": extension}
            query_key = await self.api.group_send(creds, conversation_id, key, param)
            log.info("dingtalk group message sent (%s, processQueryKey %s)", key, query_key)

        return await _guard("openapi", call, creds.app_secret)


class SessionWebhookDelivery:
    """dingtalk_session_webhook: reply by the callback's sessionWebhook, else by the OpenAPI once it expired."""

    def __init__(
        self, api: DingTalkApi, fallback: OpenApiDelivery, clock_ms: Callable[[], int], urls: UrlAllowList
    ) -> None:
        self.api = api
        self.fallback = fallback
        self.clock_ms = clock_ms
        self.urls = urls  # checked again at send time: rows queued before an allow-list change

    async def _fall_back(self, payload: Mapping[str, Any], why: str) -> DeliveryResult:
        fallback = payload.get("fallback") or {}
        if not payload.get("conversation_id") or not isinstance(fallback, Mapping):
            return DeliveryResult.fail(why)
        log.info("dingtalk %s; replying by the OpenAPI instead (without @)", why)
        return await self.fallback.send_markdown(payload, str(fallback.get("title") or "安全助手"),
                                                 str(fallback.get("text") or ""))

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        payload = _payload(message)
        url = str(payload.get("url") or "")
        expires = _int(payload.get("expires")) or 0
        if not url:  # none in the callback, or one on a host that is not allowed
            return await self._fall_back(payload, "no usable sessionWebhook")
        if expires and self.clock_ms() > expires - SESSION_MARGIN_MS:
            return await self._fall_back(payload, "sessionWebhook expired")
        if not self.urls.allows(url):
            log.warning("dingtalk outbox row %s: sessionWebhook not on an allowed host; not calling it", message.id)
            return await self._fall_back(payload, "sessionWebhook not on an allowed host")
        result = await _guard(
            "session webhook", lambda: self.api.post_robot(url, payload.get("body") or {}, "session webhook", url), url
        )
        if not result.ok and any(_has_errcode(result.error, code) for code in SESSION_GONE_CODES):
            return await self._fall_back(payload, "sessionWebhook is gone (300001)")
        return result


class CustomWebhookDelivery:
    """dingtalk_webhook: a group's custom robot, URL signed with its SEC… secret at send time."""

    def __init__(self, runtime: Runtime, api: DingTalkApi, clock_ms: Callable[[], int]) -> None:
        self.runtime = runtime
        self.api = api
        self.clock_ms = clock_ms

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        payload = _payload(message)
        group = _group(self.runtime.config, payload.get("group_id") or message.group_id)
        if group is None:
            return DeliveryResult.fail(f"no dingtalk group {payload.get('group_id')!r} in the config")
        token = self.runtime.secrets.credential(group.credentials, "webhook_token")
        secret = self.runtime.secrets.credential(group.credentials, "webhook_secret")
        if not token:
            return DeliveryResult.fail(f"group {group.id}: the webhook_token environment variable is not set")
        url = f"{self.runtime.config.dingtalk.oapi_base.rstrip('/')}/robot/send?access_token={quote_plus(token)}"
        if secret:
            url = signed_webhook_url(url, secret, self.clock_ms())
        return await _guard(
            "custom robot", lambda: self.api.post_robot(url, payload.get("body") or {}, "custom robot", token, secret or ""),
            token, secret,
        )


# -- receiving -----------------------------------------------------------------------------------

Schedule = Callable[..., Any]


class DingTalkAdapter:
    """Turns verified robot messages into recorded Inbound messages and schedules their work."""

    def __init__(self, runtime: Runtime, api: DingTalkApi, clock_ms: Callable[[], int] | None = None) -> None:
        self.runtime = runtime
        self.api = api
        self.clock_ms = clock_ms or wall_clock_ms
        self.window_ms = runtime.config.dingtalk.callback_window_seconds * 1000
        self.replays = SignatureReplayGuard(self.window_ms, self.clock_ms, runtime.shared)
        self.urls = callback_urls(runtime.config)

    def callback_secrets(self) -> list[tuple[DingTalkRobot, str]]:
        """(robot, app secret) of every robot in HTTP-callback mode whose secret is set."""
        result: list[tuple[DingTalkRobot, str]] = []
        for robot in self.runtime.config.dingtalk.robots:
            if robot.mode != "callback":
                continue
            secret = self.runtime.secrets.credential(robot.credentials, "app_secret")
            if secret:
                result.append((robot, secret))
        return result

    def inbound(self, message: RobotMessage, robot: DingTalkRobot) -> tuple[Inbound, dict[str, Any]]:
        """The internal message and its reply route (session webhook, bucket, conversation)."""
        # The bot's clock, as for WeCom (whose callbacks carry no time): one clock decides "today" and overdue.
        received = self.runtime.engine.now()
        group = _group_by_chat(self.runtime.config, message.conversation_id)
        session_webhook = message.session_webhook
        if session_webhook and not self.urls.allows(session_webhook):
            # Never call a URL a callback names unless it is DingTalk's: the reply goes by the OpenAPI.
            log.warning("dingtalk robot %s: message %s has a sessionWebhook on a host not in "
                        "dingtalk.callback_url_hosts; replying by the OpenAPI instead", robot.id, message.msg_id)
            session_webhook = ""
        inbound = Inbound(
            platform=PLATFORM,
            msg_id=message.msg_id,
            chat_id=message.conversation_id,
            sender_id=message.sender_id,
            text=message.text,
            received_at=received,
            sender_name=message.sender_nick,
        )
        route = {
            "channel": CH_SESSION,
            "robot": robot_bucket(robot.id, group.id if group else None, message.conversation_id),
            "robot_id": robot.id,
            "group_id": group.id if group else None,
            "conversation_id": message.conversation_id,
            "session_webhook": session_webhook,
            "session_expires": message.session_expires_ms,
            "sender": message.sender_id,
            "chat_type": "group" if message.conversation_type == "2" else "single",  # for unknown chats
        }
        if message.download_codes:
            route["download_codes"] = list(message.download_codes)
        return inbound, route

    async def fetch_media(self, route: dict[str, Any]) -> tuple[Attachment, ...]:
        """Download the pictures a recorded message's route names (after the acknowledgement)."""
        codes = [str(code) for code in route.get("download_codes") or ()]
        if not codes:
            return ()
        robot_id = str(route.get("robot_id") or "")
        creds = app_credentials(self.runtime, robot_id=robot_id)
        if creds is None:
            log.warning("dingtalk robot %s has no app credentials: cannot download pictures", robot_id)
            return ()
        attachments: list[Attachment] = []
        for index, code in enumerate(codes, start=1):
            try:
                url = await self.api.download_url(creds, code)
                data = await self._get(url)
            except (DingTalkError, httpx.HTTPError) as exc:
                log.warning("dingtalk picture %d of a message from %s: %s", index, robot_id, redact(str(exc)))
                continue
            content_type, extension = _sniff_image(data, "")
            attachments.append(Attachment(filename=f"dingtalk-{index}{extension}", content_type=content_type, data=data))
        return tuple(attachments)

    async def _get(self, url: str) -> bytes:
        async with self.runtime.http.stream("GET", url) as response:
            if response.status_code != 200:
                raise DingTalkError(DeliveryResult.fail(f"download: HTTP {response.status_code}"))
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > MAX_MEDIA_BYTES:
                    raise DingTalkError(DeliveryResult.fail("download: larger than 20 MB"))
            return bytes(data)

    async def accept(self, data: Mapping[str, Any], robot: DingTalkRobot, schedule: Schedule) -> int | None:
        """Record a robot message and schedule its work; None when ignored or a platform retry.

        Raises MalformedPayload when the message's fields cannot be read (nothing is stored then).
        """
        try:
            message = parse_robot_message(data)
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
            # A verified sender with fields of the wrong shape: refuse it as input, not as our failure.
            raise MalformedPayload(f"unreadable robot message ({type(exc).__name__})") from None
        if message is None:
            log.info("dingtalk robot %s: ignored a message without text or picture", robot.id)
            return None
        inbound, route = self.inbound(message, robot)
        if route["group_id"] is None and message.conversation_type == "2":
            # How an admin finds the chat_id to put into [[groups]] (a conversationId is not a secret).
            log.warning("dingtalk robot %s: message from a group not in the config: chat_id = %r (%s)",
                        robot.id, message.conversation_id, data.get("conversationTitle", ""))
        inbound_id = await self.runtime.record(inbound, route)
        if inbound_id is None:
            return None
        self.runtime.after_ack(inbound_id, lambda i: schedule(self.runtime.work, i))
        return inbound_id


def callback_urls(config: Config) -> UrlAllowList:
    """The URLs a callback may make the bot call: DingTalk's hosts, and the configured API bases."""
    dingtalk = config.dingtalk
    return UrlAllowList(dingtalk.callback_url_hosts, (dingtalk.api_base, dingtalk.oapi_base))


def _error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def callback_route(adapter: DingTalkAdapter) -> Route:
    """The /dingtalk/callback endpoint: size → signature → JSON → record → ack; work runs after the ack.

    A plain Starlette route: a callback needs no FastAPI dependency solving, and every callback pays for it.
    """

    async def dingtalk_callback(request: Request) -> Response:
        length = request.headers.get("content-length", "")
        if (ascii_int(length) or 0) > MAX_CALLBACK_BYTES:
            return _error(413, "body too large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_CALLBACK_BYTES:
                return _error(413, "body too large")
        timestamp, signature = request.headers.get("timestamp"), request.headers.get("sign")
        now = adapter.clock_ms()
        if not timestamp_fresh(timestamp, now, adapter.window_ms):
            return _error(403, "stale or missing timestamp")
        robot = next(
            (r for r, secret in adapter.callback_secrets()
             if verify_callback(timestamp, signature, secret, now, adapter.window_ms)),
            None,
        )
        if robot is None:
            return _error(403, "bad signature")
        try:
            data = load_json(bytes(body))
        except MalformedPayload:
            return _error(400, "body is not JSON (or nested too deeply)")
        if not isinstance(data, dict):
            return _error(400, "body is not a JSON object")
        verdict = await adapter.replays.check(str(timestamp), str(signature), message_key(data, bytes(body)))
        if verdict == SignatureReplayGuard.REPLAY:
            log.warning("dingtalk callback refused: its timestamp/sign were already used by another message")
            return _error(403, "signature already used")
        background = BackgroundTasks()
        try:
            await adapter.accept(data, robot, background.add_task)
        except MalformedPayload as exc:
            log.warning("dingtalk callback refused: %s", exc)
            return _error(400, "unreadable robot message")
        return JSONResponse({}, background=background if background.tasks else None)

    return Route(CALLBACK_PATH, dingtalk_callback, methods=["POST"], include_in_schema=False)


# -- Stream mode ---------------------------------------------------------------------------------


def _stream_classes() -> tuple[type, type]:
    """Build the SDK subclasses lazily, so the app starts even where dingtalk-stream is not installed."""
    import dingtalk_stream
    import websockets
    from dingtalk_stream.frames import AckMessage, CallbackMessage, SystemMessage
    from dingtalk_stream.version import VERSION_STRING

    class StreamClient(dingtalk_stream.DingTalkStreamClient):  # type: ignore[misc]
        """The SDK client with three changes, because the SDK hard-codes or blocks them.

        * The gateway URL comes from `dingtalk.api_base` (the SDK uses a class constant fixed at import).
        * Opening the connection uses our async httpx client (the SDK calls `requests` on the event loop).
        * `start()` is replaced: websockets' own keepalive detects dead connections (the SDK's
          ping task can hang), reconnects back off with jitter, and cancellation is not swallowed.
        Frames are still parsed and acknowledged by the SDK's classes and handlers.
        """

        def __init__(self, credential: Any, *, api_base: str, http: httpx.AsyncClient) -> None:
            super().__init__(credential, logger=logging.getLogger("bot.platforms.dingtalk.stream"))
            self.open_connection_api = f"{api_base.rstrip('/')}/v1.0/gateway/connections/open"
            self.http = http

        async def open_connection_async(self) -> dict[str, Any] | None:
            """POST /v1.0/gateway/connections/open with the SDK's own request body."""
            topics = [{"type": "CALLBACK", "topic": topic} for topic in self.callback_handler_map]
            if self._is_event_required:
                topics.insert(0, {"type": "EVENT", "topic": "*"})
            body = {
                "clientId": self.credential.client_id,
                "clientSecret": self.credential.client_secret,
                "subscriptions": topics,
                "ua": f"dingtalk-sdk-python/v{VERSION_STRING}-union",
                "localIp": await anyio.to_thread.run_sync(self.get_host_ip),
            }
            try:
                response = await self.http.post(self.open_connection_api, json=body)
            except httpx.HTTPError as exc:
                log.warning("dingtalk stream: open connection failed: %s", redact(str(exc)))
                return None
            if response.status_code != 200:
                log.warning("dingtalk stream: open connection: HTTP %s %s", response.status_code,
                            redact(response.text[:300], self.credential.client_secret))
                return None
            try:
                answer = response.json()
            except ValueError:
                return None
            if not isinstance(answer, dict) or not answer.get("endpoint") or not answer.get("ticket"):
                return None
            return answer

        async def route_frame(self, websocket: Any, frame: dict[str, Any]) -> None:
            """Answer one frame: ping → echo, disconnect → close, CALLBACK → handler → ACK."""
            kind = frame.get("type", "")
            ack = None
            if kind == SystemMessage.TYPE:
                system = SystemMessage.from_dict(frame)
                ack = await self.system_handler.raw_process(system)
                if system.headers.topic == SystemMessage.TOPIC_DISCONNECT:
                    log.info("dingtalk stream: the server asked to reconnect")
                    await websocket.close()
                    return
            elif kind == CallbackMessage.TYPE:
                callback = CallbackMessage.from_dict(frame)
                handler = self.callback_handler_map.get(callback.headers.topic)
                if handler is None:
                    log.warning("dingtalk stream: no handler for topic %s", callback.headers.topic)
                    return
                ack = await handler.raw_process(callback)
            else:
                log.info("dingtalk stream: ignored a %s frame", kind or "typeless")
                return
            if ack is not None:
                await websocket.send(json.dumps(ack.to_dict()))

        async def start(self) -> None:
            self.pre_start()
            delay = 1.0
            while True:
                connection = await self.open_connection_async()
                if connection is not None:
                    uri = f'{connection["endpoint"]}?ticket={quote_plus(connection["ticket"])}'
                    try:
                        async with websockets.connect(
                            uri, open_timeout=15, ping_interval=30, ping_timeout=20
                        ) as websocket:
                            self.websocket = websocket
                            delay = 1.0
                            log.info("dingtalk stream connected")
                            async with anyio.create_task_group() as frames:
                                async for raw in websocket:
                                    try:
                                        frame = json.loads(raw)
                                    except ValueError:
                                        continue
                                    frames.start_soon(self._safe_route, websocket, frame)
                    except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as exc:
                        log.warning("dingtalk stream disconnected: %s", redact(str(exc)))
                    except Exception:  # the app's task group must never see this service fail
                        log.exception("dingtalk stream failed; reconnecting")
                    finally:
                        self.websocket = None
                await anyio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 60.0)

        async def _safe_route(self, websocket: Any, frame: dict[str, Any]) -> None:
            try:
                await self.route_frame(websocket, frame)
            except websockets.exceptions.ConnectionClosed:
                pass
            except Exception:
                log.exception("dingtalk stream: handling a frame failed")

    class BotMessageHandler(dingtalk_stream.CallbackHandler):  # type: ignore[misc]
        """Records each robot message and ACKs at once; the work runs in the service's task group."""

        def __init__(self, adapter: DingTalkAdapter, robot: DingTalkRobot, schedule: Schedule) -> None:
            super().__init__()
            self.logger = logging.getLogger("bot.platforms.dingtalk.stream")
            self.adapter = adapter
            self.robot = robot
            self.schedule = schedule

        async def process(self, message: Any) -> tuple[int, str]:
            data = message.data if isinstance(message.data, dict) else {}
            try:
                await self.adapter.accept(data, self.robot, self.schedule)
            except MalformedPayload as exc:  # sending it again would not make it readable
                log.warning("dingtalk stream: ignored a message: %s", exc)
                return AckMessage.STATUS_OK, "OK"
            except Exception:
                log.exception("dingtalk stream: recording a message failed")
                return AckMessage.STATUS_SYSTEM_EXCEPTION, "error"
            return AckMessage.STATUS_OK, "OK"

    return StreamClient, BotMessageHandler


def stream_service(adapter: DingTalkAdapter, robot: DingTalkRobot) -> Callable[[], Awaitable[None]]:
    """A long-running job keeping one robot's Stream connection (started with the app)."""

    async def run() -> None:
        creds = app_credentials(adapter.runtime, robot_id=robot.id)
        if creds is None:
            log.error("dingtalk robot %s (stream): app_key / app_secret not set; not connecting", robot.id)
            return
        import dingtalk_stream

        client_class, handler_class = _stream_classes()
        client = client_class(
            dingtalk_stream.Credential(creds.app_key, creds.app_secret),
            api_base=adapter.runtime.config.dingtalk.api_base,
            http=adapter.runtime.http,
        )
        async def safely(job: Callable[..., Awaitable[None]], *args: Any) -> None:
            try:
                await job(*args)
            except Exception:  # one message's failure must not end the connection's task group
                log.exception("dingtalk stream: handling a message failed")

        async with anyio.create_task_group() as work:
            schedule: Schedule = lambda job, *args: work.start_soon(safely, job, *args)  # noqa: E731
            client.register_callback_handler(STREAM_TOPIC, handler_class(adapter, robot, schedule))
            await client.start()

    return run


# -- wiring --------------------------------------------------------------------------------------


def wire(runtime: Runtime) -> DingTalkAdapter:
    """DingTalk's deliveries, renderer, photo fetcher and Stream connections on a runtime (no web server needed)."""
    _install_log_redaction()
    dingtalk = runtime.config.dingtalk
    api = DingTalkApi(runtime.http, api_base=dingtalk.api_base, oapi_base=dingtalk.oapi_base, shared=runtime.shared)
    adapter = DingTalkAdapter(runtime, api)
    clock_ms = adapter.clock_ms
    openapi = OpenApiDelivery(runtime, api)
    runtime.sender.deliveries[CH_OPENAPI] = openapi
    runtime.sender.deliveries[CH_SESSION] = SessionWebhookDelivery(api, openapi, clock_ms, adapter.urls)
    runtime.sender.deliveries[CH_WEBHOOK] = CustomWebhookDelivery(runtime, api, clock_ms)
    runtime.engine.renderers[PLATFORM] = render_replies
    runtime.fetchers[PLATFORM] = adapter.fetch_media
    for robot in dingtalk.robots:
        if robot.mode == "stream":
            runtime.services.append(stream_service(adapter, robot))
    return adapter


def install_routes(app: FastAPI, adapter: DingTalkAdapter) -> None:
    """Serve DingTalk's callback route from the web app."""
    app.state.dingtalk = adapter
    app.router.routes.append(callback_route(adapter))


def install(app: FastAPI, runtime: Runtime) -> DingTalkAdapter:
    """`wire` the runtime and serve the routes (for a runtime built by hand, as in tests)."""
    adapter = wire(runtime)
    install_routes(app, adapter)
    return adapter
