"""The /sim routes: the page, its assets, and the JSON API that posts messages through the runtime."""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated, Any
from uuid import uuid4

import anyio
from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse, Response

from bot.config import Config, Person
from bot.platforms.base import Runtime
from bot.platforms.console.guard import SimulatorGuard, guarded_route_class
from bot.platforms.console.views import console_groups, console_people, directory_json, push_to_json, reply_to_json
from handlers.messages import Attachment, Inbound
from models.platform_queries import console_pushes

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 4000
PHOTO_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/heic", "image/heif"}
)
# Only these files are served, so a crafted path can never reach anything else in the package.
ASSETS = {"sim.css": "text/css; charset=utf-8", "sim.js": "text/javascript; charset=utf-8"}
PLATFORM_NAMES = {"wecom": "企业微信", "dingtalk": "钉钉"}


def _web_file(name: str) -> bytes:
    return (files("bot") / "web" / name).read_bytes()



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


def console_router(runtime: Runtime, guard: SimulatorGuard) -> APIRouter:
    """Routes for the simulator page and its JSON API, bound to one runtime, each screened by `guard`."""
    engine = runtime.engine
    router = APIRouter(prefix="/sim", route_class=guarded_route_class(guard))

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
        return directory_json(engine.config)

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

        # Recorded as every platform's messages are; a repeated client_msg_id is told apart from a message
        # that got no reply. Handled here and now, not by a handler process: the page shows the replies.
        inbound_id = await runtime.record(inbound, {})
        if inbound_id is None:
            return {"replies": [], "duplicate": True}
        replies = await anyio.to_thread.run_sync(engine.process, inbound, inbound_id)
        cards = engine.config.cards.enabled  # issue 15: the page draws the buttons; a tap sends their command
        return {"replies": [reply_to_json(r, cards=cards) for r in replies], "duplicate": False}

    @router.get("/api/pushes")
    def pushes(after: int = 0) -> dict[str, Any]:
        """What the campaign clock pushed to simulator groups (reminders, digests, alerts) after a row id."""
        rows, last_id = console_pushes(engine.db, after=after)
        return {"pushes": [push_to_json(row) for row in rows], "last_id": last_id}

    return router

