"""The one internal message and reply type every platform adapter translates to and from."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

Platform = Literal["console", "wecom", "dingtalk"]


def as_platform(name: str) -> Platform:
    """A platform name read back from the database (stored from `Inbound.platform`) as a `Platform`."""
    for platform in get_args(Platform):
        if platform == name:
            return platform  # one of Platform (get_args gives its values)
    raise ValueError(f"unknown platform {name!r}")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a message (a photo of a hazard or of its fix)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message addressed to the bot, already stripped of its @mention."""

    platform: Platform
    msg_id: str
    chat_id: str
    sender_id: str  # platform user id (WeCom userid, DingTalk staff id, console person key)
    text: str
    received_at: datetime  # zone-aware
    sender_name: str = ""
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class Button:
    """A shortcut on a card: tapping it is the same as typing `command` (e.g. label 销号, command `销号 #12`)."""

    label: str
    command: str


@dataclass(frozen=True, slots=True)
class Reply:
    """What the bot answers: text, optionally an image or a file, and people to @-mention."""

    text: str
    mentions: tuple[str, ...] = ()  # person keys to @-mention
    image_png: bytes | None = None
    file_name: str | None = None
    file_data: bytes | None = None
    kind: Literal["text", "markdown"] = "text"
    extras: dict[str, str] = field(default_factory=dict)
    # Card buttons (issue 15): each platform renders them when `[cards] enabled`, or ignores them.
    buttons: tuple[Button, ...] = ()


def reply_to_json(reply: Reply) -> dict[str, Any]:
    """A reply as JSON values (bytes in base64), so it can wait in the outbox until a platform renders it.

    Fields at their default are left out; `reply_from_json` gives back an equal `Reply`."""
    data: dict[str, Any] = {"text": reply.text}
    if reply.mentions:
        data["mentions"] = list(reply.mentions)
    if reply.image_png is not None:
        data["image_png"] = base64.b64encode(reply.image_png).decode("ascii")
    if reply.file_name is not None:
        data["file_name"] = reply.file_name
    if reply.file_data is not None:
        data["file_data"] = base64.b64encode(reply.file_data).decode("ascii")
    if reply.kind != "text":
        data["kind"] = reply.kind
    if reply.extras:
        data["extras"] = dict(reply.extras)
    if reply.buttons:
        data["buttons"] = [{"label": b.label, "command": b.command} for b in reply.buttons]
    return data


def _text(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"reply field {key!r} is not text")
    return value


def _bytes(data: Mapping[str, Any], key: str) -> bytes | None:
    if data.get(key) is None:
        return None
    try:
        return base64.b64decode(_text(data, key), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"reply field {key!r} is not base64") from exc


def reply_from_json(data: object) -> Reply:
    """The `Reply` that `reply_to_json` wrote; ValueError for anything else (a doubtful value is refused)."""
    if not isinstance(data, Mapping):
        raise ValueError("a reply is not a JSON object")
    mentions, extras, buttons = data.get("mentions", []), data.get("extras", {}), data.get("buttons", [])
    if not isinstance(mentions, list) or not all(isinstance(m, str) for m in mentions):
        raise ValueError("reply field 'mentions' is not a list of text")
    if not isinstance(extras, Mapping) or not all(isinstance(v, str) for v in extras.values()):
        raise ValueError("reply field 'extras' is not an object of text")
    if not isinstance(buttons, list) or not all(isinstance(b, Mapping) for b in buttons):
        raise ValueError("reply field 'buttons' is not a list of objects")
    kind = data.get("kind", "text")
    if kind not in ("text", "markdown"):
        raise ValueError(f"reply kind {kind!r} is neither text nor markdown")
    file_name = data.get("file_name")
    return Reply(
        text=_text(data, "text"),
        mentions=tuple(mentions),
        image_png=_bytes(data, "image_png"),
        file_name=_text(data, "file_name") if file_name is not None else None,
        file_data=_bytes(data, "file_data"),
        kind="markdown" if kind == "markdown" else "text",
        extras={str(k): v for k, v in extras.items()},
        buttons=tuple(Button(_text(b, "label"), _text(b, "command")) for b in buttons),
    )


@dataclass(frozen=True, slots=True)
class AlertLeaders:
    """Effect: the leaders' groups must hear of a 重大 hazard now, not at the next scheduled tick."""

    hazard_id: int


# Everything a handler may ask the pipeline to do beyond replying (one type today; a union as more come).
Effect = AlertLeaders


@dataclass(frozen=True, slots=True)
class Outcome:
    """A handler's result: the replies, and the effects the pipeline carries out with the handler's transaction."""

    replies: list[Reply]
    effects: tuple[Effect, ...] = ()
