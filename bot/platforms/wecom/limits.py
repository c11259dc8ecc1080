"""WeCom's limits, time windows, errcodes and outbox channel names."""

from __future__ import annotations

from datetime import timedelta

RESPONSE_URL_VALIDITY = timedelta(hours=1)  # a callback's response_url works once, within an hour
# An unfinished stream answer makes WeCom call back with refreshes for this long after the user's message.
STREAM_REFRESH_WINDOW = timedelta(minutes=6)
# A template_card_event must be answered (update_template_card) within 5 s; we answer by this many seconds,
# leaving room for the network, or say it is being processed.
CARD_ANSWER_SECONDS = 3.5
CARD_EVENT_WINDOW = timedelta(seconds=5)
PASSIVE_POLL_SECONDS = 0.1  # how often a card tap's callback looks for its answer in the outbox

# -- limits and windows ------------------------------------------------------------------------

TIMESTAMP_WINDOW_SECONDS = 300  # a callback's timestamp may differ from our clock by at most this
MAX_BODY_BYTES = 1024 * 1024  # larger callback bodies are refused with 413
TEXT_MAX_BYTES = 2048  # webhook text.content
MARKDOWN_MAX_BYTES = 4096  # webhook markdown.content
RESPONSE_MAX_BYTES = 20480  # AI-bot response_url markdown and stream content
IMAGE_MAX_BYTES = 2 * 1024 * 1024  # webhook image, before base64
FILE_MAX_BYTES = 20 * 1024 * 1024  # webhook upload_media type=file
WS_IMAGE_MAX_BYTES = 10 * 1024 * 1024  # stream msg_item image
WS_MAX_IMAGES = 10
MEDIA_MAX_BYTES = 10 * 1024 * 1024  # a downloaded photo
HEARTBEAT_SECONDS = 30.0
WS_ACK_TIMEOUT_SECONDS = 5.0
WS_RECONNECT_MAX_SECONDS = 60.0
# Handlers running at once. Under a burst, more would only contend for the GIL and the database's locks
# with the acknowledgements (measured: 4.5× fewer acks/s with 40); the rest wait their turn in memory.
HANDLER_SLOTS = 2

# errcodes worth another try; every other non-zero errcode is permanent (93000 bad key, 40058 too long…)
RETRYABLE_ERRCODES = frozenset({-1, 45009, 45033})
RATE_LIMITED_ERRCODES = frozenset({45009})

CHANNEL_RESPONSE_URL = "wecom_response_url"
CHANNEL_WEBHOOK = "wecom_webhook"
CHANNEL_WS = "wecom_ws"
CHANNEL_PASSIVE = "wecom_passive"  # held for a callback's passive answer (stream refresh, card tap); else response_url

TRUNCATED_NOTE = "\n……（内容过长，已截断）"
STREAM_WAIT_TEXT = "收到，正在处理…"
STREAM_DONE_TEXT = "（已回复）"
RECEIVED_TEXT = "已收到。"
NO_TEXT_NOTE = "（图表和文件见本群消息）"
NO_WEBHOOK_NOTE = "（图表和文件要通过本群的“消息推送”机器人发送，本群还没有配置，请联系管理员。）"
