"""Replies (by the route their message came) and the scheduler's group pushes rendered into WeCom outbox drafts."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from bot.outbox import MERGED_KIND, Draft, split_utf8
from bot.platforms.wecom.cards import reply_card, task_id_for, update_card
from bot.platforms.wecom.context import WeComContext
from bot.platforms.wecom.limits import (
    CHANNEL_PASSIVE, CHANNEL_WEBHOOK, MARKDOWN_MAX_BYTES, NO_TEXT_NOTE, RECEIVED_TEXT, NO_WEBHOOK_NOTE, RESPONSE_MAX_BYTES, TEXT_MAX_BYTES, TRUNCATED_NOTE,
    WS_IMAGE_MAX_BYTES, WS_MAX_IMAGES,
)
from handlers.format import escape_markdown
from handlers.messages import Reply
from models.platform_queries import name_of_wecom_user, wecom_userids
from models.platform_queries import wecom_targets
from models.tables import GroupRow


def webhook_robot(group_id: str) -> str:
    """The outbox rate bucket of a group's webhook (20 messages/minute per robot)."""
    return f"wecom:webhook:{group_id}"


def _reply_block(session: Session, reply: Reply, *, at: bool = True) -> str:
    """A reply as markdown: the mentioned people as `<@userid>` (at=True: the webhook, where it renders),
    else by name in plain text (response_url and long-connection replies, where it is not documented to)."""
    # Escaped before the mentions go in: only the bot's own <@userid> may mention anyone.
    text = escape_markdown(reply.text.replace("\r\n", "\n").strip())
    if not at:
        names = [target.name for target in wecom_targets(session, reply.mentions) if target.name]
        return f"{text}\n请{'、'.join(escape_markdown(n) for n in names)}留意。".strip() if names and text else text
    userids = wecom_userids(session, reply.mentions)
    prefix = " ".join(f"<@{uid}>" for uid in userids)
    return f"{prefix} {text}".strip() if prefix else text


def text_of_replies(session: Session, replies: Iterable[Reply], *, at: bool = True) -> str:
    return "\n\n".join(block for r in replies if (block := _reply_block(session, r, at=at)))


NOTICE_KIND = MERGED_KIND  # an outbox row holding @-notice lines; the webhook delivery merges a group's pending ones


def mention_notice(session: Session, replies: Iterable[Reply], *, sender: str | None = None) -> str:
    """The webhook lines that @ the people a reply names (a new hazard's owner, a rejected fix…): a reply by
    response_url or long connection names them in plain text, and this makes sure their phone rings. The
    sender is left out (they saw the reply), so a reply naming only them needs no notice."""
    lines: list[str] = []
    for reply in replies:
        userids = [uid for uid in dict.fromkeys(wecom_userids(session, reply.mentions)) if uid != sender]
        first = next((line.strip() for line in reply.text.split("\n") if line.strip()), "")
        if userids and first:
            lines.append(" ".join(f"<@{uid}>" for uid in userids) + f" 请留意：{escape_markdown(first)}")
    return "\n".join(lines)


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
    limit = TEXT_MAX_BYTES if kind == "text" else MARKDOWN_MAX_BYTES  # markdown, and notices sent as markdown
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


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a message's replies may go besides its own route: the group's webhook, if it has one."""

    group_id: str | None
    robot: str  # the webhook's rate bucket
    webhook_url: str | None  # a callback's webhook_url, when the group has no configured key
    has_webhook: bool

    def media(self, replies: Iterable[Reply]) -> list[Draft]:
        return webhook_media_drafts(replies, group_id=self.group_id, robot=self.robot, webhook_url=self.webhook_url)

    def text(self, text: str) -> list[Draft]:
        return webhook_text_drafts(text, group_id=self.group_id, robot=self.robot, webhook_url=self.webhook_url)

    def notice(self, text: str) -> list[Draft]:
        """@-notice lines as `notice` rows (markdown when sent), which the webhook delivery merges per robot."""
        return webhook_text_drafts(
            text, group_id=self.group_id, robot=self.robot, webhook_url=self.webhook_url, kind=NOTICE_KIND
        )


def render(ctx: WeComContext, session: Session, replies: list[Reply], route: dict[str, Any]) -> list[Draft]:
    """Turn replies into drafts for the route the message came by (when their `replies` row is delivered)."""
    group = ctx.group(route.get("group_id"))
    key = ctx.webhook_key(group)
    where = _Where(
        group_id=group.id if group else None,
        robot=webhook_robot(group.id) if group else str(route.get("robot", "")),
        webhook_url=route.get("webhook_url") if not key else None,
        has_webhook=bool(key) or bool(route.get("webhook_url")),
    )
    mode = route.get("mode")
    if mode == "webhook":
        text = text_of_replies(session, replies)
        return (where.text(text) if text else []) + where.media(replies)
    text = text_of_replies(session, replies, at=False)
    notice = mention_notice(session, replies, sender=route.get("sender")) if where.has_webhook else ""
    if mode == "ws":
        if route.get("card_event"):  # issue 15: a tap's answer updates the tapped card
            return _card_update_drafts(session, replies, route, where)
        drafts = _long_connection_drafts(text, replies, route, where)
        card = reply_card(replies, task_id=task_id_for(f"{route.get('req_id')}")) if ctx.config.cards.enabled else None
        if card is not None and drafts and drafts[0].kind == "stream":
            drafts[0] = Draft("stream", {**drafts[0].payload, "card": card})
    elif mode == "card":  # a card tap in callback mode: the answer is held for the tap's own callback
        return _passive_card_drafts(session, replies, route, where)
    else:
        drafts = _response_url_drafts(text, replies, route, where)
        if mode == "stream":
            drafts = _held_stream_drafts(ctx, drafts, replies, route)
    return drafts + (where.notice(notice) if notice else [])


def _long_connection_drafts(text: str, replies: list[Reply], route: dict[str, Any], where: _Where) -> list[Draft]:
    """The first part as the stream answer (with up to 10 images inline), the rest pushed; files by webhook."""
    images = [r.image_png for r in replies if r.image_png is not None]
    files = [r for r in replies if r.file_data is not None]
    if files and not where.has_webhook:
        text = f"{text}\n\n{NO_WEBHOOK_NOTE}".strip()
    parts = split_utf8(text, RESPONSE_MAX_BYTES) if text else [""]
    inline = [img for img in images if len(img) <= WS_IMAGE_MAX_BYTES][:WS_MAX_IMAGES]
    first = {"cmd": "aibot_respond_msg", "bot": route.get("bot"), "req_id": route.get("req_id"),
             "content": parts[0] or "（见图）",
             "images": [base64.b64encode(img).decode("ascii") for img in inline]}
    drafts = [Draft("stream", first)]
    for part in parts[1:]:
        drafts.append(Draft("markdown", {"cmd": "aibot_send_msg", "bot": route.get("bot"),
                                         "chatid": route.get("chat_id"), "content": part}))
    if where.has_webhook:
        drafts += where.media(files)
    return drafts


def _tap_answer(session: Session, replies: list[Reply], route: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A tap's answer: the updated card, and the same in words for the group should the card update fail."""
    event = route["card_event"]
    who = name_of_wecom_user(session, str(event.get("user", ""))) or str(event.get("user", ""))
    card = update_card(replies, key=str(event.get("key", "")), who=who, task_id=str(event.get("task_id", "")))
    label = str(event.get("key", "")).split(maxsplit=1)[0] if str(event.get("key", "")).strip() else ""
    return card, f"{who} 点了「{label}」：\n{text_of_replies(session, replies)}"


def _card_update_drafts(session: Session, replies: list[Reply], route: dict[str, Any], where: _Where) -> list[Draft]:
    """The answer to a card tap: `aibot_respond_update_msg` on the tap's req_id (within 5 s); media by webhook."""
    # Should WeCom refuse the update (it drops those after 5 s), the answer goes to the group's webhook instead.
    card, fallback = _tap_answer(session, replies, route)
    drafts = [Draft("card_update", {"cmd": "aibot_respond_update_msg", "bot": route.get("bot"),
                                    "req_id": route.get("req_id"), "card": card, "group_id": where.group_id,
                                    "fallback_text": fallback})]
    if where.has_webhook:
        drafts += where.media(replies)
    return drafts


def _passive_card_drafts(session: Session, replies: list[Reply], route: dict[str, Any], where: _Where) -> list[Draft]:
    """A tap's answer in callback mode: held for the tap's callback to answer with (update_template_card);
    past its 5 s, the same in words by the event's response_url or the group's webhook. Media by webhook."""
    card, fallback = _tap_answer(session, replies, route)
    held = Draft("card_update", {"card": card, "content": fallback, "url": route.get("response_url"),
                                 "group_id": where.group_id, "hold_until": route.get("hold_until")},
                 channel=CHANNEL_PASSIVE, robot=str(route.get("robot", "")))
    return [held] + (where.media(replies) if where.has_webhook else [])


def _held_stream_drafts(ctx: WeComContext, drafts: list[Draft], replies: list[Reply], route: dict[str, Any]) -> list[Draft]:
    """The response_url answer held for the stream's refresh instead (with the card, if the reply has buttons);
    what goes by webhook still does. Past the refresh window it goes by the response_url after all."""
    first = drafts[0] if drafts and drafts[0].channel is None else None
    payload: dict[str, object] = dict(first.payload) if first is not None else {"group_id": route.get("group_id")}
    if not str(payload.get("content") or "").strip():
        payload["content"] = NO_TEXT_NOTE if any(r.image_png or r.file_data for r in replies) else RECEIVED_TEXT
    payload.update(url=route.get("response_url"), stream_id=route.get("stream_id"), hold_until=route.get("hold_until"))
    card = reply_card(replies, task_id=task_id_for(str(route.get("stream_id")))) if ctx.config.cards.enabled else None
    if card is not None:
        payload["card"] = card
    held = Draft("stream", payload, channel=CHANNEL_PASSIVE, robot=str(route.get("robot", "")))
    return [held] + (drafts[1:] if first is not None else drafts)


def _response_url_drafts(text: str, replies: list[Reply], route: dict[str, Any], where: _Where) -> list[Draft]:
    """response_url: single use, markdown only; what does not fit or is not text goes by webhook."""
    has_media = any(r.image_png is not None or r.file_data is not None for r in replies)
    if has_media and not where.has_webhook:
        text = f"{text}\n\n{NO_WEBHOOK_NOTE}".strip()
    parts = split_utf8(text, RESPONSE_MAX_BYTES) if text else []
    drafts: list[Draft] = []
    if parts:
        first_text = parts[0] if (where.has_webhook or len(parts) == 1) else _truncate(text, RESPONSE_MAX_BYTES)
        drafts.append(Draft("markdown", {"url": route.get("response_url"), "content": first_text,
                                         "group_id": where.group_id}))
        rest = "\n".join(parts[1:])
        if where.has_webhook and rest:
            drafts += where.text(rest)
    if where.has_webhook:
        drafts += where.media(replies)
    return drafts
