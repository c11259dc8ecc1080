"""WeCom's outbox deliveries: a group's webhook, an AI bot's single-use response_url, the long connection."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import anyio

from bot.outbox import DeliveryResult
from bot.platforms.wecom.api import post_json, result_of, upload, webhook_url
from bot.platforms.wecom.context import WeComContext
from bot.platforms.wecom.limits import (
    CHANNEL_WEBHOOK, IMAGE_MAX_BYTES, MARKDOWN_MAX_BYTES, RESPONSE_URL_VALIDITY, TEXT_MAX_BYTES,
)
from bot.platforms.wecom.longconn import WsConnection
from bot.platforms.wecom.render import NOTICE_KIND, webhook_robot, webhook_text_drafts
from models.ids import stored_id
from models.platform_queries import (
    QueuedMessage, fail_together, mark_sent_together, release, requeue, take_companions,
)
from models.push_groups import push_key_env
from models.tables import OutboxMessage

log = logging.getLogger(__name__)

NOTICE_LEASE = timedelta(minutes=2)  # how long notices taken along stay leased (the sender's own lease)


class WebhookDelivery:
    """wecom_webhook: a group's 消息推送 webhook (text / markdown / image / file)."""

    def __init__(self, ctx: WeComContext) -> None:
        self.ctx = ctx
        # The sender keeps a webhook's notices in one lane, so this lock is a guard: one merged notice at a
        # time per webhook, or two carriers would each take the same companions along and send lines twice.
        self._notice_locks: dict[str, anyio.Lock] = {}

    async def deliver(self, row: OutboxMessage) -> DeliveryResult:
        """Send one row through a group's webhook (text / markdown / image / file)."""
        payload = json.loads(row.payload or "{}")
        send_url = webhook_url(self.ctx, payload, "send")
        if send_url is None:
            group_id = str(payload.get("group_id") or "")
            if group_id and self.ctx.group(group_id) is None:  # bound in chat: no TOML entry to name the variable
                return DeliveryResult.fail(
                    f"no webhook key for group {group_id!r} (bound in chat): set the environment variable "
                    f"{push_key_env(group_id)} to its 消息推送 key"
                )
            return DeliveryResult.fail(
                f"no webhook key for group {group_id!r}: set credentials.webhook_key and its variable"
            )
        if row.kind == NOTICE_KIND:
            async with self._notice_locks.setdefault(row.robot, anyio.Lock()):
                return await self._deliver_notices(row, payload, send_url)
        if row.kind in ("markdown", "text"):
            content = str(payload.get("content", ""))
            limit = MARKDOWN_MAX_BYTES if row.kind == "markdown" else TEXT_MAX_BYTES
            if len(content.encode("utf-8")) > limit:
                return DeliveryResult.fail(f"{row.kind} is {len(content.encode('utf-8'))} bytes, over {limit}")
            inner: dict[str, Any] = {"content": content}
            if row.kind == "text" and payload.get("mentioned_list"):
                inner["mentioned_list"] = list(payload["mentioned_list"])
            body: dict[str, Any] = {"msgtype": row.kind, row.kind: inner}
        elif row.kind == "image":
            data = row.blob or b""
            if not data:
                return DeliveryResult.fail("image row has no bytes")
            if len(data) > IMAGE_MAX_BYTES:
                return DeliveryResult.fail(
                    f"image is {len(data) / 1024 / 1024:.1f} MB, over WeCom's 2 MB limit for webhook images"
                )
            body = {"msgtype": "image", "image": {"base64": base64.b64encode(data).decode("ascii"),
                                                  "md5": hashlib.md5(data).hexdigest()}}
        elif row.kind == "file":
            uploaded = await upload(self.ctx, payload, row.blob or b"")
            if isinstance(uploaded, DeliveryResult):
                return uploaded
            body = {"msgtype": "file", "file": {"media_id": uploaded}}
        else:
            return DeliveryResult.fail(f"unknown kind {row.kind!r} for {CHANNEL_WEBHOOK}")
        answer = await post_json(self.ctx, send_url, body)
        return answer if isinstance(answer, DeliveryResult) else result_of(self.ctx, answer)

    async def _deliver_notices(self, row: OutboxMessage, payload: dict[str, Any], send_url: str) -> DeliveryResult:
        """@-notices go merged: this row takes every pending notice of its webhook along, as one markdown message
        (up to 4096 bytes; the rest wait for the next), and all of them are marked sent in one transaction. The
        result names the rows it took along, so the sender skips those it holds."""
        db, row_id, now = self.ctx.db, stored_id(row), self.ctx.now()
        taken = await anyio.to_thread.run_sync(lambda: take_companions(db, row, now=now, lease=NOTICE_LEASE))
        if taken is None:
            return DeliveryResult.carried()  # an earlier notice of this webhook carried it
        target = (payload.get("group_id"), payload.get("webhook_url"))
        lines = merged_lines([str(payload.get("content", ""))])
        riding: list[int] = []
        left: list[int] = []
        full = False
        for other in taken:
            if (other.payload.get("group_id"), other.payload.get("webhook_url")) != target:
                left.append(other.id)
                continue
            more = merged_lines([*lines, str(other.payload.get("content", ""))])
            full = full or len("\n".join(more).encode("utf-8")) > MARKDOWN_MAX_BYTES
            if full:  # kept in order: what does not fit waits for the next message
                left.append(other.id)
                continue
            lines = more
            riding.append(other.id)
        content = "\n".join(lines)
        size = len(content.encode("utf-8"))
        if size > MARKDOWN_MAX_BYTES:  # only a row alone can be (rendering splits notices at the limit)
            await anyio.to_thread.run_sync(lambda: release(db, [*left, *riding]))
            return DeliveryResult.fail(f"notice is {size} bytes, over {MARKDOWN_MAX_BYTES}")
        await anyio.to_thread.run_sync(lambda: release(db, left))
        answer = await post_json(self.ctx, send_url, {"msgtype": "markdown", "markdown": {"content": content}})
        result = answer if isinstance(answer, DeliveryResult) else result_of(self.ctx, answer)
        done = self.ctx.now()
        if not result.ok and (result.retryable or not riding):
            await anyio.to_thread.run_sync(lambda: release(db, riding))  # they go again with this row's retry
            return result
        if not result.ok:
            # Refused for good (an invalid webhook key, say): the lines it carried are refused with it, at the
            # cost of one call, not one more each.
            await anyio.to_thread.run_sync(lambda: fail_together(db, riding, error=result.error))
            return replace(result, took_along=tuple(riding))
        if riding:
            # With this row, in the transaction: a crash must not send the companions' lines again.
            await anyio.to_thread.run_sync(lambda: mark_sent_together(db, [row_id, *riding], now=done))
            log.info("outbox row %s: %d other notice(s) went in the same message", row_id, len(riding))
        return replace(result, took_along=tuple(riding))


def merged_lines(contents: list[str]) -> list[str]:
    """The notice lines of several rows, each line once (a retried or doubled notice adds nothing), in order."""
    return list(dict.fromkeys(line for content in contents for line in content.split("\n") if line.strip()))


class ResponseUrlDelivery:
    """wecom_response_url: the single-use response_url of an AI-bot callback; re-queued by webhook when refused."""

    def __init__(self, ctx: WeComContext) -> None:
        self.ctx = ctx

    async def deliver(self, row: OutboxMessage) -> DeliveryResult:
        """Answer through the callback's single-use response_url; when refused, re-queue via webhook."""
        payload = json.loads(row.payload or "{}")
        url = payload.get("url")
        content = str(payload.get("content", ""))
        if not url:
            return await self._fallback(row, payload, "no response_url")
        if not self.ctx.allowed(str(url), "response_url"):
            return await self._fallback(row, payload, "response_url not on an allowed host")
        answer = await post_json(self.ctx, str(url), {"msgtype": "markdown", "markdown": {"content": content}})
        result = answer if isinstance(answer, DeliveryResult) else result_of(self.ctx, answer)
        if result.ok or result.retryable:
            return result
        if row.interrupted_at is not None and self.ctx.now() - row.interrupted_at < RESPONSE_URL_VALIDITY:
            # An earlier attempt died before its outcome was recorded, and the URL (valid for an hour,
            # usable once) is now refused: that attempt used it, so the reply was delivered.
            log.info("outbox row %s: response_url already used by an interrupted attempt; counted as sent", row.id)
            return DeliveryResult.sent()
        return await self._fallback(row, payload, result.error)

    async def _fallback(self, row: OutboxMessage, payload: dict[str, Any], error: str) -> DeliveryResult:
        group = self.ctx.group(payload.get("group_id"))
        if group is None or not self.ctx.webhook_key(group):
            return DeliveryResult.fail(f"response_url refused ({error}); the group has no webhook to fall back to")
        drafts = webhook_text_drafts(str(payload.get("content", "")), group_id=group.id, robot=webhook_robot(group.id))
        messages = [
            QueuedMessage(channel=CHANNEL_WEBHOOK, robot=draft.robot or webhook_robot(group.id), kind=draft.kind,
                          payload=dict(draft.payload))
            for draft in drafts
        ]
        give_up_after = timedelta(minutes=self.ctx.config.outbox.give_up_after_minutes)
        now = self.ctx.now()
        await anyio.to_thread.run_sync(lambda: requeue(
            self.ctx.db, messages, dedupe_prefix=f"{row.dedupe_key}:webhook", platform="wecom", group_id=group.id,
            now=now, give_up_after=give_up_after,
        ))
        # The sender drains again right after a pass that attempted rows, so the new rows go out at once.
        return DeliveryResult.fail(f"response_url refused ({error}); re-sent through the group webhook")


class PassiveDelivery:
    """wecom_passive: a reply held for a callback's passive answer (a stream refresh, a card tap's callback).

    The callback takes the row itself (`models.outbox.take_held`) and answers with it. Should no callback come
    for it before `hold_until` (WeCom stops refreshing a stream after 6 minutes; a tap's callback waits 5 s),
    the sender gives it here instead: by the message's response_url (valid an hour), else the group's webhook.
    """

    def __init__(self, ctx: WeComContext, response_url: ResponseUrlDelivery) -> None:
        self.ctx = ctx
        self.response_url = response_url

    async def deliver(self, row: OutboxMessage) -> DeliveryResult:
        payload = json.loads(row.payload or "{}")
        try:
            hold_until = datetime.fromisoformat(str(payload.get("hold_until")))
        except ValueError:
            hold_until = None
        now = self.ctx.now()
        if hold_until is not None:  # a give-up time shorter than the hold must not lose the reply
            hold_until = min(hold_until, row.give_up_at - timedelta(seconds=1))
        if hold_until is not None and now < hold_until:
            wait = math.ceil((hold_until - now).total_seconds())
            return DeliveryResult.wait("held for the callback's passive answer", retry_after=str(max(1, wait)))
        return await self.response_url.deliver(row)


class LongConnectionDelivery:
    """wecom_ws: aibot_respond_msg / aibot_send_msg over a bot's long connection."""

    def __init__(self, ctx: WeComContext, connections: Mapping[str, WsConnection]) -> None:
        self.ctx = ctx
        self.connections = connections

    async def deliver(self, row: OutboxMessage) -> DeliveryResult:
        """Reply (aibot_respond_msg) or push (aibot_send_msg) over a bot's long connection."""
        payload = json.loads(row.payload or "{}")
        connection = self.connections.get(str(payload.get("bot")))
        if connection is None:
            return DeliveryResult.fail(f"bot {payload.get('bot')!r} has no long connection configured")
        if not connection.ready:
            return DeliveryResult.retry(f"long connection of bot {payload.get('bot')!r} is not up")
        content = str(payload.get("content", ""))
        if payload.get("cmd") == "aibot_respond_msg":
            stream: dict[str, Any] = {"id": hashlib.sha1(row.dedupe_key.encode()).hexdigest()[:32],
                                      "finish": True, "content": content}
            images = [base64.b64decode(b) for b in payload.get("images", [])]
            if images:
                stream["msg_item"] = [
                    {"msgtype": "image", "image": {"base64": base64.b64encode(i).decode("ascii"),
                                                   "md5": hashlib.md5(i).hexdigest()}}
                    for i in images
                ]
            frame = {"cmd": "aibot_respond_msg", "headers": {"req_id": payload.get("req_id")},
                     "body": {"msgtype": "stream", "stream": stream}}
            if isinstance(payload.get("card"), dict):  # issue 15: the reply's buttons as a card under the text
                frame["body"] = {"msgtype": "stream_with_template_card", "stream": stream,
                                 "template_card": payload["card"]}
        elif payload.get("cmd") == "aibot_respond_update_msg":  # a card tap's answer: the card updated
            frame = {"cmd": "aibot_respond_update_msg", "headers": {"req_id": payload.get("req_id")},
                     "body": {"response_type": "update_template_card", "template_card": payload.get("card")}}
        else:
            frame = {"cmd": "aibot_send_msg", "headers": {"req_id": f"aibot_send_msg_{uuid.uuid4().hex}"},
                     "body": {"chatid": payload.get("chatid"), "msgtype": "markdown", "markdown": {"content": content}}}
        await self.ctx.meter.count("wecom", str(frame["cmd"]))
        try:
            ack = await connection.request(frame)
        except (TimeoutError, ConnectionError) as exc:
            return DeliveryResult.retry(f"long connection: {type(exc).__name__}: {exc}")
        result = result_of(self.ctx, ack)
        if payload.get("cmd") == "aibot_respond_update_msg" and not result.ok and not result.retryable:
            return await self._card_fallback(row, payload, result.error)
        return result

    async def _card_fallback(self, row: OutboxMessage, payload: dict[str, Any], error: str) -> DeliveryResult:
        """A card update WeCom refused (after its 5 s, say): the group still hears the answer, by webhook."""
        group = self.ctx.group(payload.get("group_id"))
        text = str(payload.get("fallback_text") or "")
        if group is None or not self.ctx.webhook_key(group) or not text:
            return DeliveryResult.fail(f"card update refused ({error}); no group webhook to fall back to")
        messages = [
            QueuedMessage(channel=CHANNEL_WEBHOOK, robot=draft.robot or webhook_robot(group.id), kind=draft.kind,
                          payload=dict(draft.payload))
            for draft in webhook_text_drafts(text, group_id=group.id, robot=webhook_robot(group.id))
        ]
        give_up_after = timedelta(minutes=self.ctx.config.outbox.give_up_after_minutes)
        now = self.ctx.now()
        await anyio.to_thread.run_sync(lambda: requeue(
            self.ctx.db, messages, dedupe_prefix=f"{row.dedupe_key}:webhook", platform="wecom", group_id=group.id,
            now=now, give_up_after=give_up_after,
        ))
        return DeliveryResult.fail(f"card update refused ({error}); the answer re-sent through the group webhook")
