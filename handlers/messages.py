"""The one internal message and reply type every platform adapter translates to and from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

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
