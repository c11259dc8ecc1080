"""Replies and the scheduler's group pushes rendered into DingTalk outbox drafts.

Replies: markdown by the sessionWebhook, images and files by the OpenAPI. Pushes: the group's custom robot
webhook, else the app robot.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from bot.config import Config, Group
from bot.outbox import Draft, split_utf8
from bot.platforms.dingtalk.cards import card_params, tapped_card_params
from bot.platforms.dingtalk.limits import CH_OPENAPI, CH_SESSION, CH_WEBHOOK, MARKDOWN_MAX_BYTES, PLATFORM
from handlers.format import escape_markdown
from handlers.messages import Reply
from models.platform_queries import dingtalk_targets, name_of_dingtalk_user
from models.tables import GroupRow

log = logging.getLogger(__name__)


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


def render_replies(
    session: Session, replies: list[Reply], route: dict[str, Any], *, card_template: str = ""
) -> list[Draft]:
    """Replies as drafts, when their `replies` row is delivered: text as markdown by sessionWebhook, images/files
    by the OpenAPI; with a card template (issue 15), a tap's answer updates its card and buttons come as a card
    below the text."""
    robot = str(route.get("robot") or "")
    base = {
        "robot_id": route.get("robot_id"),
        "group_id": route.get("group_id"),
        "conversation_id": route.get("conversation_id"),
    }
    event = route.get("card_event")
    if isinstance(event, dict):  # a tap: no sessionWebhook; the card itself shows the answer
        who = name_of_dingtalk_user(session, str(event.get("user", ""))) or str(event.get("user", ""))
        params = tapped_card_params(replies, key=str(event.get("key", "")), who=who)
        drafts = [Draft(kind="card_update", payload={**base, "out_track_id": event.get("out_track_id"), "params": params},
                        channel=CH_OPENAPI, robot=robot)]
        return drafts + [d for reply in replies for d in _attachment_drafts(reply, base=base, robot=robot)]
    drafts = []
    card = card_params(replies) if card_template and route.get("chat_type") == "group" else None
    for reply in replies:
        if reply.text.strip():
            targets = dingtalk_targets(session, reply.mentions)
            for part in markdown_parts(reply.text, user_ids=targets.user_ids, mobiles=targets.mobiles):
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
    if card is not None:
        drafts.append(Draft(kind="card", payload={**base, "out_track_id": f"sb-{uuid.uuid4().hex}",
                                                   "template_id": card_template, "params": card},
                            channel=CH_OPENAPI, robot=robot))
    return drafts


def chat_bound_group(config: Config, row: GroupRow) -> Group | None:
    """A group bound in chat (登记本群, no TOML entry) as the config entry its pushes need: the app robot that
    lives in the chat sends to its conversation by OpenAPI. That is the robot that received the 登记本群 (a
    county may have several, each in its own chats); the config's first [[dingtalk.robots]] entry when it is
    not on file (bound before it was kept) or no longer configured. None when the row is not one, or no robot
    is configured."""
    if row.source != "chat" or row.platform != PLATFORM or not row.chat_id or not config.dingtalk.robots:
        return None
    robot = next((r.id for r in config.dingtalk.robots if r.id == row.robot), None)
    if robot is None and row.robot:
        log.warning("dingtalk group %s was bound through robot %r, which is no longer configured: pushing by %r",
                    row.id, row.robot, config.dingtalk.robots[0].id)
    return Group.model_construct(
        id=row.id, name=row.name, platform=PLATFORM, kind=row.kind, units=[], campaign=row.campaign_id,
        chat_id=row.chat_id, credentials={}, bot=robot or config.dingtalk.robots[0].id,
    )


def push_drafts(
    session: Session, config: Config, group_id: str, replies: Sequence[Reply], *, row: GroupRow | None = None
) -> list[Draft]:
    """Drafts for a proactive push to a configured DingTalk group (for the scheduler).

    Text goes by the group's custom robot when it has `webhook_token` (so @ works), else by the app
    robot's OpenAPI as sampleMarkdown (no @: the names are written out instead). Images and files need
    the app robot (the custom robot cannot send them); without one they are left out with a warning.
    """
    group = next((g for g in config.groups if g.id == group_id and g.platform == PLATFORM), None)
    if group is None and row is not None:
        group = chat_bound_group(config, row)
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
            targets = dingtalk_targets(session, reply.mentions)
            if has_webhook:
                for part in markdown_parts(reply.text, user_ids=targets.user_ids, mobiles=targets.mobiles):
                    body = {"msgtype": "markdown", "markdown": {"title": part.title, "text": part.text}, "at": part.at}
                    drafts.append(
                        Draft(kind="markdown", payload={"group_id": group.id, "body": body},
                              channel=CH_WEBHOOK, robot=webhook_bucket(group.id))
                    )
            else:
                text = reply.text + (f"\n请{'、'.join(targets.names)}留意。" if targets.names else "")
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
        return push_drafts(session, config, group.id, replies, row=group)

    return render
