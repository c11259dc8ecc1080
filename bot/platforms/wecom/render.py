"""Rendering replies into WeCom outbox drafts: by the route a message came (webhook, response_url, long
connection), and the scheduler's group pushes."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

from sqlmodel import Session

from bot.outbox import Draft, split_utf8
from bot.platforms.wecom.context import WeComContext
from bot.platforms.wecom.limits import (
    CHANNEL_WEBHOOK, MARKDOWN_MAX_BYTES, NO_WEBHOOK_NOTE, RESPONSE_MAX_BYTES, TEXT_MAX_BYTES, TRUNCATED_NOTE,
    WS_IMAGE_MAX_BYTES, WS_MAX_IMAGES,
)
from handlers.format import escape_markdown
from handlers.messages import Reply
from models.platform_queries import wecom_userids
from models.tables import GroupRow


def webhook_robot(group_id: str) -> str:
    """The outbox rate bucket of a group's webhook (20 messages/minute per robot)."""
    return f"wecom:webhook:{group_id}"


def _reply_block(session: Session, reply: Reply) -> str:
    userids = wecom_userids(session, reply.mentions)
    # Escaped before the mentions go in: only the bot's own <@userid> may mention anyone.
    text = escape_markdown(reply.text.replace("\r\n", "\n").strip())
    prefix = " ".join(f"<@{uid}>" for uid in userids)
    return f"{prefix} {text}".strip() if prefix else text


def text_of_replies(session: Session, replies: Iterable[Reply]) -> str:
    return "\n\n".join(block for r in replies if (block := _reply_block(session, r)))


def _truncate(text: str, max_bytes: int) -> str:
    """The first part of text within max_bytes, marked as truncated when anything was cut."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    room = max_bytes - len(TRUNCATED_NOTE.encode("utf-8"))
    return split_utf8(text, room)[0] + TRUNCATED_NOTE


def webhook_media_drafts(
    replies: Iterable[Reply], *, group_id: str | None, robot: str, webhook_url: str | None = None
) -> list[Draft]:
    drafts: list[Draft] = []
    base: dict[str, object] = {"group_id": group_id} if group_id else {}
    if webhook_url:
        base["webhook_url"] = webhook_url
    for reply in replies:
        if reply.image_png is not None:
            drafts.append(Draft("image", dict(base), blob=reply.image_png, channel=CHANNEL_WEBHOOK, robot=robot))
        if reply.file_data is not None:
            payload = {**base, "filename": reply.file_name or "file.bin"}
            drafts.append(Draft("file", payload, blob=reply.file_data, channel=CHANNEL_WEBHOOK, robot=robot))
    return drafts


def webhook_text_drafts(
    text: str, *, group_id: str | None, robot: str, webhook_url: str | None = None, kind: str = "markdown"
) -> list[Draft]:
    limit = MARKDOWN_MAX_BYTES if kind == "markdown" else TEXT_MAX_BYTES
    base: dict[str, object] = {"group_id": group_id} if group_id else {}
    if webhook_url:
        base["webhook_url"] = webhook_url
    return [
        Draft(kind, {**base, "content": part}, channel=CHANNEL_WEBHOOK, robot=robot)
        for part in split_utf8(text, limit) if part.strip()
    ]


def push_drafts(session: Session, group: GroupRow, replies: Sequence[Reply], *, kind: str = "markdown") -> list[Draft]:
    """Drafts that push replies to a WeCom group through its webhook (for the scheduler).

    Text becomes markdown (or `kind="text"`) split at the byte limit without cutting a character or
    a line, with `<@userid>` for each mentioned person; images and files become their own drafts.
    Given to `bot.pushes.Pushes` (bot/services.py), through which the scheduler stores pushes.
    """
    robot = webhook_robot(group.id)
    text = text_of_replies(session, replies)
    drafts = webhook_text_drafts(text, group_id=group.id, robot=robot, kind=kind) if text else []
    return drafts + webhook_media_drafts(replies, group_id=group.id, robot=robot)


def render(ctx: WeComContext, session: Session, replies: list[Reply], route: dict[str, Any]) -> list[Draft]:
    """Turn replies into drafts for the route the message came by (the Engine's renderer of "wecom")."""
    group = ctx.group(route.get("group_id"))
    has_webhook = bool(ctx.webhook_key(group)) or bool(route.get("webhook_url"))
    group_id = group.id if group else None
    robot = webhook_robot(group.id) if group else str(route.get("robot", ""))
    webhook_url = route.get("webhook_url") if not ctx.webhook_key(group) else None
    mode = route.get("mode")
    text = text_of_replies(session, replies)
    has_media = any(r.image_png is not None or r.file_data is not None for r in replies)

    if mode == "webhook":
        return (webhook_text_drafts(text, group_id=group_id, robot=robot, webhook_url=webhook_url) if text else []) + (
            webhook_media_drafts(replies, group_id=group_id, robot=robot, webhook_url=webhook_url)
        )

    drafts: list[Draft] = []
    if mode == "ws":
        images = [r.image_png for r in replies if r.image_png is not None]
        files = [r for r in replies if r.file_data is not None]
        if files and not has_webhook:
            text = f"{text}\n\n{NO_WEBHOOK_NOTE}".strip()
        parts = split_utf8(text, RESPONSE_MAX_BYTES) if text else [""]
        inline = [img for img in images if len(img) <= WS_IMAGE_MAX_BYTES][:WS_MAX_IMAGES]
        first = {"cmd": "aibot_respond_msg", "bot": route.get("bot"), "req_id": route.get("req_id"),
                 "content": parts[0] or "（见图）",
                 "images": [base64.b64encode(img).decode("ascii") for img in inline]}
        drafts.append(Draft("stream", first))
        for part in parts[1:]:
            drafts.append(Draft("markdown", {"cmd": "aibot_send_msg", "bot": route.get("bot"),
                                             "chatid": route.get("chat_id"), "content": part}))
        if has_webhook:
            drafts += webhook_media_drafts(files, group_id=group_id, robot=robot, webhook_url=webhook_url)
        return drafts

    # response_url: single use, markdown only; what does not fit or is not text goes by webhook.
    if has_media and not has_webhook:
        text = f"{text}\n\n{NO_WEBHOOK_NOTE}".strip()
    parts = split_utf8(text, RESPONSE_MAX_BYTES) if text else []
    if parts:
        first_text = parts[0] if (has_webhook or len(parts) == 1) else _truncate(text, RESPONSE_MAX_BYTES)
        drafts.append(Draft("markdown", {"url": route.get("response_url"), "content": first_text,
                                         "group_id": group_id}))
        if has_webhook:
            rest = "\n".join(parts[1:])
            if rest:
                drafts += webhook_text_drafts(rest, group_id=group_id, robot=robot, webhook_url=webhook_url)
    if has_webhook:
        drafts += webhook_media_drafts(replies, group_id=group_id, robot=robot, webhook_url=webhook_url)
    return drafts
