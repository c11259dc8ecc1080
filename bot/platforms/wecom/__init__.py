"""WeCom (企业微信) platform: 智能机器人 callbacks and long connection, group-robot callbacks, outbox deliveries.

Receiving
- `/wecom/callback` (and `/wecom/callback/{credential_id}`): the 智能机器人 API-mode callback (encrypted
  JSON) and the group-robot callback (encrypted XML, a beta some tenants have). GET answers the URL
  verification; POST is verified (timestamp window, msg_signature, replayed signature+nonce),
  decrypted, recorded under its msgid and acknowledged with an empty 200 before the handler runs.
  With `[cards] enabled`, an AI bot's message is acknowledged with an encrypted unfinished stream instead;
  the stream's refreshes are answered with the held reply (and its card), a card tap with the updated card.
- Long connection (WebSocket) for bots with `mode = "websocket"`: one `WsConnection` per bot.

Sending (outbox channels of `WeComPlatform.deliveries`, given to the OutboxSender at construction)
- `wecom_response_url`: the single-use `response_url` of an AI-bot callback (markdown).
- `wecom_webhook`: a group's 消息推送 webhook (text / markdown / image / file).
- `wecom_ws`: `aibot_respond_msg` / `aibot_send_msg` over the long connection.
- `wecom_passive`: a reply held for a callback's passive answer (stream refresh, card tap); when no
  callback took it in time, by the response_url (else the group's webhook).

The scheduler's pushes go through `bot.pushes.Pushes`, which renders them with `push_drafts()`.

Modules: limits (numbers and channel names), crypto, context (config lookups), inbound (parse),
callbacks (HTTP routes), longconn (WebSocket), media, render, api (webhook calls), deliveries,
platform (`WeComPlatform` assembling them). This package re-exports what other modules and tests use.
"""

from bot.logging_setup import RedactingFilter, redact
from bot.platforms.wecom.crypto import (
    CallbackCredentials, ReplayGuard, aes_key, decrypt_media, msg_signature, timestamp_ok,
)
from bot.platforms.wecom.inbound import (
    CallbackRejected, MediaRef, ParsedMessage, parse_aibot_message, parse_group_robot_xml, strip_mentions,
)
from bot.platforms.wecom.limits import (
    CHANNEL_PASSIVE, CHANNEL_RESPONSE_URL, CHANNEL_WEBHOOK, CHANNEL_WS, FILE_MAX_BYTES, IMAGE_MAX_BYTES, MARKDOWN_MAX_BYTES,
    MAX_BODY_BYTES, NO_WEBHOOK_NOTE, RESPONSE_MAX_BYTES, TEXT_MAX_BYTES, TIMESTAMP_WINDOW_SECONDS,
)
from bot.platforms.wecom.longconn import WsConnection
from bot.platforms.wecom.platform import WeComPlatform
from bot.platforms.wecom.render import push_drafts, webhook_robot

WeComAdapter = WeComPlatform  # the name before the package split

__all__ = [
    "CHANNEL_PASSIVE", "CHANNEL_RESPONSE_URL", "CHANNEL_WEBHOOK", "CHANNEL_WS", "FILE_MAX_BYTES", "IMAGE_MAX_BYTES", "MARKDOWN_MAX_BYTES",
    "MAX_BODY_BYTES", "NO_WEBHOOK_NOTE", "RESPONSE_MAX_BYTES", "TEXT_MAX_BYTES", "TIMESTAMP_WINDOW_SECONDS",
    "CallbackCredentials", "CallbackRejected", "MediaRef", "ParsedMessage", "RedactingFilter", "ReplayGuard",
    "WeComAdapter", "WeComPlatform", "WsConnection", "aes_key", "decrypt_media", "msg_signature",
    "parse_aibot_message", "parse_group_robot_xml", "push_drafts", "redact", "strip_mentions", "timestamp_ok",
    "webhook_robot",
]
