"""A fake WeCom on 127.0.0.1: webhook send/upload, response_url, encrypted media, the AI-bot long connection,
gettoken and the contacts API (department/simplelist, department/get, user/list from `org`).

It also drives a bot: `post_aibot_callback()` / `post_group_callback()` encrypt a message with the real
WXBizMsgCrypt (wechatpy's PrpCrypto, receiveid "") and POST it to the bot's `/wecom/callback`;
`CallbackDriver` adds the 智能机器人's stream refreshes and card taps, and checks and decrypts the bot's passive
(encrypted) answers the way WeCom does (`open_passive`, `passive_problem`).

Everything the bot sent is logged (`sent`, `attempts`, `responses`, `ws_received`) for assertions.
The rate limiter takes an injectable clock and window, so "20 per minute" can be tested as "20 per 3 s".
Error codes and messages follow the public docs and real captures; the response_url's reuse error
(`RESPONSE_URL_USED`) is this fake's own, as the real one is not documented.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from wechatpy.enterprise.crypto import PrpCrypto

from tests.fakes.contacts import FakeOrg

CONTACT_APIS = ("department/simplelist", "department/get", "user/list", "user/get")
RESPONSE_URL_USED = 600039  # fake-only: a response_url answered twice
_MORE = "more info at https://open.work.weixin.qq.com/devtool/query?e={code}"


def errmsg(code: int, text: str) -> str:
    """An errmsg in WeCom's shape: text, hint, from ip, more info link."""
    return f"{text}, hint: [{int(time.time())}{uuid.uuid4().int % 10**9:09d}], from ip: 127.0.0.1, {_MORE.format(code=code)}"


def error(code: int, text: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": errmsg(code, text)}


OK = {"errcode": 0, "errmsg": "ok"}


def sign(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WXBizMsgCrypt msg_signature (computed here independently of the bot's code)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def encrypt_text(encoding_aes_key: str, plaintext: str, receive_id: str = "") -> str:
    """Encrypt a callback plaintext exactly as WeCom does (random16 | len | msg | receiveid, PKCS#7/32)."""
    key = base64.b64decode(encoding_aes_key + "=")
    return PrpCrypto(key).encrypt(plaintext, receive_id).decode("ascii")


def encrypt_media(data: bytes, key: bytes) -> bytes:
    """Encrypt media as WeCom serves it: AES-256-CBC, IV = key[:16], PKCS#7 padded to 32 bytes."""
    pad = 32 - len(data) % 32
    padded = data + bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


@dataclass
class Sent:
    """A message the fake accepted on /cgi-bin/webhook/send."""

    key: str
    at: float
    body: dict[str, Any]

    @property
    def msgtype(self) -> str:
        return str(self.body.get("msgtype"))

    @property
    def content(self) -> str:
        inner = self.body.get(self.msgtype) or {}
        return str(inner.get("content", "")) if isinstance(inner, dict) else ""


@dataclass
class RateLimiter:
    """At most `limit` accepted sends per key within any `window` seconds of `clock`."""

    limit: int = 20
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _times: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def allow(self, key: str) -> bool:
        now = self.clock()
        times = self._times[key]
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


class FakeWeCom:
    """The fake server; use as a context manager or call start()/stop()."""

    def __init__(self, *, rate_limit: int = 20, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limiter = RateLimiter(limit=rate_limit, window=window, clock=clock)
        self.clock = clock
        self.keys: set[str] = set()
        self.sent: list[Sent] = []
        self.attempts: list[tuple[str, int]] = []  # (key, errcode) of every /send, including refused ones
        self.uploads: dict[str, tuple[str, str, bytes]] = {}  # media_id -> (key, filename, data)
        self.response_codes: dict[str, bool] = {}  # response_code -> used
        self.responses: list[dict[str, Any]] = []  # bodies accepted on response_urls
        self.media: dict[str, bytes] = {}
        self.media_gets: list[str] = []  # media_id of every GET of a hosted photo, found or not
        self.failures: deque[str] = deque()  # "500" | "-1" | "drop" | "45009" | "429", consumed by /send
        self.retry_after: str | None = "30"  # the Retry-After header of a "429" failure (None: no header)
        self.ws_bots: dict[str, str] = {}  # bot_id -> secret
        self.ws_received: list[dict[str, Any]] = []
        self.ws_pushed: set[str] = set()  # req_ids of aibot_msg_callback frames sent
        self.ws_events: dict[str, float] = {}  # req_id of a template_card_event frame sent -> when (clock)
        self.card_update_window = 5.0  # a card tap must be answered within 5 s, else WeCom drops the update
        self._ws: dict[str, WebSocket] = {}
        self.org = FakeOrg()  # the contacts endpoints' organisation (tests/fakes/contacts.py)
        self.corps: dict[str, str] = {}  # corp_id -> secret accepted by /cgi-bin/gettoken
        self.access_tokens: set[str] = set()
        # In-app web login (OAuth2, snsapi_base): who is signed in to the WeCom app that opens the page, the
        # agents (agentid -> corp_id) whose trusted domain the redirect may point at, and the codes handed out.
        self.app_user: str | None = None
        self.agents: dict[str, str] = {}
        self.oauth_codes: dict[str, tuple[str, float]] = {}  # code -> (userid, issued at)
        self.used_codes: set[str] = set()
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this; without it every small reply waits ~40 ms (Nagle + delayed ACK).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> "FakeWeCom":
        app = Starlette(routes=[
            Route("/cgi-bin/webhook/send", self._send, methods=["POST"]),
            Route("/cgi-bin/webhook/upload_media", self._upload, methods=["POST"]),
            Route("/cgi-bin/aibot/response", self._response_url, methods=["POST"]),
            Route("/media/{media_id}", self._media, methods=["GET"]),
            Route("/cgi-bin/gettoken", self._gettoken, methods=["GET"]),
            *[Route(f"/cgi-bin/{api}", self._contacts, methods=["GET"]) for api in CONTACT_APIS],
            Route("/cgi-bin/user/getuserid", self._contacts, methods=["POST"]),
            Route("/connect/oauth2/authorize", self._authorize, methods=["GET"]),
            Route("/cgi-bin/auth/getuserinfo", self._getuserinfo, methods=["GET"]),
            WebSocketRoute("/ws", self._websocket),
        ])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio")
        self._server = uvicorn.Server(config)

        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            assert self._server is not None
            await self._server.serve(sockets=[self._socket])

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake WeCom did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "FakeWeCom":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration and injection ---------------------------------------------------------

    def add_corp(self, corp_id: str, secret: str) -> None:
        """Let /cgi-bin/gettoken hand out access tokens for this corp id and secret."""
        self.corps[corp_id] = secret

    def add_webhook_key(self, key: str) -> None:
        self.keys.add(key)

    def fail_next(self, count: int, kind: str) -> None:
        """The next `count` /send requests fail: "500", "-1", "45009", "429" (HTTP 429 with `Retry-After:
        self.retry_after` when that is set) or "drop" (connection cut)."""
        self.failures.extend([kind] * count)

    def new_response_url(self) -> str:
        code = uuid.uuid4().hex
        self.response_codes[code] = False
        return f"{self.base_url}/cgi-bin/aibot/response?response_code={code}"

    def host_media(self, data: bytes, key: bytes) -> str:
        """Serve `data` AES-encrypted with `key` (32 bytes); returns its download URL."""
        media_id = uuid.uuid4().hex
        self.media[media_id] = encrypt_media(data, key)
        return f"{self.base_url}/media/{media_id}"

    def sent_to(self, key: str) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.key == key]

    # -- webhook -------------------------------------------------------------------------------

    async def _send(self, request: Request) -> Response:
        key = request.query_params.get("key", "")
        with self._lock:
            failure = self.failures.popleft() if self.failures else None
        if failure == "drop":
            return _DropConnection()
        if failure == "500":
            return Response("Internal Server Error", status_code=500)
        if failure == "-1":
            return self._attempt(key, error(-1, "system busy"))
        if failure == "45009":
            return self._attempt(key, error(45009, "api freq out of limit"))
        if failure == "429":
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return Response("Too Many Requests", status_code=429, headers=headers)
        if key not in self.keys:
            return self._attempt(key, error(93000, "invalid webhook url"))
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._attempt(key, error(40016, "invalid Request Parameter, Warning: wrong json format."))
        problem = self._validate(key, body)
        if problem is not None:
            return self._attempt(key, problem)
        with self._lock:
            if not self.limiter.allow(key):
                return self._attempt_locked(key, error(45009, "api freq out of limit"))
            self.sent.append(Sent(key=key, at=self.clock(), body=body))
            self.attempts.append((key, 0))
        return JSONResponse(OK)

    def _attempt(self, key: str, answer: dict[str, Any]) -> Response:
        with self._lock:
            return self._attempt_locked(key, answer)

    def _attempt_locked(self, key: str, answer: dict[str, Any]) -> Response:
        self.attempts.append((key, int(answer["errcode"])))
        return JSONResponse(answer)

    def _validate(self, key: str, body: Any) -> dict[str, Any] | None:
        if not isinstance(body, dict):
            return error(40016, "invalid Request Parameter, Warning: wrong json format.")
        msgtype = body.get("msgtype")
        inner = body.get(msgtype) if isinstance(msgtype, str) else None
        if msgtype not in ("text", "markdown", "image", "file") or not isinstance(inner, dict):
            return error(40008, "invalid message type")
        if msgtype in ("text", "markdown"):
            content = inner.get("content")
            if not isinstance(content, str) or not content:
                return error(44004, "empty content")
            limit = 2048 if msgtype == "text" else 4096
            if len(content.encode("utf-8")) > limit:
                return error(40058, f"{msgtype}.content exceed max length {limit}. invalid Request Parameter")
            mentioned = inner.get("mentioned_list")
            if mentioned is not None and not (isinstance(mentioned, list) and all(isinstance(m, str) for m in mentioned)):
                return error(40058, "mentioned_list invalid Request Parameter")
        elif msgtype == "image":
            try:
                raw = base64.b64decode(str(inner.get("base64", "")), validate=True)
            except ValueError:
                return error(40058, "image.base64 invalid Request Parameter")
            if not raw or len(raw) > 2 * 1024 * 1024:
                return error(40009, "invalid image size")
            if hashlib.md5(raw).hexdigest() != inner.get("md5"):
                return error(301019, "media md5 not match")
        elif msgtype == "file":
            upload = self.uploads.get(str(inner.get("media_id", "")))
            if upload is None or upload[0] != key:
                return error(40007, "invalid media_id")
        return None

    async def _upload(self, request: Request) -> Response:
        key = request.query_params.get("key", "")
        if key not in self.keys:
            return JSONResponse(error(93000, "invalid webhook url"))
        if request.query_params.get("type") not in ("file", "voice"):
            return JSONResponse(error(40004, "invalid media type"))
        form = await request.form()
        media = form.get("media")
        if media is None or isinstance(media, str):
            return JSONResponse(error(41005, "media data missing"))
        data = await media.read()
        if len(data) <= 5 or len(data) > 20 * 1024 * 1024:
            return JSONResponse(error(40006, "invalid media size"))
        media_id = "3" + uuid.uuid4().hex
        with self._lock:
            self.uploads[media_id] = (key, media.filename or "", data)
        return JSONResponse({**OK, "type": "file", "media_id": media_id, "created_at": str(int(time.time()))})

    # -- access token and contacts ---------------------------------------------------------------

    async def _gettoken(self, request: Request) -> Response:
        corp_id, secret = request.query_params.get("corpid", ""), request.query_params.get("corpsecret", "")
        self.org.count("/cgi-bin/gettoken")
        if corp_id not in self.corps:
            return JSONResponse(error(40013, "invalid corpid"))
        if not secret or self.corps[corp_id] != secret:
            return JSONResponse(error(40001, "invalid credential"))
        token = uuid.uuid4().hex
        with self._lock:
            self.access_tokens.add(token)
        return JSONResponse({**OK, "access_token": token, "expires_in": 7200})

    async def _contacts(self, request: Request) -> Response:
        api = request.url.path.removeprefix("/cgi-bin/")
        self.org.count(request.url.path)
        token = request.query_params.get("access_token")
        if not token:
            return JSONResponse(error(41001, "access_token missing"))
        if token not in self.access_tokens:
            return JSONResponse(error(40014, "invalid access_token"))
        params = dict(request.query_params)
        if request.method == "POST":
            try:
                body = json.loads(await request.body())
            except ValueError:
                return JSONResponse(error(40016, "invalid Request Parameter, Warning: wrong json format."))
            params.update(body if isinstance(body, dict) else {})
        return JSONResponse(self.org.wecom(api, params))

    # -- in-app web login (OAuth2) ---------------------------------------------------------------

    def issue_code(self, userid: str) -> str:
        """A code as WeCom appends to the redirect after OAuth2: valid 5 minutes, once."""
        code = uuid.uuid4().hex
        with self._lock:
            self.oauth_codes[code] = (userid, self.clock())
        return code

    async def _authorize(self, request: Request) -> Response:
        """open.weixin.qq.com/connect/oauth2/authorize inside the WeCom app: straight back to redirect_uri with
        a code and the state (snsapi_base asks nothing); a wrong request is an error page, as WeCom shows."""
        q = request.query_params
        corp_id, agent_id = q.get("appid", ""), q.get("agentid", "")
        redirect, state = q.get("redirect_uri", ""), q.get("state", "")
        if (q.get("response_type") != "code" or q.get("scope") != "snsapi_base" or not redirect
                or self.agents.get(agent_id) != corp_id or corp_id not in self.corps):
            return Response("<html><body>参数错误</body></html>", status_code=200, media_type="text/html")
        if len(state.encode()) > 128 or not re.fullmatch(r"[A-Za-z0-9]*", state):
            return Response("<html><body>state参数错误</body></html>", status_code=200, media_type="text/html")
        if self.app_user is None:
            return Response("<html><body>请在企业微信客户端打开链接</body></html>", status_code=200, media_type="text/html")
        code = self.issue_code(self.app_user)
        sep = "&" if "?" in redirect else "?"
        return Response(status_code=302, headers={"Location": f"{redirect}{sep}code={code}&state={state}"})

    async def _getuserinfo(self, request: Request) -> Response:
        """GET /cgi-bin/auth/getuserinfo?access_token=&code=: the member's userid; 40029 for a code that is
        unknown, used or older than 5 minutes."""
        token, code = request.query_params.get("access_token"), request.query_params.get("code", "")
        if not token:
            return JSONResponse(error(41001, "access_token missing"))
        if token not in self.access_tokens:
            return JSONResponse(error(40014, "invalid access_token"))
        if not code:
            return JSONResponse(error(41008, "missing code"))
        with self._lock:
            issued = self.oauth_codes.get(code)
            fresh = issued is not None and code not in self.used_codes and self.clock() - issued[1] <= 300
            self.used_codes.add(code)
        if not fresh or issued is None:
            return JSONResponse(error(40029, "invalid code"))
        return JSONResponse({**OK, "userid": issued[0], "user_ticket": uuid.uuid4().hex, "expires_in": 1800})

    # -- response_url, media ------------------------------------------------------------------

    async def _response_url(self, request: Request) -> Response:
        code = request.query_params.get("response_code", "")
        with self._lock:
            if code not in self.response_codes:
                return JSONResponse(error(40001, "invalid response_code"))
            if self.response_codes[code]:
                return JSONResponse(error(RESPONSE_URL_USED, "response_url already used"))
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(error(40016, "invalid Request Parameter, Warning: wrong json format."))
        content = (body.get("markdown") or {}).get("content") if isinstance(body, dict) else None
        if body.get("msgtype") != "markdown" or not isinstance(content, str) or not content:
            return JSONResponse(error(40008, "invalid message type"))
        if len(content.encode("utf-8")) > 20480:
            return JSONResponse(error(40058, "markdown.content exceed max length 20480. invalid Request Parameter"))
        with self._lock:
            self.response_codes[code] = True
            self.responses.append({"response_code": code, **body})
        return JSONResponse(OK)

    async def _media(self, request: Request) -> Response:
        self.media_gets.append(request.path_params["media_id"])
        data = self.media.get(request.path_params["media_id"])
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type="application/octet-stream")

    # -- long connection ------------------------------------------------------------------------

    async def _websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        bot_id = None
        try:
            first = await ws.receive_json()
            req_id = str((first.get("headers") or {}).get("req_id", ""))
            body = first.get("body") or {}
            if first.get("cmd") != "aibot_subscribe" or self.ws_bots.get(body.get("bot_id")) != body.get("secret"):
                await ws.send_json({"headers": {"req_id": req_id}, **error(93019, "invalid bot_id or secret")})
                await ws.close()
                return
            bot_id = str(body["bot_id"])
            old = self._ws.get(bot_id)
            if old is not None:  # one live connection per bot: the new one kicks the old one
                await old.send_json({"cmd": "aibot_event_callback", "headers": {"req_id": uuid.uuid4().hex},
                                     "body": {"msgtype": "event", "event": {"eventtype": "disconnected_event"}}})
                await old.close()
            self._ws[bot_id] = ws
            await ws.send_json({"headers": {"req_id": req_id}, **OK})
            self._subscribed.set()
            while True:
                frame = await ws.receive_json()
                req_id = str((frame.get("headers") or {}).get("req_id", ""))
                cmd = frame.get("cmd")
                if cmd == "ping":
                    await ws.send_json({"headers": {"req_id": req_id}, **OK})
                    continue
                with self._lock:
                    self.ws_received.append(frame)
                if cmd == "aibot_respond_msg" and req_id not in self.ws_pushed:
                    await ws.send_json({"headers": {"req_id": req_id}, **error(846605, "invalid req_id")})
                elif cmd == "aibot_respond_msg" and (problem := card_problem(frame.get("body") or {})):
                    await ws.send_json({"headers": {"req_id": req_id}, **error(40058, problem)})
                elif cmd == "aibot_respond_update_msg":
                    await ws.send_json({"headers": {"req_id": req_id}, **self._card_update(req_id, frame)})
                elif cmd in ("aibot_respond_msg", "aibot_send_msg"):
                    await ws.send_json({"headers": {"req_id": req_id}, **OK})
                else:
                    await ws.send_json({"headers": {"req_id": req_id}, **error(40008, "invalid cmd")})
        except WebSocketDisconnect:
            pass
        finally:
            if bot_id is not None and self._ws.get(bot_id) is ws:
                del self._ws[bot_id]

    def _card_update(self, req_id: str, frame: dict[str, Any]) -> dict[str, Any]:
        """aibot_respond_update_msg: only for a card event's req_id, within 5 s, with a valid card."""
        sent_at = self.ws_events.get(req_id)
        if sent_at is None:
            return error(846605, "invalid req_id")
        if self.clock() - sent_at > self.card_update_window:
            return error(846608, "card update expired")
        body = frame.get("body") or {}
        if body.get("response_type") != "update_template_card":
            return error(40008, "invalid response_type")
        problem = card_problem({"msgtype": "template_card", "template_card": body.get("template_card")})
        return error(40058, problem) if problem else OK

    def push_ws_event(self, bot_id: str, body: dict[str, Any], *, req_id: str | None = None) -> str:
        """Push an aibot_event_callback frame (a card tap) to the bot's live connection; returns its req_id.

        Passing the req_id of an earlier push sends it again, as WeCom's retry of the same event would."""
        ws = self._ws.get(bot_id)
        if ws is None or self.loop is None:
            raise RuntimeError(f"bot {bot_id} is not connected")
        req_id = req_id or uuid.uuid4().hex
        self.ws_events[req_id] = self.clock()
        frame = {"cmd": "aibot_event_callback", "headers": {"req_id": req_id}, "body": body}
        asyncio.run_coroutine_threadsafe(ws.send_json(frame), self.loop).result(timeout=5)
        return req_id

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        return self._subscribed.wait(timeout)

    def push_ws(self, bot_id: str, body: dict[str, Any]) -> str:
        """Push an aibot_msg_callback frame to the bot's live connection; returns its req_id."""
        ws = self._ws.get(bot_id)
        if ws is None or self.loop is None:
            raise RuntimeError(f"bot {bot_id} is not connected")
        req_id = uuid.uuid4().hex
        self.ws_pushed.add(req_id)
        frame = {"cmd": "aibot_msg_callback", "headers": {"req_id": req_id}, "body": body}
        asyncio.run_coroutine_threadsafe(ws.send_json(frame), self.loop).result(timeout=5)
        return req_id

    # -- driving a bot -------------------------------------------------------------------------

    def aibot_text(self, content: str, *, userid: str, chatid: str | None, msgid: str | None = None,
                   aibotid: str = "AIBOTID", response_url: str | None = None) -> dict[str, Any]:
        """A 智能机器人 text message as WeCom sends it (with a fresh single-use response_url)."""
        body: dict[str, Any] = {
            "msgid": msgid or uuid.uuid4().hex, "aibotid": aibotid, "chattype": "group" if chatid else "single",
            "from": {"userid": userid}, "response_url": response_url or self.new_response_url(),
            "msgtype": "text", "text": {"content": content},
        }
        if chatid:
            body["chatid"] = chatid
        return body


def card_tap(event_key: str, task_id: str, *, userid: str, chatid: str | None, msgid: str | None = None,
             aibotid: str = "AIBOTID") -> dict[str, Any]:
    """A tap on a button_interaction card, as the 智能机器人 sends it (msgtype event, template_card_event)."""
    body: dict[str, Any] = {
        "msgid": msgid or uuid.uuid4().hex, "create_time": int(time.time()), "aibotid": aibotid,
        "chattype": "group" if chatid else "single", "from": {"userid": userid}, "msgtype": "event",
        "event": {"eventtype": "template_card_event", "template_card_event": {
            "card_type": "button_interaction", "event_key": event_key, "task_id": task_id}},
    }
    if chatid:
        body["chatid"] = chatid
    return body


def card_problem(body: dict[str, Any]) -> str | None:
    """Why WeCom would refuse a reply's template card (None: fine, or no card at all)."""
    if body.get("msgtype") not in ("template_card", "stream_with_template_card"):
        return None
    card = body.get("template_card")
    if not isinstance(card, dict) or card.get("card_type") != "button_interaction":
        return "template_card.card_type must be button_interaction"
    title = (card.get("main_title") or {}).get("title")
    if not title and not card.get("sub_title_text"):
        return "main_title.title or sub_title_text required"
    task_id = card.get("task_id")
    if not isinstance(task_id, str) or not re.fullmatch(r"[A-Za-z0-9_\-@]{1,128}", task_id):
        return "invalid task_id"
    buttons = card.get("button_list")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6:
        return "button_list must hold 1 to 6 buttons"
    for button in buttons:
        if not isinstance(button, dict) or not button.get("text") or not button.get("key"):
            return "every button needs text and key"
        if len(str(button["key"]).encode("utf-8")) > 1024:
            return "button key too long"
    return None


def callback_query(token: str, encrypt: str, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
    """msg_signature / timestamp / nonce for an encrypted text."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or uuid.uuid4().hex[:10]
    return {"msg_signature": sign(token, timestamp, nonce, encrypt), "timestamp": timestamp, "nonce": nonce}


def post_aibot_callback(
    url: str, message: dict[str, Any], *, token: str, encoding_aes_key: str,
    timestamp: str | None = None, nonce: str | None = None, bad_signature: bool = False, http: Any = None,
) -> httpx.Response:
    """Encrypt an AI-bot JSON message and POST it to a bot's callback URL (`http`: an httpx.Client)."""
    encrypt = encrypt_text(encoding_aes_key, json.dumps(message, ensure_ascii=False))
    query = callback_query(token, encrypt, timestamp=timestamp, nonce=nonce)
    if bad_signature:
        query["msg_signature"] = "0" * 40
    return _post(http, url, params=query, content=json.dumps({"encrypt": encrypt}),
                 headers={"Content-Type": "application/json"})


def stream_refresh(stream_id: str, *, userid: str, chatid: str | None, aibotid: str = "AIBOTID") -> dict[str, Any]:
    """WeCom asking for more of an unfinished stream answer (msgtype stream, the stream's id)."""
    body: dict[str, Any] = {"msgid": uuid.uuid4().hex, "aibotid": aibotid, "chattype": "group" if chatid else "single",
                            "from": {"userid": userid}, "msgtype": "stream", "stream": {"id": stream_id}}
    if chatid:
        body["chatid"] = chatid
    return body


class PassiveRefused(AssertionError):
    """A passive answer WeCom would drop (bad envelope, signature, nonce or shape)."""


def open_passive(response: httpx.Response, *, token: str, encoding_aes_key: str, nonce: str) -> dict[str, Any] | None:
    """Check and decrypt a bot's passive answer to a callback as WeCom does; None for an empty 200.

    The answer must be `{"encrypt","msgsignature","timestamp","nonce"}`, signed with the bot's token over its own
    timestamp and the *callback's* nonce (WeCom drops it otherwise), and decrypt (receiveid "") to a JSON object."""
    if response.status_code != 200:
        raise PassiveRefused(f"HTTP {response.status_code}")
    if not response.content:
        return None
    try:
        envelope = json.loads(response.content)
    except ValueError:
        raise PassiveRefused("the passive answer is not JSON") from None
    if not isinstance(envelope, dict) or set(envelope) != {"encrypt", "msgsignature", "timestamp", "nonce"}:
        raise PassiveRefused(f"bad envelope keys {sorted(envelope) if isinstance(envelope, dict) else envelope!r}")
    if envelope["nonce"] != nonce:
        raise PassiveRefused("the answer's nonce is not the callback's")
    timestamp = str(envelope["timestamp"])
    if sign(token, timestamp, nonce, str(envelope["encrypt"])) != envelope["msgsignature"]:
        raise PassiveRefused("bad msgsignature")
    key = base64.b64decode(encoding_aes_key + "=")
    body = json.loads(PrpCrypto(key).decrypt(envelope["encrypt"], ""))
    if not isinstance(body, dict):
        raise PassiveRefused("the decrypted answer is not an object")
    return body


def passive_problem(body: dict[str, Any], *, stream_id: str | None = None, card_event: bool = False) -> str | None:
    """Why WeCom would refuse a passive answer's content (None: fine): a stream answer (with or without its card)
    to a message or refresh of `stream_id`, or an update_template_card to a card event."""
    if card_event:
        if body.get("response_type") != "update_template_card":
            return "a template_card_event takes response_type update_template_card"
        return card_problem({"msgtype": "template_card", "template_card": body.get("template_card")})
    if body.get("msgtype") not in ("stream", "stream_with_template_card"):
        return f"invalid msgtype {body.get('msgtype')!r}"
    stream = body.get("stream")
    if not isinstance(stream, dict) or not isinstance(stream.get("finish"), bool):
        return "stream.finish required"
    if stream_id is not None and stream.get("id") != stream_id:
        return "stream.id is not the refreshed stream's"
    if not isinstance(stream.get("content"), str) or len(stream["content"].encode("utf-8")) > 20480:
        return "stream.content missing or over 20480 bytes"
    if body["msgtype"] == "stream_with_template_card" and not stream["finish"]:
        return "the card comes with the finished stream"
    return card_problem(body)


@dataclass
class CallbackDriver:
    """Drives a bot's /wecom/callback as the 智能机器人 in API mode: messages, stream refreshes, card taps;
    every passive answer is checked and decrypted (`answers` keeps them)."""

    url: str
    token: str
    encoding_aes_key: str
    http: Any = None
    answers: list[dict[str, Any]] = field(default_factory=list)

    def post(self, body: dict[str, Any], *, nonce: str | None = None, expect_card_event: bool = False,
             stream_id: str | None = None) -> dict[str, Any] | None:
        nonce = nonce or uuid.uuid4().hex[:10]
        response = post_aibot_callback(self.url, body, token=self.token, encoding_aes_key=self.encoding_aes_key,
                                       nonce=nonce, http=self.http)
        answer = open_passive(response, token=self.token, encoding_aes_key=self.encoding_aes_key, nonce=nonce)
        if answer is not None:
            problem = passive_problem(answer, stream_id=stream_id, card_event=expect_card_event)
            if problem:
                raise PassiveRefused(problem)
            self.answers.append(answer)
        return answer

    def refresh(self, stream_id: str, *, userid: str, chatid: str | None) -> dict[str, Any]:
        answer = self.post(stream_refresh(stream_id, userid=userid, chatid=chatid), stream_id=stream_id)
        if answer is None:
            raise PassiveRefused("a stream refresh needs an answer")
        return answer

    def poll(self, stream_id: str, *, userid: str, chatid: str | None, timeout: float = 60.0,
             every: float = 0.2) -> dict[str, Any]:
        """Refresh the stream until it is finished, as WeCom does (for up to 6 minutes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.refresh(stream_id, userid=userid, chatid=chatid)
            if answer["stream"]["finish"]:
                return answer
            time.sleep(every)
        raise AssertionError("the stream never finished")

    def tap(self, event: dict[str, Any], *, window: float = 5.0) -> tuple[dict[str, Any] | None, float]:
        """Post a template_card_event; the answer (None: empty) and how long it took. WeCom drops an answer
        after 5 s, and an update must name the tapped card's task_id."""
        started = time.monotonic()
        answer = self.post(event, expect_card_event=True)
        took = time.monotonic() - started
        if answer is not None and took > window:
            raise PassiveRefused(f"card update after {took:.1f} s: dropped (846608 stream/update expired)")
        tapped = ((event.get("event") or {}).get("template_card_event") or {}).get("task_id")
        if answer is not None and answer["template_card"].get("task_id") != tapped:
            raise PassiveRefused("update_template_card must carry the tapped card's task_id")
        return answer, took


def group_robot_xml(content: str, *, userid: str, chatid: str, webhook_url: str, msgid: str | None = None,
                    name: str = "") -> str:
    """A decrypted group-robot callback (XML) carrying a text message."""
    return (
        f"<xml><WebhookUrl><![CDATA[{webhook_url}]]></WebhookUrl><MsgId>{msgid or uuid.uuid4().hex}</MsgId>"
        f"<ChatId><![CDATA[{chatid}]]></ChatId><ChatType>group</ChatType>"
        f"<From><UserId>{userid}</UserId><Name><![CDATA[{name}]]></Name><Alias><![CDATA[]]></Alias></From>"
        f"<MsgType>text</MsgType><Text><Content><![CDATA[{content}]]></Content></Text></xml>"
    )


def post_group_callback(url: str, xml: str, *, token: str, encoding_aes_key: str,
                        timestamp: str | None = None, nonce: str | None = None, http: Any = None) -> httpx.Response:
    """Encrypt a group-robot XML message and POST it in the XML envelope."""
    encrypt = encrypt_text(encoding_aes_key, xml)
    query = callback_query(token, encrypt, timestamp=timestamp, nonce=nonce)
    envelope = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return _post(http, url, params=query, content=envelope.encode(), headers={"Content-Type": "text/xml"})


def _post(http: Any, url: str, **kwargs: Any) -> httpx.Response:
    if http is None:
        return httpx.post(url, timeout=10, **kwargs)
    return http.post(url, **kwargs)


def verify_url_query(token: str, encoding_aes_key: str, echo: str) -> dict[str, str]:
    """The GET query WeCom sends to check a callback URL (echostr is the encrypted `echo`)."""
    echostr = encrypt_text(encoding_aes_key, echo)
    return {**callback_query(token, echostr), "echostr": echostr}


class _DropConnection(Response):
    """Starts a response and then cuts the connection, as a network failure mid-request does."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise ConnectionResetError("fake WeCom dropped the connection")
