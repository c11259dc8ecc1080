"""A fake DingTalk on 127.0.0.1 speaking the real HTTP and Stream protocols, plus helpers to drive the bot.

Endpoints (paths as on api.dingtalk.com / oapi.dingtalk.com; one server plays both hosts):
  POST /robot/send?access_token=&timestamp=&sign=   custom robot (sign, keywords, 20/window rate limit)
  POST /robot/sendBySession?session=                 a callback's sessionWebhook
  POST /v1.0/oauth2/accessToken                      internal-app access token
  POST /media/upload?access_token=&type=             multipart `media` + `type` → media_id
  POST /v1.0/robot/groupMessages/send                sampleMarkdown / sampleText / sampleImageMsg / sampleFile
  POST /v1.0/robot/messageFiles/download             downloadCode → downloadUrl (served at /files/…)
  POST /v1.0/gateway/connections/open                Stream: {endpoint, ticket}
  WS   /connect?ticket=                              Stream frames (SYSTEM ping/disconnect, CALLBACK, ACK)
  POST /topapi/v2/department/get|listsub, /topapi/v2/user/list?access_token=   contacts of `org`
Failures can be injected per path (`fail_next`): an HTTP status or "drop" (connection closed, no answer).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response

from tests.fakes.contacts import FakeOrg

CARD_TOPIC = "/v1.0/card/instances/callback"  # interactive card taps (callbackType STREAM)
STREAM_TOPIC = "/v1.0/im/bot/messages/get"


def dingtalk_sign(timestamp_ms: int | str, secret: str) -> str:
    """Raw Base64 HmacSHA256(secret, f"{timestamp}\\n{secret}"), exactly as DingTalk computes it."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class CustomRobot:
    """A group's custom robot: its security settings."""

    secret: str | None = None
    keywords: tuple[str, ...] = ()
    sent: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class FakeDingTalk:
    """The fake server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        rate_limit: int = 20,
        window_seconds: float = 60.0,
        block_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.block_seconds = block_seconds  # DingTalk blocks a robot 10 minutes after it exceeds the rate
        self.clock = clock
        self.apps: dict[str, str] = {}  # app_key -> app_secret
        self.tokens: dict[str, str] = {}  # access token -> app_key
        self.robots: dict[str, CustomRobot] = {}  # custom robot access_token -> settings
        self.sessions: dict[str, int] = {}  # session -> expiry (ms)
        self.downloads: dict[str, tuple[bytes, str]] = {}  # downloadCode -> (bytes, content type)
        self.files: dict[str, tuple[bytes, str]] = {}
        self.media: dict[str, dict[str, Any]] = {}  # media_id -> {data, type, filename}
        self.webhook_messages: list[dict[str, Any]] = []  # accepted custom-robot bodies (+ "_token")
        self.session_messages: list[dict[str, Any]] = []  # accepted sessionWebhook bodies (+ "_session")
        self.group_messages: list[dict[str, Any]] = []  # accepted groupMessages bodies, msgParam parsed
        self.webhook_errors: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.org = FakeOrg()  # the contacts endpoints' organisation (tests/fakes/contacts.py)
        self.token_requests = 0
        self.stream_opens: list[dict[str, Any]] = []
        self.stream_acks: list[dict[str, Any]] = []
        # Interactive cards (issue 15): outTrackId -> {"create": body, "space": openSpaceId, "updates": [cardParamMap]}
        self.cards: dict[str, dict[str, Any]] = {}
        # 免登 codes (issue 15: signing in on the hazard page): code -> (userid, issued at)
        self.auth_codes: dict[str, tuple[str, float]] = {}
        self.used_auth_codes: set[str] = set()
        self.failures: dict[str, deque[int | str]] = defaultdict(deque)
        self.retry_after: str | None = None  # the Retry-After header of an injected HTTP 429 (None: no header)
        self._tickets: dict[str, str] = {}
        self._sockets: list[WebSocket] = []
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = self._build()

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeDingTalk":
        """Serve on a random port in a background thread; returns once it accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no ~40 ms Nagle wait per small reply
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", ws="websockets-sansio", lifespan="off")
        self._server = uvicorn.Server(config)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._server.serve(sockets=[sock]))  # type: ignore[union-attr]

        self._thread = threading.Thread(target=run, name="fake-dingtalk", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake DingTalk did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "FakeDingTalk":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- set-up ----------------------------------------------------------------------------------

    def add_app(self, app_key: str, app_secret: str) -> None:
        """Register an internal app (Client ID / Client Secret)."""
        self.apps[app_key] = app_secret

    def add_custom_robot(self, access_token: str, *, secret: str | None = None, keywords: tuple[str, ...] = ()) -> None:
        """Register a group's custom robot with its 加签 secret and/or keywords."""
        self.robots[access_token] = CustomRobot(secret=secret, keywords=keywords)

    def new_session(self, *, lifetime_ms: int = 5_400_000) -> tuple[str, int]:
        """A fresh sessionWebhook URL and its expiry (ms), as a callback carries them."""
        session = uuid.uuid4().hex
        expires = int(self.clock() * 1000) + lifetime_ms
        self.sessions[session] = expires
        return f"{self.base_url}/robot/sendBySession?session={session}", expires

    def add_download(self, data: bytes, content_type: str = "image/png") -> str:
        """A downloadCode that the robot download API resolves to these bytes."""
        code = f"dc{uuid.uuid4().hex}"
        self.downloads[code] = (data, content_type)
        return code

    def fail_next(self, path: str, action: int | str = 500, times: int = 1) -> None:
        """The next `times` requests to `path` answer HTTP `action`, or are dropped for "drop"."""
        for _ in range(times):
            self.failures[path].append(action)

    def revoke_tokens(self) -> None:
        """Invalidate every issued access token (as if they expired early)."""
        self.tokens.clear()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Poll until predicate() is truthy; returns its value or raises AssertionError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError("timed out waiting for the fake DingTalk")

    # -- Stream driving --------------------------------------------------------------------------

    @property
    def stream_connected(self) -> bool:
        return bool(self._sockets)

    def _call(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def push_stream(self, message: dict[str, Any], *, topic: str = STREAM_TOPIC, timeout: float = 10.0,
                    message_id: str | None = None) -> dict[str, Any]:
        """Send a CALLBACK frame to the connected client and return its ACK frame (a given messageId: a redelivery)."""
        message_id = message_id or f"stream-{uuid.uuid4().hex}"
        frame = {
            "specVersion": "1.0",
            "type": "CALLBACK",
            "headers": {
                "appId": "fake-app", "connectionId": "fake-conn", "contentType": "application/json",
                "messageId": message_id, "time": str(int(self.clock() * 1000)), "topic": topic,
            },
            "data": json.dumps(message, ensure_ascii=False),
        }
        return self._call(self._send_and_wait(frame, message_id, timeout), timeout + 1)

    def tap_card(self, out_track_id: str, command: str, *, user_id: str, message_id: str | None = None) -> dict[str, Any]:
        """A tap on a delivered card's button, on the Stream topic /v1.0/card/instances/callback; returns the ACK.

        Only a card created with callbackType STREAM calls back (the common failure: sent without it)."""
        card = self.cards.get(out_track_id)
        if card is None or card.get("space") is None:
            raise AssertionError(f"no delivered card {out_track_id!r}")
        if card["create"].get("callbackType") != "STREAM":
            raise AssertionError("the card was created without callbackType STREAM: DingTalk never calls back")
        space = str(card["space"])
        data = {
            "extension": "{}", "corpId": "dingcorp", "userId": user_id, "userIdType": 1, "type": "actionCallback",
            "outTrackId": out_track_id, "spaceType": "IM_GROUP", "spaceId": space.split(".", 2)[-1],
            "content": json.dumps({"cardPrivateData": {"actionIds": ["tap"], "params": {"command": command}}},
                                  ensure_ascii=False),
        }
        return self.push_stream(data, topic=CARD_TOPIC, message_id=message_id)

    def ping_stream(self, opaque: str = "opaque-1", timeout: float = 10.0) -> dict[str, Any]:
        """Send a SYSTEM ping and return the ACK (which must echo the opaque data)."""
        message_id = f"ping-{uuid.uuid4().hex}"
        frame = {
            "specVersion": "1.0", "type": "SYSTEM",
            "headers": {"contentType": "application/json", "messageId": message_id,
                        "time": str(int(self.clock() * 1000)), "topic": "ping"},
            "data": json.dumps({"opaque": opaque}),
        }
        return self._call(self._send_and_wait(frame, message_id, timeout), timeout + 1)

    def disconnect_stream(self) -> None:
        """Send SYSTEM disconnect, as the gateway does before it closes a connection."""
        frame = {
            "specVersion": "1.0", "type": "SYSTEM",
            "headers": {"contentType": "application/json", "messageId": f"dc-{uuid.uuid4().hex}",
                        "time": str(int(self.clock() * 1000)), "topic": "disconnect"},
            "data": json.dumps({"reason": "server restart"}),
        }

        async def send() -> None:
            for ws in list(self._sockets):
                await ws.send_text(json.dumps(frame))

        self._call(send(), 5)

    async def _send_and_wait(self, frame: dict[str, Any], message_id: str, timeout: float) -> dict[str, Any]:
        if not self._sockets:
            raise AssertionError("no Stream client is connected")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._ack_waiters[message_id] = future
        await self._sockets[-1].send_text(json.dumps(frame, ensure_ascii=False))
        return await asyncio.wait_for(future, timeout)

    # -- the app -----------------------------------------------------------------------------------

    def issue_auth_code(self, user_id: str) -> str:
        """A 免登 code as dd.runtime.permission.requestAuthCode gives the page: valid 5 minutes, once."""
        code = uuid.uuid4().hex
        with self._lock:
            self.auth_codes[code] = (user_id, self.clock())
        return code

    def _userinfo(self, body: Any) -> dict[str, Any]:
        """POST /topapi/v2/user/getuserinfo {"code"}: the user; 40078 for a code unknown, used or expired."""
        code = str(body.get("code") or "") if isinstance(body, dict) else ""
        with self._lock:
            issued = self.auth_codes.get(code)
            fresh = issued is not None and code not in self.used_auth_codes and self.clock() - issued[1] <= 300
            self.used_auth_codes.add(code)
        if not fresh or issued is None:
            return {"errcode": 40078, "errmsg": "不存在的临时授权码", "request_id": uuid.uuid4().hex[:12]}
        member = self.org.members.get(issued[0])
        return {"errcode": 0, "errmsg": "ok", "request_id": uuid.uuid4().hex[:12], "result": {
            "userid": issued[0], "unionid": f"u{issued[0]}", "associated_unionid": "", "device_id": uuid.uuid4().hex,
            "name": getattr(member, "name", issued[0]), "sys": False, "sys_level": 0}}

    def _token_app(self, token: str | None) -> str | None:
        return self.tokens.get(token or "")

    def _build(self) -> FastAPI:
        app = FastAPI()
        fake = self

        @app.middleware("http")
        async def log_and_inject(request: Request, call_next: Any) -> Response:
            fake.requests.append((request.method, request.url.path))
            queue = fake.failures.get(request.url.path)
            action = queue.popleft() if queue else None
            if action == "drop":
                # Abort the TCP connection: the client sees a reset, never an HTTP answer. uvicorn's
                # request cycle owns the transport; reaching it is fine for a test fake.
                cycle = getattr(request.receive, "__self__", None)
                transport = getattr(cycle, "transport", None)
                if transport is None:
                    raise RuntimeError("cannot drop a connection on this server")
                transport.abort()
                await asyncio.sleep(0.05)  # let uvicorn see the disconnect before the app returns
                return Response(status_code=599)
            if action is not None:
                throttled = int(action) == 429 and fake.retry_after is not None
                headers = {"Retry-After": fake.retry_after} if throttled else None
                return JSONResponse({"errcode": -1, "errmsg": "系统繁忙"}, status_code=int(action), headers=headers)
            return await call_next(request)

        @app.post("/robot/send")
        async def robot_send(request: Request) -> JSONResponse:
            query = request.query_params
            token = query.get("access_token", "")
            robot = fake.robots.get(token)
            if robot is None:
                return JSONResponse({"errcode": 300001, "errmsg": "token is not exist"})
            body = await request.json()
            if robot.secret:
                timestamp, signature = query.get("timestamp", ""), query.get("sign", "")
                if not timestamp.isdigit() or abs(int(timestamp) - fake.clock() * 1000) > 3_600_000:
                    return JSONResponse({"errcode": 310000, "errmsg": "invalid timestamp"})
                if not hmac.compare_digest(signature, dingtalk_sign(timestamp, robot.secret)):
                    fake.webhook_errors.append({"errcode": 310000, "sign": signature})
                    return JSONResponse({
                        "errcode": 310000,
                        "errmsg": "description:机器人发送签名不匹配;solution:请确认签名和生成签名的时间戳必须都放在调用的网址中，"
                                  "请确认机器人的密钥加密和填写正确;",
                    })
            if robot.keywords:
                text = json.dumps(body, ensure_ascii=False)
                if not any(k in text for k in robot.keywords):
                    return JSONResponse({"errcode": 310000, "errmsg": "keywords not in content"})
            now = fake.clock()
            while robot.sent and robot.sent[0] <= now - fake.window_seconds:
                robot.sent.popleft()
            if now < robot.blocked_until or len(robot.sent) >= fake.rate_limit:
                if fake.block_seconds and now >= robot.blocked_until:
                    robot.blocked_until = now + fake.block_seconds
                return JSONResponse({
                    "status": 1111, "wait": 5, "source": "x5", "punish": "deny", "uuid": uuid.uuid4().hex,
                    "errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute",
                })
            error = _check_robot_body(body)
            if error:
                return JSONResponse(error)
            robot.sent.append(now)
            fake.webhook_messages.append({**body, "_token": token})
            return JSONResponse({"errcode": 0, "errmsg": "ok"})

        @app.post("/robot/sendBySession")
        async def send_by_session(request: Request) -> JSONResponse:
            session = request.query_params.get("session", "")
            expires = fake.sessions.get(session)
            if expires is None or fake.clock() * 1000 > expires:
                return JSONResponse({"errcode": 300001, "errmsg": "session 不存在"})
            body = await request.json()
            error = _check_robot_body(body)
            if error:
                return JSONResponse(error)
            fake.session_messages.append({**body, "_session": session})
            return JSONResponse({"errcode": 0, "errmsg": "ok"})

        @app.post("/v1.0/oauth2/accessToken")
        async def access_token(request: Request) -> JSONResponse:
            body = await request.json()
            if fake.apps.get(body.get("appKey")) != body.get("appSecret") or not body.get("appSecret"):
                return JSONResponse(
                    {"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret",
                     "requestid": uuid.uuid4().hex},
                    status_code=400,
                )
            fake.token_requests += 1
            token = f"tok{next(fake._ids)}{uuid.uuid4().hex[:12]}"
            fake.tokens[token] = body["appKey"]
            return JSONResponse({"accessToken": token, "expireIn": 7200})

        @app.post("/media/upload")
        async def media_upload(request: Request) -> JSONResponse:
            if fake._token_app(request.query_params.get("access_token")) is None:
                return JSONResponse({"errcode": 40014, "errmsg": "不合法的access_token"})
            form = await request.form()
            media = form.get("media")
            kind = str(form.get("type") or request.query_params.get("type") or "")
            if media is None or isinstance(media, str):
                return JSONResponse({"errcode": 40004, "errmsg": "不合法的媒体文件类型"})
            if kind not in ("image", "voice", "video", "file"):
                return JSONResponse({"errcode": 40004, "errmsg": "不合法的媒体文件类型"})
            data = await media.read()
            media_id = f"@lA{uuid.uuid4().hex}"
            fake.media[media_id] = {"data": data, "type": kind, "filename": media.filename}
            return JSONResponse({"errcode": 0, "errmsg": "ok", "media_id": media_id, "type": kind,
                                 "created_at": int(fake.clock() * 1000)})

        def api_auth(request: Request) -> JSONResponse | None:
            if fake._token_app(request.headers.get("x-acs-dingtalk-access-token")) is None:
                return JSONResponse(
                    {"code": "InvalidAuthentication", "message": "不合法的access_token", "requestid": uuid.uuid4().hex},
                    status_code=401,
                )
            return None

        @app.post("/topapi/{api:path}")
        async def contacts(api: str, request: Request) -> JSONResponse:
            fake.org.count(request.url.path)
            if fake._token_app(request.query_params.get("access_token")) is None:
                return JSONResponse({"errcode": 40014, "errmsg": "不合法的access_token", "request_id": "fake"})
            if api == "v2/user/getuserinfo":
                return JSONResponse(fake._userinfo(await request.json()))
            if api not in ("v2/department/get", "v2/department/listsub", "v2/user/list", "v2/user/getbymobile",
                           "v2/user/get"):
                return JSONResponse({"errcode": 22, "errmsg": "无效的接口", "request_id": "fake"})
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"errcode": 400002, "errmsg": "无效参数", "request_id": "fake"})
            return JSONResponse(fake.org.dingtalk(api, body if isinstance(body, dict) else {}))

        @app.post("/v1.0/robot/groupMessages/send")
        async def group_send(request: Request) -> JSONResponse:
            denied = api_auth(request)
            if denied:
                return denied
            body = await request.json()
            app_key = fake._token_app(request.headers.get("x-acs-dingtalk-access-token"))
            if body.get("robotCode") != app_key:
                return JSONResponse({"code": "invalidParameter.robotCode.auth", "message": "robotCode无权限"},
                                    status_code=400)
            if not isinstance(body.get("msgParam"), str):
                return JSONResponse({"code": "invalidParameter.msgParam.invalid", "message": "msgParam must be in JSON format"},
                                    status_code=400)
            try:
                param = json.loads(body["msgParam"])
            except ValueError:
                return JSONResponse({"code": "invalidParameter.msgParam.invalid", "message": "msgParam must be in JSON format"},
                                    status_code=400)
            key = body.get("msgKey")
            problem = None
            if key == "sampleImageMsg" and param.get("photoURL") not in fake.media and not str(
                param.get("photoURL", "")
            ).startswith("http"):
                problem = "photoURL"
            elif key == "sampleFile" and (param.get("mediaId") not in fake.media or not param.get("fileName")):
                problem = "mediaId"
            elif key == "sampleMarkdown" and (not param.get("title") or not param.get("text")):
                problem = "title/text"
            elif key not in ("sampleText", "sampleMarkdown", "sampleImageMsg", "sampleFile", "sampleLink"):
                return JSONResponse({"code": "invalidParameter.msgKey.invalid", "message": "msgKey无效"}, status_code=400)
            if problem or not body.get("openConversationId"):
                return JSONResponse({"code": "invalidParameter.msgParam.invalid", "message": f"bad {problem}"},
                                    status_code=400)
            fake.group_messages.append({**body, "msgParam": param})
            return JSONResponse({"processQueryKey": uuid.uuid4().hex})

        def card_error(code: str, message: str) -> JSONResponse:
            return JSONResponse({"code": code, "message": message, "requestid": "fake"}, status_code=400)

        def param_map_problem(card_data: Any) -> str | None:
            params = card_data.get("cardParamMap") if isinstance(card_data, dict) else None
            if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
                return "cardData.cardParamMap must map names to strings"
            return None

        @app.post("/v1.0/card/instances")
        async def card_create(request: Request) -> JSONResponse:
            denied = api_auth(request)
            if denied:
                return denied
            body = await request.json()
            track = body.get("outTrackId")
            if not body.get("cardTemplateId") or not isinstance(track, str) or not track:
                return card_error("invalidParameter", "cardTemplateId and outTrackId are required")
            if track in fake.cards:
                return card_error("param.outTrackId.duplicate", "outTrackId重复")
            if (problem := param_map_problem(body.get("cardData"))) is not None:
                return card_error("invalidParameter.cardData", problem)
            fake.cards[track] = {"create": body, "space": None, "updates": []}
            return JSONResponse({"success": True, "result": ""})

        @app.post("/v1.0/card/instances/deliver")
        async def card_deliver(request: Request) -> JSONResponse:
            denied = api_auth(request)
            if denied:
                return denied
            body = await request.json()
            card = fake.cards.get(str(body.get("outTrackId")))
            if card is None:
                return card_error("card.instance.not.exist", "卡片实例不存在")
            space = str(body.get("openSpaceId") or "")
            model = body.get("imGroupOpenDeliverModel") or {}
            app_key = fake._token_app(request.headers.get("x-acs-dingtalk-access-token"))
            if not space.startswith("dtv1.card//IM_GROUP.") or not isinstance(model, dict):
                return card_error("invalidParameter.openSpaceId", "openSpaceId无效")
            if model.get("robotCode") != app_key:
                return card_error("invalidParameter.robotCode.auth", "robotCode无权限")
            card["space"] = space
            return JSONResponse({"success": True, "result": [{"spaceId": space, "success": True}]})

        @app.put("/v1.0/card/instances")
        async def card_update(request: Request) -> JSONResponse:
            denied = api_auth(request)
            if denied:
                return denied
            body = await request.json()
            card = fake.cards.get(str(body.get("outTrackId")))
            if card is None:
                return card_error("card.instance.not.exist", "卡片实例不存在")
            if (problem := param_map_problem(body.get("cardData"))) is not None:
                return card_error("invalidParameter.cardData", problem)
            card["updates"].append(dict(body["cardData"]["cardParamMap"]))
            return JSONResponse({"success": True, "result": True})

        @app.post("/v1.0/robot/messageFiles/download")
        async def download(request: Request) -> JSONResponse:
            denied = api_auth(request)
            if denied:
                return denied
            body = await request.json()
            item = fake.downloads.get(body.get("downloadCode", ""))
            if item is None:
                return JSONResponse({"code": "invalidParameter.downloadCode", "message": "downloadCode无效"},
                                    status_code=400)
            name = uuid.uuid4().hex
            fake.files[name] = item
            return JSONResponse({"downloadUrl": f"{fake.base_url}/files/{name}?Expires=1&Signature=secret"})

        @app.get("/files/{name}")
        async def files(name: str) -> Response:
            item = fake.files.get(name)
            if item is None:
                return Response(status_code=404)
            return Response(item[0], media_type=item[1])

        @app.post("/v1.0/gateway/connections/open")
        async def open_connection(request: Request) -> JSONResponse:
            body = await request.json()
            if fake.apps.get(body.get("clientId")) != body.get("clientSecret") or not body.get("clientSecret"):
                return JSONResponse({"code": "invalidClientIdOrSecret", "message": "clientId或clientSecret无效"},
                                    status_code=400)
            fake.stream_opens.append(body)
            ticket = uuid.uuid4().hex
            fake._tickets[ticket] = body["clientId"]
            return JSONResponse({"endpoint": f"ws://127.0.0.1:{fake.port}/connect", "ticket": ticket})

        @app.websocket("/connect")
        async def connect(websocket: WebSocket) -> None:
            ticket = websocket.query_params.get("ticket", "")
            if fake._tickets.pop(ticket, None) is None:  # a ticket is single-use
                await websocket.close(code=4001)
                return
            await websocket.accept()
            fake._sockets.append(websocket)
            try:
                while True:
                    frame = json.loads(await websocket.receive_text())
                    fake.stream_acks.append(frame)
                    message_id = (frame.get("headers") or {}).get("messageId", "")
                    waiter = fake._ack_waiters.pop(message_id, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(frame)
            except WebSocketDisconnect:
                pass
            finally:
                fake._sockets.remove(websocket)

        return app


def _check_robot_body(body: dict[str, Any]) -> dict[str, Any] | None:
    """Reject robot bodies DingTalk would reject (type, size, missing fields)."""
    if len(json.dumps(body, ensure_ascii=False).encode()) > 20000:
        return {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"}
    kind = body.get("msgtype")
    if kind == "text" and (body.get("text") or {}).get("content"):
        return None
    if kind == "markdown" and (body.get("markdown") or {}).get("title") and (body.get("markdown") or {}).get("text"):
        return None
    if kind in ("link", "actionCard", "feedCard"):
        return None
    return {"errcode": 400105, "errmsg": "不支持的消息类型"}


# -- driving the bot ---------------------------------------------------------------------------------


def robot_message(
    fake: FakeDingTalk,
    *,
    text: str | None = None,
    pictures: tuple[bytes, ...] = (),
    msgtype: str | None = None,
    conversation_id: str = "cidSafetyStaff001==",
    sender_staff_id: str = "0135210001",
    sender_nick: str = "张伟",
    robot_code: str = "dingapp0001",
    msg_id: str | None = None,
    session_lifetime_ms: int = 5_400_000,
    replied_picture: bytes | None = None,
) -> dict[str, Any]:
    """A realistic robot message: text, picture (one picture, no text) or richText (text + pictures).

    `replied_picture` makes a text a reply that quotes an earlier picture (`text.repliedMsg`, as DingTalk
    sends a 回复 of a photo message; the quoted picture comes with its own download code).
    """
    session_url, expires = fake.new_session(lifetime_ms=session_lifetime_ms)
    now_ms = int(fake.clock() * 1000)
    kind = msgtype or ("text" if not pictures else ("picture" if text is None and len(pictures) == 1 else "richText"))
    message: dict[str, Any] = {
        "conversationId": conversation_id,
        "atUsers": [{"dingtalkId": "$:LWCP_v1:$botbotbot"}],
        "chatbotCorpId": "dingcorp0001",
        "chatbotUserId": "$:LWCP_v1:$botbotbot",
        "msgId": msg_id or f"msg{uuid.uuid4().hex[:20]}==",
        "senderNick": sender_nick,
        "isAdmin": False,
        "senderStaffId": sender_staff_id,
        "sessionWebhookExpiredTime": expires,
        "createAt": now_ms,
        "senderCorpId": "dingcorp0001",
        "conversationType": "2",
        "senderId": f"$:LWCP_v1:${sender_staff_id}",
        "conversationTitle": "城关一中安全工作群",
        "isInAtList": True,
        "sessionWebhook": session_url,
        "robotCode": robot_code,
        "msgtype": kind,
    }
    if kind == "text":
        message["text"] = {"content": f" {text or ''}"}  # DingTalk leaves a space where the @bot was
        if replied_picture is not None:
            code = fake.add_download(replied_picture)
            message["text"].update(isReplyMsg=True, repliedMsg={
                "msgType": "picture", "msgId": f"msg{uuid.uuid4().hex[:20]}==", "senderId": message["senderId"],
                "createdAt": now_ms - 60_000, "content": {"downloadCode": code, "pictureDownloadCode": code},
            })
    elif kind == "picture":
        code = fake.add_download(pictures[0])
        message["content"] = {"downloadCode": code, "pictureDownloadCode": code}
    else:
        items: list[dict[str, Any]] = []
        if text:
            items.append({"text": text})
        for data in pictures:
            code = fake.add_download(data)
            items.append({"type": "picture", "downloadCode": code, "pictureDownloadCode": code})
        message["content"] = {"richText": items}
    return message


_last_timestamp = 0
_timestamp_lock = threading.Lock()


def _fresh_timestamp_ms() -> int:
    """Now in ms, but later than any timestamp handed out before: two callbacks a test sends within one
    millisecond must not share a (timestamp, sign) pair, which the bot refuses as a replay."""
    global _last_timestamp
    with _timestamp_lock:
        _last_timestamp = max(int(time.time() * 1000), _last_timestamp + 1)
        return _last_timestamp


def callback_headers(app_secret: str, *, now_ms: int | None = None) -> dict[str, str]:
    """The `timestamp` / `sign` headers DingTalk puts on an HTTP callback."""
    timestamp = now_ms if now_ms is not None else _fresh_timestamp_ms()
    return {
        "Content-Type": "application/json; charset=utf-8",
        "timestamp": str(timestamp),
        "sign": dingtalk_sign(timestamp, app_secret),
    }


def post_callback(
    bot_url: str, app_secret: str, message: dict[str, Any], *, now_ms: int | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """POST a signed robot callback to the bot's /dingtalk/callback, like DingTalk's HTTP mode."""
    body = json.dumps(message, ensure_ascii=False).encode()
    headers = callback_headers(app_secret, now_ms=now_ms)
    if client is not None:
        return client.post("/dingtalk/callback", content=body, headers=headers)
    return httpx.post(f"{bot_url.rstrip('/')}/dingtalk/callback", content=body, headers=headers, timeout=10)


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeDingTalk]:
    """A started fake server, stopped afterwards."""
    fake = FakeDingTalk(**kwargs)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
