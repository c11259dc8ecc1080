"""The local chat simulator at /sim: a browser page plus a JSON adapter in front of the engine.

Like a real platform adapter it only translates HTTP/JSON into `Inbound` and `Reply` into JSON;
every message goes through the engine's record → process pipeline.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from importlib.resources import files
from typing import Annotated, Any
from uuid import uuid4

import anyio
from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse, Response

from sqlmodel import Session, func, select

from bot.engine import Engine
from models.tables import OutboxMessage
from handlers.messages import Attachment, Inbound, Reply

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
}
# Only these files are served, so a crafted path can never reach anything else in the package.
ASSETS = {"sim.css": "text/css; charset=utf-8", "sim.js": "text/javascript; charset=utf-8"}


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


def directory_json(engine: Engine) -> dict[str, Any]:
    """The people and groups the simulator lets you pick from, straight from the config."""
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
            for person in config.people
        ],
        "groups": [
            {"id": group.id, "name": group.name, "kind": group.kind, "platform": group.platform}
            for group in config.groups
        ],
    }


async def _read_photo(photo: UploadFile) -> Attachment:
    content_type = (photo.content_type or "").split(";")[0].strip().lower()
    if content_type not in PHOTO_TYPES:
        raise HTTPException(415, "只能上传图片（PNG、JPEG、GIF、WebP 等）。")
    data = await photo.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        raise HTTPException(413, f"图片太大，请不要超过 {MAX_PHOTO_BYTES // (1024 * 1024)} MB。")
    return Attachment(filename=photo.filename or "photo", content_type=content_type, data=data)


def console_router(engine: Engine) -> APIRouter:
    """Routes for the simulator page and its JSON API, bound to one engine."""
    router = APIRouter(prefix="/sim")

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
        person = next((p for p in engine.config.people if p.id == person_id), None)
        if person is None:
            raise HTTPException(400, f"配置里没有这个人：{person_id}")
        if not any(g.id == group_id for g in engine.config.groups):
            raise HTTPException(400, f"配置里没有这个群：{group_id}")
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
