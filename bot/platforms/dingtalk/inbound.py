"""A verified DingTalk robot message (HTTP callback or Stream) parsed into an `Inbound` + route, and recorded."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.config import DingTalkRobot
from bot.platforms.base import Download, Runtime
from bot.platforms.dingtalk.context import DingTalkContext
from bot.platforms.dingtalk.cards import parse_card_tap
from bot.platforms.dingtalk.limits import CH_OPENAPI, CH_SESSION, PLATFORM
from bot.platforms.dingtalk.render import robot_bucket
from bot.untrusted import MalformedPayload
from handlers.messages import Inbound

log = logging.getLogger(__name__)

# Runs a job after the acknowledgement: `schedule(job, *args)` (a BackgroundTasks' add_task, a task group's start).
Schedule = Callable[..., Any]
# A message's picture download, from its route (None: it has no pictures); see media.download_of.
Photos = Callable[[dict[str, Any]], Download | None]


@dataclass(frozen=True, slots=True)
class RobotMessage:
    """The fields of a robot callback (HTTP or Stream) the bot uses."""

    msg_id: str
    msgtype: str
    conversation_id: str
    conversation_type: str
    sender_id: str  # senderStaffId (the userid), else the encrypted senderId
    sender_nick: str
    text: str
    download_codes: tuple[str, ...]
    session_webhook: str
    session_expires_ms: int
    created_at_ms: int | None
    robot_code: str


def as_int(value: Any) -> int | None:
    """An int from a JSON value, or None when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON 1e999 is float("inf")
        return None


def _replied_picture_codes(text: Any) -> list[str]:
    """The download codes of the photo a text reply quotes (`text.repliedMsg`), when the payload gives them."""
    replied = text.get("repliedMsg") if isinstance(text, Mapping) else None
    content = replied.get("content") if isinstance(replied, Mapping) else None
    if not isinstance(content, Mapping):
        return []
    rich = content.get("richText")
    items: list[Any] = rich if isinstance(rich, list) else [content]
    codes = (
        item.get("downloadCode") or item.get("pictureDownloadCode") for item in items if isinstance(item, Mapping)
    )
    return [str(code) for code in codes if code]


def parse_robot_message(data: Mapping[str, Any]) -> RobotMessage | None:
    """Read a robot message (text / picture / richText; audio by its recognition); None if unusable."""
    msg_id = str(data.get("msgId") or "")
    conversation_id = str(data.get("conversationId") or "")
    sender = str(data.get("senderStaffId") or data.get("senderId") or "")
    if not msg_id or not conversation_id or not sender:
        return None
    msgtype = str(data.get("msgtype") or "")
    found = data.get("content")
    content: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    texts: list[str] = []
    codes: list[str] = []
    if msgtype == "text":
        text = data.get("text")
        texts.append(str(text.get("content") or "") if isinstance(text, Mapping) else "")
        codes += _replied_picture_codes(text)
    elif msgtype == "picture":
        code = content.get("downloadCode") or content.get("pictureDownloadCode")
        if code:
            codes.append(str(code))
    elif msgtype == "richText":
        items = content.get("richText")
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, Mapping):
                continue
            if "text" in item:
                texts.append(str(item["text"]))
            code = item.get("downloadCode") or item.get("pictureDownloadCode")
            if item.get("type") == "picture" and code:
                codes.append(str(code))
    elif msgtype == "audio":
        texts.append(str(content.get("recognition") or ""))
    else:
        return None  # file / video / unknownMsgType never carry a report
    text = "\n".join(t.strip() for t in texts if t.strip())
    if not text and not codes:
        return None
    return RobotMessage(
        msg_id=msg_id,
        msgtype=msgtype,
        conversation_id=conversation_id,
        conversation_type=str(data.get("conversationType") or ""),
        sender_id=sender,
        sender_nick=str(data.get("senderNick") or ""),
        text=text,
        download_codes=tuple(codes),
        session_webhook=str(data.get("sessionWebhook") or ""),
        session_expires_ms=as_int(data.get("sessionWebhookExpiredTime")) or 0,
        created_at_ms=as_int(data.get("createAt")),
        robot_code=str(data.get("robotCode") or ""),
    )


def to_inbound(ctx: DingTalkContext, message: RobotMessage, robot: DingTalkRobot) -> tuple[Inbound, dict[str, Any]]:
    """The internal message and its reply route (session webhook, bucket, conversation)."""
    # The bot's clock, as for WeCom (whose callbacks carry no time): one clock decides "today" and overdue.
    received = ctx.now()
    group = ctx.group_by_chat(message.conversation_id)
    session_webhook = message.session_webhook
    if session_webhook and not ctx.urls.allows(session_webhook):
        # Never call a URL a callback names unless it is DingTalk's: the reply goes by the OpenAPI.
        log.warning("dingtalk robot %s: message %s has a sessionWebhook on a host not in "
                    "dingtalk.callback_url_hosts; replying by the OpenAPI instead", robot.id, message.msg_id)
        session_webhook = ""
    inbound = Inbound(
        platform=PLATFORM,
        msg_id=message.msg_id,
        chat_id=message.conversation_id,
        sender_id=message.sender_id,
        text=message.text,
        received_at=received,
        sender_name=message.sender_nick,
    )
    route: dict[str, Any] = {
        "channel": CH_SESSION,
        "robot": robot_bucket(robot.id, group.id if group else None, message.conversation_id),
        "robot_id": robot.id,
        "group_id": group.id if group else None,
        "conversation_id": message.conversation_id,
        "session_webhook": session_webhook,
        "session_expires": message.session_expires_ms,
        "sender": message.sender_id,
        "chat_type": "group" if message.conversation_type == "2" else "single",  # for unknown chats
    }
    if message.download_codes:
        route["download_codes"] = list(message.download_codes)
    return inbound, route


async def accept(
    ctx: DingTalkContext, runtime: Runtime, data: Mapping[str, Any], robot: DingTalkRobot, schedule: Schedule,
    photos: Photos,
) -> int | None:
    """Record a robot message and schedule its work (its pictures downloaded first, after the ack); None when
    ignored or a platform retry.

    Raises MalformedPayload when the message's fields cannot be read (nothing is stored then).
    """
    try:
        message = parse_robot_message(data)
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
        # A verified sender with fields of the wrong shape: refuse it as input, not as our failure.
        raise MalformedPayload(f"unreadable robot message ({type(exc).__name__})") from None
    if message is None:
        log.info("dingtalk robot %s: ignored a message without text or picture", robot.id)
        return None
    inbound, route = to_inbound(ctx, message, robot)
    if route["group_id"] is None and message.conversation_type == "2":
        # How an admin finds the chat_id to put into [[groups]] (a conversationId is not a secret).
        log.warning("dingtalk robot %s: message from a group not in the config: chat_id = %r (%s)",
                    robot.id, message.conversation_id, data.get("conversationTitle", ""))
    inbound_id = await runtime.record(inbound, route)
    if inbound_id is None:
        return None
    runtime.after_ack(inbound_id, schedule, runtime.work, photos(route))
    return inbound_id


async def accept_card_tap(
    ctx: DingTalkContext, runtime: Runtime, data: Mapping[str, Any], robot: DingTalkRobot, schedule: Schedule,
    message_id: str,
) -> int | None:
    """Record a tap on one of our cards as the command its button stands for (issue 15); None when ignored
    or redelivered. Its id is the Stream messageId, which a redelivery repeats and a second tap does not."""
    tap = parse_card_tap(data)
    if tap is None or not message_id:
        log.info("dingtalk robot %s: ignored a card callback that is not a button tap", robot.id)
        return None
    track, user, conversation, command = tap
    group = ctx.group_by_chat(conversation)
    inbound = Inbound(
        platform=PLATFORM, msg_id=f"card:{message_id}", chat_id=conversation, sender_id=user, text=command,
        received_at=ctx.now(), sender_name=user,
    )
    route: dict[str, Any] = {
        "channel": CH_OPENAPI,
        "robot": robot_bucket(robot.id, group.id if group else None, conversation),
        "robot_id": robot.id, "group_id": group.id if group else None, "conversation_id": conversation,
        "sender": user, "chat_type": "group",
        "card_event": {"out_track_id": track, "key": command, "user": user},
    }
    inbound_id = await runtime.record(inbound, route)
    if inbound_id is not None:
        runtime.after_ack(inbound_id, schedule, runtime.work)
    return inbound_id
