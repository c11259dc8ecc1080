"""The simulator's JSON shapes: replies, pushes, and the people and groups it lets you pick from."""

from __future__ import annotations

import base64
import json
import mimetypes
from typing import Any

from bot.config import Config, Group, Person
from handlers.messages import Reply
from models.tables import OutboxMessage

BOT_NAME = "安全助手"
ROLE_NAMES = {
    "teacher": "教师",
    "unit_head": "部门负责人",
    "safety_officer": "安全员",
    "leader": "校领导",
    "admin": "管理员",
    "supervisor": "督导组",  # 回头看 (issue 16)
}
# Only these files are served, so a crafted path can never reach anything else in the package.


def _data_url(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def reply_to_json(reply: Reply, *, cards: bool = False) -> dict[str, Any]:
    """Translate one internal reply into the simulator's JSON shape (with its buttons when cards are on)."""
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
        "buttons": [{"label": b.label, "command": b.command} for b in reply.buttons] if cards else [],
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
        unit_id = stack.pop()
        if unit_id not in covered:
            covered.add(unit_id)
            stack.extend(children.get(unit_id, []))
    return [person for person in config.people if person.unit in covered]


def directory_json(config: Config) -> dict[str, Any]:
    """The people and groups the simulator lets you pick from: the console groups and their people only."""
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


