"""DingTalk's limits, time windows, errcodes, paths and outbox channel names."""

from __future__ import annotations

from typing import Final

PLATFORM: Final = "dingtalk"
CALLBACK_PATH = "/dingtalk/callback"
STREAM_TOPIC = "/v1.0/im/bot/messages/get"  # dingtalk_stream.ChatbotMessage.TOPIC

CH_SESSION = "dingtalk_session_webhook"
CH_WEBHOOK = "dingtalk_webhook"
CH_OPENAPI = "dingtalk_openapi"

SIGN_WINDOW_MS = 3_600_000
MAX_CALLBACK_BYTES = 256 * 1024
# Markdown over ~3500 characters renders unreliably; 3500 bytes is ≤3500 characters in any script and far
# below the 20000-byte webhook body and the 15000-byte msgParam limits.
MARKDOWN_MAX_BYTES = 3500
MAX_MEDIA_BYTES = 20 * 1024 * 1024
SESSION_MARGIN_MS = 60_000  # do not use a sessionWebhook in its last minute
TOKEN_MARGIN_SECONDS = 300

RATE_LIMIT_CODES = frozenset({130101, 410100})  # send too fast / 发送速度太快而限流
TRANSIENT_CODES = frozenset({-1, 15, 88, 90002})  # 系统繁忙 and other "try again" codes
TOKEN_CODES = frozenset({40014, 42001})  # invalid / expired access_token (legacy oapi)
SESSION_GONE_CODES = frozenset({300001})  # session 不存在: the sessionWebhook expired

UPLOAD_TYPES = {  # file extension -> media/upload type (the extension is also sampleFile's fileType)
    "png": "image", "jpg": "image", "jpeg": "image", "gif": "image", "bmp": "image",
    "xlsx": "file", "xls": "file", "docx": "file", "doc": "file", "pdf": "file",
    "pptx": "file", "ppt": "file", "zip": "file", "rar": "file",
}
