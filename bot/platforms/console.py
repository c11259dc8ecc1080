"""The local chat simulator at /sim: a browser page plus a JSON adapter in front of the engine.

Like a real platform adapter it only translates HTTP/JSON into `Inbound` and `Reply` into JSON;
every message goes through the engine's record → process pipeline.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import uuid4

import anyio
from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.types import Message, Receive

from sqlmodel import Session, func, select

from bot.config import Config, Group, Person, is_loopback_host
from bot.engine import Engine
from bot.secrets import Secrets
from models.tables import OutboxMessage
from handlers.messages import Attachment, Inbound, Reply

log = logging.getLogger(__name__)

BOT_NAME = "安全助手"
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 4000
PHOTO_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/heic", "image/heif"}
)
ROLE_NAMES = {
    "teacher": "教师",
    "unit_head": "部门负责人",
    "safety_officer": "安全员",
    "leader": "校领导",
    "admin": "管理员",
    "supervisor": "督导组",  # 回头看 (issue 16)
}
# Only these files are served, so a crafted path can never reach anything else in the package.
ASSETS = {"sim.css": "text/css; charset=utf-8", "sim.js": "text/javascript; charset=utf-8"}


TOKEN_COOKIE = "safetybot_sim"
MIN_TOKEN_CHARS = 16  # a guessable token would make the token pointless
BODY_HEADROOM_BYTES = 64 * 1024  # the form's text fields and multipart framing beside the photo
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
PLATFORM_NAMES = {"wecom": "企业微信", "dingtalk": "钉钉"}


def _refuse(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _host_and_port(authority: str, scheme: str) -> tuple[str, int] | None:
    """("localhost", 8000) from "localhost:8000"; None when it is not a host[:port]."""
    try:
        parts = urlsplit(f"//{authority}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path:
        return None
    return parts.hostname, port or (443 if scheme in ("https", "wss") else 80)


@dataclass(frozen=True)
class SimulatorGuard:
    """Who may use /sim: the right Host and Origin, a bounded body and, when configured, the token.

    Everything here runs before the route reads the request body.
    """

    allowed: frozenset[tuple[str, int | None]]  # (hostname, port); port None: any port
    max_body_bytes: int
    max_upload_mb: int
    port: int
    token: str | None = None

    @classmethod
    def from_config(cls, config: Config, token: str | None) -> SimulatorGuard:
        port = config.server.port
        names = set(LOOPBACK_NAMES)
        if is_loopback_host(config.server.host):
            names.add(config.server.host.strip("[]").lower())
        allowed: set[tuple[str, int | None]] = {(name, port) for name in names}
        for entry in config.simulator.allowed_hosts:
            parts = urlsplit(f"//{entry}")
            if parts.hostname:
                allowed.add((parts.hostname, parts.port))
        mb = config.simulator.max_upload_mb
        return cls(frozenset(allowed), mb * 1024 * 1024 + BODY_HEADROOM_BYTES, mb, port, token)

    def _allows(self, authority: str, scheme: str) -> bool:
        found = _host_and_port(authority, scheme)
        return found is not None and (found in self.allowed or (found[0], None) in self.allowed)

    def screen(self, request: Request) -> Response | None:
        """A refusal for a request that must not reach the simulator, else None."""
        example = f"http://127.0.0.1:{self.port}/sim"
        if not self._allows(request.headers.get("host", ""), request.url.scheme):
            return _refuse(403, f"模拟器只能通过本机地址（例如 {example}）或 [simulator] allowed_hosts 里的地址打开。")
        if not self._origin_allowed(request.headers.get("origin")):
            return _refuse(403, f"拒绝来自其他网页的请求。请直接在浏览器里打开模拟器，例如 {example}。")
        if self.token is not None and self._presented_token(request) is None:
            return _refuse(
                401,
                "模拟器需要口令：请用 /sim?token=口令 打开一次页面（之后浏览器会记住），"
                "或在请求头里带 Authorization: Bearer 口令。",
            )
        return self._declared_size_refusal(request.headers.get("content-length"))

    def _origin_allowed(self, origin: str | None) -> bool:
        """No Origin (not sent by a browser's cross-site request), or one of the allowed addresses."""
        if origin is None:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and self._allows(parts.netloc, parts.scheme)

    def _declared_size_refusal(self, declared: str | None) -> Response | None:
        if declared is None:
            return None  # a chunked body: `capped` counts it as it streams
        try:
            size = int(declared.strip(), 10)
        except ValueError:
            size = -1
        if size < 0:
            return _refuse(400, "请求头 Content-Length 不是一个数字。")
        return self.too_large() if size > self.max_body_bytes else None

    def too_large_detail(self) -> str:
        return f"上传的内容太大，请不要超过 {self.max_upload_mb} MB（例如先把照片压缩一下）。"

    def too_large(self) -> JSONResponse:
        return _refuse(413, self.too_large_detail())

    def _presented_token(self, request: Request) -> str | None:
        """Where a valid token came from ("header", "cookie", "query"), or None."""
        if self.token is None:
            return None
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        candidates = {
            "header": bearer.strip() if scheme.lower() == "bearer" else "",
            "cookie": request.cookies.get(TOKEN_COOKIE, ""),
            "query": request.query_params.get("token", ""),
        }
        expected = self.token.encode()
        for source, value in candidates.items():
            if value and hmac.compare_digest(value.encode(), expected):
                return source
        return None

    def remember_token(self, request: Request, response: Response) -> None:
        """Keep a token given as ?token= in a cookie that scripts and other sites cannot use."""
        if self.token is not None and self._presented_token(request) == "query":
            response.set_cookie(
                TOKEN_COOKIE, self.token, path="/sim", httponly=True, samesite="strict",
                secure=request.url.scheme == "https",
            )
            response.headers["Referrer-Policy"] = "no-referrer"

    def capped(self, receive: Receive) -> Receive:
        """`receive` that refuses with 413 as soon as the streamed body passes the limit (chunked bodies too)."""
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise HTTPException(413, self.too_large_detail())
            return message

        return capped_receive


def _guarded_route_class(guard: SimulatorGuard) -> type[APIRoute]:
    """A route class that screens each simulator request before FastAPI parses its body."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                refusal = guard.screen(request)
                if refusal is not None:
                    return refusal
                response = await handler(Request(request.scope, guard.capped(request.receive)))
                guard.remember_token(request, response)
                return response

            return guarded

    return GuardedRoute


def _web_file(name: str) -> bytes:
    return (files("bot") / "web" / name).read_bytes()


def _data_url(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def reply_to_json(reply: Reply) -> dict[str, Any]:
    """Translate one internal reply into the simulator's JSON shape."""
    file: dict[str, str] | None = None
    if reply.file_data is not None:
        name = reply.file_name or "file.bin"
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        file = {"name": name, "data_url": _data_url(content_type, reply.file_data)}
    return {
        "text": reply.text,
        "kind": reply.kind,
        "mentions": list(reply.mentions),
        "image": _data_url("image/png", reply.image_png) if reply.image_png is not None else None,
        "file": file,
    }


def push_to_json(row: OutboxMessage) -> dict[str, Any]:
    """One pushed message in the simulator's reply shape, with its group and row id."""
    payload = json.loads(row.payload or "{}")
    reply = Reply(
        text=str(payload.get("text", "")),
        mentions=tuple(payload.get("mentions", ())),
        image_png=row.blob if row.kind == "image" else None,
        file_name=payload.get("file_name") if row.kind == "file" else None,
        file_data=row.blob if row.kind == "file" else None,
    )
    return {"id": row.id, "group_id": row.group_id, **reply_to_json(reply)}


def console_groups(config: Config) -> list[Group]:
    """The groups the simulator serves: only platform = "console", never a real WeCom/DingTalk chat."""
    return [group for group in config.groups if group.platform == "console"]


def console_people(config: Config) -> list[Person]:
    """The people of the units the console groups cover (with the units below them)."""
    groups = console_groups(config)
    if any(not group.units for group in groups):
        return list(config.people)
    children: dict[str, list[str]] = {}
    for unit in config.units:
        if unit.parent is not None:
            children.setdefault(unit.parent, []).append(unit.id)
    covered: set[str] = set()
    stack = [unit for group in groups for unit in group.units]
    while stack:
        unit = stack.pop()
        if unit not in covered:
            covered.add(unit)
            stack.extend(children.get(unit, []))
    return [person for person in config.people if person.unit in covered]


def directory_json(engine: Engine) -> dict[str, Any]:
    """The people and groups the simulator lets you pick from: the console groups and their people only."""
    config = engine.config
    unit_names = {unit.id: unit.name for unit in config.units}
    return {
        "bot_name": BOT_NAME,
        "timezone": config.timezone,
        "people": [
            {
                "id": person.id,
                "name": person.name,
                "unit": unit_names.get(person.unit, person.unit),
                "roles": [ROLE_NAMES.get(role, role) for role in person.roles],
            }
            for person in console_people(config)
        ],
        "groups": [
            {"id": group.id, "name": group.name, "kind": group.kind, "platform": group.platform}
            for group in console_groups(config)
        ],
    }


def _sender_and_group(config: Config, person_id: str, group_id: str) -> Person:
    """The person posting, after checking both may be used in the simulator (HTTPException otherwise)."""
    group = next((g for g in config.groups if g.id == group_id), None)
    if group is None:
        raise HTTPException(400, f"配置里没有这个群：{group_id}")
    if group.platform != "console":
        examples = "、".join(g.id for g in console_groups(config)[:3]) or "（还没有，请在配置里加 platform = \"console\" 的群）"
        raise HTTPException(
            403,
            f"{group_id} 是{PLATFORM_NAMES.get(group.platform, group.platform)}的正式群，模拟器不能在里面发消息；"
            f"请选择模拟器群（platform = \"console\"），例如：{examples}",
        )
    person = next((p for p in config.people if p.id == person_id), None)
    if person is None:
        raise HTTPException(400, f"配置里没有这个人：{person_id}")
    if person.id not in {p.id for p in console_people(config)}:
        raise HTTPException(403, f"{person_id} 不属于任何模拟器群负责的单位，不能在模拟器里发消息。")
    return person


async def _read_photo(photo: UploadFile) -> Attachment:
    content_type = (photo.content_type or "").split(";")[0].strip().lower()
    if content_type not in PHOTO_TYPES:
        raise HTTPException(415, "只能上传图片（PNG、JPEG、GIF、WebP 等）。")
    data = await photo.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        raise HTTPException(413, f"图片太大，请不要超过 {MAX_PHOTO_BYTES // (1024 * 1024)} MB。")
    return Attachment(filename=photo.filename or "photo", content_type=content_type, data=data)


def console_router(engine: Engine, guard: SimulatorGuard) -> APIRouter:
    """Routes for the simulator page and its JSON API, bound to one engine, each screened by `guard`."""
    router = APIRouter(prefix="/sim", route_class=_guarded_route_class(guard))

    @router.get("", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_web_file("sim.html"), headers={"Cache-Control": "no-cache"})

    @router.get("/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, "没有这个文件。")
        return Response(_web_file(name), media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})

    @router.get("/api/directory")
    def directory() -> dict[str, Any]:
        return directory_json(engine)

    @router.post("/api/messages")
    async def post_message(
        person_id: Annotated[str, Form()],
        group_id: Annotated[str, Form()],
        text: Annotated[str, Form()] = "",
        client_msg_id: Annotated[str | None, Form()] = None,
        photo: Annotated[UploadFile | None, File()] = None,
    ) -> dict[str, Any]:
        person = _sender_and_group(engine.config, person_id, group_id)
        if len(text) > MAX_TEXT_CHARS:
            raise HTTPException(413, f"消息太长，请不要超过 {MAX_TEXT_CHARS} 字。")
        # A browser submits an empty file part when nothing was chosen; that is "no photo".
        attachments: tuple[Attachment, ...] = ()
        if photo is not None and photo.filename:
            attachments = (await _read_photo(photo),)
        if not text.strip() and not attachments:
            raise HTTPException(400, "消息是空的。")
        inbound = Inbound(
            platform="console",
            msg_id=(client_msg_id or "").strip()[:128] or uuid4().hex,
            chat_id=group_id,
            sender_id=person.id,
            sender_name=person.name,
            text=text,
            received_at=engine.now(),
            attachments=attachments,
        )

        # record() tells a repeated client_msg_id apart from a message that got no reply,
        # which handle() alone cannot; together they are exactly what handle() does.
        def run() -> tuple[list[Reply], bool]:
            recorded = engine.record(inbound)
            if recorded.duplicate:
                return [], True
            return engine.process(inbound, recorded.inbound_id), False

        replies, duplicate = await anyio.to_thread.run_sync(run)
        return {"replies": [reply_to_json(r) for r in replies], "duplicate": duplicate}

    @router.get("/api/pushes")
    def pushes(after: int = 0) -> dict[str, Any]:
        """What the campaign clock pushed to simulator groups (reminders, digests, alerts) after a row id."""
        with Session(engine.db) as session:
            rows = session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.channel == "console", OutboxMessage.id > after)  # type: ignore[operator]
                .order_by(OutboxMessage.id)  # type: ignore[arg-type]
                .limit(100)
            ).all()
            last_id = session.exec(select(func.max(OutboxMessage.id)).where(OutboxMessage.channel == "console")).one()
            return {"pushes": [push_to_json(row) for row in rows], "last_id": last_id or 0}

    return router


def simulator_token(config: Config, secrets: Secrets) -> tuple[str | None, str | None]:
    """(the token /sim requires or None, why /sim must stay unmounted or None)."""
    sim = config.simulator
    token = secrets.get(sim.token_env) if sim.token_env else None
    if token and len(token) < MIN_TOKEN_CHARS:
        return None, f"simulator NOT mounted: ${sim.token_env} is shorter than {MIN_TOKEN_CHARS} characters"
    if token or is_loopback_host(config.server.host):
        return token or None, None
    missing = f"${sim.token_env} is empty" if sim.token_env else "no [simulator] token_env is set"
    return None, (
        f"simulator NOT mounted: server.host {config.server.host!r} listens beyond this machine and {missing}; "
        "set [simulator] token_env to the NAME of an env var holding a long random token, or enabled = false"
    )


def install(app: FastAPI, engine: Engine, secrets: Secrets) -> bool:
    """Mount /sim when the config enables it and it can be guarded; True when mounted."""
    config = engine.config
    if not config.simulator.enabled:
        return False
    token, refusal = simulator_token(config, secrets)
    if refusal is not None:
        log.error(refusal)
        return False
    app.include_router(console_router(engine, SimulatorGuard.from_config(config, token)))
    return True
