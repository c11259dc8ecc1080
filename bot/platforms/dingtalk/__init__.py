"""DingTalk (钉钉) platform.

Receive: an enterprise-internal app robot, either by HTTP callback at /dingtalk/callback (headers
`timestamp` + `sign` = Base64(HmacSHA256(appSecret, f"{timestamp}\\n{appSecret}")), 1-hour window)
or by Stream mode (the `dingtalk-stream` SDK's outbound WebSocket, no public address).

Send (all through the outbox):
  dingtalk_session_webhook  replies to the callback's sessionWebhook (markdown + at.atUserIds);
  dingtalk_webhook          proactive pushes through a group's custom robot (signed URL, @ works);
  dingtalk_openapi          images / files (media/upload, then robot groupMessages/send) and
                            markdown pushes by the app robot (no @: the OpenAPI does not support it).

Modules: limits, signing, context (config lookups, app credentials), inbound (parse + record), callbacks
(HTTP route), stream (Stream mode), api (OpenAPI client), media, render, deliveries, platform
(`DingTalkPlatform` assembling them). This package re-exports what other modules and tests use.
"""

from bot.logging_setup import redact
from bot.outbox import DeliveryResult
from bot.platforms.dingtalk.api import DingTalkApi, DingTalkError
from bot.platforms.dingtalk.context import AppCredentials, DingTalkContext, callback_urls
from bot.platforms.dingtalk.deliveries import CustomWebhookDelivery, OpenApiDelivery, SessionWebhookDelivery
from bot.platforms.dingtalk.inbound import RobotMessage, parse_robot_message
from bot.platforms.dingtalk.limits import (
    CALLBACK_PATH, CH_OPENAPI, CH_SESSION, CH_WEBHOOK, MARKDOWN_MAX_BYTES, MAX_CALLBACK_BYTES, PLATFORM,
    SIGN_WINDOW_MS, STREAM_TOPIC,
)
from bot.platforms.dingtalk.platform import DingTalkPlatform
from bot.platforms.dingtalk.render import (
    MarkdownPart, markdown_parts, push_drafts, push_renderer, render_replies, robot_bucket, webhook_bucket,
)
from bot.platforms.dingtalk.signing import (
    SignatureReplayGuard, message_key, sign, signed_webhook_url, timestamp_fresh, verify_callback,
)

DingTalkAdapter = DingTalkPlatform  # the name before the package split

__all__ = [
    "CALLBACK_PATH", "CH_OPENAPI", "CH_SESSION", "CH_WEBHOOK", "MARKDOWN_MAX_BYTES", "MAX_CALLBACK_BYTES", "PLATFORM",
    "SIGN_WINDOW_MS", "STREAM_TOPIC", "AppCredentials", "CustomWebhookDelivery", "DeliveryResult", "DingTalkAdapter",
    "DingTalkApi", "DingTalkContext", "DingTalkError", "DingTalkPlatform", "MarkdownPart", "OpenApiDelivery",
    "RobotMessage", "SessionWebhookDelivery", "SignatureReplayGuard", "callback_urls", "markdown_parts",
    "message_key", "parse_robot_message", "push_drafts", "push_renderer", "redact", "render_replies", "robot_bucket",
    "sign", "signed_webhook_url", "timestamp_fresh", "verify_callback", "webhook_bucket",
]
