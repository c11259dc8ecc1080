"""Parsing a verified WeCom callback (AI bot JSON, group robot XML/JSON) into an `Inbound` and its reply route."""

from __future__ import annotations

import hashlib
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from bot.platforms.wecom.context import WeComContext
from bot.platforms.wecom.crypto import CallbackCredentials
from bot.platforms.wecom.limits import (
    CARD_EVENT_WINDOW, CHANNEL_PASSIVE, CHANNEL_RESPONSE_URL, CHANNEL_WEBHOOK, CHANNEL_WS, STREAM_REFRESH_WINDOW,
)
from bot.platforms.wecom.render import webhook_robot
from bot.untrusted import MalformedPayload, load_json
from handlers.messages import Inbound

log = logging.getLogger(__name__)


class CallbackRejected(Exception):
    """A callback that must be refused with an HTTP status (nothing stored)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason



_LEADING_MENTIONS = re.compile(r"^(?:\s*@\S+)+\s*")
_NUMBER = re.compile(r"#\s*\d+")


@dataclass(frozen=True, slots=True)
class MediaRef:
    """An encrypted photo to download after the acknowledgement (5 minutes valid)."""

    url: str
    aeskey: str | None = None  # long-connection messages carry their own key; HTTP mode uses the bot's


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A user message from a WeCom callback, before it becomes an `Inbound`."""

    msg_id: str
    chat_id: str
    chat_type: str
    user_id: str
    text: str
    sender_name: str = ""
    media: tuple[MediaRef, ...] = ()
    response_url: str | None = None
    webhook_url: str | None = None
    card_task_id: str | None = None  # a tap on one of our cards (template_card_event); text is the button's key


@dataclass(frozen=True, slots=True)
class StreamRefresh:
    """WeCom asking again for an unfinished stream answer (`msgtype: stream`)."""

    stream_id: str


def stream_id_for(bot: str | None, msg_id: str) -> str:
    """The stream a message's callback is answered with: the same for WeCom's retries of that message."""
    return "sb" + hashlib.sha1(f"{bot}:{msg_id}".encode("utf-8")).hexdigest()[:30]


def stream_robot(stream_id: str) -> str:
    """The outbox robot of the reply held for a stream (one per stream: the callback finds it by this)."""
    return f"wecom:stream:{stream_id}"


def card_robot(msg_id: str) -> str:
    """The outbox robot of a card tap's answer, held for that tap's callback."""
    return "wecom:card:" + hashlib.sha1(msg_id.encode("utf-8")).hexdigest()[:32]


def parse_stream_refresh(body: dict[str, Any]) -> StreamRefresh | None:
    stream = body.get("stream")
    if body.get("msgtype") != "stream" or not isinstance(stream, dict):
        return None
    stream_id = stream.get("id")
    return StreamRefresh(stream_id) if isinstance(stream_id, str) and 0 < len(stream_id) <= 128 else None


def strip_mentions(text: str) -> str:
    """Remove the leading @bot mention(s) WeCom puts before a group message."""
    return _LEADING_MENTIONS.sub("", text or "", count=1).strip()


def _text_of(item: dict[str, Any]) -> str:
    text = item.get("text")
    return str(text.get("content", "")) if isinstance(text, dict) else ""


def _images_of(item: dict[str, Any]) -> list[MediaRef]:
    image = item.get("image")
    if isinstance(image, dict) and image.get("url"):
        return [MediaRef(str(image["url"]), image.get("aeskey"))]
    return []


def _msg_items(mixed: Any) -> list[dict[str, Any]]:
    """The dict items of a `mixed.msg_item` list; anything else in their place counts as none."""
    items = mixed.get("msg_item") if isinstance(mixed, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def parse_aibot_message(body: dict[str, Any]) -> ParsedMessage | None:
    """Translate a decrypted 智能机器人 message (text, mixed, quote, image, voice); None for events."""
    msgtype = body.get("msgtype")
    msg_id = body.get("msgid")
    user_id = (body.get("from") or {}).get("userid") if isinstance(body.get("from"), dict) else None
    if not msg_id or not user_id or msgtype in (None, "event", "stream"):
        return None
    texts: list[str] = []
    media: list[MediaRef] = []
    if msgtype == "text":
        texts.append(_text_of(body))
    elif msgtype == "mixed":
        mixed = body.get("mixed") or {}
        for item in _msg_items(mixed):
            if item.get("msgtype") == "text":
                texts.append(_text_of(item))
            elif item.get("msgtype") == "image":
                media += _images_of(item)
    elif msgtype == "image":
        media += _images_of(body)
    elif msgtype == "voice":
        voice = body.get("voice") or {}
        texts.append(str(voice.get("content", "")) if isinstance(voice, dict) else "")
    else:
        return None
    text = strip_mentions("\n".join(t for t in texts if t))
    quote = body.get("quote")
    if isinstance(quote, dict):
        quoted = _text_of(quote)
        # Words that quote an earlier photo (the only way a photo reaches the bot in a group besides `mixed`)
        # bring that photo along when the quote carries it.
        media += _images_of(quote)
        if quote.get("msgtype") == "mixed" and isinstance(quote.get("mixed"), dict):
            quoted = "\n".join(_text_of(i) for i in _msg_items(quote["mixed"]))
            media += [ref for item in _msg_items(quote["mixed"]) for ref in _images_of(item)]
        # "整改" quoting the bot's "已登记隐患 #12" means #12: carry the number over when none was typed.
        number = _NUMBER.search(quoted)
        if number and not _NUMBER.search(text):
            text = f"{text} {number.group(0)}".strip()
    chat_type = str(body.get("chattype") or "single")
    chat_id = str(body.get("chatid") or f"single:{user_id}")
    return ParsedMessage(
        msg_id=str(msg_id), chat_id=chat_id, chat_type=chat_type, user_id=str(user_id), text=text,
        media=tuple(media), response_url=body.get("response_url") or None,
    )


def parse_card_event(body: dict[str, Any]) -> ParsedMessage | None:
    """A tap on a card's button (`template_card_event`) as a message whose text is the button's key (issue 15).

    Its id is the event's own msgid: WeCom repeats it when it retries the callback, a second tap has another."""
    event = body.get("event")
    sender = body.get("from")
    if body.get("msgtype") != "event" or not isinstance(event, dict) or not isinstance(sender, dict):
        return None
    if event.get("eventtype") != "template_card_event":
        return None
    detail = event.get("template_card_event")
    detail = detail if isinstance(detail, dict) else event  # the fields nested under the event type, or flat
    key, task_id, msg_id, user_id = detail.get("event_key"), detail.get("task_id"), body.get("msgid"), sender.get("userid")
    if not all(isinstance(v, str) and v for v in (key, task_id, msg_id, user_id)):
        return None
    chat_type = str(body.get("chattype") or "single")
    return ParsedMessage(
        msg_id=f"card:{msg_id}", chat_id=str(body.get("chatid") or f"single:{user_id}"), chat_type=chat_type,
        user_id=str(user_id), text=str(key).strip()[:200], card_task_id=str(task_id),
        response_url=body.get("response_url") if isinstance(body.get("response_url"), str) else None,
    )


def _xml_text(node: ET.Element | None, path: str) -> str:
    found = node.find(path) if node is not None else None
    return (found.text or "").strip() if found is not None and found.text else ""


def parse_group_robot_xml(xml_text: str) -> ParsedMessage | None:
    """Translate a decrypted group-robot callback (XML); None for events and unsupported types."""
    root = ET.fromstring(xml_text)
    msgtype = _xml_text(root, "MsgType")
    msg_id = _xml_text(root, "MsgId")
    user_id = _xml_text(root, "From/UserId")
    if not msg_id or not user_id:
        return None
    texts: list[str] = []
    media: list[MediaRef] = []
    if msgtype == "text":
        texts.append(_xml_text(root, "Text/Content"))
    elif msgtype == "mixed":
        for item in root.findall("MixedMessage/MsgItem"):
            if _xml_text(item, "MsgType") == "text":
                texts.append(_xml_text(item, "Text/Content"))
            elif _xml_text(item, "MsgType") == "image" and _xml_text(item, "Image/ImageUrl"):
                media.append(MediaRef(_xml_text(item, "Image/ImageUrl")))
    elif msgtype == "image" and _xml_text(root, "Image/ImageUrl"):
        media.append(MediaRef(_xml_text(root, "Image/ImageUrl")))
    else:
        return None
    chat_id = _xml_text(root, "ChatId") or f"single:{user_id}"
    return ParsedMessage(
        msg_id=msg_id, chat_id=chat_id, chat_type=_xml_text(root, "ChatType") or "group", user_id=user_id,
        text=strip_mentions("\n".join(t for t in texts if t)), sender_name=_xml_text(root, "From/Name"),
        media=tuple(media), webhook_url=_xml_text(root, "WebhookUrl") or None,
    )



def group_json(data: dict[str, Any]) -> ParsedMessage | None:
    """A group-robot callback in JSON format (`?robot_callback_format=json`)."""
    sender = data.get("from") or {}
    if data.get("msgtype") != "text" or not isinstance(sender, dict) or not sender.get("userid"):
        return None
    return ParsedMessage(
        msg_id=str(data["msgid"]), chat_id=str(data.get("chatid") or f"single:{sender['userid']}"),
        chat_type=str(data.get("chattype") or "group"), user_id=str(sender["userid"]),
        text=strip_mentions(_text_of(data)), sender_name=str(sender.get("name") or ""),
        webhook_url=str(data.get("webhook_url") or "") or None,
    )



def envelope(body: bytes) -> tuple[str, bool]:
    """The `encrypt` field of a JSON or XML callback body; raises CallbackRejected(400)."""
    stripped = body.lstrip()
    if stripped.startswith(b"<"):
        try:
            root = ET.fromstring(stripped.decode("utf-8"))
        except (ET.ParseError, UnicodeDecodeError):
            raise CallbackRejected(400, "broken XML") from None
        encrypt = _xml_text(root, "Encrypt")
        if not encrypt:
            raise CallbackRejected(400, "no Encrypt element")
        return encrypt, True
    try:
        data = load_json(body)
    except MalformedPayload:
        raise CallbackRejected(400, "broken JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("encrypt"), str) or not data["encrypt"]:
        raise CallbackRejected(400, "no encrypt field")
    return data["encrypt"], False


def parse_plain(plain: str) -> ParsedMessage | StreamRefresh | None:
    """The user message in a decrypted callback (AI bot JSON, group robot XML or JSON), a tap on a card
    (a message whose text is the button's key), or a stream refresh; None for other events."""
    text = plain.strip()
    try:
        if text.startswith("<"):
            return parse_group_robot_xml(text)
        data = load_json(text)
    except (ET.ParseError, ValueError):  # MalformedPayload is a ValueError
        raise CallbackRejected(400, "decrypted message is not valid JSON/XML") from None
    if not isinstance(data, dict):
        raise CallbackRejected(400, "decrypted message is not an object")
    try:
        if "webhook_url" in data and "msgid" in data:  # group-robot callback in JSON format
            return group_json(data)
        if data.get("msgtype") == "stream":
            return parse_stream_refresh(data)
        if data.get("msgtype") == "event":
            return parse_card_event(data)
        return parse_aibot_message(data)
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
        # A verified sender with fields of the wrong shape: refuse it as input, not as our failure.
        raise CallbackRejected(400, f"unreadable message ({type(exc).__name__})") from None


def to_inbound(
    ctx: WeComContext, parsed: ParsedMessage, creds: CallbackCredentials | None, *, ws_bot: str | None = None,
    req_id: str | None = None,
) -> tuple[Inbound, dict[str, Any]]:
    """The internal message and its route: where replies go, and which photos to fetch with which key."""
    group = ctx.group_for_chat(parsed.chat_id)
    if group is None and creds is not None and creds.group:
        group = ctx.group(creds.group)
    if group is None and parsed.chat_type == "group":
        # Admins find a new group's chatid here (WeCom shows it nowhere in its UI).
        log.info("wecom: message from chat %s, which is not in the config", parsed.chat_id)
    # sender: the userid a webhook @-notice leaves out (they saw the reply; bot/platforms/wecom/render.py)
    route: dict[str, Any] = {"chat_id": parsed.chat_id, "group_id": group.id if group else None,
                             "chat_type": parsed.chat_type, "sender": parsed.user_id}
    bot_id = ws_bot or (creds.bot if creds else None)
    if ws_bot is not None:
        route.update(mode="ws", channel=CHANNEL_WS, robot=f"wecom:aibot:{ws_bot}:{parsed.chat_id}",
                     bot=ws_bot, req_id=req_id, chat_type=parsed.chat_type)
    elif creds is not None and creds.bot and parsed.card_task_id is not None:
        # A tap on a card in callback mode: the answer is held for the tap's own callback (5 s), then
        # goes by response_url if the event had one, else by the group's webhook.
        route.update(mode="card", channel=CHANNEL_PASSIVE, robot=card_robot(parsed.msg_id), bot=bot_id,
                     hold_until=(ctx.now() + CARD_EVENT_WINDOW).isoformat())
        if parsed.response_url and ctx.allowed(parsed.response_url, "response_url"):
            route["response_url"] = parsed.response_url
    elif creds is not None and creds.bot and ctx.config.cards.enabled:
        # Cards in callback mode (issue 15): the callback is answered with an unfinished stream, and the
        # reply is held for WeCom's refresh of it; response_url only when no refresh came in time.
        stream_id = stream_id_for(bot_id, parsed.msg_id)
        route.update(mode="stream", channel=CHANNEL_PASSIVE, robot=stream_robot(stream_id), bot=bot_id,
                     stream_id=stream_id, hold_until=(ctx.now() + STREAM_REFRESH_WINDOW).isoformat())
        if parsed.response_url and ctx.allowed(parsed.response_url, "response_url"):
            route["response_url"] = parsed.response_url
    elif parsed.response_url and ctx.allowed(parsed.response_url, "response_url"):
        route.update(mode="response_url", channel=CHANNEL_RESPONSE_URL,
                     robot=f"wecom:aibot:{bot_id}:{parsed.chat_id}", bot=bot_id, response_url=parsed.response_url)
    else:
        route.update(mode="webhook", channel=CHANNEL_WEBHOOK,
                     robot=webhook_robot(group.id) if group else f"wecom:webhook:chat:{parsed.chat_id}")
        if parsed.webhook_url and not ctx.webhook_key(group):
            route["webhook_url"] = parsed.webhook_url
    if parsed.card_task_id is not None:  # a card tap: its answer updates that card (bot/platforms/wecom/cards.py)
        route["card_event"] = {"task_id": parsed.card_task_id, "key": parsed.text, "user": parsed.user_id}
    msg = Inbound(
        platform="wecom", msg_id=parsed.msg_id, chat_id=parsed.chat_id, sender_id=parsed.user_id,
        text=parsed.text, received_at=ctx.now(), sender_name=parsed.sender_name or parsed.user_id,
    )
    if parsed.media:
        # The photo URLs stay valid for 5 minutes; the bot's own key is looked up again at fetch time,
        # so no secret is stored with the message.
        route["media"] = [{"url": ref.url, "aeskey": ref.aeskey} for ref in parsed.media]
        route["credential"] = creds.id if creds else None
    return msg, route
